//! Where ferry keeps each piece of state: the one place that knows every path under
//! the working folder. Nothing else joins state file names.
//!
//! ```text
//! <working_folder>/<plan>/                 PlanLayout: the lock, the plan's summaries
//!   lock
//!   <task>/                                TaskLayout
//!     session.json  index  keys/R<n>.key
//!     rounds/R<n>/                         RoundLayout: items, scan.json, journal,
//!                                          staged.json (a staged round's hand-over)
//!     reports/R<n>/                        the round's reports
//!     shard-<K>-of-<N>/                     a shard's own task state, laid out as a
//!                                          task's (session, index, rounds, reports)
//!   shard-<K>-of-<N>/                       a shard's lock and summaries
//! ```
//!
//! A run with `--shard K/N` sees only its shard's folders; `ferry finish` reads them
//! all and writes the merged reports where an unsharded run writes its own.

use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// A plan's state folder.
#[derive(Clone, Debug)]
pub struct PlanLayout {
    /// The shard's own folder when the plan runs as a shard, else the plan's.
    folder: PathBuf,
    /// `shard-<K>-of-<N>`, for a shard.
    shard: Option<String>,
}

impl PlanLayout {
    pub fn of(plan: &Plan) -> PlanLayout {
        let root = plan.working_folder.join(&plan.name);
        match plan.shard {
            Some(shard) => PlanLayout::sharded(&root, shard),
            None => PlanLayout {
                folder: root,
                shard: None,
            },
        }
    }

    /// The layout of shard `shard` of the plan whose state is in `root`.
    pub fn sharded(root: &Path, shard: crate::plan::shard::Shard) -> PlanLayout {
        let name = format!("shard-{}", shard.label());
        PlanLayout {
            folder: root.join(&name),
            shard: Some(name),
        }
    }

    /// Six hex digits of a hash of this plan's state folder, in the names of the
    /// containers it makes: `ferry gc` looks for lost containers among its own only, not
    /// among those of another plan, or of the same plan's state on another machine,
    /// that share the staging account.
    pub fn owner(&self) -> String {
        use std::os::unix::ffi::OsStrExt as _;
        let hash = blake3::Hasher::new_derive_key("ferry staging owner")
            .update(self.folder.as_os_str().as_bytes())
            .finalize();
        hash.as_bytes()[..3]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Where the plan's lock and summaries live.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn task(&self, task: &str) -> TaskLayout {
        let folder = match &self.shard {
            // `<plan>/shard-K-of-N` → `<plan>/<task>/shard-K-of-N`.
            Some(name) => self
                .folder
                .parent()
                .unwrap_or(&self.folder)
                .join(task)
                .join(name),
            None => self.folder.join(task),
        };
        TaskLayout { folder }
    }
}

/// A task's state folder.
#[derive(Clone, Debug)]
pub struct TaskLayout {
    folder: PathBuf,
}

impl TaskLayout {
    pub fn of(plan: &Plan, task: &str) -> TaskLayout {
        PlanLayout::of(plan).task(task)
    }

    /// A task folder given as a path (`Session::save` and friends take one).
    pub fn at(folder: &Path) -> TaskLayout {
        TaskLayout {
            folder: folder.to_path_buf(),
        }
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn session(&self) -> PathBuf {
        self.folder.join("session.json")
    }

    /// The incremental index.
    pub fn index(&self) -> PathBuf {
        self.folder.join("index")
    }

    pub fn keys(&self) -> PathBuf {
        self.folder.join("keys")
    }

    /// The key file of round `round`.
    pub fn key(&self, round: u32) -> PathBuf {
        self.keys().join(format!("R{round}.key"))
    }

    pub fn round(&self, round: u32) -> RoundLayout {
        RoundLayout {
            folder: self.folder.join("rounds").join(format!("R{round}")),
        }
    }

    /// The reports of all rounds.
    pub fn all_reports(&self) -> PathBuf {
        self.folder.join("reports")
    }

    /// The reports of round `round`.
    pub fn reports(&self, round: u32) -> PathBuf {
        self.all_reports().join(format!("R{round}"))
    }
}

/// A round's checkpoints.
#[derive(Clone, Debug)]
pub struct RoundLayout {
    folder: PathBuf,
}

impl RoundLayout {
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The item list the scan wrote: it fixes the round's package numbers.
    pub fn items(&self) -> PathBuf {
        self.folder.join("items")
    }

    /// The scan's checkpoint.
    pub fn scan(&self) -> PathBuf {
        self.folder.join("scan.json")
    }

    /// The checkpoint journal.
    pub fn journal(&self) -> PathBuf {
        self.folder.join("journal")
    }

    /// A staged round's hand-over note.
    pub fn staged(&self) -> PathBuf {
        self.folder.join("staged.json")
    }

    /// Present while a ticket's round is being taken over, until the session names it:
    /// a round folder with it is the remains of a take-over that did not finish.
    pub fn taking_over(&self) -> PathBuf {
        self.folder.join("taking-over")
    }

    /// Where a damaged journal is set aside, at `when` (Unix seconds).
    pub fn journal_set_aside(&self, when: i64) -> PathBuf {
        self.folder.join(format!("journal.damaged-{when}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_a_task() {
        let task = TaskLayout::at(Path::new("/w/p/t"));
        assert_eq!(task.session(), Path::new("/w/p/t/session.json"));
        assert_eq!(task.index(), Path::new("/w/p/t/index"));
        assert_eq!(task.key(3), Path::new("/w/p/t/keys/R3.key"));
        assert_eq!(task.reports(3), Path::new("/w/p/t/reports/R3"));
        let round = task.round(3);
        assert_eq!(round.items(), Path::new("/w/p/t/rounds/R3/items"));
        assert_eq!(round.scan(), Path::new("/w/p/t/rounds/R3/scan.json"));
        assert_eq!(round.journal(), Path::new("/w/p/t/rounds/R3/journal"));
        assert_eq!(round.staged(), Path::new("/w/p/t/rounds/R3/staged.json"));
    }

    #[test]
    fn a_shard_has_its_own_folders() {
        let shard = crate::plan::shard::Shard { index: 1, count: 4 };
        let plan = PlanLayout::sharded(Path::new("/w/p"), shard);
        assert_eq!(plan.folder(), Path::new("/w/p/shard-1-of-4"));
        let task = plan.task("t");
        assert_eq!(task.folder(), Path::new("/w/p/t/shard-1-of-4"));
        assert_eq!(task.index(), Path::new("/w/p/t/shard-1-of-4/index"));
        assert_ne!(
            plan.owner(),
            PlanLayout::sharded(
                Path::new("/w/p"),
                crate::plan::shard::Shard { index: 2, count: 4 }
            )
            .owner()
        );
    }
}
