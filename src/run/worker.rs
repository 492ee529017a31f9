//! The workers of a round: each takes a package (or a file in parts) and stages it,
//! imports it, or both, journalling what became durable. What they find is merged in a
//! `Counters`; a reason to stop (a full disk) is a `Halt` they all see.

use super::links::Links;
use super::round::Upload;
use super::*;
use crate::import::OtherName;
use crate::package::reads::{Budget, ReadAhead};
use crate::staging::{BLOCK_SIZE, Blocks};

/// The first reason a run stops for (a full disk, a journal that cannot be written):
/// workers start nothing new once it is set.
#[derive(Debug, Default)]
pub(super) struct Halt {
    pub(super) set: AtomicBool,
    pub(super) reason: Mutex<Option<String>>,
}

impl Halt {
    pub(super) fn stop(&self, reason: String) {
        let mut first = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(reason);
        }
        self.set.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    pub(super) fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Whether a staging error means the service is out of reach (not that one object is
/// wrong): the run stops rather than fail every package that follows.
fn unreachable(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        NotConnected
            | ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// Tells the reporter what changed in `counters` since `before` (a [`Counters::mark`]).
pub(super) fn report_progress(
    counters: &Counters,
    before: (u64, u64, u64),
    events: &SyncSender<Event>,
) {
    let (items, bytes, failed) = counters.mark();
    let _ = events.send(Event::Progress {
        items: items - before.0,
        bytes: bytes - before.1,
        failed: failed - before.2,
    });
}

pub(super) const NOT_STAGED: &str =
    "its package is not in staging (the staging run did not finish it): stage the round again";

pub(super) fn failed_record(item: &Item, code: &str, message: String) -> ItemRecord {
    ItemRecord {
        path: item.rel.as_os_str().as_bytes().to_vec(),
        source: item.source.as_os_str().as_bytes().to_vec(),
        kind: kind_code(&item.kind),
        size: item.meta.size,
        result: ItemResult::Failed {
            code: code.to_string(),
            message,
        },
        source_id: item.meta.ino,
        dest_id: 0,
    }
}

/// Journal records of an import's outcomes; `items` give each item's source facts.
pub(super) fn outcome_records<I: std::borrow::Borrow<Item>>(
    outcomes: Vec<Outcome>,
    items: &[I],
) -> Vec<ItemRecord> {
    let by_path: HashMap<&Path, &Item> = items
        .iter()
        .map(|i| (i.borrow().rel.as_path(), i.borrow()))
        .collect();
    let mut records = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let (path, stamp, written) = match outcome {
            Outcome::Imported { path, stamp, .. } => (path, stamp, true),
            Outcome::Unchanged { path, stamp } => (path, stamp, false),
            Outcome::PartWritten { .. } => continue,
            Outcome::Failed {
                path,
                code,
                message,
            } => {
                match by_path.get(path.as_path()) {
                    Some(item) => records.push(failed_record(item, code, message)),
                    None => records.push(ItemRecord {
                        source: path.as_os_str().as_bytes().to_vec(),
                        path: path.into_os_string().into_vec(),
                        kind: 0,
                        size: 0,
                        result: ItemResult::Failed {
                            code: code.to_string(),
                            message,
                        },
                        source_id: 0,
                        dest_id: 0,
                    }),
                }
                continue;
            }
        };
        let Some(item) = by_path.get(path.as_path()) else {
            // Not an item of this package (a crafted manifest would be refused before).
            continue;
        };
        // A file that changed between the scan and its read is recorded as it was
        // read: what the destination holds (else the next round would take ferry's own
        // copy for someone else's change).
        let (size, mtime_ns) = stamp.source.unwrap_or((item.meta.size, item.meta.mtime_ns));
        records.push(ItemRecord {
            path: path.into_os_string().into_vec(),
            source: item.source.as_os_str().as_bytes().to_vec(),
            kind: kind_code(&item.kind),
            size,
            result: ItemResult::Done {
                written,
                mtime_ns,
                hash: stamp.hash,
                dest_mtime_ns: stamp.dest_mtime_ns,
            },
            source_id: item.meta.ino,
            dest_id: stamp.dest_id,
        });
    }
    records
}

thread_local! {
    /// Each worker's package buffer, kept from one package to the next, and the bytes
    /// of the package budget it holds.
    static PAYLOAD: std::cell::RefCell<(Vec<u8>, u64)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
}

/// Gives back what this thread's package buffer holds of `budget`: its worker ends.
pub(super) fn give_back_buffer(budget: &Budget) {
    let (buffer, held) = PAYLOAD.with(|b| std::mem::take(&mut *b.borrow_mut()));
    drop(buffer);
    budget.give(held);
}

/// Writes a package's records into its compressed stream, counting them.
pub(super) type Fill<'a> =
    dyn FnMut(&mut package::Compressor, &mut u32) -> io::Result<Vec<Packed>> + 'a;

/// Packages larger than this are put in blocks (when the staging can), so that an
/// interrupted upload resumes at the next block.
const BLOCKS_FROM: usize = 2 * BLOCK_SIZE;

/// What every worker shares.
pub(super) struct Shared<'a> {
    pub(super) task: &'a Task,
    pub(super) key: &'a KeyFile,
    pub(super) container: &'a dyn Container,
    pub(super) staging: &'a dyn Staging,
    pub(super) destination: Option<&'a Destination>,
    pub(super) send: bool,
    pub(super) import: bool,
    pub(super) journal: &'a Journal,
    /// Packages earlier runs of the round imported.
    pub(super) done: &'a HashSet<u64>,
    /// Packages earlier runs staged under this round's key, with the items that failed
    /// while each was built.
    pub(super) staged: &'a HashMap<u64, Vec<ItemRecord>>,
    /// Files in parts that earlier runs of the round left under way, by first package.
    pub(super) in_parts: &'a HashMap<u64, InParts>,
    /// Packages whose upload in blocks earlier runs of the round began.
    pub(super) uploads: &'a HashMap<u64, Upload>,
    pub(super) stop: &'a AtomicBool,
    /// Set when the run must stop for a reason a person has to fix (a full disk).
    pub(super) halt: &'a Halt,
    pub(super) events: SyncSender<Event>,
    /// The live item report, when this run imports.
    pub(super) items_report: Option<&'a ItemReport>,
    /// Failures of this run that no journal record holds.
    pub(super) unjournaled: &'a Mutex<Vec<(Option<u64>, ItemRecord)>>,
    /// The round's hard-link groups: each leader's other names.
    pub(super) links: &'a Links,
    /// This run's job ID, in its journal records and report rows.
    pub(super) job: u64,
    /// The pool that reads files ahead for the packages this run builds.
    pub(super) reads: Option<&'a ReadAhead>,
    /// The budget of package buffers, shared by the workers of every task of the run.
    pub(super) packages: &'a Budget,
    /// Direct mode (`staging: {kind: none}`): items are copied straight from the source
    /// into the destination, nothing staged.
    pub(super) direct: bool,
}

/// A file in parts under way: its assembly, the next part, and (once every part is in)
/// what the whole file must be.
pub(super) type InParts = (String, u32, Option<journal::WholeFile>);

/// Why a package could not be imported: a stable code and the reason.
pub(super) type Unimported = (&'static str, String);

impl Shared<'_> {
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.halt.is_set()
    }

