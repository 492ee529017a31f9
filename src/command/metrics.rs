//! `--metrics-file`: the plan's progress in the Prometheus text format, for
//! node_exporter's textfile collector. Written whole (temporary name, rename) every few
//! seconds while a run goes, and once at its end, from what the run keeps anyway: each
//! task's session (saved every five seconds while packages move) and its round's
//! summary (written at the end of each run of the round, with failures by code).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::plan::Plan;
use crate::state::layout::TaskLayout;

/// How often the file is written while a run goes.
const EVERY: Duration = Duration::from_secs(5);

/// The writer's thread: it writes until the `Metrics` is dropped, which writes once
/// more, whichever way the run ends.
#[derive(Debug)]
pub struct Metrics {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
    plan: String,
    folder: PathBuf,
    tasks: Vec<String>,
}

impl Metrics {
    /// Starts writing the metrics of `tasks` of `plan` to `path`.
    pub fn start(plan: &Plan, tasks: Vec<String>, path: &Path) -> Metrics {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, plan_name, folder) = (
            Arc::clone(&done),
            plan.name.clone(),
            crate::state::layout::PlanLayout::of(plan)
                .folder()
                .to_path_buf(),
        );
        let (file, names) = (path.to_path_buf(), tasks.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let _ = write(&file, &plan_name, &folder, &names);
                let mut waited = Duration::ZERO;
                while waited < EVERY && !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                }
            }
        });
        Metrics {
            done,
            thread: Some(thread),
            path: path.to_path_buf(),
            plan: plan.name.clone(),
            folder: crate::state::layout::PlanLayout::of(plan)
                .folder()
                .to_path_buf(),
            tasks,
        }
    }
}

impl Drop for Metrics {
    /// Stops the thread and writes the final figures.
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = write(&self.path, &self.plan, &self.folder, &self.tasks) {
            eprintln!(
                "cannot write the metrics file {}: {e}",
                crate::shown::escape_path(&self.path)
            );
        }
    }
}

/// A label value, escaped as the format wants.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its help, type and samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

fn write(path: &Path, plan: &str, folder: &Path, tasks: &[String]) -> std::io::Result<()> {
    let mut families = vec![
        Family {
            name: "ferry_round",
            help: "The task's current round.",
            kind: "gauge",
            samples: Vec::new(),
        },
        Family {
            name: "ferry_task_status",
            help: "1 for the task's current status.",
            kind: "gauge",
            samples: Vec::new(),
        },
        Family {
            name: "ferry_items",
            help: "Items of the current round: to migrate, done, unchanged since the last round, failed.",
            kind: "gauge",
            samples: Vec::new(),
        },
        Family {
            name: "ferry_bytes",
            help: "Bytes of the current round: to migrate, done.",
            kind: "gauge",
            samples: Vec::new(),
        },
        Family {
            name: "ferry_stage_items",
            help: "Items of the round by stage and result, as of the round's last report.",
            kind: "gauge",
            samples: Vec::new(),
        },
        Family {
            name: "ferry_failures",
            help: "Failed items of the round by code, as of the round's last report.",
            kind: "gauge",
            samples: Vec::new(),
        },
    ];
    for task in tasks {
        let layout = TaskLayout::at(&folder.join(task));
        let base = format!("plan=\"{}\",task=\"{}\"", label(plan), label(task));
        let Ok(Some(session)) = crate::state::Session::load_checked(layout.folder(), task) else {
            continue;
        };
        families[0]
            .samples
            .push((format!("{{{base}}}"), f64::from(session.round)));
        families[1].samples.push((
            format!("{{{base},status=\"{}\"}}", session.status.as_str()),
            1.0,
        ));
        let p = &session.progress;
        for (state, n) in [
            ("to_migrate", p.items),
            ("done", p.items_done),
            ("unchanged", p.unchanged),
            ("failed", p.failed),
        ] {
            families[2]
                .samples
                .push((format!("{{{base},state=\"{state}\"}}"), n as f64));
        }
        for (state, n) in [("to_migrate", p.bytes), ("done", p.bytes_done)] {
            families[3]
                .samples
                .push((format!("{{{base},state=\"{state}\"}}"), n as f64));
        }
        if let Ok(summary) =
            crate::report::round::RoundSummary::load(&layout.reports(session.round))
        {
            let s = &summary.stages;
            for (stage, result, n) in [
                ("read", "ok", s.read),
                ("package", "ok", s.packaged),
                ("upload", "ok", s.uploaded),
                ("import", "ok", s.imported),
                ("import", "already_at_destination", s.already_at_destination),
                ("import", "deleted", s.deleted),
                ("read", "failed", s.failed_reading),
                ("package", "failed", s.failed_packaging),
                ("upload", "failed", s.failed_uploading),
                ("import", "failed", s.failed_importing),
            ] {
                families[4].samples.push((
                    format!("{{{base},stage=\"{stage}\",result=\"{result}\"}}"),
                    n as f64,
                ));
            }
            for failure in &summary.failures {
                families[5].samples.push((
                    format!("{{{base},code=\"{}\"}}", label(&failure.code)),
                    failure.count as f64,
                ));
            }
        }
    }
    let mut text = String::new();
    for family in &families {
        let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind);
        for (labels, value) in &family.samples {
            let _ = writeln!(text, "{}{labels} {value}", family.name);
        }
    }
    let _ = writeln!(
        text,
        "# HELP ferry_metrics_written_seconds When this file was written (Unix time).\n# TYPE ferry_metrics_written_seconds gauge\nferry_metrics_written_seconds{{plan=\"{}\"}} {}",
        label(plan),
        jiff::Timestamp::now().as_second()
    );
    publish(path, text.as_bytes())
}

/// Writes `bytes` at `path` whole: a temporary name beside it (mode 0644: the collector
/// usually runs as another account; the figures are counts and task names), synced,
/// renamed.
fn publish(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&partial)?;
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}
