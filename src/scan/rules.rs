//! Known-issue rules: judge one item — its name, size, times and links — against the
//! task's rule set, without touching the filesystem.
//!
//! Every finding has a stable code (reports, cron wrappers and people grep for it; never
//! rename one) and a severity: `error` means the item will not migrate, `warning` that it
//! will, with a note, `info` that the plan chose not to migrate it (a skipped symlink).
//! What the plan says about invalid names and case collisions decides between error and
//! warning: with `replace` or `rename` the item migrates under another name.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization as _;

use crate::plan::raw::{CaseCollisions, InvalidNames, RuleSet};

/// SharePoint refuses files larger than this (250 GB, decimal: the smaller reading).
pub const SHAREPOINT_MAX_FILE: u64 = 250_000_000_000;
/// SharePoint paths must stay under this many characters.
pub const SHAREPOINT_MAX_PATH: usize = 400;
/// Many Windows programs cannot open paths this long (MAX_PATH).
pub const WINDOWS_MAX_PATH: usize = 260;
/// No filesystem ferry writes to holds longer name components (bytes).
pub const MAX_NAME_BYTES: usize = 255;
/// A file that allocates this much less than its size is sparse (or compressed).
const SPARSE_GAP: u64 = 1 << 20;
/// Modification times more than this far ahead of the scan's clock are odd.
const FUTURE_SLACK_NS: i128 = 86_400 * 1_000_000_000;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// What is wrong with an item. The text of each code is stable.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Code { $($(#[$doc])* #[serde(rename = $text)] $variant,)* }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }
        }
    };
}

codes! {
    /// `" * : < > ? / \ |` in a name.
    InvalidCharacter = "invalid-character",
    /// A name that starts or ends with a space.
    LeadingTrailingSpace = "leading-trailing-space",
    /// A name that ends with a dot.
    TrailingDot = "trailing-dot",
    /// `.lock`, `CON`, `PRN`, `AUX`, `NUL`, `COM0-9`, `LPT0-9`, `desktop.ini`.
    ReservedName = "reserved-name",
    /// `_vti_` anywhere in a name.
    VtiName = "vti-name",
    /// A name starting `~$` (Office lock files).
    OfficeLockName = "office-lock-name",
    /// A folder named `forms` directly under the destination root.
    FormsAtRoot = "forms-at-root",
    /// A folder whose name starts with `~`.
    TildeFolder = "tilde-folder",
    /// The destination path is too long.
    PathTooLong = "path-too-long",
    /// The file is larger than the destination accepts.
    FileTooLarge = "file-too-large",
    /// An empty file, which SharePoint does not take.
    ZeroByteFile = "zero-byte-file",
    /// A `.lnk` or `.url` shortcut.
    ShortcutFile = "shortcut-file",
    /// A name that is not valid UTF-8.
    NonUtf8Name = "non-utf8-name",
    /// A name with a control character (newline, tab, escape, DEL...).
    ControlCharacter = "control-character",
    /// A name component over 255 bytes.
    NameTooLong = "name-too-long",
    /// Names in one folder that differ only in case.
    CaseCollision = "case-collision",
    /// Names in one folder that differ only in Unicode normalisation (NFC/NFD).
    NormalizationTwin = "normalization-twin",
    /// A file with more than one hard link.
    HardLink = "hard-link",
    /// A file that allocates much less than its size.
    SparseFile = "sparse-file",
    /// A modification time before 1970 or in the future.
    OddTimestamp = "odd-timestamp",
    /// The item cannot be read by this account.
    PermissionDenied = "permission-denied",
    /// The item's metadata or listing could not be read.
    Unreadable = "unreadable",
    /// A folder that will not migrate takes its contents with it.
    ParentNotMigrated = "parent-not-migrated",
    /// A symlink the plan says to skip.
    SymlinkSkipped = "symlink-skipped",
    /// A symlink that leads back to one of its own ancestors.
    SymlinkLoop = "symlink-loop",
    /// A symlink whose target does not exist.
    DanglingSymlink = "dangling-symlink",
    /// A symlink that points outside the source.
    SymlinkEscapesRoot = "symlink-escapes-root",
    /// A FIFO, socket or device: never opened.
    SpecialFile = "special-file",
    /// The filesystem does not record creation times, so `created_after` cannot apply.
    BirthTimeUnknown = "birth-time-unknown",
    /// Hard-linked files with names outside the task's items: those names do not
    /// arrive (a finding about the task, not about one item).
    HardLinkOutside = "hard-link-outside",
    /// A setuid or setgid file or folder: the bits are cleared at the destination.
    SetuidCleared = "setuid-cleared",
    /// The item's absolute source path is longer than the system lets a program open.
    SourcePathTooLong = "source-path-too-long",
}

