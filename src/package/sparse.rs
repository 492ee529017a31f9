//! Sparse files: where their data is (`SEEK_DATA`, `SEEK_HOLE`), and a hash of their
//! whole logical content that costs nothing for the holes.
//!
//! A 1 GiB file holding 4 KiB of data must not cost a pass of BLAKE3 over a gigabyte of
//! zeros, at either end. Its hash, the *sparse hash*, is defined on the logical content
//! alone, whatever the holes are on either disk: cut the content into 4 KiB blocks (the
//! last may be shorter); the blocks that are not all zeros are the *data*. Then
//!
//! ```text
//! sparse hash = BLAKE3 derive_key("ferry 2026-12-01 sparse file hash v1",
//!                 size u64 ‖ BLAKE3(index u64 of each data block, in order)
//!                          ‖ BLAKE3(the data blocks, one after the other))
//! ```
//!
//! A file without holes is hashed with plain BLAKE3, as always. The importer and
//! `ferry verify` check a file against a hash of either kind ([`matches`]), so a sparse
//! source written where the destination cannot keep holes still verifies.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt as _;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use super::Extent;

/// The block of the sparse hash.
pub const BLOCK: usize = 4096;
const CONTEXT: &str = "ferry 2026-12-01 sparse file hash v1";

/// Whether `file` (of `size` bytes) has a hole. A filesystem that cannot say has none.
pub fn has_holes(file: &fs::File, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    matches!(rustix::fs::seek(file, SeekFrom::Hole(0)), Ok(hole) if hole < size)
}

/// The data extents of `file` within `start .. end`, clipped to it.
pub fn extents(file: &fs::File, start: u64, end: u64) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let data = match rustix::fs::seek(file, SeekFrom::Data(at)) {
            Ok(data) => data,
            // No data after `at`.
            Err(Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(hole) => hole,
            Err(Errno::NXIO) => end,
            Err(e) => return Err(e.into()),
        };
        let stop = hole.min(end);
        if stop > data {
            out.push(Extent {
                offset: data,
                len: stop - data,
            });
        }
        at = stop.max(data + 1);
    }
    Ok(out)
}

fn is_zero(bytes: &[u8]) -> bool {
    let (chunks, rest) = bytes.as_chunks::<16>();
    chunks.iter().all(|c| u128::from_ne_bytes(*c) == 0) && rest.iter().all(|&b| b == 0)
}

/// The sparse hash, fed with data at increasing offsets; what lies between is zeros.
#[derive(Clone, Debug)]
pub struct SparseHasher {
    indexes: blake3::Hasher,
    data: blake3::Hasher,
    /// The block under way, zeros where nothing was fed.
    block: Box<[u8; BLOCK]>,
    /// Bytes of the content so far (data and zeros).
    pos: u64,
}

impl Default for SparseHasher {
    fn default() -> SparseHasher {
        SparseHasher {
            indexes: blake3::Hasher::new(),
            data: blake3::Hasher::new(),
            block: Box::new([0; BLOCK]),
            pos: 0,
        }
    }
}

impl SparseHasher {
    fn fill(&self) -> usize {
        (self.pos % BLOCK as u64) as usize
    }

    /// Ends the block under way, `len` bytes long.
    fn flush(&mut self, len: usize) {
        if !is_zero(&self.block[..len]) {
            let index = (self.pos - 1) / BLOCK as u64;
            self.indexes.update(&index.to_le_bytes());
            self.data.update(&self.block[..len]);
        }
        self.block.fill(0);
    }

    /// Zeros up to `offset`.
    fn skip_to(&mut self, offset: u64) {
        if offset <= self.pos {
            return;
        }
        let fill = self.fill();
        let block_end = self.pos - fill as u64 + BLOCK as u64;
        if fill > 0 && offset >= block_end {
            self.pos = block_end;
            self.flush(BLOCK);
        }
        self.pos = offset;
    }

