//! The scan: checks that a task's roots can be used, then walks its source in parallel
//! and judges every item — filters first, then the known-issue rules, then collisions
//! between siblings — streaming each item, with its findings, to the caller.
//!
//! The walk only `lstat`s: it never opens a file, so a FIFO or a device cannot hang it,
//! and it never reads data. It never writes to the source or the destination; the
//! only write is a probe file, created and removed, that proves the destination and the
//! staging folder are writable. Names stay bytes (`OsString`) from the directory listing
//! to the report. An item inside a folder that will not migrate does not migrate either
//! (`blocked`), and the contents of a folder that cannot be listed are unknown: they are
//! never counted as migrated.

pub mod filters;
pub mod rules;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jwalk::{ClientState, DirEntry, Parallelism, WalkDirGeneric};

use self::filters::{Decision, FileFacts, Filter, Filtered};
use self::rules::{Code, Finding, Item, ItemKind, Rules, Severity};
use crate::plan::raw::Symlinks;
use crate::plan::{Plan, Task};

/// Why a scan could not start or finish. Each is fatal for the task (exit 5): nothing
/// has moved, and running again once it is fixed is safe.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(
        "source {} cannot be read: {source}; check that it is mounted and that this account may list it",
        path.display()
    )]
    SourceUnreadable { path: PathBuf, source: io::Error },
    #[error("source {} is not a folder", path.display())]
    SourceNotFolder { path: PathBuf },
    #[error(
        "destination {} is not writable: {source}; check that this account can create files in {}",
        path.display(), probed.display()
    )]
    DestinationUnwritable {
        path: PathBuf,
        probed: PathBuf,
        source: io::Error,
    },
    #[error("cannot start the scan's threads: {0}")]
    Threads(String),
    #[error("cannot write {}: {source}; check that the working folder is writable and has space", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Metadata of one item, from `lstat` (or `stat` for a followed symlink).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i128,
    /// Creation time, where the filesystem records it and `created_after` asked for it.
    pub birth_ns: Option<i128>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Bytes allocated on disk.
    pub allocated: u64,
}

impl Meta {
    fn from_statx(x: &rustix::fs::Statx) -> Meta {
        let birth = x.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0;
        let ns = |t: &rustix::fs::StatxTimestamp| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        Meta {
            size: x.stx_size,
            mtime_ns: ns(&x.stx_mtime),
            birth_ns: birth.then(|| ns(&x.stx_btime)),
            mode: u32::from(x.stx_mode),
            uid: x.stx_uid,
            gid: x.stx_gid,
            dev: rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor),
            ino: x.stx_ino,
            nlink: u64::from(x.stx_nlink),
            allocated: x.stx_blocks * 512,
        }
    }

    fn of(m: &Metadata, birth: bool) -> Meta {
        Meta {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            birth_ns: if birth {
                m.created()
                    .ok()
                    .and_then(|t| jiff::Timestamp::try_from(t).ok().map(|t| t.as_nanosecond()))
            } else {
                None
            },
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            allocated: m.blocks() * 512,
        }
    }
}

/// What an item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Folder,
    /// A symlink migrated as a link (`symlinks: copy-link`), or skipped.
    Symlink {
        target: PathBuf,
    },
    /// A FIFO, socket or device.
    Special,
    /// Could not even be `lstat`ed.
    Unknown,
}

/// What happens to an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It migrates (perhaps with warnings).
    Migrate,
    /// A filter ruled it out.
    Filtered(Filtered),
    /// A finding of severity error (or the plan's own choice, for an info finding).
    Skipped,
    /// A folder above it does not migrate.
    Blocked,
}

/// One item of a task's source, judged.
#[derive(Clone, Debug)]
pub struct ScanEntry {
    /// The path below the source root.
    pub rel: PathBuf,
    /// The path below the destination root: `rel`, unless the plan renames invalid
    /// names (`invalid_names: replace`) or colliding ones (`case_collisions: rename`).
    pub dest: PathBuf,
    /// The real folder that lists it (under the source root, or under a followed
    /// symlink's target); it is read as `folder/<its name>`.
    pub folder: Arc<Path>,
    pub kind: EntryKind,
    pub meta: Meta,
    pub status: Status,
    pub findings: Vec<Finding>,
    /// Characters of `rel` (the destination path length the rules measure).
    pub path_chars: usize,
}

