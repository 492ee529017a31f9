//! The envelope: how one staged object is encrypted and authenticated. The byte layout
//! is in docs/FORMAT.md, with a frozen test vector below.
//!
//! AES-256-CBC alone is malleable and says nothing when bytes are changed, so it is
//! wrapped in encrypt-then-MAC: the payload is cut into segments, each encrypted under
//! a fresh random IV with PKCS#7 padding and tagged with keyed BLAKE3 over the header,
//! the segment's index, whether it is the last, its IV, length and ciphertext. The
//! header binds the format, the container, the package, the key, the payload's length
//! and the expiry, and carries a tag of its own. The reader checks the header tag before
//! anything else and each segment's tag before decrypting it, so no unauthenticated
//! byte is ever decrypted, let alone used; truncation, extension, reordering and splicing
//! between packages all fail a tag. Every such failure is the same public error.

use std::io::{self, Read, Write};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt as _, KeyIvInit as _};

use super::{ContainerKey, RandomError, Subkeys, random};

#[cfg(test)]
type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

pub const MAGIC: &[u8; 8] = b"FERRYENC";
pub const FORMAT_VERSION: u8 = 1;
/// AES-256-CBC + PKCS#7, keyed-BLAKE3 tags, BLAKE3 `derive_key` subkeys.
pub const ALG_ID: u8 = 1;
pub const KIND_PACKAGE: u8 = 1;
/// Flag: the payload is zstd-compressed.
pub const FLAG_ZSTD: u8 = 1;
/// Payload bytes per segment.
pub const SEGMENT_SIZE: u32 = 1 << 20;
const MAX_SEGMENT_SIZE: u32 = 16 << 20;
/// Bytes of the header that the tags cover.
pub const HEADER_LEN: usize = 112;
pub const TAG_LEN: usize = 32;
const IV_LEN: usize = 16;
const BLOCK: usize = 16;

/// What a sealed object says about itself (all of it authenticated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub segment_size: u32,
    pub container_id: [u8; 16],
    pub key_id: [u8; 16],
    pub package_id: u64,
    pub salt: [u8; 32],
    pub payload_len: u64,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8] = FORMAT_VERSION;
        h[9] = ALG_ID;
        h[10] = KIND_PACKAGE;
        h[11] = self.flags;
        h[12..16].copy_from_slice(&self.segment_size.to_le_bytes());
        h[16..32].copy_from_slice(&self.container_id);
        h[32..48].copy_from_slice(&self.key_id);
        h[48..56].copy_from_slice(&self.package_id.to_le_bytes());
        h[56..88].copy_from_slice(&self.salt);
        h[88..96].copy_from_slice(&self.payload_len.to_le_bytes());
        h[96..104].copy_from_slice(&self.created_at.to_le_bytes());
        h[104..112].copy_from_slice(&self.expires_at.to_le_bytes());
        h
    }

    /// Parses the fields; `None` for anything this version does not read.
    fn decode(h: &[u8; HEADER_LEN]) -> Option<Header> {
        let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or_default());
        if &h[0..8] != MAGIC
            || h[8] != FORMAT_VERSION
            || h[9] != ALG_ID
            || h[10] != KIND_PACKAGE
            || h[11] & !FLAG_ZSTD != 0
        {
            return None;
        }
        let segment_size = u32_at(12);
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE || segment_size % BLOCK as u32 != 0
        {
            return None;
        }
        let mut header = Header {
            flags: h[11],
            segment_size,
            container_id: [0; 16],
            key_id: [0; 16],
            package_id: u64_at(48),
            salt: [0; 32],
            payload_len: u64_at(88),
            created_at: u64_at(96) as i64,
            expires_at: u64_at(104) as i64,
        };
        header.container_id.copy_from_slice(&h[16..32]);
        header.key_id.copy_from_slice(&h[32..48]);
        header.salt.copy_from_slice(&h[56..88]);
        Some(header)
    }

    fn segments(&self) -> u64 {
        self.payload_len
            .div_ceil(u64::from(self.segment_size))
            .max(1)
    }

    /// Payload bytes of segment `index`.
    fn segment_len(&self, index: u64) -> usize {
        let start = index * u64::from(self.segment_size);
        (self.payload_len - start.min(self.payload_len)).min(u64::from(self.segment_size)) as usize
    }
}

