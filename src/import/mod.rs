//! Import: staged packages into the destination. A staged package is hostile input.
//!
//! Every record's path is checked component by component (no empty, `.` or `..`
//! component, no NUL, not absolute) before anything is created for it, and the
//! destination is walked from its root one folder at a time with `openat(O_NOFOLLOW)`,
//! so a symlink inside the destination is never written through. Each file is written
//! to a short temporary name beside its final one, synced and hashed; only when the
//! whole package has been read — every segment authenticated, the record count
//! matched — are the files renamed into place. A package that breaks any rule is
//! refused whole: its temporary files are removed and nothing of it is committed. A
//! file in parts is assembled in a temporary file and committed with its last part,
//! after the whole file's hash has been checked from disk.

use crate::failure::FailureCode;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

use self::decide::{Found, KeepReason, Verdict, Why};
use crate::package::{self, KIND_FILE, KIND_FOLDER, KIND_SYMLINK, Record, StreamError};
use crate::plan::Preserve;
use crate::plan::raw::{Conflicts, Verify};

pub mod decide;
pub mod direct;
mod links;
mod metadata;
mod parts;
mod records;
pub(crate) mod stream;
mod temp;

pub use self::decide::same_time;
pub use links::OtherName;
use parts::Assembly;
pub use stream::import_stream;
use temp::temp_name;
pub use temp::{clean_stray, is_temp_name, run_salt};

/// Why a whole package was refused. The reason is for the log; the report says
/// "integrity check failed".
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("unsafe path in the manifest: {0}")]
    Path(String),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("data does not match its hash: {0}")]
    Hash(String),
}

/// What the destination holds for an item once it is in place: the source's hash (as
/// the manifest gives it; zero for folders and links) and the destination's
/// modification time, for the incremental index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub hash: [u8; 32],
    pub dest_mtime_ns: i64,
    /// The destination item's inode (0: not known).
    pub dest_id: u64,
    /// A file's size and modification time as it was read at the source, which may be
    /// later than the scan's (it changed in between): what the destination now holds.
    /// `None` for folders and links, and where not known.
    pub source: Option<(u64, i128)>,
}

/// What happened to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: the file (or its last part), folder or link is in place.
    Imported {
        path: PathBuf,
        bytes: u64,
        stamp: Stamp,
    },
    /// A part is durable in the file's assembly (`work`, a folder of ferry's own beside
    /// the final name); the file is committed with its last part.
    PartWritten {
        path: PathBuf,
        bytes: u64,
        part: u32,
        work: String,
        /// With the last part: the file is ready for [`Destination::commit_assembly`],
        /// once this part is journalled.
        whole: Option<crate::state::journal::WholeFile>,
    },
    /// The destination already had it, unchanged (same size and time).
    Unchanged { path: PathBuf, stamp: Stamp },
    /// Not imported, with a stable code.
    Failed {
        path: PathBuf,
        code: &'static str,
        message: String,
    },
}

/// What became of a mirrored deletion.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Already gone.
    Gone,
    /// Not what ferry put there (someone changed it, or a folder is not empty): kept.
    Changed,
    Failed(String),
}

/// The split of a record's path into safe components, or why it is unsafe.
pub fn safe_components(path: &[u8]) -> Result<Vec<&[u8]>, String> {
    let shown = || crate::shown::escape(OsStr::from_bytes(path)).into_owned();
    if path.is_empty() || path.len() > package::MAX_PATH {
        return Err(format!("empty or oversized path \"{}\"", shown()));
    }
    if path[0] == b'/' {
        return Err(format!("absolute path \"{}\"", shown()));
    }
    if path.contains(&0) {
        return Err(format!("NUL byte in \"{}\"", shown()));
    }
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    for part in &parts {
        if part.is_empty() || *part == b"." || *part == b".." {
            return Err(format!(
                "\"{}\" has an empty, `.` or `..` component",
                shown()
            ));
        }
        if part.len() > 255 {
            return Err(format!("a component of \"{}\" is over 255 bytes", shown()));
        }
    }
    Ok(parts)
}

