//! Named failpoints at every step of the write order, for the crash-point test
//! (`tests/integration/crash.rs`). They exist only in debug builds (those `cargo test`
//! makes): a release build compiles [`hit`] to nothing.
//!
//! `FERRY_FAILPOINTS=name=action[,name=action...]` arms them, where `action` is `crash`
//! (the process aborts at once, as on `kill -9`: no destructor runs, no buffer is
//! flushed), `eio` or `enospc` (the step fails with that error, every time it is
//! reached).

use std::io;

/// Every failpoint, in the order of the steps a round takes. The crash-point test
/// enumerates this list, and checks it against the points in the source.
pub const POINTS: &[&str] = &[
    "key-write",
    "staging-put",
    "journal-append",
    "temp-file",
    "sync",
    "rename",
    "folder-sync",
    "link",
    "index-save",
    "session-save",
    "container-delete",
];

/// Fails as `FERRY_FAILPOINTS` says for the point `name`, or does nothing.
#[inline]
pub fn hit(name: &'static str) -> io::Result<()> {
    #[cfg(debug_assertions)]
    {
        debug_assert!(
            POINTS.contains(&name),
            "failpoint `{name}` is not in POINTS"
        );
        if let Some(action) = armed().iter().find(|(n, _)| n == name).map(|(_, a)| a) {
            match action.as_str() {
                "crash" => std::process::abort(),
                "eio" => return Err(io::Error::from_raw_os_error(5)),
                "enospc" => return Err(io::Error::from_raw_os_error(28)),
                _ => {}
            }
        }
    }
    let _ = name;
    Ok(())
}

#[cfg(debug_assertions)]
fn armed() -> &'static [(String, String)] {
    static ARMED: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("FERRY_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(n, a)| (n.trim().to_string(), a.trim().to_string()))
            .collect()
    })
}
