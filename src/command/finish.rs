//! `ferry finish PLAN --shards N`: once every shard of every task has completed the
//! same round, what needs the whole picture. The folders above the units (which every
//! shard wrote into) get their modes and times after the last write, and the shards'
//! reports are merged into one set per task, and the plan's summaries, counting every
//! item exactly once.
//!
//! Nothing is changed unless every shard is ready: a shard that has not run, has not
//! completed its round, or is at another round than the others is listed, and finish
//! exits 1. An item that two shards both report is an error, not a double count.
//!
//! Mirrored deletions are each shard's own: a shard's index holds only its own units
//! (its state is per `K-of-N`, and the assignment depends on the path alone), so what
//! it finds gone from its units is gone from the source. Only the folders above the
//! units, which hold other shards' items until those have run, are left to finish.
//!
//! Tasks with `mode: scan-only` keep no rounds and are passed over. A split that ran
//! after the one named (another N, or unsharded) makes finish refuse: it would publish
//! an older picture over a newer one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Error;
use crate::exit::Exit;
use crate::plan::shard::{SCHEME, Shard};
use crate::plan::{Plan, Task};
use crate::report::round::{FAILURE_COLUMNS, ITEM_COLUMNS, RoundSummary};
use crate::report::summary::{Format, PlanSummary, Templates};
use crate::run::items::ItemReader;
use crate::state::layout::{PlanLayout, TaskLayout};
use crate::state::{Session, Status};

/// One task's shards, all at `round`.
struct Ready<'a> {
    task: &'a Task,
    round: u32,
    shards: Vec<(Shard, TaskLayout)>,
}

/// Where the merged reports of `task`'s round go: beside the shards' states.
pub fn merged_reports(plan: &Plan, task: &str, count: u32, round: u32) -> PathBuf {
    PlanLayout::of(plan)
        .task(task)
        .folder()
        .join(format!("shards-of-{count}"))
        .join("reports")
        .join(format!("R{round}"))
}

pub fn run(path: &Path, count: u32) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    if plan.shard.is_some() || !(1..=crate::plan::shard::MAX_SHARDS).contains(&count) {
        return Err(Error::Usage(format!(
            "--shards takes the number of shards the runs were split into, from 1 to {}",
            crate::plan::shard::MAX_SHARDS
        )));
    }
    let root = PlanLayout::of(&plan).folder().to_path_buf();
    // Checked before the plan's lock is taken (a refusal creates nothing), and again
    // under it.
    let (problems, _) = check(&plan, &root, count);
    if !problems.is_empty() {
        return Ok(refuse(count, &problems));
    }
    let _lock = crate::state::lock::PlanLock::take(&root, &plan.name)?;
    let (mut problems, ready) = check(&plan, &root, count);
    if !problems.is_empty() {
        return Ok(refuse(count, &problems));
    }
    // Merged into `R<n>.merging` folders first: a duplicate found in any task leaves
    // every earlier merge unpublished.
    let mut merged = Vec::new();
    for r in &ready {
        match merge(&plan, count, r) {
            Ok(m) => merged.push(m),
            Err(Merge::Duplicates(found)) => problems.extend(found),
            Err(Merge::Io(e)) => {
                discard(&merged);
                return Err(Error::Report(e));
            }
        }
    }
    if !problems.is_empty() {
        discard(&merged);
        return Ok(refuse(count, &problems));
    }
    let mut summaries = Vec::new();
    for (r, (mut summary, partial, folder)) in ready.iter().zip(merged) {
        let removed = top_folders(r);
        if removed > 0 {
            summary.stages.deleted += removed;
            summary.save(&partial).map_err(report_error)?;
            summary.write_item_summary(&partial).map_err(report_error)?;
        }
        let _ = fs::remove_dir_all(&folder);
        fs::rename(&partial, &folder).map_err(Error::Report)?;
        eprintln!("merged reports: {}", folder.display());
        summaries.push(summary);
    }
    let summary = PlanSummary::of(&plan.name, summaries, Vec::new());
    let templates = Templates::for_plan(plan.templates.as_deref())
        .map_err(|e| Error::Report(io::Error::other(e.to_string())))?;
    crate::report::summary::write(
        &root,
        &summary,
        &templates,
        &[Format::Markdown, Format::Html],
        true,
    )
    .map_err(|e| Error::Report(io::Error::other(e.to_string())))?;
    eprintln!("summary: {}", root.join("Summary.html").display());
    Ok(if summary.status == "completed" {
        Exit::Success
    } else {
        Exit::Partial
    })
}

