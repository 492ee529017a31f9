//! The key file: how a container key waits on disk between staging and import — the
//! hand-over when one agent stages and another imports.
//!
//! A key file is mode 0600 in a folder of mode 0700, owned by the account that runs
//! ferry, and says when it expires. Reading refuses a key file that others could read,
//! that someone else owns, that is malformed, or whose key has expired. The file is
//! written to a temporary name, synced and renamed, so it is whole or absent; it is
//! deleted when its round completes.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ContainerKey;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot {action} key file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "key file {} may be read by other accounts (mode {mode:o}); it was not used: remove it and stage again",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("key file {} belongs to another account (uid {owner}); it was not used", path.display())]
    Owner { path: PathBuf, owner: u32 },
    #[error("key file {} is damaged: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "the key in {} expired at {expires}; its staged packages can no longer be imported: run the round again to stage them anew",
        path.display()
    )]
    Expired { path: PathBuf, expires: String },
}

/// What a key file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    container_id: String,
    key_id: String,
    key: String,
    created_at: i64,
    expires_at: i64,
}

/// A key with the container it opens and its lifetime.
#[derive(Debug)]
pub struct KeyFile {
    pub key: ContainerKey,
    pub container_id: [u8; 16],
    pub created_at: i64,
    pub expires_at: i64,
}

impl KeyFile {
    /// The name of the container this key seals into (its id in hex).
    pub fn container_name(&self) -> String {
        hex(&self.container_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl KeyFile {
    /// Writes the key file at `path`, creating its folder with mode 0700.
    pub fn write(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |action, source| KeyFileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        if let Some(folder) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(|e| io("create the folder of", e))?;
            fs::set_permissions(folder, fs::Permissions::from_mode(0o700))
                .map_err(|e| io("protect the folder of", e))?;
        }
        let stored = Stored {
            version: 1,
            container_id: hex(&self.container_id),
            key_id: hex(&self.key.id()),
            key: hex(self.key.expose()),
            created_at: self.created_at,
            expires_at: self.expires_at,
        };
        let text = Zeroizing::new(serde_json::to_vec_pretty(&stored).unwrap_or_default());
        drop(Zeroizing::new(stored.key));
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        // A partial file left by a killed run is ours (the folder is 0700): it goes, and
        // the new one is created fresh, never written through an existing file or link.
        match fs::remove_file(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove the stale partial", e)),
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| io("create", e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))?;
        fs::rename(&partial, path).map_err(|e| io("rename", e))?;
        if let Some(folder) = path.parent() {
            fs::File::open(folder)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync the folder of", e))?;
        }
        Ok(())
    }

    /// Reads and checks the key file at `path`; `now` in Unix seconds.
    pub fn read(path: &Path, now: i64) -> Result<KeyFile, KeyFileError> {
        let failed = |e| KeyFileError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        };
        // Opened once, never through a symlink; every check is of the file that is read.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    failed(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "it is a symlink; a key file is only ever a regular file",
                    ))
                } else {
                    failed(e)
                }
            })?;
        let meta = file.metadata().map_err(failed)?;
        if !meta.is_file() {
            return Err(failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is not a regular file",
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let me = rustix::process::geteuid().as_raw();
        // Root too: a key file someone else owns could have been planted by them.
        if meta.uid() != me {
            return Err(KeyFileError::Owner {
                path: path.to_path_buf(),
                owner: meta.uid(),
            });
        }
        let mut text = Zeroizing::new(Vec::with_capacity(512));
        io::Read::read_to_end(&mut file, &mut text).map_err(failed)?;
        let malformed = |reason: &str| KeyFileError::Malformed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let stored: Stored =
            serde_json::from_slice(&text).map_err(|_| malformed("not a ferry key file"))?;
        let stored_key = Zeroizing::new(stored.key);
        if stored.version != 1 {
            return Err(malformed("written by a newer ferry"));
        }
        let key = unhex::<32>(&stored_key)
            .map(ContainerKey::from_bytes)
            .ok_or_else(|| malformed("the key is not 32 bytes of hex"))?;
        let container_id =
            unhex::<16>(&stored.container_id).ok_or_else(|| malformed("bad container id"))?;
        if unhex::<16>(&stored.key_id) != Some(key.id()) {
            return Err(malformed("the key does not match its id"));
        }
        if now >= stored.expires_at {
            let expires = jiff::Timestamp::from_second(stored.expires_at)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| stored.expires_at.to_string());
            return Err(KeyFileError::Expired {
                path: path.to_path_buf(),
                expires,
            });
        }
        Ok(KeyFile {
            key,
            container_id,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyFile {
        KeyFile {
            key: ContainerKey::from_bytes([3; 32]),
            container_id: [9; 16],
            created_at: 100,
            expires_at: 200,
        }
    }

    #[test]
    fn round_trip_with_tight_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/round.key");
        sample().write(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        let back = KeyFile::read(&path, 150).unwrap();
        assert_eq!(back.key.expose(), &[3; 32]);
        assert_eq!(back.container_id, [9; 16]);
    }

    #[test]
    fn refuses_expired_exposed_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/round.key");
        sample().write(&path).unwrap();
        assert!(matches!(
            KeyFile::read(&path, 200),
            Err(KeyFileError::Expired { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            KeyFile::read(&path, 150),
            Err(KeyFileError::Exposed { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let text = fs::read_to_string(&path).unwrap().replace("0303", "0304");
        fs::write(&path, text).unwrap();
        assert!(matches!(
            KeyFile::read(&path, 150),
            Err(KeyFileError::Malformed { .. })
        ));
    }

    /// Reliability review, finding 16: a key file is read through no symlink, and one
    /// another account owns is refused, also when ferry runs as root.
    #[test]
    fn refuses_links_and_other_owners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/round.key");
        sample().write(&path).unwrap();
        let link = dir.path().join("k/link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            KeyFile::read(&link, 150),
            Err(KeyFileError::Io { .. })
        ));
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            assert!(matches!(
                KeyFile::read(&path, 150),
                Err(KeyFileError::Owner { owner: 65534, .. })
            ));
        }
    }
}
