//! One package stream into the destination: every record checked and written to a
//! temporary name, then — the whole package read and authenticated — every file renamed
//! into place; or, the package refused, nothing of it left.

use super::parts::write_part;
use super::records::{Records, Stream};
use super::*;

/// A file of this package written to its temporary name, waiting for the package's end.
struct Pending {
    dir: Arc<OwnedFd>,
    temp: String,
    name: Vec<u8>,
    path: PathBuf,
    bytes: u64,
    stamp: Stamp,
    /// Nothing was at the final name when the record was read: the rename must not
    /// replace whatever someone put there since (finding 16).
    absent: bool,
}

/// Imports one package stream (already authenticated segment by segment and
/// decompressed). Returns an outcome per record, or refuses the package whole.
pub fn import_stream<R: Read>(dest: &Destination, stream: R) -> Result<Vec<Outcome>, Refused> {
    let mut stream = Stream::begin(stream)?;
    import_records(dest, &mut stream)
}

/// Imports one package's records, from a stream or (direct mode) from the source.
pub(crate) fn import_records<S: Records>(
    dest: &Destination,
    stream: &mut S,
) -> Result<Vec<Outcome>, Refused> {
    let mut batch = Batch::new(dest);
    match batch.read(stream) {
        Ok(mut outcomes) => {
            outcomes.extend(batch.commit());
            Ok(outcomes)
        }
        Err(refused) => {
            batch.abandon();
            Err(refused)
        }
    }
}

/// Records read into the destination and not yet committed: their files wait under
/// temporary names. Direct mode reads a file that changed while it was copied again
/// into the same batch, so that the batch is committed (and journalled) once.
pub(crate) struct Batch<'a> {
    dest: &'a Destination,
    underway: Underway,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(dest: &'a Destination) -> Batch<'a> {
        Batch {
            dest,
            underway: Underway::default(),
        }
    }

    /// Reads `stream`'s records into the batch: the outcomes of those settled now
    /// (kept, failed, folders); the files written wait for [`Batch::commit`]. After an
    /// error the batch can only be abandoned.
    pub(crate) fn read<S: Records>(&mut self, stream: &mut S) -> Result<Vec<Outcome>, Refused> {
        read_all(self.dest, stream, &mut self.underway)
    }

    /// Renames every file of the batch into place, durably: their outcomes.
    pub(crate) fn commit(self) -> Vec<Outcome> {
        commit(self.dest, self.underway.pending)
    }

    /// Leaves nothing of the batch.
    pub(crate) fn abandon(self) {
        undo(self.dest, self.underway);
    }
}

