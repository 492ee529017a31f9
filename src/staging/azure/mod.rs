//! Azure Blob staging, the way Migration Manager stages: each task round gets its own
//! container, created with the account key; the workers reach it only through a
//! service SAS for that container that can read, create and write but not list or
//! delete, and that expires with the round's key (`staging.key_ttl`). The container is
//! deleted, with the account key, when the round's import is complete.
//!
//! Requests go through `object_store` (retries with exponential backoff and jitter on
//! 5xx, 429, timeouts and dropped connections, as the task's `retries` say), driven
//! from the workers' threads by one small tokio runtime. Creating and deleting a
//! container, which `object_store` does not do, are two REST calls signed here with the
//! account key (Shared Key). No message ever carries a signature or the key:
//! [`redact`] removes `sig=` values from every error text.

pub mod sas;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential, MicrosoftAzure};
use object_store::client::{HttpClient, HttpConnector as _, ReqwestConnector};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore as _, ObjectStoreExt as _, PutMode, PutPayload, RetryConfig,
};
use zeroize::Zeroizing;

use super::{Container, Staging, check_name};
use crate::plan::Retries;

/// A storage account to stage in.
pub struct AzureStaging {
    account: String,
    endpoint: String,
    key: Zeroizing<String>,
    key_ttl: Duration,
    retries: Retries,
    runtime: Arc<tokio::runtime::Runtime>,
    http: HttpClient,
}

impl std::fmt::Debug for AzureStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStaging")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl AzureStaging {
    /// The plan's account, its key read from where the plan says it is.
    pub fn new(
        settings: &crate::plan::AzureStaging,
        key_ttl: Duration,
        retries: Retries,
    ) -> io::Result<AzureStaging> {
        let key = settings
            .credential
            .read()
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-azure")
            .enable_all()
            .build()?;
        let http = ReqwestConnector::default()
            .connect(&client_options(&settings.endpoint))
            .map_err(store_error)?;
        Ok(AzureStaging {
            account: settings.account.clone(),
            endpoint: settings.endpoint.clone(),
            key,
            key_ttl,
            retries,
            runtime: Arc::new(runtime),
            http,
        })
    }

    /// One Shared Key request to the account (container create and delete, probe):
    /// its status, `ok` among the accepted ones; 429 and 5xx answers and dropped
    /// connections are tried again under the task's `retries`.
    fn account_request(
        &self,
        method: http::Method,
        path_and_query: &str,
        ok: &[u16],
        what: &str,
    ) -> io::Result<u16> {
        super::retry::with_retries(self.retries, || {
            let status = self.account_request_once(method.clone(), path_and_query)?;
            if ok.contains(&status) {
                Ok(status)
            } else {
                Err(status_error(what, status))
            }
        })
    }

    fn account_request_once(&self, method: http::Method, path_and_query: &str) -> io::Result<u16> {
        let url = format!("{}/{path_and_query}", self.endpoint);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-length", "0")
            .body(Vec::<u8>::new().into())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let credential =
            AzureCredential::AccessKey(AzureAccessKey::try_new(&self.key).map_err(|_| bad_key())?);
        AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|_| bad_key())?;
        let response = self
            .runtime
            .block_on(self.http.execute(request))
            .map_err(|e| {
                io::Error::new(io::ErrorKind::ConnectionRefused, redact(&e.to_string()))
            })?;
        Ok(response.status().as_u16())
    }

    /// The SAS for `container`, from five minutes ago (clocks differ) to the key's
    /// lifetime from now.
    fn sas(&self, container: &str) -> io::Result<Vec<(String, String)>> {
        let now = jiff::Timestamp::now();
        let start = now - jiff::SignedDuration::from_secs(300);
        let expiry = now + jiff::SignedDuration::from_secs(self.key_ttl.as_secs() as i64);
        let (start, expiry) = (stamp(start), stamp(expiry));
        sas::Grant {
            account: &self.account,
            container,
            permissions: sas::PERMISSIONS,
            start: &start,
            expiry: &expiry,
        }
        .query_pairs(&self.key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn bad_key() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the account key is not a storage account key (base64)",
    )
}

fn client_options(endpoint: &str) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.starts_with("http://"))
        .with_timeout(Duration::from_secs(300))
        .with_connect_timeout(Duration::from_secs(30))
}