/// What the sealer is told about the object.
#[derive(Clone, Copy, Debug)]
pub struct Seal {
    pub container_id: [u8; 16],
    pub package_id: u64,
    pub flags: u8,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Why an object could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Sealing happens inside a put's writer, which speaks `io::Error`.
impl From<SealError> for io::Error {
    fn from(e: SealError) -> io::Error {
        match e {
            SealError::Io(e) => e,
            SealError::Random(e) => io::Error::other(e.to_string()),
        }
    }
}

/// Why an object could not be opened. The one public message for a bad object names
/// only its package.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("integrity check failed for package {package_id}")]
    Integrity { package_id: u64 },
    #[error("package {package_id} expired at {expires_at} (Unix time): stage it again")]
    Expired { package_id: u64, expires_at: i64 },
    #[error(transparent)]
    Io(io::Error),
}

impl OpenError {
    /// Turns an error from [`Opened`]'s `Read` back into what it was.
    pub fn from_io(error: io::Error, package_id: u64) -> OpenError {
        if error.get_ref().is_some_and(|e| e.is::<Tampered>()) {
            OpenError::Integrity { package_id }
        } else {
            OpenError::Io(error)
        }
    }
}

/// The marker inside an `io::Error` for a failed check.
#[derive(Debug)]
struct Tampered;

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("integrity check failed")
    }
}

impl std::error::Error for Tampered {}

fn tampered() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Tampered)
}

/// Seals `payload` into `out` with fresh random salt and IVs.
///
/// (For an object put in blocks, [`seal_resumable`] gives the same bytes again.)
pub fn seal<W: Write + ?Sized>(
    key: &ContainerKey,
    seal: &Seal,
    payload: &[u8],
    out: &mut W,
) -> Result<(), SealError> {
    let mut salt = [0u8; 32];
    random(&mut salt)?;
    seal_with(key, seal, salt, payload, out, &mut |iv| random(iv))
}

/// [`seal`] that gives the same bytes again for the same key, salt and payload: an
/// object put in blocks is sealed again by the run that resumes its upload, and its
/// missing blocks must fit the ones already there. The salt is random (the caller
/// draws it and journals it); each segment's IV is keyed BLAKE3 of its index under a
/// key derived from the container key and the salt, so IVs are as unpredictable to
/// anyone without the key as random ones, and never repeat across objects. A caller
/// must seal one payload only under a salt (it compares the whole sealed object's hash
/// before reusing one).
pub fn seal_resumable<W: Write + ?Sized>(
    key: &ContainerKey,
    seal: &Seal,
    salt: [u8; 32],
    payload: &[u8],
    out: &mut W,
) -> Result<(), SealError> {
    let iv_key = key.segment_iv_key(&salt);
    let mut index = 0u64;
    seal_with(key, seal, salt, payload, out, &mut |iv| {
        let hash = blake3::keyed_hash(&iv_key, &index.to_le_bytes());
        iv.copy_from_slice(&hash.as_bytes()[..iv.len()]);
        index += 1;
        Ok(())
    })
}

