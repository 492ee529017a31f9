//! What the cloud backends share: a container is a prefix of an `object_store` store
//! (a whole Azure container, or `<container>/` in an S3 bucket), driven from the
//! workers' threads by one small tokio runtime; errors become I/O errors a person can
//! act on, and never carry a signature.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutPayload, RetryConfig,
};

use super::{Blocks, Container, check_name};

/// The size of a block of an object put in blocks (S3 wants at least 5 MiB for every
/// part but the last).
pub const BLOCK_SIZE: usize = 8 << 20;
use crate::plan::Retries;

/// The runtime the blocking calls of a cloud backend run on.
pub(super) fn runtime(name: &str) -> io::Result<Arc<tokio::runtime::Runtime>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?;
    Ok(Arc::new(runtime))
}

pub(super) fn client_options(endpoint: &str) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.starts_with("http://"))
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(30))
}

/// The task's `retries` as `object_store` applies them: to 5xx, 429, timeouts and
/// dropped connections, with jittered exponential backoff.
pub(super) fn retry_config(retries: Retries) -> RetryConfig {
    let mut config = RetryConfig {
        max_retries: retries.attempts.saturating_sub(1) as usize,
        retry_timeout: Duration::from_secs(600),
        ..RetryConfig::default()
    };
    config.backoff.init_backoff = retries.backoff.0.max(Duration::from_millis(50));
    config.backoff.max_backoff = Duration::from_secs(300);
    config
}

/// A container: the objects of one round under `prefix` (empty for a whole container).
pub(super) struct ObjectContainer {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) prefix: String,
    pub(super) runtime: Arc<tokio::runtime::Runtime>,
    /// Whether this grant may delete (an Azure SAS may not; the container goes whole
    /// when its round is complete).
    pub(super) can_delete: bool,
    /// The same store, for puts in blocks.
    pub(super) multipart: Arc<dyn MultipartStore>,
}

impl ObjectContainer {
    fn path(&self, name: &str) -> io::Result<ObjectPath> {
        check_name(name)?;
        Ok(if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        })
    }
}

impl Container for ObjectContainer {
    /// Put with `If-None-Match: *`: never over another object. One already there under
    /// this name was put whole by an earlier run of the round (names come from the
    /// round's key and the package number), so it counts as put.
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        crate::failpoint::hit("staging-put")?;
        let path = self.path(name)?;
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        let size = bytes.len() as u64;
        let put = self
            .store
            .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into());
        match self.runtime.block_on(put) {
            Ok(_) => Ok(size),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let head = self.runtime.block_on(self.store.head(&path));
                head.map(|meta| meta.size).map_err(store_error)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        let path = self.path(name)?;
        let bytes = self.runtime.block_on(async {
            let result = self.store.get(&path).await?;
            result.bytes().await
        });
        Ok(Box::new(io::Cursor::new(bytes.map_err(store_error)?)))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        let path = self.path(name)?;
        match self.runtime.block_on(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        if !self.can_delete {
            return Ok(());
        }
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    fn blocks(&self) -> Option<&dyn Blocks> {
        Some(self)
    }
}

/// Azure: blocks of a block blob, committed with their list (uncommitted blocks are
/// kept a week). S3: parts of a multipart upload.
impl Blocks for ObjectContainer {
    fn begin(&self, name: &str) -> io::Result<String> {
        let path = self.path(name)?;
        let id = self
            .runtime
            .block_on(self.multipart.create_multipart(&path));
        id.map_err(store_error)
    }

    fn put(&self, name: &str, upload: &str, index: usize, bytes: Vec<u8>) -> io::Result<String> {
        crate::failpoint::hit("staging-put")?;
        let path = self.path(name)?;
        let upload = upload.to_string();
        let part = self
            .multipart
            .put_part(&path, &upload, index, PutPayload::from(bytes));
        let part = self.runtime.block_on(part).map_err(store_error)?;
        Ok(part.content_id)
    }

    fn finish(&self, name: &str, upload: &str, ids: &[String]) -> io::Result<()> {
        let path = self.path(name)?;
        let parts = ids
            .iter()
            .map(|id| PartId {
                content_id: id.clone(),
            })
            .collect();
        let upload = upload.to_string();
        let done = self.multipart.complete_multipart(&path, &upload, parts);
        self.runtime.block_on(done).map(|_| ()).map_err(store_error)
    }

    fn size(&self, name: &str) -> io::Result<Option<u64>> {
        let path = self.path(name)?;
        match self.runtime.block_on(self.store.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }
}

/// An `object_store` error as an I/O error a person can act on, without any signature.
pub(super) fn store_error(e: object_store::Error) -> io::Error {
    let text = crate::shown::redact(&e.to_string());
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, text),
        object_store::Error::AlreadyExists { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, text)
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the grant was refused: it expired (stage the round again), lacks the permission, or this machine's clock is wrong ({text})"
            ),
        ),
        _ if out_of_reach(&text) => io::Error::new(
            io::ErrorKind::NotConnected,
            format!("the service cannot be reached: {text}"),
        ),
        _ => io::Error::other(text),
    }
}

/// Whether an error's text says the request never got an answer (after the retries).
fn out_of_reach(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "error sending request",
        "connection refused",
        "connection reset",
        "connection closed",
        "timed out",
        "dns error",
    ]
    .iter()
    .any(|s| lower.contains(s))
}
