//! ferry's temporary names at the destination, and the removal of what interrupted
//! runs of a task left there.

use super::parts::ASSEMBLY_FILE;
use super::*;

/// This process's salt in its temporary names: a resumed run removes only the names of
/// its own task's earlier runs, never another run's files in flight (finding 16).
pub fn run_salt() -> &'static str {
    use std::sync::OnceLock;
    static SALT: OnceLock<String> = OnceLock::new();
    SALT.get_or_init(|| {
        let mut random = [0u8; 4];
        let _ = crate::crypto::random(&mut random);
        format!("{:08x}", u32::from_le_bytes(random))
    })
}

/// A short temporary name, unique in this process (files are created with `O_EXCL`,
/// so a clash with another process fails safely rather than overwriting).
pub(super) fn temp_name(kind: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".ferry-{kind}-{}-{n:x}", run_salt())
}

/// The salt of one of ferry's temporary names (see [`temp_name`]), and whether it is a
/// work folder.
pub(super) fn temp_salt(name: &[u8]) -> Option<(&[u8], bool)> {
    let hex = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_hexdigit);
    for (kind, work) in [
        (&b".ferry-tmp-"[..], false),
        (b".ferry-link-", false),
        (b".ferry-hlnk-", false),
        (b".ferry-work-", true),
    ] {
        if let Some(rest) = name.strip_prefix(kind) {
            let mut halves = rest.splitn(2, |&b| b == b'-');
            let (salt, n) = (halves.next().unwrap_or(b""), halves.next().unwrap_or(b""));
            return (salt.len() == 8 && hex(salt) && hex(n)).then_some((salt, work));
        }
    }
    None
}

/// Whether `name` is one of ferry's own temporary names.
pub fn is_temp_name(name: &[u8]) -> bool {
    temp_salt(name).is_some()
}

/// Removes what interrupted imports of this task left under `root` (temporary files,
/// and the work folders of files in parts that the round no longer needs, `keep` being
/// those it resumes); returns how many. Only names carrying one of `salts` (the task's
/// own earlier runs) are touched; symlinks are not followed.
pub fn clean_stray(root: &Path, salts: &[String], keep: &std::collections::HashSet<String>) -> u64 {
    if salts.is_empty() {
        return 0;
    }
    let mut removed = 0;
    let walk = jwalk::WalkDir::new(root)
        .skip_hidden(false)
        .follow_links(false)
        .sort(false)
        .process_read_dir(|_, _, _, children| {
            // A work folder is removed whole below: not walked into.
            for child in children.iter_mut().flatten() {
                if temp_salt(child.file_name.as_bytes()).is_some_and(|(_, work)| work) {
                    child.read_children = None;
                }
            }
        });
    for entry in walk.into_iter().flatten() {
        let name = entry.file_name().as_bytes();
        let Some((salt, work)) = temp_salt(name) else {
            continue;
        };
        if entry.depth() == 0 || !salts.iter().any(|s| s.as_bytes() == salt) {
            continue;
        }
        let path = entry.path();
        let gone = if work && entry.file_type().is_dir() {
            if keep.contains(&*entry.file_name().to_string_lossy()) {
                continue;
            }
            let _ = fs::remove_file(path.join(ASSEMBLY_FILE));
            fs::remove_dir(&path).is_ok()
        } else {
            !entry.file_type().is_dir() && fs::remove_file(&path).is_ok()
        };
        if gone {
            removed += 1;
        }
    }
    removed
}
