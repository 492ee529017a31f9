//! What a round counted, as one type: a worker's share, a run, a whole round, and (for
//! shards) several rounds merged. The session's progress, its last result and the
//! round's reports are all made from it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use super::journal::{ItemRecord, ItemResult};

/// Failed items (and findings of the round) by code: how many, and up to
/// [`EXAMPLES`] examples ("path: message").
pub type Failures = BTreeMap<String, (u64, Vec<String>)>;

/// Examples kept per failure code.
pub const EXAMPLES: usize = 3;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Items put in place, and their bytes.
    pub imported: u64,
    pub bytes: u64,
    /// Items already at the destination.
    pub unchanged: u64,
    /// Packages staged (and not imported by the same run).
    pub staged: u64,
    /// Packages finished.
    pub packages: u64,
    /// Items deleted at the destination (`deletions: mirror`).
    pub deleted: u64,
    pub failures: Failures,
}

impl Counters {
    /// Failed items; findings of the round (a folder's mode that could not be set) are
    /// listed with the failures but are not items.
    pub fn failed(&self) -> u64 {
        self.failures
            .iter()
            .filter(|(code, _)| !crate::failure::is_round_level(code))
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// Adds `other` to these counters.
    pub fn merge(&mut self, other: Counters) {
        self.imported += other.imported;
        self.bytes += other.bytes;
        self.unchanged += other.unchanged;
        self.staged += other.staged;
        self.packages += other.packages;
        self.deleted += other.deleted;
        for (code, (n, examples)) in other.failures {
            let entry = self.failures.entry(code).or_default();
            entry.0 += n;
            for e in examples {
                if entry.1.len() < EXAMPLES {
                    entry.1.push(e);
                }
            }
        }
    }

    /// Counts the items of journal records of this run; each failure is logged.
    pub fn records(&mut self, records: &[ItemRecord]) {
        self.count(records, true);
    }

    /// Counts the items of journal records an earlier run of the round wrote (their
    /// failures were logged then).
    pub fn replayed(&mut self, records: &[ItemRecord]) {
        self.count(records, false);
    }

    fn count(&mut self, records: &[ItemRecord], new: bool) {
        for record in records {
            match &record.result {
                ItemResult::Done { written: true, .. } => {
                    self.imported += 1;
                    if record.kind == crate::package::KIND_FILE {
                        self.bytes += record.size;
                    }
                }
                ItemResult::Done { written: false, .. } => self.unchanged += 1,
                ItemResult::Failed { code, message } => {
                    let path = Path::new(OsStr::from_bytes(&record.path));
                    if new {
                        self.fail(path, code, message);
                    } else {
                        self.count_failure(path, code, message);
                    }
                }
            }
        }
    }

    /// One failure of `code` at `path`.
    pub fn fail(&mut self, path: &Path, code: &str, message: &str) {
        let item = crate::shown::escape_path(path);
        tracing::warn!(event = "failure", item = %item, code, message);
        self.count_failure(path, code, message);
    }

    fn count_failure(&mut self, path: &Path, code: &str, message: &str) {
        let entry = self.failures.entry(code.to_string()).or_default();
        entry.0 += 1;
        if entry.1.len() < EXAMPLES {
            entry
                .1
                .push(format!("{}: {message}", crate::shown::escape_path(path)));
        }
    }

    /// Items done (imported or unchanged), bytes and failed items: what progress shows.
    pub fn mark(&self) -> (u64, u64, u64) {
        (self.imported + self.unchanged, self.bytes, self.failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_everything_and_keeps_a_few_examples() {
        let mut a = Counters {
            imported: 2,
            bytes: 10,
            unchanged: 1,
            packages: 1,
            ..Counters::default()
        };
        for i in 0..2 {
            a.fail(Path::new(&format!("a{i}")), "read-failed", "x");
        }
        let mut b = Counters {
            imported: 1,
            bytes: 5,
            staged: 3,
            deleted: 4,
            ..Counters::default()
        };
        for i in 0..2 {
            b.fail(Path::new(&format!("b{i}")), "read-failed", "y");
        }
        b.fail(Path::new("c"), "metadata-failed", "z");
        a.merge(b);
        assert_eq!(
            (
                a.imported,
                a.bytes,
                a.unchanged,
                a.staged,
                a.packages,
                a.deleted
            ),
            (3, 15, 1, 3, 1, 4)
        );
        assert_eq!(a.failures["read-failed"].0, 4);
        assert_eq!(a.failures["read-failed"].1.len(), EXAMPLES);
        // A finding of the round is listed, not counted as a failed item.
        assert_eq!(a.failed(), 4);
        assert_eq!(a.mark(), (4, 15, 4));
    }
}
