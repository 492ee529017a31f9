//! Shards: one plan run as N independent instances (the array tasks of Slurm or the
//! indexes of a Kubernetes Indexed Job), each doing a fixed share of every task.
//!
//! Each task's source is cut into **units**: the path of an item cut after its first
//! [`UNIT_DEPTH`] components. A file near the top is a unit of its own; a folder at that
//! depth is a unit with everything below it. A unit belongs to the shard its keyed hash
//! names, so the assignment depends on nothing but the unit's own name: a new folder
//! never moves an old one, and every shard, on any machine, agrees without a pre-scan.
//! Folders above the units (the *spine*) are walked by every shard, so that collisions
//! between siblings are found whichever shard their names fall to; each spine folder is
//! an item of one shard only, by the same hash.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path};

/// How deep a unit is cut: `dept/project` is one unit with all it holds.
pub const UNIT_DEPTH: usize = 2;

/// The assignment's rule, as checkpoints record it: a shard of another rule (a later
/// ferry that cuts units differently) must not resume a round of this one.
pub const SCHEME: &str = "blake3-units-depth-2";

/// Shard `index` of `count` (0-based, as `SLURM_ARRAY_TASK_ID` and
/// `JOB_COMPLETION_INDEX` are).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most shards a run may be split into.
pub const MAX_SHARDS: u32 = 4096;

impl Shard {
    /// Reads `K/N`, or `env:VAR/N` with `K` from the variable `VAR` (looked up with
    /// `env`), and checks `0 ≤ K < N`.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let (k, n) = text.rsplit_once('/').ok_or_else(|| {
            format!("`{text}` is not a shard: expected `K/N` (0-based K, as `2/4`) or `env:VAR/N` (as `env:SLURM_ARRAY_TASK_ID/4`)")
        })?;
        let whole = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let count: u32 = whole(n).then(|| n.parse().ok()).flatten().ok_or_else(|| {
            format!("`{n}` in `{text}` is not a shard count: expected a whole number from 1 to {MAX_SHARDS}")
        })?;
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(format!(
                "the shard count in `{text}` is {count}: expected a whole number from 1 to {MAX_SHARDS}"
            ));
        }
        let index_text = match k.strip_prefix("env:") {
            Some(var) => env(var).ok_or_else(|| {
                format!(
                    "`{text}` takes the shard's index from the variable {var}, which is not set"
                )
            })?,
            None => k.to_string(),
        };
        let index: u32 = whole(&index_text)
            .then(|| index_text.parse().ok())
            .flatten()
            .ok_or_else(|| {
                format!("the shard index `{index_text}` (from `{text}`) is not a whole number")
            })?;
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: the index counts from 0, so it must be below {count}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// `K-of-N`, the name of the shard's state folders.
    pub fn label(self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// The shard a unit (or spine folder) belongs to: a keyed hash of its path.
    pub fn of_unit(unit: &Path, count: u32) -> u32 {
        let hash = blake3::Hasher::new_derive_key("ferry shard unit")
            .update(unit.as_os_str().as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        (u64::from_le_bytes(first) % u64::from(count)) as u32
    }

    /// Whether this shard lists the item at `rel` (below the source root). Below the
    /// units' depth the answer is the unit's: the walk never enters a unit of another
    /// shard, so an item met there belongs to this one.
    pub fn owns(self, rel: &Path) -> bool {
        let depth = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count();
        depth > UNIT_DEPTH || Shard::of_unit(rel, self.count) == self.index
    }

    /// The shard of any item below the source root: that of its unit (its path cut
    /// after [`UNIT_DEPTH`] components).
    pub fn of_path(rel: &Path, count: u32) -> u32 {
        let unit: std::path::PathBuf = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .take(UNIT_DEPTH)
            .collect();
        Shard::of_unit(&unit, count)
    }

    /// Whether `rel` is a folder above the units (every shard walks it).
    pub fn is_spine(rel: &Path) -> bool {
        rel.components().count() < UNIT_DEPTH
    }

    /// Whether the walk goes into the folder at `rel`: spine folders always (every
    /// shard sees their whole listing), others only when this shard owns them.
    pub fn enters(self, rel: &Path) -> bool {
        rel.components().count() < UNIT_DEPTH || self.owns(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TASK_ID").then(|| "3".to_string())
    }

    #[test]
    fn parses_both_forms_and_checks_the_range() {
        assert_eq!(Shard::parse("2/4", &env), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(
            Shard::parse("env:TASK_ID/4", &env),
            Ok(Shard { index: 3, count: 4 })
        );
        for bad in [
            "4/4",
            "-1/4",
            "1",
            "1/0",
            "a/4",
            "1/x",
            "env:NOPE/4",
            "env:TASK_ID/3",
        ] {
            assert!(Shard::parse(bad, &env).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::parse("4/4", &env).unwrap_err(),
            "shard 4 of 4 does not exist: the index counts from 0, so it must be below 4"
        );
    }

    #[test]
    fn every_item_has_exactly_one_shard() {
        let paths = ["a", "a/b", "a/c", "a/b/c", "a/b/c/d", "z", "z/y/x"];
        for count in 1..6 {
            for path in paths {
                let owners = (0..count)
                    .filter(|&index| Shard { index, count }.owns(Path::new(path)))
                    .count();
                if Path::new(path).components().count() <= UNIT_DEPTH {
                    assert_eq!(owners, 1, "{path} of {count}");
                }
            }
        }
    }

    #[test]
    fn a_path_belongs_to_its_unit_s_shard() {
        for count in 1..6 {
            let unit = Shard::of_unit(Path::new("a/b"), count);
            assert_eq!(Shard::of_path(Path::new("a/b/c/d"), count), unit);
            assert_eq!(Shard::of_path(Path::new("a/b"), count), unit);
            assert_eq!(
                Shard::of_path(Path::new("a"), count),
                Shard::of_unit(Path::new("a"), count)
            );
        }
    }

    #[test]
    fn a_new_unit_moves_no_old_one() {
        let before: Vec<u32> = (0..100)
            .map(|i| Shard::of_unit(Path::new(&format!("d/{i}")), 4))
            .collect();
        // Another unit changes nothing about these: the hash is of the unit alone.
        let _ = Shard::of_unit(Path::new("d/new"), 4);
        let after: Vec<u32> = (0..100)
            .map(|i| Shard::of_unit(Path::new(&format!("d/{i}")), 4))
            .collect();
        assert_eq!(before, after);
        // And the spread is even enough: every shard gets some of 100 units.
        for k in 0..4 {
            assert!(after.iter().filter(|&&s| s == k).count() > 10);
        }
    }
}
