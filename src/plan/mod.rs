//! Plans: YAML text → raw types (located errors) → a validated `Plan`.
//!
//! `load` reads the file, parses it (`yaml`), checks it against the JSON schema
//! (`schema`) and for secrets (`secrets`), then `validate` checks its meaning:
//! names, dependencies, overlapping folders, environment variables. Every problem of a
//! file is reported at once, each with its line and column. Loading never writes
//! anything; it only reads the plan and the metadata of the folders it names.

mod diagnostic;
mod expand;
pub mod graph;
pub mod mm;
pub mod raw;
pub mod schedule;
mod schema;
mod secrets;
mod settings;
pub mod shard;
pub mod units;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Place, lines};
pub use raw::StagingKind;
pub use schedule::Bandwidth;
pub(crate) use schema::closest;
pub use schema::schema_json;
pub use secrets::SecretError;
pub use settings::{Filters, MaxDelete, PackageSettings, Preserve, Retries, Settings};
pub use units::{Date, Duration, Size};

/// A validated plan: paths absolute, variables expanded, settings resolved per task.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    /// The plan file, as the user named it.
    pub file: PathBuf,
    pub working_folder: PathBuf,
    pub staging: Staging,
    /// `report.templates`: templates that replace the built-in ones.
    pub templates: Option<PathBuf>,
    /// `state.keep_rounds`: completed rounds whose journal and item list are kept.
    pub keep_rounds: u32,
    /// `schedule`: when `ferry run` may work.
    pub schedule: Option<schedule::Schedule>,
    /// `bandwidth`: the most bytes a second put into or read from staging.
    pub bandwidth: Option<Bandwidth>,
    /// `resources`: memory and reads at once.
    pub resources: Resources,
    /// In the order the plan lists them.
    pub tasks: Vec<Task>,
    /// `--shard K/N`: this run does shard K's share of every task, with its own state.
    /// Not in the plan file: the same plan runs as every shard.
    pub shard: Option<shard::Shard>,
}

/// How much memory and how many reads at once a run may use (`resources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// Bytes of data on their way, of every task together.
    pub memory: u64,
    /// Files each task reads at once; `None`: chosen for each source.
    pub reads: Option<usize>,
}

/// The memory a run holds for data on its way unless the plan says.
pub const DEFAULT_MEMORY: Size = Size(128 << 20);
pub(crate) const MIN_MEMORY: Size = Size(32 << 20);
pub(crate) const MAX_MEMORY: Size = Size(64 << 30);

impl Default for Resources {
    fn default() -> Resources {
        Resources {
            memory: DEFAULT_MEMORY.0,
            reads: None,
        }
    }
}

/// Where packages wait between upload and import.
#[derive(Debug, serde::Serialize)]
pub struct Staging {
    pub kind: StagingKind,
    pub path: PathBuf,
    pub key_ttl: Duration,
    pub retention: Duration,
    /// With `kind: azure`.
    pub azure: Option<AzureStaging>,
    /// With `kind: s3`.
    pub s3: Option<S3Staging>,
}

/// An S3 bucket to stage in.
#[derive(Clone, Debug, serde::Serialize)]
pub struct S3Staging {
    pub bucket: String,
    pub region: String,
    /// The service's endpoint, without a trailing `/`; none for AWS's own.
    pub endpoint: Option<String>,
    /// Where the access key ID is.
    pub key_id: Secret,
    /// Where the secret access key is.
    pub credential: Secret,
}

/// An Azure Blob account to stage in.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AzureStaging {
    pub account: String,
    /// The Blob service endpoint, without a trailing `/`.
    pub endpoint: String,
    /// Where the account key is.
    pub credential: Secret,
}

/// Where a secret is kept. Reading it is [`Secret::read`]; the plan holds only this.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

/// One source folder into one destination folder.
#[derive(Debug, serde::Serialize)]
pub struct Task {
    pub name: String,
    pub source: PathBuf,
    pub destination: PathBuf,
    pub depends_on: Vec<String>,
    pub settings: Settings,
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(file, text, diagnostics))]
    Invalid {
        file: String,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(file: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out: String = diagnostics.iter().map(|d| d.render(file, text)).collect();
    let count = diagnostics.len();
    out.push_str(&format!(
        "{file}: {count} problem{} found; nothing was done",
        if count == 1 { "" } else { "s" }
    ));
    out
}

/// How environment variables are read: `std::env::var`, or a map in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<String, std::env::VarError>;

impl Plan {
    /// Reads and validates the plan at `path`, with variables from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        Self::load_with_env(path, &|name| std::env::var(name))
    }

    /// Reads and validates the plan at `path`, with variables from `env`.
    pub fn load_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Plan, PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
                let column = String::from_utf8_lossy(valid)
                    .rsplit('\n')
                    .next()
                    .map_or(0, |l| l.chars().count())
                    + 1;
                let place = Place {
                    line,
                    column,
                    width: 1,
                };
                let d = Diagnostic::new(place, "", "the plan is not valid UTF-8 text");
                return Err(PlanError::Invalid {
                    file,
                    text,
                    diagnostics: vec![d],
                });
            }
        };
        Self::from_text(&text, path, env)
    }

    /// Validates plan text as if it were read from `path` (its relative paths are
    /// relative to that folder), with variables from `env`.
    pub fn from_text(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Plan, PlanError> {
        let dir = plan_folder(path);
        match parse_and_validate(text, path, &dir, env) {
            Ok(plan) => Ok(plan),
            Err(diagnostics) => {
                let mut diagnostics: Vec<Diagnostic> =
                    diagnostics.into_iter().map(|d| d.clamped(text)).collect();
                diagnostics.sort_by(|a, b| a.place.cmp(&b.place).then(a.message.cmp(&b.message)));
                diagnostics.dedup();
                Err(PlanError::Invalid {
                    file: path.display().to_string(),
                    text: text.to_string(),
                    diagnostics,
                })
            }
        }
    }
}

