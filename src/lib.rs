//! ferry migrates large file shares: a YAML plan → a validated `Plan` → a `JobGraph`
//! of tasks, each of which scans, packages, uploads and imports its files.
//!
//! The binary is a thin shell around `run`; everything else lives here so that it can
//! be tested in-process and as a binary.

pub mod cli;
pub mod crypto;
pub mod error;
pub mod exit;
pub mod failure;
pub mod graph;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod session;
pub mod staging;

use std::io::Write as _;

pub use error::Error;
pub use exit::Exit;

use cli::{Cli, Command, GraphFormat};
use graph::JobGraph;
use plan::Plan;

/// Runs one command. Human messages go to stderr; stdout carries only what the command
/// was asked to print.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    harden_process();
    match cli.command {
        Command::Validate { plans } => Ok(validate(&plans)),
        Command::Schema => print(&plan::schema_json()),
        Command::Graph { plan, format } => {
            let plan = Plan::load(&plan)?;
            let graph = JobGraph::compile(&plan);
            print(&match format {
                GraphFormat::Text => graph.to_text(),
                GraphFormat::Dot => graph.to_dot(),
                GraphFormat::Json => graph.to_json(),
            })
        }
        Command::Scan {
            plan,
            task,
            workers,
        } => scan(&plan, task.as_deref(), workers, None, false, false),
        Command::Run {
            plan,
            task,
            workers,
            stages,
            restart,
            force,
        } => scan(
            &plan,
            task.as_deref(),
            workers,
            Some(stages.into()),
            restart,
            force,
        ),
        Command::Status { plan, json } => {
            let plan = Plan::load(&plan)?;
            let status = session::commands::status(&plan).map_err(pipeline::run::RunError::from)?;
            if json {
                let mut text = serde_json::to_string_pretty(&status).unwrap_or_default();
                text.push('\n');
                print(&text)
            } else {
                print(&session::commands::status_text(&status))
            }
        }
        Command::DryRun { plan: path, task } => {
            let plan = Plan::load(&path)?;
            let tasks = chosen_tasks(&plan, &path, task.as_deref())?;
            let threads = pipeline::default_walk_threads();
            let mut out = String::new();
            for task in tasks {
                out.push_str(&session::commands::dry_run(&plan, task, threads)?);
            }
            print(&out)
        }
        Command::Delete {
            plan: path,
            task,
            yes,
        } => delete(&path, &task, yes),
        Command::Report {
            plan: path,
            task,
            round,
            format,
            template,
            out,
        } => report(
            &path,
            task.as_deref(),
            round,
            format,
            template.as_deref(),
            out,
        ),
    }
}

/// What holds for the whole process, before any key or path is touched:
///
/// - No core dump: a dump of a run would hold the container key in clear (reliability
///   review, finding 13). `PR_SET_DUMPABLE` 0 also keeps other processes of the same
///   account from attaching to read the key.
/// - Private by default: everything ferry creates (state, journals, item lists, keys,
///   reports, staged objects) is at most 0600 for files and 0700 for folders, since
///   they name every source path (finding 14). What ferry creates at the destination
///   gets its mode explicitly, from the source or the usual 0644/0755.
fn harden_process() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit};
    let _ = rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// `ferry report`: renders stored rounds again.
fn report(
    path: &std::path::Path,
    task: Option<&str>,
    round: Option<u32>,
    format: Option<cli::ReportFormat>,
    template: Option<&std::path::Path>,
    out: Option<std::path::PathBuf>,
) -> Result<Exit, Error> {
    use cli::ReportFormat;
    use report::summary::{Format, PlanSummary, Templates};
    let plan = Plan::load(path)?;
    let tasks: Vec<&str> = chosen_tasks(&plan, path, task)?
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    // Tasks in plan order, as the summaries list them.
    let ordered: Vec<&str> = plan
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| tasks.contains(n))
        .collect();
    let summary = PlanSummary::gather(&plan, &ordered, round).map_err(Error::Report)?;
    let mut templates = match Templates::for_plan(plan.templates.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Usage);
        }
    };
    let chosen = match (format, template) {
        (Some(ReportFormat::Csv | ReportFormat::Json), Some(_)) => {
            eprintln!("error: --template renders the md or html summary, not {format:?}");
            return Ok(Exit::Usage);
        }
        (Some(f), _) => f,
        (None, Some(t)) if t.extension().is_some_and(|e| e == "html" || e == "htm") => {
            ReportFormat::Html
        }
        (None, Some(_)) => ReportFormat::Md,
        (None, None) => ReportFormat::Json,
    };
    if let Some(file) = template {
        let target = if chosen == ReportFormat::Html {
            Format::Html
        } else {
            Format::Markdown
        };
        if let Err(e) = templates.replace(target, file) {
            eprintln!("error: {e}");
            return Ok(Exit::Usage);
        }
    }
    let (formats, json, csv) = match (format, template) {
        (None, None) => (vec![Format::Markdown, Format::Html], true, true),
        (_, _) => match chosen {
            ReportFormat::Md => (vec![Format::Markdown], false, false),
            ReportFormat::Html => (vec![Format::Html], false, false),
            ReportFormat::Json => (Vec::new(), true, false),
            ReportFormat::Csv => (Vec::new(), false, true),
        },
    };
    let folder = out.unwrap_or_else(|| {
        session::layout::PlanLayout::of(&plan)
            .folder()
            .to_path_buf()
    });
    let mut written = match report::summary::write(&folder, &summary, &templates, &formats, json) {
        Ok(w) => w,
        Err(report::summary::SummaryError::Template(e)) => {
            eprintln!("error: {e}");
            return Ok(Exit::Usage);
        }
        Err(report::summary::SummaryError::Write(e)) => {
            return Err(Error::Report(std::io::Error::other(e.to_string())));
        }
    };
    if csv {
        written.push(
            report::summary::write_csv(&folder, &summary)
                .map_err(|e| Error::Report(std::io::Error::other(e.to_string())))?,
        );
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}

