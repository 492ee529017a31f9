//! The task's `retries` around any staging: an operation that fails with a transient
//! error (a dropped connection, a timeout, a busy server) is tried again after a backoff
//! that doubles each time, with jitter so that many workers do not retry in step. Other
//! errors (a full disk, a refused permission, a missing object) come back at once.

use std::io::{self, Read, Write};
use std::time::Duration;

use super::{Container, Staging};
use crate::plan::Retries;

/// A backend with retries.
pub struct Retry<S> {
    inner: S,
    retries: Retries,
}

impl<S> std::fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    pub fn new(inner: S, retries: Retries) -> Retry<S> {
        Retry { inner, retries }
    }
}

/// Whether an error may go away if the operation is tried again.
pub fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        Interrupted
            | TimedOut
            | WouldBlock
            | ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | NotConnected
            | BrokenPipe
            | ResourceBusy
            | NetworkDown
            | NetworkUnreachable
            | HostUnreachable
    )
}

/// The wait before retry `n` (1 for the first): `backoff × 2^(n-1)`, capped at five
/// minutes, then a uniformly random share of it between a half and the whole.
pub fn delay(backoff: Duration, n: u32) -> Duration {
    let full = backoff
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(20))
        .min(Duration::from_secs(300));
    let half = full / 2;
    let nanos = half.as_nanos() as u64;
    let jitter = if nanos == 0 {
        0
    } else {
        rand::random_range(0..=nanos)
    };
    half + Duration::from_nanos(jitter)
}

pub(super) fn with_retries<T>(
    retries: Retries,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let attempts = retries.attempts.max(1);
    let mut n = 1;
    loop {
        match op() {
            Err(e) if n < attempts && is_transient(&e) => {
                let wait = delay(retries.backoff.0, n);
                tracing::warn!(
                    event = "retry",
                    attempt = n,
                    of = attempts,
                    wait = wait.as_secs_f64(),
                    message = %e
                );
                std::thread::sleep(wait);
                n += 1;
            }
            other => return other,
        }
    }
}

impl<S: Staging> Staging for Retry<S> {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        let inner = with_retries(self.retries, || self.inner.open(name))?;
        Ok(Box::new(Retry::new(inner, self.retries)))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        with_retries(self.retries, || self.inner.discard(name))
    }

    fn probe(&self) -> io::Result<()> {
        with_retries(self.retries, || self.inner.probe())
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn grant(&self, name: &str, expires_at: i64) -> io::Result<Option<super::Grant>> {
        self.inner.grant(name, expires_at)
    }

    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        with_retries(self.retries, || self.inner.containers(prefix))
    }
}

impl Staging for Box<dyn Staging> {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        (**self).open(name)
    }
    fn discard(&self, name: &str) -> io::Result<()> {
        (**self).discard(name)
    }
    fn probe(&self) -> io::Result<()> {
        (**self).probe()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn grant(&self, name: &str, expires_at: i64) -> io::Result<Option<super::Grant>> {
        (**self).grant(name, expires_at)
    }
    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        (**self).containers(prefix)
    }
}

impl Container for Retry<Box<dyn Container>> {
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        with_retries(self.retries, || self.inner.put(name, write))
    }

    /// Opening is retried; a read that fails later reports its error to the reader,
    /// which refuses the object as incomplete.
    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        with_retries(self.retries, || self.inner.get(name))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        with_retries(self.retries, || self.inner.exists(name))
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        with_retries(self.retries, || self.inner.delete(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staging::memory::MemoryStaging;

    fn retries(attempts: u32) -> Retries {
        Retries {
            attempts,
            backoff: crate::plan::Duration(Duration::from_millis(1)),
        }
    }

    #[test]
    fn transient_errors_are_retried_up_to_the_attempts() {
        let memory = MemoryStaging::default();
        let staging = Retry::new(memory.clone(), retries(3));
        let c = staging.open("c").unwrap();
        memory.fail_next(2, io::ErrorKind::ConnectionReset);
        c.put("a", &mut |w| w.write_all(b"one")).unwrap();
        assert_eq!(memory.object("c", "a").unwrap(), b"one");
        memory.fail_next(3, io::ErrorKind::TimedOut);
        let e = c.put("b", &mut |w| w.write_all(b"two")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(memory.object("c", "b").is_none());
    }

    #[test]
    fn other_errors_come_back_at_once() {
        let memory = MemoryStaging::default();
        let staging = Retry::new(memory.clone(), retries(5));
        let c = staging.open("c").unwrap();
        memory.fail_next(1, io::ErrorKind::StorageFull);
        let e = c.put("a", &mut |w| w.write_all(b"x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        // Only the one failure was used: the next put succeeds.
        c.put("a", &mut |w| w.write_all(b"x")).unwrap();
        assert!(c.get("missing").is_err());
    }

    #[test]
    fn the_delay_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for n in 1..6 {
            let full = base * (1 << (n - 1));
            let d = delay(base, n);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
        assert!(delay(Duration::from_secs(60), 30) <= Duration::from_secs(300));
        assert_eq!(delay(Duration::ZERO, 3), Duration::ZERO);
    }
}