/// [`seal`] with the salt and IVs given.
fn seal_with<W: Write + ?Sized>(
    key: &ContainerKey,
    seal: &Seal,
    salt: [u8; 32],
    payload: &[u8],
    out: &mut W,
    next_iv: &mut dyn FnMut(&mut [u8]) -> Result<(), RandomError>,
) -> Result<(), SealError> {
    let header = Header {
        flags: seal.flags,
        segment_size: SEGMENT_SIZE,
        container_id: seal.container_id,
        key_id: key.id(),
        package_id: seal.package_id,
        salt,
        payload_len: payload.len() as u64,
        created_at: seal.created_at,
        expires_at: seal.expires_at,
    };
    let keys = key.subkeys(&salt);
    let head = header.encode();
    out.write_all(&head)?;
    out.write_all(blake3::keyed_hash(&keys.authentication, &head).as_bytes())?;
    let segments = header.segments();
    let cipher = <aes::Aes256 as aes::cipher::KeyInit>::new((&*keys.encryption).into());
    let mut outs: Vec<Vec<u8>> = OUTS.with(|o| std::mem::take(&mut *o.borrow_mut()));
    // CBC is a chain within a segment, but segments are independent: encrypting
    // several side by side keeps the AES units busy (see `cbc_encrypt_side_by_side`).
    let mut index = 0u64;
    while index < segments {
        let batch = (segments - index).min(LANES as u64) as usize;
        let mut ivs = [[0u8; IV_LEN]; LANES];
        let mut plains: [&[u8]; LANES] = [&[]; LANES];
        for lane in 0..batch {
            let i = index + lane as u64;
            let start = (i * u64::from(SEGMENT_SIZE)) as usize;
            plains[lane] = &payload[start..start + header.segment_len(i)];
            next_iv(&mut ivs[lane])?;
        }
        outs.resize_with(batch, Vec::new);
        cbc_encrypt_side_by_side(&cipher, &ivs[..batch], &plains[..batch], &mut outs[..batch]);
        for lane in 0..batch {
            let i = index + lane as u64;
            let ct = &outs[lane];
            let len = (ct.len() as u32).to_le_bytes();
            let tag = segment_tag(&keys, &head, i, i + 1 == segments, &ivs[lane], &len, ct);
            out.write_all(&ivs[lane])?;
            out.write_all(&len)?;
            out.write_all(ct)?;
            out.write_all(tag.as_bytes())?;
        }
        index += batch as u64;
    }
    OUTS.with(|o| *o.borrow_mut() = outs);
    Ok(())
}

thread_local! {
    /// Each thread's segment buffers, kept between objects (their pages stay mapped).
    static OUTS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Segments encrypted side by side.
const LANES: usize = 8;

/// AES-256-CBC with PKCS#7 padding of several independent segments at once, block by
/// block in lockstep: each chain is as CBC defines it (a test checks it against the
/// `cbc` crate), but the blocks of different chains go through AES together, which a
/// pipelined AES unit does several times faster than one chain's blocks in turn.
fn cbc_encrypt_side_by_side(
    cipher: &aes::Aes256,
    ivs: &[[u8; IV_LEN]],
    plains: &[&[u8]],
    outs: &mut [Vec<u8>],
) {
    use aes::cipher::BlockCipherEncrypt as _;
    let lanes = plains.len();
    // Plaintext and PKCS#7 padding (a whole block of 16s when the plaintext ends on a
    // block boundary) go into the output first; the chains then run in place.
    for (out, plain) in outs.iter_mut().zip(plains) {
        let pad = BLOCK - plain.len() % BLOCK;
        out.clear();
        out.reserve(plain.len() + pad);
        out.extend_from_slice(plain);
        out.resize(plain.len() + pad, pad as u8);
    }
    let mut prev: Vec<u128> = ivs.iter().map(|iv| u128::from_ne_bytes(*iv)).collect();
    let most = outs.iter().map(|o| o.len() / BLOCK).max().unwrap_or(0);
    let mut batch: Vec<aes::Block> = vec![aes::Block::default(); lanes];
    let mut active = vec![0usize; lanes];
    for k in 0..most {
        let at = k * BLOCK;
        let mut n = 0;
        for lane in 0..lanes {
            let Some(chunk) = outs[lane].get(at..at + BLOCK) else {
                continue;
            };
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(chunk);
            let mixed = u128::from_ne_bytes(block) ^ prev[lane];
            batch[n] = mixed.to_ne_bytes().into();
            active[n] = lane;
            n += 1;
        }
        cipher.encrypt_blocks(&mut batch[..n]);
        for (slot, &lane) in active[..n].iter().enumerate() {
            let ct: [u8; BLOCK] = batch[slot].into();
            outs[lane][at..at + BLOCK].copy_from_slice(&ct);
            prev[lane] = u128::from_ne_bytes(ct);
        }
    }
}

fn segment_tag(
    keys: &Subkeys,
    head: &[u8; HEADER_LEN],
    index: u64,
    last: bool,
    iv: &[u8; IV_LEN],
    len: &[u8; 4],
    ct: &[u8],
) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(&keys.authentication);
    mac.update(head);
    mac.update(&index.to_le_bytes());
    mac.update(&[u8::from(last)]);
    mac.update(iv);
    mac.update(len);
    mac.update(ct);
    mac.finalize()
}

