//! The ticket: what the importing side needs of a staged round, in one private file,
//! so that staging at one site and importing at another share nothing else.
//!
//! A staging run (`--stages scan,package,upload`) puts the round's own state into its
//! container next to the packages, sealed with the round's key like them: the item
//! list, the scan's checkpoint and the journal. The ticket (mode 0600) then holds the
//! container's name, the key, the expiry and, for Azure, a SAS for that one container
//! (read, create, write; no list or delete) that expires with the key. An importing
//! run given the ticket copies that state into its own working folder and imports the
//! round as if it had staged it. When the round is complete it hands the result back:
//! its journal, sealed, into the container. The staging side's next run finds it,
//! learns what arrived (its index), and deletes the container with the account key.

use std::io::{Read as _, Write as _};

use zeroize::{Zeroize as _, Zeroizing};

use super::*;
use crate::crypto::keyfile::{self, Private, hex, unhex};
use crate::staging::azure::Grant;

/// Objects of a round's own state, beside its packages (numbered from 0 up, never near
/// 2^62): `3 << 62 | kind << 56 | the first 32 bits of the file's BLAKE3 << 24 | chunk`.
/// The same file is the same objects (a second hand-over of an unchanged round puts
/// nothing new); a changed one, such as the journal after a later run staged what an
/// earlier one could not, gets objects of its own.
const ITEMS: u64 = 1;
const SCAN: u64 = 2;
const JOURNAL: u64 = 3;
const RESULT: u64 = 4;
/// The result's description, put last: the sign that the round was imported.
const RESULT_HEAD: u64 = (3 << 62) | (5 << 56);

fn object_id(kind: u64, hash: &str, chunk: u64) -> u64 {
    let prefix = u64::from_str_radix(hash.get(..8).unwrap_or("0"), 16).unwrap_or(0);
    (3 << 62) | (kind << 56) | (prefix << 24) | (chunk & 0xFF_FFFF)
}

/// The largest chunk of a file put into a container: what is held in memory at once.
const CHUNK: usize = 32 << 20;

/// Why a ticket cannot be used; nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("cannot {action} the ticket {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the ticket {} may be read by other accounts (mode {mode:o}); it was not used. It holds a key: keep it readable only by its owner (chmod 600)",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the ticket {} belongs to another account (uid {owner}); it was not used", path.display())]
    Owner { path: PathBuf, owner: u32 },
    #[error("the ticket {} is damaged or not a ferry ticket: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "the ticket {} expired at {expires}: its key and grant no longer open the staged round. Stage the round again at the source (`ferry run PLAN --stages scan,package,upload`) and bring the new ticket",
        path.display()
    )]
    Expired { path: PathBuf, expires: String },
    #[error("the ticket {} is for plan `{ticket}`, not `{plan}`", path.display())]
    OtherPlan {
        path: PathBuf,
        ticket: String,
        plan: String,
    },
    #[error("the ticket {} holds no round of task `{task}`", path.display())]
    NoTask { path: PathBuf, task: String },
    #[error("the ticket's round {round} of task `{task}` was not imported: {reason}")]
    Refused {
        task: String,
        round: u32,
        reason: String,
    },
}

/// A file of the round's state, as put into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handed {
    pub chunks: u64,
    pub len: u64,
    /// BLAKE3 of the whole file, hex.
    pub hash: String,
}

/// One task's staged round.
#[derive(Serialize, Deserialize)]
pub struct TicketTask {
    pub task: String,
    pub round: u32,
    /// The task's plan hash when the round began: the importing plan must agree.
    pub plan_hash: String,
    pub container: String,
    pub container_id: String,
    /// The container key, hex: a secret.
    key: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub packages: u64,
    pub items: Handed,
    pub scan: Handed,
    pub journal: Handed,
    /// For Azure: the container's SAS. Otherwise the importing side reaches the
    /// container with its own plan's staging settings.
    pub azure: Option<Grant>,
}