    pub(super) fn work(&self, work: Work) -> Counters {
        let mut tally = Counters::default();
        if self.stopping() {
            // Not started: the round's next run does it.
            return tally;
        }
        let before = tally.mark();
        let parts = matches!(work, Work::Parts { .. });
        self.work_into(work, &mut tally);
        if !parts {
            report_progress(&tally, before, &self.events);
        }
        tally
    }

    /// Journals a record; a journal that cannot be written stops the run (its progress
    /// could not be resumed), and so does a full disk under the item report.
    pub(super) fn journal(&self, entry: &Entry, tally: &mut Counters) -> bool {
        match self.journal.append(entry) {
            Ok(()) => {
                if let Some(report) = self.items_report
                    && let Entry::Imported {
                        first, items, job, ..
                    } = entry
                    && let Err(e) = report.package(Some(*first), *job, items)
                {
                    if crate::import::disk_full(&e.source) {
                        self.halt.stop(format!(
                            "the disk that holds {} is full ({}): free space there",
                            e.path.display(),
                            e.source
                        ));
                    } else {
                        tally.fail(
                            Path::new("(item report)"),
                            FailureCode::ReportFailed.as_str(),
                            &e.to_string(),
                        );
                    }
                }
                true
            }
            Err(e) => {
                let reason = match &e {
                    journal::JournalError::Io { source, path, .. }
                        if crate::import::disk_full(source) =>
                    {
                        format!(
                            "the checkpoint journal {} cannot be written: the disk that holds ferry's state is full ({source}); free space there",
                            path.display()
                        )
                    }
                    _ => format!("{e}: check the working folder's disk"),
                };
                self.halt.stop(reason);
                false
            }
        }
    }