impl ScanEntry {
    /// Where to read the item.
    pub fn source(&self) -> PathBuf {
        self.folder.join(self.rel.file_name().unwrap_or_default())
    }

    /// The worst finding's severity.
    pub fn severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn is_folder(&self) -> bool {
        self.kind == EntryKind::Folder
    }
}

/// What a task's scan counted.
#[derive(Clone, Debug, Default)]
pub struct ScanTotals {
    /// Every item below the root (the root itself is not an item).
    pub items: u64,
    pub folders: u64,
    /// Items that are not folders: files, symlinks, special files.
    pub files: u64,
    pub folders_with_issues: u64,
    /// Items with a warning or an error, or blocked by their folder.
    pub items_with_issues: u64,
    pub filtered: u64,
    pub to_migrate: u64,
    /// Bytes of the files to migrate, each hard-linked file counted once.
    pub bytes_to_migrate: u64,
    pub max_path_chars: usize,
    /// Items whose worst finding is an error, and so on.
    pub errors: u64,
    pub warnings: u64,
    pub blocked: u64,
    /// Files kept although `created_after` is set, for want of a creation time.
    pub birth_unknown: u64,
}

impl ScanTotals {
    fn add(&mut self, entry: &ScanEntry, linked: &mut HashSet<(u64, u64)>) {
        self.items += 1;
        if entry.is_folder() {
            self.folders += 1;
        } else {
            self.files += 1;
        }
        self.max_path_chars = self.max_path_chars.max(entry.path_chars);
        let severity = entry.severity();
        let issue = severity >= Some(Severity::Warning) || entry.status == Status::Blocked;
        if issue {
            self.items_with_issues += 1;
            if entry.is_folder() {
                self.folders_with_issues += 1;
            }
        }
        match severity {
            Some(Severity::Error) => self.errors += 1,
            Some(Severity::Warning) => self.warnings += 1,
            _ => {}
        }
        match entry.status {
            Status::Filtered(_) => self.filtered += 1,
            Status::Blocked => self.blocked += 1,
            Status::Skipped => {}
            Status::Migrate => {
                self.to_migrate += 1;
                let once = entry.meta.nlink <= 1 || linked.insert((entry.meta.dev, entry.meta.ino));
                if entry.kind == EntryKind::File && once {
                    self.bytes_to_migrate += entry.meta.size;
                }
            }
        }
    }
}

/// Proves, before anything is read, that the task's roots can be used: the source can
/// be listed, and a file can be created (and removed) in the destination and the
/// staging folder — or, where they do not exist yet, in the nearest folder above them,
/// where ferry will create them. Nothing else is written.
pub fn check_access(plan: &Plan, task: &Task) -> Result<(), ScanError> {
    let source = &task.source;
    match fs::metadata(source) {
        Ok(m) if !m.is_dir() => {
            return Err(ScanError::SourceNotFolder {
                path: source.clone(),
            });
        }
        Ok(_) => {}
        Err(e) => {
            return Err(ScanError::SourceUnreadable {
                path: source.clone(),
                source: e,
            });
        }
    }
    if let Err(e) = fs::read_dir(source).and_then(|mut d| d.next().transpose()) {
        return Err(ScanError::SourceUnreadable {
            path: source.clone(),
            source: e,
        });
    }
    check_import_access(plan, task)
}

/// For a run that only imports: the destination must be writable; the source may well
/// be on another machine. (The staging is checked through its backend by the run.)
pub fn check_import_access(_plan: &Plan, task: &Task) -> Result<(), ScanError> {
    crate::state::probe(&task.destination).map_err(|(probed, e)| ScanError::DestinationUnwritable {
        path: task.destination.clone(),
        probed,
        source: e,
    })
}

/// Which account the scan runs as, to tell from mode bits whether it may read an item
/// (checking with `open` would cost a system call per file, and open FIFOs).
#[derive(Debug)]
struct Account {
    uid: u32,
    gids: Vec<u32>,
}

