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

pub mod packer;
pub mod sparse;
pub mod xattr;

use crate::failure::FailureCode;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};

use self::packer::{Item, ItemKind};

pub const MAGIC: &[u8; 8] = b"FERRYPKG";
/// The stream's version: 2 carries extended attributes and sparse files' extents.
/// Version 1 streams (staged by an earlier ferry) are still read.
pub const VERSION: u8 = 2;
pub const VERSION_1: u8 = 1;
const RECORD: u8 = 1;
const END: u8 = 0;
pub const KIND_FILE: u8 = 1;
pub const KIND_FOLDER: u8 = 2;
pub const KIND_SYMLINK: u8 = 3;
const STATUS_OK: u8 = 1;
const STATUS_VOID: u8 = 0;
/// The longest path a record may carry (bytes); longer is refused as hostile.
pub const MAX_PATH: usize = 64 * 1024;
/// The most extended attributes one record may carry, and their most bytes in all
/// (Linux allows a value of 64 KiB; ext4 keeps an inode's in one block).
pub const MAX_XATTRS: usize = 4096;
pub const MAX_XATTR_VALUE: usize = 64 * 1024;
pub const MAX_XATTR_BYTES: usize = 1 << 20;
/// The most extents one record may list.
pub const MAX_EXTENTS: usize = 1 << 20;
const LAYOUT_DENSE: u8 = 0;
const LAYOUT_SPARSE: u8 = 1;
const LAYOUT_METADATA: u8 = 2;

/// An extended attribute: its full name (`user.origin`, `system.posix_acl_access`) and
/// value, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// A range of a sparse file that holds data: bytes `offset .. offset + len` of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

/// The header of one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    /// Relative, `/`-separated, as bytes.
    pub path: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// The whole file's size.
    pub size: u64,
    /// This record's part of the file: index, count, offset and length of its data.
    pub part: u32,
    pub parts: u32,
    pub offset: u64,
    pub len: u64,
    /// A symlink's target, as bytes.
    pub target: Vec<u8>,
    /// The item's extended attributes (POSIX ACLs among them), as the plan's
    /// `preserve` asks; with a file in parts, in its last part only.
    pub xattrs: Vec<Xattr>,
    /// A sparse file's data in this record's range: the record's data is these ranges'
    /// bytes, one after the other, and the rest of the range is a hole. `None`: the
    /// data is the whole range.
    pub extents: Option<Vec<Extent>>,
    /// A file whose metadata alone changed since the last round: the record carries
    /// no data, and the importer applies its metadata to the file in place.
    pub metadata_only: bool,
}

/// What follows a record's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// False when the file changed while it was read: discard the record.
    pub ok: bool,
    /// BLAKE3 of this record's data.
    pub part_hash: [u8; 32],
    /// BLAKE3 of the whole file: in the last part (or the only one), else zero.
    pub file_hash: [u8; 32],
}

impl Record {
    /// Writes the header in one piece (a compressor is called once, not per field).
    pub(crate) fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut b = Vec::with_capacity(80 + self.path.len() + self.target.len());
        b.extend_from_slice(&[RECORD, self.kind]);
        b.extend_from_slice(&(self.path.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.path);
        b.extend_from_slice(&self.mode.to_le_bytes());
        b.extend_from_slice(&self.uid.to_le_bytes());
        b.extend_from_slice(&self.gid.to_le_bytes());
        b.extend_from_slice(&self.mtime_sec.to_le_bytes());
        b.extend_from_slice(&self.mtime_nsec.to_le_bytes());
        b.extend_from_slice(&self.size.to_le_bytes());
        b.extend_from_slice(&self.part.to_le_bytes());
        b.extend_from_slice(&self.parts.to_le_bytes());
        b.extend_from_slice(&self.offset.to_le_bytes());
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&(self.target.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.target);
        b.extend_from_slice(&(self.xattrs.len() as u32).to_le_bytes());
        for x in &self.xattrs {
            b.extend_from_slice(&(x.name.len() as u32).to_le_bytes());
            b.extend_from_slice(&x.name);
            b.extend_from_slice(&(x.value.len() as u32).to_le_bytes());
            b.extend_from_slice(&x.value);
        }
        match &self.extents {
            None if self.metadata_only => b.push(LAYOUT_METADATA),
            None => b.push(LAYOUT_DENSE),
            Some(extents) => {
                b.push(LAYOUT_SPARSE);
                b.extend_from_slice(&(extents.len() as u32).to_le_bytes());
                for e in extents {
                    b.extend_from_slice(&e.offset.to_le_bytes());
                    b.extend_from_slice(&e.len.to_le_bytes());
                }
            }
        }
        out.write_all(&b)
    }

