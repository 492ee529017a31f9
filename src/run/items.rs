//! The round's item list: every item the scan found to migrate, written to a file in
//! the task's state as the scan goes and read back by the packer.
//!
//! The scan is fast and packaging is slow; between them this file keeps memory flat
//! however large the share (30 million items are a few gigabytes of paths, which must
//! not sit in memory), and fixes the order — and so the package numbers — of the round.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use crate::package::packer::{Item, ItemKind};
use crate::scan::Meta;

/// Version 2 of the list ("FERRYIT2") adds each item's change time and flags; a
/// version 1 list (a round an earlier ferry began) is still read.
const MAGIC: &[u8; 8] = b"FERRYIT2";
const MAGIC_V1: &[u8; 8] = b"FERRYITM";
/// Flag: the item's metadata alone changed (see `Item::metadata_only`).
const METADATA_ONLY: u8 = 1;

/// Writes the item list.
#[derive(Debug)]
pub struct ItemWriter {
    out: BufWriter<Hashing>,
    path: PathBuf,
    count: u64,
}

/// The list's file, hashed as it is written: the scan's checkpoint records the hash,
/// and a resumed run refuses a list that no longer matches it (finding 7).
#[derive(Debug)]
struct Hashing {
    file: fs::File,
    hasher: blake3::Hasher,
    len: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What a finished item list holds, to check it by later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub count: u64,
    pub len: u64,
    pub hash: [u8; 32],
}

/// Whether the item list at `path` is still the one written: its length and BLAKE3.
pub fn verify(path: &Path, len: u64, hash: &[u8; 32]) -> io::Result<bool> {
    let mut file = fs::File::open(path)?;
    if file.metadata()?.len() != len {
        return Ok(false);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file)?;
    Ok(hasher.finalize().as_bytes() == hash)
}

fn put_bytes<W: Write>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(bytes)
}

