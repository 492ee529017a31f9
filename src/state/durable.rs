//! Small files written whole or not at all: state, index, reports.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

/// Writes a whole small file atomically (temp, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let mut file = fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&partial, path)?;
    sync_parent(path)
}

/// Makes a rename into `path`'s folder durable: without it, a power cut can bring back
/// the old file after the new one was reported written (reliability review, finding 15).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)?.sync_all()
}
