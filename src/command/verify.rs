//! `ferry verify`: compares the destination with the source by content (BLAKE3 of both
//! sides, many files at once), or with the hashes the index recorded when ferry put
//! each file there (`--against index`, for a site that cannot see the source). Writes
//! `VerifyReport_R<n>.csv` beside the task's last round's reports; exits 1 on any
//! difference. It reads and never writes either tree.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Error, chosen_tasks};
use crate::exit::Exit;
use crate::plan::{Plan, Task};
use crate::run::progress::{Event, Reporter};

/// What the destination is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Against {
    /// The source, read again.
    Source,
    /// The hashes in the task's index (no source access).
    Index,
}

/// How one item compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Differs,
    Missing,
    Extra,
    Unreadable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Differs => "differs",
            Verdict::Missing => "missing",
            Verdict::Extra => "extra",
            Verdict::Unreadable => "unreadable",
        }
    }
}

/// One file to compare: where it should be at the destination, and what it should be.
struct Expected {
    dest: PathBuf,
    /// Its size, as the scan or the index knows it (for progress).
    size: u64,
    want: Want,
}

enum Want {
    /// The source file's content.
    Source(PathBuf),
    /// The content whose hash the index recorded.
    Hash([u8; 32]),
}

/// One row of the report.
struct Row {
    path: PathBuf,
    verdict: Verdict,
    source: Option<String>,
    destination: Option<String>,
}

/// How `ferry verify` was asked to run.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    pub only: Option<&'a str>,
    /// Compare only this share of the files (0 < f ≤ 1), chosen by a hash of the path:
    /// the same share every time.
    pub sample: Option<f64>,
    pub against: Against,
    pub workers: Option<u16>,
}

/// Verifies the chosen tasks; exit 1 when anything differs.
pub fn run(path: &Path, options: &Options<'_>) -> Result<Exit, Error> {
    if let Some(f) = options.sample
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(Error::Usage(format!(
            "--sample takes a fraction above 0 and at most 1, not {f}"
        )));
    }
    let plan = Plan::load(path)?;
    let tasks = chosen_tasks(&plan, path, options.only)?;
    let threads = options.workers.map_or_else(
        || std::thread::available_parallelism().map_or(2, usize::from) * 4,
        usize::from,
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let reporter = Reporter::start(plan.name.clone());
    let mut exit = Exit::Success;
    for task in tasks {
        let differs = pool.install(|| verify_task(&plan, task, options, &reporter))?;
        if differs {
            exit = Exit::Partial;
        }
    }
    reporter.finish();
    Ok(exit)
}

/// Verifies one task; true when anything is not the same.
fn verify_task(
    plan: &Plan,
    task: &Task,
    options: &Options<'_>,
    reporter: &Reporter,
) -> Result<bool, Error> {
    let layout = crate::state::layout::TaskLayout::of(plan, &task.name);
    let session = crate::state::Session::load_checked(layout.folder(), &task.name)
        .map_err(crate::run::RunError::from)?;
    let round = session.as_ref().map_or(0, |s| s.round);
    if round == 0 {
        return Err(Error::Usage(format!(
            "task `{}` has not run yet: there is nothing at its destination to verify",
            task.name
        )));
    }
    let sampled = |dest: &Path| options.sample.is_none_or(|f| in_sample(dest, f));
    let mut expected = Vec::new();
    match options.against {
        Against::Source => {
            let now = jiff::Timestamp::now().as_nanosecond();
            crate::scan::scan(task, None, None, now, &mut |entry| {
                if entry.status == crate::scan::Status::Migrate
                    && matches!(entry.kind, crate::scan::EntryKind::File)
                    && sampled(&entry.dest)
                {
                    expected.push(Expected {
                        dest: entry.dest.clone(),
                        size: entry.meta.size,
                        want: Want::Source(entry.source()),
                    });
                }
                Ok(())
            })?;
        }
        Against::Index => {
            let index = crate::state::index::Index::load(&layout.index())
                .map_err(crate::state::SessionError::from)
                .map_err(crate::run::RunError::from)?;
            for (path, known) in &index.items {
                let dest = PathBuf::from(std::ffi::OsStr::from_bytes(path));
                if known.kind == crate::package::KIND_FILE && sampled(&dest) {
                    expected.push(Expected {
                        dest,
                        size: known.size,
                        want: Want::Hash(known.hash),
                    });
                }
            }
        }
    }
    let bytes: u64 = expected.iter().map(|e| e.size).sum();
    let events = reporter.sender();
    let _ = events.send(Event::Planned { bytes });
    let destination = &task.destination;
    let mut rows: Vec<Row> = expected
        .par_iter()
        .map(|item| {
            let row = compare(destination, item);
            let _ = events.send(Event::Progress {
                items: 1,
                bytes: item.size,
                failed: u64::from(row.verdict != Verdict::Same),
            });
            row
        })
        .collect();
    // What the destination holds that nothing says should be there.
    let known: HashSet<&Path> = expected.iter().map(|e| e.dest.as_path()).collect();
    for entry in jwalk::WalkDir::new(destination)
        .skip_hidden(false)
        .follow_links(false)
        .sort(true)
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry
            .path()
            .strip_prefix(destination)
            .map(Path::to_path_buf)
        else {
            continue;
        };
        if !known.contains(rel.as_path()) && sampled(&rel) {
            rows.push(Row {
                path: rel,
                verdict: Verdict::Extra,
                source: None,
                destination: None,
            });
        }
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    let (text, differs) = write_report(&layout.reports(round), round, task, options, &rows)?;
    reporter.say(text);
    Ok(differs)
}

