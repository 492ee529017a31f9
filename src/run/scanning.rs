//! A task's scan as a command sees it: the walk, and the readiness reports written as it
//! goes, as those of the round a run would do next.

use crate::plan::{Plan, Task};
use crate::report::scan::{Readiness, ScanReport};
use crate::scan::{self, ScanError, ScanTotals};

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

/// Scans one task (its roots already checked with [`super::check_access`]) and writes its
/// readiness reports, as those of the round a run would do next.
pub fn scan_task(
    plan: &Plan,
    task: &Task,
    round: u32,
    threads: Option<usize>,
) -> Result<TaskScan, ScanError> {
    scan_task_with(plan, task, round, threads, &mut |_| Ok(()))
}

/// [`scan_task`], also handing every scanned entry to `also` (the run's item list).
pub fn scan_task_with(
    plan: &Plan,
    task: &Task,
    round: u32,
    threads: Option<usize>,
    also: &mut dyn FnMut(&scan::ScanEntry) -> Result<(), ScanError>,
) -> Result<TaskScan, ScanError> {
    let folder = crate::state::layout::TaskLayout::of(plan, &task.name).reports(round);
    let mut report = ScanReport::create(folder, round, task)?;
    let now = jiff::Timestamp::now().as_nanosecond();
    let totals = scan::scan(task, plan.shard, threads, now, &mut |entry| {
        report.entry(entry).map_err(ScanError::from)?;
        also(entry)
    })?;
    let (text, not_migrated) = report.finish(task, &totals, &crate::state::device_name())?;
    Ok(TaskScan {
        readiness: Readiness::of(&totals),
        totals,
        text,
        not_migrated,
    })
}
