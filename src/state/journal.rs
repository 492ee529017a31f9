//! The checkpoint journal of a round: what is already durable, so that a resumed run
//! neither loses nor repeats anything.
//!
//! Append-only. A header (magic, version, binding) is followed by records, each
//! `length (u32 LE) ‖ length check (4 bytes) ‖ payload (postcard) ‖ tag (16 bytes)`, the
//! check and the tag keyed BLAKE3 (of the length; of all before the tag) under the journal's *binding*, itself derived from the plan's name, the task's
//! name and the round: a record copied from another task's or round's journal does not
//! verify. Every record is synced before `append` returns.
//!
//! Loading tells a torn tail (the last record cut short or garbled by a crash while it
//! was written: dropped) from damage (anything else: refused). A zero-length or all-NUL
//! journal is never read as "no progress": it is refused too, and kept as evidence.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

mod v1;

const MAGIC: &[u8; 8] = b"FERRYJNL";
/// The format's version: a reader refuses a newer one, and reads (and appends to) the
/// journal of a round an earlier version began in that version's format. Version 2
/// added the items' IDs and the job of each record.
pub const VERSION: u16 = 2;
const HEADER_LEN: usize = 8 + 2 + 2 + 32 + 16;
const TAG_LEN: usize = 16;
/// A record's length and the length's own check.
const FRAME_HEAD: usize = 8;

/// What one item of a package came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemResult {
    /// In place at the destination (written now, or found identical there).
    Done {
        /// Written by this round (false: the destination already had it).
        written: bool,
        mtime_ns: i128,
        hash: [u8; 32],
        /// The destination file's modification time after the import: with the size,
        /// its fingerprint, to tell later whether someone changed it.
        dest_mtime_ns: i64,
    },
    /// Not migrated, with a stable code.
    Failed { code: String, message: String },
}

/// One item's outcome, by its destination path (bytes, relative to the destination),
/// with what the reports show of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub path: Vec<u8>,
    /// Where it was read (bytes).
    pub source: Vec<u8>,
    pub kind: u8,
    pub size: u64,
    pub result: ItemResult,
    /// The source item's inode (0: unknown).
    pub source_id: u64,
    /// The destination item's inode once it is in place (0: unknown, or not in place).
    pub dest_id: u64,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// Package `package` is durable in container `container`; `items` are the items that
    /// failed while it was built (the others are in it).
    Staged {
        package: u64,
        container: [u8; 16],
        items: Vec<ItemRecord>,
        /// The run (its job ID) that staged it; 0: unknown.
        job: u64,
    },
    /// Packages `first..=last` (more than one: the parts of one file) are imported and
    /// committed at the destination.
    Imported {
        first: u64,
        last: u64,
        items: Vec<ItemRecord>,
        /// The run (its job ID) that imported them; 0: unknown.
        job: u64,
    },
    /// Part `part` of the file whose parts are the packages from `first` on is durable
    /// at the destination, in the file's assembly `work` (a folder of ferry's own beside
    /// the final name). A resumed run continues the file after it; the part's staged
    /// object may go. (Added after the first release of version 1: older journals
    /// simply hold none.)
    Part {
        first: u64,
        part: u32,
        work: String,
        /// With the last part: what the whole file must be, to commit it (or, after a
        /// crash, to recognise it committed at the destination).
        whole: Option<WholeFile>,
    },
    /// Block `index` of package `package`, put in blocks into container `container` by
    /// upload `upload`, is durable there as `id`. `salt` and `sealed` (BLAKE3 of the
    /// whole sealed object) let a later run seal the package again to the same bytes
    /// and put only the blocks that are missing. (Added after `Part`.)
    Block {
        package: u64,
        container: [u8; 16],
        upload: String,
        salt: [u8; 32],
        sealed: [u8; 32],
        index: u32,
        id: String,
    },
}

/// A file in parts whose every part is in: its size, metadata and the source's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WholeFile {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub hash: [u8; 32],
}