/// What keeps the shards from being finished, and each task's shards when nothing does.
fn check<'a>(plan: &'a Plan, root: &Path, count: u32) -> (Vec<String>, Vec<Ready<'a>>) {
    let mut problems = Vec::new();
    let mut ready = Vec::new();
    // Tasks that only scan keep no rounds to finish.
    for task in plan
        .tasks
        .iter()
        .filter(|t| t.settings.mode == crate::plan::raw::Mode::Migrate)
    {
        let newer = crate::state::shards::newer_splits(plan, &task.name, count);
        if !newer.is_empty() {
            problems.push(format!(
                "task `{}`: {} ran after these {count} shards; finishing them would publish an older picture over a newer one",
                task.name,
                newer.join(" and ")
            ));
        }
        let mut rounds: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut shards = Vec::new();
        for index in 0..count {
            let shard = Shard { index, count };
            let state = PlanLayout::sharded(root, shard).task(&task.name);
            let name = format!("task `{}`, shard {index} of {count}", task.name);
            match Session::load_checked(state.folder(), &task.name) {
                Err(e) => problems.push(format!("{name}: {e}")),
                Ok(None) => problems.push(format!(
                    "{name}: has not run (no state in {})",
                    state.folder().display()
                )),
                Ok(Some(s)) if s.status != Status::Completed => problems.push(format!(
                    "{name}: round {} is {}, not completed; run the shard again (`--shard {index}/{count}`) to complete it",
                    s.round,
                    s.status.as_str()
                )),
                Ok(Some(s)) if s.shard.as_ref().is_some_and(|r| r.scheme != SCHEME) => {
                    problems.push(format!(
                        "{name}: its units were assigned another way ({}); this ferry assigns by {SCHEME}",
                        s.shard.map(|r| r.scheme).unwrap_or_default()
                    ));
                }
                Ok(Some(s)) => {
                    rounds.entry(s.round).or_default().push(index);
                    shards.push((shard, state));
                }
            }
        }
        if rounds.len() > 1 {
            let at: Vec<String> = rounds
                .iter()
                .map(|(round, indexes)| format!("round {round}: shards {indexes:?}"))
                .collect();
            problems.push(format!(
                "task `{}`: the shards are at different rounds ({}); run the ones behind again so that all complete the same round",
                task.name,
                at.join("; ")
            ));
        }
        if let Some((&round, _)) = rounds.iter().next_back()
            && shards.len() == count as usize
        {
            ready.push(Ready {
                task,
                round,
                shards,
            });
        }
    }
    (problems, ready)
}

fn report_error(e: crate::report::ReportError) -> Error {
    Error::Report(io::Error::other(e.to_string()))
}

fn refuse(count: u32, problems: &[String]) -> Exit {
    eprintln!(
        "error: not every one of the {count} shards is ready to finish; nothing was changed:"
    );
    for problem in problems {
        eprintln!("  - {problem}");
    }
    Exit::Partial
}

fn discard(merged: &[(RoundSummary, PathBuf, PathBuf)]) {
    for (_, partial, _) in merged {
        let _ = fs::remove_dir_all(partial);
    }
}

enum Merge {
    Duplicates(Vec<String>),
    Io(io::Error),
}

impl From<io::Error> for Merge {
    fn from(e: io::Error) -> Merge {
        Merge::Io(e)
    }
}

