//! Files in parts: each part into the file's assembly, a file in a 0700 work folder of
//! ferry's own beside the final name; the whole file checked from disk and committed
//! once every part is in and journalled. A run that stops inside a file resumes it.

use super::records::Records;
use super::*;

/// Where a file in parts stands.
#[derive(Debug)]
pub(super) enum Assembly {
    /// Parts `0..next` are durable in `data` inside the work folder `work`, which ferry
    /// created 0700 beside the final name: nobody else can reach the file by name, and
    /// it is checked (owner, type, links) whenever it is opened.
    Writing {
        work: String,
        work_fd: OwnedFd,
        file: fs::File,
        next: u32,
    },
    /// The destination already has the file (same size and time): parts are read past.
    Skipping,
    /// A part failed: the rest are read past.
    Failed,
}

/// The name of the assembled file inside its work folder.
pub(super) const ASSEMBLY_FILE: &str = "data";

/// The owner, type and link count of an assembly file, or of its work folder: ferry's
/// own (this account), a regular file with no other name, a 0700 folder. Anything else
/// is someone else's doing and is never committed (finding 2b).
fn owned(fd: impl AsFd, folder: bool) -> Result<(), String> {
    let st = rustix::fs::fstat(&fd).map_err(|e| errno(e).to_string())?;
    let me = rustix::process::geteuid().as_raw();
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    let ok = st.st_uid == me
        && if folder {
            kind == rustix::fs::FileType::Directory && st.st_mode & 0o777 == 0o700
        } else {
            kind == rustix::fs::FileType::RegularFile && st.st_nlink == 1
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the {} ferry assembles the file in is not its own (owner {}, mode {:o}, {} links): someone else changed it; not committed",
            if folder { "folder" } else { "file" },
            st.st_uid,
            st.st_mode & 0o7777,
            st.st_nlink
        ))
    }
}

impl Destination {
    fn take_assembly(&self, path: &Path) -> Option<Assembly> {
        self.assembling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path)
    }

    fn put_assembly(&self, path: &Path, assembly: Assembly) {
        self.assembling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), assembly);
    }

    /// Marks the file at `path` failed: its assembly is removed and later parts are read
    /// past.
    pub fn assembly_failed(&self, path: &Path) {
        if let Some(Assembly::Writing { work_fd, work, .. }) = self.take_assembly(path) {
            remove_work(&work_fd, &work);
        }
        self.put_assembly(path, Assembly::Failed);
    }

    /// Removes the assembly of the file at `path` (the file starts over from its first
    /// part), or, when it is not in memory, the work folder `work` beside the file.
    pub fn drop_assembly(&self, path: &Path, work: Option<&str>) {
        match self.take_assembly(path) {
            Some(Assembly::Writing { work_fd, work, .. }) => remove_work(&work_fd, &work),
            _ => {
                let Some(work) = work else { return };
                let bytes = path.as_os_str().as_bytes();
                let Ok(parts) = safe_components(bytes) else {
                    return;
                };
                if let Ok(dir) = self.parent(&parts, &mut Vec::new())
                    && let Ok(work_fd) = rustix::fs::openat(
                        &dir,
                        work,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    && owned(&work_fd, true).is_ok()
                {
                    remove_work(&work_fd, work);
                }
            }
        }
    }

    /// Takes up the assembly `work` of the file at `path` that an earlier run of the
    /// round left, with parts `0..next` in it (as journalled). It must still be ferry's
    /// own; otherwise the file starts again from its first part.
    pub fn resume_assembly(&self, path: &Path, work: &str, next: u32) -> Result<(), String> {
        let bytes = path.as_os_str().as_bytes();
        let parts = safe_components(bytes)?;
        let dir = self
            .parent(&parts, &mut Vec::new())
            .map_err(|e| e.to_string())?;
        let work_fd = rustix::fs::openat(
            &dir,
            work,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(e).to_string())?;
        owned(&work_fd, true)?;
        let fd = rustix::fs::openat(
            &work_fd,
            ASSEMBLY_FILE,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(e).to_string())?;
        owned(&fd, false)?;
        self.put_assembly(
            path,
            Assembly::Writing {
                work: work.to_string(),
                work_fd,
                file: fs::File::from(fd),
                next,
            },
        );
        Ok(())
    }
}

