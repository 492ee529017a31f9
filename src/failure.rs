//! Failure codes: why an item did not migrate, or what a round found, as data.
//!
//! Every code a run can report is one row of the table below: its stable text (reports,
//! cron wrappers and people grep for it; never rename one), the stage it belongs to,
//! the report's "Result category", and whether it is the state of an item or a finding
//! of the round (counted and shown with examples, never added to an item's count). The
//! reports, the summaries and docs/reports.md (tested against this table) all read it
//! from here; no other module matches on a code's text. The scan's own findings have a
//! table of their own (`pipeline::rules::Code`).
//!
//! No code is for packaging alone: a package that cannot be built cannot be staged
//! either (`stage-failed`), so `ItemSummary`'s "Failed packaging" stays 0 and is kept for
//! Migration Manager's column. A journal that cannot be written stops the run (exit 5)
//! rather than failing items.

use serde::{Deserialize, Serialize};

/// The stage a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Read,
    Package,
    Upload,
    Import,
}

/// Whether a code is the final state of one item, a finding of the round, or a
/// warning of the round (about items that are in place: nothing failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Item,
    Round,
    Warning,
}

macro_rules! failure_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal, $stage:ident, $category:literal, $scope:ident;)*) => {
        /// Why an item did not migrate, or what a round found.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FailureCode { $($(#[$doc])* $variant,)* }

        impl FailureCode {
            pub const ALL: &[FailureCode] = &[$(FailureCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $(FailureCode::$variant => $text,)* }
            }

            pub fn stage(self) -> Stage {
                match self { $(FailureCode::$variant => Stage::$stage,)* }
            }

            /// The item report's "Result category".
            pub fn category(self) -> &'static str {
                match self { $(FailureCode::$variant => $category,)* }
            }

            pub fn scope(self) -> Scope {
                match self { $(FailureCode::$variant => Scope::$scope,)* }
            }

            /// The code of a stored text (journals and reports keep the text).
            pub fn parse(text: &str) -> Option<FailureCode> {
                match text { $($text => Some(FailureCode::$variant),)* _ => None }
            }
        }
    };
}

failure_codes! {
    /// The file could not be opened or read.
    ReadFailed = "read-failed", Read, "Read failure", Item;
    /// The file changed while it was read, every try.
    ChangedDuringRead = "changed-during-read", Read, "Read failure", Item;
    /// The path is no longer the file the scan saw (another type, another inode).
    ChangedType = "changed-type", Read, "Read failure", Item;
    /// This account may not read the file.
    PermissionDenied = "permission-denied", Read, "Read failure", Item;
    /// The file was deleted after the scan.
    Vanished = "vanished", Read, "Read failure", Item;
    /// The package could not be put into staging, or read from it.
    StageFailed = "stage-failed", Upload, "Upload failure", Item;
    /// Staging does not have the package (never staged, or deleted).
    NotStaged = "not-staged", Upload, "Upload failure", Item;
    /// The package failed its tags, or its stream is malformed: staged data was damaged
    /// or tampered with. Nothing of it was written.
    IntegrityFailed = "integrity-failed", Import, "Import failure", Item;
    /// The destination could not be written.
    WriteFailed = "write-failed", Import, "Import failure", Item;
    /// The destination is full (or the account's quota): the run stops, the round stays
    /// open.
    DiskFull = "disk-full", Import, "Import failure", Item;
    /// A folder on the item's way at the destination is a symlink or a file, or a file
    /// in parts is no longer ferry's own: nothing is written through it.
    DestinationRefused = "destination-refused", Import, "Import failure", Item;
    /// The file assembled from its parts does not match the source's hash.
    VerifyFailed = "verify-failed", Import, "Import failure", Item;
    /// The destination has another file here, changed since ferry wrote it: kept.
    DestinationChanged = "destination-changed", Import, "Conflict", Item;
    /// Only the file's metadata changed at the source, and the destination no longer
    /// has the file ferry put there (gone, or another owner's): the next round brings
    /// it whole.
    DestinationGone = "destination-gone", Import, "Import failure", Item;
    /// The destination has a file here and `conflicts: skip-existing` keeps it.
    SkippedExisting = "skipped-existing", Import, "Conflict", Item;
    /// Mirrored deletions held back by `max_delete`.
    DeleteCapped = "delete-capped", Import, "Import failure", Round;
    /// An item gone from the source could not be deleted at the destination.
    DeleteFailed = "delete-failed", Import, "Import failure", Round;
    /// An item gone from the source but changed at the destination since ferry wrote
    /// it: kept.
    DeleteKept = "delete-kept", Import, "Conflict", Round;
    /// A folder is in place, but its mode or time could not be set.
    MetadataFailed = "metadata-failed", Import, "Import failure", Round;
    /// An item is in place, but the destination would not keep one of its extended
    /// attributes (not supported, too large).
    XattrNotKept = "xattr-not-kept", Import, "Import warning", Warning;
    /// An item is in place, but the destination would not keep its ACL: it was left to
    /// its owner alone.
    AclNotKept = "acl-not-kept", Import, "Import warning", Warning;
    /// The round's staged data could not be deleted with its key.
    CleanupFailed = "cleanup-failed", Upload, "Upload failure", Round;
    /// The live item report could not be written.
    ReportFailed = "report-failed", Import, "Import failure", Round;
}

impl Stage {
    /// The stage of a stored code; an unknown one (a newer ferry's) counts at import.
    pub fn of(code: &str) -> Stage {
        FailureCode::parse(code).map_or(Stage::Import, FailureCode::stage)
    }

    /// The "Result category" of a stored code.
    pub fn category_of(code: &str) -> &'static str {
        FailureCode::parse(code).map_or("Import failure", FailureCode::category)
    }
}

/// Whether a stored code is a finding of the round rather than an item's state.
pub fn is_round_level(code: &str) -> bool {
    FailureCode::parse(code).is_some_and(|c| c.scope() != Scope::Item)
}

/// Whether a stored code is a warning: the items are in place, nothing failed.
pub fn is_warning(code: &str) -> bool {
    FailureCode::parse(code).is_some_and(|c| c.scope() == Scope::Warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in FailureCode::ALL {
            assert!(seen.insert(code.as_str()), "{code:?} twice");
            assert_eq!(FailureCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(FailureCode::parse("no-such-code"), None);
        assert_eq!(Stage::of("no-such-code"), Stage::Import);
    }

    /// docs/reports.md names every code, with its scope: a code added here and not
    /// documented fails this test.
    #[test]
    fn the_reports_documentation_names_every_code() {
        let docs = include_str!("../docs/reports.md");
        for code in FailureCode::ALL {
            assert!(
                docs.contains(&format!("`{}`", code.as_str())),
                "docs/reports.md does not name `{}`",
                code.as_str()
            );
        }
    }
}
