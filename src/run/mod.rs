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

use crate::failure::FailureCode;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use self::items::{ItemReader, ItemWriter};
use self::progress::{Event, Reporter};
use self::scanning::TaskScan;
use crate::crypto::envelope::{self, Expect, FLAG_ZSTD, OpenError, Seal};
use crate::crypto::keyfile::{KeyFile, KeyFileError};
use crate::crypto::{ContainerKey, RandomError};
use crate::import::{Destination, Outcome};
use crate::package::packer::{Item, ItemKind, Packer, Work};
use crate::package::{self, Packed};
use crate::plan::raw::Deletions;
use crate::plan::{Plan, Task};
use crate::report::round::{ItemReport, RoundIds, RoundSummary, ScanCounts};
use crate::scan::{ScanError, Status};
use crate::staging::Container as _;
use crate::staging::local::LocalContainer;
use crate::state::index::{Index, Indexed};
use crate::state::journal::{self, Entry, ItemRecord, ItemResult, Journal};
use crate::state::layout::TaskLayout;
use crate::state::{self, Session, SessionError, Status as SessionStatus};

pub mod items;
mod parts;
pub mod progress;
mod reports;
pub mod scanning;
mod worker;

pub use reports::summary;
use reports::{last_result, report_error, round_reports};
use worker::{Halt, InParts, Shared, Tally};

/// Which stages a run performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stages {
    /// Send: scan, package and upload into a new container.
    pub send: bool,
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
    #[error(transparent)]
    Session(#[from] SessionError),
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
    #[error(
        "the round's checkpoint {} is damaged: {reason}. The round's progress cannot be trusted, so it was not resumed and the file was kept as it is. `ferry run --restart` sets the round aside and starts a new one (files already at the destination are recognised and not copied again)",
        path.display()
    )]
    Checkpoint { path: PathBuf, reason: String },
    #[error(
        "task `{task}` stopped in round {round}: {reason}. Nothing more was started; the round stays open, and the same command resumes it once that is fixed"
    )]
    Halted {
        task: String,
        round: u32,
        reason: String,
    },
    #[error(
        "task `{task}` was not run: {reason}. Two runs writing one folder at once would mix their files: wait for the other run to finish, or give the tasks destinations that do not contain each other"
    )]
    DestinationBusy { task: String, reason: String },
}

/// What a task's run did.
#[derive(Debug, Default)]
pub struct TaskRun {
    pub round: u32,
    /// The run continued a round an earlier run left unfinished.
    pub resumed: bool,
    /// Packages an earlier run of the round had already finished.
    pub packages_done_before: u64,
    /// A signal stopped the run; the round resumes on the next run.
    pub interrupted: bool,
    pub scan: Option<TaskScan>,
    pub staged_packages: u64,
    /// Of the whole round (all its runs): items put in place, bytes, items already
    /// in place, failures.
    pub imported_items: u64,
    pub imported_bytes: u64,
    pub unchanged: u64,
    /// Items not migrated again because they did not change since the last round.
    pub unchanged_since_last_round: u64,
    /// Failed items by code, with up to a few examples.
    pub failures: BTreeMap<String, (u64, Vec<String>)>,
    /// Where the key file waits, when the run stopped after staging.
    pub handed_over: Option<PathBuf>,
    /// Stray temporary files of an interrupted run, removed from the destination.
    pub cleaned: u64,
    /// Items deleted at the destination because the source no longer has them
    /// (`deletions: mirror`).
    pub deleted: u64,
    /// Items the round's scan kept back for an error.
    pub not_migrated: u64,
}

impl TaskRun {
    /// Items that failed (findings of the round, such as a folder's mode that could not
    /// be set, are listed with the failures but are not items).
    pub fn failed(&self) -> u64 {
        self.failures
            .iter()
            .filter(|(code, _)| !crate::failure::is_round_level(code))
            .map(|(_, (n, _))| n)
            .sum()
    }

