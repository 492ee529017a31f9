//! Secrets written into a plan.
//!
//! Plans are committed to repositories, so a secret in one is a leaked secret. Where a
//! key takes a secret, the plan may only name where it lives (`{env: NAME}` or
//! `{file: PATH}`); any string anywhere in the plan that looks like a credential is an
//! error. The value itself is never repeated in a message.

use std::os::unix::fs::MetadataExt as _;

use zeroize::Zeroizing;

use super::Secret;

/// Why a secret could not be read. The secret itself is never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} that should hold the secret is not set")]
    Unset(String),
    #[error("cannot read the secret file {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret file {} may be read by other accounts (mode {mode:o}): make it readable only by its owner (chmod 600)",
        path.display()
    )]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error("the secret file {} belongs to another account (uid {owner})", path.display())]
    Owner {
        path: std::path::PathBuf,
        owner: u32,
    },
    #[error("the secret in {0} is empty")]
    Empty(String),
}

impl Secret {
    /// The secret, trimmed of surrounding whitespace. A file must be a regular file of
    /// this account that nobody else can read.
    pub fn read(&self) -> Result<Zeroizing<String>, SecretError> {
        let (text, place) = match self {
            Secret::Env(name) => {
                let value = std::env::var(name).map_err(|_| SecretError::Unset(name.clone()))?;
                (Zeroizing::new(value), format!("${name}"))
            }
            Secret::File(path) => {
                let unreadable = |source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                };
                let file = std::fs::File::open(path).map_err(unreadable)?;
                let meta = file.metadata().map_err(unreadable)?;
                if meta.mode() & 0o077 != 0 {
                    return Err(SecretError::Exposed {
                        path: path.clone(),
                        mode: meta.mode() & 0o7777,
                    });
                }
                let me = rustix::process::geteuid().as_raw();
                if meta.uid() != me {
                    return Err(SecretError::Owner {
                        path: path.clone(),
                        owner: meta.uid(),
                    });
                }
                let mut text = Zeroizing::new(String::new());
                std::io::Read::read_to_string(&mut &file, &mut text).map_err(unreadable)?;
                (text, path.display().to_string())
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(SecretError::Empty(place));
        }
        Ok(Zeroizing::new(trimmed.to_string()))
    }
}

/// Why `text` looks like a secret, if it does.
pub(crate) fn looks_like_secret(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    let has_param = |name: &str| {
        lower
            .match_indices(name)
            .any(|(at, _)| at == 0 || matches!(lower.as_bytes()[at - 1], b'?' | b'&' | b';' | b' '))
    };
    if has_param("sig=") {
        return Some("a shared access signature (`sig=`)");
    }
    if lower.contains("accountkey=") || lower.contains("sharedaccesskey=") {
        return Some("a storage account key");
    }
    if lower.contains("-----begin") && lower.contains("private key") {
        return Some("a private key");
    }
    if has_param("password=") || has_param("pwd=") || has_param("token=") {
        return Some("a password or token parameter");
    }
    if url_password(text) {
        return Some("a password inside a URL");
    }
    if key_like(text) {
        return Some("an encoded key");
    }
    None
}

/// `scheme://user:password@host`.
fn url_password(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
        userinfo
            .split_once(':')
            .is_some_and(|(_, pw)| !pw.is_empty())
    })
}

/// A whole value that is a long hex or base64 blob: 32 bytes or more of key material.
/// Paths do not look like this: they start with `/`, or hold `.`, `-`, `_` or spaces,
/// none of which is in the standard base64 alphabet.
fn key_like(text: &str) -> bool {
    let hex = text.len() >= 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let body = text.trim_end_matches('=');
    let base64 = text.len() >= 44
        && text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && !text.starts_with('/')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        && body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase());
    hex || base64
}

/// Every string in the document, key or value, that looks like a secret.
pub(crate) fn find(doc: &super::yaml::Document) -> Vec<super::Diagnostic> {
    let mut out = Vec::new();
    walk(&doc.value, String::new(), doc, &mut out);
    out
}

fn flag(text: &str, place: super::Place, pointer: &str, out: &mut Vec<super::Diagnostic>) {
    if let Some(what) = looks_like_secret(text) {
        let message = format!(
            "this looks like {what}: a plan must never hold secrets. Keep it in an \
             environment variable or a file readable only by its owner, and refer to it \
             as `{{env: NAME}}` or `{{file: PATH}}` where a key accepts a secret"
        );
        let mut d = super::Diagnostic::new(place, pointer, message);
        d.redact_from = Some(place.column);
        out.push(d);
    }
}

fn walk(
    value: &serde_json::Value,
    pointer: String,
    doc: &super::yaml::Document,
    out: &mut Vec<super::Diagnostic>,
) {
    use serde_json::Value;
    match value {
        Value::String(text) => flag(text, doc.spans.value(&pointer), &pointer, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{pointer}/{i}"), doc, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = format!("{pointer}/{}", super::yaml::escape_pointer(key));
                flag(key, doc.spans.key(&child), &child, out);
                walk(item, child, doc, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  s3cr3t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = Secret::File(path.clone());
        assert_eq!(secret.read().unwrap().as_str(), "s3cr3t");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = secret.read().unwrap_err().to_string();
        assert!(e.contains("chmod 600") && !e.contains("s3cr3t"), "{e}");
        assert!(matches!(
            Secret::Env("FERRY_TEST_SURELY_UNSET".into()).read(),
            Err(SecretError::Unset(_))
        ));
    }

    #[test]
    fn credentials_are_recognised() {
        for secret in [
            "https://acct.blob.core.windows.net/c?sv=2022-11-02&sp=rw&sig=abcDEF123%3D",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;",
            "-----BEGIN RSA PRIVATE KEY-----",
            "smb://admin:hunter2@fileserver/share",
            "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTIzNDU2Nzg5MA==",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "https://x/?user=a&password=b",
        ] {
            assert!(looks_like_secret(secret).is_some(), "{secret}");
        }
    }

    #[test]
    fn ordinary_plan_values_are_not_secrets() {
        for plain in [
            "/mnt/shares/finance/2024",
            "/srv/sites/finance/Shared Documents/2024",
            "${SHARE_ROOT}/design",
            "keep-destination-changes",
            "**/~$*",
            "smb://fileserver/share",
            "https://user@host/path",
            "/mnt/shares/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/x",
            "design-signoff",
            "/data/signature=final",
        ] {
            assert_eq!(looks_like_secret(plain), None, "{plain}");
        }
    }
}
