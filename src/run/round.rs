//! One round of a task, as steps: gather the facts and decide ([`super::plan`]), begin
//! the round, have its item list, key and container, replay its journal, open the
//! destination, dispatch the work to the workers, and end the round. Each step is a
//! function; the order of the steps is the write order of docs/ARCHITECTURE.md.

use std::collections::BTreeMap;

use super::plan::{self, Facts, KeyState, KeyStep, Refusal, RoundFiles, RoundPlan, SessionFacts};
use super::*;

/// What every step of a round reads.
pub(super) struct Round<'a> {
    pub(super) plan: &'a Plan,
    pub(super) task: &'a Task,
    pub(super) stages: Stages,
    /// `--workers`: package workers (`None`: chosen for the source and destination).
    pub(super) workers: Option<usize>,
    pub(super) walk_threads: Option<usize>,
    pub(super) reporter: &'a Reporter,
    pub(super) control: Control<'a>,
    pub(super) staging: &'a dyn Staging,
    pub(super) folder: &'a Path,
    pub(super) layout: TaskLayout,
}

/// What earlier runs of the round made durable, from its journal.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// Packages imported (by first package).
    pub(super) done: HashSet<u64>,
    /// Packages staged under the current container, with the items that failed while
    /// each was built.
    pub(super) staged: HashMap<u64, Vec<ItemRecord>>,
    /// Files in parts under way, by first package.
    pub(super) in_parts: HashMap<u64, InParts>,
    /// Packages put in blocks and not staged yet: their uploads so far.
    pub(super) uploads: HashMap<u64, Upload>,
    /// The items of the imported packages.
    pub(super) tally: Counters,
}

/// Replays a round's journal for the container `container_id`: pure.
pub(super) fn replay(entries: &[Entry], container_id: [u8; 16]) -> Replay {
    let mut r = Replay::default();
    for entry in entries {
        match entry {
            Entry::Part {
                first,
                part,
                work,
                whole,
            } => {
                r.in_parts.insert(*first, (work.clone(), part + 1, *whole));
            }
            Entry::Imported {
                first, last, items, ..
            } => {
                r.done.extend(*first..=*last);
                r.tally.replayed(items);
            }
            Entry::Staged {
                package,
                container,
                items,
                ..
            } if *container == container_id => {
                r.staged.insert(*package, items.clone());
            }
            Entry::Staged { .. } => {}
            Entry::Block {
                package,
                container,
                upload,
                salt,
                sealed,
                index,
                id,
            } if *container == container_id => {
                let known = r.uploads.entry(*package).or_insert_with(|| Upload {
                    upload: upload.clone(),
                    salt: *salt,
                    sealed: *sealed,
                    blocks: BTreeMap::new(),
                });
                // A package whose upload began again keeps only the last upload's blocks.
                if known.upload != *upload || known.sealed != *sealed {
                    *known = Upload {
                        upload: upload.clone(),
                        salt: *salt,
                        sealed: *sealed,
                        blocks: BTreeMap::new(),
                    };
                }
                known.blocks.insert(*index, id.clone());
            }
            Entry::Block { .. } => {}
        }
    }
    let done = &r.done;
    r.in_parts.retain(|first, _| !done.contains(first));
    let staged = &r.staged;
    r.uploads.retain(|package, _| !staged.contains_key(package));
    r
}

/// An upload in blocks that an earlier run of the round began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Upload {
    pub(super) upload: String,
    pub(super) salt: [u8; 32],
    pub(super) sealed: [u8; 32],
    /// Block ids by index.
    pub(super) blocks: BTreeMap<u32, String>,
}

