//! Reads ahead: the first read of every item of a package, made by a pool of threads
//! sized for the source's latency rather than for the CPUs, many files at once, within
//! a budget of memory. A network share answers each `open`, `stat` and `read` after a
//! round trip; a package builder that read its files one after the other would wait
//! for each.
//!
//! A builder hands its package's items to the pool ([`Ahead::submit`]) and takes each
//! item's read back in order ([`Ahead::take`]): the very bytes its own read would have written
//! (record, data, trailer), which it appends to the package. The pool takes the queued
//! reads strictly in order, each only when its bytes fit in the budget, and the bytes
//! are given back when the builder has appended them: the reads of the builder that
//! waits are always ahead of any read that waits for room, so the pool cannot block
//! itself. A file larger than a quarter of the budget is read by its builder.
//!
//! The budget is memory in chunks of [`CHUNK`] bytes, made once and used again and
//! again: reads of every size never grow the allocator's heaps, so the process holds
//! what the budget allows and no more.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::packer::{Item, ItemKind};
use super::{Attempt, Sink, xattr};

/// Bytes counted for an item besides its data: its record and trailer.
const RECORD_COST: u64 = 4096;

/// The unit of the budget of reads ahead.
pub const CHUNK: usize = 64 * 1024;

/// The pool's shared state.
#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Signalled when a read is queued or the pool closes.
    changed: Condvar,
    /// Where the reads' bytes go: shared by the pools of every task of a run.
    budget: Arc<Chunks>,
    carry: xattr::Carry,
    /// Items whose data is larger than this are read by their builder.
    per_item: u64,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Job>,
    closed: bool,
}

#[derive(Debug)]
struct Job {
    item: Arc<Item>,
    batch: Arc<Batch>,
    slot: usize,
    /// Chunks.
    cost: usize,
}

/// The reads of one package's items, filled in by the pool in any order.
#[derive(Debug)]
pub struct Batch {
    slots: Mutex<Vec<Slot>>,
    ready: Condvar,
    /// Its builder stopped taking reads (the package failed): reads still made are
    /// dropped at once, their chunks given back.
    cancelled: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
enum Slot {
    /// Read by the builder itself.
    Builder,
    Queued,
    Read(Box<Fetched>),
    Taken,
}

/// One item's first read, as it was written: appended to a package by [`Fetched::replay`].
#[derive(Debug)]
pub struct Fetched {
    spool: Spool,
    records: u32,
    result: io::Result<Attempt>,
}

/// The pool's threads, and the budget their reads share.
#[derive(Debug)]
pub struct ReadAhead {
    inner: Arc<Inner>,
}

impl ReadAhead {
    /// A pool whose reads hold their bytes in `budget`; start its threads with
    /// [`ReadAhead::serve`], each on a thread of its own, and [`ReadAhead::close`] it
    /// when no more packages come.
    pub fn new(budget: Arc<Chunks>, carry: xattr::Carry) -> ReadAhead {
        ReadAhead {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    closed: false,
                }),
                changed: Condvar::new(),
                carry,
                per_item: (budget.total as u64 * CHUNK as u64 / 4).saturating_sub(RECORD_COST),
                budget,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the first reads of `items`.
    fn submit(&self, items: &[Arc<Item>]) -> Arc<Batch> {
        let mut slots = Vec::with_capacity(items.len());
        let mut jobs = Vec::new();
        let batch_slots: Vec<(usize, usize)> = items
            .iter()
            .enumerate()
            .filter_map(|(slot, item)| {
                let cost = (RECORD_COST + data_len(item)).div_ceil(CHUNK as u64) as usize;
                (data_len(item) <= self.inner.per_item).then_some((slot, cost))
            })
            .collect();
        slots.resize_with(items.len(), || Slot::Builder);
        for &(slot, _) in &batch_slots {
            slots[slot] = Slot::Queued;
        }
        let batch = Arc::new(Batch {
            slots: Mutex::new(slots),
            ready: Condvar::new(),
            cancelled: std::sync::atomic::AtomicBool::new(false),
        });
        for (slot, cost) in batch_slots {
            jobs.push(Job {
                item: Arc::clone(&items[slot]),
                batch: Arc::clone(&batch),
                slot,
                cost,
            });
        }
        if !jobs.is_empty() {
            let mut state = self.state();
            if state.closed {
                // No thread may be left to make them.
                drop(state);
                let mut slots = batch.slots.lock().unwrap_or_else(|e| e.into_inner());
                for slot in slots.iter_mut() {
                    *slot = Slot::Builder;
                }
            } else {
                state.queue.extend(jobs);
                drop(state);
                self.inner.changed.notify_all();
            }
        }
        batch
    }