    /// How many bytes of data follow the header: the extents' bytes for a sparse file.
    pub fn data_len(&self) -> u64 {
        match &self.extents {
            None if self.metadata_only => 0,
            None => self.len,
            Some(extents) => extents.iter().map(|e| e.len).sum(),
        }
    }
}

impl Trailer {
    pub(crate) fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut b = [0u8; 65];
        b[0] = if self.ok { STATUS_OK } else { STATUS_VOID };
        b[1..33].copy_from_slice(&self.part_hash);
        b[33..].copy_from_slice(&self.file_hash);
        out.write_all(&b)
    }
}

/// Writes the stream's start.
pub fn begin<W: Write>(out: &mut W) -> io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&[VERSION])
}

/// Writes the stream's end: the number of records, checked by the reader.
pub fn end<W: Write>(out: &mut W, records: u32) -> io::Result<()> {
    out.write_all(&[END])?;
    out.write_all(&records.to_le_bytes())
}

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
fn still(file: &fs::File, at_open: &fs::Metadata) -> bool {
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

/// Where a package's records go: a stream that can be told whether the next data is
/// worth compressing.
pub trait Sink: Write {
    /// `false` before the data of a file in an already-compressed format.
    fn compressible(&mut self, worth_it: bool) -> io::Result<()>;
}

/// The zstd stream of a package, which compresses the data of already-compressed
/// formats at zstd's fastest level: trying hard on them costs time and saves nothing
/// (zstd then stores their blocks raw, a few bytes per 128 KiB over the data itself).
pub struct Compressor {
    encoder: zstd::stream::raw::Encoder<'static>,
    /// The compressed stream: zstd writes straight into it, with no buffer between.
    out: Vec<u8>,
    level: i32,
    current: i32,
}

/// zstd's level for data that does not compress.
const STORE_LEVEL: i32 = -7;

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .field("current", &self.current)
            .field("written", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor writing into `buffer` (emptied first); `expected` bytes of data
    /// are coming, and room is made for them at once. A worker hands the same buffer
    /// from package to package, so that its pages are not faulted in anew for every one.
    pub fn reusing(level: u8, expected: u64, mut buffer: Vec<u8>) -> io::Result<Compressor> {
        let room = usize::try_from(expected.saturating_add(64 * 1024)).unwrap_or(usize::MAX);
        buffer.clear();
        buffer.reserve(room);
        let level = i32::from(level);
        let mut encoder = zstd::stream::raw::Encoder::new(level)?;
        encoder.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(false))?;
        Ok(Compressor {
            encoder,
            out: buffer,
            level,
            current: level,
        })
    }

    fn room(&mut self) {
        if self.out.capacity() - self.out.len() < 128 * 1024 {
            self.out.reserve(1 << 20);
        }
    }

    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        use zstd::stream::raw::Operation as _;
        loop {
            self.room();
            let pos = self.out.len();
            let mut output = zstd::stream::raw::OutBuffer::around_pos(&mut self.out, pos);
            if self.encoder.finish(&mut output, true)? == 0 {
                break;
            }
        }
        Ok(self.out)
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use zstd::stream::raw::Operation as _;
        let mut input = zstd::stream::raw::InBuffer::around(buf);
        while input.pos() < buf.len() {
            self.room();
            let pos = self.out.len();
            let mut output = zstd::stream::raw::OutBuffer::around_pos(&mut self.out, pos);
            self.encoder.run(&mut input, &mut output)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Compressor {
    fn compressible(&mut self, worth_it: bool) -> io::Result<()> {
        let level = if worth_it { self.level } else { STORE_LEVEL };
        if level != self.current {
            self.encoder
                .set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(level))?;
            self.current = level;
        }
        Ok(())
    }
}

/// Whether a file's extension names a format that is compressed already (images,
/// audio, video, archives, Office Open XML and OpenDocument files, PDF).
pub fn precompressed(name: &std::ffi::OsStr) -> bool {
    const FORMATS: &[&str] = &[
        "7z", "aac", "apk", "avi", "avif", "bz2", "cab", "docm", "docx", "dotx", "epub", "flac",
        "gif", "gz", "heic", "heif", "jar", "jpeg", "jpg", "m4a", "m4v", "mkv", "mov", "mp3",
        "mp4", "msi", "odp", "ods", "odt", "ogg", "opus", "pdf", "png", "pptm", "pptx", "rar",
        "tgz", "txz", "webm", "webp", "wmv", "xlsb", "xlsm", "xlsx", "xz", "zip", "zst",
    ];
    let ext = crate::scan::rules::extension(name);
    FORMATS
        .iter()
        .any(|f| ext.eq_ignore_ascii_case(f.as_bytes()))
}

/// Appends the records of `items`. A file that changes while it is read is read again,
/// up to `attempts` reads in all, waiting `backoff` before the first retry and twice as
/// long before each next one (`retries`), so that a file being written can settle.
pub fn add_items<W: Sink>(
    out: &mut W,
    items: &[std::sync::Arc<Item>],
    carry: xattr::Carry,
    attempts: u32,
    backoff: std::time::Duration,
    records: &mut u32,
) -> io::Result<Vec<Packed>> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let (mtime_sec, mtime_nsec) = mtime_parts(item.meta.mtime_ns);
        let mut record = Record {
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
        };
        let zero = Trailer {
            ok: true,
            part_hash: [0; 32],
            file_hash: [0; 32],
        };
        if !matches!(item.kind, ItemKind::File) {
            match xattr::read(xattr::On::Link(&item.source), carry) {
                Ok(xattrs) => record.xattrs = xattrs,
                Err(e) => {
                    outcomes.push(unreadable_xattrs(&e));
                    continue;
                }
            }
        }
        match &item.kind {
            ItemKind::Folder => {
                record.write_to(out)?;
                zero.write_to(out)?;
                *records += 1;
                outcomes.push(Packed::Ok);
            }
            ItemKind::Symlink { target } => {
                record.kind = KIND_SYMLINK;
                record.target = target.as_bytes().to_vec();
                record.write_to(out)?;
                zero.write_to(out)?;
                *records += 1;
                outcomes.push(Packed::Ok);
            }
            ItemKind::File => {
                record.kind = KIND_FILE;
                let mut outcome = Packed::Failed {
                    code: FailureCode::ChangedDuringRead.as_str(),
                    message: format!(
                        "the file changed while it was read, {attempts} times; it was not migrated and the next round will try again"
                    ),
                };
                if item.metadata_only
                    && let Some(outcome) = add_metadata(out, item, &mut record, carry, records)?
                {
                    outcomes.push(outcome);
                    continue;
                }
                for attempt in 0..attempts.max(1) {
                    if attempt > 0 {
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
                        std::thread::sleep(wait);
                    }
                    let (file, at_open) = match open_checked(item) {
                        Ok(opened) => opened,
                        Err(failed) => {
                            outcome = failed;
                            break;
                        }
                    };
                    let (sec, nsec) = (at_open.mtime(), at_open.mtime_nsec() as u32);
                    record.size = at_open.len();
                    record.len = at_open.len();
                    record.mtime_sec = sec;
                    record.mtime_nsec = nsec;
                    record.mode = at_open.mode() & 0o7777;
                    record.uid = at_open.uid();
                    record.gid = at_open.gid();
                    let holes = carry.sparse && sparse::has_holes(&file, record.size);
                    let facts = xattr::of_file(&file, carry)
                        .and_then(|xattrs| Ok((xattrs, extents_of(&file, holes, 0, record.len)?)));
                    match facts {
                        Ok((xattrs, extents)) => {
                            record.xattrs = xattrs;
                            record.extents = extents;
                        }
                        Err(e) => {
                            outcome = unreadable_xattrs(&e);
                            break;
                        }
                    }
                    record.write_to(out)?;
                    out.compressible(!precompressed(item.rel.file_name().unwrap_or_default()))?;
                    let mut hasher = sparse::Whole::new(holes);
                    let whole =
                        copy_record(&file, &record, out, &mut hasher, &mut buf).map_err(|e| {
                            io::Error::new(
                                e.kind(),
                                format!("reading {}: {e}", item.source.display()),
                            )
                        })?;
                    let ok = whole && still(&file, &at_open);
                    let hash = hasher.finalize(record.size);
                    Trailer {
                        ok,
                        part_hash: hash,
                        file_hash: if ok { hash } else { [0; 32] },
                    }
                    .write_to(out)?;
                    *records += 1;
                    if ok {
                        outcome = Packed::Ok;
                        break;
                    }
                }
                outcomes.push(outcome);
            }
        }
    }
    Ok(outcomes)
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
    let (file, at_open) = match open_checked(item) {
        Ok(opened) => opened,
        Err(failed) => return Ok(Some(failed)),
    };
    let (sec, nsec) = (at_open.mtime(), at_open.mtime_nsec() as u32);
    if at_open.len() != item.meta.size || mtime_parts(item.meta.mtime_ns) != (sec, nsec) {
        return Ok(None);
    }
    let xattrs = match xattr::of_file(&file, carry) {
        Ok(xattrs) => xattrs,
        Err(e) => return Ok(Some(unreadable_xattrs(&e))),
    };
    *record = Record {
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
        ..std::mem::take(record)
    };
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
    let size = at_open.len();
    let offset = u64::from(part) * part_size;
    let len = size.saturating_sub(offset).min(part_size);
    let last = part + 1 == parts;
    let xattrs = if last {
        xattr::of_file(file, carry)?
    } else {
        Vec::new()
    };
    let record = Record {
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
        extents: extents_of(file, matches!(whole, sparse::Whole::Sparse(_)), offset, len)?,
        ..Record::default()
    };
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