/// What a refused status means, for a person.
fn status_error(what: &str, status: u16) -> io::Error {
    let kind = match status {
        403 => io::ErrorKind::PermissionDenied,
        404 => io::ErrorKind::NotFound,
        429 | 500..=599 => io::ErrorKind::ResourceBusy,
        _ => io::ErrorKind::Other,
    };
    let hint = match status {
        403 => ": the account key was refused (check the key, and this machine's clock)",
        _ => "",
    };
    io::Error::new(kind, format!("{what}: the service answered {status}{hint}"))
}

impl Staging for AzureStaging {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        check_name(name)?;
        self.account_request(
            http::Method::PUT,
            &format!("{name}?restype=container"),
            &[201, 409],
            "cannot create the round's container",
        )?;
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_endpoint(self.endpoint.clone())
            .with_container_name(name)
            .with_client_options(client_options(&self.endpoint))
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_sas_authorization(self.sas(name)?)
            .with_retry(retry_config(self.retries))
            .build()
            .map_err(store_error)?;
        Ok(Box::new(AzureContainer {
            store: Arc::new(store),
            runtime: Arc::clone(&self.runtime),
        }))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        self.account_request(
            http::Method::DELETE,
            &format!("{name}?restype=container"),
            &[200, 202, 204, 404],
            "cannot delete the round's container",
        )
        .map(|_| ())
    }

    fn probe(&self) -> io::Result<()> {
        self.account_request(
            http::Method::GET,
            "?comp=list&maxresults=1",
            &[200],
            "the storage account cannot be used",
        )
        .map(|_| ())
    }

    fn describe(&self) -> String {
        format!("Azure account {} at {}", self.account, self.endpoint)
    }
}

/// The task's `retries` as `object_store` applies them: to 5xx, 429, timeouts and
/// dropped connections, with jittered exponential backoff.
fn retry_config(retries: Retries) -> RetryConfig {
    let mut config = RetryConfig {
        max_retries: retries.attempts.saturating_sub(1) as usize,
        retry_timeout: Duration::from_secs(600),
        ..RetryConfig::default()
    };
    config.backoff.init_backoff = retries.backoff.0.max(Duration::from_millis(50));
    config.backoff.max_backoff = Duration::from_secs(300);
    config
}

/// A container reached through its SAS.
struct AzureContainer {
    store: Arc<MicrosoftAzure>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Container for AzureContainer {
    /// A block blob, put with `If-None-Match: *`: never over another. A blob already
    /// there under this name was put whole by an earlier run of the round (names come
    /// from the round's key and the package number), so it counts as put.
    fn put(
        &self,
        name: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        check_name(name)?;
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        let size = bytes.len() as u64;
        let path = ObjectPath::from(name);
        let put = self
            .store
            .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into());
        match self.runtime.block_on(put) {
            Ok(_) => Ok(size),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let head = self.runtime.block_on(self.store.head(&path));
                head.map(|meta| meta.size).map_err(store_error)
            }
            Err(e) => Err(store_error(e)),
        }
    }

    fn get(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let path = ObjectPath::from(name);
        let bytes = self.runtime.block_on(async {
            let result = self.store.get(&path).await?;
            result.bytes().await
        });
        Ok(Box::new(io::Cursor::new(bytes.map_err(store_error)?)))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match self
            .runtime
            .block_on(self.store.head(&ObjectPath::from(name)))
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The SAS cannot delete: a consumed blob stays until the round's container is
    /// deleted with the account key, when the round's import is complete.
    fn delete(&self, name: &str) -> io::Result<()> {
        check_name(name)
    }
}

/// An `object_store` error as an I/O error a person can act on, without any signature.
fn store_error(e: object_store::Error) -> io::Error {
    let text = redact(&e.to_string());
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, text),
        object_store::Error::AlreadyExists { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, text)
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the container's grant was refused: it expired (stage the round again), lacks the permission, or this machine's clock is wrong ({text})"
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

/// `text` with the value of every `sig=` parameter replaced: a SAS is a credential.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("REDACTED");
        rest = &rest[at + 4..];
        let end = rest
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == ')')
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_never_reach_a_message() {
        assert_eq!(
            redact("GET http://h/c/o?sv=1&sig=abc%2Bdef&se=x failed"),
            "GET http://h/c/o?sv=1&sig=REDACTED&se=x failed"
        );
        assert_eq!(redact("...sig=zzz"), "...sig=REDACTED");
        assert_eq!(redact("no secret here"), "no secret here");
    }
}
