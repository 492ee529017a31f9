//! The reports of a migration round: the live `ItemReport_R<n>.csv`, the
//! `ItemFailureReport_R<n>.csv` (only when something failed), `ItemSummary_R<n>.csv`,
//! and `round.json`, the round's summary every other report is rendered from.
//!
//! Column names follow Migration Manager's reports, so that its users find their way.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{ReportError, csv_cell, write_atomic};
use crate::shown::escape;
use crate::state::journal::{Entry, ItemRecord, ItemResult};

/// The columns of `ItemReport_R<n>.csv`, in Migration Manager's order (with the task's
/// name, which it does not have). The item IDs are inodes; the job is the run.
pub const ITEM_COLUMNS: [&str; 17] = [
    "Source",
    "Destination",
    "File name",
    "Extension",
    "File size",
    "Content type",
    "Status",
    "Result category",
    "Message",
    "Source item ID",
    "Destination item ID",
    "Package number",
    "Migration job ID",
    "Incremental round",
    "Task ID",
    "Task name",
    "Device name",
];

/// The columns of `ItemFailureReport_R<n>.csv`: the item report's, with the error code.
pub const FAILURE_COLUMNS: [&str; 18] = [
    "Source",
    "Destination",
    "Item name",
    "Extension",
    "Item size",
    "Content type",
    "Status",
    "Result category",
    "Message",
    "Error code",
    "Source item ID",
    "Destination item ID",
    "Package number",
    "Migration job ID",
    "Incremental round",
    "Task ID",
    "Task name",
    "Device name",
];

/// The columns of `ItemSummary_R<n>.csv`: the round's counters, stage by stage.
pub const SUMMARY_COLUMNS: [&str; 18] = [
    "Incremental round",
    "Task name",
    "Scanned",
    "Item scan failures",
    "Filtered out items",
    "Expected migrated file count",
    "Unchanged since last round",
    "Read",
    "Packaged",
    "Uploaded",
    "Imported",
    "Already at destination",
    "Deleted",
    "Failed reading",
    "Failed packaging",
    "Failed uploading",
    "Failed importing",
    "Device name",
];

pub use crate::failure::Stage;

fn content_type(kind: u8) -> &'static str {
    match kind {
        crate::package::KIND_FILE => "File",
        crate::package::KIND_FOLDER => "Folder",
        crate::package::KIND_SYMLINK => "Link",
        _ => "Item",
    }
}

/// One row's cells, shown safely: control characters and bad bytes escaped.
struct Row {
    source: String,
    destination: String,
    name: String,
    extension: String,
    size: String,
    content_type: &'static str,
    status: &'static str,
    category: &'static str,
    message: String,
    code: String,
    package: String,
    source_id: String,
    dest_id: String,
    job: String,
}

/// An ID as the reports show it: empty when not known.
fn id_text(id: u64) -> String {
    if id == 0 {
        String::new()
    } else {
        id.to_string()
    }
}

/// A new job ID for a run: its start (seconds) and 20 random bits.
pub fn new_job() -> u64 {
    let seconds = u64::try_from(crate::clock::now().as_second()).unwrap_or(0);
    (seconds << 20) | rand::random_range(1..1u64 << 20)
}

/// A job ID as the reports show it: `20261201T040512Z-3f9a2`, the run's start and a
/// random tag; empty when not known (a round an earlier ferry began).
pub fn job_text(job: u64) -> String {
    if job == 0 {
        return String::new();
    }
    let start = jiff::Timestamp::from_second((job >> 20) as i64)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    format!("{start}-{:05x}", job & 0xF_FFFF)
}