    /// Makes queued reads until the pool is closed and its queue empty: the body of
    /// one of the pool's threads.
    pub fn serve(&self) {
        let mut buf = vec![0u8; 256 * 1024];
        while let Some((job, chunks)) = self.next() {
            let mut spool = Spool {
                budget: Arc::clone(&self.inner.budget),
                counted: chunks.len(),
                chunks,
                len: 0,
                switch: None,
            };
            let mut records = 0;
            // A read that panicked must still fill its slot: its builder waits for it.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::first_read(
                    &mut spool,
                    &job.item,
                    self.inner.carry,
                    &mut records,
                    &mut buf,
                    Some(self.inner.per_item),
                )
            }))
            .unwrap_or_else(|_| Err(io::Error::other("reading the file ahead failed")));
            let fetched = Fetched {
                spool,
                records,
                result,
            };
            job.batch.fill(job.slot, fetched);
        }
    }

    /// The next read, in order, with its chunks once they fit in the budget; `None`
    /// when the pool is closed and nothing is queued.
    fn next(&self) -> Option<(Job, Vec<Box<[u8]>>)> {
        loop {
            let mut state = self.state();
            let cost = match state.queue.front() {
                Some(front) => front.cost,
                None if state.closed => return None,
                None => {
                    drop(
                        self.inner
                            .changed
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                    continue;
                }
            };
            if let Some(chunks) = self.inner.budget.try_take(cost) {
                return state.queue.pop_front().map(|job| (job, chunks));
            }
            drop(state);
            // A bounded wait: the read at the front may have changed meanwhile, or the
            // pool closed.
            self.inner
                .budget
                .wait_for(cost, std::time::Duration::from_millis(50));
        }
    }

    /// The builder of `batch` takes no more of its reads: those still queued are
    /// dropped, and those made are given back.
    pub fn cancel(&self, batch: &Arc<Batch>) {
        batch
            .cancelled
            .store(true, std::sync::atomic::Ordering::Release);
        self.state()
            .queue
            .retain(|job| !Arc::ptr_eq(&job.batch, batch));
        let mut slots = batch.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter_mut() {
            *slot = Slot::Taken;
        }
    }

    /// No more packages come: the threads end once the queue is empty, and a package
    /// submitted after (by a worker still running when another panicked) is read by
    /// its builder.
    pub fn close(&self) {
        self.state().closed = true;
        self.inner.changed.notify_all();
    }
}

/// Bytes of an item's data, as the scan saw them.
fn data_len(item: &Item) -> u64 {
    match item.kind {
        ItemKind::File if !item.metadata_only => item.meta.size,
        _ => 0,
    }
}

/// A package's reads ahead, as its builder holds them: dropped, it gives back what it
/// did not take (the package failed, or its builder panicked).
#[derive(Debug)]
pub struct Ahead<'a> {
    pool: &'a ReadAhead,
    batch: Arc<Batch>,
}

impl<'a> Ahead<'a> {
    /// Queues the first reads of `items` in `pool`.
    pub fn submit(pool: &'a ReadAhead, items: &[Arc<Item>]) -> Ahead<'a> {
        Ahead {
            batch: pool.submit(items),
            pool,
        }
    }

    /// Item `slot`'s read, once it is made; `None` when its builder reads it.
    pub fn take(&self, slot: usize) -> Option<Fetched> {
        self.batch.take(slot)
    }
}

impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        self.pool.cancel(&self.batch);
    }
}

impl Batch {
    fn fill(&self, slot: usize, fetched: Fetched) {
        if self.cancelled.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if self.cancelled.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        slots[slot] = Slot::Read(Box::new(fetched));
        drop(slots);
        self.ready.notify_all();
    }