/// After a run: the plan's summaries, from every task's last round. False (and said)
/// when they could not be written: the run then exits 5, since a summary that says
/// what an earlier run did would mislead.
fn plan_summaries(plan: &Plan) -> bool {
    use report::summary::{Format, PlanSummary, Templates};
    let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
    let folder = session::layout::PlanLayout::of(plan).folder().to_path_buf();
    let written = PlanSummary::gather(plan, &names, None)
        .map_err(|e| e.to_string())
        .and_then(|summary| {
            let templates =
                Templates::for_plan(plan.templates.as_deref()).map_err(|e| e.to_string())?;
            report::summary::write(
                &folder,
                &summary,
                &templates,
                &[Format::Markdown, Format::Html],
                true,
            )
            .map_err(|e| e.to_string())
        });
    match written {
        Ok(_) => {
            eprintln!("summary: {}", folder.join("Summary.html").display());
            true
        }
        Err(e) => {
            eprintln!("error: the plan's summary was not written: {e}");
            false
        }
    }
}

/// `ferry delete`: asks (unless `--yes`), then forgets the task, holding the plan's lock.
fn delete(path: &std::path::Path, task: &str, yes: bool) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let task = chosen_tasks(&plan, path, Some(task))?[0].name.clone();
    let _lock =
        session::lock::PlanLock::take(session::layout::PlanLayout::of(&plan).folder(), &plan.name)?;
    let folder = session::task_folder(&plan, &task);
    if !yes {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            eprintln!("ferry delete asks before it forgets a task; not at a terminal, say `--yes`");
            return Ok(Exit::Usage);
        }
        eprint!(
            "Forget task `{task}` of plan `{}`: its state, staged data and reports in {}? [y/N] ",
            plan.name,
            folder.display()
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing was deleted");
            return Ok(Exit::Usage);
        }
    }
    match session::commands::delete(&plan, &task).map_err(Error::Delete)? {
        Some(folder) => eprintln!("deleted task `{task}`: {}", folder.display()),
        None => eprintln!("task `{task}` has no state to delete"),
    }
    Ok(Exit::Success)
}

/// The tasks a command works on: the one named (or an error naming the known ones, with
/// a guess), or all of them in dependency order.
fn chosen_tasks<'p>(
    plan: &'p Plan,
    path: &std::path::Path,
    only: Option<&str>,
) -> Result<Vec<&'p plan::Task>, Error> {
    let Some(name) = only else {
        return Ok(JobGraph::compile(plan).order().collect());
    };
    match plan.tasks.iter().find(|t| t.name == name) {
        Some(task) => Ok(vec![task]),
        None => {
            let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
            let mut known = names
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(close) = plan::closest(name, &names) {
                known.push_str(&format!(" (did you mean `{close}`?)"));
            }
            Err(Error::UnknownTask {
                plan: path.display().to_string(),
                task: name.to_string(),
                known,
            })
        }
    }
}

/// The flag the first SIGINT/SIGTERM sets; a second one ends the process at once with
/// exit 3 (still safe: every durable step is journalled after it happened).
fn stop_on_signals() -> &'static std::sync::atomic::AtomicBool {
    use std::sync::Arc;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicBool;
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so that it sees the flag as it was before this signal.
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                Exit::Interrupted.code().into(),
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    })
}