    /// Journals package `id` as imported with its items' records (one per item, each
    /// leader's other names with it), and counts them; false when the journal failed.
    pub(super) fn journal_package(
        &self,
        id: u64,
        records: Vec<ItemRecord>,
        tally: &mut Counters,
    ) -> bool {
        let entry = Entry::Imported {
            first: id,
            last: id,
            items: self.with_links(one_per_item(records)),
            job: self.job,
        };
        if !self.journal(&entry, tally) {
            return false;
        }
        if let Entry::Imported { items, .. } = &entry {
            tally.records(items);
        }
        tally.packages += 1;
        true
    }

    /// Stops the run when `e` says the staging is full, or cannot be reached after its
    /// retries; true when it did. The round stays open: the same command resumes it
    /// once the staging is back.
    pub(super) fn staging_full(&self, e: &io::Error) -> bool {
        let reason = if crate::import::disk_full(e) {
            format!(
                "the staging {} is full ({e}): free space there, or set `staging.path` to a larger disk",
                self.staging.describe()
            )
        } else if unreachable(e) {
            format!(
                "the staging {} cannot be reached ({e}), after the retries `retries` allows",
                self.staging.describe()
            )
        } else {
            return false;
        };
        self.halt.stop(reason);
        true
    }

    /// Stops the run when an import met a full destination; true when it did (the
    /// package is then not journalled: the round's next run imports it again).
    pub(super) fn destination_full(&self, outcomes: &[Outcome]) -> bool {
        let full = outcomes.iter().find_map(|o| match o {
            Outcome::Failed {
                code: crate::import::DISK_FULL,
                message,
                ..
            } => Some(message),
            _ => None,
        });
        let Some(message) = full else {
            return false;
        };
        self.halt.stop(format!(
            "the destination {} is full ({message}): free space there",
            self.task.destination.display()
        ));
        true
    }

    pub(super) fn work_into(&self, work: Work, tally: &mut Counters) {
        match work {
            Work::Package { id, items } => {
                if self.done.contains(&id) {
                    return;
                }
                if self.direct {
                    self.direct_package(id, &items, tally);
                    return;
                }
                let mut records = match self.staged.get(&id) {
                    Some(failed) => failed.clone(),
                    None if self.send => {
                        let expected: u64 = items.iter().map(|i| i.meta.size).sum();
                        let built = self.build_and_put(id, expected, &mut |out, records| {
                            package::add_items(
                                out,
                                &items,
                                package::xattr::Carry::of(&self.task.settings.preserve),
                                (
                                    self.task.settings.retries.attempts,
                                    self.task.settings.retries.backoff.as_std(),
                                ),
                                self.reads,
                                records,
                            )
                        });
                        let packed = match built {
                            Ok(packed) => packed,
                            Err(e) => {
                                if self.staging_full(&e) {
                                    return;
                                }
                                // Not journalled: the next run of the round tries again.
                                for item in &items {
                                    self.fail(
                                        tally,
                                        Some(id),
                                        item,
                                        FailureCode::StageFailed.as_str(),
                                        &format!("package {id} could not be staged: {e}"),
                                    );
                                }
                                return;
                            }
                        };
                        let mut failed = Vec::new();
                        for (item, packed) in items.iter().zip(packed) {
                            if let Packed::Failed { code, message } = packed {
                                failed.push(failed_record(item, code, message));
                            }
                        }
                        let failed = self.with_links(failed);
                        if !self.import {
                            if self.journal(
                                &Entry::Staged {
                                    package: id,
                                    container: self.key.container_id,
                                    items: failed.clone(),
                                    job: self.job,
                                },
                                tally,
                            ) {
                                tally.records(&failed);
                                tally.staged += 1;
                            }
                            return;
                        }
                        failed
                    }
                    // An import-only run: a package put into staging whose journal
                    // record was lost (a torn tail) is still there and complete.
                    None if self.present(id) => Vec::new(),
                    None => {
                        for item in &items {
                            self.fail(
                                tally,
                                None,
                                item,
                                FailureCode::NotStaged.as_str(),
                                NOT_STAGED,
                            );
                        }
                        return;
                    }
                };
                if !self.import {
                    return;
                }
                match self.import(id) {
                    Ok(outcomes) => {
                        if self.destination_full(&outcomes) {
                            return;
                        }
                        records.extend(outcome_records(outcomes, &items));
                    }
                    Err((code, message)) => {
                        for item in items.iter() {
                            self.fail(tally, Some(id), item, code, &message);
                        }
                        return;
                    }
                }
                if self.journal_package(id, records, tally) {
                    self.consumed(id);
                }
            }
            Work::Parts {
                first_id,
                count,
                part_size,
                item,
            } => self.parts(first_id, count, part_size, item, tally),
        }
    }