/// The package's files are written in full; one sync of the destination's filesystem
/// makes all of them durable before any takes its final name (one call per package
/// rather than one per file), and another makes the renames durable before the caller
/// deletes the staged package.
fn commit(dest: &Destination, pending: Vec<Pending>) -> Vec<Outcome> {
    let synced = failpoint("sync").and_then(|()| rustix::fs::syncfs(&dest.fd));
    let mut outcomes = Vec::with_capacity(pending.len());
    for file in pending {
        let flags = if file.absent {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        let committed = synced.and_then(|()| failpoint("rename")).and_then(|()| {
            rustix::fs::renameat_with(
                &*file.dir,
                file.temp.as_str(),
                &*file.dir,
                OsStr::from_bytes(&file.name),
                flags,
            )
        });
        outcomes.push(match committed {
            Ok(()) => Outcome::Imported {
                path: file.path,
                bytes: file.bytes,
                stamp: file.stamp,
            },
            Err(e) => {
                let _ = rustix::fs::unlinkat(&*file.dir, file.temp.as_str(), AtFlags::empty());
                match e {
                    rustix::io::Errno::EXIST => Outcome::Failed {
                        path: file.path,
                        code: FailureCode::DestinationChanged.as_str(),
                        message: "something was put at the destination while the file was imported; it was kept".into(),
                    },
                    e => {
                        let e = errno(e);
                        Outcome::Failed {
                            path: file.path,
                            code: write_code(&e),
                            message: format!("cannot put the file in place: {e}"),
                        }
                    }
                }
            }
        });
    }
    // The renames must be durable before the caller journals the files as in place
    // and deletes their staged package: when that cannot be made sure, none of them
    // counts as imported (the next round finds them, and checks them).
    if let Err(e) = failpoint("folder-sync").and_then(|()| rustix::fs::syncfs(&dest.fd)) {
        let e = errno(e);
        for outcome in &mut outcomes {
            if let Outcome::Imported { path, .. } = outcome {
                *outcome = Outcome::Failed {
                    path: std::mem::take(path),
                    code: write_code(&e),
                    message: format!("the file is in place, but cannot be made durable: {e}"),
                };
            }
        }
    }
    outcomes
}

/// A failpoint as the errors of `rustix` calls.
fn failpoint(name: &'static str) -> rustix::io::Result<()> {
    crate::failpoint::hit(name)
        .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
}

/// A refused package leaves nothing: its temporary files, the assemblies it touched
/// and the folders it created go.
fn undo(dest: &Destination, underway: Underway) {
    for file in underway.pending {
        let _ = rustix::fs::unlinkat(&*file.dir, file.temp.as_str(), AtFlags::empty());
    }
    for path in underway.parts_touched {
        dest.assembly_failed(&path);
    }
    for folder in underway.created.iter().rev() {
        if let Some(parent) = &folder.parent {
            let _ = rustix::fs::unlinkat(parent, folder.name.as_os_str(), AtFlags::REMOVEDIR);
        }
    }
}

/// The folder of the last record: most records of a package share it.
type LastParent = Option<(Vec<u8>, Arc<OwnedFd>, bool)>;

/// What importing the records of a package leaves for its end: files waiting for their
/// final names, folders created, files in parts touched.
#[derive(Default)]
struct Underway {
    pending: Vec<Pending>,
    created: Vec<Created>,
    parts_touched: Vec<PathBuf>,
    last_parent: LastParent,
}

fn read_all<S: Records>(
    dest: &Destination,
    stream: &mut S,
    underway: &mut Underway,
) -> Result<Vec<Outcome>, Refused> {
    let mut outcomes = Vec::new();
    let mut seen = 0u32;
    let mut buf = vec![0u8; 256 * 1024];
    let mut data = 0u64;
    while let Some(record) = stream.record(seen)? {
        seen += 1;
        data = data.saturating_add(record.data_len());
        if data > dest.max_package_data && stream.bounded() {
            return Err(Refused::Stream(StreamError::Malformed(
                "more data than a package of this task may hold",
            )));
        }
        let parts = safe_components(&record.path).map_err(Refused::Path)?;
        let path = PathBuf::from(OsStr::from_bytes(&record.path));
        let name = parts[parts.len() - 1].to_vec();
        let (dir, fresh) = match parent_of(dest, &record, &parts, underway) {
            Ok(opened) => opened,
            Err(failed) => {
                // Its failure is recorded: the record's data is read past, and nothing
                // else is said of it.
                outcomes.push(*failed);
                let mut sink = None;
                stream.data(&record, None, &mut buf, &mut sink, false)?;
                stream.trailer()?;
                if record.parts > 1 {
                    dest.assembly_failed(&path);
                }
                continue;
            }
        };
        match record.kind {
            KIND_FOLDER => {
                stream.trailer()?;
                outcomes.push(folder(dest, &dir, &record, &name, path, underway));
            }
            KIND_SYMLINK => {
                stream.trailer()?;
                match symlink(dest, dir, &record, name, path) {
                    Written::Pending(p) => underway.pending.push(p),
                    Written::Done(o) => outcomes.push(o),
                }
            }
            KIND_FILE if record.metadata_only => {
                stream.trailer()?;
                outcomes.push(metadata_update(dest, &dir, &record, &name, path));
            }
            KIND_FILE if record.parts > 1 => {
                let outcome = write_part(
                    dest,
                    stream,
                    Some(dir),
                    &record,
                    &name,
                    &path,
                    &mut buf,
                    &mut underway.parts_touched,
                )?;
                outcomes.extend(outcome);
            }
            _ => {
                let target = Target {
                    dir: Some(dir),
                    fresh,
                    name,
                    path,
                };
                match write_file(dest, stream, target, &record, &mut buf)? {
                    Written::Pending(p) => underway.pending.push(p),
                    Written::Done(o) => outcomes.push(o),
                }
            }
        }
    }
    // Nothing may follow the end of the stream.
    stream.end()?;
    Ok(outcomes)
}

/// The folder a record goes into, opened (and created where missing) from the
/// destination's root, and whether this run created it; or the record's failure.
fn parent_of(
    dest: &Destination,
    record: &Record,
    parts: &[&[u8]],
    underway: &mut Underway,
) -> Result<(Arc<OwnedFd>, bool), Box<Outcome>> {
    let path = || PathBuf::from(OsStr::from_bytes(&record.path));
    let name_len = parts[parts.len() - 1].len();
    let parent_bytes = &record.path[..record.path.len() - name_len];
    let cached = underway
        .last_parent
        .as_ref()
        .filter(|(p, _, _)| p.as_slice() == parent_bytes)
        .map(|(_, fd, fresh)| (Arc::clone(fd), *fresh));
    let opened = match cached {
        Some(hit) => Ok(hit),
        None => dest
            .parent_fresh(parts, &mut underway.created)
            .map(|(fd, fresh)| (Arc::new(fd), fresh)),
    };
    match opened {
        Ok((dir, fresh)) => {
            underway.last_parent = Some((parent_bytes.to_vec(), Arc::clone(&dir), fresh));
            Ok((dir, fresh))
        }
        // A folder on the way is a symlink or a file: the destination's doing, not the
        // package's. This item is refused; the package's others go on (finding 9).
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(Box::new(Outcome::Failed {
            path: path(),
            code: DESTINATION_REFUSED,
            message: e.to_string(),
        })),
        Err(e) => Err(Box::new(Outcome::Failed {
            path: path(),
            code: write_code(&e),
            message: format!("cannot create its folder: {e}"),
        })),
    }
}

/// A folder record: created (mode and time come at the round's end), or found.
fn folder(
    dest: &Destination,
    dir: &Arc<OwnedFd>,
    record: &Record,
    name: &[u8],
    path: PathBuf,
    underway: &mut Underway,
) -> Outcome {
    let mut made_here = dest.made.lock().unwrap_or_else(|e| e.into_inner());
    let made = rustix::fs::mkdirat(&**dir, OsStr::from_bytes(name), Mode::from_raw_mode(0o700));
    let existed = match made {
        Ok(()) => {
            underway
                .created
                .push(Created::new(dir, OsStr::from_bytes(name)));
            made_here.insert(path.clone());
            false
        }
        // A folder this run made for the items inside it is this run's too: migrated,
        // not "already at the destination". Something that is not a folder is never
        // the folder.
        Err(rustix::io::Errno::EXIST) => {
            let folder =
                rustix::fs::statat(&**dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Directory
                    });
            if !folder {
                return Outcome::Failed {
                    path,
                    code: DESTINATION_REFUSED,
                    message: "a symlink or file is at the destination where this folder belongs; nothing is written through it".into(),
                };
            }
            !made_here.contains(&path)
        }
        Err(e) => {
            let e = errno(e);
            return Outcome::Failed {
                path,
                code: write_code(&e),
                message: format!("cannot create the folder: {e}"),
            };
        }
    };
    drop(made_here);
    if let Err(e) = folder_xattrs(dest, dir, record, name, &path, existed) {
        return Outcome::Failed {
            path,
            code: write_code(&e),
            message: format!("cannot set the folder's attributes or ACLs: {e}"),
        };
    }
    dest.folders
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((
            path.clone(),
            dest.preserve.mode_bits(record.mode),
            Timespec {
                tv_sec: record.mtime_sec,
                tv_nsec: i64::from(record.mtime_nsec),
            },
        ));
    let stamp = same_stamp(record, [0; 32], inode_at(dir, name));
    if existed {
        Outcome::Unchanged { path, stamp }
    } else {
        Outcome::Imported {
            path,
            bytes: 0,
            stamp,
        }
    }
}