impl Round<'_> {
    /// The facts the round's plan rests on: what the session and the round's files say.
    pub(super) fn facts(&self, session: &Session, hash: &str) -> Facts {
        let files = |round: u32| {
            if round == 0 {
                return RoundFiles::NONE;
            }
            let state = self.layout.round(round);
            RoundFiles {
                key: key_state(&KeyFile::read(&self.layout.key(round), now())),
                note: state.staged().exists(),
                scanned: state.scan().exists(),
                journal: state.journal().exists(),
            }
        };
        Facts {
            session: (session.round > 0).then(|| SessionFacts {
                round: session.round,
                unfinished: session.unfinished(),
                plan_hash: session.plan_hash.clone(),
            }),
            hash: hash.to_string(),
            stages: self.stages,
            restart: self.control.restart,
            current: files(session.round),
            next: files(session.round + 1),
        }
    }

    /// Turns a refusal into the error a person reads.
    pub(super) fn refused(&self, refusal: Refusal, hash: &str) -> RunError {
        match refusal {
            Refusal::PlanChanged { round, was } => SessionError::PlanChanged {
                task: self.task.name.clone(),
                round,
                was,
                now: hash.to_string(),
            }
            .into(),
            Refusal::NothingStaged { round } => RunError::NothingStaged {
                task: self.task.name.clone(),
                path: self.layout.round(round).staged(),
            },
            Refusal::Key { round, .. } => match KeyFile::read(&self.layout.key(round), now()) {
                Err(e) => e.into(),
                // Valid again since the facts were gathered: say so rather than guess.
                Ok(_) => RunError::Checkpoint {
                    path: self.layout.key(round),
                    reason: "the key file changed while the run began".into(),
                },
            },
        }
    }

    /// Carries out the first steps of the round's plan: the leftovers of a completed
    /// round, an abandoned round, and the session of the round the run works on.
    /// Returns the completed round's result when that is the run's whole result.
    pub(super) fn begin(
        &self,
        decided: &RoundPlan,
        session: &mut Session,
        index: &mut Index,
        hash: String,
    ) -> Result<Option<TaskRun>, RunError> {
        if let Some(round) = decided.tidy {
            // A run killed after its round completed but before it deleted the round's
            // key and hand-over note: they go now (the staged data went before the
            // round completed).
            let key = self.layout.key(round);
            if key.exists() {
                discard_staged(self.staging, &key)?;
            }
            let _ = fs::remove_file(self.layout.round(round).staged());
            if decided.report_completed {
                // An import-only run that finds them is the killed one's rerun.
                return match completed_result(&self.layout, round) {
                    Some(done) => Ok(Some(done)),
                    None => Err(RunError::NothingStaged {
                        task: self.task.name.clone(),
                        path: self.layout.round(round + 1).staged(),
                    }),
                };
            }
        }
        if decided.abandon.is_some() {
            abandon(self, session, index)?;
        }
        if decided.new_round {
            session.round = decided.round;
            session.plan_hash = hash;
            session.round_started_at = Some(state::now_text());
            session.progress = state::Progress::default();
            // `dirty` stays as it was: what an abandoned round left at the destination
            // is cleaned by this round's first importing run.
        }
        session.host = state::device_name();
        session.status = SessionStatus::Scanning;
        session.save(self.folder)?;
        Ok(None)
    }

    /// The round's key: the one it started with while it is valid, else a new one (and a
    /// new container); what was staged under an expired one is staged again.
    pub(super) fn key(&self, round: u32) -> Result<KeyFile, RunError> {
        let key_path = self.layout.key(round);
        // Read once: the state decided on is the key used (it may expire during a scan).
        let read = KeyFile::read(&key_path, now());
        let state = key_state(&read);
        match (plan::key_step(state, self.stages.send, round), read) {
            (Ok(KeyStep::Reuse), Ok(key)) => return Ok(key),
            (Ok(KeyStep::Replace), _) => discard_staged(self.staging, &key_path)?,
            (Ok(KeyStep::Create), _) => {}
            (Ok(KeyStep::Reuse), Err(e)) | (Err(_), Err(e)) => return Err(e.into()),
            (Err(refusal), Ok(_)) => return Err(self.refused(refusal, "")),
        }
        let key = ContainerKey::generate()?;
        let mut container_id = [0u8; 16];
        crate::crypto::random(&mut container_id)?;
        let created_at = now();
        let key_file = KeyFile {
            key,
            container: crate::crypto::keyfile::container_name(
                &self.task.name,
                round,
                &state::layout::PlanLayout::of(self.plan).owner(),
                &container_id,
            ),
            container_id,
            created_at,
            expires_at: created_at + self.plan.staging.key_ttl.0.as_secs() as i64,
        };
        // The key is on disk before any package is sealed with it: a staged package is
        // never without the key that opens it.
        key_file.write(&key_path)?;
        Ok(key_file)
    }

    /// Opens and locks the destination for an importing run, cleans what an interrupted
    /// run left there, and records this run's temporary-name salt in the session.
    pub(super) fn destination(
        &self,
        session: &mut Session,
        index: &mut Index,
        in_parts: &HashMap<u64, InParts>,
        cleaned: &mut u64,
    ) -> Result<(Destination, crate::import::DestinationLock), RunError> {
        let task = self.task;
        let destination = Destination::open(
            &task.destination,
            task.settings.preserve,
            task.settings.conflicts,
            task.settings.verify,
        )
        .map_err(io_error("open the destination", &task.destination))?;
        // Held until the round's run ends: no other run writes this destination meanwhile.
        let lock = destination.lock(self.plan.shard.is_some()).map_err(|e| {
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
        })?;
        if session.dirty {
            // An earlier run was importing when it stopped: its temporary files go, but
            // not the assemblies of files in parts that this run takes up.
            let keep: HashSet<String> = in_parts.values().map(|(w, _, _)| w.clone()).collect();
            *cleaned = crate::import::clean_stray(&task.destination, &session.temp_salts, &keep);
        }
        session.dirty = true;
        let salt = crate::import::run_salt();
        if !session.temp_salts.iter().any(|s| s == salt) {
            session.temp_salts.push(salt.to_string());
        }
        let destination = destination
            .with_index(Arc::new(std::mem::take(index)))
            .with_package_limit(
                task.settings.package.max_size.0,
                task.settings.retries.attempts,
            );
        Ok((destination, lock))
    }

    /// Feeds the item list to the workers, package by package, saving the session's
    /// progress every few seconds; returns how many packages the round has.
    pub(super) fn dispatch(
        &self,
        shared: &Shared<'_>,
        results: &Mutex<Counters>,
        session: &mut Session,
        items_path: &Path,
    ) -> Result<u64, RunError> {
        let sizing = crate::latency::Sizing::of(
            self.task,
            self.plan.resources.reads,
            self.workers,
            shared.reads.is_some(),
        );
        let workers = sizing.workers;
        // The workers' log events belong to the task's span.
        let span = tracing::Span::current();
        std::thread::scope(|scope| -> Result<u64, RunError> {
            if let Some(pool) = shared.reads {
                for _ in 0..sizing.reads {
                    scope.spawn(|| pool.serve());
                }
            }
            // The pool's threads end when it closes: after the workers, and also when
            // a worker or the feeding panics (the scope would wait for them forever);
            // a worker's reads still queued go back with its package (`reads::Ahead`).
            let _closing = shared.reads.map(Closing);
            let (send, receive): (SyncSender<Work>, Receiver<Work>) = sync_channel(workers);
            let receive = Arc::new(Mutex::new(receive));
            let mut handles = Vec::with_capacity(workers);
            for _ in 0..workers {
                let receive = Arc::clone(&receive);
                let span = span.clone();
                handles.push(scope.spawn(move || {
                    let _entered = span.enter();
                    loop {
                        let work = receive.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(work) = work else { break };
                        let tally = shared.work(work);
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .merge(tally);
                    }
                    worker::give_back_buffer(shared.packages);
                }));
            }
            let fed = self.feed(shared, results, session, items_path, send);
            // The workers end once the channel is empty; the pool's threads once no
            // worker can queue a read.
            for handle in handles {
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            fed
        })
    }

    /// Cuts the item list into packages and sends them to the workers, saving the
    /// session's progress every few seconds; returns how many packages the round has.
    fn feed(
        &self,
        shared: &Shared<'_>,
        results: &Mutex<Counters>,
        session: &mut Session,
        items_path: &Path,
        send: SyncSender<Work>,
    ) -> Result<u64, RunError> {
        let settings = &self.task.settings.package;
        let mut packer = Packer::new(settings.max_size.0, settings.max_files);
        let reader =
            ItemReader::open(items_path).map_err(io_error("read the item list", items_path))?;
        let mut last_save = std::time::Instant::now();
        let mut send_all = |works: Vec<Work>| -> bool {
            for work in works {
                if shared.stopping() {
                    return false;
                }
                if last_save.elapsed() > std::time::Duration::from_secs(5) {
                    last_save = std::time::Instant::now();
                    let t = results.lock().unwrap_or_else(|e| e.into_inner());
                    session.progress.items_done = t.imported + t.unchanged;
                    session.progress.bytes_done = t.bytes;
                    session.progress.failed = t.failed();
                    drop(t);
                    let _ = session.save(self.folder);
                }
                if send.send(work).is_err() {
                    return false;
                }
            }
            true
        };
        for item in reader {
            let item = item.map_err(io_error("read the item list", items_path))?;
            // A file's other names come with it (see `links`).
            if shared.links.is_other_name(&item) {
                continue;
            }
            if !send_all(packer.push(item)) {
                return Ok(packer.packages());
            }
        }
        if let Some(work) = packer.flush() {
            send_all(vec![work]);
        }
        Ok(packer.packages())
    }
}