/// Why a package stream is refused. The importer reports every one of them as the
/// package's integrity failure; this says which rule broke, for the log.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("not a ferry package stream")]
    Magic,
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("the stream ends early")]
    Truncated,
    #[error("record count {found} does not match {declared}")]
    Count { found: u32, declared: u32 },
    #[error(transparent)]
    Io(io::Error),
}

fn read_array<R: Read, const N: usize>(r: &mut R) -> Result<[u8; N], StreamError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StreamError::Truncated,
        _ => StreamError::Io(e),
    })?;
    Ok(b)
}

fn read_bytes<R: Read>(r: &mut R, len: usize) -> Result<Vec<u8>, StreamError> {
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StreamError::Truncated,
        _ => StreamError::Io(e),
    })?;
    Ok(b)
}

/// Reads the stream's start; returns its version (1 or 2).
pub fn read_begin<R: Read>(r: &mut R) -> Result<u8, StreamError> {
    if &read_array::<_, 8>(r)? != MAGIC {
        return Err(StreamError::Magic);
    }
    match read_array::<_, 1>(r)?[0] {
        v @ (VERSION | VERSION_1) => Ok(v),
        _ => Err(StreamError::Magic),
    }
}

/// Whether an attribute name is one ferry carries: a namespace it knows, at most 255
/// bytes, no NUL.
pub fn carried_name(name: &[u8]) -> bool {
    let known = [&b"user."[..], b"security.", b"trusted."]
        .iter()
        .any(|ns| name.len() > ns.len() && name.starts_with(ns))
        || name == xattr::ACL_ACCESS
        || name == xattr::ACL_DEFAULT;
    known && name.len() <= 255 && !name.contains(&0)
}

