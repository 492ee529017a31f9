//! Staging: where sealed packages wait between upload and import, behind two small
//! traits so that the run does not know which kind it talks to.
//!
//! A [`Staging`] holds containers; a [`Container`] holds one round of one task. Objects
//! are written whole or not at all, are named by the caller (names derived from the
//! container key), and are never listed: a container is opened by name only.
//!
//! [`open`] is the one place that dispatches on `staging.kind`: a new backend is a module
//! here and a value of [`crate::plan::StagingKind`], nothing else. [`Retry`] wraps the
//! local backend with the task's `retries` for transient errors; the cloud ones (Azure,
//! S3, sharing [`object`]) retry inside with the same settings. The traits are synchronous:
//! the workers are threads.

pub mod azure;
pub mod local;
#[cfg(test)]
pub mod memory;
mod none;
mod object;
mod retry;
pub mod s3;
pub mod throttle;

use std::io::{self, Read, Write};

pub use azure::Grant;
pub use object::BLOCK_SIZE;
pub use retry::{Retry, is_transient};

use crate::plan::{Retries, StagingKind};

/// Where containers are created, opened and thrown away.
pub trait Staging: Send + Sync {
    /// Creates the container `name`, or opens it again (a resumed round).
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>>;
    /// Deletes the container `name` with whatever it holds: staged data whose key is
    /// being thrown away can never be opened. One that is not there is not an error.
    fn discard(&self, name: &str) -> io::Result<()>;
    /// Checks that containers can be created here, before any work starts.
    fn probe(&self) -> io::Result<()>;
    /// Where this staging is, for messages: a folder, an account and endpoint.
    fn describe(&self) -> String;
    /// What a ticket carries so that another machine can use container `name` until
    /// `expires_at` (Unix seconds) without this staging's account credential. `None`:
    /// that machine reaches the container with its own plan's settings (a shared
    /// folder, an S3 bucket its own keys may read).
    fn grant(&self, _name: &str, _expires_at: i64) -> io::Result<Option<Grant>> {
        Ok(None)
    }
    /// The containers whose names begin with `prefix`, for `ferry gc` to find staged
    /// data whose key is gone. `Unsupported` where this staging cannot list them (a
    /// ticket's container).
    ///
    /// Every wrapper forwards this and [`grant`](Staging::grant): a default here would
    /// silently hide the inner staging's.
    fn containers(&self, _prefix: &str) -> io::Result<Vec<Listed>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this staging cannot list its containers",
        ))
    }
}

/// A container, as [`Staging::containers`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// When it was last written (local, S3) or created (Azure), in Unix seconds.
    pub written_at: Option<i64>,
}

/// One staging container.
pub trait Container: Send + Sync {
    /// Stores an object: `write` produces its bytes (and may be called again when a
    /// transient error is retried); the object appears whole, durably, or not at all.
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64>;
    /// Reads an object.
    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>>;
    /// Whether an object is there.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Deletes an object; deleting one that is not there is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// Puts in blocks, for large objects whose upload a later run may continue; `None`
    /// when this container only puts objects whole.
    fn blocks(&self) -> Option<&dyn Blocks> {
        None
    }
}

/// An object put block by block: each block is durable on its own (its id journalled),
/// and the object appears, whole, when its block list is committed.
pub trait Blocks: Send + Sync {
    /// Begins an object: its upload's id, for [`Blocks::put`] and [`Blocks::finish`],
    /// in this run or a later one.
    fn begin(&self, name: &str) -> io::Result<String>;
    /// Puts block `index` (from 0) of the upload: its id, to commit it with.
    fn put(&self, name: &str, upload: &str, index: usize, bytes: Vec<u8>) -> io::Result<String>;
    /// Commits the blocks `ids`, in order, as the object.
    fn finish(&self, name: &str, upload: &str, ids: &[String]) -> io::Result<()>;
    /// The size of the object `name`, if it is there.
    fn size(&self, name: &str) -> io::Result<Option<u64>>;
}

/// The plan's staging, with a task's retries around every operation.
pub fn open(staging: &crate::plan::Staging, retries: Retries) -> io::Result<Box<dyn Staging>> {
    let unset = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`kind: {}` without its settings", staging.kind.as_str()),
        )
    };
    // The cloud backends retry inside, with `object_store`'s backoff: wrapping them in
    // [`Retry`] as well would multiply the attempts.
    let backend: Box<dyn Staging> = match staging.kind {
        StagingKind::Local => {
            Box::new(Retry::new(local::LocalStaging::new(&staging.path), retries))
        }
        StagingKind::Azure => {
            let azure = staging.azure.as_ref().ok_or_else(unset)?;
            Box::new(azure::AzureStaging::new(azure, staging.key_ttl.0, retries)?)
        }
        StagingKind::S3 => {
            let s3 = staging.s3.as_ref().ok_or_else(unset)?;
            Box::new(s3::S3Staging::new(s3, retries)?)
        }
        StagingKind::None => Box::new(none::NoStaging {
            leftovers: local::LocalStaging::new(&staging.path),
        }),
    };
    Ok(throttle::staging(backend))
}

/// Names of containers and objects: short ASCII words, so that no backend has to escape
/// them and none can name something outside its container.
pub fn check_name(name: &str) -> io::Result<()> {
    let fine = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fine {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "staged object names are short ASCII words",
        ))
    }
}
