//! Running a task: scan → package → upload → import, streaming, in parallel.
//!
//! The scan writes the round's item list; the packer reads it and hands work to a
//! fixed set of workers through a channel that holds at most one unit per worker, so
//! memory and staging stay flat whatever the share's size: a worker builds a package
//! (one zstd stream in memory, at most `package.max_size` of data), seals it into the
//! container, and — when this run also imports — imports it at once and deletes it, so
//! staging holds at most one package per worker. Workers never print: they send events
//! to the one reporter that owns the terminal.
//!
//! Split roles: `--stages scan,package,upload` stops after staging and leaves the key
//! file and a hand-over note (the container and its package count) in the task's
//! state; `--stages import` imports such a round.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::import::{Destination, Outcome};
use super::items::{ItemReader, ItemWriter};
use super::package::{self, Packed};
use super::packer::{Item, Packer, Work};
use super::progress::{Event, Reporter};
use super::scan::{ScanError, Status};
use super::{ROUND, TaskScan};
use crate::crypto::envelope::{self, Expect, FLAG_ZSTD, OpenError, Seal};
use crate::crypto::keyfile::{KeyFile, KeyFileError};
use crate::crypto::{ContainerKey, RandomError};
use crate::plan::{Plan, Task};
use crate::staging::Container as _;
use crate::staging::local::LocalContainer;

/// Which stages a run performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stages {
    /// Scan, package and upload into a new container.
    pub stage: bool,
    /// Import the round's packages.
    pub import: bool,
}

/// Why a task could not run. Each stops the task before (or without) harming anything.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "no staged round to import for task `{task}` ({} is missing): run `ferry run --stages scan,package,upload` first",
        path.display()
    )]
    NothingStaged { task: String, path: PathBuf },
}

/// What a task's run did.
#[derive(Debug, Default)]
pub struct TaskRun {
    pub scan: Option<TaskScan>,
    pub staged_packages: u64,
    pub imported_items: u64,
    pub imported_bytes: u64,
    pub unchanged: u64,
    /// Failed items by code, with up to a few examples.
    pub failures: BTreeMap<&'static str, (u64, Vec<String>)>,
    /// Where the key file waits, when the run stopped after staging.
    pub handed_over: Option<PathBuf>,
}

impl TaskRun {
    pub fn failed(&self) -> u64 {
        self.failures.values().map(|(n, _)| n).sum()
    }
}

/// The hand-over note between a staging run and an importing one.
#[derive(Debug, Serialize, Deserialize)]
struct Staged {
    version: u32,
    container: String,
    packages: u64,
}

/// Where a task's state of the round lives.
fn round_state(plan: &Plan, task: &Task) -> PathBuf {
    super::task_folder(plan, task)
        .join("rounds")
        .join(format!("R{ROUND}"))
}