fn read_xattrs<R: Read>(r: &mut R) -> Result<Vec<Xattr>, StreamError> {
    let count = u32::from_le_bytes(read_array(r)?) as usize;
    if count > MAX_XATTRS {
        return Err(StreamError::Malformed("too many extended attributes"));
    }
    let mut xattrs = Vec::with_capacity(count.min(64));
    let mut total = 0usize;
    for _ in 0..count {
        let name_len = u32::from_le_bytes(read_array(r)?) as usize;
        if name_len == 0 || name_len > 255 {
            return Err(StreamError::Malformed("extended attribute name"));
        }
        let name = read_bytes(r, name_len)?;
        let value_len = u32::from_le_bytes(read_array(r)?) as usize;
        total += name_len + value_len;
        if value_len > MAX_XATTR_VALUE || total > MAX_XATTR_BYTES {
            return Err(StreamError::Malformed("extended attribute size"));
        }
        let value = read_bytes(r, value_len)?;
        if !carried_name(&name) || xattrs.iter().any(|x: &Xattr| x.name == name) {
            return Err(StreamError::Malformed("extended attribute name"));
        }
        xattrs.push(Xattr { name, value });
    }
    Ok(xattrs)
}

/// A sparse record's extents: in order, not empty, not overlapping, inside the
/// record's range.
fn read_extents<R: Read>(r: &mut R, offset: u64, len: u64) -> Result<Vec<Extent>, StreamError> {
    let count = u32::from_le_bytes(read_array(r)?) as usize;
    if count > MAX_EXTENTS {
        return Err(StreamError::Malformed("too many extents"));
    }
    let mut extents = Vec::with_capacity(count.min(1024));
    let mut at = offset;
    let end = offset.saturating_add(len);
    for _ in 0..count {
        let e = Extent {
            offset: u64::from_le_bytes(read_array(r)?),
            len: u64::from_le_bytes(read_array(r)?),
        };
        let inside = e.len > 0
            && e.offset >= at
            && e.offset.checked_add(e.len).is_some_and(|stop| stop <= end);
        if !inside {
            return Err(StreamError::Malformed(
                "extent outside its record or out of order",
            ));
        }
        at = e.offset + e.len;
        extents.push(e);
    }
    Ok(extents)
}