    /// Builds package `id` with `fill`, seals it and puts it into the container.
    pub(super) fn build_and_put(
        &self,
        id: u64,
        expected: u64,
        fill: &mut Fill<'_>,
    ) -> io::Result<Vec<Packed>> {
        let buffer = self.buffer(expected);
        let mut encoder = package::Compressor::reusing(
            self.task.settings.package.compression_level,
            expected,
            buffer,
        )?;
        package::begin(&mut encoder)?;
        let mut records = 0u32;
        let packed = fill(&mut encoder, &mut records)?;
        package::end(&mut encoder, records)?;
        let payload = encoder.finish()?;
        let seal = Seal {
            container_id: self.key.container_id,
            package_id: id,
            flags: FLAG_ZSTD,
            created_at: self.key.created_at,
            expires_at: self.key.expires_at,
        };
        let name = self.key.key.object_name(id);
        match self.container.blocks() {
            Some(blocks) if payload.len() > BLOCKS_FROM => {
                self.put_in_blocks(blocks, id, &name, &payload, &seal)?;
            }
            _ => {
                self.container.put(&name, &mut |out| {
                    envelope::seal(&self.key.key, &seal, &payload, out).map_err(io::Error::from)
                })?;
            }
        }
        PAYLOAD.with(|b| b.borrow_mut().0 = payload);
        Ok(packed)
    }

    /// This thread's package buffer, holding enough of the package budget for a
    /// package of `expected` bytes (and, when it goes up in blocks, its sealed copy).
    /// A thread whose buffer is too small gives it back and waits for room: it holds
    /// nothing while it waits, so workers never wait for each other in a circle.
    fn buffer(&self, expected: u64) -> Vec<u8> {
        let mut need = expected.saturating_add(256 * 1024);
        if self.container.blocks().is_some() && expected > BLOCKS_FROM as u64 {
            need = need.saturating_mul(2);
        }
        let (mut buffer, mut held) = PAYLOAD.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if held >= need {
            // Room held for a much larger package before goes back, so that one large
            // package does not keep the other workers waiting for good.
            if held / 2 > need {
                buffer.clear();
                buffer.shrink_to(usize::try_from(need).unwrap_or(usize::MAX));
                self.packages.give(held - need);
                held = need;
            }
            PAYLOAD.with(|b| b.borrow_mut().1 = held);
            return buffer;
        }
        drop(buffer);
        self.packages.give(held);
        self.packages.take(need);
        PAYLOAD.with(|b| b.borrow_mut().1 = need);
        Vec::new()
    }