impl ItemWriter {
    pub fn create(path: &Path) -> io::Result<ItemWriter> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = fs::File::create(path)?;
        let mut out = BufWriter::with_capacity(
            1 << 20,
            Hashing {
                file,
                hasher: blake3::Hasher::new(),
                len: 0,
            },
        );
        out.write_all(MAGIC)?;
        Ok(ItemWriter {
            out,
            path: path.to_path_buf(),
            count: 0,
        })
    }

    pub fn push(&mut self, item: &Item) -> io::Result<()> {
        let (kind, target): (u8, &[u8]) = match &item.kind {
            ItemKind::File => (1, &[]),
            ItemKind::Folder => (2, &[]),
            ItemKind::Symlink { target } => (3, target.as_bytes()),
        };
        let m = &item.meta;
        let out = &mut self.out;
        out.write_all(&[kind])?;
        put_bytes(out, item.rel.as_os_str().as_bytes())?;
        put_bytes(out, item.source.as_os_str().as_bytes())?;
        put_bytes(out, target)?;
        out.write_all(&m.size.to_le_bytes())?;
        out.write_all(&m.mtime_ns.to_le_bytes())?;
        out.write_all(&m.mode.to_le_bytes())?;
        out.write_all(&m.uid.to_le_bytes())?;
        out.write_all(&m.gid.to_le_bytes())?;
        out.write_all(&m.dev.to_le_bytes())?;
        out.write_all(&m.ino.to_le_bytes())?;
        out.write_all(&m.nlink.to_le_bytes())?;
        out.write_all(&m.ctime_ns.to_le_bytes())?;
        out.write_all(&[if item.metadata_only { METADATA_ONLY } else { 0 }])?;
        self.count += 1;
        Ok(())
    }

    /// Syncs the list; returns how many items it holds, its length and hash.
    pub fn finish(self) -> io::Result<Written> {
        let hashing = self.out.into_inner().map_err(|e| e.into_error())?;
        hashing.file.sync_all()?;
        Ok(Written {
            count: self.count,
            len: hashing.len,
            hash: *hashing.hasher.finalize().as_bytes(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the item list back, in order.
#[derive(Debug)]
pub struct ItemReader {
    input: BufReader<fs::File>,
    /// A version 1 list: no change times or flags.
    v1: bool,
}

fn get<R: Read, const N: usize>(r: &mut R) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// A length-prefixed byte string. Nothing is allocated ahead for the length a damaged
/// list claims (up to 4 GiB: the `items` fuzz target ran out of memory on one): the
/// bytes are read as they come, and too few of them is an error.
fn get_bytes<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = u32::from_le_bytes(get(r)?);
    let mut b = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut b)?;
    if b.len() != len as usize {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(b)
}

impl ItemReader {
    pub fn open(path: &Path) -> io::Result<ItemReader> {
        let mut input = BufReader::with_capacity(1 << 20, fs::File::open(path)?);
        let magic = get::<_, 8>(&mut input)?;
        if &magic != MAGIC && &magic != MAGIC_V1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a ferry item list", path.display()),
            ));
        }
        Ok(ItemReader {
            input,
            v1: &magic == MAGIC_V1,
        })
    }

    fn read_one(&mut self, kind: u8) -> io::Result<Item> {
        let r = &mut self.input;
        let rel = PathBuf::from(OsString::from_vec(get_bytes(r)?));
        let source = PathBuf::from(OsString::from_vec(get_bytes(r)?));
        let target = OsString::from_vec(get_bytes(r)?);
        let mut meta = Meta {
            size: u64::from_le_bytes(get(r)?),
            mtime_ns: i128::from_le_bytes(get(r)?),
            birth_ns: None,
            mode: u32::from_le_bytes(get(r)?),
            uid: u32::from_le_bytes(get(r)?),
            gid: u32::from_le_bytes(get(r)?),
            dev: u64::from_le_bytes(get(r)?),
            ino: u64::from_le_bytes(get(r)?),
            nlink: u64::from_le_bytes(get(r)?),
            allocated: 0,
            ctime_ns: 0,
        };
        let mut metadata_only = false;
        if !self.v1 {
            meta.ctime_ns = i128::from_le_bytes(get(r)?);
            let [flags] = get::<_, 1>(r)?;
            if flags & !METADATA_ONLY != 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad item flags"));
            }
            metadata_only = flags & METADATA_ONLY != 0;
        }
        let kind = match kind {
            1 => ItemKind::File,
            2 => ItemKind::Folder,
            3 => ItemKind::Symlink { target },
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "bad item kind")),
        };
        Ok(Item {
            rel,
            source,
            kind,
            meta,
            metadata_only,
        })
    }
}

impl Iterator for ItemReader {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<io::Result<Item>> {
        let mut kind = [0u8; 1];
        match self.input.read(&mut kind) {
            Ok(0) => None,
            Ok(_) => Some(self.read_one(kind[0])),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_with_byte_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r/items");
        let items = vec![
            Item {
                rel: PathBuf::from(OsString::from_vec(b"a/\xff\n".to_vec())),
                source: PathBuf::from("/src/a/x"),
                kind: ItemKind::File,
                meta: Meta {
                    size: 5,
                    mtime_ns: -3,
                    mode: 0o100644,
                    ctime_ns: 9,
                    ..Meta::default()
                },
                metadata_only: true,
            },
            Item {
                rel: PathBuf::from("l"),
                source: PathBuf::from("/src/l"),
                kind: ItemKind::Symlink {
                    target: OsString::from("../t"),
                },
                meta: Meta::default(),
                metadata_only: false,
            },
        ];
        let mut w = ItemWriter::create(&path).unwrap();
        for item in &items {
            w.push(item).unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(written.count, 2);
        assert!(verify(&path, written.len, &written.hash).unwrap());
        let back: Vec<Item> = ItemReader::open(&path)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, items);
    }
}
