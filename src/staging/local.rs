//! Local staging: a container is a folder of mode 0300 under `staging.path` — the
//! owner can create and open objects by name, nobody can list it.
//!
//! The folder is opened once while it is still listable, and every operation goes
//! through that handle (`openat`, `renameat`, `unlinkat`, `fsync`), so that the mode
//! can stay 0300 and no path is resolved twice. Writes go to a temporary name, are
//! synced, renamed into place, and the folder is synced: an object is either whole and
//! durable or absent.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::{Container, Staging, check_name};

/// Staging in a folder: each container is a folder in it.
#[derive(Debug)]
pub struct LocalStaging {
    path: PathBuf,
}

impl LocalStaging {
    pub fn new(path: &Path) -> LocalStaging {
        LocalStaging {
            path: path.to_path_buf(),
        }
    }
}

impl Staging for LocalStaging {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        check_name(name)?;
        Ok(Box::new(LocalContainer::open(&self.path, name)?))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let path = self.path.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                // A link or a file where the container belongs is not the container:
                // nothing is deleted, and the key that opens the data stays.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a container folder", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        crate::failpoint::hit("container-delete")?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        fs::remove_dir_all(&path)
    }

    fn probe(&self) -> io::Result<()> {
        crate::state::probe(&self.path).map_err(|(probed, e)| {
            io::Error::new(
                e.kind(),
                format!(
                    "{e}; check that this account can create files in {}",
                    probed.display()
                ),
            )
        })
    }

    fn describe(&self) -> String {
        format!("folder {}", self.path.display())
    }

    /// The container folders, with when each was last written.
    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let meta = entry.path().symlink_metadata()?;
            if name.starts_with(prefix) && meta.is_dir() {
                listed.push(super::Listed {
                    name,
                    written_at: Some(std::os::unix::fs::MetadataExt::mtime(&meta)),
                });
            }
        }
        Ok(listed)
    }
}

/// A container folder under the staging path.
#[derive(Debug)]
pub struct LocalContainer {
    path: PathBuf,
    dir: OwnedFd,
}

const TEMP_PREFIX: &str = ".partial-";

impl LocalContainer {
    /// Creates (or reopens) the container `name` under `staging`, which is created with
    /// mode 0700 when missing.
    pub fn open(staging: &Path, name: &str) -> io::Result<LocalContainer> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(staging)?;
        let path = staging.join(name);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
            }
            Err(e) => return Err(e),
        }
        let dir = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // From here on only by name: write and search, no read.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o300))?;
        Ok(LocalContainer { path, dir })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Container for LocalContainer {
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        check_name(name)?;
        crate::failpoint::hit("staging-put")?;
        let temp = format!("{TEMP_PREFIX}{name}");
        let _ = rustix::fs::unlinkat(&self.dir, temp.as_str(), AtFlags::empty());
        let fd = rustix::fs::openat(
            &self.dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let file = fs::File::from(fd);
        let mut out = io::BufWriter::with_capacity(1 << 20, file);
        let written = (|| {
            write(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            file.metadata().map(|m| m.len())
        })();
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = rustix::fs::unlinkat(&self.dir, temp.as_str(), AtFlags::empty());
                return Err(e);
            }
        };
        rustix::fs::renameat(&self.dir, temp.as_str(), &self.dir, name)?;
        rustix::fs::fsync(&self.dir)?;
        Ok(size)
    }

    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            fs::File::from(fd),
        )))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn objects_by_name_in_an_unlistable_folder() {
        let staging = tempfile::tempdir().unwrap();
        let c = LocalContainer::open(&staging.path().join("s"), "c1").unwrap();
        assert_eq!(fs::metadata(c.path()).unwrap().mode() & 0o777, 0o300);
        c.put("obj", &mut |w| w.write_all(b"hello")).unwrap();
        let mut back = String::new();
        c.get("obj").unwrap().read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello");
        // A failed write leaves nothing behind.
        let failed = c.put("bad", &mut |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert!(c.get("bad").is_err());
        assert!(c.put("../escape", &mut |_| Ok(())).is_err());
        assert!(c.exists("obj").unwrap());
        c.delete("obj").unwrap();
        c.delete("obj").unwrap();
        assert!(!c.exists("obj").unwrap());
        let path = c.path().to_path_buf();
        drop(c);
        LocalStaging::new(&staging.path().join("s"))
            .discard("c1")
            .unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn discarding_takes_everything_and_forgives_a_missing_container() {
        let folder = tempfile::tempdir().unwrap();
        let staging = LocalStaging::new(&folder.path().join("s"));
        staging.probe().unwrap();
        let c = staging.open("c1").unwrap();
        c.put("obj", &mut |w| w.write_all(b"data")).unwrap();
        staging.discard("c1").unwrap();
        assert!(!folder.path().join("s/c1").exists());
        staging.discard("c1").unwrap();
        assert!(staging.open("../c2").is_err());
        // A link where a container belongs is refused, and what it leads to is kept.
        let elsewhere = folder.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("keep"), "x").unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, folder.path().join("s/c3")).unwrap();
        assert!(staging.discard("c3").is_err());
        assert!(elsewhere.join("keep").exists());
        assert_eq!(fs::metadata(&elsewhere).unwrap().mode() & 0o777, 0o750);
    }
}