    /// Puts a large package in blocks, each journalled once it is durable: a run killed
    /// in the middle leaves an upload that the round's next run continues at the next
    /// block (it seals the package again to the same bytes, which the whole sealed
    /// object's hash confirms; a package whose files changed meanwhile starts over).
    fn put_in_blocks(
        &self,
        blocks: &dyn Blocks,
        id: u64,
        name: &str,
        payload: &[u8],
        seal: &Seal,
    ) -> io::Result<()> {
        let key = &self.key.key;
        let mut sealed = Vec::with_capacity(payload.len() + payload.len() / 512 + 4096);
        if let Some(earlier) = self.uploads.get(&id) {
            envelope::seal_resumable(key, seal, earlier.salt, payload, &mut sealed)
                .map_err(io::Error::from)?;
            if *blake3::hash(&sealed).as_bytes() == earlier.sealed {
                match self.upload(blocks, id, name, &sealed, earlier.clone()) {
                    Ok(()) => return Ok(()),
                    Err(e) if crate::staging::is_transient(&e) || self.halt.is_set() => {
                        return Err(e);
                    }
                    // The upload is gone (Azure keeps uncommitted blocks a week; a
                    // lifecycle rule may abort S3's): it starts over, under a new salt.
                    Err(_) => {}
                }
            }
            sealed.clear();
        }
        let mut salt = [0u8; 32];
        crate::crypto::random(&mut salt).map_err(|e| io::Error::other(e.to_string()))?;
        envelope::seal_resumable(key, seal, salt, payload, &mut sealed).map_err(io::Error::from)?;
        let upload = Upload {
            upload: blocks.begin(name)?,
            salt,
            sealed: *blake3::hash(&sealed).as_bytes(),
            blocks: Default::default(),
        };
        self.upload(blocks, id, name, &sealed, upload)
    }

