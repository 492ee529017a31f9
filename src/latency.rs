//! How fast a file system answers, and how many things to do at once because of it.
//!
//! A local disk answers a metadata call in a microsecond or two; a network share (SMB,
//! NFS, sshfs) in a round trip, a hundred times that or more. ferry times `statfs` at a
//! source's root, which no client caches (NFS, SMB and FUSE ask the server every time),
//! and keeps many calls in flight where each waits for a round trip: the walk's
//! threads, and the reads of files. On a local disk it stays at one per CPU.

use std::path::Path;
use std::time::{Duration, Instant};

/// A file system whose `statfs` takes this long or longer is treated as remote.
pub const SLOW: Duration = Duration::from_micros(50);

/// Files read at once from a slow source unless `resources.reads` says.
pub const SLOW_READS: usize = 32;

/// Threads that walk a slow source unless `--workers` says.
pub const SLOW_WALK_THREADS: usize = 8;

/// The median time of a few `statfs` calls on `path`; `None` when it cannot be asked.
pub fn probe(path: &Path) -> Option<Duration> {
    let mut times = Vec::with_capacity(9);
    for _ in 0..9 {
        let start = Instant::now();
        rustix::fs::statfs(path).ok()?;
        times.push(start.elapsed());
    }
    times.sort_unstable();
    Some(times[times.len() / 2])
}

/// Whether `path` is on a file system that answers slowly (a network share).
pub fn slow(path: &Path) -> bool {
    probe(path).is_some_and(|l| l >= SLOW)
}

/// Microseconds, for the log.
fn micros(latency: Option<Duration>) -> f64 {
    latency.map_or(0.0, |l| (l.as_secs_f64() * 1e7).round() / 10.0)
}

/// CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Package workers when the source or the destination is slow, unless `--workers`
/// says: each waits for its imports' writes, and for its files' reads to be taken.
pub const SLOW_WORKERS: usize = 8;

/// How many things a task's run does at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// Files read at once.
    pub reads: usize,
    /// Package workers: each builds a package, stages it, imports it.
    pub workers: usize,
}

impl Sizing {
    /// What `resources.reads` and `--workers` say, else: one read and one worker per
    /// CPU; [`SLOW_READS`] reads from a slow source; [`SLOW_WORKERS`] workers when
    /// the source or the destination is slow. `reading`: the run builds packages.
    pub fn of(
        task: &crate::plan::Task,
        reads: Option<usize>,
        workers: Option<usize>,
        reading: bool,
    ) -> Sizing {
        let (from, to) = (probe(&task.source), probe(&task.destination));
        let source = reading && from.is_some_and(|l| l >= SLOW);
        let destination = to.is_some_and(|l| l >= SLOW);
        let sizing = Sizing {
            reads: reads.unwrap_or(if source { SLOW_READS } else { cpus() }),
            workers: workers
                .unwrap_or(if source || destination {
                    SLOW_WORKERS.max(cpus())
                } else {
                    cpus()
                })
                .max(1),
        };
        tracing::info!(
            event = "sizing",
            reads = sizing.reads,
            workers = sizing.workers,
            source_micros = micros(from),
            destination_micros = micros(to)
        );
        sizing
    }
}

/// Threads that walk a source: what `--workers` says, else one per CPU and one more
/// (the thread that takes the walk's results in order spins while it waits, measured
/// in BENCHMARKS.md), or [`SLOW_WALK_THREADS`] on a slow source.
pub fn walk_threads(explicit: Option<usize>, slow: bool) -> usize {
    explicit.unwrap_or(if slow { SLOW_WALK_THREADS } else { cpus() + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_folder_answers_fast() {
        let dir = tempfile::tempdir().unwrap();
        let latency = probe(dir.path()).unwrap();
        assert!(latency < Duration::from_secs(1));
        assert_eq!(walk_threads(Some(5), true), 5);
        assert_eq!(walk_threads(None, true), SLOW_WALK_THREADS);
        assert!(probe(&dir.path().join("missing")).is_none());
    }
}
