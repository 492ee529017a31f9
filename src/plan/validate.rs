//! The meaning of a plan that has passed the schema: names, dependencies, paths and
//! settings that only make sense together.
//!
//! Checks here may read the metadata of the folders a plan names (to compare them
//! after resolving symbolic links and bind mounts) but never write anything. Every
//! problem is collected; none stops the others from being found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::expand::{expand_vars, resolve_path};
use super::raw::{RawPlan, RawSettings, StagingKind};
use super::schema::closest;
use super::settings::{MAX_PACKAGE_SIZE, MIN_PACKAGE_SIZE, Settings, overlay};
use super::units::{Date, Duration, Size};
use super::yaml::Document;
use super::{EnvLookup, Plan, Staging, Task};
use crate::plan::graph;

mod cloud;
mod windows;

use cloud::{azure, foreign_keys, s3};
use windows::{bandwidth, schedule};

const DEFAULT_KEY_TTL: Duration = Duration(std::time::Duration::from_secs(3 * 86_400));
const DEFAULT_RETENTION: Duration = Duration(std::time::Duration::from_secs(30 * 86_400));
const MIN_RETENTION: Duration = Duration(std::time::Duration::from_secs(4 * 86_400));
const MIN_KEY_TTL: Duration = Duration(std::time::Duration::from_secs(60));
const MAX_BACKOFF: Duration = Duration(std::time::Duration::from_secs(3600));

struct Checker<'a> {
    doc: &'a Document,
    dir: &'a Path,
    env: EnvLookup<'a>,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn at_value(&mut self, pointer: &str, message: impl Into<String>) {
        let place = self.doc.spans.value(pointer);
        self.problems.push(Diagnostic::new(place, pointer, message));
    }

    /// Expands variables in a path and makes it absolute; `None` after reporting.
    fn path(&mut self, pointer: &str, text: &str) -> Option<PathBuf> {
        match expand_vars(text, self.env) {
            Ok(expanded) if expanded.contains('\0') => {
                self.at_value(pointer, "a path cannot contain a NUL character");
                None
            }
            Ok(expanded) => Some(resolve_path(self.dir, &expanded)),
            Err(message) => {
                self.at_value(pointer, message);
                None
            }
        }
    }
}

