//! No staging (`kind: none`, direct mode): files go from the source straight to the
//! destination, so there is nothing to put or keep. A container here holds nothing and
//! takes nothing: a run that tried to stage into it would fail loudly rather than lose
//! data.
//!
//! A plan that staged locally before it was switched to `none` may have left containers
//! in the default local staging folder (a round set aside with `--restart`, say): they
//! are still discarded, and listed for `ferry gc`, there. Containers in another folder
//! (`staging.path`, refused with `none`) or in the cloud are not reached.

use std::io::{self, Read, Write};

use super::local::LocalStaging;
use super::{Container, Listed, Staging};

/// The staging of a plan that stages nothing; `leftovers` is the local staging folder
/// an earlier, staged round of the plan may have used.
#[derive(Debug)]
pub struct NoStaging {
    pub leftovers: LocalStaging,
}

/// The container of a round that stages nothing.
#[derive(Debug, Default)]
struct Nothing;

fn stages_nothing() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this plan stages nothing (`staging: {kind: none}`)",
    )
}

impl Staging for NoStaging {
    fn open(&self, _name: &str) -> io::Result<Box<dyn Container>> {
        Ok(Box::new(Nothing))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        self.leftovers.discard(name)
    }

    fn probe(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        "none (files are copied straight to the destination)".into()
    }

    fn containers(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        self.leftovers.containers(prefix)
    }
}

impl Container for Nothing {
    fn put(
        &self,
        _name: &str,
        _write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        Err(stages_nothing())
    }

    fn get(&self, _name: &str) -> io::Result<Box<dyn Read + Send>> {
        Err(stages_nothing())
    }

    fn exists(&self, _name: &str) -> io::Result<bool> {
        Ok(false)
    }

    fn delete(&self, _name: &str) -> io::Result<()> {
        Ok(())
    }
}
