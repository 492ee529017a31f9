//! Staging in memory, for unit tests: containers are maps, and a test can make the next
//! operations fail to see what the layers above do. It is compiled only into tests; it
//! also shows what a backend needs: this module and nothing outside `staging/`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use super::{Container, Staging, check_name};

type Objects = HashMap<String, Vec<u8>>;

#[derive(Debug, Default)]
struct Shared {
    containers: HashMap<String, Objects>,
    /// Operations still to fail, and how.
    failures: u32,
    failure: Option<io::ErrorKind>,
}

/// Containers in memory; clones share them.
#[derive(Clone, Debug, Default)]
pub struct MemoryStaging {
    shared: Arc<Mutex<Shared>>,
}

impl MemoryStaging {
    /// The next `n` operations fail with `kind`.
    pub fn fail_next(&self, n: u32, kind: io::ErrorKind) {
        let mut shared = self.shared.lock().unwrap();
        shared.failures = n;
        shared.failure = Some(kind);
    }

    /// An object's bytes, if it is there.
    pub fn object(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        let shared = self.shared.lock().unwrap();
        shared.containers.get(container)?.get(name).cloned()
    }

    /// The containers there are.
    pub fn containers(&self) -> Vec<String> {
        let shared = self.shared.lock().unwrap();
        let mut names: Vec<String> = shared.containers.keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs `op` on the shared state, unless a failure is due.
    fn with<T>(&self, op: impl FnOnce(&mut Shared) -> io::Result<T>) -> io::Result<T> {
        let mut shared = self.shared.lock().unwrap();
        if shared.failures > 0 {
            shared.failures -= 1;
            let kind = shared.failure.unwrap_or(io::ErrorKind::Other);
            return Err(io::Error::new(kind, "injected by the test"));
        }
        op(&mut shared)
    }
}

impl Staging for MemoryStaging {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        check_name(name)?;
        self.with(|s| {
            s.containers.entry(name.to_string()).or_default();
            Ok(())
        })?;
        Ok(Box::new(MemoryContainer {
            staging: self.clone(),
            name: name.to_string(),
        }))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        self.with(|s| {
            s.containers.remove(name);
            Ok(())
        })
    }

    fn probe(&self) -> io::Result<()> {
        self.with(|_| Ok(()))
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

struct MemoryContainer {
    staging: MemoryStaging,
    name: String,
}

impl MemoryContainer {
    fn objects<T>(&self, op: impl FnOnce(&mut Objects) -> io::Result<T>) -> io::Result<T> {
        self.staging
            .with(|s| match s.containers.get_mut(&self.name) {
                Some(objects) => op(objects),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the container was discarded",
                )),
            })
    }
}

impl Container for MemoryContainer {
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        check_name(name)?;
        // Written outside the lock, stored whole inside it.
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        let size = bytes.len() as u64;
        self.objects(|o| {
            o.insert(name.to_string(), bytes);
            Ok(size)
        })
    }

    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let bytes = self.objects(|o| {
            o.get(name)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such object"))
        })?;
        Ok(Box::new(io::Cursor::new(bytes)))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        self.objects(|o| Ok(o.contains_key(name)))
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        self.objects(|o| {
            o.remove(name);
            Ok(())
        })
    }
}