/// Why a journal cannot be used. Each leaves the file exactly as it was.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "the checkpoint journal {} is empty (zero bytes), though it always holds at least its header; {AFTER}",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "the checkpoint journal {} holds only NUL bytes ({len} of them), as a disk can leave a file after a crash; {AFTER}",
        path.display()
    )]
    Zeroed { path: PathBuf, len: u64 },
    #[error(
        "the checkpoint journal {} is damaged: {what} at byte {offset}; {AFTER}",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        what: &'static str,
        offset: u64,
    },
    #[error(
        "the checkpoint journal {} was written by a newer ferry (format version {version}; this ferry reads version {VERSION}): use that version to resume the round, or `--restart`",
        path.display()
    )]
    Newer { path: PathBuf, version: u16 },
    #[error(
        "the checkpoint journal {} belongs to another plan, task or round; {AFTER}",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error("cannot {what} the checkpoint journal {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

const AFTER: &str = "the round's progress cannot be trusted, so it was not resumed and the file was kept as it is. `ferry run --restart` sets it aside and redoes the round (files already at the destination are recognised and not copied again)";

/// The binding of a round's journal: records of another plan, task or round do not verify.
pub fn binding(plan: &str, task: &str, round: u32) -> [u8; 32] {
    let mut material = Vec::new();
    material.extend_from_slice(plan.as_bytes());
    material.push(0);
    material.extend_from_slice(task.as_bytes());
    material.push(0);
    material.extend_from_slice(&round.to_le_bytes());
    blake3::derive_key("ferry 2026 checkpoint journal binding v1", &material)
}

fn tag(binding: &[u8; 32], parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut hasher = blake3::Hasher::new_keyed(binding);
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_LEN]);
    out
}

/// A record's length has a check of its own, so that a damaged length is told from
/// a record cut short.
fn length_check(binding: &[u8; 32], len: [u8; 4]) -> [u8; 4] {
    let t = tag(binding, &[b"length", &len]);
    [t[0], t[1], t[2], t[3]]
}

fn header(binding: &[u8; 32], version: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(binding);
    let t = tag(binding, &[&out]);
    out.extend_from_slice(&t);
    out
}

/// A journal's records, read back.
#[derive(Debug, Default)]
pub struct Loaded {
    pub entries: Vec<Entry>,
    /// Bytes of a torn last record that were dropped.
    pub torn: u64,
    /// Where the valid part ends.
    valid_len: u64,
    /// The format the journal is written in.
    version: u16,
}

/// Reads the journal's bytes, checking every record.
pub fn parse(path: &Path, bytes: &[u8], binding: &[u8; 32]) -> Result<Loaded, JournalError> {
    let damaged = |what, offset: usize| JournalError::Damaged {
        path: path.to_path_buf(),
        what,
        offset: offset as u64,
    };
    if bytes.is_empty() {
        return Err(JournalError::Empty {
            path: path.to_path_buf(),
        });
    }
    if bytes.iter().all(|&b| b == 0) {
        return Err(JournalError::Zeroed {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        });
    }
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(damaged("no journal header", 0));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > VERSION {
        return Err(JournalError::Newer {
            path: path.to_path_buf(),
            version,
        });
    }
    if version != VERSION && version != 1 {
        return Err(damaged("an unknown format version", 8));
    }
    if bytes[12..44] != binding[..] {
        return Err(JournalError::Foreign {
            path: path.to_path_buf(),
        });
    }
    if tag(binding, &[&bytes[..44]])[..] != bytes[44..HEADER_LEN] {
        return Err(damaged("the header fails its checksum", 0));
    }
    let mut loaded = Loaded {
        version,
        ..Loaded::default()
    };
    let mut at = HEADER_LEN;
    // Records are appended one at a time, each synced before the next is written, so a
    // crash can leave at most the last one incomplete: cut short, or with its unwritten
    // blocks read back as NUL bytes. Anything else that does not verify is damage.
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = |loaded: &mut Loaded| loaded.torn = rest.len() as u64;
        if rest.len() < FRAME_HEAD {
            torn(&mut loaded);
            break;
        }
        let len_bytes: [u8; 4] = rest[..4].try_into().unwrap_or_default();
        if length_check(binding, len_bytes) != rest[4..FRAME_HEAD] {
            if rest.iter().all(|&b| b == 0) {
                torn(&mut loaded);
                break;
            }
            return Err(damaged("a record's length fails its checksum", at));
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        let end = FRAME_HEAD + len + TAG_LEN;
        if end > rest.len() {
            torn(&mut loaded);
            break;
        }
        if tag(binding, &[&rest[..FRAME_HEAD + len]])[..] != rest[FRAME_HEAD + len..end] {
            if end == rest.len() {
                torn(&mut loaded);
                break;
            }
            return Err(damaged("a record fails its checksum", at));
        }
        let payload = &rest[FRAME_HEAD..FRAME_HEAD + len];
        let entry = if version == 1 {
            postcard::from_bytes::<v1::EntryV1>(payload).map(Entry::from)
        } else {
            postcard::from_bytes::<Entry>(payload)
        }
        .map_err(|_| damaged("a record that does not decode", at))?;
        loaded.entries.push(entry);
        at += end;
    }
    loaded.valid_len = (bytes.len() as u64) - loaded.torn;
    Ok(loaded)
}

/// Reads a journal without opening it for appending (a torn tail is left in place).
pub fn read(path: &Path, binding: [u8; 32]) -> Result<Loaded, JournalError> {
    let bytes = fs::read(path).map_err(|source| JournalError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &bytes, &binding)
}