/// Closes a read pool when dropped.
struct Closing<'a>(&'a package::reads::ReadAhead);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A key file's state, as read at the edge for [`plan::decide`].
fn key_state(read: &Result<KeyFile, KeyFileError>) -> KeyState {
    match read {
        Ok(_) => KeyState::Valid,
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            KeyState::Missing
        }
        Err(KeyFileError::Expired { .. }) => KeyState::Expired,
        Err(_) => KeyState::Unusable,
    }
}

/// Sets an unfinished round aside: what it put at the destination goes into the index
/// (it is there, and ferry wrote it), its staged data and key are deleted, and a damaged
/// journal is renamed, kept as evidence.
pub(super) fn abandon(
    r: &Round<'_>,
    session: &mut Session,
    index: &mut Index,
) -> Result<(), RunError> {
    let round = session.round;
    let state = r.layout.round(round);
    let journal_path = state.journal();
    if journal_path.exists() {
        match Journal::open(
            &journal_path,
            journal::binding(&r.plan.name, &r.task.name, round),
        ) {
            Ok((_, loaded)) => fold(index, &loaded.entries),
            Err(_) => {
                let aside = state.journal_set_aside(now());
                fs::rename(&journal_path, &aside)
                    .map_err(io_error("set aside the damaged journal", &journal_path))?;
            }
        }
        index.save(&r.layout.index()).map_err(SessionError::from)?;
    }
    if checkpoint::note(&r.layout, round).is_some_and(|n| n.ticket) && !r.stages.send {
        // A ticket's container is the staging side's to delete.
        let _ = fs::remove_file(r.layout.key(round));
    } else {
        discard_staged(r.staging, &r.layout.key(round))?;
    }
    let _ = fs::remove_file(state.staged());
    session.status = SessionStatus::Completed;
    session.save(r.folder)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::journal::ItemRecord;

    fn record(path: &str) -> ItemRecord {
        ItemRecord {
            path: path.as_bytes().to_vec(),
            source: path.as_bytes().to_vec(),
            kind: package::KIND_FILE,
            size: 1,
            result: ItemResult::Failed {
                code: "read-failed".into(),
                message: "x".into(),
            },
            source_id: 7,
            dest_id: 0,
        }
    }

    #[test]
    fn replay_keeps_what_the_current_container_holds_and_what_was_imported() {
        let ours = [1u8; 16];
        let theirs = [2u8; 16];
        let entries = vec![
            Entry::Staged {
                package: 0,
                container: ours,
                items: vec![record("a")],
                job: 1,
            },
            Entry::Staged {
                package: 1,
                container: theirs,
                items: vec![],
                job: 1,
            },
            Entry::Imported {
                first: 2,
                last: 4,
                items: vec![],
                job: 1,
            },
            Entry::Part {
                first: 2,
                part: 1,
                work: "w2".into(),
                whole: None,
            },
            Entry::Part {
                first: 7,
                part: 0,
                work: "w7".into(),
                whole: None,
            },
        ];
        let r = replay(&entries, ours);
        assert_eq!(
            r.staged.len(),
            1,
            "staged under another key is staged again"
        );
        assert_eq!(r.staged[&0].len(), 1);
        assert_eq!(r.done, HashSet::from([2, 3, 4]));
        // A file in parts whose first package was imported is finished.
        assert_eq!(r.in_parts.len(), 1);
        assert_eq!(r.in_parts[&7], ("w7".to_string(), 1, None));
    }
}
