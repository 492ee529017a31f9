//! Extended attributes and POSIX ACLs: which ones an item carries, how they are read at
//! the source and how the importer sets them.
//!
//! A POSIX ACL is two attributes, `system.posix_acl_access` and (folders only)
//! `system.posix_acl_default`, whose values the kernel defines; they travel as they
//! are, with their numeric user and group ids (as `rsync --numeric-ids` does). Only
//! the namespaces below are carried: `user.*`, `security.*` and `trusted.*` (the last
//! two only when the plan asks and ferry runs as root) and the two ACLs. Others
//! (`system.nfs4_acl`, say) are the filesystem's own and are left alone.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;

use super::Xattr;

pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// What metadata beyond mode, owner and times travels with an item, as the plan's
/// `preserve` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carry {
    /// `user.*` attributes.
    pub user: bool,
    /// `security.*` and `trusted.*` attributes.
    pub privileged: bool,
    /// POSIX ACLs.
    pub acls: bool,
    /// Holes of sparse files.
    pub sparse: bool,
}

impl Carry {
    /// What a task's `preserve` carries. With `rules: sharepoint` no attribute or ACL
    /// travels (SharePoint keeps none); `security.*` and `trusted.*` ones only with the
    /// owner and when ferry runs as root.
    pub fn of(preserve: &crate::plan::Preserve) -> Carry {
        let posix = !preserve.sharepoint;
        Carry {
            user: posix && preserve.xattrs,
            privileged: posix
                && preserve.security_xattrs
                && preserve.owner
                && rustix::process::geteuid().is_root(),
            acls: posix && preserve.acls,
            sparse: preserve.sparse,
        }
    }

    /// Whether an attribute of this name travels.
    pub fn wants(&self, name: &[u8]) -> bool {
        if name == ACL_ACCESS || name == ACL_DEFAULT {
            return self.acls;
        }
        if name.starts_with(b"user.") {
            return self.user;
        }
        if name.starts_with(b"security.") || name.starts_with(b"trusted.") {
            return self.privileged;
        }
        false
    }

    /// Whether any attribute travels at all (none: no `listxattr` per item).
    pub fn any_xattrs(&self) -> bool {
        self.user || self.privileged || self.acls
    }
}