/// A folder's attributes and ACLs, set as it is created (or found): its mode stays what
/// it was (0700 for a folder of this run's) until the task ends, though setting an ACL
/// changes it.
fn folder_xattrs(
    dest: &Destination,
    dir: &OwnedFd,
    record: &Record,
    name: &[u8],
    path: &Path,
    existed: bool,
) -> io::Result<()> {
    if !dest.carry.any_xattrs() {
        return Ok(());
    }
    let fd = rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let before = rustix::fs::fstat(&fd).map_err(errno)?.st_mode & 0o7777;
    let acl_refused = dest.set_xattrs(
        package::xattr::On::Fd(fd.as_fd()),
        &record.xattrs,
        true,
        path,
    )?;
    let mode = if existed { before } else { 0o700 };
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno)?;
    if acl_refused {
        // Its mode at the task's end leaves out group and other rights.
        dest.narrowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf());
    }
    Ok(())
}

/// A file whose metadata alone changed: its mode, owner, time, attributes and ACL are
/// applied to the file at the destination, which must be the one ferry put there (its
/// size and time as the index recorded them). Its content is not touched.
fn metadata_update(
    dest: &Destination,
    dir: &OwnedFd,
    record: &Record,
    name: &[u8],
    path: PathBuf,
) -> Outcome {
    let failed = |path: PathBuf, code: &'static str, message: String| Outcome::Failed {
        path,
        code,
        message,
    };
    let known = dest.known(&path).copied();
    let found = existing(dir, name);
    if found.is_none() {
        return failed(
            path,
            FailureCode::DestinationGone.as_str(),
            "only the file's metadata changed at the source, and the destination no longer has the file; the next round brings it whole".into(),
        );
    }
    let ours = match (found, known) {
        (Some(f), Some(k)) => f.regular && f.size == k.size && f.mtime_ns == k.dest_mtime_ns,
        _ => false,
    };
    let (Some(found), Some(known), true) = (found, known, ours) else {
        return failed(
            path,
            FailureCode::DestinationChanged.as_str(),
            "only the file's metadata changed at the source, but the destination's file is not the one ferry put there (someone changed it); it was kept".into(),
        );
    };
    // Size and time alone can be copied onto a file someone put there: it must also
    // have the owner ferry gave it (the source's with `preserve.owner`, else ferry's
    // own), or its new mode (a setuid bit) and attributes would go to that file.
    let owner = if dest.preserve.owner {
        record.uid
    } else {
        rustix::process::geteuid().as_raw()
    };
    let opened = rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
    .and_then(|fd| {
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_ino != found.ino {
            return Err(io::Error::other("the file was replaced meanwhile"));
        }
        Ok((fd, st.st_uid))
    });
    let opened = match opened {
        Ok((_, uid)) if uid != owner => {
            // Perhaps the owner is what changed at the source; perhaps someone put
            // this file there. Either way it is not touched, and the next round
            // brings the file whole, under the conflict rules.
            return failed(
                path,
                FailureCode::DestinationGone.as_str(),
                format!(
                    "only the file's metadata changed at the source, but the destination's file belongs to user {uid}, not the owner it was given; it was not touched, and the next round brings the file whole"
                ),
            );
        }
        other => other.map(|(fd, _)| fd),
    };
    let result = opened.and_then(|fd| {
        // Closed to group and others while its ACL and mode change: removing an ACL
        // before the new mode is set would give the group the old mask's rights for a
        // moment.
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7700)).map_err(errno)?;
        dest.apply_metadata(&fd, record, Some(&record.xattrs), &path)
            .map(|()| dest.stamp(&fd, record, known.hash))
    });
    match result {
        Ok(stamp) => Outcome::Imported {
            path,
            bytes: 0,
            stamp,
        },
        Err(e) => failed(
            path,
            write_code(&e),
            format!("cannot apply the file's new metadata: {e}"),
        ),
    }
}

