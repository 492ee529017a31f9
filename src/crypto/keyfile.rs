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
    /// The container's name (older key files have none: the id in hex is the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<String>,
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
    /// The container's name: see [`container_name`].
    pub container: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl KeyFile {
    /// The name of the container this key seals into.
    pub fn container_name(&self) -> String {
        self.container.clone()
    }
}

/// The name of a task round's container: the task's name (lowercase letters, digits and
/// single `-`, at most 24 of them), the round, the `owner` (six hex digits that tell the
/// state folder which made it: `PlanLayout::owner`), and 16 hex digits of the
/// container's random id, so that a person can tell containers apart and nobody can
/// guess one. Within 63 characters of lowercase letters, digits and `-`, as Azure and S3
/// accept.
pub fn container_name(task: &str, round: u32, owner: &str, container_id: &[u8; 16]) -> String {
    format!(
        "{}-r{round}-{owner}-{}",
        slug(task),
        hex(&container_id[..8])
    )
}

/// The round of `name` when it is the name [`container_name`] gives one of `task`'s
/// rounds made by `owner`. Names of another owner, or of a ferry before owners, are
/// never taken for one.
pub fn container_round(task: &str, owner: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(&slug(task))?.strip_prefix("-r")?;
    let (round, rest) = rest.split_once('-')?;
    let id = rest.strip_prefix(owner)?.strip_prefix('-')?;
    let digits = !round.is_empty() && round.bytes().all(|b| b.is_ascii_digit());
    let hex = id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if digits && hex {
        round.parse().ok()
    } else {
        None
    }
}

/// A task's name as the start of its containers' names.
pub fn slug(task: &str) -> String {
    let mut slug = String::new();
    for c in task.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 24 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "task".to_string()
    } else {
        slug.to_string()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
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
        let stored = Stored {
            version: 1,
            container_id: hex(&self.container_id),
            container: Some(self.container.clone()),
            key_id: hex(&self.key.id()),
            key: hex(self.key.expose()),
            created_at: self.created_at,
            expires_at: self.expires_at,
        };
        let text = Zeroizing::new(serde_json::to_vec_pretty(&stored).unwrap_or_default());
        drop(Zeroizing::new(stored.key));
        write_private(path, &text, true).map_err(|(action, source)| KeyFileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and checks the key file at `path`; `now` in Unix seconds.
    pub fn read(path: &Path, now: i64) -> Result<KeyFile, KeyFileError> {
        let text = read_private(path).map_err(|e| match e {
            Private::Io(source) => KeyFileError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            },
            Private::Exposed(mode) => KeyFileError::Exposed {
                path: path.to_path_buf(),
                mode,
            },
            Private::Owner(owner) => KeyFileError::Owner {
                path: path.to_path_buf(),
                owner,
            },
        })?;
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
        if let Some(name) = &stored.container
            && crate::staging::check_name(name).is_err()
        {
            return Err(malformed("bad container name"));
        }
        if now >= stored.expires_at {
            return Err(KeyFileError::Expired {
                path: path.to_path_buf(),
                expires: shown_time(stored.expires_at),
            });
        }
        Ok(KeyFile {
            key,
            container: stored.container.unwrap_or_else(|| hex(&container_id)),
            container_id,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
        })
    }
}

/// A Unix time as a person reads it.
pub fn shown_time(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// Writes `bytes` to `path` as a file only this account can read (mode 0600): to a
/// temporary name, synced, renamed, so that it is whole or absent. With
/// `protect_folder`, the folder is created (and kept) at mode 0700. The error says
/// which step failed.
pub fn write_private(
    path: &Path,
    bytes: &[u8],
    protect_folder: bool,
) -> Result<(), (&'static str, io::Error)> {
    if let Some(folder) = path.parent()
        && protect_folder
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|e| ("create the folder of", e))?;
        fs::set_permissions(folder, fs::Permissions::from_mode(0o700))
            .map_err(|e| ("protect the folder of", e))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // A partial file left by a killed run goes, and the new one is created fresh, never
    // written through an existing file or link.
    match fs::remove_file(&partial) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(("remove the stale partial", e)),
    }
    crate::failpoint::hit("key-write").map_err(|e| ("create", e))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| ("create", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ("write", e))?;
    fs::rename(&partial, path).map_err(|e| ("rename", e))?;
    if let Some(folder) = path.parent() {
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        fs::File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(|e| ("sync the folder of", e))?;
    }
    Ok(())
}

/// Why a private file was not read.
#[derive(Debug)]
pub enum Private {
    Io(io::Error),
    /// Others may read it (its mode).
    Exposed(u32),
    /// Another account owns it (its uid).
    Owner(u32),
}

/// Reads a file only this account may read: opened once, never through a symlink,
/// and refused when it is not a regular file, others could read it, or someone else
/// owns it (root too: such a file could have been planted).
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, Private> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Private::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is a symlink; it is only ever a regular file",
                ))
            } else {
                Private::Io(e)
            }
        })?;
    let meta = file.metadata().map_err(Private::Io)?;
    if !meta.is_file() {
        return Err(Private::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Private::Exposed(mode));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(Private::Owner(meta.uid()));
    }
    let mut text = Zeroizing::new(Vec::with_capacity(512));
    io::Read::read_to_end(&mut file, &mut text).map_err(Private::Io)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_readable_bounded_and_unguessable() {
        let id = [0xab; 16];
        assert_eq!(
            container_name("finance", 1, "0f1e2d", &id),
            "finance-r1-0f1e2d-abababababababab"
        );
        assert_eq!(
            container_name("HR_Files (old)", 12, "0f1e2d", &id),
            "hr-files-old-r12-0f1e2d-abababababababab"
        );
        assert_eq!(
            container_name("__", 2, "0f1e2d", &id),
            "task-r2-0f1e2d-abababababababab"
        );
        let round = |task, name| container_round(task, "0f1e2d", name);
        assert_eq!(
            round("HR_Files (old)", "hr-files-old-r12-0f1e2d-abababababababab"),
            Some(12)
        );
        assert_eq!(
            round("hr", "hr-files-old-r12-0f1e2d-abababababababab"),
            None
        );
        // Another owner's, and one named before owners: never this owner's.
        assert_eq!(round("finance", "finance-r1-999999-abababababababab"), None);
        assert_eq!(round("finance", "finance-r1-abababababababab"), None);
        assert_eq!(round("finance", "finance-r1-0f1e2d-abababababababa"), None);
        assert_eq!(round("finance", "finance-r-0f1e2d-abababababababab"), None);
        let long = container_name(&"x".repeat(200), u32::MAX, "0f1e2d", &id);
        assert!(long.len() <= 63, "{long}");
        for name in [long, container_name("é-ü", 1, "0f1e2d", &id)] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert!(!name.contains("--") && !name.starts_with('-'), "{name}");
        }
    }

    fn sample() -> KeyFile {
        KeyFile {
            key: ContainerKey::from_bytes([3; 32]),
            container_id: [9; 16],
            container: container_name("Finance 2024", 3, "0f1e2d", &[9; 16]),
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
        assert_eq!(back.container, "finance-2024-r3-0f1e2d-0909090909090909");
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
