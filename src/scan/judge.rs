//! Judging what the walk lists, on the walk's threads: each item's metadata, the
//! plan's filters, symlinks by the plan's policy, the known-issue rules, the account's
//! access, and collisions between siblings.

use super::*;

/// Which account the scan runs as, to tell from mode bits whether it may read an item
/// (checking with `open` would cost a system call per file, and open FIFOs).
#[derive(Debug)]
pub(super) struct Account {
    pub(super) uid: u32,
    pub(super) gids: Vec<u32>,
}

impl Account {
    pub(super) fn current() -> Account {
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
pub(super) struct Context {
    pub(super) rules: Rules,
    pub(super) filter: Filter,
    pub(super) symlinks: Symlinks,
    pub(super) account: Account,
    /// The source root, canonical: followed and copied links must stay inside it.
    pub(super) root: PathBuf,
    /// The plan keeps setuid and setgid bits (`preserve.setuid` with `owner`).
    pub(super) keep_setuid: bool,
}

/// The (dev, inode) of a folder and of every folder above it on the logical path, to
/// recognise a symlink that leads back to an ancestor.
#[derive(Debug)]
pub(super) struct Chain {
    pub(super) id: (u64, u64),
    pub(super) parent: Option<Arc<Chain>>,
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
pub(super) struct FolderState {
    pub(super) rel: Option<Arc<Path>>,
    /// Where the folder lands below the destination root (after renames).
    pub(super) dest: Option<Arc<Path>>,
    pub(super) chars: usize,
    pub(super) blocked: bool,
    pub(super) chain: Option<Arc<Chain>>,
}

impl FolderState {
    fn depth(&self) -> usize {
        self.rel.as_ref().map_or(0, |rel| rel.components().count())
    }
}

/// A symlink to a folder that `symlinks: follow` walks after the main walk.
#[derive(Clone, Debug)]
pub(super) struct Follow {
    pub(super) target: PathBuf,
    pub(super) state: FolderState,
}

/// What the walk's threads attach to each listed item.
#[derive(Debug, Default)]
pub(super) struct Judged {
    pub(super) entry: Option<ScanEntry>,
    pub(super) follow: Option<Follow>,
}

#[derive(Debug, Default)]
pub(super) struct Walk;

impl ClientState for Walk {
    type ReadDirState = FolderState;
    type DirEntryState = Judged;
}

/// Characters of a name or path as the destination counts them: Unicode scalar values,
/// and one for each byte that is not UTF-8.
pub(super) fn chars(name: &OsStr) -> usize {
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
pub(super) fn judge_children(
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
            Shape::Folder
        } else {
            Shape::File
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
        too_long(&mut entry, stat.ok(), absolute);
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
    if let Decision::Drop(reason) = filtered(context, &entry, seen.name, &meta) {
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
        EntryKind::File => Shape::File,
        EntryKind::Folder => Shape::Folder,
        EntryKind::Symlink { .. } => Shape::Symlink,
        EntryKind::Special | EntryKind::Unknown => Shape::Special,
    };
    scratch.clear();
    context.rules.judge(
        &Facts {
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
    access_findings(context, &mut entry, kind, &meta, owner);
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

/// An item whose absolute path is beyond what this system can open: reported, and a
/// folder's contents unknown.
fn too_long(
    entry: &mut ScanEntry,
    stat: Option<(Meta, rustix::fs::FileType, (u32, u32))>,
    absolute: usize,
) {
    use rustix::fs::FileType;
    entry.status = Status::Skipped;
    if let Some((m, _, _)) = &stat {
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
    match stat {
        Some((m, FileType::Directory, _)) => {
            entry.kind = EntryKind::Folder;
            entry.meta = m;
        }
        Some((m, FileType::RegularFile, _)) => {
            entry.kind = EntryKind::File;
            entry.meta = m;
        }
        _ => {}
    }
}

/// What the plan's filters say of an item.
fn filtered(context: &Context, entry: &ScanEntry, name: &OsStr, meta: &Meta) -> Decision {
    match entry.kind {
        EntryKind::File => context.filter.file(
            &entry.rel,
            name,
            FileFacts {
                size: meta.size,
                mtime_ns: meta.mtime_ns,
                birth_ns: meta.birth_ns,
            },
        ),
        _ => match context.filter.other(&entry.rel, name) {
            Some(reason) => Decision::Drop(reason),
            None => Decision::Keep,
        },
    }
}

/// Findings about access: setuid and setgid bits the destination will not keep, and
/// what this account may not read.
fn access_findings(
    context: &Context,
    entry: &mut ScanEntry,
    kind: Shape,
    meta: &Meta,
    owner: (u32, u32),
) {
    if matches!(kind, Shape::File | Shape::Folder)
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
    let folder = kind == Shape::Folder;
    if matches!(kind, Shape::File | Shape::Folder)
        && !context.account.may_read(meta, owner.0, owner.1, folder)
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
    // The names of the folder, folded, once a rename needs them: a renamed item never
    // takes a name that another item of the folder already has (`a.txt` does not become
    // `a (2).txt` beside a real `a (2).txt`).
    let mut taken: Option<std::collections::HashSet<Vec<u8>>> = None;
    let mut groups: Vec<Vec<usize>> = groups.into_values().filter(|m| m.len() > 1).collect();
    // In the order of the folder's listing, so that every walk numbers alike.
    groups.sort_unstable();
    for members in groups {
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
            let error = finding.severity == Severity::Error;
            let Some(current) = children[members[at]]
                .as_ref()
                .ok()
                .and_then(|c| c.client_state.entry.as_ref())
                .map(|e| e.dest.file_name().unwrap_or_default().to_owned())
            else {
                continue;
            };
            let numbered = rename.then(|| {
                let taken = taken.get_or_insert_with(|| {
                    children
                        .iter()
                        .flatten()
                        .filter_map(|c| c.client_state.entry.as_ref())
                        .map(|e| rules::fold(e.dest.file_name().unwrap_or_default()))
                        .collect()
                });
                let mut n = number + 2;
                loop {
                    let candidate = rules::numbered(&current, n);
                    if taken.insert(rules::fold(&candidate)) {
                        break candidate;
                    }
                    n += 1;
                }
            });
            let Ok(child) = &mut children[members[at]] else {
                continue;
            };
            let Some(entry) = child.client_state.entry.as_mut() else {
                continue;
            };
            if let Some(numbered) = numbered {
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
