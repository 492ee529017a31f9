//! Effective settings: a task's `settings` laid over the plan's `defaults`, laid over
//! the built-in defaults.
//!
//! Overlaying is done on the JSON values, key by key and recursively for mappings, so
//! that a task may change one filter and keep the rest, and so that an explicit `null`
//! (no date limit, say) overrides a default.

use serde::Serialize;
use serde_json::Value;

use super::raw::{
    CaseCollisions, Conflicts, Deletions, Hidden, InvalidNames, Mode, RawSettings, RuleSet,
    Symlinks, Verify,
};
use super::units::{Date, Duration, Size};

/// What a task does and how, with every default applied.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub mode: Mode,
    pub rules: RuleSet,
    pub filters: Filters,
    pub invalid_names: InvalidNames,
    pub case_collisions: CaseCollisions,
    pub conflicts: Conflicts,
    pub deletions: Deletions,
    pub max_delete: MaxDelete,
    pub symlinks: Symlinks,
    pub preserve: Preserve,
    pub package: PackageSettings,
    pub verify: Verify,
    pub retries: Retries,
}

#[derive(Clone, Debug, Serialize)]
pub struct Filters {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub hidden: Hidden,
    /// Lower case, without dots.
    pub extensions_skip: Vec<String>,
    pub modified_after: Option<Date>,
    pub created_after: Option<Date>,
    pub min_size: Option<Size>,
    pub max_size: Option<Size>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Preserve {
    pub mtime: bool,
    pub mode: bool,
    pub owner: bool,
    /// Setuid and setgid bits are kept (validated: only with `owner`). Left out of the
    /// task's hash while false, so plans that never say it keep their hash.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub setuid: bool,
    /// Holes, hard links, `user.*` attributes and ACLs travel (true by default: left out
    /// of the task's hash while true, so plans from before they existed keep theirs);
    /// `security.*` and `trusted.*` attributes only when asked (out of the hash while
    /// false).
    #[serde(skip_serializing_if = "is_true")]
    pub sparse: bool,
    #[serde(skip_serializing_if = "is_true")]
    pub hard_links: bool,
    #[serde(skip_serializing_if = "is_true")]
    pub xattrs: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub security_xattrs: bool,
    #[serde(skip_serializing_if = "is_true")]
    pub acls: bool,
    /// The destination is bound for SharePoint (`rules: sharepoint`), which keeps no
    /// attributes, ACLs or links: none travel.
    #[serde(skip)]
    pub sharepoint: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for Preserve {
    /// The built-in defaults, for a destination that is a file share (`rules: posix`).
    fn default() -> Preserve {
        Preserve {
            mtime: true,
            mode: true,
            owner: false,
            setuid: false,
            sparse: true,
            hard_links: true,
            xattrs: true,
            security_xattrs: false,
            acls: true,
            sharepoint: false,
        }
    }
}

impl Preserve {
    /// The mode bits an item gets at the destination: the setuid and setgid bits only
    /// when the plan keeps them, with the owner (reliability review, finding 1).
    pub fn mode_bits(&self, mode: u32) -> u32 {
        if self.keeps_setuid() {
            mode & 0o7777
        } else {
            mode & 0o1777
        }
    }

    pub fn keeps_setuid(&self) -> bool {
        self.setuid && self.owner && self.mode
    }

    /// Whether the names of one file become one file with those names.
    pub fn links(&self) -> bool {
        self.hard_links && !self.sharepoint
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct PackageSettings {
    pub max_size: Size,
    pub max_files: u32,
    pub compression_level: u8,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct MaxDelete {
    pub items: u64,
    pub percent: u8,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Retries {
    pub attempts: u32,
    pub backoff: Duration,
}

pub(crate) const DEFAULT_PACKAGE_SIZE: Size = Size(64 << 20);
pub(crate) const MIN_PACKAGE_SIZE: Size = Size(1 << 20);
pub(crate) const MAX_PACKAGE_SIZE: Size = Size(4 << 30);

impl Settings {
    /// Applies the built-in defaults to what the plan says.
    pub(crate) fn from_raw(raw: RawSettings) -> Settings {
        let filters = raw.filters.unwrap_or_default();
        let preserve = raw.preserve.unwrap_or_default();
        let package = raw.package.unwrap_or_default();
        let retries = raw.retries.unwrap_or_default();
        let rules = raw.rules.unwrap_or(RuleSet::Sharepoint);
        Settings {
            mode: raw.mode.unwrap_or(Mode::Migrate),
            rules,
            filters: Filters {
                include: filters.include.unwrap_or_else(|| vec!["**".into()]),
                exclude: filters.exclude.unwrap_or_default(),
                hidden: filters.hidden.unwrap_or(Hidden::Migrate),
                extensions_skip: filters
                    .extensions_skip
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e.to_lowercase())
                    .collect(),
                modified_after: filters.modified_after,
                created_after: filters.created_after,
                min_size: filters.min_size,
                max_size: filters.max_size,
            },
            invalid_names: raw.invalid_names.unwrap_or(InvalidNames::Skip),
            case_collisions: raw.case_collisions.unwrap_or(CaseCollisions::Skip),
            conflicts: raw.conflicts.unwrap_or(Conflicts::KeepDestinationChanges),
            deletions: raw.deletions.unwrap_or(Deletions::Keep),
            max_delete: MaxDelete {
                items: raw
                    .max_delete
                    .as_ref()
                    .and_then(|m| m.items)
                    .unwrap_or(1000),
                percent: raw
                    .max_delete
                    .as_ref()
                    .and_then(|m| m.percent)
                    .unwrap_or(10),
            },
            symlinks: raw.symlinks.unwrap_or(Symlinks::Skip),
            preserve: Preserve {
                mtime: preserve.mtime.unwrap_or(true),
                mode: preserve.mode.unwrap_or(true),
                owner: preserve.owner.unwrap_or(false),
                setuid: preserve.setuid.unwrap_or(false),
                sparse: preserve.sparse.unwrap_or(true),
                hard_links: preserve.hard_links.unwrap_or(true),
                xattrs: preserve.xattrs.unwrap_or(true),
                security_xattrs: preserve.security_xattrs.unwrap_or(false),
                acls: preserve.acls.unwrap_or(true),
                sharepoint: rules == RuleSet::Sharepoint,
            },
            package: PackageSettings {
                max_size: package.max_size.unwrap_or(DEFAULT_PACKAGE_SIZE),
                max_files: package.max_files.unwrap_or(1000),
                compression_level: package.compression_level.unwrap_or(1),
            },
            verify: raw.verify.unwrap_or(Verify::Transferred),
            retries: Retries {
                attempts: retries.attempts.unwrap_or(3),
                backoff: retries
                    .backoff
                    .unwrap_or(Duration(std::time::Duration::from_secs(2))),
            },
        }
    }
}

/// `over` laid on `base`: mappings merge key by key, anything else replaces.
pub(crate) fn overlay(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut merged = b.clone();
            for (key, value) in o {
                let next = match b.get(key) {
                    Some(existing) => overlay(existing, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), next);
            }
            Value::Object(merged)
        }
        (_, over) => over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlay_merges_mappings_and_replaces_the_rest() {
        let base = json!({"filters": {"hidden": "skip", "exclude": ["a"], "modified_after": "2015-01-01"}, "verify": "all"});
        let over = json!({"filters": {"exclude": ["b"], "modified_after": null}});
        assert_eq!(
            overlay(&base, &over),
            json!({"filters": {"hidden": "skip", "exclude": ["b"], "modified_after": null}, "verify": "all"})
        );
    }

    #[test]
    fn built_in_defaults_fill_every_gap() {
        let s = Settings::from_raw(RawSettings::default());
        assert_eq!(s.mode, Mode::Migrate);
        assert_eq!(s.filters.include, vec!["**"]);
        assert_eq!(s.filters.hidden, Hidden::Migrate);
        assert_eq!(s.package.max_size, Size(64 << 20));
        assert_eq!(s.retries.attempts, 3);
        assert!(s.preserve.mtime && s.preserve.mode && !s.preserve.owner);
    }
}
