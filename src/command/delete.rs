//! `ferry delete`: forgets a task (its session, journals, index, keys, staged data and
//! reports), after asking, holding the plan's lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Error, chosen_tasks};
use crate::exit::Exit;
use crate::plan::Plan;
use crate::state::task_folder;

/// `ferry delete`: asks (unless `--yes`), then forgets the task, holding the plan's lock.
pub fn run(path: &Path, task: &str, yes: bool) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let task = chosen_tasks(&plan, path, Some(task))?[0].name.clone();
    let _lock = crate::state::lock::PlanLock::take(
        crate::state::layout::PlanLayout::of(&plan).folder(),
        &plan.name,
    )?;
    let folder = task_folder(&plan, &task);
    if !yes {
        use std::io::IsTerminal as _;
        if !io::stdin().is_terminal() {
            return Err(Error::Usage(
                "ferry delete asks before it forgets a task; not at a terminal, say `--yes`".into(),
            ));
        }
        eprint!(
            "Forget task `{task}` of plan `{}`: its state, staged data and reports in {}? [y/N] ",
            plan.name,
            folder.display()
        );
        let mut answer = String::new();
        let _ = io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Error::Usage("nothing was deleted".into()));
        }
    }
    match delete(&plan, &task).map_err(Error::Delete)? {
        Some(folder) => eprintln!("deleted task `{task}`: {}", folder.display()),
        None => eprintln!("task `{task}` has no state to delete"),
    }
    Ok(Exit::Success)
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
    let retries = plan.tasks.iter().find(|t| t.name == task).map_or(
        crate::plan::Retries {
            attempts: 1,
            backoff: crate::plan::Duration(std::time::Duration::ZERO),
        },
        |t| t.settings.retries,
    );
    let staging =
        crate::staging::open(&plan.staging, retries).map_err(|source| DeleteError::Io {
            path: plan.staging.path.clone(),
            source,
        })?;
    // The task's own keys, and each shard's (`--shard K/N`), which live inside it.
    let mut key_folders = vec![crate::state::layout::TaskLayout::at(&folder).keys()];
    key_folders.extend(
        crate::state::shards::states(plan, task)
            .into_iter()
            .filter(|s| s.shard.is_some())
            .map(|s| s.layout.keys()),
    );
    for keys in key_folders.iter().filter_map(|f| fs::read_dir(f).ok()) {
        for key in keys.flatten() {
            crate::run::discard_staged(staging.as_ref(), &key.path()).map_err(|e| {
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