/// What the opener expects of an object: which container and package it must belong
/// to, and the time now (Unix seconds), to refuse an expired one.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub container_id: [u8; 16],
    pub package_id: u64,
    pub now: i64,
}

/// An object being opened: reads as its payload, one verified segment at a time.
pub struct Opened<R> {
    reader: R,
    header: Header,
    head: [u8; HEADER_LEN],
    keys: Subkeys,
    index: u64,
    /// Bytes of `ct` that are decrypted plaintext (decryption is in place).
    plain: usize,
    at: usize,
    ct: Vec<u8>,
    done: bool,
}

impl<R> std::fmt::Debug for Opened<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("header", &self.header)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Reads and checks an object's header; the payload follows through `Read`.
pub fn open<R: Read>(
    key: &ContainerKey,
    expect: Expect,
    mut reader: R,
) -> Result<Opened<R>, OpenError> {
    let bad = || OpenError::Integrity {
        package_id: expect.package_id,
    };
    let mut head = [0u8; HEADER_LEN];
    let mut tag = [0u8; TAG_LEN];
    read_exact(&mut reader, &mut head)
        .and_then(|()| read_exact(&mut reader, &mut tag))
        .map_err(|e| OpenError::from_io(e, expect.package_id))?;
    let header = Header::decode(&head).ok_or_else(bad)?;
    if header.key_id != key.id() {
        return Err(bad());
    }
    let keys = key.subkeys(&header.salt);
    // Constant-time comparison (blake3::Hash's PartialEq).
    if blake3::keyed_hash(&keys.authentication, &head) != blake3::Hash::from_bytes(tag) {
        return Err(bad());
    }
    // Authentic, but for another container or package: a splice.
    if header.container_id != expect.container_id || header.package_id != expect.package_id {
        return Err(bad());
    }
    if expect.now >= header.expires_at {
        return Err(OpenError::Expired {
            package_id: header.package_id,
            expires_at: header.expires_at,
        });
    }
    Ok(Opened {
        reader,
        header,
        head,
        keys,
        index: 0,
        plain: 0,
        at: 0,
        ct: Vec::new(),
        done: false,
    })
}

/// `read_exact`, with a short read reported as tampering (a truncated object).
fn read_exact<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<()> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            tampered()
        } else {
            e
        }
    })
}

impl<R: Read> Opened<R> {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads, verifies and decrypts the next segment into `plain`.
    fn next_segment(&mut self) -> io::Result<()> {
        let segments = self.header.segments();
        let expected = self.header.segment_len(self.index);
        let mut iv = [0u8; IV_LEN];
        let mut len = [0u8; 4];
        read_exact(&mut self.reader, &mut iv)?;
        read_exact(&mut self.reader, &mut len)?;
        let ct_len = u32::from_le_bytes(len) as usize;
        // Only the one length PKCS#7 gives for this segment is acceptable; anything
        // else is refused before a byte of it is read into memory.
        if ct_len != (expected / BLOCK + 1) * BLOCK {
            return Err(tampered());
        }
        self.ct.resize(ct_len, 0);
        read_exact(&mut self.reader, &mut self.ct)?;
        let mut tag = [0u8; TAG_LEN];
        read_exact(&mut self.reader, &mut tag)?;
        let last = self.index + 1 == segments;
        let computed = segment_tag(
            &self.keys, &self.head, self.index, last, &iv, &len, &self.ct,
        );
        if computed != blake3::Hash::from_bytes(tag) {
            return Err(tampered());
        }
        let plain = Decryptor::new((&*self.keys.encryption).into(), (&iv).into())
            .decrypt_padded::<Pkcs7>(&mut self.ct)
            .map_err(|_| tampered())?;
        if plain.len() != expected {
            return Err(tampered());
        }
        self.plain = plain.len();
        self.at = 0;
        self.index += 1;
        if last {
            // Nothing may follow the last segment.
            let mut extra = [0u8; 1];
            if self.reader.read(&mut extra)? != 0 {
                return Err(tampered());
            }
            self.done = true;
        }
        Ok(())
    }
}

