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
use std::collections::{HashMap, HashSet};
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
use crate::staging::{Container, Staging};
use crate::state::index::{Index, Indexed};
use crate::state::journal::{self, Entry, ItemRecord, ItemResult, Journal};
use crate::state::layout::TaskLayout;
use crate::state::{self, Session, SessionError, Status as SessionStatus};

mod checkpoint;
mod direct;
mod end;
pub mod gc;
pub mod items;
mod links;
mod parts;
pub mod plan;
mod preflight;
pub mod progress;
mod reports;
mod round;
pub mod scanning;
#[cfg(test)]
mod tests;
mod ticket;
mod worker;

use crate::state::counters::Counters;
use checkpoint::{Scanned, Staged, load_scanned};
pub use end::discard_staged;
use end::{Ending, completed_result, fold};
pub use preflight::{check_access, check_import_access, check_staging};
pub use reports::summary;
use reports::{last_result, report_error, round_reports};
use round::{Round, replay};
pub use ticket::{HandOver, Ticket, TicketError, TicketTask, check_no_ticket, write_ticket};
use worker::{Halt, InParts, Shared};

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
    #[error(
        "task `{task}` is in the middle of round {round} as {was}; this run is {now}. A round is finished with the assignment it started with: run it as {was}, or `ferry delete PLAN --task {task}` to forget it"
    )]
    OtherAssignment {
        task: String,
        round: u32,
        was: String,
        now: String,
    },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cannot {what} in container {container} of staging {staging}: {source}")]
    Staging {
        what: &'static str,
        container: String,
        staging: String,
        source: io::Error,
    },
    #[error("staging {staging} is not writable: {source}")]
    StagingUnwritable { staging: String, source: io::Error },
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
    /// Of the whole round (all its runs): items put in place, bytes, items already in
    /// place, failed items by code and deletions; packages staged by this run.
    pub counters: Counters,
    /// Items not migrated again because they did not change since the last round.
    pub unchanged_since_last_round: u64,
    /// Where the key file waits, when the run stopped after staging.
    pub handed_over: Option<PathBuf>,
    /// What the run handed over for a ticket, when asked to.
    pub for_ticket: Option<HandOver>,
    /// Stray temporary files of an interrupted run, removed from the destination.
    pub cleaned: u64,
    /// An importing run with a ticket whose round was imported here already.
    pub already_imported: bool,
    /// Items the round's scan kept back for an error.
    pub not_migrated: u64,
}

impl TaskRun {
    /// Items that failed (findings of the round, such as a folder's mode that could not
    /// be set, are listed with the failures but are not items).
    pub fn failed(&self) -> u64 {
        self.counters.failed()
    }

