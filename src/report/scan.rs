//! The scan's readiness reports for one task and round: `ScanReport_R<n>.csv` (one row
//! per finding, streamed as the walk goes) and `ScanSummary_R<n>.csv` (one row of
//! totals, with Migration Manager's column names), and the summary a person reads on
//! stderr.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{CsvFile, ReportError};
use crate::plan::Task;
use crate::scan::filters::Filtered;
use crate::scan::rules::{Code, Severity};
use crate::scan::{EntryKind, ScanEntry, ScanTotals, Status};
use crate::shown::escape_path;

/// The columns of `ScanReport_R<n>.csv`.
pub const REPORT_COLUMNS: [&str; 5] = ["Path", "Kind", "Code", "Severity", "Message"];

/// The columns of `ScanSummary_R<n>.csv`, after Migration Manager's scan summary.
pub const SUMMARY_COLUMNS: [&str; 15] = [
    "Incremental round",
    "Task name",
    "Source",
    "Total scanned items",
    "Total scanned folders",
    "Total scanned files",
    "Folders with issues",
    "Items with issues",
    "Items with errors",
    "Items filtered out",
    "Items to be migrated",
    "Bytes to be migrated",
    "Max path length",
    "Migration readiness",
    "Device name",
];

/// How many example paths the stderr summary shows per code.
const EXAMPLES: usize = 3;

/// Whether a task is ready to migrate, as the summary says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Warnings,
    NotReady,
}

impl Readiness {
    pub fn of(totals: &ScanTotals) -> Readiness {
        if totals.errors > 0 {
            Readiness::NotReady
        } else if totals.warnings > 0 {
            Readiness::Warnings
        } else {
            Readiness::Ready
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "Ready",
            Readiness::Warnings => "Ready with warnings",
            Readiness::NotReady => "Not ready",
        }
    }
}

/// Items the scan found will not migrate, by code: what the summaries show of the scan
/// (the scan report has every item).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotMigrated {
    pub code: String,
    /// `error` (the item cannot migrate) or `info` (the plan chose not to migrate it).
    pub severity: String,
    pub items: u64,
    pub examples: Vec<String>,
}

/// Items per (severity, code), with the first few paths as examples.
type ByCode = BTreeMap<(Severity, Code), Tally>;

#[derive(Debug, Default)]
struct Tally {
    items: u64,
    examples: Vec<String>,
}

/// The scan report of one task and round, being written.
#[derive(Debug)]
pub struct ScanReport {
    csv: CsvFile,
    folder: PathBuf,
    round: u32,
    source: PathBuf,
    by_code: ByCode,
    filtered: BTreeMap<Filtered, u64>,
}

impl ScanReport {
    pub fn create(folder: PathBuf, round: u32, task: &Task) -> Result<ScanReport, ReportError> {
        let csv = CsvFile::create(
            folder.join(format!("ScanReport_R{round}.csv")),
            &REPORT_COLUMNS,
        )?;
        Ok(ScanReport {
            csv,
            folder,
            round,
            source: task.source.clone(),
            by_code: BTreeMap::new(),
            filtered: BTreeMap::new(),
        })
    }

    /// Records one scanned item: a row per finding, and the tallies.
    pub fn entry(&mut self, entry: &ScanEntry) -> Result<(), ReportError> {
        if let Status::Filtered(reason) = entry.status {
            *self.filtered.entry(reason).or_default() += 1;
        }
        if entry.findings.is_empty() {
            return Ok(());
        }
        let path = self.source.join(&entry.rel);
        let path = escape_path(&path);
        let kind = kind(&entry.kind);
        for finding in &entry.findings {
            self.csv.row(&[
                path.as_ref(),
                kind,
                finding.code.as_str(),
                finding.severity.as_str(),
                &finding.message,
            ])?;
            let tally = self
                .by_code
                .entry((finding.severity, finding.code))
                .or_default();
            tally.items += 1;
            if tally.examples.len() < EXAMPLES {
                tally.examples.push(shorten(&escape_path(&entry.rel)));
            }
        }
        Ok(())
    }

    /// Adds the task-level rows, writes the summary and puts both files in place;
    /// returns the text a person reads, and what will not migrate, by code.
    /// A warning about the task as a whole, counted as `items`: one row of the report.
    fn task_warning(&mut self, code: Code, message: &str, items: u64) -> Result<(), ReportError> {
        let source = escape_path(&self.source).into_owned();
        self.csv.row(&[
            source.as_str(),
            "task",
            code.as_str(),
            Severity::Warning.as_str(),
            message,
        ])?;
        self.by_code
            .entry((Severity::Warning, code))
            .or_default()
            .items += items;
        Ok(())
    }

