//! `bandwidth.limit`: one token bucket for the whole run, shared by every worker of
//! every task, through which each byte put into staging or read from it passes (in
//! direct mode, each byte copied: [`pass`]). The
//! limit may change by the hour (`bandwidth.schedule`, read on [`crate::clock`]); the
//! bytes are counted in real seconds.

use std::io::{self, Read, Write};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Blocks, Container, Staging};
use crate::plan::Bandwidth;

static BUCKET: OnceLock<Bucket> = OnceLock::new();

/// Sets the run's limit; staging opened after this is throttled by it.
pub fn install(bandwidth: &Bandwidth) {
    let _ = BUCKET.set(Bucket {
        bandwidth: bandwidth.clone(),
        state: Mutex::new(State {
            tokens: 0.0,
            at: Instant::now(),
            rate: None,
        }),
    });
}

/// The bucket, when a limit was installed.
fn bucket() -> Option<&'static Bucket> {
    BUCKET.get()
}

struct Bucket {
    bandwidth: Bandwidth,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    at: Instant,
    /// The rate in force, and until when it is trusted (checked again each second).
    rate: Option<(Option<u64>, Instant)>,
}

impl Bucket {
    /// The rate now, in bytes a second; `None`: no limit now.
    fn rate(&self, state: &mut State) -> Option<u64> {
        if let Some((rate, until)) = state.rate
            && Instant::now() < until
        {
            return rate;
        }
        let rate = self.bandwidth.at(crate::clock::now());
        state.rate = Some((rate, Instant::now() + Duration::from_secs(1)));
        rate
    }

    /// Waits until `n` bytes may pass.
    fn take(&self, n: usize) {
        let mut left = n as f64;
        while left > 0.0 {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let Some(rate) = self.rate(&mut state) else {
                    return;
                };
                let rate = rate as f64;
                // A tenth of a second's worth at most is saved up.
                let capacity = (rate / 10.0).max(64.0 * 1024.0);
                let now = Instant::now();
                let elapsed = now.duration_since(state.at);
                state.tokens = (state.tokens + elapsed.as_secs_f64() * rate).min(capacity);
                state.at = now;
                let chunk = left.min(capacity);
                if state.tokens >= chunk {
                    state.tokens -= chunk;
                    left -= chunk;
                    continue;
                }
                Duration::from_secs_f64((chunk - state.tokens) / rate)
            };
            std::thread::sleep(wait);
        }
    }
}

/// Waits until `n` more bytes may pass the run's bucket, when there is one: the bytes
/// direct mode copies, which pass through no staging.
pub fn pass(n: usize) {
    if let Some(bucket) = bucket() {
        bucket.take(n);
    }
}

/// A staging whose containers' bytes pass through the run's bucket, when there is one.
pub fn staging(inner: Box<dyn Staging>) -> Box<dyn Staging> {
    match bucket() {
        Some(bucket) => Box::new(ThrottledStaging { inner, bucket }),
        None => inner,
    }
}

struct ThrottledStaging {
    inner: Box<dyn Staging>,
    bucket: &'static Bucket,
}

impl Staging for ThrottledStaging {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        Ok(Box::new(Throttled {
            inner: self.inner.open(name)?,
            bucket: self.bucket,
        }))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        self.inner.discard(name)
    }

    fn probe(&self) -> io::Result<()> {
        self.inner.probe()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn grant(&self, name: &str, expires_at: i64) -> io::Result<Option<super::Grant>> {
        self.inner.grant(name, expires_at)
    }

    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        self.inner.containers(prefix)
    }
}

struct Throttled {
    inner: Box<dyn Container>,
    bucket: &'static Bucket,
}

impl Container for Throttled {
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        // The bytes are counted as they are produced: the object goes whole or not at
        // all, and a retry that produces them again pays again.
        let bucket = self.bucket;
        self.inner
            .put(name, &mut |out| write(&mut Metered { inner: out, bucket }))
    }

    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        let inner = self.inner.get(name)?;
        Ok(Box::new(MeteredRead {
            inner,
            bucket: self.bucket,
        }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        self.inner.exists(name)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }

    fn blocks(&self) -> Option<&dyn Blocks> {
        self.inner.blocks().map(|_| self as &dyn Blocks)
    }
}

impl Blocks for Throttled {
    fn begin(&self, name: &str) -> io::Result<String> {
        self.blocks_of()?.begin(name)
    }

    fn put(&self, name: &str, upload: &str, index: usize, bytes: Vec<u8>) -> io::Result<String> {
        self.bucket.take(bytes.len());
        self.blocks_of()?.put(name, upload, index, bytes)
    }

    fn finish(&self, name: &str, upload: &str, ids: &[String]) -> io::Result<()> {
        self.blocks_of()?.finish(name, upload, ids)
    }

    fn size(&self, name: &str) -> io::Result<Option<u64>> {
        self.blocks_of()?.size(name)
    }
}

impl Throttled {
    fn blocks_of(&self) -> io::Result<&dyn Blocks> {
        self.inner
            .blocks()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no blocks here"))
    }
}

struct Metered<'a> {
    inner: &'a mut dyn Write,
    bucket: &'static Bucket,
}

impl Write for Metered<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bucket.take(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct MeteredRead {
    inner: Box<dyn Read + Send>,
    bucket: &'static Bucket,
}

impl Read for MeteredRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bucket.take(n);
        Ok(n)
    }
}