/// A destination folder, open, that records are written into.
#[derive(Debug)]
pub struct Destination {
    root: PathBuf,
    fd: OwnedFd,
    preserve: Preserve,
    /// What of `preserve` travels: attributes, ACLs, holes (worked out once).
    carry: package::xattr::Carry,
    conflicts: Conflicts,
    verify: Verify,
    /// Folders this run created: what is in them, this run put there.
    made: Mutex<std::collections::HashSet<PathBuf>>,
    /// The root itself did not exist before this run.
    root_fresh: bool,
    /// Folders' modes and times, applied when the task ends (a read-only folder would
    /// refuse its own contents, and writing contents changes a folder's time).
    folders: Mutex<Vec<(PathBuf, u32, Timespec)>>,
    /// Files in parts being assembled. One worker brings a file's parts, in order; an
    /// assembly is taken out of the map while a part is written into it.
    assembling: Mutex<std::collections::HashMap<PathBuf, Assembly>>,
    /// What ferry put at the destination in earlier rounds: a file whose fingerprint is
    /// still the one recorded there is ferry's own, and an update may replace it.
    index: Option<Arc<crate::state::index::Index>>,
    /// The most data one package may carry (`package.max_size`, times the tries of a
    /// file that changed while read): a record past it is refused before anything of
    /// it is written, so a forged one cannot fill the destination (finding 16).
    max_package_data: u64,
    /// Findings about items in place: attributes and ACLs the destination refused.
    notes: Mutex<Vec<(PathBuf, &'static str, String)>>,
    /// Folders whose ACL the destination refused: their mode at the task's end leaves
    /// out group and other rights.
    narrowed: Mutex<std::collections::HashSet<PathBuf>>,
}

/// Another ferry run holds the destination (see [`Destination::lock`]).
#[derive(Debug)]
pub struct DestinationLock {
    _held: Vec<fs::File>,
}

fn busy(folder: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another ferry run is writing into {} (another plan, or a task whose destination holds this one or lies inside it)",
            folder.display()
        ),
    )
}

/// Nanoseconds since the epoch, saturating: a time past 2262 (or before 1677) does not
/// fit an `i64` of nanoseconds, and must neither wrap nor panic (finding 16). Both sides
/// of a comparison saturate alike, so such a file is still recognised as unchanged.
fn time_ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn record_time_ns(record: &Record) -> i64 {
    time_ns(record.mtime_sec, i64::from(record.mtime_nsec))
}

fn stat_time_ns(st: &rustix::fs::Stat) -> i64 {
    time_ns(st.st_mtime, st.st_mtime_nsec as i64)
}

/// A record's stamp where the destination has the record's own size and time, as the
/// item `dest_id`.
fn same_stamp(record: &Record, hash: [u8; 32], dest_id: u64) -> Stamp {
    Stamp {
        hash,
        dest_mtime_ns: record_time_ns(record),
        dest_id,
        source: source_of(record),
    }
}

/// A file record's size and modification time, as the source had them when read.
fn source_of(record: &Record) -> Option<(u64, i128)> {
    // In i128, as the scan keeps it: a time after 2262 does not fit an i64 of ns.
    let mtime_ns = i128::from(record.mtime_sec) * 1_000_000_000 + i128::from(record.mtime_nsec);
    (record.kind == KIND_FILE).then_some((record.size, mtime_ns))
}

/// The inode of the destination's entry `name` in `dir` (0 when it cannot be read).
fn inode_at(dir: &OwnedFd, name: &[u8]) -> u64 {
    rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
        .map_or(0, |st| st.st_ino)
}