/// Checks the meaning of a parsed plan. Works on the JSON value, tolerating parts
/// the schema rejected, so that its problems are reported together with the schema's;
/// the `Plan` is built only when `raw` (the typed plan) is given and all is well.
pub(crate) fn validate(
    doc: &Document,
    raw: Option<&RawPlan>,
    file: &Path,
    dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut c = Checker {
        doc,
        dir,
        env,
        problems: Vec::new(),
    };
    let value = &doc.value;
    let Places {
        working_folder,
        staging_path,
        templates,
        key_ttl,
        retention,
    } = places(&mut c, value);

    let defaults = match value.get("defaults") {
        Some(d @ Value::Object(_)) => d.clone(),
        _ => Value::Object(Default::default()),
    };
    check_settings(&mut c, "/defaults", &defaults);

    // Names first: later checks refer to tasks by name.
    let tasks_value: &[Value] = value
        .get("tasks")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let names: Vec<&str> = tasks_value
        .iter()
        .map(|t| t.get("name").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let edges = dependencies(&mut c, tasks_value, &names);

    let mut tasks = Vec::new();
    for (i, task) in tasks_value.iter().enumerate() {
        let mut path_of = |key: &str| {
            let pointer = format!("/tasks/{i}/{key}");
            task.get(key)
                .and_then(Value::as_str)
                .and_then(|text| c.path(&pointer, text))
        };
        let source = path_of("source");
        let destination = path_of("destination");
        let own = task.get("settings").filter(|s| s.is_object());
        let settings_value = match own {
            Some(own) => {
                check_settings(&mut c, &format!("/tasks/{i}/settings"), own);
                overlay(&defaults, own)
            }
            None => defaults.clone(),
        };
        check_size_range(&mut c, i, own, &settings_value);
        if raw.is_none() || !c.problems.is_empty() {
            continue;
        }
        let settings = resolve_settings(&mut c, i, own.is_some(), settings_value);
        if let (Some(source), Some(destination), Some(settings)) = (source, destination, settings) {
            tasks.push(Task {
                name: names[i].to_string(),
                source,
                destination,
                depends_on: task
                    .get("depends_on")
                    .and_then(Value::as_array)
                    .map(|deps| {
                        deps.iter()
                            .map(|d| d.as_str().unwrap_or("").to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                settings,
            });
        }
    }

    let Some(raw) = raw else {
        return Err(c.problems);
    };
    if c.problems.is_empty() {
        check_overlaps(
            &mut c,
            &tasks,
            &edges,
            working_folder.as_deref(),
            staging_path.as_deref(),
            &names,
        );
    }
    let kind = raw
        .staging
        .as_ref()
        .and_then(|s| s.kind)
        .unwrap_or(StagingKind::Local);
    let schedule = schedule(&mut c);
    let bandwidth = bandwidth(&mut c, schedule.as_ref());
    let resources = resources(&mut c);
    foreign_keys(&mut c, kind);
    let azure = (kind == StagingKind::Azure)
        .then(|| azure(&mut c))
        .flatten();
    let s3 = (kind == StagingKind::S3).then(|| s3(&mut c)).flatten();
    match (c.problems.is_empty(), working_folder, staging_path) {
        (true, Some(working_folder), Some(path)) => Ok(Plan {
            name: raw.name.clone(),
            file: file.to_path_buf(),
            working_folder,
            staging: Staging {
                kind,
                path,
                key_ttl,
                retention,
                azure,
                s3,
            },
            templates,
            bandwidth,
            schedule,
            resources,
            keep_rounds: value
                .pointer("/state/keep_rounds")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_KEEP_ROUNDS, |n| n as u32),
            tasks,
            shard: None,
        }),
        _ => Err(c.problems),
    }
}

/// Completed rounds whose journal and item list are kept, unless the plan says.
const DEFAULT_KEEP_ROUNDS: u32 = 10;

/// Where a plan keeps its state, staging and templates, and how long keys and staged
/// data live.
struct Places {
    working_folder: Option<PathBuf>,
    staging_path: Option<PathBuf>,
    templates: Option<PathBuf>,
    key_ttl: Duration,
    retention: Duration,
}

fn places(c: &mut Checker<'_>, value: &Value) -> Places {
    let text_at = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);

    let working_folder = match text_at("/working_folder") {
        Some(text) => c.path("/working_folder", text),
        None => match default_working_folder(c.env) {
            Ok(path) => Some(path),
            Err(message) => {
                c.at_value("/name", message);
                None
            }
        },
    };
    let staging_path = match (text_at("/staging/path"), &working_folder) {
        (Some(text), _) => c.path("/staging/path", text),
        (None, Some(wf)) => Some(wf.join("staging")),
        (None, None) => None,
    };
    let templates = text_at("/report/templates").and_then(|t| c.path("/report/templates", t));
    let key_ttl = check_unit(c, "/staging/key_ttl", Duration::parse).unwrap_or(DEFAULT_KEY_TTL);
    let retention =
        check_unit(c, "/staging/retention", Duration::parse).unwrap_or(DEFAULT_RETENTION);
    if key_ttl < MIN_KEY_TTL || key_ttl > DEFAULT_RETENTION {
        c.at_value(
            "/staging/key_ttl",
            format!("a key must live from 1m to 30d; {key_ttl} is out of range"),
        );
    }
    if retention < MIN_RETENTION || retention > DEFAULT_RETENTION {
        c.at_value(
            "/staging/retention",
            format!("retention must be from 4d to 30d; {retention} is out of range"),
        );
    }
    Places {
        working_folder,
        staging_path,
        templates,
        key_ttl,
        retention,
    }
}

/// Unique task names, and the tasks each depends on (by index): unknown names get a
/// suggestion, and every loop is reported as the whole loop.
fn dependencies(c: &mut Checker<'_>, tasks_value: &[Value], names: &[&str]) -> Vec<Vec<usize>> {
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        if let Some(&earlier) = first_use.get(name) {
            let line = c.doc.spans.value(&format!("/tasks/{earlier}/name")).line;
            c.at_value(
                &format!("/tasks/{i}/name"),
                format!("task name `{name}` is already used by tasks[{earlier}] (line {line}); task names must be unique"),
            );
        } else {
            first_use.insert(name, i);
        }
    }
    let mut known: Vec<&str> = Vec::new();
    for name in names {
        if !name.is_empty() && !known.contains(name) {
            known.push(name);
        }
    }
    let depends_on = |i: usize| -> Vec<&str> {
        tasks_value[i]
            .get("depends_on")
            .and_then(Value::as_array)
            .map(|deps| deps.iter().map(|d| d.as_str().unwrap_or("")).collect())
            .unwrap_or_default()
    };
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); tasks_value.len()];
    for (i, task_edges) in edges.iter_mut().enumerate() {
        for (j, dep) in depends_on(i).into_iter().enumerate() {
            match first_use.get(dep) {
                Some(&target) => task_edges.push(target),
                None if dep.is_empty() => {}
                None => {
                    let mut message = format!("no task is named `{dep}`");
                    match closest(dep, &known) {
                        Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
                        None => message.push_str(&format!("; the tasks are: {}", known.join(", "))),
                    }
                    c.at_value(&format!("/tasks/{i}/depends_on/{j}"), message);
                }
            }
        }
    }
    for cycle in graph::find_cycles(&edges) {
        let mut loop_names: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        loop_names.push(names[cycle[0]]);
        let (from, to) = (cycle[0], cycle[1 % cycle.len()]);
        let j = depends_on(from)
            .iter()
            .position(|d| *d == names[to])
            .unwrap_or(0);
        c.at_value(
            &format!("/tasks/{from}/depends_on/{j}"),
            format!("dependency cycle: {}", loop_names.join(" -> ")),
        );
    }

    edges
}

