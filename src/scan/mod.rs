//! The scan: walks a task's source in parallel and judges every item — filters first, then the known-issue rules, then collisions
//! between siblings — streaming each item, with its findings, to the caller.
//!
//! The walk only `lstat`s: it never opens a file, so a FIFO or a device cannot hang it,
//! and it never reads data. It never writes anything (the roots are checked before, in
//! `run::check_access`). Names stay bytes (`OsString`) from the directory listing
//! to the report. An item inside a folder that will not migrate does not migrate either
//! (`blocked`), and the contents of a folder that cannot be listed are unknown: they are
//! never counted as migrated.

pub mod filters;
mod judge;
pub mod rules;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jwalk::{ClientState, DirEntry, Parallelism, WalkDirGeneric};

use self::filters::{Decision, FileFacts, Filter, Filtered};
use self::judge::{Account, Chain, Context, FolderState, Follow, Walk, chars, judge_children};
use self::rules::{Code, Facts, Finding, Rules, Severity, Shape};
use crate::plan::Task;
use crate::plan::raw::Symlinks;
use crate::plan::shard::Shard;

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
    /// Status change time (ctime), nanoseconds: it moves with the mode, owner,
    /// attributes or ACL as well as with the content.
    pub ctime_ns: i128,
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
            ctime_ns: ns(&x.stx_ctime),
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
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
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

    /// Logs each finding that keeps the item back: a failure of the round.
    fn log_errors(&self) {
        for finding in self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
        {
            tracing::warn!(
                event = "failure",
                item = %crate::shown::escape_path(&self.rel),
                code = finding.code.as_str(),
                message = %finding.message
            );
        }
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
    /// Hard-linked files to migrate with names that are not among the task's items to
    /// migrate (outside its source, or filtered out): those names do not arrive.
    pub links_outside: u64,
}

impl ScanTotals {
    fn add(&mut self, entry: &ScanEntry, linked: &mut HashMap<(u64, u64), (u64, u64)>) {
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
            Some(Severity::Error) => {
                self.errors += 1;
                entry.log_errors();
            }
            Some(Severity::Warning) => self.warnings += 1,
            _ => {}
        }
        match entry.status {
            Status::Filtered(_) => self.filtered += 1,
            Status::Blocked => self.blocked += 1,
            Status::Skipped => {}
            Status::Migrate => {
                self.to_migrate += 1;
                // Folders have a link per subfolder: only files are link groups.
                let once = entry.meta.nlink <= 1 || entry.kind != EntryKind::File || {
                    let names = linked
                        .entry((entry.meta.dev, entry.meta.ino))
                        .or_insert((0, entry.meta.nlink));
                    names.0 += 1;
                    names.0 == 1
                };
                if entry.kind == EntryKind::File && once {
                    self.bytes_to_migrate += entry.meta.size;
                }
            }
        }
    }
}

/// Scans one task's source (after `run::check_access`), calling `sink` with every item
/// in walk order; returns the totals. `threads` is the size of the walk's own pool
/// (`None`: chosen for the source, see [`crate::latency`]). With a `shard`, only the
/// items of its units (and of its spine folders) are items: the walk does not enter
/// other shards' units.
pub fn scan(
    task: &Task,
    shard: Option<Shard>,
    threads: Option<usize>,
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
    let slow = crate::latency::slow(&root);
    let threads = crate::latency::walk_threads(threads, slow);
    let context = Arc::new(Context {
        rules: Rules {
            set: settings.rules,
            invalid_names: settings.invalid_names,
            case_collisions: settings.case_collisions,
            now_ns,
            hard_links: settings.preserve.links(),
            sparse: settings.preserve.sparse,
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
    let walk = Walker {
        task,
        shard,
        context,
        pool,
        root: (root_meta.dev(), root_meta.ino()),
    };
    if !slow {
        return walk.walk(&mut |entry| sink(&entry));
    }
    // On a slow source the walk waits for the network most of the time, and the thread
    // that takes its results in order spins while it waits: that thread runs at the
    // lowest priority, so that it never takes a CPU from the network's client.
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<ScanEntry>(4096);
        let walking = std::thread::Builder::new()
            .name("ferry-scan-order".into())
            .spawn_scoped(scope, move || {
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                walk.walk(&mut |entry| {
                    // The sink failed and stopped taking entries: its error is returned.
                    send.send(entry)
                        .map_err(|_| ScanError::Threads("the scan's sink stopped".into()))
                })
            })
            .map_err(|e| ScanError::Threads(e.to_string()))?;
        let mut failed = None;
        for entry in receive {
            if let Err(e) = sink(&entry) {
                failed = Some(e);
                break;
            }
        }
        let walked = walking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match failed {
            Some(e) => Err(e),
            None => walked,
        }
    })
}

/// One task's walk, with what it needs.
struct Walker<'a> {
    task: &'a Task,
    shard: Option<Shard>,
    context: Arc<Context>,
    pool: Arc<rayon::ThreadPool>,
    /// The source root's device and inode.
    root: (u64, u64),
}