/// The next record's header, or `None` at the end (after checking the count). `version`
/// is the stream's, as [`read_begin`] returned it.
pub fn read_record<R: Read>(
    r: &mut R,
    seen: u32,
    version: u8,
) -> Result<Option<Record>, StreamError> {
    let [tag] = read_array::<_, 1>(r)?;
    if tag == END {
        let declared = u32::from_le_bytes(read_array(r)?);
        if declared != seen {
            return Err(StreamError::Count {
                found: seen,
                declared,
            });
        }
        return Ok(None);
    }
    if tag != RECORD {
        return Err(StreamError::Malformed("unknown record tag"));
    }
    let [kind] = read_array::<_, 1>(r)?;
    if !matches!(kind, KIND_FILE | KIND_FOLDER | KIND_SYMLINK) {
        return Err(StreamError::Malformed("unknown kind"));
    }
    let path_len = u32::from_le_bytes(read_array(r)?) as usize;
    if path_len == 0 || path_len > MAX_PATH {
        return Err(StreamError::Malformed("path length"));
    }
    let path = read_bytes(r, path_len)?;
    let mode = u32::from_le_bytes(read_array(r)?);
    let uid = u32::from_le_bytes(read_array(r)?);
    let gid = u32::from_le_bytes(read_array(r)?);
    let mtime_sec = i64::from_le_bytes(read_array(r)?);
    let mtime_nsec = u32::from_le_bytes(read_array(r)?);
    let size = u64::from_le_bytes(read_array(r)?);
    let part = u32::from_le_bytes(read_array(r)?);
    let parts = u32::from_le_bytes(read_array(r)?);
    let offset = u64::from_le_bytes(read_array(r)?);
    let len = u64::from_le_bytes(read_array(r)?);
    let target_len = u32::from_le_bytes(read_array(r)?) as usize;
    if target_len > MAX_PATH {
        return Err(StreamError::Malformed("link target length"));
    }
    let target = read_bytes(r, target_len)?;
    let (xattrs, extents, metadata_only) = if version == VERSION_1 {
        (Vec::new(), None, false)
    } else {
        let xattrs = read_xattrs(r)?;
        let (extents, metadata_only) = match read_array::<_, 1>(r)?[0] {
            LAYOUT_DENSE => (None, false),
            LAYOUT_SPARSE if kind == KIND_FILE => (Some(read_extents(r, offset, len)?), false),
            LAYOUT_METADATA if kind == KIND_FILE && parts == 1 => (None, true),
            _ => return Err(StreamError::Malformed("layout")),
        };
        (xattrs, extents, metadata_only)
    };
    let consistent = mtime_nsec < 1_000_000_000
        && parts >= 1
        && part < parts
        && offset.checked_add(len).is_some_and(|end| end <= size)
        && (kind == KIND_FILE || (size == 0 && len == 0 && parts == 1))
        && (parts > 1 || (offset == 0 && len == size))
        && (kind == KIND_SYMLINK) == (target_len > 0);
    if !consistent {
        return Err(StreamError::Malformed("inconsistent lengths"));
    }
    Ok(Some(Record {
        kind,
        path,
        mode,
        uid,
        gid,
        mtime_sec,
        mtime_nsec,
        size,
        part,
        parts,
        offset,
        len,
        target,
        xattrs,
        extents,
        metadata_only,
    }))
}