/// Removes an assembly and its (then empty) work folder `work`.
fn remove_work(work_fd: &OwnedFd, work: &str) {
    let _ = rustix::fs::unlinkat(work_fd, ASSEMBLY_FILE, AtFlags::empty());
    if let Ok(parent) = rustix::fs::openat(
        work_fd,
        "..",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = rustix::fs::unlinkat(&parent, work, AtFlags::REMOVEDIR);
    }
}

/// Creates the work folder and the assembly file of a file in parts, beside its final
/// name: a folder of a name no one can predict, 0700, and in it the file, `O_EXCL`.
fn new_assembly(dir: &OwnedFd) -> io::Result<(String, OwnedFd, fs::File)> {
    let work = temp_name("work");
    rustix::fs::mkdirat(dir, work.as_str(), Mode::from_raw_mode(0o700)).map_err(errno)?;
    let opened = (|| {
        let work_fd = rustix::fs::openat(
            dir,
            work.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        owned(&work_fd, true).map_err(io::Error::other)?;
        crate::failpoint::hit("temp-file")?;
        let fd = rustix::fs::openat(
            &work_fd,
            ASSEMBLY_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno)?;
        Ok((work_fd, fs::File::from(fd)))
    })();
    match opened {
        Ok((work_fd, file)) => Ok((work, work_fd, file)),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, work.as_str(), AtFlags::REMOVEDIR);
            Err(e)
        }
    }
}

/// The assembly a part goes into: the one under way; for a first part, a new one (or
/// none to write, when the destination has the file already); for a later part with
/// no assembly, a failed one: its earlier parts are not here (the assembly was lost),
/// and the round stages the file again.
fn assembly_for(
    dest: &Destination,
    dir: &OwnedFd,
    record: &Record,
    name: &[u8],
    path: &Path,
) -> io::Result<Assembly> {
    if let Some(state) = dest.take_assembly(path) {
        return Ok(state);
    }
    if record.part != 0 {
        return Ok(Assembly::Failed);
    }
    let same = existing(dir, name).is_some_and(|f| same_as(f, record));
    // With `verify: all`, a file with the same size and time is assembled anyway and
    // settled by its content when it is complete.
    if same && dest.verify != Verify::All {
        return Ok(Assembly::Skipping);
    }
    let (work, work_fd, file) = new_assembly(dir)?;
    Ok(Assembly::Writing {
        work,
        work_fd,
        file,
        next: 0,
    })
}

