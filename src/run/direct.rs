//! Direct mode in a worker (`staging: {kind: none}`): a package's items copied straight
//! from the source into the destination, then journalled as imported; a file in parts
//! copied part by part into its assembly, each part journalled once durable. Nothing is
//! sealed or staged; the scan, the rules, the journal, resume and the reports are the
//! staged mode's.

use super::worker::{Shared, failed_record, outcome_records};
use super::*;
use crate::import::direct::{self, Part};
use crate::package::sparse::Whole;
use crate::plan::raw::Verify;

impl Shared<'_> {
    /// Copies package `id`'s items into the destination and journals them. A file that
    /// changed while it was copied is copied again after the task's backoff, up to its
    /// `retries.attempts` in all, as a staged run reads it again.
    pub(super) fn direct_package(&self, id: u64, items: &[Arc<Item>], tally: &mut Counters) {
        let Some(destination) = self.destination else {
            return;
        };
        let carry = package::xattr::Carry::of(&self.task.settings.preserve);
        let retry = (
            self.task.settings.retries.attempts,
            self.task.settings.retries.backoff.as_std(),
        );
        let mut records = Vec::new();
        let mut outcomes = Vec::new();
        let mut todo: Vec<Arc<Item>> = items.to_vec();
        // Every attempt goes into one batch, committed and journalled once: a file
        // read again never leaves the others in place without a record.
        let mut copies = direct::Copies::new(destination);
        let attempts = retry.0.max(1);
        let mut made = 0;
        let mut changed_before = Vec::new();
        loop {
            if made > 0 && !self.pause(&todo, made, retry) {
                // A run that is stopping reads nothing again: the next round does.
                outcomes.append(&mut changed_before);
                break;
            }
            let (read, unread) = copies.read(&todo, carry);
            made += 1;
            for (index, failed) in unread {
                if let Packed::Failed { code, message } = failed {
                    records.push(failed_record(&todo[index], code, message));
                }
            }
            let read = match read {
                Ok(read) => read,
                Err(refused) => {
                    // Nothing of the batch is committed: every item fails, and the
                    // round's next run copies them again.
                    copies.abandon();
                    let code = match refused {
                        crate::import::Refused::Hash(_) => FailureCode::VerifyFailed,
                        _ => FailureCode::WriteFailed,
                    };
                    for item in items {
                        self.fail(
                            tally,
                            Some(id),
                            item,
                            code.as_str(),
                            &format!("package {id} could not be copied ({refused}); nothing of it was put in place, and the next run of the round copies it again"),
                        );
                    }
                    return;
                }
            };
            let (changed, settled): (Vec<Outcome>, Vec<Outcome>) =
                read.into_iter().partition(changed);
            outcomes.extend(settled);
            if changed.is_empty() || made >= attempts {
                outcomes.extend(changed);
                break;
            }
            todo.retain(|item| changed.iter().any(|o| is_of(o, item)));
            changed_before = changed;
        }
        outcomes.extend(copies.commit());
        for outcome in &mut outcomes {
            if changed(outcome)
                && let Outcome::Failed { message, .. } = outcome
                && let Packed::Failed { message: every, .. } = package::changed_every_time(made)
            {
                *message = every;
            }
        }
        if self.destination_full(&outcomes) {
            return;
        }
        let mut records = self.with_links(records);
        records.extend(outcome_records(outcomes, items));
        self.journal_package(id, records, tally);
    }

    /// Copies part `part` of a file in parts into its assembly and journals it; `Some`
    /// with whether the file held still when the part is in (the file fails when it did
    /// not), `None` when the file cannot go on (its failure recorded, or the run
    /// stopping).
    #[expect(clippy::too_many_arguments, reason = "one part's every fact")]
    pub(super) fn direct_part(
        &self,
        id: u64,
        first_id: u64,
        item: &Item,
        (file, at_open): (&fs::File, &fs::Metadata),
        (part, parts, part_size): (u32, u32, u64),
        whole: &mut Whole,
        outcomes: &mut Vec<Outcome>,
        whole_file: &mut Option<journal::WholeFile>,
        tally: &mut Counters,
    ) -> Option<bool> {
        let destination = self.destination?;
        let carry = package::xattr::Carry::of(&self.task.settings.preserve);
        let (imported, ok) = direct::import_part(
            destination,
            Part {
                item,
                file,
                at_open,
                part,
                parts,
                part_size,
                whole,
                verify: self.task.settings.verify != Verify::None,
            },
            carry,
        );
        match imported {
            Ok(o) => self
                .took_part(first_id, o, outcomes, whole_file, tally)
                .then_some(ok),
            Err(refused) => {
                destination.assembly_failed(&item.rel);
                self.fail(
                    tally,
                    Some(id),
                    item,
                    FailureCode::WriteFailed.as_str(),
                    &format!("part {part} could not be copied ({refused}); the file was not committed, and the next run of the round copies it again"),
                );
                None
            }
        }
    }

    /// Waits before attempt `made + 1` at the files of `todo`, which changed while they
    /// were copied (one wait for them all, each retry logged); false, at once, when the
    /// run is stopping.
    fn pause(&self, todo: &[Arc<Item>], made: u32, retry: (u32, std::time::Duration)) -> bool {
        let mut wait = std::time::Duration::ZERO;
        for item in todo {
            wait = package::note_retry(item, made, retry);
        }
        let until = std::time::Instant::now() + wait;
        while !self.stopping() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
        }
        false
    }
}

/// A file discarded because it changed while it was copied.
fn changed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed { code, .. } if *code == FailureCode::ChangedDuringRead.as_str())
}

/// Whether `outcome` is `item`'s.
fn is_of(outcome: &Outcome, item: &Item) -> bool {
    match outcome {
        Outcome::Failed { path, .. } => *path == item.rel,
        _ => false,
    }
}
