//! What the importer sets besides content: owner, extended attributes and ACLs, mode
//! and time, on files as they are written and on folders when the task ends; and the
//! findings about them (attributes the destination would not keep).

use super::*;

impl Destination {
    /// Owner, extended attributes and ACLs (`xattrs`, when the record says what they
    /// are), mode and time, in that order: a change of owner clears file capabilities,
    /// and the mode set after an ACL makes its mask the source's.
    pub(super) fn apply_metadata(
        &self,
        fd: impl AsFd,
        record: &Record,
        xattrs: Option<&[package::Xattr]>,
        path: &Path,
    ) -> io::Result<()> {
        self.own(&fd, record)?;
        let mut mode = record.mode;
        if let Some(xattrs) = xattrs {
            let on = package::xattr::On::Fd(fd.as_fd());
            if self.set_xattrs(on, xattrs, false, path)? {
                // An ACL the destination would not take: the file is its owner's alone,
                // never wider open than at the source.
                mode &= !0o077;
            }
        }
        let time = Timespec {
            tv_sec: record.mtime_sec,
            tv_nsec: i64::from(record.mtime_nsec),
        };
        let usual = if record.kind == KIND_FILE {
            0o644
        } else {
            0o755
        };
        let usual = if mode == record.mode {
            usual
        } else {
            usual & !0o077
        };
        self.set_mode_and_time(fd, self.preserve.mode_bits(mode), usual, time)
    }

    /// Gives an item the source's owner and group, when the plan keeps them and it does
    /// not have them yet (a change of owner clears a file capability set before it).
    fn own(&self, fd: impl AsFd, record: &Record) -> io::Result<()> {
        if !self.preserve.owner {
            return Ok(());
        }
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_uid == record.uid && st.st_gid == record.gid {
            return Ok(());
        }
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(record.uid)),
            Some(rustix::fs::Gid::from_raw(record.gid)),
        )
        .map_err(errno)
    }

    /// Sets an item's attributes and ACLs as the plan carries them; each the
    /// destination refuses is noted (`xattr-not-kept`, `acl-not-kept`). True when an
    /// ACL was refused.
    pub(super) fn set_xattrs(
        &self,
        on: package::xattr::On<'_>,
        xattrs: &[package::Xattr],
        folder: bool,
        path: &Path,
    ) -> io::Result<bool> {
        let carry = self.carry;
        if !carry.any_xattrs() {
            return Ok(false);
        }
        let refused = package::xattr::apply(on, xattrs, carry, folder)?;
        let mut acl = false;
        for r in refused {
            let name = String::from_utf8_lossy(&r.name).into_owned();
            let (code, what, then) = if r.is_acl() {
                acl = true;
                (
                    FailureCode::AclNotKept,
                    "its ACL",
                    "it was left to its owner alone (mode without group and other rights); \
                     grant access there by hand, or migrate to a filesystem that keeps POSIX ACLs",
                )
            } else {
                (
                    FailureCode::XattrNotKept,
                    "the extended attribute",
                    "a filesystem that keeps extended attributes (of that size) would keep it",
                )
            };
            self.note(
                path,
                code,
                format!(
                    "the destination would not keep {what} ({name}): {}; {then}",
                    r.error
                ),
            );
        }
        Ok(acl)
    }

    /// Notes a finding about an item that is in place (an attribute not kept).
    fn note(&self, path: &Path, code: FailureCode, message: String) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push((
            path.to_path_buf(),
            code.as_str(),
            message,
        ));
    }

    /// The findings noted since the last call.
    pub fn take_notes(&self) -> Vec<(PathBuf, &'static str, String)> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Mode and modification time, as `preserve` asks. Without `preserve.mode` an item
    /// gets the usual mode (`usual`: 0644 for a file, 0755 for a folder) rather than
    /// the private one ferry creates it with while it is being written.
    fn set_mode_and_time(
        &self,
        fd: impl AsFd,
        mode: u32,
        usual: u32,
        time: Timespec,
    ) -> io::Result<()> {
        let mode = if self.preserve.mode { mode } else { usual };
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno)?;
        if self.preserve.mtime {
            rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: time,
                    last_modification: time,
                },
            )
            .map_err(errno)?;
        }
        Ok(())
    }

    /// Replaces the folders whose modes and times [`Destination::finish`] applies:
    /// `(path, mode, mtime in ns)`.
    pub fn set_folders(&self, folders: Vec<(PathBuf, u32, i128)>) {
        let narrowed = self.narrowed.lock().unwrap_or_else(|e| e.into_inner());
        let folders = folders
            .into_iter()
            .map(|(path, mode, ns)| {
                let time = Timespec {
                    tv_sec: ns.div_euclid(1_000_000_000) as i64,
                    tv_nsec: ns.rem_euclid(1_000_000_000) as i64,
                };
                let mode = if narrowed.contains(&path) {
                    mode & !0o077
                } else {
                    mode
                };
                (path, self.preserve.mode_bits(mode), time)
            })
            .collect();
        drop(narrowed);
        *self.folders.lock().unwrap_or_else(|e| e.into_inner()) = folders;
    }

    /// Applies the folders' modes and times, deepest first. Call when the task's imports
    /// are done.
    pub fn finish(&self) -> Vec<Outcome> {
        let mut folders =
            std::mem::take(&mut *self.folders.lock().unwrap_or_else(|e| e.into_inner()));
        folders.sort_by_key(|f| std::cmp::Reverse(f.0.components().count()));
        let mut out = Vec::new();
        for (path, mode, time) in folders {
            let result = (|| -> io::Result<()> {
                let bytes = path.as_os_str().as_bytes().to_vec();
                let parts = safe_components(&bytes).map_err(io::Error::other)?;
                let parent = self.parent(&parts, &mut Vec::new())?;
                let fd = rustix::fs::openat(
                    &parent,
                    OsStr::from_bytes(parts[parts.len() - 1]),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                self.set_mode_and_time(fd, mode, 0o755, time)
            })();
            if let Err(e) = result {
                out.push(Outcome::Failed {
                    path,
                    code: FailureCode::MetadataFailed.as_str(),
                    message: format!("cannot set the folder's mode or time: {e}"),
                });
            }
        }
        out
    }
}