    fn take(&self, slot: usize) -> Option<Fetched> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::replace(&mut slots[slot], Slot::Taken) {
                Slot::Read(fetched) => return Some(*fetched),
                Slot::Builder | Slot::Taken => return None,
                Slot::Queued => {
                    slots[slot] = Slot::Queued;
                    slots = self.ready.wait(slots).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

impl Fetched {
    /// Appends what the read wrote to `out`, as if written there; counts its records.
    /// Its chunks go back to the budget.
    pub fn replay<W: Sink>(self, out: &mut W, records: &mut u32) -> io::Result<Attempt> {
        let spool = &self.spool;
        let at = spool.switch.map_or(spool.len, |(at, _)| at);
        spool.copy(0, at, out)?;
        if let Some((_, worth_it)) = spool.switch {
            out.compressible(worth_it)?;
        }
        spool.copy(at, spool.len, out)?;
        *records += self.records;
        self.result
    }
}

/// The memory a run holds for data on its way (`resources.memory`), in two budgets:
/// a quarter for files read ahead, the rest for package buffers, which every task of
/// the run shares.
#[derive(Debug)]
pub struct Memory {
    pub reads: Arc<Chunks>,
    pub packages: Arc<Budget>,
}

impl Memory {
    pub fn new(bytes: u64) -> Memory {
        let reads = bytes / 4;
        Memory {
            reads: Arc::new(Chunks::new((reads / CHUNK as u64) as usize)),
            packages: Arc::new(Budget::new(bytes - reads)),
        }
    }
}

/// The budget of reads ahead: at most `total` chunks, made when first needed and kept
/// for the next reads.
#[derive(Debug)]
pub struct Chunks {
    total: usize,
    state: Mutex<ChunkState>,
    changed: Condvar,
}

#[derive(Debug)]
struct ChunkState {
    /// Chunks not held by a read (made or not).
    free: usize,
    /// Chunks made and not held.
    spare: Vec<Box<[u8]>>,
    /// Chunks made beyond `total`: the extra a read needed for a file that grew since
    /// the scan; dropped when given back.
    over: usize,
}

impl Chunks {
    pub fn new(total: usize) -> Chunks {
        Chunks {
            total: total.max(4),
            state: Mutex::new(ChunkState {
                free: total.max(4),
                spare: Vec::new(),
                over: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, ChunkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `count` chunks, if they are free.
    fn try_take(&self, count: usize) -> Option<Vec<Box<[u8]>>> {
        let mut state = self.state();
        if state.free < count {
            return None;
        }
        state.free -= count;
        let from_spare = count.min(state.spare.len());
        let at = state.spare.len() - from_spare;
        let mut chunks = state.spare.split_off(at);
        drop(state);
        chunks.resize_with(count, new_chunk);
        Some(chunks)
    }

    /// Waits until `count` chunks are free (without taking them), or `at_most`.
    fn wait_for(&self, count: usize, at_most: std::time::Duration) {
        let state = self.state();
        if state.free < count {
            drop(
                self.changed
                    .wait_timeout_while(state, at_most, |state| state.free < count)
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// A chunk beyond what a read was given.
    fn extra(&self) -> Box<[u8]> {
        self.state().over += 1;
        new_chunk()
    }

    /// Gives back chunks, of which `counted` were taken from the budget.
    fn give(&self, mut chunks: Vec<Box<[u8]>>, counted: usize) {
        let mut state = self.state();
        state.free += counted;
        let extra = chunks.len().saturating_sub(counted).min(state.over);
        state.over -= extra;
        chunks.truncate(chunks.len() - extra);
        state.spare.append(&mut chunks);
        drop(state);
        self.changed.notify_all();
    }
}

fn new_chunk() -> Box<[u8]> {
    vec![0u8; CHUNK].into_boxed_slice()
}

/// Bytes held by package buffers, taken and given back. A worker may take room while
/// any is free: the budget is exceeded by at most one package, so that two packages of
/// `package.max_size` are built at once even when the budget holds one and a half.
#[derive(Debug)]
pub struct Budget {
    /// What is not held; below zero while the last package taken is over the budget.
    free: Mutex<i64>,
    changed: Condvar,
}

impl Budget {
    pub fn new(total: u64) -> Budget {
        Budget {
            free: Mutex::new(i64::try_from(total).unwrap_or(i64::MAX)),
            changed: Condvar::new(),
        }
    }

    fn free(&self) -> MutexGuard<'_, i64> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes`, once some of the budget is free.
    pub fn take(&self, bytes: u64) {
        let mut free = self.free();
        while *free <= 0 {
            free = self.changed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free = free.saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn give(&self, bytes: u64) {
        let mut free = self.free();
        *free = free.saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
        drop(free);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod budget_tests {
    use super::Budget;

    #[test]
    fn a_package_is_taken_while_any_room_is_free() {
        let budget = Budget::new(96);
        budget.take(64);
        // 32 are free: the next package of 64 is taken, 32 over.
        budget.take(64);
        assert_eq!(*budget.free(), -32);
        let waiting = std::thread::scope(|scope| {
            let taker = scope.spawn(|| budget.take(10));
            std::thread::sleep(std::time::Duration::from_millis(50));
            let waited = !taker.is_finished();
            budget.give(64);
            taker.join().unwrap();
            waited
        });
        assert!(waiting, "nothing was free: the third had to wait");
        assert_eq!(*budget.free(), 22);
    }
}

/// What one read writes, kept in chunks to be appended to its package later: the
/// bytes, and where the data began and whether it is worth compressing.
#[derive(Debug)]
struct Spool {
    budget: Arc<Chunks>,
    chunks: Vec<Box<[u8]>>,
    /// Chunks taken from the budget (the first ones).
    counted: usize,
    /// Bytes written.
    len: usize,
    switch: Option<(usize, bool)>,
}

impl Spool {
    /// Writes bytes `from .. to` to `out`.
    fn copy<W: Write>(&self, from: usize, to: usize, out: &mut W) -> io::Result<()> {
        let mut at = from;
        while at < to {
            let chunk = &self.chunks[at / CHUNK];
            let start = at % CHUNK;
            let end = (start + (to - at)).min(CHUNK);
            out.write_all(&chunk[start..end])?;
            at += end - start;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.budget
            .give(std::mem::take(&mut self.chunks), self.counted);
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let index = self.len / CHUNK;
            if index == self.chunks.len() {
                self.chunks.push(self.budget.extra());
            }
            let start = self.len % CHUNK;
            let n = rest.len().min(CHUNK - start);
            self.chunks[index][start..start + n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Spool {
    fn compressible(&mut self, worth_it: bool) -> io::Result<()> {
        self.switch = Some((self.len, worth_it));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Meta;
    use std::os::unix::fs::MetadataExt as _;
    use std::path::PathBuf;

    fn file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Arc<Item> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        Arc::new(Item {
            rel: PathBuf::from(name),
            source: path,
            kind: ItemKind::File,
            meta: Meta {
                size: m.len(),
                dev: m.dev(),
                ino: m.ino(),
                mode: m.mode(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                ..Meta::default()
            },
            metadata_only: false,
        })
    }

    /// A package's stream with and without reads ahead, with a budget of 16 chunks (a
    /// file of 200 kB spans four; one of 1 MB is read by the builder): the same bytes,
    /// and every chunk given back.
    #[test]
    fn reads_ahead_write_what_the_builder_would() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Arc<Item>> = (0..40)
            .map(|i| {
                let len = (i * 997) % 5000
                    + match i {
                        7 => 200_000,
                        9 => 1_000_000,
                        _ => 0,
                    };
                let bytes: Vec<u8> = (0..len).map(|b| (b * 31 + i) as u8).collect();
                file(dir.path(), &format!("f{i}.txt"), &bytes)
            })
            .collect();
        let carry = xattr::Carry::default();
        let retry = (3, std::time::Duration::from_millis(1));
        let mut alone = Vec::new();
        let mut records = 0;
        let outcomes = super::super::add_items(
            &mut Plain(&mut alone),
            &items,
            carry,
            retry,
            None,
            &mut records,
        )
        .unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, super::super::Packed::Ok))
        );
        let budget = Arc::new(Chunks::new(16));
        let pool = ReadAhead::new(Arc::clone(&budget), carry);
        let mut ahead = Vec::new();
        let mut records_ahead = 0;
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| pool.serve());
            }
            super::super::add_items(
                &mut Plain(&mut ahead),
                &items,
                carry,
                retry,
                Some(&pool),
                &mut records_ahead,
            )
            .unwrap();
            pool.close();
        });
        assert_eq!(records, records_ahead);
        assert!(ahead == alone, "the streams differ");
        assert!(pool.state().queue.is_empty());
        let state = budget.state();
        assert_eq!(state.free, 16);
        assert!(state.spare.len() <= 16 && state.over == 0);
    }

    /// A package whose builder stops after its first item (its next read failed it):
    /// the reads it did not take, queued or made, give their chunks back, and the pool
    /// serves the next package instead of waiting for room forever. Once the pool is
    /// closed, a package is read by its builder.
    #[test]
    fn a_package_given_up_gives_its_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<Arc<Item>> = (0..40)
            .map(|i| file(dir.path(), &format!("f{i}"), &[i as u8; 100]))
            .collect();
        let budget = Arc::new(Chunks::new(4));
        let pool = ReadAhead::new(Arc::clone(&budget), xattr::Carry::default());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| pool.serve());
            }
            let given_up = Ahead::submit(&pool, &items);
            assert!(given_up.take(0).is_some());
            drop(given_up);
            // The next package is read in full.
            let next = Ahead::submit(&pool, &items);
            for i in 0..items.len() {
                assert!(next.take(i).is_some(), "read {i}");
            }
            drop(next);
            pool.close();
        });
        // After the pool closed, a package's items are read by its builder.
        let late = Ahead::submit(&pool, &items);
        assert!((0..items.len()).all(|i| late.take(i).is_none()));
        drop(late);
        assert!(pool.state().queue.is_empty());
        assert_eq!(budget.state().free, 4);
    }

    struct Plain<'a>(&'a mut Vec<u8>);

    impl Write for Plain<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Plain<'_> {
        fn compressible(&mut self, worth_it: bool) -> io::Result<()> {
            self.0.push(u8::from(worth_it));
            Ok(())
        }
    }
}