/// A symlink record: unchanged when the link is there already, else made under a
/// temporary name that takes the final one with the package.
fn symlink(
    dest: &Destination,
    dir: Arc<OwnedFd>,
    record: &Record,
    name: Vec<u8>,
    path: PathBuf,
) -> Written {
    let existing = rustix::fs::readlinkat(&dir, OsStr::from_bytes(&name), Vec::new());
    if existing.is_ok_and(|t| t.as_bytes() == record.target.as_slice()) {
        let dest_id = inode_at(&dir, &name);
        return Written::Done(Outcome::Unchanged {
            path,
            stamp: same_stamp(record, [0; 32], dest_id),
        });
    }
    let temp = temp_name("link");
    let made = rustix::fs::symlinkat(OsStr::from_bytes(&record.target), &dir, temp.as_str())
        .map_err(errno)
        .and_then(|()| {
            // A link's own attributes (`lsetxattr`): Linux allows `trusted.*` and
            // `security.*` ones on a link, never `user.*`.
            if record.xattrs.is_empty() {
                return Ok(());
            }
            let at = package::xattr::link_path(&*dir, temp.as_bytes());
            let on = package::xattr::On::Link(&at);
            dest.set_xattrs(on, &record.xattrs, false, &path)
                .map(|_| ())
        });
    match made {
        Ok(()) => Written::Pending(Pending {
            // The link keeps its inode when it takes its name.
            stamp: same_stamp(record, [0; 32], inode_at(&dir, temp.as_bytes())),
            dir,
            temp,
            name,
            path,
            bytes: 0,
            absent: false,
        }),
        Err(e) => {
            let _ = rustix::fs::unlinkat(&*dir, temp.as_str(), AtFlags::empty());
            Written::Done(Outcome::Failed {
                path,
                code: write_code(&e),
                message: format!("cannot create the link: {e}"),
            })
        }
    }
}

