//! Before a task starts: its roots can be used. Nothing is read and nothing is left
//! behind; the only writes are probe files, created and removed.

use std::fs;

use crate::plan::{Plan, Task};
use crate::scan::ScanError;

use super::RunError;

/// Proves, before anything is read, that the task's roots can be used: the source can
/// be listed, and a file can be created (and removed) in the destination and the
/// staging folder — or, where they do not exist yet, in the nearest folder above them,
/// where ferry will create them. Nothing else is written.
pub fn check_access(plan: &Plan, task: &Task) -> Result<(), ScanError> {
    let source = &task.source;
    match fs::metadata(source) {
        Ok(m) if !m.is_dir() => {
            return Err(ScanError::SourceNotFolder {
                path: source.clone(),
            });
        }
        Ok(_) => {}
        Err(e) => {
            return Err(ScanError::SourceUnreadable {
                path: source.clone(),
                source: e,
            });
        }
    }
    if let Err(e) = fs::read_dir(source).and_then(|mut d| d.next().transpose()) {
        return Err(ScanError::SourceUnreadable {
            path: source.clone(),
            source: e,
        });
    }
    check_import_access(plan, task)
}

/// For a run that only imports: the destination must be writable; the source may well
/// be on another machine. (The staging is checked through its backend by the run.)
pub fn check_import_access(_plan: &Plan, task: &Task) -> Result<(), ScanError> {
    crate::state::probe(&task.destination).map_err(|(probed, e)| ScanError::DestinationUnwritable {
        path: task.destination.clone(),
        probed,
        source: e,
    })
}

/// Checks, before any task starts, that the task's staging can be written.
pub fn check_staging(plan: &Plan, task: &Task) -> Result<(), RunError> {
    let unusable = |source| RunError::StagingUnwritable {
        staging: plan.staging.kind.as_str().to_string(),
        source,
    };
    let staging = crate::staging::open(&plan.staging, task.settings.retries).map_err(unusable)?;
    staging
        .probe()
        .map_err(|source| RunError::StagingUnwritable {
            staging: staging.describe(),
            source,
        })
}