/// One part of a file in parts, into the file's assembly; with the last part, the whole
/// file is read back from disk, checked against the source's hash, and committed.
#[expect(clippy::too_many_arguments, reason = "one part's every fact")]
pub(super) fn write_part<S: Records>(
    dest: &Destination,
    stream: &mut S,
    dir: Option<Arc<OwnedFd>>,
    record: &Record,
    name: &[u8],
    path: &Path,
    buf: &mut [u8],
    parts_touched: &mut Vec<PathBuf>,
) -> Result<Vec<Outcome>, Refused> {
    let skip = |stream: &mut S, buf: &mut [u8]| -> Result<package::Trailer, Refused> {
        let mut sink = None;
        stream.data(record, None, buf, &mut sink, false)?;
        stream.trailer()
    };
    let Some(dir) = dir else {
        skip(stream, buf)?;
        return Ok(Vec::new());
    };
    let last = record.part + 1 == record.parts;
    let failed = |code: &'static str, message: String| {
        dest.assembly_failed(path);
        Ok(vec![Outcome::Failed {
            path: path.to_path_buf(),
            code,
            message,
        }])
    };
    let state = match assembly_for(dest, &dir, record, name, path) {
        Ok(state) => state,
        Err(e) => {
            skip(stream, buf)?;
            return failed(
                write_code(&e),
                format!("cannot create the file's temporary copy: {e}"),
            );
        }
    };
    let (work, work_fd, file, next) = match state {
        Assembly::Failed => {
            skip(stream, buf)?;
            dest.put_assembly(path, Assembly::Failed);
            return Ok(Vec::new());
        }
        Assembly::Skipping => {
            let trailer = skip(stream, buf)?;
            if !trailer.ok {
                return failed(
                    FailureCode::ChangedDuringRead.as_str(),
                    "the file changed while it was read; the next round will try again".into(),
                );
            }
            if !last {
                dest.put_assembly(path, Assembly::Skipping);
                return Ok(Vec::new());
            }
            return Ok(vec![Outcome::Unchanged {
                path: path.to_path_buf(),
                stamp: same_stamp(record, trailer.file_hash, 0),
            }]);
        }
        Assembly::Writing {
            work,
            work_fd,
            file,
            next,
        } => (work, work_fd, file, next),
    };
    if record.part != next {
        skip(stream, buf)?;
        remove_work(&work_fd, &work);
        return failed(
            FailureCode::NotStaged.as_str(),
            format!(
                "part {} arrived where part {next} was expected; the file was not committed and the round stages it again",
                record.part
            ),
        );
    }
    parts_touched.push(path.to_path_buf());
    dest.put_assembly(path, Assembly::Failed);
    let mut write_error = None;
    let read = stream
        .data(record, Some(&file), buf, &mut write_error, false)
        .and_then(|_| stream.trailer());
    let trailer = match read {
        Ok(trailer) => trailer,
        Err(refused) => {
            // The package is refused: the file cannot be made of its parts.
            remove_work(&work_fd, &work);
            return Err(refused);
        }
    };
    // Written: a later refusal of this package must not take the file with it.
    parts_touched.pop();
    let writing = Writing {
        work,
        work_fd,
        file,
        next,
    };
    Ok(settle_part(
        dest,
        path,
        record,
        &trailer,
        write_error,
        writing,
    ))
}

/// An assembly being written: its work folder, the file, and the part it expects.
struct Writing {
    work: String,
    work_fd: OwnedFd,
    file: fs::File,
    next: u32,
}

/// A part whose data was read into the assembly: checked, synced, and the assembly put
/// back for the next part (the last part sets the file's length and says what the whole
/// file must be).
fn settle_part(
    dest: &Destination,
    path: &Path,
    record: &Record,
    trailer: &package::Trailer,
    write_error: Option<io::Error>,
    writing: Writing,
) -> Vec<Outcome> {
    let Writing {
        work,
        work_fd,
        file,
        next,
    } = writing;
    let last = record.part + 1 == record.parts;
    let failed = |code: &'static str, message: String| {
        dest.assembly_failed(path);
        vec![Outcome::Failed {
            path: path.to_path_buf(),
            code,
            message,
        }]
    };
    let fail = |code: &'static str, message: String| {
        remove_work(&work_fd, &work);
        failed(code, message)
    };
    if !trailer.ok {
        return fail(
            FailureCode::ChangedDuringRead.as_str(),
            "the file changed while it was read; its parts were discarded and the next round will try again".into(),
        );
    }
    if let Some(e) = write_error
        .or_else(|| crate::failpoint::hit("sync").err())
        .or_else(|| file.sync_data().err())
    {
        if disk_full(&e) {
            // The parts already in stay, as journalled (their staged objects may be
            // gone): the run stops, and its next run writes this part again.
            dest.put_assembly(
                path,
                Assembly::Writing {
                    work,
                    work_fd,
                    file,
                    next,
                },
            );
            return vec![Outcome::Failed {
                path: path.to_path_buf(),
                code: DISK_FULL,
                message: format!("cannot write the file: {e}"),
            }];
        }
        return fail(write_code(&e), format!("cannot write the file: {e}"));
    }
    // The file's attributes and ACLs come with its last part, and go on the assembly
    // now: it is ferry's alone (0600, in a 0700 folder) until it takes its name.
    let mut mode = record.mode;
    if last {
        match dest.set_xattrs(
            package::xattr::On::Fd(file.as_fd()),
            &record.xattrs,
            false,
            path,
        ) {
            Ok(true) => mode &= !0o077,
            Ok(false) => {}
            Err(e) => {
                return fail(
                    write_code(&e),
                    format!("cannot set the file's attributes: {e}"),
                );
            }
        }
    }
    let whole = last.then_some(crate::state::journal::WholeFile {
        size: record.size,
        mode,
        uid: record.uid,
        gid: record.gid,
        mtime_sec: record.mtime_sec,
        mtime_nsec: record.mtime_nsec,
        hash: trailer.file_hash,
    });
    if last
        && let Err(e) = file
            .set_len(record.size)
            .and_then(|()| crate::failpoint::hit("sync"))
            .and_then(|()| file.sync_all())
    {
        return fail(write_code(&e), format!("cannot write the file: {e}"));
    }
    dest.put_assembly(
        path,
        Assembly::Writing {
            work: work.clone(),
            work_fd,
            file,
            next: next + 1,
        },
    );
    vec![Outcome::PartWritten {
        path: path.to_path_buf(),
        bytes: record.len,
        part: record.part,
        work,
        whole,
    }]
}

