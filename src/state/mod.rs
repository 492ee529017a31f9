//! Sessions: what ferry remembers of each task between runs, so that every interruption
//! is harmless and every re-run cheap.
//!
//! `<working_folder>/<plan>/<task>/` holds `session.json` (status, round, the task's
//! plan hash, progress; replaced atomically), `rounds/R<n>/` (the round's item list, the
//! scan's totals and the checkpoint `journal`), `index` (what ferry has put at the
//! destination, for incremental rounds), `keys/` and `reports/R<n>/`.

pub mod counters;
mod durable;
pub mod index;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod shards;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Task};

pub use durable::{probe, sync_parent, write_atomic};

/// The version of `session.json`'s shape.
pub const SESSION_VERSION: u32 = 1;

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Never run.
    Queued,
    Scanning,
    Running,
    /// Stopped by a signal, by `--stages` (staged, waiting for its import), or killed:
    /// the next run resumes the round.
    Paused,
    Completed,
    /// Stopped by an error (source unreadable, destination full…): the next run resumes.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Scanning => "scanning",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }
}

/// Counters of the current (or last) round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Items the scan found to migrate this round (new or changed).
    pub items: u64,
    pub bytes: u64,
    /// Items unchanged since the last round, not migrated again.
    pub unchanged: u64,
    pub packages: u64,
    pub packages_done: u64,
    pub items_done: u64,
    pub bytes_done: u64,
    pub failed: u64,
}

/// How the last finished round ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastResult {
    pub round: u32,
    pub ended_at: String,
    pub imported: u64,
    pub bytes: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub deleted: u64,
}

/// One task's `session.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    pub task: String,
    pub status: Status,
    /// The current round (1, 2, …); 0 before the first.
    pub round: u32,
    /// The hash of the task as the plan said when the round started.
    pub plan_hash: String,
    pub round_started_at: Option<String>,
    pub updated_at: String,
    /// The machine of the last run.
    pub host: String,
    pub progress: Progress,
    pub last_result: Option<LastResult>,
    /// A run that imports was under way in this round: if it did not finish, it may
    /// have left temporary files at the destination.
    #[serde(default)]
    pub dirty: bool,
    /// The salts of the temporary names that this round's importing runs used at the
    /// destination: a resumed run removes what they left, and nothing of anyone else's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temp_salts: Vec<String>,
    /// The shard this state is of (`--shard K/N`), with the assignment's rule: a run
    /// with another assignment does not resume its round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

/// A shard as its checkpoints record it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub index: u32,
    pub count: u32,
    /// How units are cut and hashed ([`crate::plan::shard::SCHEME`]).
    pub scheme: String,
}

impl ShardRecord {
    pub fn of(shard: crate::plan::shard::Shard) -> ShardRecord {
        ShardRecord {
            index: shard.index,
            count: shard.count,
            scheme: crate::plan::shard::SCHEME.to_string(),
        }
    }
}

/// Why a session could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{} is not a session this ferry understands ({reason}); it was left as it is. `ferry delete PLAN --task {task}` forgets the task",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        task: String,
        reason: String,
    },
    #[error(
        "task `{task}` was changed in the plan since its round {round} started (plan hash {was} → {now}); resuming would mix two plans in one round. Run again with `--restart` to start a new round under the changed plan (what the interrupted round already moved is kept and counted)"
    )]
    PlanChanged {
        task: String,
        round: u32,
        was: String,
        now: String,
    },
    #[error(
        "{} is missing, though task `{task}` has rounds in its state: without it ferry cannot tell which round to resume, and replaying an old one would report a false success. `ferry delete PLAN --task {task}` forgets the task (the next run compares every file with the destination and copies only what differs)",
        path.display()
    )]
    Missing { path: PathBuf, task: String },
    #[error(
        "{} says task `{task}` is at round {round}, but round {found} exists in its state: the file is older than the task's state (restored from a backup?), and resuming from it would replay an old round. `ferry delete PLAN --task {task}` forgets the task (the next run compares every file with the destination and copies only what differs)",
        path.display()
    )]
    Stale {
        path: PathBuf,
        task: String,
        round: u32,
        found: u32,
    },
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
}

/// A time as every state file and report shows it: RFC 3339, UTC, whole seconds.
pub fn time_text(time: jiff::Timestamp) -> String {
    time.round(jiff::Unit::Second).unwrap_or(time).to_string()
}

pub fn now_text() -> String {
    time_text(jiff::Timestamp::now())
}

/// The hash of what a task does: its folders and effective settings. A round is
/// resumed only under the same hash.
pub fn task_hash(task: &Task) -> String {
    let value = serde_json::json!({
        "source": task.source,
        "destination": task.destination,
        "settings": task.settings,
    });
    let hash = blake3::hash(value.to_string().as_bytes());
    hash.to_hex()[..16].to_string()
}

