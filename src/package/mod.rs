//! Packages: the byte stream that carries items from the source to the importer, and
//! how a package is built from files. The stream layout is in docs/FORMAT.md.
//!
//! A package is a stream of records — header, data, trailer — so that it is written
//! while files are read and read while files are written, never held twice in memory.
//! The trailer comes after the data because only then is it known whether the file held
//! still while it was read: a file that changed is marked void and retried, and the
//! importer discards a void record, so old and new bytes are never mixed. The whole
//! stream is zstd-compressed (zstd stores incompressible blocks raw, so incompressible
//! data costs at most a few bytes per 128 KiB more than storing it) and then sealed.

mod compress;
mod format;
pub mod packer;
pub mod reads;
pub mod sparse;
pub mod xattr;

use crate::failure::FailureCode;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};

pub use self::compress::{Compressor, Sink, precompressed};
pub use self::format::*;
use self::packer::{Item, ItemKind};

/// What happened to one item while its package was built.
#[derive(Debug)]
pub enum Packed {
    /// In the package.
    Ok,
    /// Not in it (or only as a void record): why.
    Failed { code: &'static str, message: String },
}

fn mtime_parts(ns: i128) -> (i64, u32) {
    let sec = ns.div_euclid(1_000_000_000);
    (sec as i64, ns.rem_euclid(1_000_000_000) as u32)
}

/// Opens a file to read it: never following a symlink, never blocking on a FIFO that
/// took the place of a file, and only when it is still the file the scan saw.
pub fn open_checked(item: &Item) -> Result<(fs::File, fs::Metadata), Packed> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&item.source)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Packed::Failed {
                code: FailureCode::Vanished.as_str(),
                message: "the file was deleted after the scan".into(),
            },
            // O_NOFOLLOW met a symlink where the scan saw a file.
            _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                Packed::Failed {
                    code: FailureCode::ChangedType.as_str(),
                    message: "the path is a symlink now, not the file the scan saw; not read"
                        .into(),
                }
            }
            io::ErrorKind::PermissionDenied => Packed::Failed {
                code: FailureCode::PermissionDenied.as_str(),
                message: format!("cannot open the file: {e}"),
            },
            _ => Packed::Failed {
                code: FailureCode::ReadFailed.as_str(),
                message: format!("cannot open the file: {e}"),
            },
        })?;
    let meta = file.metadata().map_err(|e| Packed::Failed {
        code: FailureCode::ReadFailed.as_str(),
        message: format!("cannot read the file's metadata: {e}"),
    })?;
    if !meta.is_file() || meta.dev() != item.meta.dev || meta.ino() != item.meta.ino {
        return Err(Packed::Failed {
            code: FailureCode::ChangedType.as_str(),
            message: "the path is no longer the file the scan saw; not read".into(),
        });
    }
    Ok((file, meta))
}

/// Whether the file still has the size and time it had when it was opened.
pub fn still(file: &fs::File, at_open: &fs::Metadata) -> bool {
    file.metadata().is_ok_and(|now| {
        now.len() == at_open.len()
            && now.mtime() == at_open.mtime()
            && now.mtime_nsec() == at_open.mtime_nsec()
            && now.ctime() == at_open.ctime()
            && now.ctime_nsec() == at_open.ctime_nsec()
    })
}