/// The longest absolute path, in bytes, that the system opens (`PATH_MAX` less its NUL).
pub const SYSTEM_MAX_PATH: usize = 4095;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not migrated because the plan says so.
    Info,
    /// Migrated, with a note.
    Warning,
    /// Not migrated.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One thing wrong with one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn new(code: Code, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity,
            message: message.into(),
        }
    }
}

/// What an item is, as far as the rules care (the scan's `EntryKind` knows more;
/// the packer's `ItemKind` knows only what migrates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    File,
    Folder,
    Symlink,
    Special,
}

/// The facts about one item that the rules judge.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub name: &'a OsStr,
    pub kind: Shape,
    /// 1 for an item directly under the source root.
    pub depth: usize,
    pub size: u64,
    /// Bytes allocated on disk.
    pub allocated: u64,
    pub nlink: u64,
    /// Nanoseconds since the Unix epoch; negative before 1970.
    pub mtime_ns: i128,
    /// Characters of the item's path below the destination root, `/`-separated.
    pub path_chars: usize,
}

/// A task's rule set with the plan's choices about names.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub set: RuleSet,
    pub invalid_names: InvalidNames,
    pub case_collisions: CaseCollisions,
    /// The scan's clock, nanoseconds since the epoch.
    pub now_ns: i128,
    /// Hard links are kept (`preserve.hard_links`, for a file share).
    pub hard_links: bool,
    /// Holes of sparse files are kept (`preserve.sparse`).
    pub sparse: bool,
}

const SHAREPOINT_CHARS: &[char] = &['"', '*', ':', '<', '>', '?', '/', '\\', '|'];

impl Rules {
    /// Every finding for one item, in a fixed order. Collisions between siblings are
    /// judged apart, by [`collisions`].
    pub fn judge(&self, item: &Facts<'_>, out: &mut Vec<Finding>) {
        self.judge_name(item, out);
        self.judge_item(item, out);
    }

    fn name_severity(&self, portable: bool) -> Severity {
        match (portable, self.invalid_names) {
            (true, _) => Severity::Warning,
            (false, InvalidNames::Replace) => Severity::Warning,
            (false, InvalidNames::Skip) => Severity::Error,
        }
    }

    fn name_finding(&self, out: &mut Vec<Finding>, item: &Facts<'_>, code: Code, what: String) {
        let severity = self.name_severity(false);
        let message = match (
            severity,
            replacement(item.name, item.depth, item.kind, self.set),
        ) {
            (Severity::Warning, Some(new)) => format!("{what}; will be renamed to \"{new}\""),
            _ => what,
        };
        out.push(Finding::new(code, severity, message));
    }