/// Creates `root` and its missing parents as 0755 folders: the process's umask keeps
/// ferry's own files private, but the destination's folders are the users'.
fn create_public_dirs(root: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut missing = Vec::new();
    let mut at = Some(root);
    while let Some(dir) = at {
        if fs::symlink_metadata(dir).is_ok() {
            break;
        }
        missing.push(dir);
        at = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

impl Destination {
    /// Opens (creating it if needed) the destination root.
    pub fn open(
        root: &Path,
        preserve: Preserve,
        conflicts: Conflicts,
        verify: Verify,
    ) -> io::Result<Destination> {
        let root_fresh = !root.exists();
        create_public_dirs(root)?;
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Destination {
            root: root.to_path_buf(),
            fd,
            carry: package::xattr::Carry::of(&preserve),
            preserve,
            conflicts,
            verify,
            made: Mutex::new(std::collections::HashSet::new()),
            root_fresh,
            folders: Mutex::new(Vec::new()),
            assembling: Mutex::new(std::collections::HashMap::new()),
            index: None,
            max_package_data: u64::MAX,
            notes: Mutex::new(Vec::new()),
            narrowed: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Locks the destination against every other ferry run for as long as the lock is
    /// held: the root exclusively, every folder above it shared, so that another run
    /// writing the same folder, one inside it or one around it is refused at once
    /// rather than interleaved with this one (finding 2). `flock` locks: on a network
    /// filesystem that does not pass them on, runs on other machines are not seen.
    ///
    /// The shards of one run write the same destination at once: they hold the root
    /// `shared`, which still keeps out a run that is not a shard (it takes the root, or
    /// a folder around it, exclusively), though not another run's shards.
    pub fn lock(&self, shared: bool) -> Result<DestinationLock, io::Error> {
        let mut held = Vec::new();
        // The folders above are those of the real path: a destination reached through
        // a symlink is still inside the folder the link leads into. (A bind mount is
        // another path to the same folders, and is not seen.)
        let real = fs::canonicalize(&self.root)?;
        let root = fs::File::open(&real)?;
        let taken = if shared {
            root.try_lock_shared()
        } else {
            root.try_lock()
        };
        match taken {
            Ok(()) => held.push(root),
            Err(fs::TryLockError::WouldBlock) => return Err(busy(&self.root)),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        for above in real.ancestors().skip(1) {
            let Ok(folder) = fs::File::open(above) else {
                continue;
            };
            match folder.try_lock_shared() {
                Ok(()) => held.push(folder),
                Err(fs::TryLockError::WouldBlock) => return Err(busy(above)),
                // A folder that cannot be locked (no permission) is passed over.
                Err(fs::TryLockError::Error(_)) => {}
            }
        }
        Ok(DestinationLock { _held: held })
    }

    /// Caps the data one package may carry (see `max_package_data`).
    pub fn with_package_limit(mut self, max_size: u64, attempts: u32) -> Destination {
        self.max_package_data = max_size.saturating_mul(u64::from(attempts.max(1)));
        self
    }

    /// Lets updates replace the files `index` says ferry put there, as long as nobody
    /// changed them since.
    pub fn with_index(mut self, index: Arc<crate::state::index::Index>) -> Destination {
        self.index = Some(index);
        self
    }

    /// What the index knows of the item at `path`.
    fn known(&self, path: &Path) -> Option<&crate::state::index::Indexed> {
        self.index
            .as_ref()
            .and_then(|index| index.items.get(path.as_os_str().as_bytes()))
    }

    /// What to do with a destination entry that is not the source's file (see
    /// [`decide::differs`]): `None` replaces it, or the outcome that keeps it.
    fn differs(&self, path: &Path, found: Found, why: Why) -> Option<Outcome> {
        kept(
            path,
            decide::differs(found, self.known(path), self.conflicts, why),
        )
    }

    /// The outcome of a new or changed file, as far as the destination decides it
    /// before the data is read: `Ok(None)` writes it, `Err(())` compares the content
    /// once read (`verify: all`).
    fn verdict(
        &self,
        path: &Path,
        found: Option<Found>,
        record: &Record,
    ) -> Result<Option<Outcome>, ()> {
        let source = decide::Source {
            size: record.size,
            mtime_ns: i128::from(record_time_ns(record)),
        };
        match decide::file(found, source, self.known(path), self.conflicts, self.verify) {
            Verdict::CompareContent => Err(()),
            Verdict::Unchanged => Ok(Some(Outcome::Unchanged {
                path: path.to_path_buf(),
                stamp: same_stamp(record, [0; 32], found.map_or(0, |f| f.ino)),
            })),
            verdict => Ok(kept(path, verdict)),
        }
    }

    /// The stamp of a file just given its metadata: the time the filesystem actually
    /// keeps (a coarse one rounds the source's).
    fn stamp(&self, fd: impl AsFd, record: &Record, hash: [u8; 32]) -> Stamp {
        let st = rustix::fs::fstat(&fd).ok();
        Stamp {
            hash,
            dest_mtime_ns: st.as_ref().map_or(record_time_ns(record), stat_time_ns),
            dest_id: st.map_or(0, |st| st.st_ino),
            source: source_of(record),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the folder that holds `parts`' last component, creating missing folders
    /// (mode 0700 until the task ends), never following a symlink.
    fn parent(&self, parts: &[&[u8]], created: &mut Vec<Created>) -> io::Result<OwnedFd> {
        self.parent_fresh(parts, created).map(|(fd, _)| fd)
    }

    /// [`Destination::parent`], and whether that folder was created by this run (so it
    /// holds nothing this run did not put there).
    fn parent_fresh(
        &self,
        parts: &[&[u8]],
        created: &mut Vec<Created>,
    ) -> io::Result<(OwnedFd, bool)> {
        let mut fresh = parts.len() == 1 && self.root_fresh;
        let mut dir = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let mut at = PathBuf::new();
        for part in &parts[..parts.len() - 1] {
            let name = OsStr::from_bytes(part);
            at.push(name);
            // Held across the creation: another worker that finds the folder there
            // must also find it recorded as this run's.
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    created.push(Created::new(&dir, name));
                    made.insert(at.clone());
                    fresh = true;
                }
                Err(rustix::io::Errno::EXIST) => fresh = made.contains(&at),
                Err(e) => return Err(errno(e)),
            }
            drop(made);
            dir = rustix::fs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| {
                if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} in the destination is a symlink or a file, not a folder; not written through",
                            crate::shown::escape_path(&at)
                        ),
                    )
                } else {
                    errno(e)
                }
            })?;
        }
        Ok((dir, fresh))
    }

    /// Removes the item at `path` (a source deletion mirrored), if it is still what
    /// ferry put there (`known`); a folder only when empty. Never follows a symlink on
    /// the way.
    pub fn remove(&self, path: &Path, known: &crate::state::index::Indexed) -> Removal {
        let bytes = path.as_os_str().as_bytes();
        let Ok(parts) = safe_components(bytes) else {
            return Removal::Failed("unsafe path".into());
        };
        let mut dir: Option<OwnedFd> = None;
        for part in &parts[..parts.len() - 1] {
            let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            match rustix::fs::openat(
                at,
                OsStr::from_bytes(part),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => dir = Some(fd),
                Err(rustix::io::Errno::NOENT) => return Removal::Gone,
                Err(e) => return Removal::Failed(errno(e).to_string()),
            }
        }
        let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
        let name = OsStr::from_bytes(parts[parts.len() - 1]);
        let st = match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Removal::Gone,
            Err(e) => return Removal::Failed(errno(e).to_string()),
        };
        let is_dir =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if known.kind == KIND_FOLDER {
            if !is_dir {
                return Removal::Changed;
            }
            return match rustix::fs::unlinkat(at, name, AtFlags::REMOVEDIR) {
                Ok(()) => Removal::Removed,
                Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => Removal::Changed,
                Err(e) => Removal::Failed(errno(e).to_string()),
            };
        }
        let mtime_ns = stat_time_ns(&st);
        let regular =
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
        if is_dir
            || (known.kind == KIND_FILE
                && (!regular || st.st_size as u64 != known.size || mtime_ns != known.dest_mtime_ns))
        {
            return Removal::Changed;
        }
        match rustix::fs::unlinkat(at, name, AtFlags::empty()) {
            Ok(()) => Removal::Removed,
            Err(rustix::io::Errno::NOENT) => Removal::Gone,
            Err(e) => Removal::Failed(errno(e).to_string()),
        }
    }
}

