//! `ferry status`, `ferry plan` and `ferry delete`: what the sessions say, what a run
//! would do, and forgetting a task.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use serde::Serialize;

use super::index::Index;
use super::{Session, SessionError, Status, task_folder};
use crate::pipeline::packer::{Item, ItemKind};
use crate::pipeline::scan::{self, ScanError};
use crate::plan::raw::Deletions;
use crate::plan::{Plan, Task};

/// One task's line of `ferry status`.
#[derive(Debug, Serialize)]
pub struct TaskStatus {
    pub task: String,
    pub status: Status,
    pub round: u32,
    pub progress: super::Progress,
    pub updated_at: Option<String>,
    pub last_result: Option<super::LastResult>,
}

/// What `ferry status --json` prints.
#[derive(Debug, Serialize)]
pub struct PlanStatus {
    /// The version of this shape.
    pub version: u32,
    pub plan: String,
    pub tasks: Vec<TaskStatus>,
}

/// The status of every task of the plan, from the sessions alone (nothing is scanned).
pub fn status(plan: &Plan) -> Result<PlanStatus, SessionError> {
    let mut tasks = Vec::new();
    for task in &plan.tasks {
        let session = Session::load(&task_folder(plan, &task.name), &task.name)?;
        tasks.push(match session {
            Some(s) => TaskStatus {
                task: task.name.clone(),
                status: s.status,
                round: s.round,
                progress: s.progress,
                updated_at: Some(s.updated_at),
                last_result: s.last_result,
            },
            None => TaskStatus {
                task: task.name.clone(),
                status: Status::Queued,
                round: 0,
                progress: super::Progress::default(),
                updated_at: None,
                last_result: None,
            },
        });
    }
    Ok(PlanStatus {
        version: 1,
        plan: plan.name.clone(),
        tasks,
    })
}

/// `ferry status` for a person.
pub fn status_text(status: &PlanStatus) -> String {
    let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
    let mut out = format!("plan {}\n", status.plan);
    let width = status
        .tasks
        .iter()
        .map(|t| t.task.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<9}  {:>5}  {:<34}  LAST RESULT",
        "TASK", "STATUS", "ROUND", "PROGRESS"
    );
    for t in &status.tasks {
        let p = &t.progress;
        let progress = if t.round == 0 {
            "-".to_string()
        } else {
            format!(
                "{}/{} items, {}/{}",
                p.items_done,
                p.items,
                size(p.bytes_done),
                size(p.bytes)
            )
        };
        let last = match &t.last_result {
            Some(r) => format!(
                "R{} ended {}: {} imported ({}), {} unchanged, {} failed",
                r.round,
                r.ended_at,
                r.imported,
                size(r.bytes),
                r.unchanged,
                r.failed
            ),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<9}  {:>5}  {:<34}  {}",
            t.task,
            t.status.as_str(),
            t.round,
            progress,
            last
        );
    }
    out
}

/// What a run would do with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Skip,
    Conflict,
    /// Gone from the source (`deletions: mirror`).
    Delete,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Skip => "skip",
            Action::Conflict => "conflict",
            Action::Delete => "delete",
        }
    }
}

