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
//! [`redact`](crate::shown::redact) removes `sig=` values from every error text.

pub mod sas;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::client::{HttpClient, HttpConnector as _, ReqwestConnector};
use zeroize::Zeroizing;

use super::object::{ObjectContainer, client_options, retry_config, runtime, store_error};
use super::{Container, Staging, check_name};
use crate::plan::Retries;
use crate::shown::redact;

/// One container's address and its SAS: what a ticket hands to the importing side, so
/// that it needs no account key. The SAS is a credential: it is never shown.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub endpoint: String,
    pub account: String,
    pub container: String,
    /// The SAS's query parameters (`sv`, `sp`, `sig`, ...).
    pub sas: Vec<(String, String)>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("endpoint", &self.endpoint)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// When the SAS expires (Unix seconds), as it says itself.
    pub fn expires_at(&self) -> Option<i64> {
        let (_, se) = self.sas.iter().find(|(k, _)| k == "se")?;
        se.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
    }
}

/// A container reached through a SAS, by whoever holds the grant.
fn through_sas(
    grant: &Grant,
    retries: Retries,
    runtime: &Arc<tokio::runtime::Runtime>,
) -> io::Result<Box<dyn Container>> {
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(&grant.account)
        .with_endpoint(grant.endpoint.clone())
        .with_container_name(&grant.container)
        .with_client_options(client_options(&grant.endpoint))
        .with_allow_http(grant.endpoint.starts_with("http://"))
        .with_sas_authorization(grant.sas.clone())
        .with_retry(retry_config(retries))
        .build()
        .map_err(store_error)?;
    let store = Arc::new(store);
    Ok(Box::new(ObjectContainer {
        store: store.clone(),
        prefix: String::new(),
        runtime: Arc::clone(runtime),
        can_delete: false,
        multipart: store,
    }))
}

/// The one container of a ticket, through its SAS: no account key on this side, so it
/// can neither create nor delete containers (the staging side deletes it once the
/// import hands its result back).
pub struct Granted {
    grant: Grant,
    retries: Retries,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl Granted {
    pub fn new(grant: Grant, retries: Retries) -> io::Result<Granted> {
        Ok(Granted {
            grant,
            retries,
            runtime: runtime("ferry-azure")?,
        })
    }
}

impl Staging for Granted {
    fn open(&self, name: &str) -> io::Result<Box<dyn Container>> {
        if name != self.grant.container {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the ticket grants container {} only, not {name}",
                    self.grant.container
                ),
            ));
        }
        through_sas(&self.grant, self.retries, &self.runtime)
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "container {name} can only be deleted with the account key, at the side that staged it"
            ),
        ))
    }

    fn probe(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "Azure container {} at {} (through the ticket's grant)",
            self.grant.container, self.grant.endpoint
        )
    }
}

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
        let runtime = runtime("ferry-azure")?;
        let http = ReqwestConnector::default()
            .connect(&client_options(&settings.endpoint))
            .map_err(store_error)?;
        Ok(AzureStaging {
            account: settings.account.clone(),
            endpoint: settings.endpoint.clone(),
            key,
            key_ttl,
            retries,
            runtime,
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
            let (status, _) = self.account_request_once(method.clone(), path_and_query)?;
            if ok.contains(&status) {
                Ok(status)
            } else {
                Err(status_error(what, status))
            }
        })
    }

    /// Its status and body.
    fn account_request_once(
        &self,
        method: http::Method,
        path_and_query: &str,
    ) -> io::Result<(u16, Vec<u8>)> {
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
        let failed = |e: object_store::client::HttpError| {
            io::Error::new(io::ErrorKind::ConnectionRefused, redact(&e.to_string()))
        };
        self.runtime.block_on(async {
            let response = self.http.execute(request).await.map_err(failed)?;
            let status = response.status().as_u16();
            let body = response.into_body().bytes().await.map_err(failed)?;
            Ok((status, body.to_vec()))
        })
    }

    /// The SAS for `container`, from five minutes ago (clocks differ) to `expiry`.
    fn sas(&self, container: &str, expiry: jiff::Timestamp) -> io::Result<Vec<(String, String)>> {
        let now = jiff::Timestamp::now();
        let start = now - jiff::SignedDuration::from_secs(300);
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
        let expiry =
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(self.key_ttl.as_secs() as i64);
        let grant = Grant {
            endpoint: self.endpoint.clone(),
            account: self.account.clone(),
            container: name.to_string(),
            sas: self.sas(name, expiry)?,
        };
        through_sas(&grant, self.retries, &self.runtime)
    }

    fn grant(&self, name: &str, expires_at: i64) -> io::Result<Option<Grant>> {
        check_name(name)?;
        let expiry = jiff::Timestamp::from_second(expires_at)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Some(Grant {
            endpoint: self.endpoint.clone(),
            account: self.account.clone(),
            container: name.to_string(),
            sas: self.sas(name, expiry)?,
        }))
    }

    fn discard(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        crate::failpoint::hit("container-delete")?;
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

    /// List Containers, page by page.
    fn containers(&self, prefix: &str) -> io::Result<Vec<super::Listed>> {
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{prefix}` cannot begin a container's name"),
            ));
        }
        let mut listed = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = format!("?comp=list&prefix={prefix}&maxresults=5000");
            if !marker.is_empty() {
                query.push_str(&format!(
                    "&marker={}",
                    percent_encoding::utf8_percent_encode(
                        &marker,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ));
            }
            let body = super::retry::with_retries(self.retries, || {
                match self.account_request_once(http::Method::GET, &query)? {
                    (200, body) => Ok(body),
                    (status, _) => {
                        Err(status_error("cannot list the account's containers", status))
                    }
                }
            })?;
            let text = String::from_utf8_lossy(&body);
            listed.extend(list_containers(&text));
            marker = between(&text, "<NextMarker>", "</NextMarker>")
                .unwrap_or_default()
                .to_string();
            if marker.is_empty() {
                return Ok(listed);
            }
        }
    }
}

/// The text between the first `open` and the `close` after it.
fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)?;
    Some(&text[start..start + end])
}

/// The containers of a List Containers answer, with their `Last-Modified` (when it
/// was created). Container names are lowercase letters, digits and `-`: no XML escapes.
fn list_containers(xml: &str) -> Vec<super::Listed> {
    xml.split("<Container>")
        .skip(1)
        .filter_map(|part| {
            let name = between(part, "<Name>", "</Name>")?;
            let written_at = between(part, "<Last-Modified>", "</Last-Modified>")
                .and_then(|t| jiff::fmt::rfc2822::parse(t).ok())
                .map(|t| t.timestamp().as_second());
            Some(super::Listed {
                name: name.to_string(),
                written_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_containers_is_read_with_its_times_and_next_page() {
        let xml = "<?xml version=\"1.0\"?><EnumerationResults><Prefix>t-r</Prefix><Containers>\
            <Container><Name>t-r1-0123456789abcdef</Name><Properties><Last-Modified>Tue, 01 Dec 2026 03:48:10 GMT</Last-Modified></Properties></Container>\
            <Container><Name>t-r2-fedcba9876543210</Name><Properties></Properties></Container>\
            </Containers><NextMarker>/devstoreaccount1/t-r3</NextMarker></EnumerationResults>";
        let listed = list_containers(xml);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].name, "t-r1-0123456789abcdef");
        assert_eq!(
            listed[0].written_at,
            Some(
                "2026-12-01T03:48:10Z"
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
        assert_eq!(listed[1].written_at, None);
        assert_eq!(
            between(xml, "<NextMarker>", "</NextMarker>"),
            Some("/devstoreaccount1/t-r3")
        );
    }
}