    /// Puts the blocks of `sealed` that `progress` does not hold yet, journalling each,
    /// and commits them all.
    fn upload(
        &self,
        blocks: &dyn Blocks,
        id: u64,
        name: &str,
        sealed: &[u8],
        mut progress: Upload,
    ) -> io::Result<()> {
        let mut list = Vec::new();
        for (index, block) in sealed.chunks(BLOCK_SIZE).enumerate() {
            let index = index as u32;
            if let Some(block_id) = progress.blocks.get(&index) {
                list.push(block_id.clone());
                continue;
            }
            let block_id = blocks.put(name, &progress.upload, index as usize, block.to_vec())?;
            let entry = Entry::Block {
                package: id,
                container: self.key.container_id,
                upload: progress.upload.clone(),
                salt: progress.salt,
                sealed: progress.sealed,
                index,
                id: block_id.clone(),
            };
            if !self.journal(&entry, &mut Counters::default()) {
                return Err(io::Error::other("the checkpoint journal cannot be written"));
            }
            progress.blocks.insert(index, block_id.clone());
            list.push(block_id);
        }
        match blocks.finish(name, &progress.upload, &list) {
            Ok(()) => Ok(()),
            // Committed by a run killed before it could journal the package: the
            // upload is over, and the object there is this one (by its length; one
            // sealed from other contents is refused by the import's checks anyway).
            Err(e) => match blocks.size(name)? {
                Some(size) if size == sealed.len() as u64 => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// An item that failed before its package could be journalled: counted, shown in
    /// the item report, kept for the failure report; the next run of the round tries
    /// it again.
    pub(super) fn fail(
        &self,
        tally: &mut Counters,
        package: Option<u64>,
        item: &Item,
        code: &str,
        message: &str,
    ) {
        let first = failed_record(item, code, message.to_string());
        for record in self.with_links(vec![first]) {
            tally.fail(Path::new(OsStr::from_bytes(&record.path)), code, message);
            if let Some(report) = self.items_report {
                let _ = report.package(package, self.job, std::slice::from_ref(&record));
            }
            self.unjournaled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((package, record));
        }
    }

    /// Records with each leader's other names: made at the destination when the file
    /// is in place and this run imports, failed with the file when it failed. A name
    /// that has a record already keeps it.
    pub(super) fn with_links(&self, records: Vec<ItemRecord>) -> Vec<ItemRecord> {
        if self.links.is_empty() || records.iter().all(|r| self.links.of(&r.path).is_empty()) {
            return records;
        }
        let present: HashSet<&[u8]> = records.iter().map(|r| r.path.as_slice()).collect();
        let extras: Vec<Vec<ItemRecord>> = records
            .iter()
            .map(|record| self.other_names(record, &present))
            .collect();
        let mut out = Vec::with_capacity(records.len());
        for (record, extra) in records.into_iter().zip(extras) {
            out.push(record);
            out.extend(extra);
        }
        out
    }

    /// The records of a leader's other names that `present` does not hold yet.
    fn other_names(&self, record: &ItemRecord, present: &HashSet<&[u8]>) -> Vec<ItemRecord> {
        let others: Vec<&Item> = self
            .links
            .of(&record.path)
            .iter()
            .filter(|o| !present.contains(o.rel.as_os_str().as_bytes()))
            .collect();
        if others.is_empty() {
            return Vec::new();
        }
        let leader = PathBuf::from(OsStr::from_bytes(&record.path));
        match (&record.result, self.destination) {
            (ItemResult::Done { hash, mtime_ns, .. }, Some(destination)) if self.import => {
                // Every name is the one file: the size and time it was read with.
                let names: Vec<OtherName> = others
                    .iter()
                    .map(|o| OtherName {
                        path: o.rel.clone(),
                        size: record.size,
                        mtime_ns: *mtime_ns,
                    })
                    .collect();
                let outcomes = destination.make_links(&leader, record.dest_id, *hash, &names);
                outcome_records(outcomes, &others)
            }
            (ItemResult::Failed { code, message }, _) => others
                .iter()
                .map(|o| {
                    failed_record(
                        o,
                        code,
                        format!(
                            "a hard link to {}, which did not migrate: {message}",
                            crate::shown::escape_path(&leader)
                        ),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether package `id` is in this round's container.
    pub(super) fn present(&self, id: u64) -> bool {
        self.container
            .exists(&self.key.key.object_name(id))
            .unwrap_or(false)
    }

    /// Deletes package `id` from staging: its import is journalled.
    pub(super) fn consumed(&self, id: u64) {
        let _ = self.container.delete(&self.key.key.object_name(id));
    }

    /// Imports package `id`; or says why it was refused, with a code: `not-staged` when
    /// staging does not have it, `integrity-failed` when it fails its tags or its
    /// stream is malformed. The staged object stays until the import is journalled.
    pub(super) fn import(&self, id: u64) -> Result<Vec<Outcome>, Unimported> {
        let Some(destination) = self.destination else {
            return Ok(Vec::new());
        };
        let name = self.key.key.object_name(id);
        let expect = Expect {
            container_id: self.key.container_id,
            package_id: id,
            now: now(),
        };
        let object = self.container.get(&name).map_err(|e| {
            self.staging_full(&e);
            if e.kind() == io::ErrorKind::NotFound {
                (
                    FailureCode::NotStaged.as_str(),
                    format!("package {id} is not in staging (it was deleted, or never staged): stage the round again"),
                )
            } else {
                (
                    FailureCode::StageFailed.as_str(),
                    format!("package {id} cannot be read from staging: {e}"),
                )
            }
        })?;
        let integrity = |e: String| (FailureCode::IntegrityFailed.as_str(), e);
        let opened =
            envelope::open(&self.key.key, expect, object).map_err(|e| integrity(e.to_string()))?;
        let decoder = zstd::stream::Decoder::with_buffer(opened)
            .map_err(|e| integrity(OpenError::from_io(e, id).to_string()))?;
        // Record headers are read a few bytes at a time: a buffer keeps each small read
        // from being a call into the decompressor.
        let decoder = io::BufReader::with_capacity(64 * 1024, decoder);
        crate::import::import_stream(destination, decoder).map_err(|refused| {
            integrity(match refused {
                crate::import::Refused::Stream(package::StreamError::Io(e)) => {
                    OpenError::from_io(e, id).to_string()
                }
                _ => OpenError::Integrity { package_id: id }.to_string(),
            })
        })
    }
}

/// One record per item of a package, in its final state: a file read again after it
/// changed has a void record for each try, and the packer's own account of it (finding
/// 11). What is in place wins; otherwise the first failure stands.
pub(super) fn one_per_item(records: Vec<ItemRecord>) -> Vec<ItemRecord> {
    // Which record stands for each path, found without copying a path.
    let mut chosen: HashMap<&[u8], usize> = HashMap::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let slot = chosen.entry(record.path.as_slice()).or_insert(i);
        if matches!(record.result, ItemResult::Done { .. })
            && !matches!(records[*slot].result, ItemResult::Done { .. })
        {
            *slot = i;
        }
    }
    if chosen.len() == records.len() {
        return records;
    }
    let mut keep = vec![false; records.len()];
    for &i in chosen.values() {
        keep[i] = true;
    }
    let mut keep = keep.into_iter();
    records
        .into_iter()
        .filter(|_| keep.next().unwrap_or(false))
        .collect()
}