    fn judge_name(&self, item: &Facts<'_>, out: &mut Vec<Finding>) {
        let bytes = item.name.as_bytes();
        if bytes.len() > MAX_NAME_BYTES {
            out.push(Finding::new(
                Code::NameTooLong,
                Severity::Error,
                format!(
                    "name too long: {} bytes, the limit is {MAX_NAME_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let posix = self.set == RuleSet::Posix;
        let Some(name) = item.name.to_str() else {
            let what = "the name is not valid UTF-8".to_string();
            if posix {
                out.push(Finding::new(
                    Code::NonUtf8Name,
                    Severity::Warning,
                    format!("{what}; it migrates as bytes, but many programs will show it garbled"),
                ));
            } else {
                self.name_finding(out, item, Code::NonUtf8Name, what);
            }
            return;
        };
        if name.chars().any(char::is_control) {
            let what = "the name contains control characters".to_string();
            if posix {
                out.push(Finding::new(
                    Code::ControlCharacter,
                    Severity::Warning,
                    format!("{what}; they migrate, but many programs will show them garbled"),
                ));
            } else {
                self.name_finding(out, item, Code::ControlCharacter, what);
            }
        }
        if posix {
            return;
        }
        let sharepoint = self.set == RuleSet::Sharepoint;
        let destination = if sharepoint { "SharePoint" } else { "Windows" };
        let mut bad: Vec<char> = name
            .chars()
            .filter(|c| SHAREPOINT_CHARS.contains(c))
            .collect();
        if !bad.is_empty() {
            let mut seen = Vec::new();
            bad.retain(|c| {
                let first = !seen.contains(c);
                seen.push(*c);
                first
            });
            let list: Vec<String> = bad.iter().map(|c| format!("`{c}`")).collect();
            let what = format!(
                "the name contains {} that {destination} does not allow",
                list.join(" ")
            );
            self.name_finding(out, item, Code::InvalidCharacter, what);
        }
        let leading = sharepoint && name.starts_with(' ');
        if leading || name.ends_with(' ') {
            let what = format!(
                "the name {} with a space, which {destination} does not allow",
                if leading { "starts" } else { "ends" }
            );
            self.name_finding(out, item, Code::LeadingTrailingSpace, what);
        }
        if name.ends_with('.') && name != "." && name != ".." {
            let what = format!("the name ends with a dot, which {destination} does not allow");
            self.name_finding(out, item, Code::TrailingDot, what);
        }
        if is_reserved(name, sharepoint) {
            let what = format!("`{name}` is a name {destination} reserves");
            self.name_finding(out, item, Code::ReservedName, what);
        }
        if !sharepoint {
            return;
        }
        if contains_ignore_ascii_case(name.as_bytes(), b"_vti_") {
            let what = "`_vti_` may not appear in a SharePoint name".to_string();
            self.name_finding(out, item, Code::VtiName, what);
        }
        if name.starts_with("~$") {
            let what = "names starting `~$` (Office lock files) are not allowed".to_string();
            self.name_finding(out, item, Code::OfficeLockName, what);
        }
        if item.kind == Shape::Folder {
            if item.depth == 1 && name.eq_ignore_ascii_case("forms") {
                let what = "a folder named `forms` cannot be at the root of a library".to_string();
                self.name_finding(out, item, Code::FormsAtRoot, what);
            }
            if name.starts_with('~') {
                let what = "SharePoint folder names cannot start with `~`".to_string();
                self.name_finding(out, item, Code::TildeFolder, what);
            }
        }
    }

    fn judge_item(&self, item: &Facts<'_>, out: &mut Vec<Finding>) {
        match self.set {
            RuleSet::Sharepoint if item.path_chars >= SHAREPOINT_MAX_PATH => {
                out.push(Finding::new(
                    Code::PathTooLong,
                    Severity::Error,
                    format!(
                        "the destination path is {} characters; SharePoint needs fewer than {SHAREPOINT_MAX_PATH}",
                        item.path_chars
                    ),
                ));
            }
            RuleSet::Windows if item.path_chars >= WINDOWS_MAX_PATH => {
                out.push(Finding::new(
                    Code::PathTooLong,
                    Severity::Warning,
                    format!(
                        "the destination path is {} characters; many Windows programs cannot open paths of {WINDOWS_MAX_PATH} or more",
                        item.path_chars
                    ),
                ));
            }
            _ => {}
        }
        let sharepoint = self.set == RuleSet::Sharepoint;
        if item.kind == Shape::File {
            if sharepoint && item.size > SHAREPOINT_MAX_FILE {
                out.push(Finding::new(
                    Code::FileTooLarge,
                    Severity::Error,
                    format!(
                        "the file is {}; SharePoint takes files up to 250 GB",
                        bytesize::ByteSize(item.size)
                    ),
                ));
            }
            if sharepoint && item.size == 0 {
                out.push(Finding::new(
                    Code::ZeroByteFile,
                    Severity::Error,
                    "SharePoint does not take empty files",
                ));
            }
            if sharepoint && is_shortcut(item.name) {
                out.push(Finding::new(
                    Code::ShortcutFile,
                    Severity::Error,
                    "SharePoint does not take shortcut files (.lnk, .url)",
                ));
            }
            // Kept links and holes are no issue: nothing to say.
            if item.nlink > 1 && !self.hard_links {
                out.push(Finding::new(
                    Code::HardLink,
                    Severity::Warning,
                    format!(
                        "the file has {} hard links; each migrates as a separate copy",
                        item.nlink
                    ),
                ));
            }
            if item.size >= item.allocated.saturating_add(SPARSE_GAP) && !self.sparse {
                out.push(Finding::new(
                    Code::SparseFile,
                    Severity::Warning,
                    format!(
                        "the file is sparse (or compressed): {} in size, {} on disk; it migrates in full (`preserve.sparse: false`)",
                        bytesize::ByteSize(item.size),
                        bytesize::ByteSize(item.allocated)
                    ),
                ));
            }
        }
        if item.kind != Shape::Symlink {
            if item.mtime_ns < 0 {
                out.push(Finding::new(
                    Code::OddTimestamp,
                    Severity::Warning,
                    format!("modified before 1970 ({})", timestamp(item.mtime_ns)),
                ));
            } else if item.mtime_ns > self.now_ns + FUTURE_SLACK_NS {
                out.push(Finding::new(
                    Code::OddTimestamp,
                    Severity::Warning,
                    format!("modified in the future ({})", timestamp(item.mtime_ns)),
                ));
            }
        }
        if item.kind == Shape::Special {
            out.push(Finding::new(
                Code::SpecialFile,
                Severity::Error,
                "a FIFO, socket or device: it has no content to migrate and is never opened",
            ));
        }
    }

    /// The severity of losing a collision: an error unless the plan renames, and only a
    /// warning for a `posix` destination, which keeps both names.
    pub fn collision_severity(&self) -> Severity {
        match (self.set, self.case_collisions) {
            (RuleSet::Posix, _) | (_, CaseCollisions::Rename) => Severity::Warning,
            (_, CaseCollisions::Skip) => Severity::Error,
        }
    }
}

/// How an item's name is compared with its siblings' on a case-insensitive,
/// normalising destination: NFC, then lower case.
pub fn fold(name: &OsStr) -> Vec<u8> {
    match name.to_str() {
        Some(s) if s.is_ascii() => s.to_ascii_lowercase().into_bytes(),
        Some(s) => s.nfc().collect::<String>().to_lowercase().into_bytes(),
        // Not UTF-8: no normalisation applies; fold the ASCII letters.
        None => name.as_bytes().to_ascii_lowercase(),
    }
}

/// Which losers of a group of sibling names that fold alike collide how: the first in
/// byte order keeps its name; each other gets a finding that lists the group.
/// `names` must all have the same [`fold`] key; returns (index into `names`, finding)
/// for every name but the winner.
pub fn collisions(names: &[&OsStr], rules: &Rules) -> Vec<(usize, Finding)> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].as_bytes().cmp(names[b].as_bytes()));
    let winner = order[0];
    let nfc = |n: &OsStr| n.to_str().map(|s| s.nfc().collect::<String>());
    // Twins look alike on screen: say which one is decomposed.
    let group: Vec<String> = order
        .iter()
        .map(|&i| {
            let shown = crate::shown::escape(names[i]);
            match nfc(names[i]) {
                Some(composed) if composed.as_bytes() != names[i].as_bytes() => {
                    format!("\"{shown}\" (decomposed, NFD)")
                }
                _ => format!("\"{shown}\""),
            }
        })
        .collect();
    let severity = rules.collision_severity();
    let outcome = match (rules.set, rules.case_collisions) {
        (RuleSet::Posix, _) => "both migrate, but they cannot coexist on a case-insensitive system",
        (_, CaseCollisions::Rename) => "it migrates under a numbered name",
        (_, CaseCollisions::Skip) => "only the first in byte order migrates",
    };
    order[1..]
        .iter()
        .map(|&i| {
            let twin = nfc(names[i]).is_some() && nfc(names[i]) == nfc(names[winner]);
            let (code, what) = if twin {
                (
                    Code::NormalizationTwin,
                    "differs only in Unicode normalisation from",
                )
            } else {
                (Code::CaseCollision, "differs only in case from")
            };
            let message = format!("{what} a sibling: {}; {outcome}", group.join(", "));
            (i, Finding::new(code, severity, message))
        })
        .collect()
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The name a collision's loser gets under `case_collisions: rename`: ` (n)` before the
/// extension (`Report.docx` → `Report (2).docx`), at the end when there is none.
pub fn numbered(name: &OsStr, n: usize) -> OsString {
    let bytes = name.as_bytes();
    let ext = extension(name);
    let stem_len = if ext.is_empty() {
        bytes.len()
    } else {
        bytes.len() - ext.len() - 1
    };
    let mut out = bytes[..stem_len].to_vec();
    out.extend_from_slice(format!(" ({n})").as_bytes());
    out.extend_from_slice(&bytes[stem_len..]);
    OsString::from_vec(out)
}

fn is_reserved(name: &str, sharepoint: bool) -> bool {
    if sharepoint
        && (name.eq_ignore_ascii_case(".lock") || name.eq_ignore_ascii_case("desktop.ini"))
    {
        return true;
    }
    // CON, CON.txt, com1, LPT9.tar.gz: the part before the first dot counts.
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let is = |word: &str| stem.eq_ignore_ascii_case(word);
    let numbered = |prefix: &str| {
        stem.len() == 4
            && stem.as_bytes()[..3].eq_ignore_ascii_case(prefix.as_bytes())
            && stem.as_bytes()[3].is_ascii_digit()
    };
    is("con") || is("prn") || is("aux") || is("nul") || numbered("com") || numbered("lpt")
}

fn is_shortcut(name: &OsStr) -> bool {
    let ext = extension(name);
    ext.eq_ignore_ascii_case(b"lnk") || ext.eq_ignore_ascii_case(b"url")
}

/// The last extension of a name, without the dot; empty when there is none. A leading
/// dot (`.profile`) does not start an extension.
pub fn extension(name: &OsStr) -> &[u8] {
    let bytes = name.as_bytes();
    match bytes.iter().rposition(|&b| b == b'.') {
        Some(0) | None => &[],
        Some(i) => &bytes[i + 1..],
    }
}

/// The name an item gets under `invalid_names: replace`, when its own cannot be kept:
/// each offending character becomes `_`, reserved names gain a `_`. Deterministic, so
/// every round maps a name the same way; `None` when the name is fine.
pub fn replacement(name: &OsStr, depth: usize, kind: Shape, set: RuleSet) -> Option<String> {
    if set == RuleSet::Posix {
        return None;
    }
    let sharepoint = set == RuleSet::Sharepoint;
    let text = String::from_utf8_lossy(name.as_bytes());
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_control() || SHAREPOINT_CHARS.contains(&c) || c == '\u{FFFD}' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if sharepoint {
        let lead = out.len() - out.trim_start_matches(' ').len();
        out = "_".repeat(lead) + &out[lead..];
    }
    let trail = out.len() - out.trim_end_matches([' ', '.']).len();
    out = out[..out.len() - trail].to_string() + &"_".repeat(trail);
    if sharepoint {
        out = out.replace("~$", "_$");
        let lower = out.to_ascii_lowercase();
        if let Some(at) = lower.find("_vti_") {
            out.replace_range(at + 4..at + 5, "-");
        }
        if kind == Shape::Folder
            && (out.starts_with('~') || (depth == 1 && out.eq_ignore_ascii_case("forms")))
        {
            out = format!("_{out}");
        }
    }
    if is_reserved(&out, sharepoint) {
        out = match out.find('.') {
            Some(0) => format!("_{out}"),
            Some(dot) => format!("{}_{}", &out[..dot], &out[dot..]),
            None => format!("{out}_"),
        };
    }
    (out.as_bytes() != name.as_bytes()).then_some(out)
}

fn timestamp(ns: i128) -> String {
    jiff::Timestamp::from_nanosecond(ns)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{} s from 1970", ns / 1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn rules(set: RuleSet) -> Rules {
        Rules {
            set,
            invalid_names: InvalidNames::Skip,
            case_collisions: CaseCollisions::Skip,
            now_ns: 1_700_000_000 * 1_000_000_000,
            hard_links: false,
            sparse: false,
        }
    }

    fn item(name: &OsStr, kind: Shape) -> Facts<'_> {
        Facts {
            name,
            kind,
            depth: 2,
            size: 10,
            allocated: 4096,
            nlink: 1,
            mtime_ns: 1_600_000_000 * 1_000_000_000,
            path_chars: 20,
        }
    }