/// Whether `path` is in a sample of `fraction` of all paths: by a hash of the path, so
/// the same files every time.
fn in_sample(path: &Path, fraction: f64) -> bool {
    let hash = blake3::hash(path.as_os_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) as f64) < fraction * (u64::MAX as f64)
}

/// Compares one file.
fn compare(destination: &Path, item: &Expected) -> Row {
    let row = |verdict, source: Option<[u8; 32]>, destination: Option<[u8; 32]>| Row {
        path: item.dest.clone(),
        verdict,
        source: source.map(hex),
        destination: destination.map(hex),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let want = match &item.want {
        Want::Hash(hash) => Ok(*hash),
        Want::Source(path) => open_file(path).and_then(|f| natural_hash(&f, &mut buf)),
    };
    let found = open_file(&destination.join(&item.dest));
    match (want, found) {
        // A hash of either kind (plain, or sparse for a file with holes) settles it.
        (Ok(want), Ok(file)) => {
            let size = file.metadata().map(|m| m.len());
            match size
                .and_then(|size| crate::package::sparse::matches(&file, size, &want, &mut buf))
            {
                Ok(true) => row(Verdict::Same, Some(want), Some(want)),
                Ok(false) => row(
                    Verdict::Differs,
                    Some(want),
                    natural_hash(&file, &mut buf).ok(),
                ),
                Err(_) => row(Verdict::Unreadable, Some(want), None),
            }
        }
        (Ok(want), Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            row(Verdict::Missing, Some(want), None)
        }
        (Ok(want), Err(_)) => row(Verdict::Unreadable, Some(want), None),
        (Err(_), found) => row(
            Verdict::Unreadable,
            None,
            found.ok().and_then(|f| natural_hash(&f, &mut buf).ok()),
        ),
    }
}

/// A regular file, opened without following a symlink (a link where a file should be
/// is not that file).
fn open_file(path: &Path) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// A file's hash as ferry computes it: BLAKE3, or the sparse hash of a file with holes.
fn natural_hash(file: &fs::File, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    let size = file.metadata()?.len();
    let holes = crate::package::sparse::has_holes(file, size);
    crate::package::sparse::hash_file(file, size, holes, buf)
}

fn hex(bytes: [u8; 32]) -> String {
    blake3::Hash::from_bytes(bytes).to_hex().to_string()
}

/// Writes the report; the summary for a person, and whether anything differs.
fn write_report(
    folder: &Path,
    round: u32,
    task: &Task,
    options: &Options<'_>,
    rows: &[Row],
) -> Result<(String, bool), Error> {
    fs::create_dir_all(folder).map_err(|e| {
        Error::Report(io::Error::new(
            e.kind(),
            format!("{}: {e}", folder.display()),
        ))
    })?;
    let path = folder.join(format!("VerifyReport_R{round}.csv"));
    let mut csv = crate::report::CsvFile::create(
        path,
        &["Path", "Result", "Source hash", "Destination hash"],
    )
    .map_err(|e| Error::Report(io::Error::other(e.to_string())))?;
    let mut counts = [0u64; 5];
    for row in rows {
        counts[row.verdict as usize] += 1;
        let shown = crate::shown::escape_path(&row.path);
        csv.row(&[
            shown.as_ref(),
            row.verdict.as_str(),
            row.source.as_deref().unwrap_or(""),
            row.destination.as_deref().unwrap_or(""),
        ])
        .map_err(|e| Error::Report(io::Error::other(e.to_string())))?;
    }
    let path = csv
        .finish()
        .map_err(|e| Error::Report(io::Error::other(e.to_string())))?;
    let against = match options.against {
        Against::Source => "the source",
        Against::Index => "the index",
    };
    let sample = options
        .sample
        .map(|f| format!(" (a sample of {:.1}%)", f * 100.0))
        .unwrap_or_default();
    let text = format!(
        "verify {}: against {against}{sample}: {} same, {} differ, {} missing, {} extra, {} unreadable\n  report: {}\n",
        task.name,
        counts[Verdict::Same as usize],
        counts[Verdict::Differs as usize],
        counts[Verdict::Missing as usize],
        counts[Verdict::Extra as usize],
        counts[Verdict::Unreadable as usize],
        crate::shown::escape_path(&path),
    );
    Ok((text, counts[0] as usize != rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_the_same_files_every_time_and_about_its_share() {
        let paths: Vec<PathBuf> = (0..10_000)
            .map(|i| PathBuf::from(format!("d/{i}.txt")))
            .collect();
        let picked: Vec<bool> = paths.iter().map(|p| in_sample(p, 0.1)).collect();
        let again: Vec<bool> = paths.iter().map(|p| in_sample(p, 0.1)).collect();
        assert_eq!(picked, again);
        let n = picked.iter().filter(|&&b| b).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(paths.iter().all(|p| in_sample(p, 1.0)));
    }
}
