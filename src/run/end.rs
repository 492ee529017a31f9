//! The end of a round: the folders' modes and times, the index, mirrored deletions,
//! the reports, the session, and what goes with the round's key; or the hand-over note
//! of a staging run; or the reports of a paused or halted one.

use super::*;

/// What a run of the round leaves to its end.
pub(super) struct Ending<'a> {
    pub(super) scanned: &'a Scanned,
    pub(super) key: &'a KeyFile,
    pub(super) container: &'a dyn Container,
    pub(super) destination: Option<&'a Destination>,
    pub(super) items_report: Option<ItemReport>,
    pub(super) unjournaled: Vec<(Option<u64>, ItemRecord)>,
    pub(super) ids: &'a RoundIds,
    pub(super) produced: u64,
    pub(super) halted: Option<String>,
}

impl Round<'_> {
    /// Ends the run of the round: whatever happened, the round's reports say so.
    pub(super) fn end(
        &self,
        session: &mut Session,
        mut run: TaskRun,
        mut tally: Counters,
        ending: Ending<'_>,
    ) -> Result<TaskRun, RunError> {
        let (plan, task, round) = (self.plan, self.task, run.round);
        let state = self.layout.round(round);
        let journal_path = state.journal();
        let binding = journal::binding(&plan.name, &task.name, round);
        // Every run of the round, as journalled: for the folders, the index and the
        // reports.
        let entries = journal::read(&journal_path, binding)
            .map_err(SessionError::from)?
            .entries;
        let interrupted = run.interrupted;
        // A run that does not complete the round sets its folders now; one that does,
        // after the round's mirrored deletions, which change their folders' times.
        let completes = self.stages.import && !interrupted && ending.halted.is_none();
        if let Some(destination) = ending.destination
            && !interrupted
            && ending.halted.is_none()
            && !completes
        {
            set_folders(
                destination,
                &entries,
                &state.items(),
                plan.shard,
                None,
                &mut tally,
            )?;
        }
        if let Some(destination) = ending.destination {
            // Attributes and ACLs the destination would not keep: findings of the
            // round, about items that are in place.
            for (path, code, message) in destination.take_notes() {
                tally.fail(&path, code, &message);
            }
        }
        session.progress.items_done = tally.imported + tally.unchanged;
        session.progress.bytes_done = tally.bytes;
        session.progress.failed = tally.failed();
        session.progress.packages_done = tally.packages + run.packages_done_before;
        session.progress.packages = ending.produced;
        run.counters = tally;
        let reports = self.layout.reports(round);
        let write_reports = |session: &Session, run: &TaskRun, status: &str, items_report| {
            round_reports(
                plan,
                task,
                session,
                ending.scanned,
                run,
                status,
                items_report,
                &ending.unjournaled,
                &entries,
                ending.ids,
                &reports,
            )
        };
        if let Some(reason) = ending.halted {
            // A full disk (or a journal that cannot be written): nothing more was
            // started, and the round stays open for the run that follows the fix.
            session.status = SessionStatus::Failed;
            let _ = session.save(self.folder);
            write_reports(session, &run, "failed", ending.items_report)?;
            return Err(RunError::Halted {
                task: task.name.clone(),
                round,
                reason,
            });
        }
        if interrupted {
            session.status = SessionStatus::Paused;
            session.save(self.folder)?;
            write_reports(session, &run, "paused", ending.items_report)?;
            return Ok(run);
        }
        if self.stages.import {
            let settled = self.settle(&mut run, &ending, &entries);
            session.progress.failed = run.counters.failed();
            settled?;
            // The reports first, then the session: a run killed in between completes
            // the round again (every package is journalled) and writes them again. The
            // key and the hand-over note go last: until the session says completed, an
            // import-only run needs them to resume.
            write_reports(session, &run, "completed", ending.items_report)?;
            session.status = SessionStatus::Completed;
            session.dirty = false;
            session.temp_salts.clear();
            session.last_result = Some(last_result(round, &run));
            session.save(self.folder)?;
            let _ = fs::remove_file(self.layout.key(round));
            let _ = fs::remove_file(state.staged());
            return Ok(run);
        }
        let staged_path = state.staged();
        let note = serde_json::to_vec_pretty(&Staged {
            version: 1,
            container: ending.key.container_name(),
            packages: ending.produced,
            ticket: self.control.hand_over,
        })
        .unwrap_or_default();
        state::write_atomic(&staged_path, &note).map_err(|source| RunError::Io {
            what: "write the hand-over note",
            path: staged_path.clone(),
            source,
        })?;
        write_reports(session, &run, "staged", ending.items_report)?;
        session.status = SessionStatus::Paused;
        session.save(self.folder)?;
        run.handed_over = Some(self.layout.key(round));
        if self.control.hand_over {
            run.for_ticket =
                Some(self.hand_over(ending.key, ending.container, round, ending.produced)?);
        }
        Ok(run)
    }

    /// The round is complete: what it moved joins the index, mirrored deletions are
    /// made, and the staged data goes (the key that opens it goes after the reports).
    fn settle(
        &self,
        run: &mut TaskRun,
        ending: &Ending<'_>,
        entries: &[Entry],
    ) -> Result<(), RunError> {
        // The round is complete: what it moved joins the index; the staged data and
        // the key that opens it go.
        let index_path = self.layout.index();
        let mut index = Index::load(&index_path).map_err(SessionError::from)?;
        fold(&mut index, entries);
        note_change_times(&mut index, &self.layout.round(run.round).items());
        if let Some(destination) = ending.destination {
            run.counters.deleted = mirror_deletions(
                self.task,
                self.plan.shard,
                ending.scanned,
                destination,
                &mut index,
                self.control.force,
                &mut run.counters,
            );
        }
        index.save(&index_path).map_err(SessionError::from)?;
        // The folders' modes and times, after the deletions that changed them.
        if let Some(destination) = ending.destination {
            set_folders(
                destination,
                entries,
                &self.layout.round(run.round).items(),
                self.plan.shard,
                Some((&index, &ending.scanned.deletions)),
                &mut run.counters,
            )?;
        }
        // A ticket's round: the result goes back to the staging side, which deletes
        // the container (this side holds no account key). Until it is back, the round
        // is not complete here: the next run with the ticket tries again.
        if self.control.ticket.is_some() {
            return self
                .hand_back(ending.key, run.round)
                .map_err(|source| RunError::Staging {
                    what: "hand the round's result back (the staging side deletes the container once it has it)",
                    container: ending.key.container_name(),
                    staging: self.staging.describe(),
                    source,
                });
        }
        // Whatever is left in the container (objects refused as tampered, or never
        // consumed) could never be opened once the key goes: it goes first
        // (finding 12).
        if let Err(e) = self.staging.discard(&ending.key.container_name()) {
            run.counters.fail(
                Path::new(&self.staging.describe()),
                CLEANUP_FAILED,
                &format!("the round's staged data could not be deleted: {e}"),
            );
        }
        Ok(())
    }

    /// A round with nothing new, changed or gone is complete as it is: no key, container,
    /// journal or destination is opened (a no-change re-run costs little more than the
    /// scan).
    pub(super) fn complete_unchanged(
        &self,
        session: &mut Session,
        run: TaskRun,
        scanned: &Scanned,
        ids: &RoundIds,
    ) -> Result<TaskRun, RunError> {
        let round = run.round;
        let _ = fs::remove_file(self.layout.key(round));
        session.status = SessionStatus::Completed;
        session.last_result = Some(last_result(round, &run));
        session.save(self.folder)?;
        let reports = self.layout.reports(round);
        let empty = ItemReport::start(&reports, ids.clone(), &[]).map_err(report_error)?;
        round_reports(
            self.plan,
            self.task,
            session,
            scanned,
            &run,
            "completed",
            Some(empty),
            &[],
            &[],
            ids,
            &reports,
        )?;
        Ok(run)
    }
}

