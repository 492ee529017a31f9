//! The incremental index: per destination path, what ferry last put there — the source's
//! size, modification time and BLAKE3, and the destination file's modification time
//! after the import (with the size, its fingerprint). A round after the first migrates
//! only what is new or changed against it, and tells a destination file someone else
//! changed (its fingerprint moved) from one ferry may replace.
//!
//! The file is `FERRYIDX ‖ version (u16 LE) ‖ payload (postcard) ‖ BLAKE3 of all before`,
//! replaced atomically when a round completes. It is held in memory while a round runs
//! (about 100 bytes per item plus the path).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"FERRYIDX";
/// Version 2 added each item's source change time; a version 1 index is still read
/// (its change times unknown).
const VERSION: u16 = 2;
const VERSION_1: u16 = 1;

/// What ferry knows of one destination item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indexed {
    pub kind: u8,
    pub size: u64,
    pub mtime_ns: i128,
    pub hash: [u8; 32],
    pub dest_mtime_ns: i64,
    /// The source item's status change time (ctime) when it last migrated, 0 when not
    /// known: a later change time with the same size and modification time is a
    /// change of its metadata alone (mode, owner, attributes, ACL).
    pub ctime_ns: i128,
}

/// An item of a version 1 index.
#[derive(Deserialize)]
struct IndexedV1 {
    kind: u8,
    size: u64,
    mtime_ns: i128,
    hash: [u8; 32],
    dest_mtime_ns: i64,
}

/// The index, by destination path (bytes, relative to the task's destination).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub items: HashMap<Vec<u8>, Indexed>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot {what} the incremental index {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the incremental index {} is damaged ({what}); it was kept as it is. Move it aside to compare every file with the destination again (unchanged files are recognised there and not copied)",
        path.display()
    )]
    Damaged { path: PathBuf, what: &'static str },
}

impl Index {
    /// The index at `path`; empty when there is none yet.
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(source) => {
                return Err(IndexError::Io {
                    what: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let damaged = |what| IndexError::Damaged {
            path: path.to_path_buf(),
            what,
        };
        if bytes.len() < 8 + 2 + 32 || &bytes[..8] != MAGIC {
            return Err(damaged("no index header"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION && version != VERSION_1 {
            return Err(damaged("an unknown format version"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(damaged("it fails its checksum"));
        }
        let items: Vec<(Vec<u8>, Indexed)> = if version == VERSION_1 {
            let old: Vec<(Vec<u8>, IndexedV1)> =
                postcard::from_bytes(&body[10..]).map_err(|_| damaged("it does not decode"))?;
            old.into_iter()
                .map(|(path, i)| {
                    let item = Indexed {
                        kind: i.kind,
                        size: i.size,
                        mtime_ns: i.mtime_ns,
                        hash: i.hash,
                        dest_mtime_ns: i.dest_mtime_ns,
                        ctime_ns: 0,
                    };
                    (path, item)
                })
                .collect()
        } else {
            postcard::from_bytes(&body[10..]).map_err(|_| damaged("it does not decode"))?
        };
        Ok(Index {
            items: items.into_iter().collect(),
        })
    }

    /// Writes the index atomically.
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        let mut items: Vec<(&Vec<u8>, &Indexed)> = self.items.iter().collect();
        items.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        let body = postcard::to_allocvec(&items).map_err(|e| IndexError::Io {
            what: "encode",
            path: path.to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?;
        bytes.extend_from_slice(&body);
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        crate::failpoint::hit("index-save")
            .and_then(|()| super::write_atomic(path, &bytes))
            .map_err(|source| IndexError::Io {
                what: "write",
                path: path.to_path_buf(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        assert_eq!(Index::load(&path).unwrap(), Index::default());
        let mut index = Index::default();
        for n in 0..50u8 {
            index.items.insert(
                vec![b'a', n, 0xff],
                Indexed {
                    kind: 0,
                    size: u64::from(n),
                    mtime_ns: -1,
                    hash: [n; 32],
                    dest_mtime_ns: 7,
                    ctime_ns: i128::from(n) * 3,
                },
            );
        }
        index.save(&path).unwrap();
        assert_eq!(Index::load(&path).unwrap(), index);
        // A version 1 index (written before change times were kept) is read, its
        // change times unknown.
        #[derive(Serialize)]
        struct Old {
            kind: u8,
            size: u64,
            mtime_ns: i128,
            hash: [u8; 32],
            dest_mtime_ns: i64,
        }
        let old = vec![(
            b"a".to_vec(),
            Old {
                kind: 1,
                size: 2,
                mtime_ns: 3,
                hash: [4; 32],
                dest_mtime_ns: 5,
            },
        )];
        let mut v1 = MAGIC.to_vec();
        v1.extend_from_slice(&VERSION_1.to_le_bytes());
        v1.extend_from_slice(&postcard::to_allocvec(&old).unwrap());
        let sum = blake3::hash(&v1);
        v1.extend_from_slice(sum.as_bytes());
        let v1_path = dir.path().join("index-v1");
        fs::write(&v1_path, &v1).unwrap();
        let read = Index::load(&v1_path).unwrap();
        assert_eq!(
            read.items.get(&b"a"[..]),
            Some(&Indexed {
                kind: 1,
                size: 2,
                mtime_ns: 3,
                hash: [4; 32],
                dest_mtime_ns: 5,
                ctime_ns: 0,
            })
        );
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Index::load(&path),
            Err(IndexError::Damaged { .. })
        ));
    }
}
