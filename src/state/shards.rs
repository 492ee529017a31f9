//! The shards' states of a task, side by side: which exist, and which of them stand in
//! the way of a run split another way.

use std::fs;

use super::Session;
use super::layout::{PlanLayout, TaskLayout};
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