impl Destination {
    /// Commits a file in parts whose every part is in (and journalled): the file is
    /// still ferry's own, and the whole of it, read back from disk, is the source's
    /// (unless `verify: none`, or `written_here`: direct mode wrote every part in this
    /// run from the very bytes it hashed, as a whole file is written); then it takes its
    /// name. The outcome is the file's.
    pub fn commit_assembly(
        &self,
        path: &Path,
        whole: &crate::state::journal::WholeFile,
        written_here: bool,
    ) -> Outcome {
        let failed = |code: &'static str, message: String| Outcome::Failed {
            path: path.to_path_buf(),
            code,
            message,
        };
        let Some(Assembly::Writing {
            work,
            work_fd,
            file,
            ..
        }) = self.take_assembly(path)
        else {
            return failed(
                FailureCode::NotStaged.as_str(),
                "the file's parts are not at the destination any more; the round stages it again"
                    .into(),
            );
        };
        let fail = |code: &'static str, message: String| {
            remove_work(&work_fd, &work);
            failed(code, message)
        };
        let bytes = path.as_os_str().as_bytes();
        let parts = match safe_components(bytes) {
            Ok(parts) => parts,
            Err(e) => return fail(DESTINATION_REFUSED, e),
        };
        let name = parts[parts.len() - 1];
        let dir = match self.parent(&parts, &mut Vec::new()) {
            Ok(dir) => dir,
            Err(e) => return fail(DESTINATION_REFUSED, e.to_string()),
        };
        let record = whole_record(bytes, whole);
        let mut buf = vec![0u8; 1 << 20];
        if let Err(reason) = owned(&file, false) {
            return fail(DESTINATION_REFUSED, reason);
        }
        if self.verify != Verify::None && !written_here {
            match package::sparse::matches(&file, whole.size, &whole.hash, &mut buf) {
                Ok(true) => {}
                Ok(false) => {
                    return fail(
                        FailureCode::VerifyFailed.as_str(),
                        "the assembled file, read back from disk, does not match the source's hash; not committed".into(),
                    );
                }
                Err(e) => return fail(write_code(&e), format!("cannot read back the file: {e}")),
            }
        }
        // What the destination has at the final name decides whether it is replaced.
        let found = existing(&dir, name);
        if let Some(outcome) = self.settled(&dir, name, path, found, &record, whole.hash, &mut buf)
        {
            remove_work(&work_fd, &work);
            return outcome;
        }
        if let Err(e) = self
            .apply_metadata(&file, &record, None, path)
            .and_then(|()| crate::failpoint::hit("sync"))
            .and_then(|()| file.sync_all())
        {
            return fail(
                write_code(&e),
                format!("cannot set the file's metadata: {e}"),
            );
        }
        let flags = if found.is_none() {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        let failpoint = |name| {
            crate::failpoint::hit(name)
                .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
        };
        let committed = failpoint("rename")
            .and_then(|()| {
                rustix::fs::renameat_with(
                    &work_fd,
                    ASSEMBLY_FILE,
                    &dir,
                    OsStr::from_bytes(name),
                    flags,
                )
            })
            .and_then(|()| failpoint("folder-sync"))
            .and_then(|()| rustix::fs::fsync(&dir));
        match committed {
            Ok(()) => {
                let _ = rustix::fs::unlinkat(&dir, work.as_str(), AtFlags::REMOVEDIR);
                Outcome::Imported {
                    path: path.to_path_buf(),
                    bytes: 0,
                    stamp: self.stamp(&file, &record, whole.hash),
                }
            }
            Err(rustix::io::Errno::EXIST) => fail(
                FailureCode::DestinationChanged.as_str(),
                "something was put at the destination while the file was imported; it was kept"
                    .into(),
            ),
            Err(e) => {
                let e = errno(e);
                fail(write_code(&e), format!("cannot put the file in place: {e}"))
            }
        }
    }

    /// What is at a file in parts' final name, when it settles the file without a
    /// commit: the same content (unchanged), or a file that must be kept.
    #[expect(clippy::too_many_arguments, reason = "one file's every fact")]
    fn settled(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        path: &Path,
        found: Option<Found>,
        record: &Record,
        hash: [u8; 32],
        buf: &mut [u8],
    ) -> Option<Outcome> {
        match found? {
            f if same_as(f, record) => match existing_matches(dir, name, record.size, &hash, buf) {
                Ok(true) => Some(Outcome::Unchanged {
                    path: path.to_path_buf(),
                    stamp: same_stamp(record, hash, f.ino),
                }),
                Ok(false) => self.differs(path, f, Why::Content),
                Err(_) => self.differs(path, f, Why::Unreadable),
            },
            f => self.differs(path, f, Why::SizeOrTime),
        }
    }

    /// Whether the file in parts at `path` is at the destination already, committed by
    /// a run that stopped before it could journal so: the file there is a regular file
    /// of the whole file's size whose content, read from disk, has its hash.
    pub fn committed_already(
        &self,
        path: &Path,
        whole: &crate::state::journal::WholeFile,
    ) -> Option<Outcome> {
        let bytes = path.as_os_str().as_bytes();
        let parts = safe_components(bytes).ok()?;
        let dir = self.parent(&parts, &mut Vec::new()).ok()?;
        let fd = rustix::fs::openat(
            &dir,
            OsStr::from_bytes(parts[parts.len() - 1]),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let file = fs::File::from(fd);
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() != whole.size {
            return None;
        }
        let mut buf = vec![0u8; 1 << 20];
        let same = package::sparse::matches(&file, whole.size, &whole.hash, &mut buf).ok()?;
        same.then(|| Outcome::Imported {
            path: path.to_path_buf(),
            bytes: 0,
            stamp: Stamp {
                hash: whole.hash,
                dest_mtime_ns: time_ns(
                    std::os::unix::fs::MetadataExt::mtime(&meta),
                    std::os::unix::fs::MetadataExt::mtime_nsec(&meta),
                ),
                dest_id: std::os::unix::fs::MetadataExt::ino(&meta),
                source: source_of(&whole_record(path.as_os_str().as_bytes(), whole)),
            },
        })
    }
}

/// The record a whole file in parts stands for, from what its last part said.
fn whole_record(path: &[u8], whole: &crate::state::journal::WholeFile) -> Record {
    Record {
        kind: KIND_FILE,
        path: path.to_vec(),
        mode: whole.mode,
        uid: whole.uid,
        gid: whole.gid,
        mtime_sec: whole.mtime_sec,
        mtime_nsec: whole.mtime_nsec,
        size: whole.size,
        part: 0,
        parts: 1,
        offset: 0,
        len: whole.size,
        ..Record::default()
    }
}
