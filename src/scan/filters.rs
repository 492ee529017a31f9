//! Filters: which items the plan asks to migrate, decided from an item's path and
//! metadata without touching the filesystem.
//!
//! As in Migration Manager, filters are AND-ed: an item migrates only when no filter
//! rules it out. Filtered items are counted apart from issues; they are the plan's
//! choice, not a problem. Globs match the path relative to the source root with `/`
//! between folders; `*` stays inside one folder, `**` crosses folders. Include globs
//! select files (folders are walked to find them); exclude globs apply to folders too,
//! and an excluded or hidden folder is not walked at all.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use globset::{GlobSet, GlobSetBuilder};

use super::rules::extension;
use crate::plan::Filters;
use crate::plan::raw::Hidden;

/// Why a filter ruled an item out. The text of each reason is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filtered {
    Excluded,
    NotIncluded,
    Hidden,
    Extension,
    ModifiedBefore,
    CreatedBefore,
    TooSmall,
    TooLarge,
}

impl Filtered {
    pub fn as_str(self) -> &'static str {
        match self {
            Filtered::Excluded => "excluded",
            Filtered::NotIncluded => "not-included",
            Filtered::Hidden => "hidden",
            Filtered::Extension => "extension",
            Filtered::ModifiedBefore => "modified-before",
            Filtered::CreatedBefore => "created-before",
            Filtered::TooSmall => "smaller-than-min-size",
            Filtered::TooLarge => "larger-than-max-size",
        }
    }
}

/// A task's filters, compiled.
#[derive(Debug)]
pub struct Filter {
    /// `None` when the include globs match every path (the default `**`).
    include: Option<GlobSet>,
    exclude: GlobSet,
    skip_hidden: bool,
    extensions: Vec<Vec<u8>>,
    modified_after_ns: Option<i128>,
    created_after_ns: Option<i128>,
    min_size: Option<u64>,
    max_size: Option<u64>,
}

/// What the filter needs to know about a file.
#[derive(Clone, Copy, Debug)]
pub struct FileFacts {
    pub size: u64,
    pub mtime_ns: i128,
    /// `None` where the filesystem does not record creation times.
    pub birth_ns: Option<i128>,
}

/// The verdict on one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Kept because its creation time is unknown, although `created_after` is set.
    KeepBirthUnknown,
    Drop(Filtered),
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(crate::plan::glob(pattern)?);
    }
    set.build()
}

impl Filter {
    pub fn new(filters: &Filters) -> Result<Filter, globset::Error> {
        Ok(Filter {
            include: if filters.include.iter().any(|g| g == "**") {
                None
            } else {
                Some(glob_set(&filters.include)?)
            },
            exclude: glob_set(&filters.exclude)?,
            skip_hidden: filters.hidden == Hidden::Skip,
            extensions: filters
                .extensions_skip
                .iter()
                .map(|e| e.trim_start_matches('.').as_bytes().to_ascii_lowercase())
                .collect(),
            modified_after_ns: filters.modified_after.map(|d| d.0.as_nanosecond()),
            created_after_ns: filters.created_after.map(|d| d.0.as_nanosecond()),
            min_size: filters.min_size.map(|s| s.0),
            max_size: filters.max_size.map(|s| s.0),
        })
    }

    /// Whether `created_after` is set, so that unknown creation times matter.
    pub fn needs_birth_time(&self) -> bool {
        self.created_after_ns.is_some()
    }

    /// A folder, symlink or special file: only the exclude globs and the hidden filter
    /// apply. `rel` is the path below the source root.
    pub fn other(&self, rel: &Path, name: &OsStr) -> Option<Filtered> {
        if self.skip_hidden && is_hidden(name) {
            Some(Filtered::Hidden)
        } else if !self.exclude.is_empty() && self.exclude.is_match(rel) {
            Some(Filtered::Excluded)
        } else {
            None
        }
    }

    /// A regular file: every filter applies, in a fixed order (the first that rules the
    /// file out is the reason reported).
    pub fn file(&self, rel: &Path, name: &OsStr, facts: FileFacts) -> Decision {
        if let Some(reason) = self.other(rel, name) {
            return Decision::Drop(reason);
        }
        if self.include.as_ref().is_some_and(|set| !set.is_match(rel)) {
            return Decision::Drop(Filtered::NotIncluded);
        }
        let ext = extension(name);
        if !ext.is_empty() && self.extensions.iter().any(|e| ext.eq_ignore_ascii_case(e)) {
            return Decision::Drop(Filtered::Extension);
        }
        if self.min_size.is_some_and(|min| facts.size < min) {
            return Decision::Drop(Filtered::TooSmall);
        }
        if self.max_size.is_some_and(|max| facts.size > max) {
            return Decision::Drop(Filtered::TooLarge);
        }
        if self.modified_after_ns.is_some_and(|t| facts.mtime_ns <= t) {
            return Decision::Drop(Filtered::ModifiedBefore);
        }
        match (self.created_after_ns, facts.birth_ns) {
            (Some(t), Some(birth)) if birth <= t => Decision::Drop(Filtered::CreatedBefore),
            (Some(_), None) => Decision::KeepBirthUnknown,
            _ => Decision::Keep,
        }
    }
}