    fn codes(rules: &Rules, item: &Facts<'_>) -> Vec<(&'static str, Severity)> {
        let mut out = Vec::new();
        rules.judge(item, &mut out);
        out.iter().map(|f| (f.code.as_str(), f.severity)).collect()
    }

    fn file_codes(set: RuleSet, name: &str) -> Vec<&'static str> {
        codes(&rules(set), &item(OsStr::new(name), Shape::File))
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    #[test]
    fn sharepoint_names() {
        let sp = RuleSet::Sharepoint;
        assert_eq!(file_codes(sp, "report.docx"), Vec::<&str>::new());
        assert_eq!(file_codes(sp, "a:b?.txt"), ["invalid-character"]);
        assert_eq!(file_codes(sp, " lead.txt"), ["leading-trailing-space"]);
        assert_eq!(file_codes(sp, "trail.txt "), ["leading-trailing-space"]);
        assert_eq!(file_codes(sp, "dot."), ["trailing-dot"]);
        for reserved in [
            "CON",
            "con.txt",
            "PRN",
            "aux.tar.gz",
            "NUL",
            "COM0",
            "com9.log",
            "LPT1",
            ".lock",
            "Desktop.ini",
        ] {
            assert_eq!(file_codes(sp, reserved), ["reserved-name"], "{reserved}");
        }
        // Regression: a stem of four bytes with a multi-byte character must not be cut
        // inside that character.
        for fine in [
            "CONSOLE", "com10", "lpt", "nul_", "lock", "x.lock", "coé", "éom1",
        ] {
            assert_eq!(file_codes(sp, fine), Vec::<&str>::new(), "{fine}");
        }
        assert_eq!(file_codes(sp, "a_VTI_b"), ["vti-name"]);
        assert_eq!(file_codes(sp, "~$budget.xlsx"), ["office-lock-name"]);
        assert_eq!(file_codes(sp, "link.LNK"), ["shortcut-file"]);
        assert_eq!(file_codes(sp, "site.url"), ["shortcut-file"]);
        assert_eq!(file_codes(sp, "~notes.txt"), Vec::<&str>::new());
    }