/// The dry run of one task: each item's action (skips only counted), and totals.
pub fn dry_run(plan: &Plan, task: &Task, threads: usize) -> Result<String, ScanError> {
    let folder = task_folder(plan, &task.name);
    let index = Index::load(&super::layout::TaskLayout::at(&folder).index()).map_err(|e| {
        ScanError::Report(crate::report::ReportError {
            path: super::layout::TaskLayout::at(&folder).index(),
            source: io::Error::other(e.to_string()),
        })
    })?;
    let mut lines = String::new();
    let mut counts = [0u64; 5];
    let mut bytes = [0u64; 5];
    let now = jiff::Timestamp::now().as_nanosecond();
    let mirror = task.settings.deletions == Deletions::Mirror;
    let mut unseen: HashSet<&[u8]> = if mirror {
        index.items.keys().map(Vec::as_slice).collect()
    } else {
        HashSet::new()
    };
    scan::scan(task, threads, now, &mut |entry| {
        if mirror {
            unseen.remove(entry.dest.as_os_str().as_bytes());
        }
        if entry.status != scan::Status::Migrate {
            return Ok(());
        }
        let Some(item) = Item::from_entry(entry) else {
            return Ok(());
        };
        let action = action(&index, task, &item);
        counts[action as usize] += 1;
        if item.kind == ItemKind::File {
            bytes[action as usize] += item.meta.size;
        }
        if action != Action::Skip {
            let _ = writeln!(
                lines,
                "{:<8}  {}",
                action.word(),
                crate::report::escape_path(&item.rel)
            );
        }
        Ok(())
    })?;
    let mut out = format!(
        "plan {} task {}: what `ferry run` would do ({} → {})\n",
        plan.name,
        task.name,
        crate::report::escape_path(&task.source),
        crate::report::escape_path(&task.destination)
    );
    out.push_str(&lines);
    let mut gone: Vec<&[u8]> = unseen.into_iter().collect();
    gone.sort_unstable();
    for path in gone {
        counts[Action::Delete as usize] += 1;
        if let Some(known) = index.items.get(path)
            && known.kind == crate::pipeline::package::KIND_FILE
        {
            bytes[Action::Delete as usize] += known.size;
        }
        let _ = writeln!(
            out,
            "{:<8}  {}",
            Action::Delete.word(),
            crate::report::escape(OsStr::from_bytes(path))
        );
    }
    let actions = [
        Action::Create,
        Action::Update,
        Action::Skip,
        Action::Conflict,
        Action::Delete,
    ];
    for action in actions {
        let _ = writeln!(
            out,
            "  {:<8} {:>9} items  {:>10}",
            action.word(),
            counts[action as usize],
            bytesize::ByteSize(bytes[action as usize])
                .display()
                .iec()
                .to_string()
        );
    }
    Ok(out)
}

/// The action for one item: against the index (what ferry put there) and the
/// destination as it is now, decided by the same functions `ferry run` uses. Reads only
/// metadata.
fn action(index: &Index, task: &Task, item: &Item) -> Action {
    use crate::pipeline::decide::{self, Verdict};
    let known = index.items.get(item.rel.as_os_str().as_bytes());
    let source = decide::Source {
        size: item.meta.size,
        mtime_ns: item.meta.mtime_ns,
    };
    if decide::unchanged_since(known, crate::pipeline::run::kind_code(&item.kind), source) {
        return Action::Skip;
    }
    let found = fs::symlink_metadata(task.destination.join(&item.rel)).ok();
    if item.kind == ItemKind::Folder {
        return if found.is_some() {
            Action::Skip
        } else {
            Action::Create
        };
    }
    let found = found.map(|m| decide::Found {
        regular: m.file_type().is_file(),
        size: m.len(),
        mtime_ns: m
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.mtime_nsec()),
    });
    match decide::file(
        found,
        source,
        known,
        task.settings.conflicts,
        task.settings.verify,
    ) {
        Verdict::Create => Action::Create,
        Verdict::Unchanged | Verdict::CompareContent => Action::Skip,
        Verdict::Replace => Action::Update,
        Verdict::Keep(_) => Action::Conflict,
    }
}

/// Why a task could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("cannot delete {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Forgets a task: its staged data, keys, session, journals, index and reports. Returns
/// what was removed, or `None` when the task had no state.
pub fn delete(plan: &Plan, task: &str) -> Result<Option<PathBuf>, DeleteError> {
    let folder = task_folder(plan, task);
    if !folder.exists() {
        return Ok(None);
    }
    // Staged data first: without its key nobody could ever open it.
    if let Ok(keys) = fs::read_dir(super::layout::TaskLayout::at(&folder).keys()) {
        for key in keys.flatten() {
            crate::pipeline::run::discard_staged(plan, &key.path()).map_err(|e| {
                DeleteError::Io {
                    path: key.path(),
                    source: io::Error::other(e.to_string()),
                }
            })?;
        }
    }
    fs::remove_dir_all(&folder).map_err(|source| DeleteError::Io {
        path: folder.clone(),
        source,
    })?;
    Ok(Some(folder))
}