    /// Whether anything went wrong: failed items, or findings of the round.
    pub fn any_failure(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// How the caller steers a run.
#[derive(Clone, Copy, Debug)]
pub struct Control<'a> {
    /// Abandon an unfinished round (or one whose plan changed) and start a new one.
    pub restart: bool,
    /// Set by the first SIGINT/SIGTERM: start no new work, finish what is in flight.
    pub stop: &'a AtomicBool,
    /// Mirror deletions beyond `max_delete`.
    pub force: bool,
}

/// The hand-over note between a staging run and an importing one.
#[derive(Debug, Serialize, Deserialize)]
struct Staged {
    version: u32,
    container: String,
    packages: u64,
}

/// The scan's checkpoint: the item list of the round is complete.
#[derive(Debug, Serialize, Deserialize)]
struct Scanned {
    version: u32,
    items: u64,
    bytes: u64,
    unchanged: u64,
    /// With `deletions: mirror`: what ferry put at the destination that the source no
    /// longer has (destination paths), deepest first.
    #[serde(default)]
    deletions: Vec<PathBuf>,
    /// Items in the index when the round began (the base of `max_delete.percent`).
    #[serde(default)]
    indexed: u64,
    /// The scan's counters, for the round's reports.
    #[serde(default)]
    counts: ScanCounts,
    /// The item list's length and BLAKE3 (hex): a resumed round checks it against them.
    #[serde(default)]
    items_len: Option<u64>,
    #[serde(default)]
    items_hash: Option<String>,
}

/// The scan's checkpoint of a round, checked like the journal: absent means "not
/// scanned yet" only while nothing else of the round exists; anything unreadable is
/// refused, never read as "not there" (finding 7).
fn load_scanned(
    scanned_path: &Path,
    items_path: &Path,
    journal_path: &Path,
) -> Result<Option<Scanned>, RunError> {
    let damaged = |reason: String| RunError::Checkpoint {
        path: scanned_path.to_path_buf(),
        reason,
    };
    let bytes = match fs::read(scanned_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if journal_path.exists() {
                return Err(damaged(
                    "it is missing, though the round's journal holds progress".into(),
                ));
            }
            return Ok(None);
        }
        Err(e) => return Err(damaged(format!("it cannot be read: {e}"))),
    };
    if bytes.is_empty() {
        return Err(damaged("it is empty (zero bytes)".into()));
    }
    let scanned: Scanned =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("it does not parse: {e}")))?;
    if scanned.version != 1 {
        return Err(damaged(format!("unknown version {}", scanned.version)));
    }
    if let (Some(len), Some(hash)) = (scanned.items_len, &scanned.items_hash) {
        let hash: Option<[u8; 32]> = blake3::Hash::from_hex(hash).ok().map(|h| *h.as_bytes());
        let intact = match hash {
            Some(hash) => items::verify(items_path, len, &hash).unwrap_or(false),
            None => false,
        };
        if !intact {
            return Err(RunError::Checkpoint {
                path: items_path.to_path_buf(),
                reason:
                    "the round's item list is missing or no longer matches the scan's checkpoint"
                        .into(),
            });
        }
    }
    Ok(Some(scanned))
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub(crate) fn kind_code(kind: &ItemKind) -> u8 {
    match kind {
        ItemKind::File => package::KIND_FILE,
        ItemKind::Folder => package::KIND_FOLDER,
        ItemKind::Symlink { .. } => package::KIND_SYMLINK,
    }
}

/// Whether the index says `item` is unchanged since the round that put it at the
/// destination (see [`crate::import::decide::unchanged_since`]).
fn unchanged_since(index: &Index, item: &Item) -> bool {
    crate::import::decide::unchanged_since(
        index.items.get(item.rel.as_os_str().as_bytes()),
        kind_code(&item.kind),
        crate::import::decide::Source {
            size: item.meta.size,
            mtime_ns: item.meta.mtime_ns,
        },
    )
}

