//! What happens to one item, decided once: whether it moves at all this round, and what
//! the destination's entry at its name means. `ferry run` (the scan and the importer)
//! and `ferry plan` call these same functions, so the dry run cannot disagree with the
//! run. Pure: the callers bring what they found on disk.

use crate::plan::raw::{Conflicts, Verify};
use crate::state::index::Indexed;

/// What the destination has at an item's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// A regular file (a symlink, folder or special file is never the source's file, nor
    /// ferry's own).
    pub regular: bool,
    pub size: u64,
    pub mtime_ns: i64,
    /// Its inode: the destination item's ID in the reports.
    pub ino: u64,
}

/// What the source has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub size: u64,
    pub mtime_ns: i128,
}

/// What to do with a file whose source is new or changed since the last round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is there: write it.
    Create,
    /// The same size and time: leave it.
    Unchanged,
    /// The same size and time, and `verify: all`: compare the content once it is read.
    CompareContent,
    /// An earlier version of the source's, as ferry put it there (or the plan says
    /// overwrite): replace it.
    Replace,
    /// Something else is there, which the plan keeps: report it with this code.
    Keep(KeepReason),
}

/// Why a destination entry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// Not ferry's, and `conflicts: keep-destination-changes`.
    Changed(Why),
    /// `conflicts: skip-existing`.
    SkipExisting,
}

/// What made a destination entry differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    NotAFile,
    SizeOrTime,
    Content,
    Unreadable,
}

impl Why {
    pub fn text(self) -> &'static str {
        match self {
            Why::NotAFile => "a symlink, folder or special file, not a regular file",
            Why::SizeOrTime => "another size or time",
            Why::Content => "the same size and time, but other content",
            Why::Unreadable => "it cannot be read to compare",
        }
    }
}

/// Whether an item is unchanged since the round that put it at the destination: it
/// does not move this round (the destination is not looked at; a person's edits there
/// are found when the source changes).
pub fn unchanged_since(known: Option<&Indexed>, kind: u8, source: Source) -> bool {
    known.is_some_and(|known| {
        // A folder is there or not: its size and time change with its contents.
        known.kind == kind
            && (known.kind == crate::package::KIND_FOLDER
                || (known.size == source.size && known.mtime_ns == source.mtime_ns))
    })
}

/// Whether a destination time is the source's, within the destination's precision: the
/// same, or the source's rounded (down or up) to a microsecond, millisecond, second or
/// two seconds (FAT), as filesystems and network shares with coarser clocks keep it.
pub fn same_time(dest_ns: i128, source_ns: i128) -> bool {
    dest_ns == source_ns
        || [1_000, 1_000_000, 1_000_000_000, 2_000_000_000]
            .iter()
            .any(|&unit: &i128| {
                let down = source_ns - source_ns.rem_euclid(unit);
                dest_ns == down || dest_ns == down + unit
            })
}

/// Whether the destination's entry is the source's file by size and time.
pub fn same(found: Found, source: Source) -> bool {
    found.regular
        && found.size == source.size
        && same_time(i128::from(found.mtime_ns), source.mtime_ns)
}

/// What the settings say about an entry that is not the source's file.
pub fn differs(found: Found, known: Option<&Indexed>, conflicts: Conflicts, why: Why) -> Verdict {
    // ferry's own: its size and time are still the ones the index recorded.
    let ours = found.regular
        && known.is_some_and(|k| k.size == found.size && k.dest_mtime_ns == found.mtime_ns);
    if ours {
        return Verdict::Replace;
    }
    let why = if found.regular { why } else { Why::NotAFile };
    match conflicts {
        Conflicts::Overwrite => Verdict::Replace,
        Conflicts::SkipExisting => Verdict::Keep(KeepReason::SkipExisting),
        Conflicts::KeepDestinationChanges => Verdict::Keep(KeepReason::Changed(why)),
    }
}

/// What to do with a new or changed file, given what the destination has at its name.
pub fn file(
    found: Option<Found>,
    source: Source,
    known: Option<&Indexed>,
    conflicts: Conflicts,
    verify: Verify,
) -> Verdict {
    match found {
        None => Verdict::Create,
        Some(f) if same(f, source) && verify == Verify::All => Verdict::CompareContent,
        Some(f) if same(f, source) => Verdict::Unchanged,
        Some(f) => differs(f, known, conflicts, Why::SizeOrTime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i128 = 1_700_000_000_123_456_789;

    fn found(regular: bool, size: u64, mtime_ns: i128) -> Found {
        Found {
            regular,
            size,
            mtime_ns: mtime_ns as i64,
            ino: 1,
        }
    }

    fn indexed(size: u64, dest_mtime_ns: i64) -> Indexed {
        Indexed {
            kind: crate::package::KIND_FILE,
            size,
            mtime_ns: 0,
            hash: [0; 32],
            dest_mtime_ns,
            ctime_ns: 0,
        }
    }

    #[test]
    fn times_match_within_the_destinations_precision() {
        assert!(same_time(T, T));
        assert!(same_time(1_700_000_000_123_456_000, T));
        assert!(same_time(1_700_000_000_000_000_000, T));
        assert!(same_time(1_700_000_002_000_000_000, T));
        assert!(!same_time(T + 1, T));
        assert!(!same_time(1_700_000_003_000_000_000, T));
    }

    #[test]
    fn every_verdict() {
        let src = Source {
            size: 10,
            mtime_ns: T,
        };
        let keep = Conflicts::KeepDestinationChanges;
        let t = Verify::Transferred;
        assert_eq!(file(None, src, None, keep, t), Verdict::Create);
        assert_eq!(
            file(Some(found(true, 10, T)), src, None, keep, t),
            Verdict::Unchanged
        );
        assert_eq!(
            file(Some(found(true, 10, T)), src, None, keep, Verify::All),
            Verdict::CompareContent
        );
        // A symlink with the file's size and time is not the file (finding 8).
        assert_eq!(
            file(Some(found(false, 10, T)), src, None, keep, t),
            Verdict::Keep(KeepReason::Changed(Why::NotAFile))
        );
        // An earlier version ferry put there is replaced; someone else's is kept.
        let ours = indexed(5, 77);
        assert_eq!(
            file(Some(found(true, 5, 77)), src, Some(&ours), keep, t),
            Verdict::Replace
        );
        assert_eq!(
            file(Some(found(true, 6, 77)), src, Some(&ours), keep, t),
            Verdict::Keep(KeepReason::Changed(Why::SizeOrTime))
        );
        assert_eq!(
            file(Some(found(false, 5, 77)), src, Some(&ours), keep, t),
            Verdict::Keep(KeepReason::Changed(Why::NotAFile))
        );
        assert_eq!(
            file(Some(found(true, 6, 77)), src, None, Conflicts::Overwrite, t),
            Verdict::Replace
        );
        assert_eq!(
            file(
                Some(found(true, 6, 77)),
                src,
                None,
                Conflicts::SkipExisting,
                t
            ),
            Verdict::Keep(KeepReason::SkipExisting)
        );
    }

    #[test]
    fn unchanged_sources_do_not_move() {
        let mut known = indexed(10, 0);
        known.mtime_ns = T;
        let file = crate::package::KIND_FILE;
        let src = Source {
            size: 10,
            mtime_ns: T,
        };
        assert!(unchanged_since(Some(&known), file, src));
        assert!(!unchanged_since(
            Some(&known),
            file,
            Source { size: 11, ..src }
        ));
        assert!(!unchanged_since(None, file, src));
    }
}