/// The hash a round of `task` runs under: [`task_hash`], and for a plan that stages
/// nothing, that too. A round begun staged is not finished direct, nor the other way:
/// what one staged the other would never import (`--restart` sets the round aside).
pub fn round_hash(task: &Task, staging: crate::plan::StagingKind) -> String {
    let hash = task_hash(task);
    if staging != crate::plan::StagingKind::None {
        return hash;
    }
    blake3::hash(format!("{hash} direct").as_bytes()).to_hex()[..16].to_string()
}

/// The folder of a task's state.
pub fn task_folder(plan: &Plan, task_name: &str) -> PathBuf {
    layout::TaskLayout::of(plan, task_name)
        .folder()
        .to_path_buf()
}

impl Session {
    /// A task that has never run.
    pub fn new(task: &Task) -> Session {
        Session {
            version: SESSION_VERSION,
            task: task.name.clone(),
            status: Status::Queued,
            round: 0,
            plan_hash: task_hash(task),
            round_started_at: None,
            updated_at: now_text(),
            host: device_name(),
            progress: Progress::default(),
            last_result: None,
            dirty: false,
            temp_salts: Vec::new(),
            shard: None,
        }
    }

    fn path(folder: &Path) -> PathBuf {
        layout::TaskLayout::at(folder).session()
    }

    /// The task's session, or `None` when it has never run.
    pub fn load(folder: &Path, task: &str) -> Result<Option<Session>, SessionError> {
        let path = Session::path(folder);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SessionError::Io {
                    what: "read",
                    path,
                    source,
                });
            }
        };
        let unreadable = |reason: String| SessionError::Unreadable {
            path: path.clone(),
            task: task.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(SESSION_VERSION)) {
            return Err(unreadable(format!(
                "version {}, this ferry reads version {SESSION_VERSION}",
                version.map_or("missing".to_string(), |v| v.to_string())
            )));
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }

    /// Writes the session atomically (a reader sees the old one or the new one whole).
    pub fn save(&mut self, folder: &Path) -> Result<(), SessionError> {
        self.updated_at = now_text();
        let path = Session::path(folder);
        let text = serde_json::to_vec_pretty(self).unwrap_or_default();
        fs::create_dir_all(folder)
            .map_err(|source| SessionError::Io {
                what: "create",
                path: folder.to_path_buf(),
                source,
            })
            .and_then(|()| {
                crate::failpoint::hit("session-save")
                    .and_then(|()| write_atomic(&path, &text))
                    .map_err(|source| SessionError::Io {
                        what: "write",
                        path: path.clone(),
                        source,
                    })
            })
    }

    /// Whether the current round is unfinished (a run resumes it).
    pub fn unfinished(&self) -> bool {
        self.round > 0 && self.status != Status::Completed
    }

    /// The round a scan or run works on next: the unfinished one, or a new one.
    pub fn next_round(&self) -> u32 {
        if self.unfinished() {
            self.round
        } else {
            self.round + 1
        }
    }
}

/// The round a scan or run of `task` works on next.
pub fn next_round(plan: &Plan, task: &Task) -> Result<u32, SessionError> {
    Ok(
        Session::load_checked(&task_folder(plan, &task.name), &task.name)?
            .map_or(1, |s| s.next_round()),
    )
}

/// The highest round with state in a task's folder.
fn latest_round(layout: &layout::TaskLayout) -> Option<u32> {
    fs::read_dir(layout.round(0).folder().parent()?)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('R')?.parse().ok())
        // The remains of a take-over that did not finish are not a round.
        .filter(|&n| !layout.round(n).taking_over().exists())
        .max()
}

impl Session {
    /// The task's session, checked against the rest of its state: `None` only for a
    /// task that never ran. A session that is missing while rounds exist, or older than
    /// the newest round, is refused: it would replay an old round (finding 7).
    pub fn load_checked(folder: &Path, task: &str) -> Result<Option<Session>, SessionError> {
        let session = Session::load(folder, task)?;
        let layout = layout::TaskLayout::at(folder);
        let latest = latest_round(&layout);
        match &session {
            None if latest.is_some() || layout.index().exists() => Err(SessionError::Missing {
                path: layout.session(),
                task: task.to_string(),
            }),
            Some(s) if latest.is_some_and(|n| n > s.round) => Err(SessionError::Stale {
                path: layout.session(),
                task: task.to_string(),
                round: s.round,
                found: latest.unwrap_or(0),
            }),
            _ => Ok(session),
        }
    }
}

/// This machine's name, for the reports' "Device name" column.
pub fn device_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