    #[test]
    fn folder_only_rules() {
        let r = rules(RuleSet::Sharepoint);
        let mut forms = item(OsStr::new("Forms"), Shape::Folder);
        forms.depth = 1;
        assert_eq!(codes(&r, &forms), [("forms-at-root", Severity::Error)]);
        forms.depth = 2;
        assert!(codes(&r, &forms).is_empty());
        let tilde = item(OsStr::new("~drafts"), Shape::Folder);
        assert_eq!(codes(&r, &tilde), [("tilde-folder", Severity::Error)]);
    }

    #[test]
    fn windows_is_narrower_than_sharepoint() {
        let w = RuleSet::Windows;
        assert_eq!(file_codes(w, "CON.txt"), ["reserved-name"]);
        assert_eq!(file_codes(w, "desktop.ini"), Vec::<&str>::new());
        assert_eq!(file_codes(w, " lead"), Vec::<&str>::new());
        assert_eq!(file_codes(w, "trail "), ["leading-trailing-space"]);
        assert_eq!(file_codes(w, "~$x"), Vec::<&str>::new());
        assert_eq!(file_codes(w, "a|b"), ["invalid-character"]);
    }

    #[test]
    fn posix_warns_about_bytes_and_controls_only() {
        let p = rules(RuleSet::Posix);
        let latin1 = OsString::from_vec(b"caf\xe9".to_vec());
        assert_eq!(
            codes(&p, &item(&latin1, Shape::File)),
            [("non-utf8-name", Severity::Warning)]
        );
        assert_eq!(
            codes(&p, &item(OsStr::new("a\nb"), Shape::File)),
            [("control-character", Severity::Warning)]
        );
        assert!(codes(&p, &item(OsStr::new("a:b"), Shape::File)).is_empty());
        let sp = rules(RuleSet::Sharepoint);
        assert_eq!(
            codes(&sp, &item(&latin1, Shape::File)),
            [("non-utf8-name", Severity::Error)]
        );
    }

