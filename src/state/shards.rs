//! The shards' states of a task, side by side: which exist, and which of them stand in
//! the way of a run split another way.

use std::fs::{self, File, TryLockError};
use std::path::Path;

use super::Session;
use super::layout::{PlanLayout, TaskLayout};
use super::lock::LockError;
use crate::plan::Plan;
use crate::plan::shard::Shard;

/// One state of a task: the unsharded one, or a shard's.
#[derive(Debug)]
pub struct TaskState {
    pub shard: Option<Shard>,
    pub layout: TaskLayout,
}

impl TaskState {
    /// How a person names it: `unsharded` or `shard 2 of 4`.
    pub fn describe(&self) -> String {
        match self.shard {
            None => "the unsharded run".to_string(),
            Some(s) => format!("shard {} of {}", s.index, s.count),
        }
    }
}

/// `shard-K-of-N` as a shard.
pub fn parse_label(name: &str) -> Option<Shard> {
    let (k, n) = name.strip_prefix("shard-")?.split_once("-of-")?;
    let shard = Shard {
        index: k.parse().ok()?,
        count: n.parse().ok()?,
    };
    (shard.index < shard.count).then_some(shard)
}

/// Every state `task` has in the plan's working folder: the unsharded one (when it has
/// a session) and each shard's.
pub fn states(plan: &Plan, task: &str) -> Vec<TaskState> {
    let root = plan.working_folder.join(&plan.name);
    let unsharded = TaskLayout::at(&root.join(task));
    let mut found = Vec::new();
    if unsharded.session().exists() {
        found.push(TaskState {
            shard: None,
            layout: unsharded.clone(),
        });
    }
    if let Ok(entries) = fs::read_dir(unsharded.folder()) {
        let mut shards: Vec<Shard> = entries
            .flatten()
            .filter_map(|e| parse_label(e.file_name().to_str()?))
            .collect();
        shards.sort_by_key(|s| (s.count, s.index));
        for shard in shards {
            found.push(TaskState {
                shard: Some(shard),
                layout: PlanLayout::sharded(&root, shard).task(task),
            });
        }
    }
    found
}

/// The states of `task` split another way than this run's (`plan.shard`) whose round
/// is unfinished: running now would start a second round beside theirs, over the same
/// destination, with another assignment. Each is described for the refusal.
pub fn unfinished_elsewhere(plan: &Plan, task: &str) -> Vec<String> {
    let count = plan.shard.map(|s| s.count);
    states(plan, task)
        .into_iter()
        .filter(|state| state.shard.map(|s| s.count) != count)
        .filter_map(|state| {
            let session = Session::load(state.layout.folder(), task).ok()??;
            session.unfinished().then(|| {
                format!(
                    "{} is in the middle of round {} ({})",
                    state.describe(),
                    session.round,
                    session.status.as_str()
                )
            })
        })
        .collect()
}

/// The name of the lock a run of a split holds: `split-4.lock`, `split-unsharded.lock`.
fn split_lock_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("split-{}.lock", s.count),
        None => "split-unsharded.lock".to_string(),
    }
}

/// Held for as long as a run of a task goes on: the runs of one split (the shards of
/// `N`, or the unsharded run) share it, and a run of another split is refused while
/// any holds it.
#[derive(Debug)]
pub struct SplitGuard {
    _held: File,
}

/// Takes the task's split lock for this run's split, or says which other split is
/// running now. The check and the taking happen under one brief mutex
/// (`split.lock`), so that two splits started at the same moment cannot both go on.
pub fn hold_split(plan: &Plan, task: &str) -> Result<SplitGuard, LockError> {
    let folder = plan.working_folder.join(&plan.name).join(task);
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    fs::create_dir_all(&folder).map_err(fail(&folder))?;
    let open = |path: &Path| {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(fail(path))
    };
    let mutex_path = folder.join("split.lock");
    let mutex = open(&mutex_path)?;
    mutex.lock().map_err(fail(&mutex_path))?;
    let own = split_lock_name(plan.shard);
    for entry in fs::read_dir(&folder).map_err(fail(&folder))?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("split-") || !name.ends_with(".lock") || name == own {
            continue;
        }
        let other = open(&entry.path())?;
        match other.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let split = name.trim_start_matches("split-").trim_end_matches(".lock");
                return Err(LockError::Held {
                    plan: plan.name.clone(),
                    holder: match split {
                        "unsharded" => format!("an unsharded run of task `{task}`"),
                        n => format!(
                            "the shards of {n} of task `{task}`, a split other than this run's"
                        ),
                    },
                    path: entry.path(),
                });
            }
            Err(TryLockError::Error(_)) => {}
        }
    }
    let path = folder.join(&own);
    let held = open(&path)?;
    held.lock_shared().map_err(fail(&path))?;
    Ok(SplitGuard { _held: held })
}

