//! What a run says: the round's reports at its end, and the summary a person reads.

use super::*;

/// How a completed round ended, for the session.
pub(super) fn last_result(round: u32, run: &TaskRun) -> state::LastResult {
    state::LastResult {
        round,
        ended_at: state::now_text(),
        imported: run.counters.imported,
        bytes: run.counters.bytes,
        unchanged: run.counters.unchanged + run.unchanged_since_last_round,
        failed: run.failed(),
        deleted: run.counters.deleted,
    }
}

pub(super) fn report_error(e: crate::report::ReportError) -> RunError {
    RunError::Io {
        what: "write the round's reports in",
        path: e.path,
        source: e.source,
    }
}

/// Writes the round's reports at the end of a run: the round summary (`round.json`),
/// `ItemSummary_R<n>.csv` and `ItemFailureReport_R<n>.csv`, from the journal (every
/// run of the round) and this run's failures that no journal record holds.
#[expect(clippy::too_many_arguments, reason = "a round's every fact")]
pub(super) fn round_reports(
    plan: &Plan,
    task: &Task,
    session: &Session,
    scanned: &Scanned,
    run: &TaskRun,
    status: &str,
    items_report: Option<ItemReport>,
    unjournaled: &[(Option<u64>, ItemRecord)],
    entries: &[Entry],
    ids: &RoundIds,
    folder: &Path,
) -> Result<(), RunError> {
    if let Some(report) = items_report {
        report.finish().map_err(report_error)?;
    }
    let mut records: Vec<(Option<u64>, u64, &ItemRecord)> = Vec::new();
    for entry in entries {
        match entry {
            Entry::Imported {
                first, items, job, ..
            } => {
                records.extend(items.iter().map(|r| (Some(*first), *job, r)));
            }
            Entry::Staged {
                package,
                items,
                job,
                ..
            } if status == "staged" => {
                records.extend(items.iter().map(|r| (Some(*package), *job, r)));
            }
            Entry::Staged { .. } | Entry::Part { .. } | Entry::Block { .. } => {}
        }
    }
    records.extend(unjournaled.iter().map(|(p, r)| (*p, ids.job, r)));
    crate::report::round::write_failures(folder, ids, &records).map_err(report_error)?;
    let ended = jiff::Timestamp::now();
    let started = session
        .round_started_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .unwrap_or(ended);
    let seconds = u64::try_from(ended.as_second() - started.as_second()).unwrap_or(0);
    let (stages, failures) = RoundSummary::stages(
        &scanned.counts,
        run.counters.imported,
        run.counters.unchanged,
        run.counters.deleted,
        &run.counters.failures,
    );
    let summary = RoundSummary {
        version: crate::report::round::ROUND_SUMMARY_VERSION,
        plan: plan.name.clone(),
        task: task.name.clone(),
        round: ids.round,
        status: status.to_string(),
        source: crate::shown::escape_path(&task.source).into_owned(),
        destination: crate::shown::escape_path(&task.destination).into_owned(),
        device: ids.device.clone(),
        started_at: state::time_text(started),
        ended_at: state::time_text(ended),
        duration_seconds: seconds,
        scan: scanned.counts.clone(),
        stages,
        bytes_imported: run.counters.bytes,
        gb_per_hour: crate::report::round::gb_per_hour(run.counters.bytes, seconds.max(1)),
        failures,
    };
    summary.save(folder).map_err(report_error)?;
    summary.write_item_summary(folder).map_err(report_error)?;
    Ok(())
}

/// The run's summary for a person: what was imported or staged, and what failed, by
/// code with examples.
pub fn summary(task: &Task, run: &TaskRun) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if run.already_imported {
        let _ = writeln!(
            out,
            "run {}: round {} was imported here already; nothing to do (stage a new round for the next ticket)",
            task.name, run.round
        );
        return out;
    }
    match (&run.for_ticket, &run.handed_over) {
        (ticket, Some(key)) => {
            let how = match ticket {
                Some(_) => "at the destination's site with the ticket".to_string(),
                None => format!(
                    "with `ferry run --stages import` (key file {})",
                    key.display()
                ),
            };
            let _ = writeln!(
                out,
                "run {}: staged {} package{}; import them {how}",
                task.name,
                run.counters.staged,
                if run.counters.staged == 1 { "" } else { "s" },
            );
        }
        (_, None) => {
            let _ = writeln!(
                out,
                "run {}: imported {} item{} ({}) into {}; {} already up to date; {} deleted; {} failed",
                task.name,
                run.counters.imported,
                if run.counters.imported == 1 { "" } else { "s" },
                bytesize::ByteSize(run.counters.bytes).display().iec(),
                crate::shown::escape_path(&task.destination),
                run.counters.unchanged,
                run.counters.deleted,
                run.failed()
            );
        }
    }
    for (code, (n, examples)) in &run.counters.failures {
        let label = if crate::failure::is_warning(code) {
            "warning"
        } else {
            "failed "
        };
        let _ = writeln!(out, "  {label} {code:<22} {n:>6}  {}", examples.join("; "));
    }
    out
}