/// A folder this package created, to remove again (when empty) if the package is
/// refused: by its parent's handle, never by a path that a swapped folder could redirect
/// (finding 16).
struct Created {
    parent: Option<OwnedFd>,
    name: std::ffi::OsString,
}

impl Created {
    fn new(parent: &OwnedFd, name: &OsStr) -> Created {
        Created {
            parent: rustix::io::fcntl_dupfd_cloexec(parent, 0).ok(),
            name: name.to_os_string(),
        }
    }
}

/// The code of a failed write: a full disk (or quota) stops the run, any other
/// failure is the item's alone.
pub fn write_code(e: &io::Error) -> &'static str {
    if disk_full(e) {
        DISK_FULL
    } else {
        FailureCode::WriteFailed.as_str()
    }
}

/// The code of an item the destination refused: a folder on its way is a symlink or a
/// file. Nothing is written through it.
pub const DESTINATION_REFUSED: &str = FailureCode::DestinationRefused.as_str();

/// The code of a destination that is full: the run stops and the round stays open.
pub const DISK_FULL: &str = FailureCode::DiskFull.as_str();

/// Whether an error says the disk (or the account's quota) is full.
pub fn disk_full(e: &io::Error) -> bool {
    let errno = e.raw_os_error();
    errno == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || errno == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

/// Reads a record's data from the stream and writes it to `out` (if any): a dense
/// record's at the record's offset, a sparse file's extents each at its own (what lies
/// between stays a hole). With `hash`, returns the data's hash: BLAKE3 of a dense
/// record's data, the sparse hash of a sparse file's whole content.
pub(super) fn copy_data<R: Read>(
    stream: &mut R,
    record: &Record,
    out: Option<&fs::File>,
    buf: &mut [u8],
    write_error: &mut Option<io::Error>,
    hash: bool,
) -> Result<Option<[u8; 32]>, Refused> {
    let sparse = record.extents.is_some();
    let mut hasher = hash.then(|| package::sparse::Whole::new(sparse));
    let dense = [package::Extent {
        offset: record.offset,
        len: record.len,
    }];
    let ranges = record.extents.as_deref().unwrap_or(&dense);
    for range in ranges {
        let mut left = range.len;
        let mut at = range.offset;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            stream.read_exact(&mut buf[..want]).map_err(|e| {
                Refused::Stream(if e.kind() == io::ErrorKind::UnexpectedEof {
                    StreamError::Truncated
                } else {
                    StreamError::Io(e)
                })
            })?;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update_at(at, &buf[..want]);
            }
            if let Some(file) = out
                && write_error.is_none()
                && let Err(e) = file.write_all_at(&buf[..want], at)
            {
                *write_error = Some(e);
            }
            at += want as u64;
            left -= want as u64;
        }
    }
    Ok(hasher.map(|h| h.finalize(record.size)))
}

