//! Files in parts, in a worker: staged part by part (unless an earlier run of the round
//! did), each part imported, journalled once durable and only then deleted from
//! staging, and the file committed once every part is in. A run that resumes the round
//! takes the file up after its last journalled part.

use super::worker::{NOT_STAGED, Shared, failed_record, one_per_item, outcome_records};
use super::*;

/// One file in parts, as a worker sees it.
struct FileParts {
    first_id: u64,
    last_id: u64,
    parts: u32,
    part_size: u64,
    item: Arc<Item>,
}

/// Where a file in parts stands: the next part to stage or import, what the whole file
/// must be once every part is in, and the outcomes so far.
struct Progress {
    start: u32,
    whole_file: Option<journal::WholeFile>,
    outcomes: Vec<Outcome>,
}

impl Shared<'_> {
    /// A file in parts: staged (unless an earlier run of the round did) and imported
    /// part by part, each part journalled once it is durable at the destination (and
    /// only then deleted from staging), the file once it is whole. A run that resumes
    /// the round takes the file up after its last journalled part.
    pub(super) fn parts(
        &self,
        first_id: u64,
        count: u64,
        part_size: u64,
        item: Arc<Item>,
        tally: &mut Counters,
    ) {
        let file = FileParts {
            first_id,
            last_id: first_id + count.max(1) - 1,
            parts: u32::try_from(count).unwrap_or(u32::MAX),
            part_size,
            item,
        };
        if self.done.contains(&first_id) {
            return;
        }
        let Some((start, whole_file)) =
            self.resume_point(first_id, file.last_id, &file.item, tally)
        else {
            return;
        };
        let mut at = Progress {
            start,
            whole_file,
            outcomes: Vec::new(),
        };
        let ids = first_id + u64::from(start)..=file.last_id;
        let all_staged = ids.clone().all(|id| self.staged.contains_key(&id));
        let available = all_staged
            || (!self.send
                && ids
                    .clone()
                    .all(|id| self.staged.contains_key(&id) || self.present(id)));
        let complete = if available && self.import {
            ids.into_iter().all(|id| {
                !self.stopping()
                    && self.import_part(
                        id,
                        first_id,
                        &file.item,
                        &mut at.outcomes,
                        &mut at.whole_file,
                        tally,
                    )
            })
        } else if self.send {
            self.send_parts(&file, &mut at, tally) && self.import
        } else {
            self.staged_failures(&file, tally);
            false
        };
        if complete {
            self.commit_parts(&file, at, tally);
        }
    }

    /// Stages the parts of a file from `at.start` on, importing each too when this run
    /// imports; true when every part is in.
    fn send_parts(&self, f: &FileParts, at: &mut Progress, tally: &mut Counters) -> bool {
        let item = &f.item;
        let (file, at_open) = match package::open_checked(item) {
            Ok(opened) => opened,
            Err(failed) => {
                self.unreadable_parts(f, failed, tally);
                return false;
            }
        };
        let carry = package::xattr::Carry::of(&self.task.settings.preserve);
        let Some(mut whole) = self.whole_so_far(f, at, (&file, &at_open), carry, tally) else {
            return false;
        };
        for part in at.start..f.parts {
            if self.stopping() {
                return false;
            }
            let id = f.first_id + u64::from(part);
            if self.direct {
                let held = self.direct_part(
                    id,
                    f.first_id,
                    item,
                    (&file, &at_open),
                    (part, f.parts, f.part_size),
                    &mut whole,
                    &mut at.outcomes,
                    &mut at.whole_file,
                    tally,
                );
                match held {
                    Some(true) => continue,
                    // The importer has discarded the file; the rest is not read.
                    Some(false) => break,
                    None => return false,
                }
            }
            let mut ok = true;
            let built = self.build_and_put(id, f.part_size, &mut |out, records| {
                *records += 1;
                ok = package::add_part(
                    out,
                    item,
                    &file,
                    &at_open,
                    part,
                    f.parts,
                    f.part_size,
                    carry,
                    &mut whole,
                )?;
                Ok(Vec::new())
            });
            if let Err(e) = built {
                if !self.staging_full(&e) {
                    self.fail(
                        tally,
                        Some(id),
                        item,
                        FailureCode::StageFailed.as_str(),
                        &format!("package {id} could not be staged: {e}"),
                    );
                }
                return false;
            }
            if !self.import {
                if !self.journal_staged_part(id, item, ok, tally) || !ok {
                    return false;
                }
                continue;
            }
            if !self.import_part(
                id,
                f.first_id,
                item,
                &mut at.outcomes,
                &mut at.whole_file,
                tally,
            ) {
                return false;
            }
            if !ok {
                // The importer has discarded the file; the rest is not read.
                break;
            }
        }
        true
    }

    /// The whole file's hash over the parts an earlier run of the round already put at
    /// the destination (they are not staged again, but read again to be hashed), or a
    /// fresh one when there are none; a file changed since its first parts starts over
    /// (`at` reset). `None` when the file changed while those parts were hashed: its
    /// failure is recorded.
    fn whole_so_far(
        &self,
        f: &FileParts,
        at: &mut Progress,
        (file, at_open): (&fs::File, &fs::Metadata),
        carry: package::xattr::Carry,
        tally: &mut Counters,
    ) -> Option<package::sparse::Whole> {
        let item = &f.item;
        // The parts already at the destination were read from the file as the scan saw
        // it: a file changed since starts over (its new parts must not join the old
        // ones).
        let as_scanned = at_open.len() == item.meta.size
            && i128::from(at_open.mtime()) * 1_000_000_000 + i128::from(at_open.mtime_nsec())
                == item.meta.mtime_ns;
        if at.start > 0
            && !as_scanned
            && let Some(destination) = self.destination
        {
            destination.drop_assembly(&item.rel, None);
            at.start = 0;
            at.whole_file = None;
        }
        let holes = carry.sparse && package::sparse::has_holes(file, at_open.len());
        let mut whole = package::sparse::Whole::new(holes);
        // The parts already at the destination are not staged again, but the whole
        // file's hash covers them: they are read again, only to be hashed.
        if at.start > 0 {
            let hashed =
                package::hash_range(file, at_open, u64::from(at.start) * f.part_size, &mut whole);
            if !matches!(hashed, Ok(true)) {
                if let Some(destination) = self.destination {
                    destination.assembly_failed(&item.rel);
                }
                self.fail(
                    tally,
                    Some(f.first_id),
                    item,
                    FailureCode::ChangedDuringRead.as_str(),
                    "the file changed since its first parts were imported; the next round will try again",
                );
                return None;
            }
        }
        Some(whole)
    }

    /// Journals a part this run staged and does not import (with the file's failure
    /// when it changed while the part was read); false when the journal failed.
    fn journal_staged_part(&self, id: u64, item: &Item, ok: bool, tally: &mut Counters) -> bool {
        let failed = if ok {
            Vec::new()
        } else {
            vec![failed_record(
                item,
                FailureCode::ChangedDuringRead.as_str(),
                "the file changed while it was read; the next round will try again".into(),
            )]
        };
        let failed = self.with_links(failed);
        let journalled = self.journal(
            &Entry::Staged {
                package: id,
                container: self.key.container_id,
                items: failed.clone(),
                job: self.job,
            },
            tally,
        );
        if journalled {
            tally.staged += 1;
            tally.records(&failed);
        }
        journalled
    }

    /// A file in parts that cannot be opened: one failure for the whole file.
    fn unreadable_parts(&self, f: &FileParts, failed: Packed, tally: &mut Counters) {
        let (code, message) = match failed {
            Packed::Failed { code, message } => (code, message),
            Packed::Ok => (FailureCode::ReadFailed.as_str(), String::new()),
        };
        let records = self.with_links(vec![failed_record(&f.item, code, message)]);
        let entry = if self.import {
            Entry::Imported {
                first: f.first_id,
                last: f.last_id,
                items: records.clone(),
                job: self.job,
            }
        } else {
            Entry::Staged {
                package: f.first_id,
                container: self.key.container_id,
                items: records.clone(),
                job: self.job,
            }
        };
        if self.journal(&entry, tally) {
            tally.records(&records);
            tally.packages += 1;
        }
    }

    /// An import-only run where the staging run could not stage every part: the
    /// failures it recorded are the file's result.
    fn staged_failures(&self, f: &FileParts, tally: &mut Counters) {
        let failed: Vec<ItemRecord> = (f.first_id..=f.last_id)
            .filter_map(|id| self.staged.get(&id))
            .flatten()
            .cloned()
            .collect();
        if !self.import {
            return;
        }
        if failed.is_empty() {
            self.fail(
                tally,
                None,
                &f.item,
                FailureCode::NotStaged.as_str(),
                NOT_STAGED,
            );
            return;
        }
        let failed = self.with_links(one_per_item(failed));
        if self.journal(
            &Entry::Imported {
                first: f.first_id,
                last: f.last_id,
                items: failed.clone(),
                job: self.job,
            },
            tally,
        ) {
            tally.records(&failed);
            tally.packages += 1;
        }
    }

    /// Every part is in, and journalled: the file is checked and takes its name.
    fn commit_parts(&self, f: &FileParts, mut at: Progress, tally: &mut Counters) {
        if let (Some(whole), Some(destination)) = (at.whole_file, self.destination) {
            // Direct mode hashed the bytes of every part as it wrote them, unless an
            // earlier run of the round wrote some: those are read back.
            let written_here = self.direct && at.start == 0;
            let outcome = destination.commit_assembly(&f.item.rel, &whole, written_here);
            if self.destination_full(std::slice::from_ref(&outcome)) {
                return;
            }
            at.outcomes.push(outcome);
        }
        let records = self.with_links(one_per_item(outcome_records(
            at.outcomes,
            std::slice::from_ref(&f.item),
        )));
        if !self.journal(
            &Entry::Imported {
                first: f.first_id,
                last: f.last_id,
                items: records.clone(),
                job: self.job,
            },
            tally,
        ) {
            return;
        }
        let mut t = Counters::default();
        t.records(&records);
        // The parts' bytes went to the reporter as they were written.
        let _ = self.events.send(Event::Progress {
            items: t.imported + t.unchanged,
            bytes: 0,
            failed: t.failed(),
        });
        tally.merge(t);
        tally.packages += 1;
    }

    /// Imports part package `id` of `item` (whose parts start at `first_id`): the part
    /// is journalled once durable, and only then deleted from staging. Collects the
    /// outcomes and tells the reporter the bytes; false when the file cannot go on (the
    /// failure recorded, or the run stopping).
    pub(super) fn import_part(
        &self,
        id: u64,
        first_id: u64,
        item: &Item,
        outcomes: &mut Vec<Outcome>,
        whole_file: &mut Option<journal::WholeFile>,
        tally: &mut Counters,
    ) -> bool {
        match self.import(id) {
            Ok(o) => {
                let took = self.took_part(first_id, o, outcomes, whole_file, tally);
                if took {
                    self.consumed(id);
                }
                took
            }
            Err((code, message)) => {
                // The parts already in cannot make the file: they go.
                if let Some(destination) = self.destination {
                    destination.assembly_failed(&item.rel);
                }
                self.fail(tally, Some(id), item, code, &message);
                false
            }
        }
    }

    /// A part's outcomes: each part written journalled (it is durable), the bytes told
    /// to the reporter, the outcomes collected; false when the file cannot go on (a
    /// full destination, a journal that cannot be written).
    pub(super) fn took_part(
        &self,
        first_id: u64,
        o: Vec<Outcome>,
        outcomes: &mut Vec<Outcome>,
        whole_file: &mut Option<journal::WholeFile>,
        tally: &mut Counters,
    ) -> bool {
        if self.destination_full(&o) {
            return false;
        }
        let mut bytes = 0;
        for outcome in &o {
            if let Outcome::PartWritten {
                bytes: b,
                part,
                work,
                whole,
                ..
            } = outcome
            {
                bytes += b;
                let entry = Entry::Part {
                    first: first_id,
                    part: *part,
                    work: work.clone(),
                    whole: *whole,
                };
                *whole_file = *whole;
                if !self.journal(&entry, tally) {
                    return false;
                }
            }
        }
        let _ = self.events.send(Event::Progress {
            items: 0,
            bytes,
            failed: 0,
        });
        outcomes.extend(o);
        true
    }

    /// Where an earlier run of the round left a file in parts: the next part and, when
    /// every part is in, what the whole file must be, if its assembly is still there and
    /// still ferry's own (else from the first part, what is left of it removed). `None`
    /// when that run committed the file and stopped before it could journal so: it is
    /// journalled now.
    fn resume_point(
        &self,
        first_id: u64,
        last_id: u64,
        item: &Arc<Item>,
        tally: &mut Counters,
    ) -> Option<(u32, Option<journal::WholeFile>)> {
        let (Some(destination), Some((work, next, done))) =
            (self.destination, self.in_parts.get(&first_id))
        else {
            return Some((0, None));
        };
        if !self.import {
            return Some((0, None));
        }
        if destination.resume_assembly(&item.rel, work, *next).is_ok() {
            return Some((*next, *done));
        }
        let committed = done.and_then(|w| destination.committed_already(&item.rel, &w));
        // Gone, committed, or not ferry's own: what is left of the assembly goes.
        destination.drop_assembly(&item.rel, Some(work));
        let Some(outcome) = committed else {
            return Some((0, None));
        };
        let records = self.with_links(outcome_records(vec![outcome], std::slice::from_ref(item)));
        let entry = Entry::Imported {
            first: first_id,
            last: last_id,
            items: records.clone(),
            job: self.job,
        };
        if self.journal(&entry, tally) {
            tally.records(&records);
            tally.packages += 1;
        }
        None
    }
}