/// A task's ID: a GUID derived from the plan's and the task's names, the same in every
/// round and on every machine.
pub fn task_id(plan: &str, task: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("ferry task id");
    hasher.update(plan.as_bytes());
    hasher.update(&[0]);
    hasher.update(task.as_bytes());
    let b = hasher.finalize();
    let h: String = b.as_bytes()[..16]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn row(record: &ItemRecord, destination_root: &Path, package: Option<u64>, job: u64) -> Row {
    let rel = Path::new(OsStr::from_bytes(&record.path));
    let name = rel.file_name().unwrap_or(rel.as_os_str());
    let extension = Path::new(name)
        .extension()
        .filter(|_| record.kind == crate::package::KIND_FILE)
        .map(|e| escape(e).into_owned())
        .unwrap_or_default();
    let (status, category, message, code) = match &record.result {
        ItemResult::Done { written: true, .. } => ("Migrated", "Copied", String::new(), ""),
        ItemResult::Done { written: false, .. } => (
            "Skipped",
            "Already at destination",
            "the destination already had it, unchanged".to_string(),
            "",
        ),
        ItemResult::Failed { code, message } => (
            "Failed",
            Stage::category_of(code),
            message.clone(),
            code.as_str(),
        ),
    };
    Row {
        source: escape(OsStr::from_bytes(&record.source)).into_owned(),
        destination: escape(destination_root.join(rel).as_os_str()).into_owned(),
        name: escape(name).into_owned(),
        extension,
        size: if record.kind == crate::package::KIND_FILE {
            record.size.to_string()
        } else {
            "0".to_string()
        },
        content_type: content_type(record.kind),
        status,
        category,
        message: escape(OsStr::new(&message)).into_owned(),
        code: code.to_string(),
        package: package.map_or_else(|| "N/A".to_string(), |p| p.to_string()),
        source_id: id_text(record.source_id),
        dest_id: match record.result {
            ItemResult::Done { .. } => id_text(record.dest_id),
            ItemResult::Failed { .. } => String::new(),
        },
        job: job_text(job),
    }
}

/// Who and where, the same on every row of a round's reports.
#[derive(Clone, Debug)]
pub struct RoundIds {
    pub round: u32,
    pub task: String,
    /// [`task_id`] of the plan's and the task's names.
    pub task_id: String,
    pub device: String,
    pub destination: PathBuf,
    /// This run's job ID ([`new_job`]).
    pub job: u64,
}

/// The live item report: rows are appended (and flushed) package by package as imports
/// complete, so that `tail -f` follows the round.
#[derive(Debug)]
pub struct ItemReport {
    path: PathBuf,
    ids: RoundIds,
    out: Mutex<csv::Writer<fs::File>>,
}

impl ItemReport {
    /// Starts the round's item report over with the records an earlier run of the round
    /// journalled: every item appears once, however many runs the round takes.
    pub fn start(
        folder: &Path,
        ids: RoundIds,
        earlier: &[Entry],
    ) -> Result<ItemReport, ReportError> {
        let path = folder.join(format!("ItemReport_R{}.csv", ids.round));
        let fail = |source| ReportError {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(folder).map_err(fail)?;
        let file = fs::File::create(&path).map_err(fail)?;
        let out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(file);
        let report = ItemReport {
            path,
            ids,
            out: Mutex::new(out),
        };
        report.write(&[ITEM_COLUMNS.map(String::from).to_vec()])?;
        for entry in earlier {
            if let Entry::Imported {
                first, items, job, ..
            } = entry
            {
                report.package(Some(*first), *job, items)?;
            }
        }
        Ok(report)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows for the items of one package (`None`: items that never reached one), which
    /// the run `job` imported (or failed).
    pub fn package(
        &self,
        package: Option<u64>,
        job: u64,
        records: &[ItemRecord],
    ) -> Result<(), ReportError> {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|record| {
                let r = row(record, &self.ids.destination, package, job);
                vec![
                    r.source,
                    r.destination,
                    r.name,
                    r.extension,
                    r.size,
                    r.content_type.to_string(),
                    r.status.to_string(),
                    r.category.to_string(),
                    r.message,
                    r.source_id,
                    r.dest_id,
                    r.package,
                    r.job,
                    self.ids.round.to_string(),
                    self.ids.task_id.clone(),
                    self.ids.task.clone(),
                    self.ids.device.clone(),
                ]
            })
            .collect();
        self.write(&rows)
    }

    fn write(&self, rows: &[Vec<String>]) -> Result<(), ReportError> {
        let fail = |source| ReportError {
            path: self.path.clone(),
            source,
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for cells in rows {
            out.write_record(cells.iter().map(|c| csv_cell(c).into_owned()))
                .map_err(|e| fail(e.into()))?;
        }
        out.flush().map_err(fail)
    }

    /// Syncs the report.
    pub fn finish(self) -> Result<PathBuf, ReportError> {
        let out = self.out.into_inner().unwrap_or_else(|e| e.into_inner());
        let file = out.into_inner().map_err(|e| ReportError {
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(|source| ReportError {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.path)
    }
}

/// Writes `ItemFailureReport_R<n>.csv` with every failed item of `records` (with their
/// packages and jobs), or removes a stale one when nothing failed. Returns its path if
/// written.
pub fn write_failures(
    folder: &Path,
    ids: &RoundIds,
    records: &[(Option<u64>, u64, &ItemRecord)],
) -> Result<Option<PathBuf>, ReportError> {
    let path = folder.join(format!("ItemFailureReport_R{}.csv", ids.round));
    let failed: Vec<_> = records
        .iter()
        .filter(|(_, _, r)| matches!(r.result, ItemResult::Failed { .. }))
        .collect();
    if failed.is_empty() {
        let _ = fs::remove_file(&path);
        return Ok(None);
    }
    let mut csv = super::CsvFile::create(path, &FAILURE_COLUMNS)?;
    for (package, job, record) in failed {
        let r = row(record, &ids.destination, *package, *job);
        csv.row(&[
            r.source.as_str(),
            &r.destination,
            &r.name,
            &r.extension,
            &r.size,
            r.content_type,
            r.status,
            r.category,
            &r.message,
            &r.code,
            &r.source_id,
            &r.dest_id,
            &r.package,
            &r.job,
            &ids.round.to_string(),
            &ids.task_id,
            &ids.task,
            &ids.device,
        ])?;
    }
    csv.finish().map(Some)
}

/// The version of `round.json`'s shape.
pub const ROUND_SUMMARY_VERSION: u32 = 1;

/// Counters of a round's scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCounts {
    pub scanned: u64,
    pub folders: u64,
    pub files: u64,
    pub items_with_issues: u64,
    pub filtered: u64,
    /// New or changed items the round set out to migrate.
    pub to_migrate: u64,
    pub bytes_to_migrate: u64,
    /// Unchanged since the last round: not migrated again.
    pub unchanged: u64,
    /// Items the scan found will not migrate (an error, or the plan's choice), by code;
    /// the scan report, relative to the round's report folder, lists each of them.
    #[serde(default)]
    pub not_migrated: Vec<super::scan::NotMigrated>,
    /// Items the scan found will not migrate (one item may have several codes above).
    #[serde(default)]
    pub not_migrated_items: u64,
    /// Of those, the items kept back by an error (the others by the plan's choice, such
    /// as a skipped symlink): a round with any ends with exit 1.
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub readiness: String,
    #[serde(default)]
    pub scan_report: String,
}

impl ScanCounts {
    /// Items the scan found will not migrate.
    pub fn not_migrated_items(&self) -> u64 {
        self.not_migrated_items
    }
}

/// Counters of a round's stages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageCounts {
    pub read: u64,
    pub packaged: u64,
    pub uploaded: u64,
    pub imported: u64,
    pub already_at_destination: u64,
    pub deleted: u64,
    pub failed_reading: u64,
    pub failed_packaging: u64,
    pub failed_uploading: u64,
    pub failed_importing: u64,
}

/// Failures of one code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub code: String,
    pub stage: Stage,
    pub count: u64,
    /// A few examples: "path: message".
    pub examples: Vec<String>,
}

/// One task's round, as every report shows it (`round.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub version: u32,
    pub plan: String,
    pub task: String,
    pub round: u32,
    /// completed, paused, staged, failed.
    pub status: String,
    pub source: String,
    pub destination: String,
    pub device: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: u64,
    pub scan: ScanCounts,
    pub stages: StageCounts,
    pub bytes_imported: u64,
    /// Imported bytes per hour of the round, in GB (10^9 bytes), as Migration Manager.
    pub gb_per_hour: f64,
    pub failures: Vec<FailureCount>,
}

impl RoundSummary {
    /// Stage counters from the round's items, failures by code and the scan's counts.
    pub fn stages(
        scan: &ScanCounts,
        imported: u64,
        unchanged: u64,
        deleted: u64,
        failures: &BTreeMap<String, (u64, Vec<String>)>,
    ) -> (StageCounts, Vec<FailureCount>) {
        let mut by_stage: BTreeMap<Stage, u64> = BTreeMap::new();
        let mut list = Vec::new();
        for (code, (count, examples)) in failures {
            let stage = Stage::of(code);
            // Round-level findings (a held-back deletion) are not items.
            if !crate::failure::is_round_level(code) {
                *by_stage.entry(stage).or_default() += count;
            }
            list.push(FailureCount {
                code: code.clone(),
                stage,
                count: *count,
                examples: examples.clone(),
            });
        }
        let n = |s| by_stage.get(&s).copied().unwrap_or(0);
        let read = scan.to_migrate.saturating_sub(n(Stage::Read));
        let packaged = read.saturating_sub(n(Stage::Package));
        let uploaded = packaged.saturating_sub(n(Stage::Upload));
        (
            StageCounts {
                read,
                packaged,
                uploaded,
                imported,
                already_at_destination: unchanged,
                deleted,
                failed_reading: n(Stage::Read),
                failed_packaging: n(Stage::Package),
                failed_uploading: n(Stage::Upload),
                failed_importing: n(Stage::Import),
            },
            list,
        )
    }

    pub fn failed(&self) -> u64 {
        let s = &self.stages;
        s.failed_reading + s.failed_packaging + s.failed_uploading + s.failed_importing
    }

    pub fn path(folder: &Path) -> PathBuf {
        folder.join("round.json")
    }

    pub fn save(&self, folder: &Path) -> Result<(), ReportError> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        write_atomic(&RoundSummary::path(folder), &text)
    }

    pub fn load(folder: &Path) -> io::Result<RoundSummary> {
        let bytes = fs::read(RoundSummary::path(folder))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// `ItemSummary_R<n>.csv`.
    pub fn write_item_summary(&self, folder: &Path) -> Result<PathBuf, ReportError> {
        let path = folder.join(format!("ItemSummary_R{}.csv", self.round));
        let mut csv = super::CsvFile::create(path, &SUMMARY_COLUMNS)?;
        let s = &self.stages;
        let c = &self.scan;
        let cells: Vec<String> = vec![
            self.round.to_string(),
            self.task.clone(),
            c.scanned.to_string(),
            c.items_with_issues.to_string(),
            c.filtered.to_string(),
            c.to_migrate.to_string(),
            c.unchanged.to_string(),
            s.read.to_string(),
            s.packaged.to_string(),
            s.uploaded.to_string(),
            s.imported.to_string(),
            s.already_at_destination.to_string(),
            s.deleted.to_string(),
            s.failed_reading.to_string(),
            s.failed_packaging.to_string(),
            s.failed_uploading.to_string(),
            s.failed_importing.to_string(),
            self.device.clone(),
        ];
        csv.row(&cells)?;
        csv.finish()
    }
}

/// GB (10^9 bytes) per hour.
pub fn gb_per_hour(bytes: u64, seconds: u64) -> f64 {
    if seconds == 0 {
        return 0.0;
    }
    let gb = bytes as f64 / 1e9;
    (gb * 3600.0 / seconds as f64 * 100.0).round() / 100.0
}