impl Account {
    fn current() -> Account {
        let uid = rustix::process::geteuid().as_raw();
        let mut gids: Vec<u32> = rustix::process::getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        gids.push(rustix::process::getegid().as_raw());
        Account { uid, gids }
    }

    /// Whether the mode bits let this account read a file, or list and enter a folder.
    /// Root reads everything (ACLs and root-squashed shares show up when read).
    fn may_read(&self, meta: &Meta, uid: u32, gid: u32, folder: bool) -> bool {
        if self.uid == 0 {
            return true;
        }
        let need = if folder { 0o5 } else { 0o4 };
        let bits = if uid == self.uid {
            meta.mode >> 6
        } else if self.gids.contains(&gid) {
            meta.mode >> 3
        } else {
            meta.mode
        };
        bits & need == need
    }
}

/// Everything a scan of one task needs, shared by the walk's threads.
#[derive(Debug)]
struct Context {
    rules: Rules,
    filter: Filter,
    symlinks: Symlinks,
    account: Account,
    /// The source root, canonical: followed and copied links must stay inside it.
    root: PathBuf,
    /// The plan keeps setuid and setgid bits (`preserve.setuid` with `owner`).
    keep_setuid: bool,
}

/// The (dev, inode) of a folder and of every folder above it on the logical path, to
/// recognise a symlink that leads back to an ancestor.
#[derive(Debug)]
struct Chain {
    id: (u64, u64),
    parent: Option<Arc<Chain>>,
}

fn chain_contains(mut chain: Option<&Arc<Chain>>, id: (u64, u64)) -> bool {
    while let Some(link) = chain {
        if link.id == id {
            return true;
        }
        chain = link.parent.as_ref();
    }
    false
}

/// What the walk knows about a folder while it judges the folder's children.
#[derive(Clone, Debug, Default)]
struct FolderState {
    rel: Option<Arc<Path>>,
    /// Where the folder lands below the destination root (after renames).
    dest: Option<Arc<Path>>,
    chars: usize,
    blocked: bool,
    chain: Option<Arc<Chain>>,
}

impl FolderState {
    fn depth(&self) -> usize {
        self.rel.as_ref().map_or(0, |rel| rel.components().count())
    }
}

/// A symlink to a folder that `symlinks: follow` walks after the main walk.
#[derive(Clone, Debug)]
struct Follow {
    target: PathBuf,
    state: FolderState,
}

/// What the walk's threads attach to each listed item.
#[derive(Debug, Default)]
struct Judged {
    entry: Option<ScanEntry>,
    follow: Option<Follow>,
}

#[derive(Debug, Default)]
struct Walk;

impl ClientState for Walk {
    type ReadDirState = FolderState;
    type DirEntryState = Judged;
}

