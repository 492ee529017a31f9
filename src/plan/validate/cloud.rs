//! The keys of a cloud staging (`kind: azure`, `kind: s3`): which belong to which kind,
//! endpoints, and secrets only by reference.

use serde_json::Value;

use super::super::expand::expand_vars;
use super::super::raw::StagingKind;
use super::super::{AzureStaging, S3Staging, Secret};
use super::Checker;

/// Which staging keys belong to which kinds.
const CLOUD_KEYS: [(&str, &[StagingKind]); 6] = [
    ("account", &[StagingKind::Azure]),
    ("bucket", &[StagingKind::S3]),
    ("region", &[StagingKind::S3]),
    ("key_id", &[StagingKind::S3]),
    ("endpoint", &[StagingKind::Azure, StagingKind::S3]),
    ("credential", &[StagingKind::Azure, StagingKind::S3]),
];

fn present(c: &Checker<'_>, key: &str) -> bool {
    c.doc
        .value
        .pointer(&format!("/staging/{key}"))
        .is_some_and(|v| !v.is_null())
}

fn text_at(c: &Checker<'_>, pointer: &str) -> Option<String> {
    c.doc
        .value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A staging key of another kind is refused: a plan that names a bucket but says
/// `kind: local` is a mistake, not a setting.
pub(super) fn foreign_keys(c: &mut Checker<'_>, kind: StagingKind) {
    if kind == StagingKind::None {
        for key in ["path", "key_ttl", "retention"] {
            if present(c, key) {
                c.at_value(
                    &format!("/staging/{key}"),
                    format!(
                        "`{key}` is a setting of staged data; `kind: none` stages nothing (files go straight to the destination)"
                    ),
                );
            }
        }
        direct_settings(c);
    }
    for (key, kinds) in CLOUD_KEYS {
        if !kinds.contains(&kind) && present(c, key) {
            let owners: Vec<String> = kinds
                .iter()
                .map(|k| format!("`kind: {}`", k.as_str()))
                .collect();
            c.at_value(
                &format!("/staging/{key}"),
                format!(
                    "`{key}` belongs to {}; this staging is `{}`",
                    owners.join(" and "),
                    kind.as_str()
                ),
            );
        }
    }
}

/// Settings that only a staged run uses are mistakes with `kind: none`: packages are
/// not compressed, and no pool reads ahead of the workers.
fn direct_settings(c: &mut Checker<'_>) {
    let tasks = c
        .doc
        .value
        .pointer("/tasks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut places = vec!["/defaults/package/compression_level".to_string()];
    places.extend((0..tasks).map(|i| format!("/tasks/{i}/settings/package/compression_level")));
    for place in places {
        if c.doc.value.pointer(&place).is_some_and(|v| !v.is_null()) {
            c.at_value(
                &place,
                "`compression_level` is a setting of staged packages; `kind: none` compresses nothing (files go straight to the destination)",
            );
        }
    }
    if c.doc
        .value
        .pointer("/resources/reads")
        .is_some_and(|v| !v.is_null())
    {
        c.at_value(
            "/resources/reads",
            "`reads` sizes the pool that reads ahead for staged packages; with `kind: none` each worker copies its own files: set `--workers` for more at once",
        );
    }
}

/// A cloud staging's `endpoint`: an http(s) URL, `${VAR}` expanded, no trailing `/`.
fn endpoint(c: &mut Checker<'_>) -> Option<Result<String, ()>> {
    let text = text_at(c, "/staging/endpoint")?;
    Some(match expand_vars(&text, c.env) {
        Ok(e) if e.starts_with("https://") || e.starts_with("http://") => {
            Ok(e.trim_end_matches('/').to_string())
        }
        Ok(_) => {
            c.at_value("/staging/endpoint", "expected an http:// or https:// URL");
            Err(())
        }
        Err(message) => {
            c.at_value("/staging/endpoint", message);
            Err(())
        }
    })
}

/// A required secret reference of a cloud staging.
fn required_secret(c: &mut Checker<'_>, key: &str, kind: &str, what: &str) -> Option<Secret> {
    if !present(c, key) {
        c.at_value(
            "/staging/kind",
            format!("`kind: {kind}` needs `{key}`: where {what} is, as `{{env: NAME}}` or `{{file: PATH}}`"),
        );
        return None;
    }
    secret(c, &format!("/staging/{key}"))
}

/// The bucket of `kind: s3`.
pub(super) fn s3(c: &mut Checker<'_>) -> Option<S3Staging> {
    let bucket = text_at(c, "/staging/bucket");
    let valid_bucket = bucket.as_deref().is_some_and(|b| {
        (3..=63).contains(&b.len())
            && b.bytes()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'-' || x == b'.')
            && b.as_bytes()[0].is_ascii_alphanumeric()
            && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
    });
    if bucket.is_none() {
        c.at_value(
            "/staging/kind",
            "`kind: s3` needs `bucket`, the bucket's name",
        );
    } else if !valid_bucket {
        c.at_value(
            "/staging/bucket",
            "expected a bucket name: 3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
        );
    }
    let region = text_at(c, "/staging/region").unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = match endpoint(c) {
        Some(Ok(e)) => Some(Some(e)),
        Some(Err(())) => None,
        None => Some(None),
    };
    let key_id = required_secret(c, "key_id", "s3", "the access key ID");
    let credential = required_secret(c, "credential", "s3", "the secret access key");
    match (bucket, endpoint, key_id, credential) {
        (Some(bucket), Some(endpoint), Some(key_id), Some(credential)) if valid_bucket => {
            Some(S3Staging {
                bucket,
                region,
                endpoint,
                key_id,
                credential,
            })
        }
        _ => None,
    }
}

/// The Azure account of `kind: azure`.
pub(super) fn azure(c: &mut Checker<'_>) -> Option<AzureStaging> {
    let account = text_at(c, "/staging/account");
    let valid_account = account.as_deref().is_some_and(|a| {
        (3..=24).contains(&a.len())
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if account.is_none() {
        c.at_value(
            "/staging/kind",
            "`kind: azure` needs `account`, the storage account's name",
        );
    } else if !valid_account {
        c.at_value(
            "/staging/account",
            "expected a storage account name: 3 to 24 lowercase letters and digits",
        );
    }
    let endpoint = match endpoint(c) {
        Some(Ok(e)) => Some(e),
        Some(Err(())) => None,
        None => account
            .as_ref()
            .map(|a| format!("https://{a}.blob.core.windows.net")),
    };
    let credential = required_secret(c, "credential", "azure", "the account key");
    match (account, endpoint, credential) {
        (Some(account), Some(endpoint), Some(credential)) if valid_account => Some(AzureStaging {
            account,
            endpoint,
            credential,
        }),
        _ => None,
    }
}

/// A `{env: NAME}` or `{file: PATH}` reference at `pointer`: exactly one of them.
fn secret(c: &mut Checker<'_>, pointer: &str) -> Option<Secret> {
    let value = c.doc.value.pointer(pointer)?.clone();
    let env = value.get("env").and_then(Value::as_str).map(str::to_string);
    let file = value
        .get("file")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (env, file) {
        (Some(name), None) => Some(Secret::Env(name)),
        (None, Some(path)) => c.path(&format!("{pointer}/file"), &path).map(Secret::File),
        (Some(_), Some(_)) => {
            c.at_value(pointer, "expected one of `env` and `file`, not both");
            None
        }
        (None, None) => {
            c.at_value(pointer, "expected `{env: NAME}` or `{file: PATH}`");
            None
        }
    }
}