/// Every folder of the round that is in place gets its mode and time, also those an
/// earlier, interrupted run of the round created; a folder whose package failed is not
/// there to be given anything.
///
/// A shard leaves the folders above the units to `ferry finish`: other shards still
/// write into them, and a read-only mode set now would keep them out.
///
/// A folder that did not change at the source but had items written into it or
/// deleted from it (a file changed in place, a deletion held back by `max_delete` the
/// round before) gets back the time the index recorded for it.
fn set_folders(
    destination: &Destination,
    entries: &[Entry],
    items_path: &Path,
    shard: Option<crate::plan::shard::Shard>,
    touched: Option<(&Index, &[PathBuf])>,
    tally: &mut Counters,
) -> Result<(), RunError> {
    let in_place: HashSet<&[u8]> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Imported { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .filter(|r| r.kind == package::KIND_FOLDER && matches!(r.result, ItemResult::Done { .. }))
        .map(|r| r.path.as_slice())
        .collect();
    let mut folders = Vec::new();
    for item in ItemReader::open(items_path).map_err(io_error("read the item list", items_path))? {
        let item = item.map_err(io_error("read the item list", items_path))?;
        let spine = shard.is_some() && crate::plan::shard::Shard::is_spine(&item.rel);
        if item.kind == ItemKind::Folder
            && !spine
            && in_place.contains(item.rel.as_os_str().as_bytes())
        {
            folders.push((item.rel, item.meta.mode, item.meta.mtime_ns));
        }
    }
    if let Some((index, deleted)) = touched {
        let listed: HashSet<PathBuf> = folders.iter().map(|f| f.0.clone()).collect();
        // Borrowed from the records: no allocation per item, one per folder.
        let written = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Imported { items, .. } => Some(items),
                _ => None,
            })
            .flatten()
            .filter(|r| matches!(r.result, ItemResult::Done { .. }))
            .map(|r| Path::new(OsStr::from_bytes(&r.path)));
        let parents: std::collections::BTreeSet<&Path> = written
            .chain(deleted.iter().map(PathBuf::as_path))
            .filter_map(Path::parent)
            .filter(|p| !p.as_os_str().is_empty() && !listed.contains(*p))
            .filter(|p| shard.is_none() || !crate::plan::shard::Shard::is_spine(p))
            .collect();
        for parent in parents {
            let Some(known) = index.items.get(parent.as_os_str().as_bytes()) else {
                continue;
            };
            let Ok(meta) = fs::symlink_metadata(destination.root().join(parent)) else {
                continue;
            };
            if known.kind == package::KIND_FOLDER && meta.is_dir() {
                folders.push((parent.to_path_buf(), meta.mode(), known.mtime_ns));
            }
        }
    }
    destination.set_folders(folders);
    for outcome in destination.finish() {
        if let Outcome::Failed { path, message, .. } = outcome {
            // The folder and its contents are in place: a finding of the round, not a
            // second state of the item.
            tally.fail(&path, METADATA_FAILED, &message);
        }
    }
    Ok(())
}