/// Hidden, on the filesystems ferry reads: the name starts with a dot.
pub fn is_hidden(name: &OsStr) -> bool {
    name.as_bytes().first() == Some(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Date, Size};

    fn filters() -> Filters {
        Filters {
            include: vec!["**".into()],
            exclude: vec![],
            hidden: Hidden::Migrate,
            extensions_skip: vec![],
            modified_after: None,
            created_after: None,
            min_size: None,
            max_size: None,
        }
    }

    const FACTS: FileFacts = FileFacts {
        size: 100,
        mtime_ns: 1_600_000_000_000_000_000,
        birth_ns: Some(1_600_000_000_000_000_000),
    };

    fn decide(f: &Filters, rel: &str) -> Decision {
        let path = Path::new(rel);
        Filter::new(f)
            .unwrap()
            .file(path, path.file_name().unwrap(), FACTS)
    }

    #[test]
    fn globs_are_relative_and_star_stays_in_one_folder() {
        let mut f = filters();
        f.exclude = vec!["*.tmp".into(), "**/Thumbs.db".into(), "build/**".into()];
        assert_eq!(decide(&f, "a.tmp"), Decision::Drop(Filtered::Excluded));
        assert_eq!(decide(&f, "sub/a.tmp"), Decision::Keep);
        assert_eq!(
            decide(&f, "x/y/Thumbs.db"),
            Decision::Drop(Filtered::Excluded)
        );
        assert_eq!(decide(&f, "Thumbs.db"), Decision::Drop(Filtered::Excluded));
        assert_eq!(
            decide(&f, "build/out/a.o"),
            Decision::Drop(Filtered::Excluded)
        );
        f.include = vec!["docs/**/*.pdf".into()];
        assert_eq!(decide(&f, "docs/2024/a.pdf"), Decision::Keep);
        assert_eq!(
            decide(&f, "docs/a.docx"),
            Decision::Drop(Filtered::NotIncluded)
        );
    }

    #[test]
    fn hidden_and_extensions() {
        let mut f = filters();
        f.hidden = Hidden::Skip;
        f.extensions_skip = vec!["exe".into(), "bak".into()];
        assert_eq!(decide(&f, "a/.secret"), Decision::Drop(Filtered::Hidden));
        assert_eq!(decide(&f, "setup.EXE"), Decision::Drop(Filtered::Extension));
        assert_eq!(
            decide(&f, "db.tar.bak"),
            Decision::Drop(Filtered::Extension)
        );
        assert_eq!(decide(&f, "bak.tar"), Decision::Keep);
        assert_eq!(decide(&f, "exe"), Decision::Keep);
        let filter = Filter::new(&f).unwrap();
        assert_eq!(
            filter.other(Path::new(".git"), OsStr::new(".git")),
            Some(Filtered::Hidden)
        );
    }

    #[test]
    fn sizes_and_dates() {
        let mut f = filters();
        f.min_size = Some(Size(101));
        assert_eq!(decide(&f, "a"), Decision::Drop(Filtered::TooSmall));
        f.min_size = Some(Size(100));
        f.max_size = Some(Size(99));
        assert_eq!(decide(&f, "a"), Decision::Drop(Filtered::TooLarge));
        f.max_size = Some(Size(100));
        assert_eq!(decide(&f, "a"), Decision::Keep);
        f.modified_after = Some(Date::parse("2021-01-01").unwrap());
        assert_eq!(decide(&f, "a"), Decision::Drop(Filtered::ModifiedBefore));
        f.modified_after = Some(Date::parse("2019-01-01").unwrap());
        f.created_after = Some(Date::parse("2021-01-01").unwrap());
        assert_eq!(decide(&f, "a"), Decision::Drop(Filtered::CreatedBefore));
        let filter = Filter::new(&f).unwrap();
        let unknown = FileFacts {
            birth_ns: None,
            ..FACTS
        };
        assert_eq!(
            filter.file(Path::new("a"), OsStr::new("a"), unknown),
            Decision::KeepBirthUnknown
        );
    }
}
