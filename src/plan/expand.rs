//! `${VAR}` in paths, and paths relative to the plan file's folder.
//!
//! One plan serves several agents by naming machine-specific roots through the
//! environment. An unset or empty variable is an error that names it, never an empty
//! string: `/${SHARE}/x` must not quietly become `//x`.

use std::env::VarError;
use std::path::{Component, Path, PathBuf};

/// Expands `${NAME}` from `lookup`; `$$` is a literal `$`, and any other `$` stands
/// for itself. Returns the first problem as a message.
pub(crate) fn expand_vars(
    text: &str,
    lookup: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
            let name = &body[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not a variable reference: a name is letters, digits and `_`, not starting with a digit"
                ));
            }
            match lookup(name) {
                Err(VarError::NotPresent) => {
                    return Err(format!("environment variable `{name}` is not set"));
                }
                Err(VarError::NotUnicode(_)) => {
                    return Err(format!("environment variable `{name}` is not valid UTF-8"));
                }
                Ok(value) if value.is_empty() => {
                    return Err(format!("environment variable `{name}` is set but empty"));
                }
                Ok(value) => out.push_str(&value),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `path` made absolute against `base` (the plan file's folder), with `.` and `..`
/// resolved lexically, as a shell's `cd` would read them.
pub(crate) fn resolve_path(base: &Path, path: &str) -> PathBuf {
    normalize(&base.join(path))
}

pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "ROOT" => Ok("/mnt/shares".into()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        }
    }

    #[test]
    fn expands_braced_variables() {
        assert_eq!(
            expand_vars("${ROOT}/finance", &env),
            Ok("/mnt/shares/finance".into())
        );
        assert_eq!(
            expand_vars("a${ROOT}b${ROOT}", &env),
            Ok("a/mnt/sharesb/mnt/shares".into())
        );
        assert_eq!(
            expand_vars("cost$5 and $$HOME", &env),
            Ok("cost$5 and $HOME".into())
        );
    }

    #[test]
    fn unset_empty_and_malformed_variables_are_errors() {
        assert_eq!(
            expand_vars("${NOPE}/x", &env),
            Err("environment variable `NOPE` is not set".into())
        );
        assert_eq!(
            expand_vars("${EMPTY}", &env),
            Err("environment variable `EMPTY` is set but empty".into())
        );
        assert!(expand_vars("${ROOT", &env).is_err());
        assert!(expand_vars("${1X}", &env).is_err());
        assert!(expand_vars("${}", &env).is_err());
    }

    #[test]
    fn relative_paths_are_relative_to_the_plan_folder() {
        let base = Path::new("/repo/plans");
        assert_eq!(
            resolve_path(base, "../target/x"),
            PathBuf::from("/repo/target/x")
        );
        assert_eq!(resolve_path(base, "/abs/./y"), PathBuf::from("/abs/y"));
        assert_eq!(
            resolve_path(base, "share"),
            PathBuf::from("/repo/plans/share")
        );
    }
}