/// Scans (`run` is `None`) or runs the chosen tasks of a plan in dependency order,
/// after checking every task's roots, holding the plan's lock.
fn scan(
    path: &std::path::Path,
    only: Option<&str>,
    workers: Option<u16>,
    run: Option<pipeline::run::Stages>,
    restart: bool,
    force: bool,
) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let graph = JobGraph::compile(&plan);
    let tasks = chosen_tasks(&plan, path, only)?;
    let migrate = |t: &plan::Task| t.settings.mode == plan::raw::Mode::Migrate;
    // Every root is checked before any task starts: a broken mount found late would
    // leave half a plan done.
    for task in &tasks {
        match run {
            Some(stages) if !stages.stage => pipeline::scan::check_import_access(&plan, task)?,
            _ => pipeline::scan::check_access(&plan, task)?,
        }
    }
    // One run of a plan at a time; the checks above only read.
    let _lock =
        session::lock::PlanLock::take(session::layout::PlanLayout::of(&plan).folder(), &plan.name)?;
    let stop = stop_on_signals();
    let walk_threads = workers.map_or_else(pipeline::default_walk_threads, usize::from);
    let workers = workers.map_or_else(
        || std::thread::available_parallelism().map_or(2, usize::from),
        usize::from,
    );
    // Tasks of one stage of the graph depend on nothing in it: they run at once (a scan
    // runs them one after another, each walk being parallel already). One reporter owns
    // the terminal for the whole run; each task's summary goes through it.
    let chosen: Vec<Vec<&plan::Task>> = graph
        .stages
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|&i| &plan.tasks[i])
                .filter(|t| tasks.iter().any(|c| c.name == t.name))
                .collect()
        })
        .filter(|stage: &Vec<&plan::Task>| !stage.is_empty())
        .collect();
    let reporter = pipeline::progress::Reporter::start(plan.name.clone());
    let mut exit = Exit::Success;
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    for stage in chosen {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let one = |task: &plan::Task| -> Result<bool, Error> {
            let stages = match run {
                Some(stages) if migrate(task) => stages,
                // A scan-only task of an import-only run has nothing to do.
                Some(stages) if !stages.stage => return Ok(false),
                _ => {
                    let round =
                        session::next_round(&plan, task).map_err(pipeline::run::RunError::from)?;
                    let scanned = pipeline::scan_task(&plan, task, round, walk_threads)?;
                    reporter.say(scanned.text);
                    return Ok(scanned.readiness == report::scan::Readiness::NotReady);
                }
            };
            let control = pipeline::run::Control {
                restart,
                stop,
                force,
            };
            let done = pipeline::run::run_task(
                &plan,
                task,
                stages,
                workers,
                walk_threads,
                &reporter,
                control,
            )?;
            if done.interrupted {
                interrupted.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // Items the round's scan kept back count in every run of the round, also
            // one that resumed it or only imported it.
            let mut partial = done.any_failure() || done.not_migrated > 0;
            let mut text = String::new();
            if let Some(scanned) = &done.scan {
                text.push_str(&scanned.text);
                partial |= scanned.readiness == report::scan::Readiness::NotReady;
            }
            text.push_str(&pipeline::run::summary(task, &done));
            reporter.say(text);
            Ok(partial)
        };
        let results: Vec<Result<bool, Error>> = if run.is_some() && stage.len() > 1 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = stage.iter().map(|task| scope.spawn(|| one(task))).collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        } else {
            stage.iter().map(|task| one(task)).collect()
        };
        let mut failed = None;
        for result in results {
            match result {
                Ok(true) => exit = Exit::Partial,
                Ok(false) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // A task that could not run stops the tasks that depend on it; the summaries
        // say where every task stands.
        if let Some(e) = failed {
            reporter.finish();
            if run.is_some() {
                plan_summaries(&plan);
            }
            return Err(e);
        }
    }
    reporter.finish();
    if run.is_some() && !plan_summaries(&plan) {
        exit = Exit::Fatal;
    }
    if interrupted.load(std::sync::atomic::Ordering::Relaxed)
        || stop.load(std::sync::atomic::Ordering::Relaxed)
    {
        eprintln!("interrupted: run the same command again to resume");
        return Ok(Exit::Interrupted);
    }
    Ok(exit)
}

fn validate(plans: &[std::path::PathBuf]) -> Exit {
    let mut exit = Exit::Success;
    for path in plans {
        match Plan::load(path) {
            Ok(plan) => {
                let graph = JobGraph::compile(&plan);
                let (tasks, stages) = (plan.tasks.len(), graph.stages.len());
                eprintln!(
                    "{}: ok ({tasks} task{}, {stages} stage{})",
                    path.display(),
                    if tasks == 1 { "" } else { "s" },
                    if stages == 1 { "" } else { "s" }
                );
            }
            Err(error) => {
                eprintln!("{error}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}

fn print(text: &str) -> Result<Exit, Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(Exit::Success),
        // A closed pipe (`ferry schema | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(Error::Output(e)),
    }
}
