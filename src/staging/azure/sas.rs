//! The service SAS of one container, signed with the account key: what the workers use
//! instead of the key. Its permissions are `rcw` (read, create, write): it cannot list
//! the container, delete from it, or reach any other container.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};

/// The version of the signing rules.
pub const VERSION: &str = "2026-10-06";

/// Read, create and write: no list, no delete.
pub const PERMISSIONS: &str = "rcw";

/// What a container SAS grants, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant<'a> {
    pub account: &'a str,
    pub container: &'a str,
    pub permissions: &'a str,
    /// ISO 8601 UTC, to the second: `2026-01-01T00:00:00Z`.
    pub start: &'a str,
    pub expiry: &'a str,
}

impl Grant<'_> {
    /// The string the signature covers: sixteen fields joined by `\n`, no trailing one
    /// (signed permissions, start, expiry, canonicalized resource, identifier, IP range,
    /// protocol, version, resource, snapshot time, encryption scope, and the five
    /// response-header overrides).
    pub fn string_to_sign(&self) -> String {
        let resource = format!("/blob/{}/{}", self.account, self.container);
        [
            self.permissions,
            self.start,
            self.expiry,
            &resource,
            "",
            "",
            "",
            VERSION,
            "c",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n")
    }

    /// The signature: base64 of HMAC-SHA256 under the decoded account key.
    pub fn signature(&self, account_key: &str) -> Result<String, String> {
        let key = STANDARD
            .decode(account_key.trim())
            .map_err(|_| "the account key is not base64".to_string())?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|_| "the account key cannot key HMAC-SHA256".to_string())?;
        mac.update(self.string_to_sign().as_bytes());
        Ok(STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The SAS as query pairs, for a client to append to each request.
    pub fn query_pairs(&self, account_key: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![
            ("sv".into(), VERSION.into()),
            ("sr".into(), "c".into()),
            ("sp".into(), self.permissions.into()),
            ("st".into(), self.start.into()),
            ("se".into(), self.expiry.into()),
            ("sig".into(), self.signature(account_key)?),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's published development account key.
    pub const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn the_golden_vector() {
        let grant = Grant {
            account: "devstoreaccount1",
            container: "ferry-fixed",
            permissions: "rcw",
            start: "2026-01-01T00:00:00Z",
            expiry: "2026-01-02T00:00:00Z",
        };
        assert_eq!(
            grant.string_to_sign(),
            "rcw\n2026-01-01T00:00:00Z\n2026-01-02T00:00:00Z\n/blob/devstoreaccount1/ferry-fixed\n\n\n\n2026-10-06\nc\n\n\n\n\n\n\n"
        );
        assert_eq!(grant.string_to_sign().split('\n').count(), 16);
        assert_eq!(
            grant.signature(DEV_KEY).unwrap(),
            "mERiuxeJy966mGfDzH6vX0x5rpjNAZVnCU9TXbCckrk="
        );
        assert!(grant.signature("not base64!").is_err());
    }
}