impl From<crate::report::ReportError> for Merge {
    fn from(e: crate::report::ReportError) -> Merge {
        Merge::Io(io::Error::other(e.to_string()))
    }
}

/// One task's shards' reports, merged into a `.merging` folder: the merged summary,
/// that folder, and where it goes.
fn merge(
    plan: &Plan,
    count: u32,
    r: &Ready<'_>,
) -> Result<(RoundSummary, PathBuf, PathBuf), Merge> {
    let round = r.round;
    let folder = merged_reports(plan, &r.task.name, count, round);
    let partial = folder.with_extension("merging");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    let reports: Vec<PathBuf> = r.shards.iter().map(|(_, s)| s.reports(round)).collect();
    let item = format!("ItemReport_R{round}.csv");
    let duplicates = concat(&reports, &item, &partial, &ITEM_COLUMNS, true)?;
    if !duplicates.is_empty() {
        let _ = fs::remove_dir_all(&partial);
        return Err(Merge::Duplicates(
            duplicates
                .into_iter()
                .map(|(source, shards)| {
                    format!(
                        "task `{}`: {source} is in the reports of shards {shards:?}; an item belongs to one shard, so these shards' states are not of one run (remove the strays, or `ferry delete PLAN --task {}`)",
                        r.task.name, r.task.name
                    )
                })
                .collect(),
        ));
    }
    let failures = format!("ItemFailureReport_R{round}.csv");
    if reports.iter().any(|f| f.join(&failures).exists()) {
        concat(&reports, &failures, &partial, &FAILURE_COLUMNS, false)?;
    }
    let scan = format!("ScanReport_R{round}.csv");
    if reports.iter().any(|f| f.join(&scan).exists()) {
        let header = ["Path", "Kind", "Code", "Severity", "Message"];
        concat(&reports, &scan, &partial, &header, false)?;
    }
    let mut summaries = Vec::new();
    for folder in &reports {
        summaries.push(RoundSummary::load(folder).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", RoundSummary::path(folder).display()),
            )
        })?);
    }
    let summary = sum(summaries);
    summary.save(&partial)?;
    summary.write_item_summary(&partial)?;
    Ok((summary, partial, folder))
}

/// Concatenates one CSV report of every shard into `into`; with `unique`, returns the
/// items (first column) found in more than one shard, with those shards.
fn concat(
    reports: &[PathBuf],
    name: &str,
    into: &Path,
    header: &[&str],
    unique: bool,
) -> Result<Vec<(String, Vec<usize>)>, Merge> {
    let mut out = crate::report::CsvFile::create(into.join(name), header)?;
    // 16 bytes of hash per item, not the path.
    let mut seen: HashMap<[u8; 16], usize> = HashMap::new();
    let mut duplicates: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (shard, folder) in reports.iter().enumerate() {
        let path = folder.join(name);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(io::BufReader::new(file));
        for record in reader.records() {
            let record = record.map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            let cells: Vec<&str> = record.iter().collect();
            if unique && let Some(first) = cells.first() {
                let hash = blake3::hash(first.as_bytes());
                let mut key = [0u8; 16];
                key.copy_from_slice(&hash.as_bytes()[..16]);
                if let Some(&other) = seen.get(&key) {
                    let entry = duplicates.entry((*first).to_string()).or_default();
                    entry.insert(other);
                    entry.insert(shard);
                    continue;
                }
                seen.insert(key, shard);
            }
            out.row(&cells)?;
        }
    }
    out.finish()?;
    Ok(duplicates
        .into_iter()
        .map(|(item, shards)| (item, shards.into_iter().collect()))
        .collect())
}

/// Examples of a merged count: the first three of all the shards'.
fn add_examples(into: &mut Vec<String>, more: Vec<String>) {
    let room = 3usize.saturating_sub(into.len());
    into.extend(more.into_iter().take(room));
}