    /// Whether anything went wrong: failed items, or findings of the round (warnings,
    /// about items that are in place, are not).
    pub fn any_failure(&self) -> bool {
        self.counters
            .failures
            .keys()
            .any(|code| !crate::failure::is_warning(code))
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
    /// An importing run's ticket for the task: its round comes from another site.
    pub ticket: Option<&'a TicketTask>,
    /// A staging run hands its round over for a ticket (puts the round's state into
    /// the container).
    pub hand_over: bool,
    /// The memory the run holds for data on its way, shared by its tasks.
    pub memory: &'a package::reads::Memory,
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

/// How `item` stands against the round that put it at the destination: unchanged
/// (see [`crate::import::decide::unchanged_since`]), changed in its metadata alone (its
/// change time moved), or to migrate.
fn unchanged_since(index: &Index, item: &Item) -> Since {
    let known = index.items.get(item.rel.as_os_str().as_bytes());
    let same = crate::import::decide::unchanged_since(
        known,
        kind_code(&item.kind),
        crate::import::decide::Source {
            size: item.meta.size,
            mtime_ns: item.meta.mtime_ns,
        },
    );
    match known {
        _ if !same => Since::Changed,
        // A change time unknown (an index from before they were kept), or the same.
        Some(known) if known.ctime_ns == 0 || known.ctime_ns == item.meta.ctime_ns => {
            Since::Unchanged
        }
        // The mode, owner, attributes or ACL changed, not the content: a file's package
        // carries its metadata alone; a folder or link is sent again as it is.
        _ if item.kind == ItemKind::File => Since::MetadataOnly,
        _ => Since::Changed,
    }
}

/// How an item stands against the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Since {
    Unchanged,
    MetadataOnly,
    Changed,
}

/// Runs one task's stages: a new round, or the rest of an unfinished one.
pub fn run_task(
    plan: &Plan,
    task: &Task,
    stages: Stages,
    workers: Option<usize>,
    walk_threads: Option<usize>,
    reporter: &Reporter,
    control: Control<'_>,
) -> Result<TaskRun, RunError> {
    let ticket = control.ticket;
    let folder = state::task_folder(plan, &task.name);
    let loaded = Session::load_checked(&folder, &task.name)?;
    let fresh = loaded.is_none();
    let mut session = loaded.unwrap_or_else(|| Session::new(task));
    let shard = plan.shard.map(state::ShardRecord::of);
    if fresh && control.ticket.is_none() {
        // A new split (another N, or unsharded after shards) starts from the index of
        // the one before, so that its rounds stay incremental; the session goes with
        // it, so that the index is never there without one.
        let layout = TaskLayout::at(&folder);
        let seeded =
            state::shards::seed_index(plan, &task.name, &layout).map_err(|e| RunError::Io {
                what: "take over the index of the split that ran before",
                path: layout.index(),
                source: io::Error::other(e),
            })?;
        if let Some(items) = seeded {
            tracing::info!(event = "index_taken_over", task = %task.name, items);
            session.shard.clone_from(&shard);
            session.save(&folder)?;
        }
    }
    if session.unfinished() && session.shard != shard {
        let describe = |s: &Option<state::ShardRecord>| match s {
            None => "an unsharded run".to_string(),
            Some(s) => format!("shard {} of {} ({})", s.index, s.count, s.scheme),
        };
        return Err(RunError::OtherAssignment {
            task: task.name.clone(),
            round: session.round,
            was: describe(&session.shard),
            now: describe(&shard),
        });
    }
    session.shard = shard;
    let unusable = |source| RunError::StagingUnwritable {
        staging: plan.staging.kind.as_str().to_string(),
        source,
    };
    // With a ticket's Azure grant, the container is reached through it alone.
    let staging: Box<dyn Staging> = match ticket.and_then(|t| t.azure.clone()) {
        Some(grant) => crate::staging::throttle::staging(Box::new(
            crate::staging::azure::Granted::new(grant, task.settings.retries).map_err(unusable)?,
        )),
        None => crate::staging::open(&plan.staging, task.settings.retries).map_err(unusable)?,
    };
    let mut round = Round {
        plan,
        task,
        stages,
        workers,
        walk_threads,
        reporter,
        control,
        staging: staging.as_ref(),
        folder: &folder,
        layout: TaskLayout::at(&folder),
    };
    if let Some(ticket) = ticket {
        // Taking the round over uses `--restart` (to set aside an earlier ticket's
        // round); the round taken over is then resumed, never set aside.
        if let Some(done) = round.adopt(ticket, &mut session, control.restart)? {
            return Ok(done);
        }
        round.control.restart = false;
    } else if !stages.send {
        ticket::needs_none(&round.layout, task, &session)?;
    }
    let result = run_round(&round, &mut session);
    if let Err(e) = &result
        && session.round > 0
        && !matches!(
            e,
            RunError::Session(SessionError::PlanChanged { .. })
                | RunError::NothingStaged { .. }
                | RunError::Ticket(_)
        )
    {
        session.status = SessionStatus::Failed;
        let _ = session.save(&folder);
    }
    result
}

/// Reads a round's scan checkpoint as a resumed run does (for the fuzz target).
#[doc(hidden)]
pub fn load_scan_checkpoint(scanned: &Path, items: &Path, journal: &Path) -> Result<(), RunError> {
    load_scanned(scanned, items, journal).map(|_| ())
}

/// Runs one round, as [`plan::decide`] says: the steps in their write order.
fn run_round(r: &Round<'_>, session: &mut Session) -> Result<TaskRun, RunError> {
    let (plan, task, stages) = (r.plan, r.task, r.stages);
    let hash = state::round_hash(task, plan.staging.kind);
    // A round handed over with a ticket and imported elsewhere completes here first.
    r.take_back(session)?;
    let mut index = Index::load(&r.layout.index()).map_err(SessionError::from)?;
    let decided = plan::decide(&r.facts(session, &hash)).map_err(|no| r.refused(no, &hash))?;
    tracing::Span::current().record("round", decided.round);
    tracing::info!(
        event = "task_start",
        resumed = !decided.new_round,
        send = stages.send,
        import = stages.import
    );
    if let Some(done) = r.begin(&decided, session, &mut index, hash)? {
        return Ok(done);
    }
    let round = decided.round;
    let state = r.layout.round(round);
    let mut run = TaskRun {
        round,
        resumed: !decided.new_round,
        ..TaskRun::default()
    };

    // The scan, or its checkpoint: the item list is what fixes package numbers.
    let journal_path = state.journal();
    let scanned = match load_scanned(&state.scan(), &state.items(), &journal_path)? {
        Some(scanned) => scanned,
        None => checkpoint::walk(r, round, &index, &mut run.scan)?,
    };
    run.unchanged_since_last_round = scanned.unchanged;
    run.not_migrated = scanned.counts.errors;
    session.progress.items = scanned.items;
    session.progress.bytes = scanned.bytes;
    session.progress.unchanged = scanned.unchanged;
    let _ = r.reporter.sender().send(Event::Planned {
        bytes: scanned.bytes,
    });
    let ids = RoundIds {
        round,
        task: task.name.clone(),
        task_id: crate::report::round::task_id(&plan.name, &task.name),
        device: state::device_name(),
        destination: task.destination.clone(),
        job: crate::report::round::new_job(),
    };
    if stages.send
        && stages.import
        && scanned.items == 0
        && scanned.deletions.is_empty()
        && !journal_path.exists()
    {
        return r.complete_unchanged(session, run, &scanned, &ids);
    }

    let key = r.key(round)?;
    let container = r
        .staging
        .open(&key.container_name())
        .map_err(|source| RunError::Staging {
            what: "open the round's container",
            container: key.container_name(),
            staging: r.staging.describe(),
            source,
        })?;
    // The journal: what earlier runs of this round made durable.
    let binding = journal::binding(&plan.name, &task.name, round);
    let (journal, loaded) = Journal::open(&journal_path, binding).map_err(SessionError::from)?;
    let replayed = replay(&loaded.entries, key.container_id);
    run.packages_done_before = replayed.done.len() as u64;
    let opened = if stages.import {
        Some(r.destination(session, &mut index, &replayed.in_parts, &mut run.cleaned)?)
    } else {
        None
    };
    let destination = opened.as_ref().map(|(d, _lock)| d);
    session.status = SessionStatus::Running;
    session.save(r.folder)?;
    let items_report = if stages.import {
        let reports = r.layout.reports(round);
        Some(ItemReport::start(&reports, ids.clone(), &loaded.entries).map_err(report_error)?)
    } else {
        None
    };

    let unjournaled = Mutex::new(Vec::new());
    let halt = Halt::default();
    let links = if task.settings.preserve.links() && scanned.linked > 0 {
        let items_path = state.items();
        links::Links::read(&items_path).map_err(io_error("read the item list", &items_path))?
    } else {
        links::Links::default()
    };
    let job = ids.job;
    let direct = r.plan.staging.kind == crate::plan::StagingKind::None;
    let reads = (stages.send && !direct).then(|| {
        package::reads::ReadAhead::new(
            Arc::clone(&r.control.memory.reads),
            package::xattr::Carry::of(&task.settings.preserve),
        )
    });
    let shared = Shared {
        in_parts: &replayed.in_parts,
        uploads: &replayed.uploads,
        halt: &halt,
        staging: r.staging,
        items_report: items_report.as_ref(),
        unjournaled: &unjournaled,
        links: &links,
        task,
        key: &key,
        container: container.as_ref(),
        destination,
        send: stages.send,
        import: stages.import,
        journal: &journal,
        done: &replayed.done,
        staged: &replayed.staged,
        stop: r.control.stop,
        events: r.reporter.sender(),
        job,
        reads: reads.as_ref(),
        packages: &r.control.memory.packages,
        direct,
    };
    let results = Mutex::new(replayed.tally);
    let produced = r.dispatch(&shared, &results, session, &state.items())?;
    drop(shared);
    drop(journal);
    let halted = halt.reason();
    run.interrupted = r.control.stop.load(Ordering::Relaxed) && halted.is_none();
    let tally = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let ending = Ending {
        scanned: &scanned,
        key: &key,
        container: container.as_ref(),
        destination,
        items_report,
        unjournaled: unjournaled.into_inner().unwrap_or_else(|e| e.into_inner()),
        ids: &ids,
        produced,
        halted,
    };
    r.end(session, run, tally, ending)
}
