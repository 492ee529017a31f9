//! Hard links at the destination: a file's other names, made once the file is in place.

use super::*;

/// One other name of a file: where it goes, and the source's size and time (the file's).
#[derive(Clone, Debug)]
pub struct OtherName {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

impl Destination {
    /// Gives the file in place at `leader` (inode `leader_id`, 0 when not known; content
    /// hash `hash`) its other names: each a hard link, made under a temporary name beside
    /// its final one and renamed into place as a file would be, the conflict rules
    /// deciding over whatever is there. One outcome per name; all are durable when it
    /// returns.
    pub fn make_links(
        &self,
        leader: &Path,
        leader_id: u64,
        hash: [u8; 32],
        names: &[OtherName],
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = names
            .iter()
            .map(|name| self.make_link(leader, leader_id, hash, name))
            .collect();
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Imported { .. }))
            && let Err(e) = crate::failpoint::hit("folder-sync")
                .and_then(|()| rustix::fs::syncfs(&self.fd).map_err(errno))
        {
            for outcome in &mut outcomes {
                if let Outcome::Imported { path, .. } = outcome {
                    *outcome = Outcome::Failed {
                        path: std::mem::take(path),
                        code: write_code(&e),
                        message: format!("the link is in place, but cannot be made durable: {e}"),
                    };
                }
            }
        }
        outcomes
    }

    fn make_link(
        &self,
        leader: &Path,
        leader_id: u64,
        hash: [u8; 32],
        name: &OtherName,
    ) -> Outcome {
        let path = name.path.clone();
        let failed = |code: &'static str, message: String| Outcome::Failed {
            path: name.path.clone(),
            code,
            message,
        };
        let leader_bytes = leader.as_os_str().as_bytes();
        let (Ok(leader_parts), Ok(parts)) = (
            safe_components(leader_bytes),
            safe_components(path.as_os_str().as_bytes()),
        ) else {
            return failed(DESTINATION_REFUSED, "unsafe path".into());
        };
        let mut created = Vec::new();
        let opened = self
            .parent(&leader_parts, &mut created)
            .and_then(|leader_dir| Ok((leader_dir, self.parent(&parts, &mut created)?)));
        let (leader_dir, dir) = match opened {
            Ok(dirs) => dirs,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return failed(DESTINATION_REFUSED, e.to_string());
            }
            Err(e) => return failed(write_code(&e), format!("cannot create its folder: {e}")),
        };
        let leader_name = OsStr::from_bytes(leader_parts[leader_parts.len() - 1]);
        let st = match rustix::fs::statat(&leader_dir, leader_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::RegularFile
                    && (leader_id == 0 || st.st_ino == leader_id) =>
            {
                st
            }
            _ => {
                return failed(
                    FailureCode::DestinationChanged.as_str(),
                    format!(
                        "its file's first name, {}, is not the file ferry put at the destination; no link was made",
                        crate::shown::escape_path(leader)
                    ),
                );
            }
        };
        let stamp = Stamp {
            hash,
            dest_mtime_ns: stat_time_ns(&st),
            dest_id: st.st_ino,
            // One file under every name: the size and time it was read with.
            source: Some((name.size, name.mtime_ns)),
        };
        let link_name = parts[parts.len() - 1];
        let found = existing(&dir, link_name);
        if found.is_some_and(|f| f.ino == st.st_ino) {
            return Outcome::Unchanged { path, stamp };
        }
        if let Some(f) = found {
            let record = Record {
                kind: KIND_FILE,
                size: name.size,
                mtime_sec: name.mtime_ns.div_euclid(1_000_000_000) as i64,
                mtime_nsec: name.mtime_ns.rem_euclid(1_000_000_000) as u32,
                ..Record::default()
            };
            // Something there with the source's size and time is a copy of the same
            // file: it gives way to the link. Anything else, the conflict rules decide.
            if let Ok(Some(kept @ Outcome::Failed { .. })) = self.verdict(&path, Some(f), &record) {
                return kept;
            }
        }
        let temp = temp_name("hlnk");
        let made = crate::failpoint::hit("link")
            .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
            .and_then(|()| {
                rustix::fs::linkat(
                    &leader_dir,
                    leader_name,
                    &dir,
                    temp.as_str(),
                    AtFlags::empty(),
                )
            })
            .and_then(|()| {
                let flags = if found.is_none() {
                    rustix::fs::RenameFlags::NOREPLACE
                } else {
                    rustix::fs::RenameFlags::empty()
                };
                rustix::fs::renameat_with(
                    &dir,
                    temp.as_str(),
                    &dir,
                    OsStr::from_bytes(link_name),
                    flags,
                )
                .inspect_err(|_| {
                    let _ = rustix::fs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
                })
            });
        match made {
            Ok(()) => Outcome::Imported {
                path,
                bytes: 0,
                stamp,
            },
            Err(rustix::io::Errno::EXIST) => failed(
                FailureCode::DestinationChanged.as_str(),
                "something was put at the destination while the link was made; it was kept".into(),
            ),
            Err(e) => {
                let e = errno(e);
                failed(write_code(&e), format!("cannot make the hard link: {e}"))
            }
        }
    }
}