/// The absolute folder that holds the plan file: the base of its relative paths.
fn plan_folder(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parent = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    expand::normalize(&parent)
}

fn parse_and_validate(
    text: &str,
    file: &Path,
    dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Plan, Vec<Diagnostic>> {
    let doc = yaml::parse(text).map_err(|d| vec![d])?;
    if !doc.value.is_object() {
        let message = if doc.value.is_null() {
            "the plan is empty: expected a mapping with `version`, `name` and `tasks`"
        } else {
            "expected a mapping with `version`, `name` and `tasks` at the top of the plan"
        };
        return Err(vec![Diagnostic::new(doc.spans.value(""), "", message)]);
    }
    // Another version's keys may mean other things: say only that the version is
    // unknown rather than list every difference.
    if let Some(version) = doc.value.get("version").and_then(serde_json::Value::as_u64)
        && version != 1
    {
        let message = format!("unsupported plan version {version}: this ferry reads version 1");
        return Err(vec![Diagnostic::new(
            doc.spans.value("/version"),
            "/version",
            message,
        )]);
    }
    let secrets = secrets::find(&doc);
    let mut problems = schema::check(&doc);
    // A message about a secret's node could quote the secret: keep only the secret's.
    problems.retain(|d| !secrets.iter().any(|s| is_within(&d.pointer, &s.pointer)));
    problems.extend(secrets);
    let raw = if problems.is_empty() {
        match serde_json::from_value::<raw::RawPlan>(doc.value.clone()) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let message = format!("the plan does not fit its schema: {e}");
                problems.push(Diagnostic::new(Place::default(), "", message));
                None
            }
        }
    } else {
        None
    };
    let meaning = match validate::validate(&doc, raw.as_ref(), file, dir, env) {
        Ok(plan) => return Ok(plan),
        Err(meaning) => meaning,
    };
    // What the schema already said about a node is enough.
    let said: Vec<String> = problems.iter().map(|d| d.pointer.clone()).collect();
    problems.extend(meaning.into_iter().filter(|d| !said.contains(&d.pointer)));
    mask_secret_lines(&mut problems);
    Err(problems)
}

/// Whether JSON pointer `inner` is `outer` or names a node inside it.
fn is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Every snippet that shows a line holding a secret masks it.
fn mask_secret_lines(problems: &mut [Diagnostic]) {
    let masks: Vec<(usize, usize)> = problems
        .iter()
        .filter_map(|d| d.redact_from.map(|from| (d.place.line, from)))
        .collect();
    for d in problems.iter_mut() {
        for &(line, from) in &masks {
            if d.place.line == line {
                d.redact_from = Some(d.redact_from.map_or(from, |f| f.min(from)));
            }
        }
    }
}

/// Compiles globs the way filters match them; validation uses it too, so that a plan
/// that validates compiles.
pub fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = include_str!("../../plans/example-full.yaml");

    fn load(text: &str) -> Result<Plan, Vec<Diagnostic>> {
        parse_and_validate(
            text,
            Path::new("plan.yaml"),
            Path::new("/nonexistent/plans"),
            &|name| match name {
                "HOME" => Ok("/nonexistent/home".into()),
                _ => Err(std::env::VarError::NotPresent),
            },
        )
    }

    #[test]
    fn example_full_loads() {
        let plan = load(FULL).expect("example-full.yaml is valid");
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(plan.staging.path, PathBuf::from("/var/lib/ferry/staging"));
    }

    /// Damaged plans never panic, and every problem points inside the text: delete,
    /// duplicate or replace each byte of a real plan in turn.
    #[test]
    fn damaged_plans_fail_cleanly_with_places_inside_the_text() {
        let lines = FULL.lines().count() + 1;
        let bytes = FULL.as_bytes();
        for at in (0..bytes.len()).step_by(7) {
            for edit in 0..4 {
                let mut damaged = bytes.to_vec();
                match edit {
                    0 => {
                        damaged.remove(at);
                    }
                    1 => damaged.insert(at, bytes[at]),
                    2 => damaged[at] = b'\t',
                    _ => damaged[at] = b':',
                }
                let Ok(text) = String::from_utf8(damaged) else {
                    continue;
                };
                if let Err(problems) = load(&text) {
                    assert!(!problems.is_empty());
                    for p in problems {
                        assert!(p.place.line >= 1 && p.place.line <= lines, "{p} in {text}");
                        assert!(p.place.column >= 1, "{p}");
                    }
                }
            }
        }
    }
}