/// The trailer after a record's data.
pub fn read_trailer<R: Read>(r: &mut R) -> Result<Trailer, StreamError> {
    let [status] = read_array::<_, 1>(r)?;
    if status != STATUS_OK && status != STATUS_VOID {
        return Err(StreamError::Malformed("status"));
    }
    Ok(Trailer {
        ok: status == STATUS_OK,
        part_hash: read_array(r)?,
        file_hash: read_array(r)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            kind: KIND_FILE,
            path: b"a/b\xff/c".to_vec(),
            mode: 0o644,
            uid: 1000,
            gid: 100,
            mtime_sec: -5,
            mtime_nsec: 7,
            size: 10,
            part: 1,
            parts: 2,
            offset: 5,
            len: 5,
            xattrs: vec![
                Xattr {
                    name: b"user.origin".to_vec(),
                    value: b"nas1".to_vec(),
                },
                Xattr {
                    name: xattr::ACL_ACCESS.to_vec(),
                    value: vec![2, 0, 0, 0],
                },
            ],
            extents: Some(vec![
                Extent { offset: 5, len: 2 },
                Extent { offset: 8, len: 1 },
            ]),
            ..Record::default()
        };
        let mut bytes = Vec::new();
        begin(&mut bytes).unwrap();
        record.write_to(&mut bytes).unwrap();
        bytes.extend_from_slice(b"123");
        let trailer = Trailer {
            ok: true,
            part_hash: [1; 32],
            file_hash: [2; 32],
        };
        trailer.write_to(&mut bytes).unwrap();
        end(&mut bytes, 1).unwrap();
        let mut r = bytes.as_slice();
        assert_eq!(read_begin(&mut r).unwrap(), VERSION);
        let read = read_record(&mut r, 0, VERSION).unwrap().unwrap();
        assert_eq!(read.data_len(), 3);
        assert_eq!(read, record);
        assert_eq!(read_bytes(&mut r, 3).unwrap(), b"123");
        assert_eq!(read_trailer(&mut r).unwrap(), trailer);
        assert!(read_record(&mut r, 1, VERSION).unwrap().is_none());
        // Every shorter stream is refused, never accepted or panicking.
        for cut in 0..bytes.len() {
            let mut r = &bytes[..cut];
            let result = read_begin(&mut r)
                .and_then(|v| read_record(&mut r, 0, v))
                .and_then(|_| read_bytes(&mut r, 3))
                .and_then(|_| read_trailer(&mut r))
                .and_then(|_| read_record(&mut r, 1, VERSION));
            assert!(result.is_err(), "cut at {cut} accepted");
        }
    }

    /// The stream of docs/FORMAT.md's package test vector: one sparse file with an
    /// extended attribute.
    fn test_vector() -> Vec<u8> {
        let mut out = Vec::new();
        begin(&mut out).unwrap();
        let record = Record {
            kind: KIND_FILE,
            path: b"img".to_vec(),
            mode: 0o640,
            uid: 1000,
            gid: 100,
            mtime_sec: 1_800_000_000,
            mtime_nsec: 5,
            size: 8192,
            part: 0,
            parts: 1,
            offset: 0,
            len: 8192,
            target: Vec::new(),
            xattrs: vec![Xattr {
                name: b"user.origin".to_vec(),
                value: b"nas1".to_vec(),
            }],
            extents: Some(vec![Extent {
                offset: 4096,
                len: 4,
            }]),
            metadata_only: false,
        };
        record.write_to(&mut out).unwrap();
        out.extend_from_slice(b"data");
        let mut hash = sparse::SparseHasher::default();
        hash.update_at(4096, b"data");
        let hash = hash.finalize(8192);
        Trailer {
            ok: true,
            part_hash: hash,
            file_hash: hash,
        }
        .write_to(&mut out)
        .unwrap();
        end(&mut out, 1).unwrap();
        out
    }

    #[test]
    fn frozen_package_test_vector() {
        let bytes = test_vector();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let docs = include_str!("../../docs/FORMAT.md");
        let frozen: String = docs
            .split("```hex\n")
            .nth(2)
            .and_then(|rest| rest.split("```").next())
            .expect("a second hex block in docs/FORMAT.md")
            .split_whitespace()
            .collect();
        assert_eq!(hex, frozen, "package stream differs from docs/FORMAT.md");
    }

    #[test]
    fn inconsistent_records_are_refused() {
        let mut bad = Record {
            kind: KIND_FOLDER,
            path: b"x".to_vec(),
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_sec: 0,
            mtime_nsec: 0,
            size: 5,
            part: 0,
            parts: 1,
            offset: 0,
            len: 0,
            ..Record::default()
        };
        let refused = |r: &Record| {
            let mut bytes = Vec::new();
            r.write_to(&mut bytes).unwrap();
            read_record(&mut bytes.as_slice(), 0, VERSION).is_err()
        };
        assert!(refused(&bad), "a folder with a size");
        bad.kind = KIND_FILE;
        bad.offset = 4;
        bad.len = 2;
        assert!(refused(&bad), "a part past the end");
        bad.offset = u64::MAX;
        assert!(refused(&bad), "an overflowing offset");
        bad.offset = 0;
        bad.part = 1;
        assert!(refused(&bad), "part index beyond the count");
        bad.part = 0;
        bad.len = 5;
        assert!(!refused(&bad), "a whole file");
        for extents in [
            vec![Extent { offset: 0, len: 0 }],
            vec![Extent { offset: 4, len: 2 }],
            vec![Extent { offset: 2, len: 2 }, Extent { offset: 1, len: 1 }],
            vec![Extent { offset: 0, len: 2 }, Extent { offset: 1, len: 2 }],
        ] {
            bad.extents = Some(extents.clone());
            assert!(refused(&bad), "extents {extents:?}");
        }
        bad.extents = None;
        bad.metadata_only = true;
        assert!(!refused(&bad), "a file's metadata alone");
        bad.kind = KIND_FOLDER;
        bad.size = 0;
        bad.len = 0;
        assert!(refused(&bad), "a folder's metadata alone");
        bad.kind = KIND_FILE;
        bad.size = 5;
        bad.len = 5;
        bad.metadata_only = false;
        for name in [&b"system.nfs4_acl"[..], b"user.", b"other.x", b"user.a\0b"] {
            bad.xattrs = vec![Xattr {
                name: name.to_vec(),
                value: Vec::new(),
            }];
            assert!(refused(&bad), "attribute {name:?}");
        }
        let twice = Xattr {
            name: b"user.a".to_vec(),
            value: Vec::new(),
        };
        bad.xattrs = vec![twice.clone(), twice];
        assert!(refused(&bad), "an attribute twice");
        bad.xattrs = vec![Xattr {
            name: b"user.big".to_vec(),
            value: vec![0; MAX_XATTR_VALUE + 1],
        }];
        assert!(refused(&bad), "an attribute too large");
    }
}