/// Scans one task's source (after [`check_access`]), calling `sink` with every item
/// in walk order; returns the totals. `threads` is the size of the walk's own pool.
pub fn scan(
    task: &Task,
    threads: usize,
    now_ns: i128,
    sink: &mut dyn FnMut(&ScanEntry) -> Result<(), ScanError>,
) -> Result<ScanTotals, ScanError> {
    let settings = &task.settings;
    let root = fs::canonicalize(&task.source).map_err(|e| ScanError::SourceUnreadable {
        path: task.source.clone(),
        source: e,
    })?;
    let root_meta = fs::metadata(&root).map_err(|e| ScanError::SourceUnreadable {
        path: task.source.clone(),
        source: e,
    })?;
    let context = Arc::new(Context {
        rules: Rules {
            set: settings.rules,
            invalid_names: settings.invalid_names,
            case_collisions: settings.case_collisions,
            now_ns,
        },
        // Globs were checked when the plan was validated.
        filter: Filter::new(&settings.filters).expect("validated globs compile"),
        symlinks: settings.symlinks,
        account: Account::current(),
        root: root.clone(),
        keep_setuid: settings.preserve.keeps_setuid(),
    });
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("ferry-scan-{i}"))
            .build()
            .map_err(|e| ScanError::Threads(e.to_string()))?,
    );
    let mut totals = ScanTotals::default();
    let mut linked = HashSet::new();
    let mut queue = vec![Follow {
        target: task.source.clone(),
        state: FolderState {
            rel: None,
            dest: None,
            chars: 0,
            blocked: false,
            chain: Some(Arc::new(Chain {
                id: (root_meta.dev(), root_meta.ino()),
                parent: None,
            })),
        },
    }];
    while let Some(walk) = queue.pop() {
        let shared = Arc::clone(&context);
        let walker = WalkDirGeneric::<Walk>::new(&walk.target)
            .skip_hidden(false)
            .follow_links(false)
            .sort(true)
            .parallelism(Parallelism::RayonExistingPool {
                pool: Arc::clone(&pool),
                busy_timeout: None,
            })
            .root_read_dir_state(walk.state.clone())
            .process_read_dir(move |depth, folder, state, children| {
                if depth.is_some() {
                    judge_children(&shared, folder, state, children);
                }
            });
        for result in walker {
            let entry = match result {
                Ok(mut item) if item.depth > 0 => {
                    if let Some(follow) = item.client_state.follow.take() {
                        queue.push(follow);
                    }
                    // A folder whose listing failed comes back whole, its error kept
                    // beside it: its contents are unknown, and that is a finding, never
                    // a silent gap (finding 3).
                    let unlisted = item
                        .read_children
                        .as_ref()
                        .and_then(|r| r.error())
                        .map(|e| {
                            let io = e.io_error();
                            let denied =
                                io.is_some_and(|io| io.kind() == io::ErrorKind::PermissionDenied);
                            (
                                denied,
                                io.map_or_else(|| e.to_string(), ToString::to_string),
                            )
                        });
                    match item.client_state.entry.take() {
                        Some(mut entry) => {
                            if let Some((denied, reason)) = unlisted {
                                entry.status = Status::Skipped;
                                entry.findings.push(Finding::new(
                                    if denied {
                                        Code::PermissionDenied
                                    } else {
                                        Code::Unreadable
                                    },
                                    Severity::Error,
                                    format!(
                                        "cannot list this folder ({reason}); its contents are unknown and will not migrate"
                                    ),
                                ));
                            }
                            entry
                        }
                        None => continue,
                    }
                }
                Ok(_) => continue,
                Err(error) => {
                    // The folder itself was listed (and counted) by its parent; only its
                    // contents are unknown.
                    let entry = unlisted(&walk, error);
                    totals.items_with_issues += 1;
                    totals.errors += 1;
                    sink(&entry)?;
                    continue;
                }
            };
            if entry.meta.birth_ns.is_none()
                && entry.kind == EntryKind::File
                && context.filter.needs_birth_time()
                && entry.status == Status::Migrate
            {
                totals.birth_unknown += 1;
            }
            totals.add(&entry, &mut linked);
            sink(&entry)?;
        }
    }
    Ok(totals)
}

/// A folder the walk could not list: its contents are unknown.
fn unlisted(walk: &Follow, error: jwalk::Error) -> ScanEntry {
    let path = error.path().map(Path::to_path_buf).unwrap_or_default();
    let rel = path
        .strip_prefix(&walk.target)
        .map(|r| match &walk.state.rel {
            Some(base) => base.join(r),
            None => r.to_path_buf(),
        })
        .unwrap_or_else(|_| path.clone());
    let io = error.io_error();
    let code = match io.map(io::Error::kind) {
        Some(io::ErrorKind::PermissionDenied) => Code::PermissionDenied,
        _ => Code::Unreadable,
    };
    let reason = io.map_or_else(|| error.to_string(), ToString::to_string);
    ScanEntry {
        path_chars: chars(rel.as_os_str()),
        dest: rel.clone(),
        rel,
        folder: Arc::from(path.parent().unwrap_or(&path)),
        kind: EntryKind::Unknown,
        meta: Meta::default(),
        status: Status::Skipped,
        findings: vec![Finding::new(
            code,
            Severity::Error,
            format!(
                "cannot list this folder ({reason}); its contents are unknown and will not migrate"
            ),
        )],
    }
}

/// Characters of a name or path as the destination counts them: Unicode scalar values,
/// and one for each byte that is not UTF-8.
fn chars(name: &OsStr) -> usize {
    match name.to_str() {
        Some(s) if s.is_ascii() => s.len(),
        Some(s) => s.chars().count(),
        None => name
            .as_bytes()
            .utf8_chunks()
            .map(|c| c.valid().chars().count() + c.invalid().len())
            .sum(),
    }
}