enum Written {
    Pending(Pending),
    Done(Outcome),
}

/// Where a whole file goes: its folder (`None` when it could not be opened), whether
/// this run created that folder, and its name and path.
struct Target {
    dir: Option<Arc<OwnedFd>>,
    fresh: bool,
    name: Vec<u8>,
    path: PathBuf,
}

/// A whole file: written to a temporary name beside its final one and checked, or
/// found to be there already, or kept as the destination has it.
fn write_file<S: Records>(
    dest: &Destination,
    stream: &mut S,
    at: Target,
    record: &Record,
    buf: &mut [u8],
) -> Result<Written, Refused> {
    let Target {
        dir,
        fresh,
        name,
        path,
    } = at;
    // In a folder this run created, nothing can be in the way: no need to look.
    let found = if fresh {
        None
    } else {
        dir.as_ref().and_then(|d| existing(d, &name))
    };
    // `verify: all` settles a file with the same size and time by its content, after
    // the data has been read; otherwise size and time decide now.
    let (check_content, skip) = match dest.verdict(&path, found, record) {
        Ok(skip) => (false, skip),
        Err(()) => (true, None),
    };
    let target = match (&dir, &skip) {
        (Some(dir), None) => match temp_file(dir) {
            Ok(target) => Some(target),
            Err(e) => {
                let mut sink = None;
                stream.data(record, None, buf, &mut sink, false)?;
                stream.trailer()?;
                return Ok(Written::Done(Outcome::Failed {
                    path,
                    code: write_code(&e),
                    message: format!("cannot create a temporary file: {e}"),
                }));
            }
        },
        _ => None,
    };
    let mut write_error = None;
    let hash = stream.data(
        record,
        target.as_ref().map(|(f, _)| f),
        buf,
        &mut write_error,
        dest.verify != Verify::None,
    )?;
    let trailer = stream.trailer()?;
    let discard = |target: &Option<(fs::File, String)>| {
        if let (Some(dir), Some((_, temp))) = (&dir, target) {
            let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
        }
    };
    if !trailer.ok {
        discard(&target);
        return Ok(Written::Done(Outcome::Failed {
            path,
            code: FailureCode::ChangedDuringRead.as_str(),
            message: "the file changed while it was read; this copy was discarded".into(),
        }));
    }
    let verified = match hash {
        Some(hash) => hash == trailer.part_hash && trailer.part_hash == trailer.file_hash,
        None => true,
    };
    if !verified {
        discard(&target);
        return Err(Refused::Hash(crate::shown::escape_path(&path).into_owned()));
    }
    if let Some(outcome) = skip {
        return Ok(Written::Done(match outcome {
            Outcome::Unchanged { path, stamp } => Outcome::Unchanged {
                path,
                stamp: Stamp {
                    hash: trailer.file_hash,
                    ..stamp
                },
            },
            other => other,
        }));
    }
    if check_content
        && let (Some(d), Some(f)) = (&dir, found)
        && let Some(outcome) = by_content(dest, d, &name, &path, f, record, trailer.file_hash, buf)
    {
        discard(&target);
        return Ok(Written::Done(outcome));
    }
    let (Some(dir), Some((file, temp))) = (dir, target) else {
        // The folder could not be created; already reported.
        return Ok(Written::Done(Outcome::Failed {
            path,
            code: FailureCode::WriteFailed.as_str(),
            message: "its folder could not be created".into(),
        }));
    };
    let finished = match write_error {
        Some(e) => Err(e),
        // A sparse file's holes up to its end; its metadata, synced with the rest of
        // the package before it is renamed into place.
        None => (if record.extents.is_some() {
            file.set_len(record.size)
        } else {
            Ok(())
        })
        .and_then(|()| dest.apply_metadata(&file, record, Some(&record.xattrs), &path)),
    };
    if let Err(e) = finished {
        let _ = rustix::fs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        return Ok(Written::Done(Outcome::Failed {
            path,
            code: write_code(&e),
            message: format!("cannot write the file: {e}"),
        }));
    }
    let stamp = dest.stamp(&file, record, trailer.file_hash);
    Ok(Written::Pending(Pending {
        dir,
        temp,
        name,
        path,
        bytes: record.size,
        stamp,
        absent: found.is_none(),
    }))
}