/// The destination's entry at `name`, if any.
fn existing(dir: &OwnedFd, name: &[u8]) -> Option<Found> {
    let st = rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some(Found {
        regular: rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::RegularFile,
        size: st.st_size as u64,
        mtime_ns: stat_time_ns(&st),
        ino: st.st_ino,
    })
}

/// Whether the destination's entry is the record's file by size and time.
fn same_as(found: Found, record: &Record) -> bool {
    decide::same(
        found,
        decide::Source {
            size: record.size,
            mtime_ns: i128::from(record_time_ns(record)),
        },
    )
}

/// Whether the destination's file at `name` has the content of hash `expected`
/// (`verify: all`), plain or sparse.
fn existing_matches(
    dir: &OwnedFd,
    name: &[u8],
    size: u64,
    expected: &[u8; 32],
    buf: &mut [u8],
) -> io::Result<bool> {
    let fd = rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = fs::File::from(fd);
    if file.metadata()?.len() != size {
        return Ok(false);
    }
    package::sparse::matches(&file, size, expected, buf)
}

/// The outcome of a verdict that keeps the destination's entry; `None` (write or
/// replace) otherwise.
fn kept(path: &Path, verdict: Verdict) -> Option<Outcome> {
    let Verdict::Keep(reason) = verdict else {
        return None;
    };
    Some(match reason {
        KeepReason::SkipExisting => Outcome::Failed {
            path: path.to_path_buf(),
            code: FailureCode::SkippedExisting.as_str(),
            message: "the destination already has this file (`conflicts: skip-existing`)".into(),
        },
        KeepReason::Changed(why) => Outcome::Failed {
            path: path.to_path_buf(),
            code: FailureCode::DestinationChanged.as_str(),
            message: format!(
                "the destination has a different file here ({}); it was kept (`conflicts: keep-destination-changes`)",
                why.text()
            ),
        },
    })
}

#[cfg(test)]
mod tests;