/// Judges the children of one folder; runs on the walk's threads.
fn judge_children(
    context: &Context,
    folder: &Path,
    state: &FolderState,
    children: &mut [Result<DirEntry<Walk>, jwalk::Error>],
) {
    let depth = state.depth() + 1;
    // Children are stat-ed relative to their folder: no path is resolved again from
    // the root for every item.
    let handle = rustix::fs::open(
        folder,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok();
    let mut findings = Vec::new();
    for child in children.iter_mut() {
        let Ok(child) = child else { continue };
        let name = child.file_name.as_os_str();
        let rel: PathBuf = match &state.rel {
            Some(base) => base.join(name),
            None => PathBuf::from(name),
        };
        let kind = if child.file_type.is_dir() {
            ItemKind::Folder
        } else {
            ItemKind::File
        };
        let renamed = match context.rules.invalid_names {
            crate::plan::raw::InvalidNames::Replace => {
                rules::replacement(name, depth, kind, context.rules.set).map(OsString::from)
            }
            crate::plan::raw::InvalidNames::Skip => None,
        };
        let dest_name = renamed.as_deref().unwrap_or(name);
        let dest: PathBuf = match &state.dest {
            Some(base) => base.join(dest_name),
            None => PathBuf::from(dest_name),
        };
        let path_chars = if depth == 1 {
            chars(name)
        } else {
            state.chars + 1 + chars(name)
        };
        let (entry, follow) = judge(
            context,
            &mut findings,
            Seen {
                name,
                rel,
                dest,
                folder: &child.parent_path,
                handle: handle.as_ref(),
                depth,
                path_chars,
                parent: state,
            },
        );
        match (&entry.kind, entry.status, &follow) {
            // A folder that is filtered out or cannot be listed is not walked.
            (EntryKind::Folder, Status::Filtered(_), _) => child.read_children = None,
            (EntryKind::Folder, _, _)
                if entry.findings.iter().any(|f| {
                    matches!(f.code, Code::PermissionDenied | Code::SourcePathTooLong)
                }) =>
            {
                child.read_children = None;
            }
            (EntryKind::Folder, status, None) => {
                if let Some(read) = child.read_children.as_mut() {
                    read.client_read_state = Some(FolderState {
                        rel: Some(Arc::from(entry.rel.as_path())),
                        dest: Some(Arc::from(entry.dest.as_path())),
                        chars: entry.path_chars,
                        blocked: state.blocked || status != Status::Migrate,
                        chain: Some(Arc::new(Chain {
                            id: (entry.meta.dev, entry.meta.ino),
                            parent: state.chain.clone(),
                        })),
                    });
                }
            }
            _ => child.read_children = None,
        }
        child.client_state = Judged {
            entry: Some(entry),
            follow,
        };
    }
    judge_collisions(context, children);
}

/// One listed item, before it is judged.
struct Seen<'a> {
    name: &'a OsStr,
    rel: PathBuf,
    dest: PathBuf,
    folder: &'a Arc<Path>,
    /// The folder, open, when it could be opened.
    handle: Option<&'a rustix::fd::OwnedFd>,
    depth: usize,
    path_chars: usize,
    parent: &'a FolderState,
}

/// The item's own metadata (`lstat`), and its owner.
fn lstat(seen: &Seen<'_>, birth: bool) -> io::Result<(Meta, rustix::fs::FileType, (u32, u32))> {
    use rustix::fs::{AtFlags, FileType, StatxFlags};
    let Some(handle) = seen.handle else {
        let m = fs::symlink_metadata(seen.folder.join(seen.name))?;
        let kind = FileType::from_raw_mode(m.mode());
        return Ok((Meta::of(&m, birth), kind, (m.uid(), m.gid())));
    };
    let mask = if birth {
        StatxFlags::BASIC_STATS | StatxFlags::BTIME
    } else {
        StatxFlags::BASIC_STATS
    };
    let x = rustix::fs::statx(handle, seen.name, AtFlags::SYMLINK_NOFOLLOW, mask)?;
    let kind = FileType::from_raw_mode(u32::from(x.stx_mode));
    let mut meta = Meta::from_statx(&x);
    if !birth {
        meta.birth_ns = None;
    }
    Ok((meta, kind, (x.stx_uid, x.stx_gid)))
}

