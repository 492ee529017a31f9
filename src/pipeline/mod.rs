//! The stages every file goes through: scan → package → upload → import. Only the scan
//! exists so far.
//!
//! `rules` and `filters` are pure (they judge names and metadata, never the
//! filesystem); `scan` does the walking and owns every filesystem access of the stage.

pub mod decide;
pub mod filters;
pub mod import;
pub mod items;
pub mod package;
pub mod packer;
pub mod progress;
pub mod rules;
pub mod run;
pub mod scan;

use crate::plan::{Plan, Task};
use crate::report::scan::{Readiness, ScanReport};
use scan::{ScanError, ScanTotals};

/// What scanning one task found.
#[derive(Debug)]
pub struct TaskScan {
    pub totals: ScanTotals,
    pub readiness: Readiness,
    /// The summary a person reads.
    pub text: String,
    /// What will not migrate, by code.
    pub not_migrated: Vec<crate::report::scan::NotMigrated>,
}

/// Scans one task (its roots already checked with [`scan::check_access`]) and writes its
/// readiness reports, as those of the round a run would do next.
pub fn scan_task(
    plan: &Plan,
    task: &Task,
    round: u32,
    threads: usize,
) -> Result<TaskScan, ScanError> {
    scan_task_with(plan, task, round, threads, &mut |_| Ok(()))
}

/// [`scan_task`], also handing every scanned entry to `also` (the run's item list).
pub fn scan_task_with(
    plan: &Plan,
    task: &Task,
    round: u32,
    threads: usize,
    also: &mut dyn FnMut(&scan::ScanEntry) -> Result<(), ScanError>,
) -> Result<TaskScan, ScanError> {
    let folder = crate::session::layout::TaskLayout::of(plan, &task.name).reports(round);
    let mut report = ScanReport::create(folder, round, task)?;
    let now = jiff::Timestamp::now().as_nanosecond();
    let totals = scan::scan(task, threads, now, &mut |entry| {
        report.entry(entry).map_err(ScanError::from)?;
        also(entry)
    })?;
    let (text, not_migrated) = report.finish(task, &totals, &device_name())?;
    Ok(TaskScan {
        readiness: Readiness::of(&totals),
        totals,
        text,
        not_migrated,
    })
}

/// Threads that walk a source unless `--workers` says otherwise: one per CPU, and one
/// more, because the thread that takes the walk's results in order spins while it waits
/// (measured in BENCHMARKS.md). Shares with slow metadata (NFS, SMB) gain from more.
pub fn default_walk_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 1
}

/// This machine's name, for the reports' "Device name" column.
pub fn device_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