fn key_path(plan: &Plan, task: &Task) -> PathBuf {
    super::task_folder(plan, task)
        .join("keys")
        .join(format!("R{ROUND}.key"))
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Runs one task's stages.
pub fn run_task(
    plan: &Plan,
    task: &Task,
    stages: Stages,
    workers: usize,
    walk_threads: usize,
    reporter: &Reporter,
) -> Result<TaskRun, RunError> {
    let state = round_state(plan, task);
    let items_path = state.join("items");
    let staged_path = state.join("staged.json");
    let key_path = key_path(plan, task);
    let mut run = TaskRun::default();
    let (key, container, packages) = if stages.stage {
        let mut writer = ItemWriter::create(&items_path)
            .map_err(io_error("write the item list", &items_path))?;
        let scan = super::scan_task_with(plan, task, walk_threads, &mut |entry| {
            if entry.status == Status::Migrate
                && let Some(item) = Item::from_entry(entry)
            {
                writer.push(&item).map_err(|e| {
                    ScanError::Report(crate::report::ReportError {
                        path: writer.path().to_path_buf(),
                        source: e,
                    })
                })?;
            }
            Ok(())
        })?;
        writer
            .finish()
            .map_err(io_error("write the item list", &items_path))?;
        let _ = reporter.sender().send(Event::Planned {
            bytes: scan.totals.bytes_to_migrate,
        });
        run.scan = Some(scan);
        let key = ContainerKey::generate()?;
        let mut container_id = [0u8; 16];
        crate::crypto::random(&mut container_id)?;
        let created_at = now();
        let key_file = KeyFile {
            key,
            container_id,
            created_at,
            expires_at: created_at + plan.staging.key_ttl.0.as_secs() as i64,
        };
        // The key is on disk before any package is sealed with it: a staged package
        // is never without the key that opens it.
        key_file.write(&key_path)?;
        let name = hex(&container_id);
        let container = LocalContainer::open(&plan.staging.path, &name).map_err(io_error(
            "create the staging container in",
            &plan.staging.path,
        ))?;
        (key_file, container, None)
    } else {
        let note = fs::read(&staged_path).map_err(|_| RunError::NothingStaged {
            task: task.name.clone(),
            path: staged_path.clone(),
        })?;
        let staged: Staged = serde_json::from_slice(&note).map_err(|e| RunError::Io {
            what: "read the hand-over note",
            path: staged_path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let key_file = KeyFile::read(&key_path, now())?;
        if hex(&key_file.container_id) != staged.container {
            return Err(RunError::Io {
                what: "match the key to the staged container",
                path: key_path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, "another round's key"),
            });
        }
        let container = LocalContainer::open(&plan.staging.path, &staged.container).map_err(
            io_error("open the staging container in", &plan.staging.path),
        )?;
        (key_file, container, Some(staged.packages))
    };
    let destination = if stages.import {
        Some(
            Destination::open(
                &task.destination,
                task.settings.preserve,
                task.settings.conflicts,
                task.settings.verify,
            )
            .map_err(io_error("open the destination", &task.destination))?,
        )
    } else {
        None
    };
    let shared = Shared {
        task,
        key: &key,
        container: &container,
        destination: destination.as_ref(),
        stage: stages.stage,
        events: reporter.sender(),
    };
    let results = Mutex::new(Tally::default());
    let produced = std::thread::scope(|scope| -> Result<u64, RunError> {
        let (send, receive): (SyncSender<Work>, Receiver<Work>) = sync_channel(workers.max(1));
        let receive = Arc::new(Mutex::new(receive));
        for _ in 0..workers.max(1) {
            let receive = Arc::clone(&receive);
            let shared = &shared;
            let results = &results;
            scope.spawn(move || {
                loop {
                    let work = receive.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(work) = work else { break };
                    let tally = shared.work(work);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .merge(tally);
                }
            });
        }
        match packages {
            // Import only: the packages are numbered 0..n.
            Some(n) => {
                for id in 0..n {
                    if send
                        .send(Work::Package {
                            id,
                            items: Vec::new(),
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(n)
            }
            None => {
                let settings = &task.settings.package;
                let mut packer = Packer::new(settings.max_size.0, settings.max_files);
                let reader = ItemReader::open(&items_path)
                    .map_err(io_error("read the item list", &items_path))?;
                for item in reader {
                    let item = item.map_err(io_error("read the item list", &items_path))?;
                    for work in packer.push(item) {
                        let _ = send.send(work);
                    }
                }
                if let Some(work) = packer.flush() {
                    let _ = send.send(work);
                }
                Ok(packer.packages())
            }
        }
    })?;
    let tally = results.into_inner().unwrap_or_else(|e| e.into_inner());
    run.staged_packages = if stages.stage { produced } else { 0 };
    run.imported_items = tally.imported;
    run.imported_bytes = tally.bytes;
    run.unchanged = tally.unchanged;
    run.failures = tally.failures;
    if let Some(destination) = &destination {
        for outcome in destination.finish() {
            if let Outcome::Failed {
                path,
                code,
                message,
            } = outcome
            {
                record_failure(&mut run.failures, code, &path, &message);
            }
        }
    }
    if stages.import {
        // The round is complete: the staged data and the key that opens it go.
        let _ = container.remove();
        let _ = fs::remove_file(&key_path);
        let _ = fs::remove_file(&staged_path);
    } else {
        let note = serde_json::to_vec_pretty(&Staged {
            version: 1,
            container: hex(&key.container_id),
            packages: produced,
        })
        .unwrap_or_default();
        crate::report::write_atomic(&staged_path, &note).map_err(|e| RunError::Io {
            what: "write the hand-over note",
            path: staged_path.clone(),
            source: e.source,
        })?;
        run.handed_over = Some(key_path);
    }
    Ok(run)
}

fn record_failure(
    failures: &mut BTreeMap<&'static str, (u64, Vec<String>)>,
    code: &'static str,
    path: &Path,
    message: &str,
) {
    let entry = failures.entry(code).or_default();
    entry.0 += 1;
    if entry.1.len() < 3 {
        entry
            .1
            .push(format!("{}: {message}", crate::report::escape_path(path)));
    }
}

/// What workers found, merged.
#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    bytes: u64,
    unchanged: u64,
    failures: BTreeMap<&'static str, (u64, Vec<String>)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.imported += other.imported;
        self.bytes += other.bytes;
        self.unchanged += other.unchanged;
        for (code, (n, examples)) in other.failures {
            let entry = self.failures.entry(code).or_default();
            entry.0 += n;
            for e in examples {
                if entry.1.len() < 3 {
                    entry.1.push(e);
                }
            }
        }
    }

    /// Counts an outcome; progress goes to the reporter per package (`report`), not
    /// per item, to keep the channel quiet.
    fn outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Imported { bytes, .. } => {
                self.imported += 1;
                self.bytes += bytes;
            }
            Outcome::PartWritten { bytes, .. } => self.bytes += bytes,
            Outcome::Unchanged { .. } => self.unchanged += 1,
            Outcome::Failed {
                path,
                code,
                message,
            } => record_failure(&mut self.failures, code, &path, &message),
        }
    }

    fn fail(&mut self, path: PathBuf, code: &'static str, message: String) {
        record_failure(&mut self.failures, code, &path, &message);
    }

    /// Tells the reporter what changed since `before`.
    fn report(&self, before: (u64, u64, u64), events: &SyncSender<Event>) {
        let failed: u64 = self.failures.values().map(|(n, _)| n).sum();
        let _ = events.send(Event::Progress {
            items: self.imported + self.unchanged - before.0,
            bytes: self.bytes - before.1,
            failed: failed - before.2,
        });
    }

    fn mark(&self) -> (u64, u64, u64) {
        let failed: u64 = self.failures.values().map(|(n, _)| n).sum();
        (self.imported + self.unchanged, self.bytes, failed)
    }
}

thread_local! {
    /// Each worker's package buffer, kept from one package to the next.
    static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes a package's records into its compressed stream, counting them.
type Fill<'a> = dyn FnMut(&mut package::Compressor, &mut u32) -> io::Result<Vec<Packed>> + 'a;

/// What every worker shares.
struct Shared<'a> {
    task: &'a Task,
    key: &'a KeyFile,
    container: &'a LocalContainer,
    destination: Option<&'a Destination>,
    stage: bool,
    events: SyncSender<Event>,
}

impl Shared<'_> {
    fn work(&self, work: Work) -> Tally {
        let mut tally = Tally::default();
        let parts = matches!(work, Work::Parts { .. });
        self.work_into(work, &mut tally);
        if !parts {
            tally.report((0, 0, 0), &self.events);
        }
        tally
    }

    fn work_into(&self, work: Work, tally: &mut Tally) {
        match work {
            Work::Package { id, items } => {
                if self.stage {
                    let expected: u64 = items.iter().map(|i| i.meta.size).sum();
                    let failed = match self.build_and_put(id, expected, &mut |out, records| {
                        package::add_items(
                            out,
                            &items,
                            self.task.settings.retries.attempts,
                            records,
                        )
                    }) {
                        Ok(packed) => packed,
                        Err(e) => {
                            for item in &items {
                                tally.fail(
                                    item.rel.clone(),
                                    "stage-failed",
                                    format!("package {id} could not be staged: {e}"),
                                );
                            }
                            return;
                        }
                    };
                    for (item, packed) in items.iter().zip(failed) {
                        if let Packed::Failed { code, message } = packed {
                            tally.fail(item.rel.clone(), code, message);
                        }
                    }
                }
                self.import(id, &items, tally);
            }
            Work::Parts {
                first_id,
                count,
                part_size,
                item,
            } => {
                let (file, at_open) = match package::open_checked(&item) {
                    Ok(opened) => opened,
                    Err(failed) => {
                        let (code, message) = match failed {
                            Packed::Failed { code, message } => (code, message),
                            Packed::Ok => ("read-failed", String::new()),
                        };
                        tally.fail(item.rel.clone(), code, message);
                        return;
                    }
                };
                let mut whole = blake3::Hasher::new();
                let parts = u32::try_from(count).unwrap_or(u32::MAX);
                for part in 0..parts {
                    let id = first_id + u64::from(part);
                    let mut ok = true;
                    let built = self.build_and_put(id, part_size, &mut |out, records| {
                        *records += 1;
                        ok = package::add_part(
                            out, &item, &file, &at_open, part, parts, part_size, &mut whole,
                        )?;
                        Ok(Vec::new())
                    });
                    if let Err(e) = built {
                        tally.fail(
                            item.rel.clone(),
                            "stage-failed",
                            format!("package {id} could not be staged: {e}"),
                        );
                        return;
                    }
                    let before = tally.mark();
                    self.import(id, std::slice::from_ref(&item), tally);
                    tally.report(before, &self.events);
                    if !ok {
                        // The importer has discarded the file; the rest is not read.
                        return;
                    }
                }
            }
        }
    }

    /// Builds package `id` with `fill`, seals it and puts it into the container.
    fn build_and_put(
        &self,
        id: u64,
        expected: u64,
        fill: &mut Fill<'_>,
    ) -> io::Result<Vec<Packed>> {
        let buffer = PAYLOAD.with(|b| std::mem::take(&mut *b.borrow_mut()));
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
        self.container
            .put(&self.key.key.object_name(id), &mut |out| {
                envelope::seal(&self.key.key, &seal, &payload, out).map_err(|e| match e {
                    envelope::SealError::Io(e) => e,
                    envelope::SealError::Random(e) => io::Error::other(e.to_string()),
                })
            })?;
        PAYLOAD.with(|b| *b.borrow_mut() = payload);
        Ok(packed)
    }

    /// Imports package `id` (when this run imports) and deletes it.
    fn import(&self, id: u64, items: &[Arc<Item>], tally: &mut Tally) {
        let Some(destination) = self.destination else {
            return;
        };
        let name = self.key.key.object_name(id);
        let expect = Expect {
            container_id: self.key.container_id,
            package_id: id,
            now: now(),
        };
        let refuse = |tally: &mut Tally, message: String| {
            let who: Vec<PathBuf> = if items.is_empty() {
                vec![PathBuf::from(format!("package {id}"))]
            } else {
                items.iter().map(|i| i.rel.clone()).collect()
            };
            for path in who {
                tally.fail(path, "integrity-failed", message.clone());
            }
        };
        let object = match self.container.get(&name) {
            Ok(object) => object,
            Err(e) => {
                // Import-only runs hand out every number; a part run may have stopped
                // short, leaving later numbers unused.
                if e.kind() == io::ErrorKind::NotFound && items.is_empty() {
                    return;
                }
                refuse(
                    tally,
                    format!("package {id} cannot be read from staging: {e}"),
                );
                return;
            }
        };
        let opened = match envelope::open(&self.key.key, expect, object) {
            Ok(opened) => opened,
            Err(e) => {
                refuse(tally, e.to_string());
                return;
            }
        };
        let decoder = match zstd::stream::Decoder::with_buffer(opened) {
            Ok(d) => d,
            Err(e) => {
                refuse(tally, OpenError::from_io(e, id).to_string());
                return;
            }
        };
        // Record headers are read a few bytes at a time: a buffer keeps each small read
        // from being a call into the decompressor.
        let decoder = io::BufReader::with_capacity(64 * 1024, decoder);
        match super::import::import_stream(destination, decoder) {
            Ok(outcomes) => {
                for outcome in outcomes {
                    tally.outcome(outcome);
                }
                let _ = self.container.delete(&name);
            }
            Err(refused) => {
                let message = match refused {
                    super::import::Refused::Stream(package::StreamError::Io(e)) => {
                        OpenError::from_io(e, id).to_string()
                    }
                    _ => OpenError::Integrity { package_id: id }.to_string(),
                };
                refuse(tally, message);
            }
        }
    }
}

/// The run's summary for a person: what was imported or staged, and what failed, by
/// code with examples.
pub fn summary(task: &Task, run: &TaskRun) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    match &run.handed_over {
        Some(key) => {
            let _ = writeln!(
                out,
                "run {}: staged {} package{}; import them with `ferry run --stages import` (key file {})",
                task.name,
                run.staged_packages,
                if run.staged_packages == 1 { "" } else { "s" },
                key.display()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "run {}: imported {} item{} ({}) into {}; {} already up to date; {} failed",
                task.name,
                run.imported_items,
                if run.imported_items == 1 { "" } else { "s" },
                bytesize::ByteSize(run.imported_bytes).display().iec(),
                crate::report::escape_path(&task.destination),
                run.unchanged,
                run.failed()
            );
        }
    }
    for (code, (n, examples)) in &run.failures {
        let _ = writeln!(out, "  failed  {code:<22} {n:>6}  {}", examples.join("; "));
    }
    out
}