fn judge(
    context: &Context,
    scratch: &mut Vec<Finding>,
    seen: Seen<'_>,
) -> (ScanEntry, Option<Follow>) {
    use rustix::fs::FileType;
    let birth = context.filter.needs_birth_time();
    let stat = lstat(&seen, birth);
    let mut entry = ScanEntry {
        rel: seen.rel,
        dest: seen.dest,
        folder: Arc::clone(seen.folder),
        kind: EntryKind::Unknown,
        meta: Meta::default(),
        status: Status::Migrate,
        findings: Vec::new(),
        path_chars: seen.path_chars,
    };
    // Below this, a path cannot be opened or listed by name (finding 3): the item is
    // reported, and a folder's contents are unknown, never silently left out.
    let absolute = seen.folder.as_os_str().len() + 1 + seen.name.len();
    if absolute > rules::SYSTEM_MAX_PATH {
        entry.status = Status::Skipped;
        if let Ok((m, _, _)) = &stat {
            entry.meta = *m;
        }
        entry.findings.push(Finding::new(
            Code::SourcePathTooLong,
            Severity::Error,
            format!(
                "its absolute source path is {absolute} bytes, over the {} this system can open; \
                 it (and anything inside it) will not migrate: move or rename a folder above it, \
                 or make a task of a folder further down",
                rules::SYSTEM_MAX_PATH
            ),
        ));
        if let Ok((m, FileType::Directory, _)) = stat {
            entry.kind = EntryKind::Folder;
            entry.meta = m;
        } else if let Ok((m, FileType::RegularFile, _)) = stat {
            entry.kind = EntryKind::File;
            entry.meta = m;
        }
        return (entry, None);
    }
    let (mut meta, file_type, mut owner) = match stat {
        Ok(stat) => stat,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                Code::PermissionDenied
            } else {
                Code::Unreadable
            };
            entry.status = Status::Skipped;
            entry.findings.push(Finding::new(
                code,
                Severity::Error,
                format!("cannot read its metadata: {e}"),
            ));
            return (entry, None);
        }
    };
    let mut follow = None;
    entry.kind = match file_type {
        FileType::Directory => EntryKind::Folder,
        FileType::RegularFile => EntryKind::File,
        FileType::Symlink => {
            let target = fs::read_link(entry.source()).unwrap_or_default();
            EntryKind::Symlink { target }
        }
        _ => EntryKind::Special,
    };
    // Filters come first: an item the plan does not want is not judged further.
    let decision = match entry.kind {
        EntryKind::File => context.filter.file(
            &entry.rel,
            seen.name,
            FileFacts {
                size: meta.size,
                mtime_ns: meta.mtime_ns,
                birth_ns: meta.birth_ns,
            },
        ),
        _ => match context.filter.other(&entry.rel, seen.name) {
            Some(reason) => Decision::Drop(reason),
            None => Decision::Keep,
        },
    };
    if let Decision::Drop(reason) = decision {
        entry.meta = meta;
        entry.status = Status::Filtered(reason);
        return (entry, None);
    }
    if let EntryKind::Symlink { target } = &entry.kind {
        match symlink(context, &entry.source(), target, seen.parent) {
            Link::Skip(finding) => {
                entry.findings.push(finding);
            }
            Link::Copy(finding) => entry.findings.extend(finding),
            Link::AsFile(m) => {
                owner = (m.uid(), m.gid());
                meta = Meta::of(&m, birth);
                entry.kind = EntryKind::File;
            }
            Link::AsFolder(m, target) => {
                owner = (m.uid(), m.gid());
                meta = Meta::of(&m, birth);
                entry.kind = EntryKind::Folder;
                follow = Some(target);
            }
        }
    }
    entry.meta = meta;
    let kind = match entry.kind {
        EntryKind::File => ItemKind::File,
        EntryKind::Folder => ItemKind::Folder,
        EntryKind::Symlink { .. } => ItemKind::Symlink,
        EntryKind::Special | EntryKind::Unknown => ItemKind::Special,
    };
    scratch.clear();
    context.rules.judge(
        &Item {
            name: seen.name,
            kind,
            depth: seen.depth,
            size: meta.size,
            allocated: meta.allocated,
            nlink: meta.nlink,
            mtime_ns: meta.mtime_ns,
            path_chars: seen.path_chars,
        },
        scratch,
    );
    entry.findings.append(scratch);
    if matches!(kind, ItemKind::File | ItemKind::Folder)
        && meta.mode & 0o6000 != 0
        && !context.keep_setuid
    {
        let bits = match meta.mode & 0o6000 {
            0o4000 => "setuid",
            0o2000 => "setgid",
            _ => "setuid and setgid",
        };
        entry.findings.push(Finding::new(
            Code::SetuidCleared,
            Severity::Warning,
            format!(
                "the {bits} bit is cleared at the destination, whose owner is not the source's; \
                 `preserve: {{ owner: true, setuid: true }}` keeps it"
            ),
        ));
    }
    let folder = kind == ItemKind::Folder;
    if matches!(kind, ItemKind::File | ItemKind::Folder)
        && !context.account.may_read(&meta, owner.0, owner.1, folder)
    {
        entry.findings.push(Finding::new(
            Code::PermissionDenied,
            Severity::Error,
            if folder {
                "this account may not list this folder; its contents are unknown and will not migrate"
            } else {
                "this account may not read this file"
            },
        ));
    }
    entry.status = match entry.severity() {
        Some(Severity::Error | Severity::Info) => Status::Skipped,
        _ if seen.parent.blocked => {
            entry.findings.push(Finding::new(
                Code::ParentNotMigrated,
                Severity::Error,
                "a folder above it does not migrate, so it does not either",
            ));
            Status::Blocked
        }
        _ => Status::Migrate,
    };
    let follow = follow.map(|target| Follow {
        state: FolderState {
            rel: Some(Arc::from(entry.rel.as_path())),
            dest: Some(Arc::from(entry.dest.as_path())),
            chars: entry.path_chars,
            blocked: seen.parent.blocked || entry.status != Status::Migrate,
            chain: Some(Arc::new(Chain {
                id: (meta.dev, meta.ino),
                parent: seen.parent.chain.clone(),
            })),
        },
        target,
    });
    (entry, follow)
}