/// Folds the Imported records of a round's journal into the index.
fn fold(index: &mut Index, entries: &[Entry]) {
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
                        },
                    );
                }
            }
        }
    }
}

/// Deletes the staged data the key file at `key_path` opens, then the key file (the
/// key expired, or its round was set aside or forgotten: nobody could ever import the
/// data). When the data cannot be deleted, the key stays, so that a later run can try
/// again, and the error says where (finding 12).
pub fn discard_staged(plan: &Plan, key_path: &Path) -> Result<(), RunError> {
    if let Ok(key) = KeyFile::read(key_path, i64::MIN) {
        let container = plan.staging.path.join(key.container_name());
        let discarded = match LocalContainer::open(&plan.staging.path, &key.container_name()) {
            Ok(opened) => opened.discard(),
            Err(e) => Err(e),
        };
        discarded.map_err(|source| RunError::Io {
            what: "delete the staged data of an expired or abandoned round in",
            path: container,
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

/// Sets an unfinished round aside: what it put at the destination goes into the index
/// (it is there, and ferry wrote it), its staged data and key are deleted, and a damaged
/// journal is renamed, kept as evidence.
fn abandon(
    plan: &Plan,
    task: &Task,
    folder: &Path,
    session: &mut Session,
    index: &mut Index,
) -> Result<(), RunError> {
    let round = session.round;
    let task_layout = TaskLayout::at(folder);
    let state = task_layout.round(round);
    let journal_path = state.journal();
    if journal_path.exists() {
        match Journal::open(
            &journal_path,
            journal::binding(&plan.name, &task.name, round),
        ) {
            Ok((_, loaded)) => fold(index, &loaded.entries),
            Err(_) => {
                let aside = state.journal_set_aside(now());
                fs::rename(&journal_path, &aside)
                    .map_err(io_error("set aside the damaged journal", &journal_path))?;
            }
        }
        index
            .save(&task_layout.index())
            .map_err(SessionError::from)?;
    }
    discard_staged(plan, &task_layout.key(round))?;
    let _ = fs::remove_file(state.staged());
    session.status = SessionStatus::Completed;
    session.save(folder)?;
    Ok(())
}

/// Mirrors the round's source deletions at the destination, within `max_delete` unless
/// `force`; returns how many items were deleted. Whatever is deleted (or found changed
/// by someone else, and so no longer ferry's) leaves the index.
fn mirror_deletions(
    task: &Task,
    scanned: &Scanned,
    destination: &Destination,
    index: &mut Index,
    force: bool,
    failures: &mut BTreeMap<String, (u64, Vec<String>)>,
) -> u64 {
    let n = scanned.deletions.len() as u64;
    if n == 0 {
        return 0;
    }
    let cap = task.settings.max_delete;
    let over_items = n > cap.items;
    let over_percent = n * 100 > u64::from(cap.percent) * scanned.indexed.max(1);
    if (over_items || over_percent) && !force {
        record_failure(
            failures,
            FailureCode::DeleteCapped.as_str(),
            Path::new("(deletions)"),
            &format!(
                "{n} items are gone from the source, more than `max_delete` allows ({} items, {}% of {}); nothing was deleted. Check the source, then run with `--force` to mirror them",
                cap.items, cap.percent, scanned.indexed
            ),
        );
        return 0;
    }
    let mut deleted = 0;
    for path in &scanned.deletions {
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
                record_failure(
                    failures,
                    FailureCode::DeleteKept.as_str(),
                    path,
                    "gone from the source, but changed at the destination since ferry wrote it (or a folder that is not empty); it was kept",
                );
            }
            crate::import::Removal::Failed(e) => record_failure(
                failures,
                FailureCode::DeleteFailed.as_str(),
                path,
                &format!("cannot delete: {e}"),
            ),
        }
    }
    deleted
}

/// What a completed round did, from its `round.json`.
fn completed_result(layout: &TaskLayout, round: u32) -> Option<TaskRun> {
    let summary = RoundSummary::load(&layout.reports(round)).ok()?;
    if summary.status != "completed" {
        return None;
    }
    Some(TaskRun {
        round,
        resumed: true,
        imported_items: summary.stages.imported,
        imported_bytes: summary.bytes_imported,
        unchanged: summary.stages.already_at_destination,
        unchanged_since_last_round: summary.scan.unchanged,
        deleted: summary.stages.deleted,
        not_migrated: summary.scan.errors,
        failures: summary
            .failures
            .into_iter()
            .map(|f| (f.code, (f.count, f.examples)))
            .collect(),
        ..TaskRun::default()
    })
}

/// Runs one task's stages: a new round, or the rest of an unfinished one.
pub fn run_task(
    plan: &Plan,
    task: &Task,
    stages: Stages,
    workers: usize,
    walk_threads: usize,
    reporter: &Reporter,
    control: Control<'_>,
) -> Result<TaskRun, RunError> {
    let folder = state::task_folder(plan, &task.name);
    let mut session =
        Session::load_checked(&folder, &task.name)?.unwrap_or_else(|| Session::new(task));
    let result = run_round(
        plan,
        task,
        stages,
        workers,
        walk_threads,
        reporter,
        control,
        &folder,
        &mut session,
    );
    if let Err(e) = &result
        && session.round > 0
        && !matches!(
            e,
            RunError::Session(SessionError::PlanChanged { .. }) | RunError::NothingStaged { .. }
        )
    {
        session.status = SessionStatus::Failed;
        let _ = session.save(&folder);
    }
    result
}

#[expect(clippy::too_many_arguments, reason = "a round's every input")]
fn run_round(
    plan: &Plan,
    task: &Task,
    stages: Stages,
    workers: usize,
    walk_threads: usize,
    reporter: &Reporter,
    control: Control<'_>,
    folder: &Path,
    session: &mut Session,
) -> Result<TaskRun, RunError> {
    let hash = state::task_hash(task);
    let layout = TaskLayout::at(folder);
    let index_path = layout.index();
    // A run killed after its round completed but before it deleted the round's key and
    // hand-over note: they go now (the staged data went before the round completed).
    // An import-only run that finds them is the killed one's rerun: the round it was
    // importing is complete, and its result is the run's.
    if !session.unfinished() && session.round > 0 {
        let (key, note) = (
            layout.key(session.round),
            layout.round(session.round).staged(),
        );
        let left_over = key.exists() || note.exists();
        if key.exists() {
            discard_staged(plan, &key)?;
        }
        let _ = fs::remove_file(note);
        if left_over
            && !stages.send
            && let Some(done) = completed_result(&layout, session.round)
        {
            return Ok(done);
        }
    }
    let mut index = Index::load(&index_path).map_err(SessionError::from)?;
    if session.unfinished() && (control.restart || session.plan_hash != hash) {
        if !control.restart {
            return Err(SessionError::PlanChanged {
                task: task.name.clone(),
                round: session.round,
                was: session.plan_hash.clone(),
                now: hash,
            }
            .into());
        }
        abandon(plan, task, folder, session, &mut index)?;
    }
    let resumed = session.unfinished();
    if !resumed {
        if !stages.send {
            return Err(RunError::NothingStaged {
                task: task.name.clone(),
                path: layout.round(session.round + 1).staged(),
            });
        }
        session.round += 1;
        session.plan_hash = hash;
        session.round_started_at = Some(state::now_text());
        session.progress = state::Progress::default();
        // `dirty` stays as it was: what an abandoned round left at the destination is
        // cleaned by this round's first importing run.
    }
    let round = session.round;
    session.host = state::device_name();
    session.status = SessionStatus::Scanning;
    session.save(folder)?;
    let state = layout.round(round);
    let items_path = state.items();
    let scanned_path = state.scan();
    let staged_path = state.staged();
    let key_path = layout.key(round);
    let mut run = TaskRun {
        round,
        resumed,
        ..TaskRun::default()
    };
    if !stages.send && !staged_path.exists() {
        return Err(RunError::NothingStaged {
            task: task.name.clone(),
            path: staged_path,
        });
    }

    // The scan, or its checkpoint: the item list is what fixes package numbers.
    let journal_path = state.journal();
    let scanned = load_scanned(&scanned_path, &items_path, &journal_path)?;
    let scanned = match scanned {
        Some(scanned) => scanned,
        None => {
            let mut writer = ItemWriter::create(&items_path)
                .map_err(io_error("write the item list", &items_path))?;
            let mut unchanged = 0u64;
            let mut bytes = 0u64;
            let mirror = task.settings.deletions == Deletions::Mirror;
            // What the index has and the scan does not see is gone from the source.
            let mut unseen: HashSet<&[u8]> = if mirror {
                index.items.keys().map(Vec::as_slice).collect()
            } else {
                HashSet::new()
            };
            let scan = scanning::scan_task_with(plan, task, round, walk_threads, &mut |entry| {
                if mirror {
                    unseen.remove(entry.dest.as_os_str().as_bytes());
                }
                if entry.status == Status::Migrate
                    && let Some(item) = Item::from_entry(entry)
                {
                    if unchanged_since(&index, &item) {
                        unchanged += 1;
                        return Ok(());
                    }
                    if item.kind == ItemKind::File {
                        bytes += item.meta.size;
                    }
                    writer.push(&item).map_err(|e| {
                        ScanError::Report(crate::report::ReportError {
                            path: writer.path().to_path_buf(),
                            source: e,
                        })
                    })?;
                }
                Ok(())
            })?;
            let written = writer
                .finish()
                .map_err(io_error("write the item list", &items_path))?;
            let items = written.count;
            let counts = ScanCounts {
                scanned: scan.totals.items,
                folders: scan.totals.folders,
                files: scan.totals.files,
                items_with_issues: scan.totals.items_with_issues,
                filtered: scan.totals.filtered,
                to_migrate: items,
                bytes_to_migrate: bytes,
                unchanged,
                not_migrated: scan.not_migrated.clone(),
                not_migrated_items: scan
                    .totals
                    .items
                    .saturating_sub(scan.totals.filtered + scan.totals.to_migrate),
                errors: scan.totals.errors,
                readiness: scan.readiness.as_str().to_string(),
                scan_report: format!("ScanReport_R{round}.csv"),
            };
            run.scan = Some(scan);
            let mut deletions: Vec<PathBuf> = unseen
                .into_iter()
                .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                .collect();
            deletions.sort_by(|a, b| {
                b.components()
                    .count()
                    .cmp(&a.components().count())
                    .then_with(|| a.cmp(b))
            });
            let scanned = Scanned {
                version: 1,
                items,
                bytes,
                unchanged,
                deletions,
                indexed: index.items.len() as u64,
                counts,
                items_len: Some(written.len),
                items_hash: Some(blake3::Hash::from_bytes(written.hash).to_hex().to_string()),
            };
            let text = serde_json::to_vec_pretty(&scanned).unwrap_or_default();
            state::write_atomic(&scanned_path, &text).map_err(|source| RunError::Io {
                what: "write the scan's checkpoint",
                path: scanned_path.clone(),
                source,
            })?;
            scanned
        }
    };
    run.unchanged_since_last_round = scanned.unchanged;
    run.not_migrated = scanned.counts.errors;
    session.progress.items = scanned.items;
    session.progress.bytes = scanned.bytes;
    session.progress.unchanged = scanned.unchanged;
    let _ = reporter.sender().send(Event::Planned {
        bytes: scanned.bytes,
    });

    // Nothing new, changed or gone: the round is complete as it is (no key, container,
    // journal or destination to open — a no-change re-run costs little more than the scan).
    let reports = layout.reports(round);
    let ids = RoundIds {
        round,
        task: task.name.clone(),
        device: state::device_name(),
        destination: task.destination.clone(),
    };
    let binding = journal::binding(&plan.name, &task.name, round);
    if stages.send
        && stages.import
        && scanned.items == 0
        && scanned.deletions.is_empty()
        && !journal_path.exists()
    {
        let _ = fs::remove_file(&key_path);
        session.status = SessionStatus::Completed;
        session.last_result = Some(last_result(round, &run));
        session.save(folder)?;
        let empty = ItemReport::start(&reports, ids.clone(), &[]).map_err(report_error)?;
        round_reports(
            plan,
            task,
            session,
            &scanned,
            &run,
            "completed",
            Some(empty),
            &[],
            &[],
            &ids,
            &reports,
        )?;
        return Ok(run);
    }

    // The round's key: the one it started with while it is valid, else a new one (and
    // a new container): what was staged under the old one is staged again.
    let key = match KeyFile::read(&key_path, now()) {
        Ok(key) => key,
        Err(e) => {
            let missing = matches!(&e, KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound);
            if !stages.send {
                return Err(e.into());
            }
            if !missing {
                if let KeyFileError::Expired { .. } = e {
                    discard_staged(plan, &key_path)?;
                } else {
                    return Err(e.into());
                }
            }
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
            key_file
        }
    };
    let container = LocalContainer::open(&plan.staging.path, &key.container_name()).map_err(
        io_error("open the staging container in", &plan.staging.path),
    )?;

    // The journal: what earlier runs of this round made durable.
    let (journal, loaded) = Journal::open(&journal_path, binding).map_err(SessionError::from)?;
    let mut done: HashSet<u64> = HashSet::new();
    let mut staged: HashMap<u64, Vec<ItemRecord>> = HashMap::new();
    // Files in parts under way: the assembly and the next part, by first package.
    let mut in_parts: HashMap<u64, InParts> = HashMap::new();
    let mut tally = Tally::default();
    for entry in &loaded.entries {
        match entry {
            Entry::Part {
                first,
                part,
                work,
                whole,
            } => {
                in_parts.insert(*first, (work.clone(), part + 1, *whole));
            }
            Entry::Imported { first, last, items } => {
                done.extend(*first..=*last);
                tally.records(items);
            }
            Entry::Staged {
                package,
                container: c,
                items,
            } if *c == key.container_id => {
                staged.insert(*package, items.clone());
            }
            Entry::Staged { .. } => {}
        }
    }
    in_parts.retain(|first, _| !done.contains(first));
    run.packages_done_before = done.len() as u64;

    // Held until the round's run ends: no other run writes this destination meanwhile.
    let mut _destination_lock = None;
    let destination = if stages.import {
        let destination = Destination::open(
            &task.destination,
            task.settings.preserve,
            task.settings.conflicts,
            task.settings.verify,
        )
        .map_err(io_error("open the destination", &task.destination))?;
        _destination_lock = Some(destination.lock().map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                RunError::DestinationBusy {
                    task: task.name.clone(),
                    reason: e.to_string(),
                }
            } else {
                RunError::Io {
                    what: "lock the destination",
                    path: task.destination.clone(),
                    source: e,
                }
            }
        })?);
        if session.dirty {
            // An earlier run was importing when it stopped: its temporary files go, but
            // not the assemblies of files in parts that this run takes up.
            let keep: HashSet<String> = in_parts.values().map(|(w, _, _)| w.clone()).collect();
            run.cleaned = crate::import::clean_stray(&task.destination, &session.temp_salts, &keep);
        }
        session.dirty = true;
        let salt = crate::import::run_salt();
        if !session.temp_salts.iter().any(|s| s == salt) {
            session.temp_salts.push(salt.to_string());
        }
        Some(
            destination
                .with_index(Arc::new(std::mem::take(&mut index)))
                .with_package_limit(
                    task.settings.package.max_size.0,
                    task.settings.retries.attempts,
                ),
        )
    } else {
        None
    };
    session.status = SessionStatus::Running;
    session.save(folder)?;

    let items_report = if stages.import {
        Some(ItemReport::start(&reports, ids.clone(), &loaded.entries).map_err(report_error)?)
    } else {
        None
    };
    let unjournaled = Mutex::new(Vec::new());
    let halt = Halt::default();
    let shared = Shared {
        in_parts: &in_parts,
        halt: &halt,
        staging_path: &plan.staging.path,
        items_report: items_report.as_ref(),
        unjournaled: &unjournaled,
        task,
        key: &key,
        container: &container,
        destination: destination.as_ref(),
        send: stages.send,
        import: stages.import,
        journal: &journal,
        done: &done,
        staged: &staged,
        stop: control.stop,
        events: reporter.sender(),
    };
    let results = Mutex::new(tally);
    let mut last_save = std::time::Instant::now();
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
        let settings = &task.settings.package;
        let mut packer = Packer::new(settings.max_size.0, settings.max_files);
        let reader =
            ItemReader::open(&items_path).map_err(io_error("read the item list", &items_path))?;
        let mut send_all = |works: Vec<Work>| -> bool {
            for work in works {
                if control.stop.load(Ordering::Relaxed) || halt.is_set() {
                    return false;
                }
                if last_save.elapsed() > std::time::Duration::from_secs(5) {
                    last_save = std::time::Instant::now();
                    let t = results.lock().unwrap_or_else(|e| e.into_inner());
                    session.progress.items_done = t.imported + t.unchanged;
                    session.progress.bytes_done = t.bytes;
                    session.progress.failed = t.failed();
                    drop(t);
                    let _ = session.save(folder);
                }
                if send.send(work).is_err() {
                    return false;
                }
            }
            true
        };
        for item in reader {
            let item = item.map_err(io_error("read the item list", &items_path))?;
            if !send_all(packer.push(item)) {
                return Ok(packer.packages());
            }
        }
        if let Some(work) = packer.flush() {
            send_all(vec![work]);
        }
        Ok(packer.packages())
    })?;
    let mut tally = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let halted = halt.reason();
    let interrupted = control.stop.load(Ordering::Relaxed) && halted.is_none();
    run.interrupted = interrupted;
    session.progress.packages = produced;
    // Every run of the round, as journalled: for the folders, the index and the reports.
    drop(journal);
    let entries = journal::read(&journal_path, binding)
        .map_err(SessionError::from)?
        .entries;
    if let Some(destination) = &destination
        && !interrupted
        && halted.is_none()
    {
        // Every folder of the round that is in place gets its mode and time, also those
        // an earlier, interrupted run of the round created; a folder whose package
        // failed is not there to be given anything.
        let in_place: HashSet<&[u8]> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Imported { items, .. } => Some(items),
                _ => None,
            })
            .flatten()
            .filter(|r| {
                r.kind == package::KIND_FOLDER && matches!(r.result, ItemResult::Done { .. })
            })
            .map(|r| r.path.as_slice())
            .collect();
        let mut folders = Vec::new();
        for item in
            ItemReader::open(&items_path).map_err(io_error("read the item list", &items_path))?
        {
            let item = item.map_err(io_error("read the item list", &items_path))?;
            if item.kind == ItemKind::Folder && in_place.contains(item.rel.as_os_str().as_bytes()) {
                folders.push((item.rel, item.meta.mode, item.meta.mtime_ns));
            }
        }
        destination.set_folders(folders);
        for outcome in destination.finish() {
            if let Outcome::Failed { path, message, .. } = outcome {
                // The folder and its contents are in place: a finding of the round,
                // not a second state of the item.
                record_failure(&mut tally.failures, METADATA_FAILED, &path, &message);
            }
        }
    }
    run.staged_packages = tally.staged;
    run.imported_items = tally.imported;
    run.imported_bytes = tally.bytes;
    run.unchanged = tally.unchanged;
    session.progress.items_done = tally.imported + tally.unchanged;
    session.progress.bytes_done = tally.bytes;
    session.progress.failed = tally.failed();
    session.progress.packages_done = tally.packages + run.packages_done_before;
    run.failures = tally.failures;
    let unjournaled = unjournaled.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(reason) = halted {
        // A full disk (or a journal that cannot be written): nothing more was started,
        // and the round stays open for the run that follows the fix.
        session.status = SessionStatus::Failed;
        let _ = session.save(folder);
        round_reports(
            plan,
            task,
            session,
            &scanned,
            &run,
            "failed",
            items_report,
            &unjournaled,
            &entries,
            &ids,
            &reports,
        )?;
        return Err(RunError::Halted {
            task: task.name.clone(),
            round,
            reason,
        });
    }
    if interrupted {
        session.status = SessionStatus::Paused;
        session.save(folder)?;
        round_reports(
            plan,
            task,
            session,
            &scanned,
            &run,
            "paused",
            items_report,
            &unjournaled,
            &entries,
            &ids,
            &reports,
        )?;
        return Ok(run);
    }
    if stages.import {
        // The round is complete: what it moved joins the index; the staged data and the
        // key that opens it go.
        let mut index = Index::load(&index_path).map_err(SessionError::from)?;
        fold(&mut index, &entries);
        if let Some(destination) = &destination {
            run.deleted = mirror_deletions(
                task,
                &scanned,
                destination,
                &mut index,
                control.force,
                &mut run.failures,
            );
        }
        index.save(&index_path).map_err(SessionError::from)?;
        // Whatever is left in the container (objects refused as tampered, or never
        // consumed) could never be opened once the key goes: it goes first (finding 12).
        if let Err(e) = container.discard() {
            record_failure(
                &mut run.failures,
                CLEANUP_FAILED,
                &plan.staging.path,
                &format!("the round's staged data could not be deleted: {e}"),
            );
        }
        // The reports first, then the session: a run killed in between completes the
        // round again (every package is journalled) and writes them again. The key and
        // the hand-over note go last: until the
        // session says completed, an import-only run needs them to resume.
        round_reports(
            plan,
            task,
            session,
            &scanned,
            &run,
            "completed",
            items_report,
            &unjournaled,
            &entries,
            &ids,
            &reports,
        )?;
        session.status = SessionStatus::Completed;
        session.dirty = false;
        session.temp_salts.clear();
        session.last_result = Some(last_result(round, &run));
        session.save(folder)?;
        let _ = fs::remove_file(&key_path);
        let _ = fs::remove_file(&staged_path);
        return Ok(run);
    }
    let note = serde_json::to_vec_pretty(&Staged {
        version: 1,
        container: key.container_name(),
        packages: produced,
    })
    .unwrap_or_default();
    state::write_atomic(&staged_path, &note).map_err(|source| RunError::Io {
        what: "write the hand-over note",
        path: staged_path.clone(),
        source,
    })?;
    round_reports(
        plan,
        task,
        session,
        &scanned,
        &run,
        "staged",
        items_report,
        &unjournaled,
        &entries,
        &ids,
        &reports,
    )?;
    session.status = SessionStatus::Paused;
    session.save(folder)?;
    run.handed_over = Some(key_path);
    Ok(run)
}

/// A folder's mode or time could not be set at the round's end: the folder is in place.
const METADATA_FAILED: &str = FailureCode::MetadataFailed.as_str();
/// The round's staged data could not be deleted with its key.
const CLEANUP_FAILED: &str = FailureCode::CleanupFailed.as_str();

fn record_failure(
    failures: &mut BTreeMap<String, (u64, Vec<String>)>,
    code: &str,
    path: &Path,
    message: &str,
) {
    let entry = failures.entry(code.to_string()).or_default();
    entry.0 += 1;
    if entry.1.len() < 3 {
        entry
            .1
            .push(format!("{}: {message}", crate::shown::escape_path(path)));
    }
}
