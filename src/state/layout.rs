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
//! ```

use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// A plan's state folder.
#[derive(Clone, Debug)]
pub struct PlanLayout {
    folder: PathBuf,
}

impl PlanLayout {
    pub fn of(plan: &Plan) -> PlanLayout {
        PlanLayout {
            folder: plan.working_folder.join(&plan.name),
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
        TaskLayout {
            folder: self.folder.join(task),
        }
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
}