/// A new temporary file in `dir`, only ferry's: created exclusively, mode 0600.
fn temp_file(dir: &OwnedFd) -> io::Result<(fs::File, String)> {
    crate::failpoint::hit("temp-file")?;
    let temp = temp_name("tmp");
    let fd = rustix::fs::openat(
        dir,
        temp.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(errno)?;
    Ok((fs::File::from(fd), temp))
}

/// `verify: all` on a file with the same size and time: the destination's content
/// decides. `None` when it differs in a way that lets the file be replaced.
#[expect(clippy::too_many_arguments, reason = "one record's every fact")]
fn by_content(
    dest: &Destination,
    dir: &OwnedFd,
    name: &[u8],
    path: &Path,
    found: Found,
    record: &Record,
    file_hash: [u8; 32],
    buf: &mut [u8],
) -> Option<Outcome> {
    match existing_matches(dir, name, record.size, &file_hash, buf) {
        Ok(true) => Some(Outcome::Unchanged {
            path: path.to_path_buf(),
            stamp: same_stamp(record, file_hash, found.ino),
        }),
        Ok(false) => dest.differs(path, found, Why::Content),
        // What cannot be read cannot be shown to be ours: never overwritten silently.
        Err(_) => dest.differs(path, found, Why::Unreadable),
    }
}