/// A round's journal, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    binding: [u8; 32],
    /// The format of the journal's header, which every record appended follows.
    version: u16,
    file: Mutex<Appender>,
}

/// The open file and where its last whole record ends.
#[derive(Debug)]
struct Appender {
    file: File,
    valid_len: u64,
    /// An append failed: no record is ever written after a damaged one (reliability
    /// review, finding 5), so whatever it left can only be a torn tail.
    failed: bool,
}

impl Journal {
    /// Opens the round's journal at `path`: creates it (with its header, synced) when
    /// absent, otherwise loads it (dropping a torn tail) and continues after its last
    /// valid record.
    pub fn open(path: &Path, binding: [u8; 32]) -> Result<(Journal, Loaded), JournalError> {
        let io = |what| {
            move |source| JournalError::Io {
                what,
                path: path.to_path_buf(),
                source,
            }
        };
        let loaded = match read(path, binding) {
            Ok(loaded) => loaded,
            Err(JournalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(Path::new("."));
                fs::create_dir_all(parent).map_err(io("create the folder of"))?;
                let mut partial = path.as_os_str().to_owned();
                partial.push(".partial");
                let mut file = File::create(&partial).map_err(io("create"))?;
                file.write_all(&header(&binding, VERSION))
                    .and_then(|()| file.sync_all())
                    .map_err(io("write"))?;
                fs::rename(&partial, path).map_err(io("create"))?;
                sync_dir(parent).map_err(io("create"))?;
                Loaded {
                    valid_len: HEADER_LEN as u64,
                    version: VERSION,
                    ..Loaded::default()
                }
            }
            Err(e) => return Err(e),
        };
        let file = File::options().write(true).open(path).map_err(io("open"))?;
        if loaded.torn > 0 {
            file.set_len(loaded.valid_len)
                .and_then(|()| file.sync_all())
                .map_err(io("drop the torn tail of"))?;
        }
        let mut file = file;
        io::Seek::seek(&mut file, io::SeekFrom::Start(loaded.valid_len)).map_err(io("open"))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                binding,
                version: loaded.version,
                file: Mutex::new(Appender {
                    file,
                    valid_len: loaded.valid_len,
                    failed: false,
                }),
            },
            loaded,
        ))
    }

    /// Appends a record and syncs it: when this returns, the record survives a crash.
    pub fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let encoded = if self.version == 1 {
            postcard::to_allocvec(&v1::EntryV1::from(entry))
        } else {
            postcard::to_allocvec(entry)
        };
        let payload = encoded.map_err(|e| JournalError::Io {
            what: "encode a record for",
            path: self.path.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        let mut frame = Vec::with_capacity(FRAME_HEAD + payload.len() + TAG_LEN);
        let len = (payload.len() as u32).to_le_bytes();
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&length_check(&self.binding, len));
        frame.extend_from_slice(&payload);
        let t = tag(&self.binding, &[&frame]);
        frame.extend_from_slice(&t);
        let mut appender = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let failed = |source| JournalError::Io {
            what: "append to",
            path: self.path.clone(),
            source,
        };
        if appender.failed {
            return Err(failed(io::Error::other(
                "an earlier append failed; nothing more is written until the next run",
            )));
        }
        if let Err(e) = crate::failpoint::hit("journal-append") {
            appender.failed = true;
            return Err(failed(e));
        }
        let written = appender
            .file
            .write_all(&frame)
            .and_then(|()| appender.file.sync_data());
        match written {
            Ok(()) => {
                appender.valid_len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A short write (a full disk) may have left part of the frame: cut the
                // file back to its last whole record. Should that fail too, the part
                // stays the journal's tail, which the next run drops as torn.
                appender.failed = true;
                let valid_len = appender.valid_len;
                let _ = appender
                    .file
                    .set_len(valid_len)
                    .and_then(|()| appender.file.sync_data());
                Err(failed(e))
            }
        }
    }
}