/// Records in the index each item's change time as the round's scan saw it, where the
/// index now holds what the round brought (the item's size and modification time): a
/// later change time alone is then a change of metadata. A list that cannot be read
/// leaves them unknown (the next round compares content as before).
fn note_change_times(index: &mut Index, items_path: &Path) {
    let Ok(reader) = ItemReader::open(items_path) else {
        return;
    };
    for item in reader {
        let Ok(item) = item else { return };
        if let Some(known) = index.items.get_mut(item.rel.as_os_str().as_bytes())
            && known.size == item.meta.size
            && known.mtime_ns == item.meta.mtime_ns
        {
            known.ctime_ns = item.meta.ctime_ns;
        }
    }
}

/// Folds the Imported records of a round's journal into the index. A file found gone
/// from the destination when only its metadata was to change leaves the index, so that
/// the next round brings it whole.
pub(super) fn fold(index: &mut Index, entries: &[Entry]) {
    for entry in entries {
        if let Entry::Imported { items, .. } = entry {
            for record in items {
                if let ItemResult::Done {
                    mtime_ns,
                    hash,
                    dest_mtime_ns,
                    ..
                } = record.result
                {
                    index.items.insert(
                        record.path.clone(),
                        Indexed {
                            kind: record.kind,
                            size: record.size,
                            mtime_ns,
                            hash,
                            dest_mtime_ns,
                            ctime_ns: 0,
                        },
                    );
                } else if let ItemResult::Failed { code, .. } = &record.result
                    && code == FailureCode::DestinationGone.as_str()
                {
                    index.items.remove(&record.path);
                }
            }
        }
    }
}

