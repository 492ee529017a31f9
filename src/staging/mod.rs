//! Staging: where sealed packages wait between upload and import, behind one small
//! trait so that the pipeline does not know which kind it talks to.
//!
//! A container holds one round of one task. Objects are written whole or not at all
//! (`put` writes a temporary object and renames it), are named by the caller (names
//! derived from the container key), and are never listed: a container can be opened by
//! name only.

pub mod local;

use std::io::{self, Read, Write};

/// One staging container.
pub trait Container: Send + Sync {
    /// Stores an object: `write` produces its bytes; the object appears whole, durably,
    /// or not at all.
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64>;
    /// Reads an object.
    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>>;
    /// Deletes an object; deleting one that is not there is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
}
