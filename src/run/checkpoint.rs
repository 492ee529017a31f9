//! The round's item list and the checkpoints around it: the scan's (the item list is
//! complete, with its counters) and the hand-over note of a staging run.

use super::*;

/// The hand-over note between a staging run and an importing one.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Staged {
    pub(super) version: u32,
    pub(super) container: String,
    pub(super) packages: u64,
    /// The round travels (or came) with a ticket: its result is handed back through the
    /// container, which only the staging side deletes.
    #[serde(default)]
    pub(super) ticket: bool,
}

/// The hand-over note of `round`, when there is one that can be read.
pub(super) fn note(layout: &TaskLayout, round: u32) -> Option<Staged> {
    let bytes = fs::read(layout.round(round).staged()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The scan's checkpoint: the item list of the round is complete.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Scanned {
    pub(super) version: u32,
    pub(super) items: u64,
    pub(super) bytes: u64,
    pub(super) unchanged: u64,
    /// With `deletions: mirror`: what ferry put at the destination that the source no
    /// longer has (destination paths), deepest first.
    #[serde(default)]
    pub(super) deletions: Vec<PathBuf>,
    /// Items in the index when the round began (the base of `max_delete.percent`).
    #[serde(default)]
    pub(super) indexed: u64,
    /// The scan's counters, for the round's reports.
    #[serde(default)]
    pub(super) counts: ScanCounts,
    /// Files in the item list with more than one hard link (0: no link groups to
    /// look for).
    #[serde(default)]
    pub(super) linked: u64,
    /// The item list's length and BLAKE3 (hex): a resumed round checks it against them.
    #[serde(default)]
    pub(super) items_len: Option<u64>,
    #[serde(default)]
    pub(super) items_hash: Option<String>,
}

/// The scan's checkpoint of a round, checked like the journal: absent means "not
/// scanned yet" only while nothing else of the round exists; anything unreadable is
/// refused, never read as "not there" (finding 7).
pub(super) fn load_scanned(
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

/// Walks the task's source into the round's item list, leaving out what the index says
/// is unchanged since it was put at the destination, and writes the scan's checkpoint.
pub(super) fn walk(
    r: &Round<'_>,
    round: u32,
    index: &Index,
    scan_out: &mut Option<TaskScan>,
) -> Result<Scanned, RunError> {
    let task = r.task;
    let state = r.layout.round(round);
    let (items_path, scanned_path) = (&state.items(), &state.scan());
    let mut writer =
        ItemWriter::create(items_path).map_err(io_error("write the item list", items_path))?;
    let mut unchanged = 0u64;
    let mut bytes = 0u64;
    let mut linked = 0u64;
    let mirror = task.settings.deletions == Deletions::Mirror;
    // What the index has and the scan does not see is gone from the source.
    let mut unseen: HashSet<&[u8]> = if mirror {
        index.items.keys().map(Vec::as_slice).collect()
    } else {
        HashSet::new()
    };
    let scan = scanning::scan_task_with(r.plan, task, round, r.walk_threads, &mut |entry| {
        if mirror {
            unseen.remove(entry.dest.as_os_str().as_bytes());
        }
        if entry.status == Status::Migrate
            && let Some(mut item) = Item::from_entry(entry)
        {
            match unchanged_since(index, &item) {
                Since::Unchanged => {
                    unchanged += 1;
                    return Ok(());
                }
                Since::MetadataOnly => item.metadata_only = true,
                Since::Changed => {}
            }
            if item.kind == ItemKind::File && !item.metadata_only {
                bytes += item.meta.size;
                if item.meta.nlink > 1 {
                    linked += 1;
                }
            }
            writer.push(&item).map_err(|e| ScanError::Write {
                path: writer.path().to_path_buf(),
                source: e,
            })?;
        }
        Ok(())
    })?;
    let written = writer
        .finish()
        .map_err(io_error("write the item list", items_path))?;
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
    *scan_out = Some(scan);
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
        linked,
        items_len: Some(written.len),
        items_hash: Some(blake3::Hash::from_bytes(written.hash).to_hex().to_string()),
    };
    let text = serde_json::to_vec_pretty(&scanned).unwrap_or_default();
    state::write_atomic(scanned_path, &text).map_err(|source| RunError::Io {
        what: "write the scan's checkpoint",
        path: scanned_path.to_path_buf(),
        source,
    })?;
    Ok(scanned)
}