/// The round of all the shards, as one.
fn sum(shards: Vec<RoundSummary>) -> RoundSummary {
    let mut shards = shards.into_iter();
    let mut total = shards.next().expect("at least one shard");
    let mut devices: BTreeSet<String> = BTreeSet::from([total.device.clone()]);
    let mut failures: BTreeMap<String, crate::report::round::FailureCount> = total
        .failures
        .drain(..)
        .map(|f| (f.code.clone(), f))
        .collect();
    let mut not_migrated: BTreeMap<(String, String), crate::report::scan::NotMigrated> = total
        .scan
        .not_migrated
        .drain(..)
        .map(|n| ((n.severity.clone(), n.code.clone()), n))
        .collect();
    for s in shards {
        devices.insert(s.device.clone());
        let (a, b) = (&mut total.scan, &s.scan);
        a.scanned += b.scanned;
        a.folders += b.folders;
        a.files += b.files;
        a.items_with_issues += b.items_with_issues;
        a.filtered += b.filtered;
        a.to_migrate += b.to_migrate;
        a.bytes_to_migrate += b.bytes_to_migrate;
        a.unchanged += b.unchanged;
        a.not_migrated_items += b.not_migrated_items;
        a.errors += b.errors;
        if b.readiness != "Ready" && !b.readiness.is_empty() {
            a.readiness.clone_from(&b.readiness);
        }
        for n in b.not_migrated.iter().cloned() {
            let entry = not_migrated
                .entry((n.severity.clone(), n.code.clone()))
                .or_insert_with(|| crate::report::scan::NotMigrated {
                    items: 0,
                    examples: Vec::new(),
                    ..n.clone()
                });
            entry.items += n.items;
            add_examples(&mut entry.examples, n.examples);
        }
        let (a, b) = (&mut total.stages, &s.stages);
        a.read += b.read;
        a.packaged += b.packaged;
        a.uploaded += b.uploaded;
        a.imported += b.imported;
        a.already_at_destination += b.already_at_destination;
        a.deleted += b.deleted;
        a.failed_reading += b.failed_reading;
        a.failed_packaging += b.failed_packaging;
        a.failed_uploading += b.failed_uploading;
        a.failed_importing += b.failed_importing;
        total.bytes_imported += s.bytes_imported;
        total.started_at = total.started_at.clone().min(s.started_at.clone());
        total.ended_at = total.ended_at.clone().max(s.ended_at.clone());
        for f in s.failures {
            let entry = failures.entry(f.code.clone()).or_insert_with(|| {
                crate::report::round::FailureCount {
                    count: 0,
                    examples: Vec::new(),
                    ..f.clone()
                }
            });
            entry.count += f.count;
            add_examples(&mut entry.examples, f.examples);
        }
    }
    total.failures = failures.into_values().collect();
    total.scan.not_migrated = not_migrated.into_values().collect();
    total.device = devices.into_iter().collect::<Vec<_>>().join(", ");
    let seconds = |t: &str| t.parse::<jiff::Timestamp>().map_or(0, |t| t.as_second());
    total.duration_seconds =
        u64::try_from(seconds(&total.ended_at) - seconds(&total.started_at)).unwrap_or(0);
    total.gb_per_hour =
        crate::report::round::gb_per_hour(total.bytes_imported, total.duration_seconds);
    total
}