impl Walker<'_> {
    /// Walks the source, handing `emit` every item in walk order; returns the totals.
    fn walk(
        self,
        emit: &mut dyn FnMut(ScanEntry) -> Result<(), ScanError>,
    ) -> Result<ScanTotals, ScanError> {
        let Walker {
            task,
            shard,
            context,
            pool,
            root,
        } = self;
        let mut totals = ScanTotals::default();
        // Hard-linked files' names found, and link counts, by device and inode.
        let mut linked = HashMap::new();
        let mut queue = vec![Follow {
            target: task.source.clone(),
            state: FolderState {
                rel: None,
                dest: None,
                chars: 0,
                blocked: false,
                chain: Some(Arc::new(Chain {
                    id: root,
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
                        if let Some(shard) = shard {
                            keep_shard(shard, children);
                        }
                    }
                });
            for result in walker {
                let entry = match result {
                    Ok(mut item) if item.depth > 0 => match listed(&mut item, &mut queue) {
                        Some(entry) => entry,
                        None => continue,
                    },
                    Ok(_) => continue,
                    Err(error) => {
                        // The folder itself was listed (and counted) by its parent; only its
                        // contents are unknown.
                        let entry = unlisted(&walk, error);
                        if shard.is_some_and(|shard| !shard.owns(&entry.rel)) {
                            // Another shard lists this folder, and says its contents are
                            // unknown.
                            continue;
                        }
                        entry.log_errors();
                        totals.items_with_issues += 1;
                        totals.errors += 1;
                        emit(entry)?;
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
                emit(entry)?;
            }
        }
        totals.links_outside = linked
            .values()
            .filter(|(names, nlink)| names < nlink)
            .count() as u64;
        Ok(totals)
    }
}

/// Keeps the children of one folder that are `shard`'s: those of its units, and the
/// spine folders above the units (walked by every shard, listed by one).
fn keep_shard(shard: Shard, children: &mut Vec<Result<DirEntry<Walk>, jwalk::Error>>) {
    // Below the units' depth the walk is inside one of this shard's units already:
    // one look per folder, not per item.
    let inside_unit = children
        .iter()
        .flatten()
        .find_map(|c| c.client_state.entry.as_ref())
        .is_some_and(|e| e.rel.components().count() > crate::plan::shard::UNIT_DEPTH);
    if inside_unit {
        return;
    }
    children.retain_mut(|child| {
        let Ok(child) = child else {
            return true;
        };
        let Some(entry) = &child.client_state.entry else {
            return true;
        };
        let spine = entry.is_folder() && shard.enters(&entry.rel);
        if !shard.owns(&entry.rel) {
            if !spine {
                return false;
            }
            // Walked for its children, listed by its own shard.
            child.client_state.entry = None;
        }
        true
    });
}

/// The judged entry of a listed item (`None` for the walk's own root), with a symlink
/// to a folder it follows queued. A folder whose listing failed comes back whole, its
/// error kept beside it: its contents are unknown, and that is a finding, never a
/// silent gap (finding 3).
fn listed(item: &mut DirEntry<Walk>, queue: &mut Vec<Follow>) -> Option<ScanEntry> {
    if let Some(follow) = item.client_state.follow.take() {
        queue.push(follow);
    }
    let unlisted = item
        .read_children
        .as_ref()
        .and_then(|r| r.error())
        .map(|e| {
            let io = e.io_error();
            let denied = io.is_some_and(|io| io.kind() == io::ErrorKind::PermissionDenied);
            (
                denied,
                io.map_or_else(|| e.to_string(), ToString::to_string),
            )
        });
    let mut entry = item.client_state.entry.take()?;
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
    Some(entry)
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