    #[test]
    fn long_names_are_measured_in_bytes() {
        let name = "é".repeat(128); // 256 bytes, 128 characters
        assert_eq!(file_codes(RuleSet::Posix, &name), ["name-too-long"]);
        assert!(file_codes(RuleSet::Posix, &"é".repeat(127)).is_empty());
    }

    #[test]
    fn item_rules() {
        let r = rules(RuleSet::Sharepoint);
        let name = OsStr::new("f");
        let mut f = item(name, Shape::File);
        f.size = 0;
        assert_eq!(codes(&r, &f), [("zero-byte-file", Severity::Error)]);
        f.size = SHAREPOINT_MAX_FILE + 1;
        f.allocated = f.size;
        assert_eq!(codes(&r, &f), [("file-too-large", Severity::Error)]);
        f.size = 10;
        f.nlink = 3;
        assert_eq!(codes(&r, &f), [("hard-link", Severity::Warning)]);
        f.nlink = 1;
        f.size = 16 << 20;
        f.allocated = 4096;
        assert_eq!(codes(&r, &f), [("sparse-file", Severity::Warning)]);
        // Kept, they are no issue.
        let kept = Rules {
            hard_links: true,
            sparse: true,
            ..r
        };
        f.nlink = 2;
        assert!(codes(&kept, &f).is_empty());
        f.nlink = 1;
        f.allocated = f.size;
        f.mtime_ns = -1;
        assert_eq!(codes(&r, &f), [("odd-timestamp", Severity::Warning)]);
        f.mtime_ns = r.now_ns + 2 * FUTURE_SLACK_NS;
        assert_eq!(codes(&r, &f), [("odd-timestamp", Severity::Warning)]);
        f.mtime_ns = 0;
        f.path_chars = 399;
        assert!(codes(&r, &f).is_empty());
        f.path_chars = 400;
        assert_eq!(codes(&r, &f), [("path-too-long", Severity::Error)]);
        let special = item(name, Shape::Special);
        assert_eq!(codes(&r, &special), [("special-file", Severity::Error)]);
    }

