//! Direct mode (`staging: {kind: none}`): the records of a package made from the source's
//! files as they are imported, with nothing staged. The importer is the same: every
//! path checked, each file written to a temporary name beside its final one, synced
//! with the rest of its package, then renamed. With `verify` (the default) a file's
//! bytes are read, hashed and written in one pass, as a staged import writes what it
//! hashed. Without it, `copy_file_range` moves them (the kernel copies, or clones,
//! without the bytes passing through ferry; plain reads and writes where it cannot), and
//! the hash recorded for the index is read back from what was written: checking a copy
//! made out of sight would take reading both sides again.

use std::os::unix::fs::FileExt as _;

use super::records::Records;
use super::stream::{Batch, import_records};
use super::*;
use crate::package::packer::{Item, ItemKind};
use crate::package::sparse::Whole;
use crate::package::xattr::Carry;
use crate::package::{Extent, Packed, Trailer};

/// Items of a batch that could not be read at all, by their index in it, with why.
pub type Unread = Vec<(usize, Packed)>;

/// Files copied straight from the source into the destination, waiting under temporary
/// names until the batch is committed (or abandoned, leaving nothing).
pub struct Copies<'a> {
    batch: Batch<'a>,
}

impl std::fmt::Debug for Copies<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copies").finish_non_exhaustive()
    }
}

impl<'a> Copies<'a> {
    pub fn new(dest: &'a Destination) -> Copies<'a> {
        Copies {
            batch: Batch::new(dest),
        }
    }

    /// Copies `items` into the batch: the outcomes settled now (kept, failed, folders),
    /// and the items that could not be read at all. After an error the batch can only
    /// be abandoned.
    pub fn read(
        &mut self,
        items: &[Arc<Item>],
        carry: Carry,
    ) -> (Result<Vec<Outcome>, Refused>, Unread) {
        let mut source = Direct {
            work: Work::Files { items, next: 0 },
            carry,
            failed: Vec::new(),
            open: None,
            plain: false,
            unreadable: Vec::new(),
        };
        let mut outcomes = self.batch.read(&mut source);
        if let Ok(outcomes) = outcomes.as_mut() {
            unreadable_failed(outcomes, &source.unreadable);
        }
        (outcomes, source.failed)
    }

    /// Puts every file of the batch in place, durably: their outcomes.
    pub fn commit(self) -> Vec<Outcome> {
        self.batch.commit()
    }

    /// Leaves nothing of the batch at the destination.
    pub fn abandon(self) {
        self.batch.abandon();
    }
}

/// One part of a file in parts, straight from the source into the file's assembly.
#[derive(Debug)]
pub struct Part<'a> {
    pub item: &'a Item,
    pub file: &'a fs::File,
    pub at_open: &'a fs::Metadata,
    pub part: u32,
    pub parts: u32,
    pub part_size: u64,
    /// The whole file's hash, over its parts so far: of the bytes as read and written
    /// with `verify`, else of the assembly's, read back.
    pub whole: &'a mut Whole,
    pub verify: bool,
}

/// Imports one part of a file straight from the source; `false` with the outcomes when
/// the file changed while the part was read (the importer has discarded it).
pub fn import_part(
    dest: &Destination,
    part: Part<'_>,
    carry: Carry,
) -> (Result<Vec<Outcome>, Refused>, bool) {
    let mut source = Direct {
        work: Work::Part {
            part,
            given: false,
            ok: true,
        },
        carry,
        failed: Vec::new(),
        open: None,
        plain: false,
        unreadable: Vec::new(),
    };
    let mut outcomes = import_records(dest, &mut source);
    if let Ok(outcomes) = outcomes.as_mut() {
        unreadable_failed(outcomes, &source.unreadable);
    }
    let ok = match source.work {
        Work::Part { ok, .. } => ok,
        Work::Files { .. } => true,
    };
    (outcomes, ok)
}

enum Work<'a> {
    Files {
        items: &'a [Arc<Item>],
        next: usize,
    },
    Part {
        part: Part<'a>,
        /// Its record was given.
        given: bool,
        /// It held still and was read whole.
        ok: bool,
    },
}

/// The file whose record was given last, and what its data came to.
struct Open {
    file: fs::File,
    at_open: fs::Metadata,
    /// Its data ended before its size.
    short: bool,
    /// The hash of its data: as read and written, read back, or of the source.
    hash: [u8; 32],
}

struct Direct<'a> {
    work: Work<'a>,
    carry: Carry,
    /// Items that made no record, by index, and why.
    failed: Unread,
    open: Option<Open>,
    /// The kernel cannot `copy_file_range` between these file systems: reads and writes.
    plain: bool,
    /// Records whose source could not be read while their data was copied: path, error.
    unreadable: Vec<(Vec<u8>, String)>,
}