/// Parses a unit (size, duration, date) at `pointer` if it is a string there; the
/// schema has checked its shape, but not, say, that February has no 30th.
fn check_unit<T>(
    c: &mut Checker<'_>,
    pointer: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let text = c.doc.value.pointer(pointer)?.as_str()?;
    match parse(text) {
        Ok(value) => Some(value),
        Err(message) => {
            c.at_value(pointer, message);
            None
        }
    }
}

/// The plan's `resources`, each within its range.
fn resources(c: &mut Checker<'_>) -> super::Resources {
    let mut resources = super::Resources::default();
    if let Some(memory) = check_unit(c, "/resources/memory", Size::parse) {
        if (super::MIN_MEMORY..=super::MAX_MEMORY).contains(&memory) {
            resources.memory = memory.0;
        } else {
            c.at_value(
                "/resources/memory",
                format!("the memory for data on its way must be from 32MiB to 64GiB; {memory} is out of range"),
            );
        }
    }
    resources.reads = c
        .doc
        .value
        .pointer("/resources/reads")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    resources
}

/// `$FERRY_HOME`, else `$XDG_STATE_HOME/ferry`, else `$HOME/.local/state/ferry`.
fn default_working_folder(env: EnvLookup<'_>) -> Result<PathBuf, String> {
    let var = |name: &str| env(name).ok().filter(|v| !v.is_empty()).map(PathBuf::from);
    let absolute = |p: PathBuf| p.is_absolute().then_some(p);
    var("FERRY_HOME")
        .and_then(absolute)
        .or_else(|| {
            var("XDG_STATE_HOME")
                .and_then(absolute)
                .map(|p| p.join("ferry"))
        })
        .or_else(|| {
            var("HOME")
                .and_then(absolute)
                .map(|p| p.join(".local/state/ferry"))
        })
        .ok_or_else(|| {
            "cannot tell where to keep ferry's state: set `working_folder` in the plan, or the \
             FERRY_HOME environment variable to an absolute path"
                .to_string()
        })
}