/// The payload can also be read in place, segment by segment (the zstd decoder reads
/// it so, with no copy in between).
impl<R: Read> io::BufRead for Opened<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.plain && !self.done {
            self.next_segment()?;
        }
        Ok(&self.ct[self.at..self.plain])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.plain);
    }
}

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain {
            if self.done {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = buf.len().min(self.plain - self.at);
        buf[..n].copy_from_slice(&self.ct[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Opens a whole object in memory.
#[cfg(test)]
fn open_all(key: &ContainerKey, expect: Expect, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut opened = open(key, expect, bytes)?;
    let mut out = Vec::new();
    opened
        .read_to_end(&mut out)
        .map_err(|e| OpenError::from_io(e, expect.package_id))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEAL: Seal = Seal {
        container_id: [0xC0; 16],
        package_id: 42,
        flags: FLAG_ZSTD,
        created_at: 1_800_000_000,
        expires_at: 1_800_259_200,
    };
    const EXPECT: Expect = Expect {
        container_id: [0xC0; 16],
        package_id: 42,
        now: 1_800_000_100,
    };

    fn key() -> ContainerKey {
        ContainerKey::from_bytes(*b"ferry test key, never used else!")
    }

    fn sealed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(&key(), &SEAL, payload, &mut out).unwrap();
        out
    }

    fn is_integrity(r: Result<Vec<u8>, OpenError>) -> bool {
        matches!(r, Err(OpenError::Integrity { package_id: 42 }))
    }

    #[test]
    fn side_by_side_cbc_is_cbc() {
        use aes::cipher::BlockModeEncrypt as _;
        let key = [0x11u8; 32];
        let cipher = <aes::Aes256 as aes::cipher::KeyInit>::new((&key).into());
        let lengths = [0usize, 1, 15, 16, 17, 31, 32, 100, 4096, 5000];
        let plains: Vec<Vec<u8>> = lengths
            .iter()
            .map(|&n| (0..n).map(|i| (i * 31 + n) as u8).collect())
            .collect();
        let ivs: Vec<[u8; IV_LEN]> = (0..lengths.len()).map(|i| [i as u8; IV_LEN]).collect();
        let refs: Vec<&[u8]> = plains.iter().map(Vec::as_slice).collect();
        let mut outs = vec![Vec::new(); lengths.len()];
        cbc_encrypt_side_by_side(&cipher, &ivs, &refs, &mut outs);
        for (i, plain) in plains.iter().enumerate() {
            let mut buf = vec![0u8; plain.len() + BLOCK];
            buf[..plain.len()].copy_from_slice(plain);
            let expected = Encryptor::new((&key).into(), (&ivs[i]).into())
                .encrypt_padded::<Pkcs7>(&mut buf, plain.len())
                .unwrap();
            assert_eq!(outs[i], expected, "length {}", plain.len());
        }
    }

    /// A resumed upload seals its object again: the same salt and payload give the same
    /// bytes, which open like any object; another salt gives other IVs.
    #[test]
    fn resumable_sealing_repeats_itself_and_opens() {
        let payload: Vec<u8> = (0..3 * SEGMENT_SIZE as usize + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let seal_with_salt = |salt: [u8; 32]| {
            let mut out = Vec::new();
            seal_resumable(&key(), &SEAL, salt, &payload, &mut out).unwrap();
            out
        };
        let first = seal_with_salt([1; 32]);
        assert_eq!(first, seal_with_salt([1; 32]));
        let other = seal_with_salt([2; 32]);
        assert_ne!(
            first[HEADER_LEN + TAG_LEN..][..IV_LEN],
            other[HEADER_LEN + TAG_LEN..][..IV_LEN]
        );
        assert_eq!(open_all(&key(), EXPECT, &first).unwrap(), payload);
        // Each segment has its own IV.
        let second_iv = HEADER_LEN + TAG_LEN + IV_LEN + 4 + SEGMENT_SIZE as usize + BLOCK + TAG_LEN;
        assert_ne!(
            first[HEADER_LEN + TAG_LEN..][..IV_LEN],
            first[second_iv..][..IV_LEN]
        );
    }

    #[test]
    fn round_trips_around_boundaries() {
        let seg = SEGMENT_SIZE as usize;
        for len in [0, 1, 15, 16, 17, seg - 1, seg, seg + 1, 2 * seg + 16] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let bytes = sealed(&payload);
            assert_eq!(open_all(&key(), EXPECT, &bytes).unwrap(), payload, "{len}");
        }
    }

    #[test]
    fn every_kind_of_damage_is_one_integrity_error() {
        let payload = vec![9u8; SEGMENT_SIZE as usize + 100];
        let good = sealed(&payload);
        // Truncated anywhere, or extended.
        for cut in [0, 10, HEADER_LEN, HEADER_LEN + TAG_LEN + 3, good.len() - 1] {
            assert!(
                is_integrity(open_all(&key(), EXPECT, &good[..cut])),
                "cut {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(is_integrity(open_all(&key(), EXPECT, &longer)));
        // Another key, container or package.
        let other = ContainerKey::from_bytes([1; 32]);
        assert!(is_integrity(open_all(&other, EXPECT, &good)));
        let elsewhere = Expect {
            container_id: [0xC1; 16],
            ..EXPECT
        };
        assert!(is_integrity(open_all(&key(), elsewhere, &good)));
        let renumbered = Expect {
            package_id: 43,
            ..EXPECT
        };
        assert!(matches!(
            open_all(&key(), renumbered, &good),
            Err(OpenError::Integrity { package_id: 43 })
        ));
        // Expired.
        let late = Expect {
            now: SEAL.expires_at,
            ..EXPECT
        };
        assert!(matches!(
            open_all(&key(), late, &good),
            Err(OpenError::Expired { .. })
        ));
    }

    #[test]
    fn segments_cannot_be_swapped_or_spliced() {
        let seg = SEGMENT_SIZE as usize;
        let a: Vec<u8> = (0..2 * seg).map(|i| i as u8).collect();
        let sealed_a = sealed(&a);
        let start = HEADER_LEN + TAG_LEN;
        let one = IV_LEN + 4 + seg + BLOCK + TAG_LEN;
        // Swap the two segments.
        let mut swapped = sealed_a[..start].to_vec();
        swapped.extend_from_slice(&sealed_a[start + one..start + 2 * one]);
        swapped.extend_from_slice(&sealed_a[start..start + one]);
        assert!(is_integrity(open_all(&key(), EXPECT, &swapped)));
        // The first segment of another package of the same key and container.
        let b = sealed(&vec![1u8; 2 * seg]);
        let mut spliced = sealed_a[..start].to_vec();
        spliced.extend_from_slice(&b[start..start + one]);
        spliced.extend_from_slice(&sealed_a[start + one..]);
        assert!(is_integrity(open_all(&key(), EXPECT, &spliced)));
        // Dropping the last segment and marking nothing: the first is not final.
        assert!(is_integrity(open_all(
            &key(),
            EXPECT,
            &sealed_a[..start + one]
        )));
    }

    /// The frozen test vector of docs/FORMAT.md: fixed key, salt and IVs. If this
    /// changes, the format changed: that needs a new version number.
    #[test]
    fn frozen_test_vector() {
        let mut out = Vec::new();
        let mut counter = 0u8;
        seal_with(
            &key(),
            &SEAL,
            [0x5A; 32],
            b"ferry",
            &mut out,
            &mut |iv: &mut [u8]| {
                counter += 1;
                iv.fill(counter);
                Ok(())
            },
        )
        .unwrap();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        let docs = include_str!("../../docs/FORMAT.md");
        let frozen: String = docs
            .split("```hex\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a hex block in docs/FORMAT.md")
            .split_whitespace()
            .collect();
        assert_eq!(hex, frozen, "sealed bytes differ from docs/FORMAT.md");
        assert_eq!(open_all(&key(), EXPECT, &out).unwrap(), b"ferry");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn open_seal_is_identity(payload in proptest::collection::vec(any::<u8>(), 0..40_000)) {
            let bytes = sealed(&payload);
            prop_assert_eq!(open_all(&key(), EXPECT, &bytes).unwrap(), payload);
        }

        #[test]
        fn any_flipped_bit_is_refused(
            payload in proptest::collection::vec(any::<u8>(), 0..3_000),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = sealed(&payload);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert!(is_integrity(open_all(&key(), EXPECT, &bytes)));
        }
    }
}