/// Deletes the staged data the key file at `key_path` opens, then the key file (the
/// key expired, or its round was set aside or forgotten: nobody could ever import the
/// data). When the data cannot be deleted, the key stays, so that a later run can try
/// again, and the error says where (finding 12).
pub fn discard_staged(staging: &dyn Staging, key_path: &Path) -> Result<(), RunError> {
    if let Ok(key) = KeyFile::read(key_path, i64::MIN) {
        let name = key.container_name();
        staging.discard(&name).map_err(|source| RunError::Staging {
            what: "delete the staged data of an expired or abandoned round",
            container: name.clone(),
            staging: staging.describe(),
            source,
        })?;
    }
    match fs::remove_file(key_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RunError::Io {
            what: "delete the key file",
            path: key_path.to_path_buf(),
            source,
        }),
    }
}

/// Mirrors the round's source deletions at the destination, within `max_delete` unless
/// `force`; returns how many items were deleted. Whatever is deleted (or found changed
/// by someone else, and so no longer ferry's) leaves the index.
///
/// A shard mirrors the deletions of its own units. The folders above the units hold
/// other shards' items until those shards have run: `ferry finish` removes them.
/// `max_delete.items` is shared out: each of N shards may delete its Nth part.
fn mirror_deletions(
    task: &Task,
    shard: Option<crate::plan::shard::Shard>,
    scanned: &Scanned,
    destination: &Destination,
    index: &mut Index,
    force: bool,
    counters: &mut Counters,
) -> u64 {
    let deletions: Vec<&PathBuf> = scanned
        .deletions
        .iter()
        .filter(|path| {
            shard.is_none()
                || !crate::plan::shard::Shard::is_spine(path)
                || index
                    .items
                    .get(path.as_os_str().as_bytes())
                    .is_none_or(|known| known.kind != package::KIND_FOLDER)
        })
        .collect();
    let n = deletions.len() as u64;
    if n == 0 {
        return 0;
    }
    let mut cap = task.settings.max_delete;
    if let Some(shard) = shard {
        cap.items = cap.items.div_ceil(u64::from(shard.count));
    }
    let over_items = n > cap.items;
    let over_percent = n * 100 > u64::from(cap.percent) * scanned.indexed.max(1);
    if (over_items || over_percent) && !force {
        counters.fail(
                Path::new("(deletions)"),
                FailureCode::DeleteCapped.as_str(),
                &format!(
                "{n} items are gone from the source, more than `max_delete` allows ({} items, {}% of {}); nothing was deleted. Check the source, then run with `--force` to mirror them",
                cap.items, cap.percent, scanned.indexed
            ),
        );
        return 0;
    }
    let mut deleted = 0;
    for path in deletions {
        let key = path.as_os_str().as_bytes();
        let Some(known) = index.items.get(key).copied() else {
            continue;
        };
        match destination.remove(path, &known) {
            crate::import::Removal::Removed => {
                deleted += 1;
                index.items.remove(key);
            }
            crate::import::Removal::Gone => {
                index.items.remove(key);
            }
            crate::import::Removal::Changed => {
                index.items.remove(key);
                counters.fail(
                path,
                FailureCode::DeleteKept.as_str(),
                "gone from the source, but changed at the destination since ferry wrote it (or a folder that is not empty); it was kept",
                );
            }
            crate::import::Removal::Failed(e) => counters.fail(
                path,
                FailureCode::DeleteFailed.as_str(),
                &format!("cannot delete: {e}"),
            ),
        }
    }
    deleted
}

/// What a completed round did, from its `round.json`.
pub(super) fn completed_result(layout: &TaskLayout, round: u32) -> Option<TaskRun> {
    let summary = RoundSummary::load(&layout.reports(round)).ok()?;
    if summary.status != "completed" {
        return None;
    }
    Some(TaskRun {
        round,
        resumed: true,
        counters: Counters {
            imported: summary.stages.imported,
            bytes: summary.bytes_imported,
            unchanged: summary.stages.already_at_destination,
            deleted: summary.stages.deleted,
            failures: summary
                .failures
                .into_iter()
                .map(|f| (f.code, (f.count, f.examples)))
                .collect(),
            ..Counters::default()
        },
        unchanged_since_last_round: summary.scan.unchanged,
        not_migrated: summary.scan.errors,
        ..TaskRun::default()
    })
}

/// A folder's mode or time could not be set at the round's end: the folder is in place.
const METADATA_FAILED: &str = FailureCode::MetadataFailed.as_str();
/// The round's staged data could not be deleted with its key.
const CLEANUP_FAILED: &str = FailureCode::CleanupFailed.as_str();
