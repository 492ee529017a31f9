//! S3 staging: each task round is a prefix of the plan's bucket (`<container>/`), its
//! objects put with `If-None-Match: *` where the service honours it. The bucket is never
//! created or listed as a whole: ferry lists only a round's own prefix, to delete it
//! when the round's import is complete.
//!
//! S3 has no grant scoped to one prefix that ferry could sign for the workers, so the
//! least privilege lives in the bucket policy instead (see the README): put and get for
//! the workers, list and delete of the prefixes for the side that discards them.

use std::io;
use std::sync::Arc;

use futures_util::StreamExt as _;
use object_store::ObjectStore as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;

use super::object::{ObjectContainer, client_options, retry_config, runtime, store_error};
use super::{Container, Staging, check_name};
use crate::plan::Retries;

/// A bucket to stage in.
pub struct S3Staging {
    bucket: String,
    endpoint: String,
    store: Arc<AmazonS3>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for S3Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Staging")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Staging {
    /// The plan's bucket, its keys read from where the plan says they are.
    pub fn new(settings: &crate::plan::S3Staging, retries: Retries) -> io::Result<S3Staging> {
        let refused = |e: crate::plan::SecretError| {
            io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
        };
        let key_id = settings.key_id.read().map_err(refused)?;
        let secret = settings.credential.read().map_err(refused)?;
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", settings.region));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(key_id.as_str())
            .with_secret_access_key(secret.as_str())
            .with_client_options(client_options(&endpoint))
            .with_allow_http(endpoint.starts_with("http://"))
            .with_retry(retry_config(retries));
        if settings.endpoint.is_some() {
            // Another S3 service: path-style requests, as MinIO and the emulators expect.
            builder = builder
                .with_endpoint(&endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(store_error)?;
        Ok(S3Staging {
            bucket: settings.bucket.clone(),
            endpoint,
            store: Arc::new(store),
            runtime: runtime("ferry-s3")?,
        })
    }
}

impl Staging for S3Staging {
    /// A prefix needs no creating: it is there once an object is put under it.
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        check_name(name)?;
        Ok(Box::new(ObjectContainer {
            store: self.store.clone(),
            prefix: name.to_string(),
            runtime: Arc::clone(&self.runtime),
            can_delete: true,
            multipart: self.store.clone(),
        }))
    }

    /// Lists the round's prefix (only it) and deletes what is there.
    fn discard(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        crate::failpoint::hit("container-delete")?;
        let prefix = ObjectPath::from(name);
        self.runtime.block_on(async {
            let listed = self
                .store
                .list(Some(&prefix))
                .map(|meta| meta.map(|m| m.location));
            let mut deleted = self.store.delete_stream(listed.boxed());
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(store_error(e)),
                }
            }
            Ok(())
        })
    }

    /// Lists a prefix nothing is under: the bucket is there and the keys are accepted.
    fn probe(&self) -> io::Result<()> {
        let prefix = ObjectPath::from("ferry-probe");
        self.runtime.block_on(async {
            let mut listed = self.store.list(Some(&prefix));
            match listed.next().await {
                None | Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(store_error(e)),
            }
        })
    }

    fn describe(&self) -> String {
        format!("S3 bucket {} at {}", self.bucket, self.endpoint)
    }

    /// The bucket's top-level prefixes that begin with `prefix`, each with its newest
    /// object's time.
    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        self.runtime.block_on(async {
            let top = self
                .store
                .list_with_delimiter(None)
                .await
                .map_err(store_error)?;
            let mut listed = Vec::new();
            for path in top.common_prefixes {
                let name = path.as_ref().to_string();
                if !name.starts_with(prefix) {
                    continue;
                }
                let mut objects = self.store.list(Some(&path));
                let mut newest: Option<i64> = None;
                while let Some(meta) = objects.next().await {
                    let at = meta.map_err(store_error)?.last_modified.timestamp();
                    newest = Some(newest.map_or(at, |n| n.max(at)));
                }
                listed.push(super::Listed {
                    name,
                    written_at: newest,
                });
            }
            Ok(listed)
        })
    }
}