/// The folders above the units, which several shards wrote into: with `deletions:
/// mirror`, those gone from the source are removed (once empty, now that every shard
/// has removed its items from them); the others get the mode and time the round's scan
/// saw at the source, now that no shard writes any more. Returns how many were removed.
fn top_folders(r: &Ready<'_>) -> u64 {
    let task = r.task;
    let mut folders = Vec::new();
    let mut gone: Vec<(PathBuf, crate::state::index::Indexed)> = Vec::new();
    for (_, state) in &r.shards {
        let round = state.round(r.round);
        if let Ok(reader) = ItemReader::open(&round.items()) {
            for item in reader.flatten() {
                if item.kind == crate::package::packer::ItemKind::Folder
                    && Shard::is_spine(&item.rel)
                    && fs::symlink_metadata(task.destination.join(&item.rel))
                        .is_ok_and(|m| m.is_dir())
                {
                    folders.push((item.rel, item.meta.mode, item.meta.mtime_ns));
                }
            }
        }
        if task.settings.deletions == crate::plan::raw::Deletions::Mirror {
            gone.extend(gone_top_folders(task, state, r.round));
        }
    }
    // Top folders this round did not list, which shards may still have written into
    // (a file changed in place): back to the time their shard's index recorded.
    let listed: std::collections::HashSet<PathBuf> = folders.iter().map(|f| f.0.clone()).collect();
    for (_, state) in &r.shards {
        let Ok(index) = crate::state::index::Index::load(&state.index()) else {
            continue;
        };
        for (key, known) in &index.items {
            use std::os::unix::ffi::OsStrExt as _;
            use std::os::unix::fs::MetadataExt as _;
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(key));
            if known.kind != crate::package::KIND_FOLDER
                || !Shard::is_spine(&path)
                || listed.contains(&path)
            {
                continue;
            }
            if let Ok(meta) = fs::symlink_metadata(task.destination.join(&path))
                && meta.is_dir()
            {
                folders.push((path, meta.mode(), known.mtime_ns));
            }
        }
    }
    if folders.is_empty() && gone.is_empty() {
        return 0;
    }
    let warn = |what: &str| eprintln!("warning: task `{}`: {what}", task.name);
    let destination = match crate::import::Destination::open(
        &task.destination,
        task.settings.preserve,
        task.settings.conflicts,
        task.settings.verify,
    ) {
        Ok(d) => d,
        Err(e) => {
            warn(&format!(
                "cannot open {} to finish its top folders: {e}",
                task.destination.display()
            ));
            return 0;
        }
    };
    let Ok(_lock) = destination.lock(false) else {
        warn(&format!(
            "{} is being written by another run; its top folders were left as they are",
            task.destination.display()
        ));
        return 0;
    };
    let mut removed = 0;
    for (path, known) in &gone {
        match destination.remove(path, known) {
            crate::import::Removal::Removed => removed += 1,
            crate::import::Removal::Gone => {}
            crate::import::Removal::Changed => warn(&format!(
                "{}: gone from the source, but not empty at the destination (or changed since ferry made it); it was kept",
                crate::shown::escape_path(path)
            )),
            crate::import::Removal::Failed(e) => warn(&format!(
                "{}: cannot delete: {e}",
                crate::shown::escape_path(path)
            )),
        }
    }
    destination.set_folders(folders);
    for outcome in destination.finish() {
        if let crate::import::Outcome::Failed { path, message, .. } = outcome {
            warn(&format!("{}: {message}", crate::shown::escape_path(&path)));
        }
    }
    removed
}

/// The folders above the units that a shard's round found gone from the source (its
/// scan checkpoint lists them; the shard left them to finish), as its index knows them.
fn gone_top_folders(
    task: &Task,
    state: &TaskLayout,
    round: u32,
) -> Vec<(PathBuf, crate::state::index::Indexed)> {
    let Ok(bytes) = fs::read(state.round(round).scan()) else {
        return Vec::new();
    };
    let Ok(scanned) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let Ok(index) = crate::state::index::Index::load(&state.index()) else {
        return Vec::new();
    };
    scanned["deletions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(PathBuf::from))
        .filter(|p| Shard::is_spine(p))
        .filter(|p| {
            fs::symlink_metadata(task.source.join(p))
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        })
        .filter_map(|p| {
            use std::os::unix::ffi::OsStrExt as _;
            let known = *index.items.get(p.as_os_str().as_bytes())?;
            (known.kind == crate::package::KIND_FOLDER).then_some((p, known))
        })
        .collect()
}