    pub fn finish(
        mut self,
        task: &Task,
        totals: &ScanTotals,
        device: &str,
    ) -> Result<(String, Vec<NotMigrated>), ReportError> {
        if totals.birth_unknown > 0 {
            let message = format!(
                "the filesystem does not record creation times, so `created_after` could not \
                 apply to {} files; they were kept",
                totals.birth_unknown
            );
            self.task_warning(Code::BirthTimeUnknown, &message, totals.birth_unknown)?;
        }
        if totals.links_outside > 0 && task.settings.preserve.links() {
            let message = format!(
                "hard-linked files with names outside this task's source (or filtered out): \
                 {}; those names are not migrated, and the files arrive without them (a task \
                 whose source holds every name keeps them together)",
                totals.links_outside
            );
            self.task_warning(Code::HardLinkOutside, &message, totals.links_outside)?;
        }
        let readiness = Readiness::of(totals);
        let ScanReport {
            csv,
            folder,
            round,
            by_code,
            filtered,
            ..
        } = self;
        let report_path = csv.finish()?;
        let mut summary = CsvFile::create(
            folder.join(format!("ScanSummary_R{round}.csv")),
            &SUMMARY_COLUMNS,
        )?;
        summary.row(&[
            round.to_string(),
            task.name.clone(),
            escape_path(&task.source).into_owned(),
            totals.items.to_string(),
            totals.folders.to_string(),
            totals.files.to_string(),
            totals.folders_with_issues.to_string(),
            totals.items_with_issues.to_string(),
            totals.errors.to_string(),
            totals.filtered.to_string(),
            totals.to_migrate.to_string(),
            totals.bytes_to_migrate.to_string(),
            totals.max_path_chars.to_string(),
            readiness.as_str().to_string(),
            device.to_string(),
        ])?;
        let summary_path = summary.finish()?;
        let not_migrated = by_code
            .iter()
            .filter(|((severity, _), _)| matches!(severity, Severity::Error | Severity::Info))
            .map(|((severity, code), tally)| NotMigrated {
                code: code.as_str().to_string(),
                severity: severity.as_str().to_string(),
                items: tally.items,
                examples: tally.examples.clone(),
            })
            .collect();
        let text = human(
            task,
            totals,
            (&by_code, &filtered),
            readiness,
            (&summary_path, &report_path),
        );
        Ok((text, not_migrated))
    }
}

/// The summary a person reads: totals, findings by code with examples, readiness and
/// where the reports are.
fn human(
    task: &Task,
    totals: &ScanTotals,
    (by_code, filtered): (&ByCode, &BTreeMap<Filtered, u64>),
    readiness: Readiness,
    (summary, report): (&Path, &Path),
) -> String {
    let mut out = String::new();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "scan {}: {} ({}, {}) in {}",
        task.name,
        plural(totals.items, "item", "items"),
        plural(totals.files, "file", "files"),
        plural(totals.folders, "folder", "folders"),
        escape_path(&task.source)
    );
    let _ = writeln!(
        out,
        "  to migrate    {}, {}",
        plural(totals.to_migrate, "item", "items"),
        bytesize::ByteSize(totals.bytes_to_migrate).display().iec()
    );
    if totals.filtered > 0 {
        let reasons: Vec<String> = filtered
            .iter()
            .map(|(reason, n)| format!("{} {n}", reason.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "  filtered out  {} ({})",
            totals.filtered,
            reasons.join(", ")
        );
    }
    if totals.items_with_issues > 0 {
        let _ = writeln!(
            out,
            "  with issues   {}: {} will not migrate, {} migrate with warnings",
            totals.items_with_issues, totals.errors, totals.warnings
        );
    }
    let mut codes: Vec<_> = by_code.iter().collect();
    codes.sort_by(|((s1, c1), t1), ((s2, c2), t2)| {
        s2.cmp(s1).then(t2.items.cmp(&t1.items)).then(c1.cmp(c2))
    });
    let width = codes
        .iter()
        .map(|((_, c), _)| c.as_str().len())
        .max()
        .unwrap_or(0);
    for ((severity, code), tally) in codes {
        let _ = writeln!(
            out,
            "  {:<7}  {:<width$}  {:>6}  {}",
            severity.as_str(),
            code.as_str(),
            tally.items,
            tally.examples.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  readiness: {}; longest destination path {} characters",
        readiness.as_str(),
        totals.max_path_chars
    );
    let _ = writeln!(out, "  reports: {}", summary.display());
    let _ = writeln!(out, "           {}", report.display());
    out
}

/// A path cut in the middle to fit a line of the summary.
fn shorten(text: &str) -> String {
    const HEAD: usize = 24;
    const TAIL: usize = 32;
    let count = text.chars().count();
    if count <= HEAD + TAIL + 1 {
        return text.to_string();
    }
    let head: String = text.chars().take(HEAD).collect();
    let tail: String = text.chars().skip(count - TAIL).collect();
    format!("{head}…{tail}")
}

fn kind(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Folder => "folder",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::Special => "special",
        EntryKind::Unknown => "unknown",
    }
}