/// Where attributes are read or set: an open file or folder, or a symlink itself.
#[derive(Clone, Copy, Debug)]
pub enum On<'a> {
    Fd(BorrowedFd<'a>),
    /// A path whose last component is not followed (`lgetxattr`, `lsetxattr`).
    Link(&'a Path),
}

fn not_supported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

fn list(on: On<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let got = match on {
            On::Fd(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
            On::Link(path) => rustix::fs::llistxattr(path, &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {
                let need = match on {
                    On::Fd(fd) => rustix::fs::flistxattr_query(fd),
                    On::Link(path) => rustix::fs::llistxattr_query(path),
                }?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) if not_supported(e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn get(on: On<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    let mut buf = vec![0u8; 256];
    loop {
        let got = match on {
            On::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
            On::Link(path) => rustix::fs::lgetxattr(path, name, &mut buf[..]),
        };
        match got {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) if buf.len() < super::MAX_XATTR_VALUE => {
                let need = match on {
                    On::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
                    On::Link(path) => rustix::fs::lgetxattr_query(path, name),
                }?;
                buf.resize(need.max(buf.len() * 2).min(super::MAX_XATTR_VALUE), 0);
            }
            // Removed since it was listed: not there.
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The attributes of an item that travel, in the order the source lists them.
pub fn read(on: On<'_>, carry: Carry) -> io::Result<Vec<Xattr>> {
    if !carry.any_xattrs() {
        return Ok(Vec::new());
    }
    let names = list(on)?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !carry.wants(name) || !super::carried_name(name) {
            continue;
        }
        if let Some(value) = get(on, name)? {
            out.push(Xattr {
                name: name.to_vec(),
                value,
            });
        }
    }
    Ok(out)
}

/// An attribute the destination would not take.
#[derive(Debug)]
pub struct NotKept {
    pub name: Vec<u8>,
    pub error: io::Error,
}

impl NotKept {
    pub fn is_acl(&self) -> bool {
        self.name == ACL_ACCESS || self.name == ACL_DEFAULT
    }
}

/// Sets `xattrs` (those `carry` lets through) on an item at the destination, and
/// removes the attributes of those namespaces it has and the source does not. Returns
/// the attributes the destination refused; any other error is the item's failure.
pub fn apply(on: On<'_>, xattrs: &[Xattr], carry: Carry, folder: bool) -> io::Result<Vec<NotKept>> {
    let mut refused = Vec::new();
    for x in xattrs.iter().filter(|x| carry.wants(&x.name)) {
        let name = OsStr::from_bytes(&x.name);
        let set = match on {
            On::Fd(fd) => {
                rustix::fs::fsetxattr(fd, name, &x.value, rustix::fs::XattrFlags::empty())
            }
            On::Link(path) => {
                rustix::fs::lsetxattr(path, name, &x.value, rustix::fs::XattrFlags::empty())
            }
        };
        match set {
            Ok(()) => {}
            // Not supported, too large, no room, not allowed here (a `user.*` attribute
            // on a symlink), or a value this filesystem does not accept.
            Err(
                e @ (Errno::NOTSUP
                | Errno::TOOBIG
                | Errno::NOSPC
                | Errno::RANGE
                | Errno::PERM
                | Errno::INVAL
                | Errno::ACCESS),
            ) => refused.push(NotKept {
                name: x.name.clone(),
                error: e.into(),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    // What the item has at the destination and not at the source goes, in the
    // namespaces that travel: an ACL a new file inherited from a default ACL, an
    // attribute removed at the source since the last round. (After the new ones are
    // set: an ACL is never missing for a moment.)
    let present = list(on)?;
    for name in present.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !carry.wants(name) || xattrs.iter().any(|x| x.name == name) {
            continue;
        }
        if name == ACL_DEFAULT && !folder {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let removed = match on {
            On::Fd(fd) => rustix::fs::fremovexattr(fd, name),
            On::Link(path) => rustix::fs::lremovexattr(path, name),
        };
        match removed {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) if not_supported(e) || e == Errno::PERM => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// A symlink's path for [`On::Link`], through its folder's handle (so that nothing on
/// the way is followed): `/proc/self/fd/N/name`.
pub fn link_path(dir: &impl AsFd, name: &[u8]) -> std::path::PathBuf {
    use std::os::fd::AsRawFd as _;
    let mut path = std::path::PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
    path.push(OsStr::from_bytes(name));
    path
}

/// The attributes of an open file.
pub fn of_file(file: &fs::File, carry: Carry) -> io::Result<Vec<Xattr>> {
    read(On::Fd(file.as_fd()), carry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_namespaces_asked_for_travel() {
        let all = Carry {
            user: true,
            privileged: true,
            acls: true,
            sparse: true,
        };
        for name in [
            &b"user.origin"[..],
            b"security.selinux",
            b"trusted.overlay",
            ACL_ACCESS,
            ACL_DEFAULT,
        ] {
            assert!(all.wants(name), "{name:?}");
        }
        assert!(!all.wants(b"system.nfs4_acl"));
        let user = Carry {
            user: true,
            ..Carry::default()
        };
        assert!(user.wants(b"user.x") && !user.wants(b"security.capability"));
        assert!(!user.wants(ACL_ACCESS));
    }

    #[test]
    fn attributes_round_trip_on_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        let file = fs::File::open(&path).unwrap();
        let carry = Carry {
            user: true,
            acls: true,
            ..Carry::default()
        };
        if rustix::fs::fsetxattr(
            &file,
            "user.origin",
            b"nas1",
            rustix::fs::XattrFlags::empty(),
        )
        .is_err()
        {
            eprintln!("this filesystem keeps no user attributes; skipped");
            return;
        }
        let read = of_file(&file, carry).unwrap();
        assert_eq!(
            read,
            vec![Xattr {
                name: b"user.origin".to_vec(),
                value: b"nas1".to_vec()
            }]
        );
        let other = dir.path().join("g");
        fs::write(&other, b"y").unwrap();
        let target = fs::File::open(&other).unwrap();
        assert!(
            apply(On::Fd(target.as_fd()), &read, carry, false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(of_file(&target, carry).unwrap(), read);
    }
}