/// Makes a rename or creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        Entry::Imported {
            first: n,
            last: n,
            items: vec![ItemRecord {
                path: b"a/\xff b.txt".to_vec(),
                source: b"/src/a/\xff b.txt".to_vec(),
                kind: 1,
                size: 3,
                result: ItemResult::Failed {
                    code: "read-failed".into(),
                    message: "gone".into(),
                },
                source_id: 42,
                dest_id: 0,
            }],
            job: 9,
        }
    }

    /// A round an earlier ferry began (format 1) is read, with its IDs and jobs unknown,
    /// and resumed in its own format: both ferries can go on reading it.
    #[test]
    fn a_version_1_journal_is_read_and_appended_to_in_its_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let binding = binding("p", "t", 1);
        let mut bytes = header(&binding, 1);
        let old = v1::EntryV1::from(&entry(0));
        let payload = postcard::to_allocvec(&old).unwrap();
        let len = (payload.len() as u32).to_le_bytes();
        let mut frame = len.to_vec();
        frame.extend_from_slice(&length_check(&binding, len));
        frame.extend_from_slice(&payload);
        let t = tag(&binding, &[&frame]);
        frame.extend_from_slice(&t);
        bytes.extend_from_slice(&frame);
        fs::write(&path, &bytes).unwrap();

        let unknown = |n| match entry(n) {
            Entry::Imported {
                first,
                last,
                mut items,
                ..
            } => {
                items[0].source_id = 0;
                Entry::Imported {
                    first,
                    last,
                    items,
                    job: 0,
                }
            }
            other => other,
        };
        let (journal, loaded) = Journal::open(&path, binding).unwrap();
        assert_eq!(loaded.version, 1);
        assert_eq!(loaded.entries, vec![unknown(0)]);
        journal.append(&entry(1)).unwrap();
        drop(journal);
        let loaded = read(&path, binding).unwrap();
        assert_eq!(loaded.entries, vec![unknown(0), unknown(1)]);
        assert_eq!(&fs::read(&path).unwrap()[8..10], &1u16.to_le_bytes());
    }

    fn written(records: u64) -> (tempfile::TempDir, PathBuf, [u8; 32]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let binding = binding("p", "t", 1);
        let (journal, loaded) = Journal::open(&path, binding).unwrap();
        assert!(loaded.entries.is_empty());
        for n in 0..records {
            journal.append(&entry(n)).unwrap();
        }
        (dir, path, binding)
    }

    #[test]
    fn records_come_back_in_order() {
        let (_dir, path, binding) = written(3);
        let (journal, loaded) = Journal::open(&path, binding).unwrap();
        assert_eq!(loaded.entries, vec![entry(0), entry(1), entry(2)]);
        journal.append(&entry(3)).unwrap();
        let (_, loaded) = Journal::open(&path, binding).unwrap();
        assert_eq!(loaded.entries.len(), 4);
    }

    #[test]
    fn a_torn_tail_is_dropped_at_any_cut() {
        let (_dir, path, binding) = written(2);
        let whole = fs::read(&path).unwrap();
        let one = {
            let (_, l) = Journal::open(&path, binding).unwrap();
            assert_eq!(l.entries.len(), 2);
            whole.len() - (whole.len() - HEADER_LEN) / 2
        };
        for cut in one + 1..whole.len() {
            let got = parse(&path, &whole[..cut], &binding).unwrap();
            assert_eq!(got.entries, vec![entry(0)], "cut at {cut}");
            assert_eq!(got.torn, (cut - one) as u64);
        }
        // A garbled last record (its bytes zeroed by a crash) is a torn tail too.
        let mut garbled = whole.clone();
        let n = garbled.len();
        garbled[n - 5..].fill(0);
        assert_eq!(parse(&path, &garbled, &binding).unwrap().entries.len(), 1);
    }

    #[test]
    fn damage_before_the_tail_is_refused() {
        let (_dir, path, binding) = written(3);
        let whole = fs::read(&path).unwrap();
        for at in HEADER_LEN..whole.len() - (whole.len() - HEADER_LEN) / 3 {
            let mut bad = whole.clone();
            bad[at] ^= 0x01;
            let err = parse(&path, &bad, &binding).unwrap_err();
            assert!(
                matches!(err, JournalError::Damaged { .. }),
                "byte {at}: {err}"
            );
        }
        for at in 0..HEADER_LEN {
            let mut bad = whole.clone();
            bad[at] ^= 0x01;
            assert!(parse(&path, &bad, &binding).is_err(), "header byte {at}");
        }
    }

    #[test]
    fn empty_zeroed_foreign_and_newer_journals_are_refused() {
        let (_dir, path, binding) = written(1);
        let whole = fs::read(&path).unwrap();
        assert!(matches!(
            parse(&path, &[], &binding),
            Err(JournalError::Empty { .. })
        ));
        assert!(matches!(
            parse(&path, &vec![0; whole.len()], &binding),
            Err(JournalError::Zeroed { .. })
        ));
        assert!(matches!(
            parse(&path, &whole, &super::binding("p", "t", 2)),
            Err(JournalError::Foreign { .. })
        ));
        let mut newer = whole.clone();
        newer[8] = 3;
        assert!(matches!(
            parse(&path, &newer, &binding),
            Err(JournalError::Newer { version: 3, .. })
        ));
        // Refusal leaves the file as it was.
        fs::write(&path, []).unwrap();
        assert!(Journal::open(&path, binding).is_err());
        assert_eq!(fs::read(&path).unwrap(), Vec::<u8>::new());
    }
}