    /// Feeds `bytes`, the content at `offset` (at or after everything fed so far).
    pub fn update_at(&mut self, offset: u64, mut bytes: &[u8]) {
        debug_assert!(offset >= self.pos, "sparse hash fed backwards");
        self.skip_to(offset);
        // The block under way first.
        let fill = self.fill();
        if fill > 0 {
            let n = (BLOCK - fill).min(bytes.len());
            self.block[fill..fill + n].copy_from_slice(&bytes[..n]);
            self.pos += n as u64;
            bytes = &bytes[n..];
            if fill + n == BLOCK {
                self.flush(BLOCK);
            }
        }
        // Whole blocks straight from `bytes`, a run of data blocks in one update.
        while bytes.len() >= BLOCK {
            let first = self.pos / BLOCK as u64;
            let mut run = 0;
            while run + BLOCK <= bytes.len() && !is_zero(&bytes[run..run + BLOCK]) {
                let index = first + (run / BLOCK) as u64;
                self.indexes.update(&index.to_le_bytes());
                run += BLOCK;
            }
            if run > 0 {
                self.data.update(&bytes[..run]);
            } else {
                run = BLOCK;
            }
            self.pos += run as u64;
            bytes = &bytes[run..];
        }
        if !bytes.is_empty() {
            self.block[..bytes.len()].copy_from_slice(bytes);
            self.pos += bytes.len() as u64;
        }
    }

    /// The hash of a file of `size` bytes (zeros after what was fed).
    pub fn finalize(&self, size: u64) -> [u8; 32] {
        let mut done = self.clone();
        done.skip_to(size);
        let fill = done.fill();
        if fill > 0 {
            done.flush(fill);
        }
        let mut h = blake3::Hasher::new_derive_key(CONTEXT);
        h.update(&size.to_le_bytes());
        h.update(done.indexes.finalize().as_bytes());
        h.update(done.data.finalize().as_bytes());
        *h.finalize().as_bytes()
    }
}

/// A file's hash as ferry computes it while reading the file: plain BLAKE3, or the
/// sparse hash of a file with holes.
#[derive(Clone, Debug)]
pub enum Whole {
    Plain(Box<blake3::Hasher>),
    Sparse(Box<SparseHasher>),
}

impl Whole {
    pub fn new(sparse: bool) -> Whole {
        if sparse {
            Whole::Sparse(Box::default())
        } else {
            Whole::Plain(Box::default())
        }
    }

    /// Feeds the content at `offset`; a plain hash must be fed without gaps.
    pub fn update_at(&mut self, offset: u64, bytes: &[u8]) {
        match self {
            Whole::Plain(h) => {
                h.update(bytes);
            }
            Whole::Sparse(h) => h.update_at(offset, bytes),
        }
    }

    pub fn finalize(&self, size: u64) -> [u8; 32] {
        match self {
            Whole::Plain(h) => *h.finalize().as_bytes(),
            Whole::Sparse(h) => h.finalize(size),
        }
    }
}

/// Reads `len` bytes of `file` at `offset` into `hash`; false when the file ends first.
fn read_into(
    file: &fs::File,
    offset: u64,
    len: u64,
    hash: &mut Whole,
    buf: &mut [u8],
) -> io::Result<bool> {
    let mut at = 0u64;
    while at < len {
        let want = buf.len().min((len - at) as usize);
        let n = match file.read_at(&mut buf[..want], offset + at) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        hash.update_at(offset + at, &buf[..n]);
        at += n as u64;
    }
    Ok(true)
}

/// The hash of the first `size` bytes of `file`, read from disk: plain or sparse (only
/// the data extents are read). An error when the file is shorter.
pub fn hash_file(file: &fs::File, size: u64, sparse: bool, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut hash = Whole::new(sparse);
    let ranges = if sparse {
        extents(file, 0, size)?
    } else {
        vec![Extent {
            offset: 0,
            len: size,
        }]
    };
    for e in ranges {
        if !read_into(file, e.offset, e.len, &mut hash, buf)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than the source's",
            ));
        }
    }
    if sparse && file.metadata()?.len() < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file is shorter than the source's",
        ));
    }
    Ok(hash.finalize(size))
}