/// Checks one settings mapping as written (in `defaults` or a task's `settings`).
fn check_settings(c: &mut Checker<'_>, at: &str, value: &Value) {
    for key in ["include", "exclude"] {
        let pointer = format!("{at}/filters/{key}");
        let Some(globs) = value
            .pointer(&format!("/filters/{key}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (j, glob) in globs.iter().enumerate() {
            if let Some(Err(e)) = glob.as_str().map(crate::plan::glob) {
                c.at_value(
                    &format!("{pointer}/{j}"),
                    format!("not a valid glob: {}", e.kind()),
                );
            }
        }
        if key == "include" && globs.is_empty() {
            c.at_value(
                &pointer,
                "an empty include list would migrate nothing; leave `include` out to include everything",
            );
        }
    }
    for key in ["modified_after", "created_after"] {
        check_unit(c, &format!("{at}/filters/{key}"), Date::parse);
    }
    for key in ["filters/min_size", "filters/max_size"] {
        check_unit(c, &format!("{at}/{key}"), Size::parse);
    }
    if let Some(size) = check_unit(c, &format!("{at}/package/max_size"), Size::parse)
        && !(MIN_PACKAGE_SIZE..=MAX_PACKAGE_SIZE).contains(&size)
    {
        c.at_value(
            &format!("{at}/package/max_size"),
            format!("a package must be from 1MiB to 4GiB; {size} is out of range"),
        );
    }
    if let Some(backoff) = check_unit(c, &format!("{at}/retries/backoff"), Duration::parse)
        && backoff > MAX_BACKOFF
    {
        c.at_value(
            &format!("{at}/retries/backoff"),
            format!("a backoff over 1h would stall a run; {backoff} is too long"),
        );
    }
}

/// The effective settings of task `i`; cross-key problems that only appear once
/// defaults and the task's own settings are combined are reported here.
fn resolve_settings(c: &mut Checker<'_>, i: usize, own: bool, value: Value) -> Option<Settings> {
    let raw: RawSettings = match serde_json::from_value(value) {
        Ok(raw) => raw,
        // The schema passed, so this is a value the parsers reject: a date that does
        // not exist, a size too large. Point at whichever settings hold it.
        Err(e) => {
            let at = if own {
                format!("/tasks/{i}/settings")
            } else {
                "/defaults".to_string()
            };
            c.at_value(&at, format!("invalid setting: {e}"));
            return None;
        }
    };
    let settings = Settings::from_raw(raw);
    let needs_owner = [
        (
            settings.preserve.setuid,
            "setuid",
            "setuid and setgid bits are kept only with the owner (`preserve.owner: true`): \
             a setuid file given to another owner would run with that owner's rights",
        ),
        (
            settings.preserve.security_xattrs,
            "security_xattrs",
            "`security.*` and `trusted.*` attributes are kept only with the owner \
             (`preserve.owner: true`): a file capability given to another owner's file \
             would hand out a privilege, as a setuid bit does",
        ),
    ];
    for (asked, key, why) in needs_owner {
        if asked && !settings.preserve.owner {
            let own_at = format!("/tasks/{i}/settings/preserve/{key}");
            let at = if c.doc.value.pointer(&own_at).is_some() {
                own_at
            } else {
                format!("/defaults/preserve/{key}")
            };
            c.at_value(&at, why);
            return None;
        }
    }
    Some(settings)
}

/// `min_size` above `max_size` once a task's settings are laid over the defaults,
/// reported where the later of the two is written.
fn check_size_range(c: &mut Checker<'_>, i: usize, own: Option<&Value>, merged: &Value) {
    let size = |key: &str| {
        merged
            .pointer(&format!("/filters/{key}"))
            .and_then(Value::as_str)
            .and_then(|t| Size::parse(t).ok())
    };
    let (Some(min), Some(max)) = (size("min_size"), size("max_size")) else {
        return;
    };
    if min <= max {
        return;
    }
    let in_task = |key: &str| {
        own.and_then(|o| o.pointer(&format!("/filters/{key}")))
            .is_some()
    };
    let at = if in_task("max_size") {
        format!("/tasks/{i}/settings/filters/max_size")
    } else if in_task("min_size") {
        format!("/tasks/{i}/settings/filters/min_size")
    } else {
        "/defaults/filters/max_size".to_string()
    };
    c.at_value(
        &at,
        format!("min_size ({min}) is larger than max_size ({max}): no file could migrate"),
    );
}

/// Folders that must not lie inside one another: a task's source and destination,
/// another task's source and this task's destination (unless one waits for the
/// other), and ferry's own state and staging inside any of them.
fn check_overlaps(
    c: &mut Checker<'_>,
    tasks: &[Task],
    edges: &[Vec<usize>],
    working_folder: Option<&Path>,
    staging: Option<&Path>,
    names: &[&str],
) {
    let resolved: Vec<(Located, Located)> = tasks
        .iter()
        .map(|t| (Located::new(&t.source), Located::new(&t.destination)))
        .collect();
    for (i, (source, destination)) in resolved.iter().enumerate() {
        match relation(source, destination) {
            Some(Relation::Same) => c.at_value(
                &format!("/tasks/{i}/destination"),
                format!("the destination is the source itself ({})", source.shown()),
            ),
            Some(Relation::Inside) => c.at_value(
                &format!("/tasks/{i}/source"),
                format!(
                    "the source {} is inside the destination {}: choose folders that do not contain each other",
                    source.shown(),
                    destination.shown()
                ),
            ),
            Some(Relation::Contains) => c.at_value(
                &format!("/tasks/{i}/destination"),
                format!(
                    "the destination {} is inside the source {}: ferry would migrate its own output",
                    destination.shown(),
                    source.shown()
                ),
            ),
            None => {}
        }
        // Two tasks writing one tree at once would interleave their files (finding 2):
        // the same or nested destinations only when one task waits for the other.
        for (k, (_, other_destination)) in resolved.iter().enumerate().skip(i + 1) {
            if graph::reaches(edges, k, i) || graph::reaches(edges, i, k) {
                continue;
            }
            let how = match relation(other_destination, destination) {
                Some(Relation::Same) => "the same folder as",
                Some(Relation::Inside) => "inside",
                Some(Relation::Contains) => "around",
                None => continue,
            };
            c.at_value(
                &format!("/tasks/{k}/destination"),
                format!(
                    "the destination {} is {how} the destination of task `{}` ({}), and neither task depends on the other: \
                     both would write the same files at once; add `depends_on: [{}]` to `{}` or choose another folder",
                    other_destination.shown(),
                    names[i],
                    destination.shown(),
                    names[i],
                    names[k]
                ),
            );
        }
        for (k, (other_source, _)) in resolved.iter().enumerate() {
            if k == i || graph::reaches(edges, k, i) {
                continue;
            }
            if matches!(
                relation(destination, other_source),
                Some(Relation::Same | Relation::Inside)
            ) {
                c.at_value(
                    &format!("/tasks/{i}/destination"),
                    format!(
                        "the destination {} is inside the source of task `{}`, which does not depend on `{}`: \
                         it would read files while they are written; add `depends_on: [{}]` to `{}` or choose another folder",
                        destination.shown(),
                        names[k],
                        names[i],
                        names[i],
                        names[k]
                    ),
                );
            }
        }
    }
    check_own_folders(c, &resolved, working_folder, staging, names);
}

/// The plan's own folders (working folder, staging) must not be inside a task's source
/// or destination.
fn check_own_folders(
    c: &mut Checker<'_>,
    resolved: &[(Located, Located)],
    working_folder: Option<&Path>,
    staging: Option<&Path>,
    names: &[&str],
) {
    let own = [
        (
            working_folder,
            "/working_folder",
            "working folder",
            "its own state",
        ),
        (
            staging,
            "/staging/path",
            "staging folder",
            "its own staged packages",
        ),
    ];
    for (folder, pointer, what, consequence) in own {
        let Some(folder) = folder else { continue };
        let folder = Located::new(folder);
        for (i, (source, destination)) in resolved.iter().enumerate() {
            for (root, role) in [(source, "source"), (destination, "destination")] {
                if matches!(
                    relation(&folder, root),
                    Some(Relation::Same | Relation::Inside)
                ) {
                    let at = if c.doc.value.pointer(pointer).is_some() {
                        pointer
                    } else {
                        "/name"
                    };
                    let hint = if at == "/name" {
                        format!(
                            " (the default; set `{}` to move it)",
                            &pointer[1..].replace('/', ".")
                        )
                    } else {
                        String::new()
                    };
                    c.at_value(
                        at,
                        format!(
                            "the {what} {}{hint} is inside the {role} of task `{}` ({}): ferry would {} {consequence}",
                            folder.shown(),
                            names[i],
                            root.shown(),
                            if role == "source" { "migrate" } else { "write over" },
                        ),
                    );
                }
            }
        }
    }
}

/// A folder named by the plan, resolved as far as it exists: the existing part
/// through its symbolic links, the rest lexically; with the identity (device, inode)
/// of the existing part and its ancestors, which sees through bind mounts.
struct Located {
    given: PathBuf,
    real: PathBuf,
    /// (device, inode) of the folder itself, if it exists.
    own_id: Option<(u64, u64)>,
    /// (device, inode) of each existing ancestor.
    ancestor_ids: Vec<(u64, u64)>,
}

impl Located {
    fn new(path: &Path) -> Located {
        let mut existing = path.to_path_buf();
        let mut rest = Vec::new();
        let real = loop {
            match std::fs::canonicalize(&existing) {
                Ok(real) => {
                    break rest
                        .iter()
                        .rev()
                        .fold(real, |acc: PathBuf, part| acc.join(part));
                }
                Err(_) => match (
                    existing.file_name().map(ToOwned::to_owned),
                    existing.parent(),
                ) {
                    (Some(name), Some(parent)) => {
                        rest.push(name);
                        existing = parent.to_path_buf();
                    }
                    _ => break path.to_path_buf(),
                },
            }
        };
        // The deepest existing folder is the path itself only when nothing was left over.
        let own_id = if rest.is_empty() {
            identity(&existing)
        } else {
            None
        };
        let first_ancestor = if rest.is_empty() {
            existing.parent()
        } else {
            Some(existing.as_path())
        };
        let ancestor_ids = first_ancestor
            .into_iter()
            .flat_map(Path::ancestors)
            .filter_map(identity)
            .collect();
        Located {
            given: path.to_path_buf(),
            real,
            own_id,
            ancestor_ids,
        }
    }

    fn shown(&self) -> String {
        self.given.display().to_string()
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &Path) -> Option<(u64, u64)> {
    None
}

#[derive(Debug, PartialEq, Eq)]
enum Relation {
    Same,
    /// The first lies inside the second.
    Inside,
    /// The first contains the second.
    Contains,
}

fn relation(a: &Located, b: &Located) -> Option<Relation> {
    if a.real == b.real || (a.own_id.is_some() && a.own_id == b.own_id) {
        return Some(Relation::Same);
    }
    if a.real.starts_with(&b.real) || b.own_id.is_some_and(|id| a.ancestor_ids.contains(&id)) {
        return Some(Relation::Inside);
    }
    if b.real.starts_with(&a.real) || a.own_id.is_some_and(|id| b.ancestor_ids.contains(&id)) {
        return Some(Relation::Contains);
    }
    None
}