impl Drop for TicketTask {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for TicketTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketTask")
            .field("task", &self.task)
            .field("round", &self.round)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl TicketTask {
    fn key_file(&self) -> Option<KeyFile> {
        let key = Zeroizing::new(unhex::<32>(&self.key)?);
        let container_id = unhex::<16>(&self.container_id)?;
        Some(KeyFile {
            key: ContainerKey::from_bytes(*key),
            container_id,
            container: self.container.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

/// The ticket file.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ticket {
    version: u32,
    pub plan: String,
    pub tasks: Vec<TicketTask>,
}

impl Ticket {
    /// Reads and checks the ticket at `path`; `now` in Unix seconds.
    pub fn read(path: &Path, plan: &str, now: i64) -> Result<Ticket, TicketError> {
        let text = keyfile::read_private(path).map_err(|e| match e {
            Private::Io(source) => TicketError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            },
            Private::Exposed(mode) => TicketError::Exposed {
                path: path.to_path_buf(),
                mode,
            },
            Private::Owner(owner) => TicketError::Owner {
                path: path.to_path_buf(),
                owner,
            },
        })?;
        let malformed = |reason: String| TicketError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let ticket: Ticket = serde_json::from_slice(&text).map_err(|e| malformed(e.to_string()))?;
        if ticket.version != 1 {
            return Err(malformed(format!("unknown version {}", ticket.version)));
        }
        if ticket.plan != plan {
            return Err(TicketError::OtherPlan {
                path: path.to_path_buf(),
                ticket: ticket.plan.clone(),
                plan: plan.to_string(),
            });
        }
        for task in &ticket.tasks {
            let Some(key) = task.key_file() else {
                return Err(malformed(format!("the key of task `{}`", task.task)));
            };
            if crate::staging::check_name(&task.container).is_err() {
                return Err(malformed(format!("the container of task `{}`", task.task)));
            }
            let grant_ends = task.azure.as_ref().map(|g| g.expires_at());
            if grant_ends == Some(None) {
                return Err(malformed(format!("the grant of task `{}`", task.task)));
            }
            let ends = key.expires_at.min(grant_ends.flatten().unwrap_or(i64::MAX));
            if now >= ends {
                return Err(TicketError::Expired {
                    path: path.to_path_buf(),
                    expires: keyfile::shown_time(ends),
                });
            }
        }
        Ok(ticket)
    }

    /// The round of task `task`.
    pub fn task(&self, task: &str) -> Option<&TicketTask> {
        self.tasks.iter().find(|t| t.task == task)
    }
}

/// An importing run without a ticket: refused when the task's open round came with one
/// (its result must go back through it).
pub(super) fn needs_none(
    layout: &TaskLayout,
    task: &Task,
    session: &Session,
) -> Result<(), RunError> {
    let open = session.round > 0 && session.status != SessionStatus::Completed;
    if open && checkpoint::note(layout, session.round).is_some_and(|n| n.ticket) {
        return Err(RunError::Ticket(TicketError::Refused {
            task: task.name.clone(),
            round: session.round,
            reason: "it came with a ticket, and its result goes back through it: run with `--ticket FILE`".into(),
        }));
    }
    Ok(())
}

/// [`needs_none`] before anything else is checked: a run that forgot `--ticket` hears
/// that, not that the staging's key is missing.
pub fn check_no_ticket(plan: &Plan, task: &Task) -> Result<(), RunError> {
    let folder = state::task_folder(plan, &task.name);
    match Session::load_checked(&folder, &task.name) {
        Ok(Some(session)) => needs_none(&TaskLayout::at(&folder), task, &session),
        _ => Ok(()),
    }
}

/// What a staging run hands over for one task: everything of the ticket but the key,
/// which stays in its key file until the ticket is written.
#[derive(Debug)]
pub struct HandOver {
    pub task: String,
    pub round: u32,
    pub plan_hash: String,
    pub key_path: PathBuf,
    pub packages: u64,
    pub items: Handed,
    pub scan: Handed,
    pub journal: Handed,
    pub azure: Option<Grant>,
}

/// Writes the ticket of a staging run's hand-overs at `path` (mode 0600).
pub fn write_ticket(plan: &Plan, handed: &[&HandOver], path: &Path) -> Result<(), RunError> {
    let mut tasks = Vec::new();
    for h in handed {
        let key = KeyFile::read(&h.key_path, now())?;
        tasks.push(TicketTask {
            task: h.task.clone(),
            round: h.round,
            plan_hash: h.plan_hash.clone(),
            container: key.container.clone(),
            container_id: hex(&key.container_id),
            key: hex(key.key.expose()),
            created_at: key.created_at,
            expires_at: key.expires_at,
            packages: h.packages,
            items: h.items.clone(),
            scan: h.scan.clone(),
            journal: h.journal.clone(),
            azure: h.azure.clone(),
        });
    }
    let ticket = Ticket {
        version: 1,
        plan: plan.name.clone(),
        tasks,
    };
    let text = Zeroizing::new(serde_json::to_vec_pretty(&ticket).unwrap_or_default());
    keyfile::write_private(path, &text, false).map_err(|(what, source)| RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Puts the file at `path` into the container as sealed chunks of object `kind`.
fn put_file(
    container: &dyn Container,
    key: &KeyFile,
    kind: u64,
    path: &Path,
) -> Result<Handed, RunError> {
    let failed = |source| RunError::Staging {
        what: "hand over the round's state",
        container: key.container_name(),
        staging: String::new(),
        source,
    };
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(fs::File::open(path).map_err(io_error("read", path))?)
        .map_err(io_error("read", path))?;
    let hash = hasher.finalize().to_hex().to_string();
    let mut file = fs::File::open(path).map_err(io_error("read", path))?;
    let (mut chunks, mut len) = (0u64, 0u64);
    let mut chunk = Vec::with_capacity(CHUNK.min(1 << 20));
    loop {
        chunk.clear();
        io::Read::take(&mut file, CHUNK as u64)
            .read_to_end(&mut chunk)
            .map_err(io_error("read", path))?;
        if chunk.is_empty() && chunks > 0 {
            break;
        }
        len += chunk.len() as u64;
        let id = object_id(kind, &hash, chunks);
        let payload = zstd::bulk::compress(&chunk, 3).map_err(failed)?;
        let seal = Seal {
            container_id: key.container_id,
            package_id: id,
            flags: FLAG_ZSTD,
            created_at: key.created_at,
            expires_at: key.expires_at,
        };
        container
            .put(&key.key.object_name(id), &mut |out| {
                envelope::seal(&key.key, &seal, &payload, out).map_err(io::Error::from)
            })
            .map_err(failed)?;
        chunks += 1;
        if chunk.len() < CHUNK {
            break;
        }
    }
    Ok(Handed { chunks, len, hash })
}

/// Gets a file put by [`put_file`] into `path` (whole, synced, renamed into place),
/// checking every chunk's seal and the whole file's length and hash. `now` is checked
/// against the key's expiry, except for a result read back by the staging side.
fn get_file(
    container: &dyn Container,
    key: &KeyFile,
    kind: u64,
    handed: &Handed,
    path: &Path,
    now: i64,
) -> Result<(), RunError> {
    let failed = |source: io::Error| RunError::Staging {
        what: "take over the round's state",
        container: key.container_name(),
        staging: String::new(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut out = fs::File::create(&partial).map_err(io_error("write", &partial))?;
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    for k in 0..handed.chunks {
        let id = object_id(kind, &handed.hash, k);
        let object = container.get(&key.key.object_name(id)).map_err(failed)?;
        let expect = Expect {
            container_id: key.container_id,
            package_id: id,
            now,
        };
        let mut opened = envelope::open(&key.key, expect, object)
            .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        let mut sealed = Vec::new();
        opened
            .read_to_end(&mut sealed)
            .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        let chunk = zstd::stream::decode_all(&sealed[..]).map_err(failed)?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        out.write_all(&chunk).map_err(io_error("write", &partial))?;
    }
    if len != handed.len || hasher.finalize().to_hex().as_str() != handed.hash {
        let _ = fs::remove_file(&partial);
        return Err(failed(io::Error::new(
            io::ErrorKind::InvalidData,
            "a file of the round's state is not the one the ticket describes",
        )));
    }
    out.sync_all().map_err(io_error("write", &partial))?;
    drop(out);
    fs::rename(&partial, path).map_err(io_error("write", path))?;
    Ok(())
}

impl Round<'_> {
    /// A staging run's hand-over: the round's state goes into its container.
    pub(super) fn hand_over(
        &self,
        key: &KeyFile,
        container: &dyn Container,
        round: u32,
        packages: u64,
    ) -> Result<HandOver, RunError> {
        let state = self.layout.round(round);
        let put =
            |kind, path: &Path| put_file(container, key, kind, path).map_err(|e| self.described(e));
        let azure = self
            .staging
            .grant(&key.container_name(), key.expires_at)
            .map_err(|source| RunError::Staging {
                what: "grant access to",
                container: key.container_name(),
                staging: self.staging.describe(),
                source,
            })?;
        Ok(HandOver {
            task: self.task.name.clone(),
            round,
            plan_hash: state::task_hash(self.task),
            key_path: self.layout.key(round),
            packages,
            items: put(ITEMS, &state.items())?,
            scan: put(SCAN, &state.scan())?,
            journal: put(JOURNAL, &state.journal())?,
            azure,
        })
    }

    fn described(&self, e: RunError) -> RunError {
        match e {
            RunError::Staging {
                what,
                container,
                source,
                ..
            } => RunError::Staging {
                what,
                container,
                staging: self.staging.describe(),
                source,
            },
            other => other,
        }
    }

    /// An importing run with a ticket: the ticket's round becomes this side's current
    /// round (its item list, scan checkpoint, journal and key copied in), unless it
    /// already is. `Some` when there is nothing to do: the round was imported here
    /// already (its result, as it was).
    pub(super) fn adopt(
        &self,
        ticket: &TicketTask,
        session: &mut Session,
        restart: bool,
    ) -> Result<Option<TaskRun>, RunError> {
        let task = &self.task.name;
        let refuse = |reason: String| {
            RunError::Ticket(TicketError::Refused {
                task: task.clone(),
                round: ticket.round,
                reason,
            })
        };
        let hash = state::task_hash(self.task);
        if ticket.plan_hash != hash {
            return Err(refuse(
                "the ticket's round was staged under other settings for this task than this plan has: use the same plan on both sides".into(),
            ));
        }
        let key = ticket
            .key_file()
            .ok_or_else(|| refuse("the ticket's key is damaged".into()))?;
        let unfinished = session.round > 0 && session.status != SessionStatus::Completed;
        if session.round == ticket.round && unfinished {
            // Taken over already. A key that expired at the staging side was replaced
            // there, with a new container: the round continues with those.
            let _ = fs::remove_file(self.layout.round(ticket.round).taking_over());
            let key_path = self.layout.key(ticket.round);
            let known = KeyFile::read(&key_path, i64::MIN).ok();
            if known.is_none_or(|k| k.container_id != key.container_id) {
                self.write_note(ticket)?;
                key.write(&key_path)?;
            }
            return Ok(None);
        }
        if session.round == ticket.round {
            // Imported here already: the same command again (a cron job, or a rerun
            // for another task of the ticket) has nothing to do for this task.
            let mut done =
                completed_result(&self.layout, ticket.round).unwrap_or_else(|| TaskRun {
                    round: ticket.round,
                    ..TaskRun::default()
                });
            done.already_imported = true;
            return Ok(Some(done));
        }
        if session.round > ticket.round {
            return Err(refuse(format!(
                "this side is at round {} already: the ticket is older than what was imported here; bring the latest ticket",
                session.round
            )));
        }
        if unfinished && !restart {
            return Err(refuse(format!(
                "round {} of an earlier ticket is not finished here: finish it with its ticket, or set it aside with --restart",
                session.round
            )));
        }
        let container =
            self.staging
                .open(&ticket.container)
                .map_err(|source| RunError::Staging {
                    what: "open the ticket's container",
                    container: ticket.container.clone(),
                    staging: self.staging.describe(),
                    source,
                })?;
        let state = self.layout.round(ticket.round);
        if state.taking_over().exists() {
            // A take-over a crash interrupted: it starts again from nothing.
            fs::remove_dir_all(state.folder()).map_err(io_error("remove", state.folder()))?;
        }
        let fresh = !state.folder().exists();
        fs::create_dir_all(state.folder()).map_err(io_error("create", state.folder()))?;
        if fresh {
            // Before any file of the round: until the session names the round, its
            // folder is known for the remains of an unfinished take-over.
            state::write_atomic(&state.taking_over(), b"")
                .map_err(io_error("write", &state.taking_over()))?;
        }
        let now = now();
        let get = |kind, handed: &Handed, path: &Path| {
            get_file(container.as_ref(), &key, kind, handed, path, now)
                .map_err(|e| self.described(e))
        };
        let fetched = get(ITEMS, &ticket.items, &state.items())
            .and_then(|()| get(JOURNAL, &ticket.journal, &state.journal()))
            // The checkpoint last of the round's files: with it, the round is taken over.
            .and_then(|()| get(SCAN, &ticket.scan, &state.scan()));
        if let Err(e) = fetched {
            // Nothing of a round that was not taken over stays behind: a round folder
            // without a session would stop every later run of the task.
            if fresh {
                let _ = fs::remove_dir_all(state.folder());
                if let Some(rounds) = state.folder().parent() {
                    let _ = fs::remove_dir(rounds);
                }
            }
            return Err(match e {
                RunError::Staging { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    refuse(format!(
                        "its container {} is gone (the staging site set the round aside, or deleted it when its key expired): bring the latest ticket, or stage the round again",
                        ticket.container
                    ))
                }
                other => other,
            });
        }
        self.write_note(ticket)?;
        key.write(&self.layout.key(ticket.round))?;
        if unfinished {
            let mut index = Index::load(&self.layout.index()).map_err(SessionError::from)?;
            round::abandon(self, session, &mut index)?;
        }
        session.round = ticket.round;
        session.plan_hash = hash;
        session.round_started_at = Some(state::now_text());
        session.progress = state::Progress::default();
        session.status = SessionStatus::Paused;
        session.save(self.folder)?;
        let _ = fs::remove_file(state.taking_over());
        Ok(None)
    }

    fn write_note(&self, ticket: &TicketTask) -> Result<(), RunError> {
        let path = self.layout.round(ticket.round).staged();
        let note = serde_json::to_vec_pretty(&Staged {
            version: 1,
            container: ticket.container.clone(),
            packages: ticket.packages,
            ticket: true,
        })
        .unwrap_or_default();
        state::write_atomic(&path, &note).map_err(io_error("write", &path))
    }

    /// The end of a ticket's round at the importing side: its journal goes back into
    /// the container, then the description that says it is there.
    pub(super) fn hand_back(&self, key: &KeyFile, round: u32) -> io::Result<()> {
        let container = self.staging.open(&key.container_name())?;
        let journal = self.layout.round(round).journal();
        let handed = put_file(container.as_ref(), key, RESULT, &journal).map_err(|e| match e {
            RunError::Staging { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        let head = serde_json::to_vec(&handed).unwrap_or_default();
        let seal = Seal {
            container_id: key.container_id,
            package_id: RESULT_HEAD,
            flags: 0,
            created_at: key.created_at,
            expires_at: key.expires_at,
        };
        container
            .put(&key.key.object_name(RESULT_HEAD), &mut |out| {
                envelope::seal(&key.key, &seal, &head, out).map_err(io::Error::from)
            })
            .map(|_| ())
    }

    /// A staging run whose last round was handed over with a ticket: when the importing
    /// side has handed the result back, what it imported joins this side's index, the
    /// round is complete here too, and its container is deleted. True when it was.
    pub(super) fn take_back(&self, session: &mut Session) -> Result<bool, RunError> {
        let round = session.round;
        let handed_with_ticket = checkpoint::note(&self.layout, round).is_some_and(|n| n.ticket);
        if !self.stages.send
            || round == 0
            || session.status == SessionStatus::Completed
            || !handed_with_ticket
        {
            return Ok(false);
        }
        let state = self.layout.round(round);
        // The result may come back after the key expired: it is read all the same.
        let key = match KeyFile::read(&self.layout.key(round), i64::MIN) {
            Ok(key) => key,
            Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let describe = |source| RunError::Staging {
            what: "look for the imported round's result",
            container: key.container_name(),
            staging: self.staging.describe(),
            source,
        };
        let container = self.staging.open(&key.container_name()).map_err(describe)?;
        let head_name = key.key.object_name(RESULT_HEAD);
        if !container.exists(&head_name).map_err(describe)? {
            return Ok(false);
        }
        let expect = Expect {
            container_id: key.container_id,
            package_id: RESULT_HEAD,
            now: key.created_at,
        };
        let object = container.get(&head_name).map_err(describe)?;
        let mut head = Vec::new();
        envelope::open(&key.key, expect, object)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            .and_then(|mut opened| opened.read_to_end(&mut head))
            .map_err(describe)?;
        let handed: Handed = serde_json::from_slice(&head)
            .map_err(|e| describe(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        let result = state.folder().join("imported-journal");
        get_file(
            container.as_ref(),
            &key,
            RESULT,
            &handed,
            &result,
            key.created_at,
        )
        .map_err(|e| self.described(e))?;
        let binding = journal::binding(&self.plan.name, &self.task.name, round);
        let entries = journal::read(&result, binding)
            .map_err(SessionError::from)?
            .entries;
        let index_path = self.layout.index();
        let mut index = Index::load(&index_path).map_err(SessionError::from)?;
        fold(&mut index, &entries);
        // What the source no longer has leaves the index, whether or not the importing
        // side could delete it: forgetting too much only sends a file again, while
        // remembering a deleted file would keep it from being sent if it came back.
        if let Some(scanned) = load_scanned(&state.scan(), &state.items(), &state.journal())? {
            for path in &scanned.deletions {
                index.items.remove(path.as_os_str().as_bytes());
            }
        }
        index.save(&index_path).map_err(SessionError::from)?;
        // Complete first: a run killed after this finds the key and note as a completed
        // round's leftovers, and tidies them (container included).
        session.status = SessionStatus::Completed;
        session.save(self.folder)?;
        discard_staged(self.staging, &self.layout.key(round))?;
        let _ = fs::remove_file(state.staged());
        let _ = fs::remove_file(&result);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A changed file is new objects, an unchanged one the same: a second hand-over of
    /// a round whose journal grew never meets the first one's objects. No state object
    /// is ever a package's number, and kinds never meet.
    #[test]
    fn state_objects_are_named_by_kind_and_content() {
        let a = "0123abcd".to_string() + &"0".repeat(56);
        let b = "89ef4567".to_string() + &"0".repeat(56);
        assert_eq!(object_id(JOURNAL, &a, 0), object_id(JOURNAL, &a, 0));
        assert_ne!(object_id(JOURNAL, &a, 0), object_id(JOURNAL, &b, 0));
        assert_ne!(object_id(JOURNAL, &a, 0), object_id(ITEMS, &a, 0));
        assert_ne!(object_id(ITEMS, &a, 0), object_id(ITEMS, &a, 1));
        for kind in [ITEMS, SCAN, JOURNAL, RESULT] {
            assert!(object_id(kind, &a, 0) >= 3 << 62);
            assert_ne!(object_id(kind, &"f".repeat(64), 0xFF_FFFF), RESULT_HEAD);
        }
    }
}
