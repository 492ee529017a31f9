//! Small files written whole or not at all: state, index, reports.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

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

/// Creates and removes a probe file in `folder`, or in its nearest existing ancestor.
pub fn probe(folder: &Path) -> Result<(), (PathBuf, io::Error)> {
    let mut at = folder;
    let existing = loop {
        match fs::metadata(at) {
            Ok(m) if m.is_dir() => break at,
            Ok(_) => {
                let e = io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is a file, not a folder", at.display()),
                );
                return Err((at.to_path_buf(), e));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                match at.parent() {
                    Some(parent) => at = parent,
                    None => return Err((at.to_path_buf(), e)),
                }
            }
            Err(e) => return Err((at.to_path_buf(), e)),
        }
    };
    // An unnamed file first: a run killed here leaves nothing behind at the
    // destination. Filesystems without `O_TMPFILE` (network shares) get a named probe.
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(
        existing,
        OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(_) => return Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
        }
        Err(e) => return Err((existing.to_path_buf(), e.into())),
    }
    let name = format!(".ferry-probe-{}-{}", std::process::id(), nanos_now());
    let path = existing.join(name);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|_| fs::remove_file(&path));
    result.map_err(|e| (existing.to_path_buf(), e))
}

fn nanos_now() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}