impl Direct<'_> {
    /// The record of the next item of a batch that can be read.
    fn next_file(&mut self) -> Option<Record> {
        let Work::Files { items, next } = &mut self.work else {
            return None;
        };
        while let Some(item) = items.get(*next) {
            let index = *next;
            *next += 1;
            match record_of(item, self.carry) {
                Ok((record, open)) => {
                    self.open = open;
                    return Some(record);
                }
                Err(failed) => self.failed.push((index, failed)),
            }
        }
        None
    }
}

/// An item's record, with its file opened when its data travels.
fn record_of(item: &Item, carry: Carry) -> Result<(Record, Option<Open>), Packed> {
    let mut record = package::base_record(item);
    match &item.kind {
        ItemKind::Folder => {
            record.xattrs = package::link_xattrs(item, carry)?;
            Ok((record, None))
        }
        ItemKind::Symlink { target } => {
            record.kind = KIND_SYMLINK;
            record.target = target.as_bytes().to_vec();
            record.xattrs = package::link_xattrs(item, carry)?;
            Ok((record, None))
        }
        ItemKind::File => {
            if item.metadata_only {
                match package::metadata_record(item, record, carry)? {
                    package::Change::Metadata(metadata) => return Ok((metadata, None)),
                    package::Change::Content(whole) => record = whole,
                }
            }
            let (file, at_open) = package::open_checked(item)?;
            let record = package::file_record(record, &file, &at_open, carry)?;
            Ok((
                record,
                Some(Open {
                    file,
                    at_open,
                    short: false,
                    hash: [0; 32],
                }),
            ))
        }
    }
}

/// A part's record, as a staged run's package carries it.
fn part_record(p: &Part<'_>, carry: Carry) -> io::Result<Record> {
    package::part_record(
        p.item,
        (p.file, p.at_open),
        (p.part, p.parts, p.part_size),
        carry,
        matches!(p.whole, Whole::Sparse(_)),
    )
}

/// What went wrong in a copy: reading the source, or writing the destination (where
/// `copy_file_range` cannot tell, the destination: a full disk is the likely cause).
enum Fault {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `range` from `from` to the same offset of `to`. Without `hash`, by
/// `copy_file_range` unless `plain`, which is set when the kernel refuses it for these
/// file systems; where it fails (or copies nothing before the end), the rest of the
/// range is read and written, so that the error names the side it comes from. With
/// `hash`, the bytes are read, hashed and written: what is written is what was hashed.
/// False when the source ended early.
fn copy(
    from: &fs::File,
    to: &fs::File,
    range: &Extent,
    buf: &mut [u8],
    plain: &mut bool,
    mut hash: Option<&mut Whole>,
) -> Result<bool, Fault> {
    use rustix::io::Errno;
    let mut done = 0u64;
    let mut by_hand = *plain || hash.is_some();
    while done < range.len {
        let at = range.offset + done;
        // Small enough steps for `bandwidth.limit` to pace.
        let want = (range.len - done).min(8 << 20) as usize;
        if !by_hand {
            let (mut off_in, mut off_out) = (at, at);
            match rustix::fs::copy_file_range(from, Some(&mut off_in), to, Some(&mut off_out), want)
            {
                Ok(0) => by_hand = true,
                Ok(n) => {
                    crate::staging::throttle::pass(n);
                    done += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) => {
                    *plain = true;
                    by_hand = true;
                }
                Err(_) => by_hand = true,
            }
            continue;
        }
        let want = want.min(buf.len());
        let n = match from.read_at(&mut buf[..want], at) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Fault::Read(e)),
        };
        if let Some(hash) = hash.as_deref_mut() {
            hash.update_at(at, &buf[..n]);
        }
        crate::staging::throttle::pass(n);
        to.write_all_at(&buf[..n], at).map_err(Fault::Write)?;
        done += n as u64;
    }
    Ok(true)
}

