//! The plan's lock: one run of a plan at a time, so that a cron job that overlaps the
//! previous one stops at once instead of racing it.
//!
//! The lock is an OS file lock (`File::try_lock`) on `<working_folder>/<plan>/lock`: the
//! kernel releases it when its holder exits, however it exits, so a killed run never
//! leaves a stale lock behind. The file's content names the holder (host, pid, start
//! time) for the message the second run prints; it is only informative.

use std::fs::{self, File, TryLockError};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct PlanLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("plan `{plan}` is being run by {holder}; this run stops here (lock {})", path.display())]
    Held {
        plan: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot take the plan's lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl PlanLock {
    /// Takes the lock of the plan whose state lives in `folder` (`<working_folder>/<plan>`),
    /// or says who holds it.
    pub fn take(folder: &Path, plan: &str) -> Result<PlanLock, LockError> {
        let path = folder.join("lock");
        let fail = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(folder).map_err(fail)?;
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    plan: plan.to_string(),
                    holder: if holder.is_empty() {
                        "another ferry process".to_string()
                    } else {
                        holder.to_string()
                    },
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(fail(e)),
        }
        let started = super::now_text();
        let who = format!(
            "ferry on host {}, pid {}, started {started}\n",
            crate::state::device_name(),
            std::process::id()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()))
            .map_err(fail)?;
        Ok(PlanLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = PlanLock::take(dir.path(), "p").unwrap();
        let err = PlanLock::take(dir.path(), "p").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        PlanLock::take(dir.path(), "p").unwrap();
    }
}