    #[test]
    fn replace_turns_name_errors_into_warnings_with_the_new_name() {
        let mut r = rules(RuleSet::Sharepoint);
        r.invalid_names = InvalidNames::Replace;
        let mut out = Vec::new();
        r.judge(&item(OsStr::new("a:b?.txt"), Shape::File), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, Severity::Warning);
        assert!(
            out[0].message.ends_with("renamed to \"a_b_.txt\""),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn replacements_are_deterministic_and_valid() {
        let sp = RuleSet::Sharepoint;
        let file = |n: &str| replacement(OsStr::new(n), 2, Shape::File, sp);
        assert_eq!(file("ok.txt"), None);
        assert_eq!(file("a:b").as_deref(), Some("a_b"));
        assert_eq!(file(" x ").as_deref(), Some("_x_"));
        assert_eq!(file("end.").as_deref(), Some("end_"));
        assert_eq!(file("CON.txt").as_deref(), Some("CON_.txt"));
        assert_eq!(file("nul").as_deref(), Some("nul_"));
        assert_eq!(file(".lock").as_deref(), Some("_.lock"));
        assert_eq!(file("desktop.ini").as_deref(), Some("desktop_.ini"));
        assert_eq!(file("x_vti_y").as_deref(), Some("x_vti-y"));
        assert_eq!(file("~$doc").as_deref(), Some("_$doc"));
        assert_eq!(
            replacement(OsStr::new("forms"), 1, Shape::Folder, sp).as_deref(),
            Some("_forms")
        );
        // Every replacement passes the rules it was made for.
        let r = rules(sp);
        for name in [
            "a:b", " x ", "end.", "CON.txt", ".lock", "x_vti_y", "~$doc", "a\tb",
        ] {
            let new = file(name).unwrap();
            let mut out = Vec::new();
            r.judge(&item(OsStr::new(&new), Shape::File), &mut out);
            assert!(out.is_empty(), "{name} -> {new}: {out:?}");
        }
    }

    #[test]
    fn collisions_keep_the_first_in_byte_order_and_list_the_group() {
        let r = rules(RuleSet::Sharepoint);
        let nfd = "cafe\u{301}.txt";
        let names = [
            OsStr::new("report.docx"),
            OsStr::new("REPORT.docx"),
            OsStr::new("Report.docx"),
        ];
        assert!(names.iter().all(|n| fold(n) == fold(names[0])));
        let found = collisions(&names, &r);
        assert_eq!(found.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [2, 0]);
        assert_eq!(found[0].1.code, Code::CaseCollision);
        assert!(
            found[0]
                .1
                .message
                .contains("\"REPORT.docx\", \"Report.docx\", \"report.docx\"")
        );
        let twins = [OsStr::new("café.txt"), OsStr::new(nfd)];
        assert_eq!(fold(twins[0]), fold(twins[1]));
        let found = collisions(&twins, &r);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.code, Code::NormalizationTwin);
        assert_eq!(found[0].1.severity, Severity::Error);
        let posix = rules(RuleSet::Posix);
        assert_eq!(collisions(&twins, &posix)[0].1.severity, Severity::Warning);
    }

    #[test]
    fn every_code_is_documented() {
        let docs = include_str!("../../docs/scan.md");
        for code in Code::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", code.as_str())),
                "docs/scan.md does not list `{}`",
                code.as_str()
            );
        }
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered(OsStr::new("Report.docx"), 2), "Report (2).docx");
        assert_eq!(numbered(OsStr::new("README"), 3), "README (3)");
        assert_eq!(numbered(OsStr::new(".profile"), 2), ".profile (2)");
    }

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
    }
}