/// Copies exactly `len` bytes of `file` from `offset` into `out`, hashing them into
/// `hash` (at their offsets); a file that ends early is padded with zeros and reported
/// short.
fn copy_range<W: Write>(
    file: &fs::File,
    offset: u64,
    len: u64,
    out: &mut W,
    hash: &mut sparse::Whole,
    buf: &mut [u8],
) -> io::Result<bool> {
    use std::os::unix::fs::FileExt as _;
    let mut done = 0u64;
    let mut short = false;
    while done < len {
        let want = ((len - done) as usize).min(buf.len());
        let n = if short {
            0
        } else {
            match file.read_at(&mut buf[..want], offset + done) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let n = if n == 0 {
            short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        hash.update_at(offset + done, &buf[..n]);
        out.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(!short)
}

/// Hashes `extent` of `file` into `hash`, as a package's read of it would; false when
/// the file ends before the extent does (the rest is hashed as zeros).
pub fn hash_extent(
    file: &fs::File,
    extent: &Extent,
    hash: &mut sparse::Whole,
    buf: &mut [u8],
) -> io::Result<bool> {
    copy_range(file, extent.offset, extent.len, &mut io::sink(), hash, buf)
}

/// Copies a record's data: the whole range, or a sparse file's extents in it.
fn copy_record<W: Write>(
    file: &fs::File,
    record: &Record,
    out: &mut W,
    hash: &mut sparse::Whole,
    buf: &mut [u8],
) -> io::Result<bool> {
    match &record.extents {
        None => copy_range(file, record.offset, record.len, out, hash, buf),
        Some(extents) => {
            let mut whole = true;
            for e in extents {
                whole &= copy_range(file, e.offset, e.len, out, hash, buf)?;
            }
            Ok(whole)
        }
    }
}

/// A sparse file's extents in `offset .. offset + len`, when `carry` keeps holes and
/// the file has any (`sparse`); `None` otherwise.
fn extents_of(
    file: &fs::File,
    sparse: bool,
    offset: u64,
    len: u64,
) -> io::Result<Option<Vec<Extent>>> {
    if !sparse {
        return Ok(None);
    }
    sparse::extents(file, offset, offset + len).map(Some)
}

/// Appends the records of `items`. A file that changes while it is read is read again,
/// up to `attempts` reads in all, waiting `backoff` before the first retry and twice as
/// long before each next one (`retries`), so that a file being written can settle.
/// With `reads`, the items' first reads are made ahead by its pool, many at once; what
/// they wrote is appended here in the items' order, the same bytes as a read made here.
pub fn add_items<W: Sink>(
    out: &mut W,
    items: &[std::sync::Arc<Item>],
    carry: xattr::Carry,
    (attempts, backoff): (u32, std::time::Duration),
    reads: Option<&reads::ReadAhead>,
    records: &mut u32,
) -> io::Result<Vec<Packed>> {
    let mut buf = Vec::new();
    let mut outcomes = Vec::with_capacity(items.len());
    // Whatever happens to this package (a read that fails it, a panic), its reads
    // still queued or made are given back when this returns.
    let ahead = reads.map(|pool| reads::Ahead::submit(pool, items));
    for (i, item) in items.iter().enumerate() {
        let fetched = match ahead.as_ref().and_then(|batch| batch.take(i)) {
            Some(fetched) => fetched.replay(out, records)?,
            None => Attempt::Builder,
        };
        let first = match fetched {
            Attempt::Builder => {
                if buf.is_empty() {
                    buf = vec![0u8; 256 * 1024];
                }
                first_read(out, item, carry, records, &mut buf, None)?
            }
            made => made,
        };
        let outcome = match first {
            Attempt::Settled(outcome) => outcome,
            Attempt::Again { mut record } => {
                if buf.is_empty() {
                    buf = vec![0u8; 256 * 1024];
                }
                let retry = (attempts, backoff);
                retry_file(out, item, &mut record, carry, retry, records, &mut buf)?
            }
            Attempt::Builder => unreachable!("a read without a limit is made"),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// What one read of an item came to.
#[derive(Debug)]
pub enum Attempt {
    /// In the package, or failed for good.
    Settled(Packed),
    /// A file that changed while it was read (its record is in the package, void): it
    /// is read again.
    Again { record: Record },
    /// Not read: a read ahead found the file larger than its limit (it grew since the
    /// scan); its builder reads it. Nothing was written.
    Builder,
}

/// An item's record as the scan saw it, before its file is opened.
pub fn base_record(item: &Item) -> Record {
    let (mtime_sec, mtime_nsec) = mtime_parts(item.meta.mtime_ns);
    Record {
        kind: KIND_FOLDER,
        path: item.rel.as_os_str().as_bytes().to_vec(),
        mode: item.meta.mode & 0o7777,
        uid: item.meta.uid,
        gid: item.meta.gid,
        mtime_sec,
        mtime_nsec,
        size: 0,
        part: 0,
        parts: 1,
        offset: 0,
        len: 0,
        ..Record::default()
    }
}

/// The first read of an item: a folder's or symlink's record, a file's metadata alone
/// when only that changed, else the file's data; a file larger than `limit` is not
/// read (`Attempt::Builder`).
pub fn first_read<W: Sink>(
    out: &mut W,
    item: &Item,
    carry: xattr::Carry,
    records: &mut u32,
    buf: &mut [u8],
    limit: Option<u64>,
) -> io::Result<Attempt> {
    let mut record = base_record(item);
    let zero = Trailer {
        ok: true,
        part_hash: [0; 32],
        file_hash: [0; 32],
    };
    if !matches!(item.kind, ItemKind::File) {
        match link_xattrs(item, carry) {
            Ok(xattrs) => record.xattrs = xattrs,
            Err(failed) => return Ok(Attempt::Settled(failed)),
        }
    }
    match &item.kind {
        ItemKind::Folder => {
            record.write_to(out)?;
            zero.write_to(out)?;
            *records += 1;
            Ok(Attempt::Settled(Packed::Ok))
        }
        ItemKind::Symlink { target } => {
            record.kind = KIND_SYMLINK;
            record.target = target.as_bytes().to_vec();
            record.write_to(out)?;
            zero.write_to(out)?;
            *records += 1;
            Ok(Attempt::Settled(Packed::Ok))
        }
        ItemKind::File => {
            record.kind = KIND_FILE;
            if item.metadata_only
                && let Some(outcome) = add_metadata(out, item, &mut record, carry, records)?
            {
                return Ok(Attempt::Settled(outcome));
            }
            read_file(out, item, record, carry, records, buf, limit)
        }
    }
}

/// Reads a file that changed while it was read again: attempts 2 to `attempts`, waiting
/// `backoff` before the first retry and twice as long before each next one.
fn retry_file<W: Sink>(
    out: &mut W,
    item: &Item,
    record: &mut Record,
    carry: xattr::Carry,
    (attempts, backoff): (u32, std::time::Duration),
    records: &mut u32,
    buf: &mut [u8],
) -> io::Result<Packed> {
    for attempt in 1..attempts.max(1) {
        wait_to_retry(item, attempt, (attempts, backoff));
        match read_file(out, item, std::mem::take(record), carry, records, buf, None)? {
            Attempt::Settled(outcome) => return Ok(outcome),
            Attempt::Again { record: again } => *record = again,
            Attempt::Builder => unreachable!("a read without a limit is made"),
        }
    }
    Ok(changed_every_time(attempts))
}

/// Waits before retry `attempt` (from 1) of reading a file that changed while it was
/// read: `backoff`, doubled for each further retry.
pub fn wait_to_retry(item: &Item, attempt: u32, retry: (u32, std::time::Duration)) {
    std::thread::sleep(note_retry(item, attempt, retry));
}

/// Logs retry `attempt` (from 1) of reading `item`, which changed while it was read; the
/// wait before it: `backoff`, doubled for each further retry.
pub fn note_retry(
    item: &Item,
    attempt: u32,
    (attempts, backoff): (u32, std::time::Duration),
) -> std::time::Duration {
    let wait = backoff.saturating_mul(1 << (attempt - 1).min(16));
    tracing::warn!(
        event = "retry",
        item = %crate::shown::escape_path(&item.rel),
        code = FailureCode::ChangedDuringRead.as_str(),
        attempt,
        of = attempts,
        wait = wait.as_secs_f64(),
        message = "the file changed while it was read"
    );
    wait
}

/// A file that changed each of the `attempts` times it was read.
pub fn changed_every_time(attempts: u32) -> Packed {
    Packed::Failed {
        code: FailureCode::ChangedDuringRead.as_str(),
        message: format!(
            "the file changed while it was read, {attempts} times; it was not migrated and the next round will try again"
        ),
    }
}

/// A file's record from the file opened (`at_open` its metadata then): its size, time,
/// mode and owner, its attributes and ACLs as `carry` says, and its data extents when
/// holes travel and it has any.
pub fn file_record(
    mut record: Record,
    file: &fs::File,
    at_open: &fs::Metadata,
    carry: xattr::Carry,
) -> Result<Record, Packed> {
    record.kind = KIND_FILE;
    record.size = at_open.len();
    record.len = at_open.len();
    record.mtime_sec = at_open.mtime();
    record.mtime_nsec = at_open.mtime_nsec() as u32;
    record.mode = at_open.mode() & 0o7777;
    record.uid = at_open.uid();
    record.gid = at_open.gid();
    let holes = carry.sparse && sparse::has_holes(file, record.size);
    let facts = xattr::of_file(file, carry)
        .and_then(|xattrs| Ok((xattrs, extents_of(file, holes, 0, record.len)?)));
    match facts {
        Ok((xattrs, extents)) => {
            record.xattrs = xattrs;
            record.extents = extents;
            Ok(record)
        }
        Err(e) => Err(unreadable_xattrs(&e)),
    }
}

/// One read of a file: its record and data, and a trailer that says whether the file
/// held still while it was read (void if not: `Again`).
fn read_file<W: Sink>(
    out: &mut W,
    item: &Item,
    record: Record,
    carry: xattr::Carry,
    records: &mut u32,
    buf: &mut [u8],
    limit: Option<u64>,
) -> io::Result<Attempt> {
    let (file, at_open) = match open_checked(item) {
        Ok(opened) => opened,
        Err(failed) => return Ok(Attempt::Settled(failed)),
    };
    if limit.is_some_and(|limit| at_open.len() > limit) {
        return Ok(Attempt::Builder);
    }
    let record = match file_record(record, &file, &at_open, carry) {
        Ok(record) => record,
        Err(failed) => return Ok(Attempt::Settled(failed)),
    };
    let holes = record.extents.is_some();
    record.write_to(out)?;
    out.compressible(!precompressed(item.rel.file_name().unwrap_or_default()))?;
    let mut hasher = sparse::Whole::new(holes);
    let whole = copy_record(&file, &record, out, &mut hasher, buf)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", item.source.display())))?;
    let ok = whole && still(&file, &at_open);
    let hash = hasher.finalize(record.size);
    Trailer {
        ok,
        part_hash: hash,
        file_hash: if ok { hash } else { [0; 32] },
    }
    .write_to(out)?;
    *records += 1;
    Ok(if ok {
        Attempt::Settled(Packed::Ok)
    } else {
        Attempt::Again { record }
    })
}

/// The record of a file whose metadata alone changed: its mode, owner, time and
/// attributes, no data. `None` when the file's content changed since the scan too:
/// then it is packaged whole.
fn add_metadata<W: Sink>(
    out: &mut W,
    item: &Item,
    record: &mut Record,
    carry: xattr::Carry,
    records: &mut u32,
) -> io::Result<Option<Packed>> {
    match metadata_record(item, std::mem::take(record), carry) {
        Ok(Change::Metadata(metadata)) => *record = metadata,
        Ok(Change::Content(whole)) => {
            *record = whole;
            return Ok(None);
        }
        Err(failed) => return Ok(Some(failed)),
    }
    record.write_to(out)?;
    Trailer {
        ok: true,
        part_hash: [0; 32],
        file_hash: [0; 32],
    }
    .write_to(out)?;
    *records += 1;
    Ok(Some(Packed::Ok))
}

/// What changed of a file that was to change in its metadata alone.
#[derive(Debug)]
pub enum Change {
    /// Its metadata alone: the record of its mode, owner, time and attributes, no data.
    Metadata(Record),
    /// Its content too, since the scan: the record given, to travel whole.
    Content(Record),
}

/// The record of a file whose metadata alone changed since the last round, or the
/// record given back when its content changed since the scan too.
pub fn metadata_record(item: &Item, record: Record, carry: xattr::Carry) -> Result<Change, Packed> {
    let (file, at_open) = open_checked(item)?;
    let (sec, nsec) = (at_open.mtime(), at_open.mtime_nsec() as u32);
    if at_open.len() != item.meta.size || mtime_parts(item.meta.mtime_ns) != (sec, nsec) {
        return Ok(Change::Content(record));
    }
    let xattrs = xattr::of_file(&file, carry).map_err(|e| unreadable_xattrs(&e))?;
    Ok(Change::Metadata(Record {
        kind: KIND_FILE,
        size: at_open.len(),
        len: at_open.len(),
        mtime_sec: sec,
        mtime_nsec: nsec,
        mode: at_open.mode() & 0o7777,
        uid: at_open.uid(),
        gid: at_open.gid(),
        xattrs,
        metadata_only: true,
        ..record
    }))
}

/// The attributes and ACLs of a folder or symlink, read without following it.
pub fn link_xattrs(item: &Item, carry: xattr::Carry) -> Result<Vec<Xattr>, Packed> {
    xattr::read(xattr::On::Link(&item.source), carry).map_err(|e| unreadable_xattrs(&e))
}

/// An item whose extended attributes (or extents) could not be read: not packed. An
/// ACL that does not travel could open the item to the wrong people.
fn unreadable_xattrs(e: &io::Error) -> Packed {
    Packed::Failed {
        code: FailureCode::ReadFailed.as_str(),
        message: format!("cannot read the item's extended attributes, ACLs or extents: {e}"),
    }
}

/// Appends part `part` of a large file, reading it from the open `file`; `whole` hashes
/// the file across its parts (sparse, when the file has holes and they travel), and the
/// last part carries its result and the file's attributes. A file that changed since
/// `at_open` makes the part void (and so the file): `Ok(false)`.
#[expect(clippy::too_many_arguments, reason = "one record's every fact")]
pub fn add_part<W: Sink>(
    out: &mut W,
    item: &Item,
    file: &fs::File,
    at_open: &fs::Metadata,
    part: u32,
    parts: u32,
    part_size: u64,
    carry: xattr::Carry,
    whole: &mut sparse::Whole,
) -> io::Result<bool> {
    let record = part_record(
        item,
        (file, at_open),
        (part, parts, part_size),
        carry,
        matches!(whole, sparse::Whole::Sparse(_)),
    )?;
    let (size, offset, len) = (record.size, record.offset, record.len);
    let last = part + 1 == parts;
    record.write_to(out)?;
    out.compressible(!precompressed(item.rel.file_name().unwrap_or_default()))?;
    // A part carries no hash of its own: the package's tags authenticate it, and the
    // whole file's hash, checked when the file is complete, settles its content. One
    // pass of hashing fewer over every byte of a large file.
    let mut buf = vec![0u8; 256 * 1024];
    let full = copy_record(file, &record, out, whole, &mut buf)?;
    let ok = full && still(file, at_open) && (part + 1 < parts || size == offset + len);
    Trailer {
        ok,
        part_hash: [0; 32],
        file_hash: if ok && last {
            whole.finalize(size)
        } else {
            [0; 32]
        },
    }
    .write_to(out)?;
    Ok(ok)
}

/// The record of part `part` of `parts` (each `part_size` bytes, the last what is
/// left) of a file opened with `at_open`: the last part carries the file's attributes,
/// and a sparse file's parts (`sparse`) their extents.
pub fn part_record(
    item: &Item,
    (file, at_open): (&fs::File, &fs::Metadata),
    (part, parts, part_size): (u32, u32, u64),
    carry: xattr::Carry,
    sparse: bool,
) -> io::Result<Record> {
    let size = at_open.len();
    let offset = u64::from(part) * part_size;
    let len = size.saturating_sub(offset).min(part_size);
    let xattrs = if part + 1 == parts {
        xattr::of_file(file, carry)?
    } else {
        Vec::new()
    };
    Ok(Record {
        kind: KIND_FILE,
        path: item.rel.as_os_str().as_bytes().to_vec(),
        mode: at_open.mode() & 0o7777,
        uid: at_open.uid(),
        gid: at_open.gid(),
        mtime_sec: at_open.mtime(),
        mtime_nsec: at_open.mtime_nsec() as u32,
        size,
        part,
        parts,
        offset,
        len,
        xattrs,
        extents: extents_of(file, sparse, offset, len)?,
        ..Record::default()
    })
}

/// Hashes the first `len` bytes of a file in parts into `whole`, as [`add_part`] does,
/// without packaging them: the parts an earlier run already imported. False when the
/// file ended early or changed since `at_open`.
pub fn hash_range(
    file: &fs::File,
    at_open: &fs::Metadata,
    len: u64,
    whole: &mut sparse::Whole,
) -> io::Result<bool> {
    let mut buf = vec![0u8; 256 * 1024];
    let record = Record {
        len,
        extents: extents_of(file, matches!(whole, sparse::Whole::Sparse(_)), 0, len)?,
        ..Record::default()
    };
    let full = copy_record(file, &record, &mut io::sink(), whole, &mut buf)?;
    Ok(full && still(file, at_open))
}