/// What to do with a symlink, by the plan's policy.
enum Link {
    /// Not migrated: the policy, or a link that cannot be followed.
    Skip(Finding),
    /// Migrated as a link, perhaps with a warning.
    Copy(Option<Finding>),
    /// Followed to a file inside the source.
    AsFile(Metadata),
    /// Followed to a folder inside the source, walked under the link's name.
    AsFolder(Metadata, PathBuf),
}

fn symlink(context: &Context, path: &Path, target: &Path, parent: &FolderState) -> Link {
    let shown = crate::shown::escape_path(target);
    if context.symlinks == Symlinks::Skip {
        return Link::Skip(Finding::new(
            Code::SymlinkSkipped,
            Severity::Info,
            format!("a symlink to \"{shown}\"; not migrated (`symlinks: skip`)"),
        ));
    }
    let copy = context.symlinks == Symlinks::CopyLink;
    let severity = if copy {
        Severity::Warning
    } else {
        Severity::Error
    };
    let outcome = if copy {
        "it migrates as a link"
    } else {
        "it is not followed and does not migrate"
    };
    let resolved = match fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(e) => {
            let (code, what) = if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                (Code::SymlinkLoop, "a symlink loop")
            } else {
                (Code::DanglingSymlink, "its target does not exist")
            };
            let finding = Finding::new(code, severity, format!("{what} (\"{shown}\"); {outcome}"));
            return if copy {
                Link::Copy(Some(finding))
            } else {
                Link::Skip(finding)
            };
        }
    };
    if !resolved.starts_with(&context.root) {
        let finding = Finding::new(
            Code::SymlinkEscapesRoot,
            severity,
            format!("points outside the source (\"{shown}\"); {outcome}"),
        );
        return if copy {
            Link::Copy(Some(finding))
        } else {
            Link::Skip(finding)
        };
    }
    if copy {
        return Link::Copy(None);
    }
    let meta = match fs::metadata(&resolved) {
        Ok(m) => m,
        Err(e) => {
            return Link::Skip(Finding::new(
                Code::Unreadable,
                Severity::Error,
                format!("cannot read the metadata of its target \"{shown}\": {e}"),
            ));
        }
    };
    if meta.is_dir() {
        if chain_contains(parent.chain.as_ref(), (meta.dev(), meta.ino())) {
            return Link::Skip(Finding::new(
                Code::SymlinkLoop,
                Severity::Error,
                format!("leads back to a folder above it (\"{shown}\"); not followed"),
            ));
        }
        Link::AsFolder(meta, resolved)
    } else if meta.is_file() {
        Link::AsFile(meta)
    } else {
        Link::Skip(Finding::new(
            Code::SpecialFile,
            Severity::Error,
            format!("points to a FIFO, socket or device (\"{shown}\"); never opened"),
        ))
    }
}

