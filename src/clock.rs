//! The time as ferry sees it: the system's clock, unless `FERRY_TEST_CLOCK` sets it, for
//! tests and drills of run windows and `--max-duration`: `<RFC 3339 time>[@<speed>]`
//! starts the clock at that time and runs it `speed` times as fast (default 1), so a
//! test sees a window close without waiting for it.

use std::sync::OnceLock;
use std::time::Instant;

/// Where the set clock started, and how fast it runs.
struct Set {
    at: jiff::Timestamp,
    since: Instant,
    speed: f64,
}

fn set() -> Option<&'static Set> {
    static SET: OnceLock<Option<Set>> = OnceLock::new();
    SET.get_or_init(|| {
        let text = std::env::var("FERRY_TEST_CLOCK").ok()?;
        let (at, speed) = match text.split_once('@') {
            Some((at, speed)) => (at, speed.parse().ok()?),
            None => (text.as_str(), 1.0),
        };
        Some(Set {
            at: at.parse().ok()?,
            since: Instant::now(),
            speed,
        })
    })
    .as_ref()
}

/// Now.
pub fn now() -> jiff::Timestamp {
    match set() {
        Some(set) => {
            let elapsed = set.since.elapsed().as_secs_f64() * set.speed;
            let nanos = (elapsed * 1e9).min(i64::MAX as f64) as i64;
            set.at
                .checked_add(jiff::SignedDuration::from_nanos(nanos))
                .unwrap_or(set.at)
        }
        None => jiff::Timestamp::now(),
    }
}

/// How long `span` of this clock's time takes in real time.
pub fn real(span: std::time::Duration) -> std::time::Duration {
    match set() {
        Some(set) if set.speed > 0.0 => span.div_f64(set.speed),
        _ => span,
    }
}
