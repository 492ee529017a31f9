//! The package stream's format (docs/FORMAT.md): records, their trailers, and the
//! stream's start and end, written and read. Reading treats the stream as hostile:
//! every length and range is checked before it is used.

use std::io::{self, Read, Write};

use super::xattr;

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
    use crate::package::sparse;

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