/// Copies a record's data (the whole range, or a sparse file's extents) from `from`
/// into `out`, unless nothing is to be written or a write failed already (a failed
/// write is kept in `write_error`), and hashes it into `hash`:
/// - with `verify`, the bytes as they are read, then written: what is written is what
///   was hashed, as in a staged run;
/// - without, the kernel copies (`copy_file_range`), and what was written is read back;
/// - where nothing was written, the source's data.
///
/// False when the source ended early; an error when it could not be read.
#[expect(clippy::too_many_arguments, reason = "one record's every fact")]
fn copy_and_hash(
    from: &fs::File,
    record: &Record,
    out: Option<&fs::File>,
    write_error: &mut Option<io::Error>,
    verify: bool,
    hash: &mut Whole,
    buf: &mut [u8],
    plain: &mut bool,
) -> io::Result<bool> {
    let dense = [Extent {
        offset: record.offset,
        len: record.len,
    }];
    let ranges = record.extents.as_deref().unwrap_or(&dense);
    let mut whole = true;
    if let Some(out) = out
        && write_error.is_none()
    {
        let mut read_back = !verify;
        for range in ranges {
            match copy(from, out, range, buf, plain, verify.then_some(&mut *hash)) {
                Ok(full) => whole &= full,
                Err(Fault::Read(e)) => return Err(e),
                Err(Fault::Write(e)) => {
                    *write_error = Some(e);
                    // Nothing written is kept: the hash is of no use but to settle the
                    // record, and the source has it.
                    read_back = false;
                    break;
                }
            }
        }
        if read_back {
            for range in ranges {
                match package::hash_extent(out, range, hash, buf) {
                    Ok(full) => whole &= full,
                    Err(e) => {
                        *write_error = Some(e);
                        break;
                    }
                }
            }
        }
        return Ok(whole);
    }
    for range in ranges {
        whole &= package::hash_extent(from, range, hash, buf)?;
    }
    Ok(whole)
}

/// The outcomes of the records whose source could not be read while their data was
/// copied (the importer has discarded them as changed): failed as unreadable.
fn unreadable_failed(outcomes: &mut [Outcome], unreadable: &[(Vec<u8>, String)]) {
    if unreadable.is_empty() {
        return;
    }
    for outcome in outcomes {
        if let Outcome::Failed {
            path,
            code,
            message,
        } = outcome
            && let Some((_, e)) = unreadable
                .iter()
                .find(|(p, _)| p.as_slice() == path.as_os_str().as_bytes())
        {
            *code = FailureCode::ReadFailed.as_str();
            *message = format!("cannot read the file: {e}");
        }
    }
}

impl Records for Direct<'_> {
    fn record(&mut self, _seen: u32) -> Result<Option<Record>, Refused> {
        self.open = None;
        if let Work::Part { part, given, .. } = &mut self.work {
            if *given {
                return Ok(None);
            }
            *given = true;
            return part_record(part, self.carry)
                .map(Some)
                .map_err(|e| Refused::Stream(StreamError::Io(e)));
        }
        Ok(self.next_file())
    }

    fn data(
        &mut self,
        record: &Record,
        out: Option<&fs::File>,
        buf: &mut [u8],
        write_error: &mut Option<io::Error>,
        hash: bool,
    ) -> Result<Option<[u8; 32]>, Refused> {
        match &mut self.work {
            Work::Part { part, ok, .. } => {
                let copied = copy_and_hash(
                    part.file,
                    record,
                    out,
                    write_error,
                    part.verify,
                    part.whole,
                    buf,
                    &mut self.plain,
                );
                *ok = match copied {
                    Ok(whole) => whole,
                    Err(e) => {
                        self.unreadable.push((record.path.clone(), e.to_string()));
                        false
                    }
                };
                Ok(None)
            }
            Work::Files { .. } => {
                let Some(open) = self.open.as_mut() else {
                    return Ok(hash.then(|| Whole::new(false).finalize(0)));
                };
                // `hash` is the importer's `verify`.
                let mut hasher = Whole::new(record.extents.is_some());
                let copied = copy_and_hash(
                    &open.file,
                    record,
                    out,
                    write_error,
                    hash,
                    &mut hasher,
                    buf,
                    &mut self.plain,
                );
                open.short = match copied {
                    Ok(whole) => !whole,
                    Err(e) => {
                        self.unreadable.push((record.path.clone(), e.to_string()));
                        true
                    }
                };
                open.hash = hasher.finalize(record.size);
                Ok(hash.then_some(open.hash))
            }
        }
    }

    fn trailer(&mut self) -> Result<Trailer, Refused> {
        if let Work::Part { part, ok, .. } = &mut self.work {
            let size = part.at_open.len();
            let offset = u64::from(part.part) * part.part_size;
            let len = size.saturating_sub(offset).min(part.part_size);
            let last = part.part + 1 == part.parts;
            *ok = *ok && package::still(part.file, part.at_open) && (!last || size == offset + len);
            return Ok(Trailer {
                ok: *ok,
                part_hash: [0; 32],
                file_hash: if *ok && last {
                    part.whole.finalize(size)
                } else {
                    [0; 32]
                },
            });
        }
        Ok(match &self.open {
            Some(open) => {
                let ok = !open.short && package::still(&open.file, &open.at_open);
                Trailer {
                    ok,
                    part_hash: open.hash,
                    file_hash: if ok { open.hash } else { [0; 32] },
                }
            }
            None => Trailer {
                ok: true,
                part_hash: [0; 32],
                file_hash: [0; 32],
            },
        })
    }

    fn end(&mut self) -> Result<(), Refused> {
        Ok(())
    }

    fn bounded(&self) -> bool {
        false
    }
}