/// Whether the first `size` bytes of `file` have the hash `expected`, plain or sparse:
/// the kind the file's own layout suggests is tried first, the other only when it
/// does not match.
pub fn matches(
    file: &fs::File,
    size: u64,
    expected: &[u8; 32],
    buf: &mut [u8],
) -> io::Result<bool> {
    let holes = has_holes(file, size);
    if hash_file(file, size, holes, buf)? == *expected {
        return Ok(true);
    }
    Ok(hash_file(file, size, !holes, buf)? == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse hash, computed the slow way: block by block over the whole content.
    fn reference(content: &[u8]) -> [u8; 32] {
        let mut indexes = blake3::Hasher::new();
        let mut data = blake3::Hasher::new();
        for (i, block) in content.chunks(BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                indexes.update(&(i as u64).to_le_bytes());
                data.update(block);
            }
        }
        let mut h = blake3::Hasher::new_derive_key(CONTEXT);
        h.update(&(content.len() as u64).to_le_bytes());
        h.update(indexes.finalize().as_bytes());
        h.update(data.finalize().as_bytes());
        *h.finalize().as_bytes()
    }

    #[test]
    fn the_sparse_hash_is_the_contents_whatever_the_pieces() {
        // Content with data, zeros and holes at awkward places.
        let mut content = vec![0u8; 5 * BLOCK + 100];
        content[10] = 1;
        content[BLOCK * 2 + 4095] = 2;
        content[BLOCK * 3..BLOCK * 3 + 5000].fill(7);
        content[5 * BLOCK + 99] = 9;
        let want = reference(&content);
        // Fed whole, fed in pieces of every size, and fed only where it is not zero.
        let mut h = SparseHasher::default();
        h.update_at(0, &content);
        assert_eq!(h.finalize(content.len() as u64), want);
        for piece in [1, 7, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK] {
            let mut h = SparseHasher::default();
            for (i, chunk) in content.chunks(piece).enumerate() {
                h.update_at((i * piece) as u64, chunk);
            }
            assert_eq!(h.finalize(content.len() as u64), want, "pieces of {piece}");
        }
        let mut h = SparseHasher::default();
        for (i, &b) in content.iter().enumerate() {
            if b != 0 {
                h.update_at(i as u64, &[b]);
            }
        }
        assert_eq!(h.finalize(content.len() as u64), want);
        // Another length is another hash, even of zeros.
        assert_ne!(h.finalize(content.len() as u64 + 1), want);
        assert_ne!(reference(&[0; 10]), reference(&[0; 11]));
    }

    #[test]
    fn a_file_with_holes_is_read_only_where_it_has_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let size = 64 << 20;
        file.set_len(size).unwrap();
        file.write_all_at(b"middle", 32 << 20).unwrap();
        let mut content = vec![0u8; size as usize];
        content[32 << 20..(32 << 20) + 6].copy_from_slice(b"middle");
        let mut buf = vec![0u8; 1 << 20];
        let sparse = hash_file(&file, size, true, &mut buf).unwrap();
        assert_eq!(sparse, reference(&content));
        let plain = *blake3::hash(&content).as_bytes();
        assert!(matches(&file, size, &sparse, &mut buf).unwrap());
        assert!(matches(&file, size, &plain, &mut buf).unwrap());
        assert!(!matches(&file, size, &[0; 32], &mut buf).unwrap());
        if has_holes(&file, size) {
            let found = extents(&file, 0, size).unwrap();
            assert!(
                found.iter().map(|e| e.len).sum::<u64>() < size / 2,
                "{found:?}"
            );
            assert!(
                found
                    .iter()
                    .any(|e| e.offset <= 32 << 20 && e.offset + e.len > 32 << 20)
            );
        }
    }
}