/// When a state's session was last written (nanoseconds; the session's own
/// `updated_at` has whole seconds only), `None` when it has none.
fn written_at(state: &TaskState) -> Option<std::time::SystemTime> {
    fs::metadata(state.layout.session())
        .and_then(|m| m.modified())
        .ok()
}

/// The states of the split of `task` that ran last (by their sessions' times), other
/// than `except`'s: the previous split, whose index a new one starts from.
fn latest_other_split(plan: &Plan, task: &str, except: Option<u32>) -> Vec<TaskState> {
    type Split = (Option<std::time::SystemTime>, Vec<TaskState>);
    let mut splits: std::collections::BTreeMap<Option<u32>, Split> =
        std::collections::BTreeMap::new();
    for state in states(plan, task) {
        let count = state.shard.map(|s| s.count);
        if count == except {
            continue;
        }
        let updated = written_at(&state);
        let entry = splits.entry(count).or_default();
        entry.0 = entry.0.max(updated);
        entry.1.push(state);
    }
    splits
        .into_values()
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, states)| states)
        .unwrap_or_default()
}

/// Starts a state that has no index yet from the index of the split that ran before
/// (another `N`, or unsharded), keeping the items of its own units: changing `N`
/// between rounds keeps the rounds incremental, and deletions mirrored. Returns the
/// number of items taken over, or `None` when there was nothing to take.
pub fn seed_index(plan: &Plan, task: &str, into: &TaskLayout) -> Result<Option<u64>, String> {
    if into.index().exists() || into.session().exists() {
        return Ok(None);
    }
    let previous = latest_other_split(plan, task, plan.shard.map(|s| s.count));
    if previous.is_empty() {
        return Ok(None);
    }
    let mut index = super::index::Index::default();
    for state in &previous {
        let path = state.layout.index();
        if !path.exists() {
            continue;
        }
        let other = super::index::Index::load(&path).map_err(|e| e.to_string())?;
        for (key, item) in other.items {
            let mine = plan.shard.is_none_or(|shard| {
                use std::os::unix::ffi::OsStrExt as _;
                let rel = Path::new(std::ffi::OsStr::from_bytes(&key));
                Shard::of_path(rel, shard.count) == shard.index
            });
            if mine {
                index.items.insert(key, item);
            }
        }
    }
    let taken = index.items.len() as u64;
    fs::create_dir_all(into.folder()).map_err(|e| e.to_string())?;
    index.save(&into.index()).map_err(|e| e.to_string())?;
    Ok(Some(taken))
}

/// Splits of `task` other than `count` whose state is newer than the newest of
/// `count`'s: finishing `count` would publish an old picture over a newer one.
pub fn newer_splits(plan: &Plan, task: &str, count: u32) -> Vec<String> {
    let all = states(plan, task);
    let ours = all
        .iter()
        .filter(|s| s.shard.map(|x| x.count) == Some(count))
        .filter_map(written_at)
        .max();
    let mut others: Vec<String> = all
        .iter()
        .filter(|s| s.shard.map(|x| x.count) != Some(count))
        .filter(|s| written_at(s).is_some_and(|t| Some(t) > ours))
        .map(|s| match s.shard {
            Some(x) => format!("{} shards", x.count),
            None => "an unsharded run".to_string(),
        })
        .collect();
    others.dedup();
    others
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let shard = Shard { index: 3, count: 8 };
        assert_eq!(
            parse_label(&format!("shard-{}", shard.label())),
            Some(shard)
        );
        assert_eq!(parse_label("shard-8-of-8"), None);
        assert_eq!(parse_label("rounds"), None);
    }
}
