//! `ferry plan`: what a run would do with every item, decided by the same functions
//! `ferry run` uses, reading only metadata.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::{Error, chosen_tasks, print};
use crate::exit::Exit;
use crate::package::packer::{Item, ItemKind};
use crate::plan::raw::Deletions;
use crate::plan::{Plan, Task};
use crate::scan;
use crate::state::index::Index;
use crate::state::task_folder;

/// `ferry plan PLAN [--task T]`.
pub fn run(path: &Path, task: Option<&str>) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let tasks = chosen_tasks(&plan, path, task)?;
    let mut out = String::new();
    for task in tasks {
        out.push_str(&dry_run(&plan, task)?);
    }
    print(&out)
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
pub fn dry_run(plan: &Plan, task: &Task) -> Result<String, Error> {
    let folder = task_folder(plan, &task.name);
    let index = Index::load(&crate::state::layout::TaskLayout::at(&folder).index())
        .map_err(|e| crate::run::RunError::from(crate::state::SessionError::from(e)))?;
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
    scan::scan(task, None, None, now, &mut |entry| {
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
                crate::shown::escape_path(&item.rel)
            );
        }
        Ok(())
    })?;
    let mut out = format!(
        "plan {} task {}: what `ferry run` would do ({} → {})\n",
        plan.name,
        task.name,
        crate::shown::escape_path(&task.source),
        crate::shown::escape_path(&task.destination)
    );
    out.push_str(&lines);
    let mut gone: Vec<&[u8]> = unseen.into_iter().collect();
    gone.sort_unstable();
    for path in gone {
        counts[Action::Delete as usize] += 1;
        if let Some(known) = index.items.get(path)
            && known.kind == crate::package::KIND_FILE
        {
            bytes[Action::Delete as usize] += known.size;
        }
        let _ = writeln!(
            out,
            "{:<8}  {}",
            Action::Delete.word(),
            crate::shown::escape(OsStr::from_bytes(path))
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
    use crate::import::decide::{self, Verdict};
    let known = index.items.get(item.rel.as_os_str().as_bytes());
    let source = decide::Source {
        size: item.meta.size,
        mtime_ns: item.meta.mtime_ns,
    };
    if decide::unchanged_since(known, crate::run::kind_code(&item.kind), source) {
        // Its metadata alone changed (the change time moved): `ferry run` applies it to
        // the file in place.
        let metadata = known.is_some_and(|k| k.ctime_ns != 0 && k.ctime_ns != item.meta.ctime_ns);
        return if metadata && item.kind == ItemKind::File {
            Action::Update
        } else {
            Action::Skip
        };
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
        ino: m.ino(),
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
