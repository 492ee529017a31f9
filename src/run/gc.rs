//! What a task's state holds that may go: keys that expired, or whose staged data is
//! older than `staging.retention`, with that data (nobody could import it any more);
//! and the journals and item lists of completed rounds beyond `state.keep_rounds`.
//! Never the destination, never a round that is still open, never a report.

use super::*;

/// One thing that may go.
#[derive(Debug)]
pub struct Garbage {
    pub task: String,
    pub round: u32,
    pub what: Waste,
}

/// What it is.
#[derive(Debug)]
pub enum Waste {
    /// A key file and the container it opens.
    Key {
        path: PathBuf,
        container: String,
        /// Why it goes: "expired at …" or "staged more than … ago".
        why: String,
    },
    /// A completed round's own folder (item list, scan checkpoint, journal).
    Round { path: PathBuf },
    /// A container no key file of the plan opens (its key was deleted or lost), last
    /// written longer ago than the retention.
    Orphan { container: String, why: String },
}

impl Garbage {
    /// One line for a person.
    pub fn describe(&self) -> String {
        match &self.what {
            Waste::Key {
                path,
                container,
                why,
            } => format!(
                "task {} round {}: key {} and its staged data (container {container}): {why}",
                self.task,
                self.round,
                crate::shown::escape_path(path)
            ),
            Waste::Round { path } => format!(
                "task {} round {}: journal and item list ({}): a completed round beyond state.keep_rounds",
                self.task,
                self.round,
                crate::shown::escape_path(path)
            ),
            Waste::Orphan { container, why } => format!(
                "task {} round {}: staged data (container {container}) that no key opens: {why}",
                self.task, self.round
            ),
        }
    }
}

/// The keys of `task` that expired or whose data is older than the retention; with
/// `rounds`, also the completed rounds beyond `keep_rounds`. `now` in Unix seconds.
pub fn find(plan: &Plan, task: &Task, now: i64, rounds: bool) -> Vec<Garbage> {
    let layout = TaskLayout::of(plan, &task.name);
    let mut found = Vec::new();
    let retention = plan.staging.retention.0.as_secs() as i64;
    if let Ok(entries) = fs::read_dir(layout.keys()) {
        let mut keys: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let round = name
                    .to_str()?
                    .strip_prefix('R')?
                    .strip_suffix(".key")?
                    .parse()
                    .ok()?;
                Some((round, e.path()))
            })
            .collect();
        keys.sort();
        for (round, path) in keys {
            // Read without the expiry check: an expired key is what is looked for.
            let Ok(key) = KeyFile::read(&path, i64::MIN) else {
                continue;
            };
            let why = if now >= key.expires_at {
                format!(
                    "expired at {}",
                    crate::crypto::keyfile::shown_time(key.expires_at)
                )
            } else if now >= key.created_at.saturating_add(retention) {
                format!(
                    "staged at {}, longer ago than staging.retention",
                    crate::crypto::keyfile::shown_time(key.created_at)
                )
            } else {
                continue;
            };
            found.push(Garbage {
                task: task.name.clone(),
                round,
                what: Waste::Key {
                    path,
                    container: key.container_name(),
                    why,
                },
            });
        }
    }
    if rounds {
        let session = Session::load_checked(layout.folder(), &task.name)
            .ok()
            .flatten();
        let last_completed = match &session {
            Some(s) if s.status == SessionStatus::Completed => s.round,
            Some(s) => s.round.saturating_sub(1),
            None => 0,
        };
        let keep_from = last_completed.saturating_sub(plan.keep_rounds.saturating_sub(1));
        for round in 1..keep_from {
            let folder = layout.round(round).folder().to_path_buf();
            if folder.exists() {
                found.push(Garbage {
                    task: task.name.clone(),
                    round,
                    what: Waste::Round { path: folder },
                });
            }
        }
    }
    found
}

/// The containers of `tasks` in `staging` that this plan's state folder made, that no
/// key file of the plan opens, and that were last written longer ago than
/// `staging.retention`: staged data whose key file was
/// deleted or lost, which nobody can ever import. A container whose age is unknown is
/// kept. `now` in Unix seconds.
pub fn orphans(
    plan: &Plan,
    tasks: &[&Task],
    staging: &dyn Staging,
    now: i64,
) -> io::Result<Vec<Garbage>> {
    let mut known = HashSet::new();
    for task in &plan.tasks {
        let layout = TaskLayout::of(plan, &task.name);
        for entry in fs::read_dir(layout.keys()).into_iter().flatten().flatten() {
            if let Ok(key) = KeyFile::read(&entry.path(), i64::MIN) {
                known.insert(key.container_name());
            }
        }
    }
    let retention = plan.staging.retention.0.as_secs() as i64;
    // Only containers this state folder made: another plan's, or this plan's state on
    // another machine, share the account but not the key files.
    let mine = state::layout::PlanLayout::of(plan).owner();
    let mut found = Vec::new();
    let mut listed_prefixes = HashSet::new();
    for task in tasks {
        let prefix = format!("{}-r", crate::crypto::keyfile::slug(&task.name));
        if !listed_prefixes.insert(prefix.clone()) {
            continue;
        }
        for listed in staging.containers(&prefix)? {
            // Of a task whose name makes the same slug, the first one says it.
            let Some((owner, round)) = tasks.iter().find_map(|t| {
                crate::crypto::keyfile::container_round(&t.name, &mine, &listed.name)
                    .map(|r| (t, r))
            }) else {
                continue;
            };
            let Some(written_at) = listed.written_at else {
                continue;
            };
            if known.contains(&listed.name) || now < written_at.saturating_add(retention) {
                continue;
            }
            found.push(Garbage {
                task: owner.name.clone(),
                round,
                what: Waste::Orphan {
                    why: format!(
                        "last written at {}, longer ago than staging.retention",
                        crate::crypto::keyfile::shown_time(written_at)
                    ),
                    container: listed.name,
                },
            });
        }
    }
    Ok(found)
}

/// Deletes what [`find`] found: a key's staged data first, then the key (a key whose
/// data cannot be deleted stays, so that a later run can try again).
pub fn collect(staging: &dyn Staging, garbage: &Garbage) -> Result<(), RunError> {
    match &garbage.what {
        Waste::Key { path, .. } => discard_staged(staging, path),
        Waste::Round { path } => fs::remove_dir_all(path).map_err(|source| RunError::Io {
            what: "delete the round's state",
            path: path.clone(),
            source,
        }),
        Waste::Orphan { container, .. } => {
            staging
                .discard(container)
                .map_err(|source| RunError::Staging {
                    what: "delete",
                    container: container.clone(),
                    staging: staging.describe(),
                    source,
                })
        }
    }
}

/// What `ferry run` does at its end for each task: expired keys and their data go.
/// Failures are only said: the run's own result stands.
pub fn expired_keys(plan: &Plan, task: &Task, now: i64) -> Vec<String> {
    let garbage = find(plan, task, now, false);
    if garbage.is_empty() {
        return Vec::new();
    }
    let Ok(staging) = crate::staging::open(&plan.staging, task.settings.retries) else {
        return Vec::new();
    };
    garbage
        .iter()
        .map(|g| match collect(staging.as_ref(), g) {
            Ok(()) => format!("deleted {}", g.describe()),
            Err(e) => format!("could not delete {}: {e}", g.describe()),
        })
        .collect()
}