/// Siblings that would land on one name at a case-insensitive, normalising
/// destination: all but the first in byte order get a finding.
fn judge_collisions(context: &Context, children: &mut [Result<DirEntry<Walk>, jwalk::Error>]) {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Most folders have no collision: hash every folded name without allocating, and
    // fold names for real only where two hashes meet.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut hashed: Vec<(u64, usize)> = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        let Ok(child) = child else { continue };
        let Some(entry) = &child.client_state.entry else {
            continue;
        };
        if entry.status != Status::Migrate {
            continue;
        }
        // The name it lands under (after `invalid_names: replace`) is what collides.
        let shown = entry.dest.file_name().unwrap_or_default();
        let mut h = hasher.build_hasher();
        match shown.to_str() {
            Some(ascii) if ascii.is_ascii() => {
                for b in ascii.bytes() {
                    h.write_u8(b.to_ascii_lowercase());
                }
            }
            _ => h.write(&rules::fold(shown)),
        }
        hashed.push((h.finish(), i));
    }
    hashed.sort_unstable();
    let mut groups: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for run in hashed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        for (_, i) in run {
            let Ok(child) = &children[*i] else { continue };
            let Some(entry) = &child.client_state.entry else {
                continue;
            };
            groups
                .entry(rules::fold(entry.dest.file_name().unwrap_or_default()))
                .or_default()
                .push(*i);
        }
    }
    for members in groups.into_values().filter(|m| m.len() > 1) {
        let names: Vec<OsString> = members
            .iter()
            .map(|&i| {
                let entry = children[i]
                    .as_ref()
                    .ok()
                    .and_then(|c| c.client_state.entry.as_ref());
                entry
                    .and_then(|e| e.rel.file_name())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let refs: Vec<&OsStr> = names.iter().map(OsString::as_os_str).collect();
        let rename = context.rules.case_collisions == crate::plan::raw::CaseCollisions::Rename
            && context.rules.set != crate::plan::raw::RuleSet::Posix;
        for (number, (at, finding)) in rules::collisions(&refs, &context.rules)
            .into_iter()
            .enumerate()
        {
            let Ok(child) = &mut children[members[at]] else {
                continue;
            };
            let error = finding.severity == Severity::Error;
            let Some(entry) = child.client_state.entry.as_mut() else {
                continue;
            };
            if rename {
                let current = entry.dest.file_name().unwrap_or_default().to_owned();
                let numbered = rules::numbered(&current, number + 2);
                entry.dest.set_file_name(&numbered);
                if let Some(read) = child.read_children.as_mut()
                    && let Some(state) = read.client_read_state.as_mut()
                {
                    state.dest = Some(Arc::from(entry.dest.as_path()));
                }
            }
            entry.findings.push(finding);
            if error {
                entry.status = Status::Skipped;
                // Its contents would land in the winner's folder: walk them as blocked.
                if let Some(read) = child.read_children.as_mut()
                    && let Some(state) = read.client_read_state.as_mut()
                {
                    state.blocked = true;
                }
            }
        }
    }
}

/// Threads that walk a source unless `--workers` says otherwise: one per CPU, and one
/// more, because the thread that takes the walk's results in order spins while it waits
/// (measured in BENCHMARKS.md). Shares with slow metadata (NFS, SMB) gain from more.
pub fn default_walk_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 1
}
