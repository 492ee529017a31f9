//! `ferry plan-from LIST`: Migration Manager's bulk task list (CSV or JSON) as a plan.
//! The plan is checked as `ferry validate` checks it before it is written, and nothing
//! is written when the list has a problem.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::Error;
use crate::exit::Exit;
use crate::plan::mm::{self, Format};
use crate::plan::{Plan, PlanError};

/// What `ferry plan-from` was asked.
#[derive(Debug)]
pub struct Request<'a> {
    pub list: &'a Path,
    pub destination_root: &'a str,
    pub share_maps: &'a [String],
    pub name: Option<&'a str>,
    /// Where the plan goes; stdout when `None`.
    pub out: Option<&'a Path>,
    pub force: bool,
}

pub fn run(request: &Request<'_>) -> Result<Exit, Error> {
    let list = request.list;
    let format = Format::of(list).ok_or_else(|| {
        Error::Usage(format!(
            "{}: expected a Migration Manager task list named *.csv or *.json",
            crate::shown::escape_path(list)
        ))
    })?;
    if let Some(out) = request.out
        && out.exists()
        && !request.force
    {
        return Err(Error::Usage(format!(
            "{} exists: choose another --out, or add --force to replace it",
            crate::shown::escape_path(out)
        )));
    }
    let shares = request
        .share_maps
        .iter()
        .map(|m| mm::parse_share_map(m).map_err(|e| Error::Usage(format!("--share-map: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let root = destination_root(request.destination_root)?;
    let name = match request.name {
        Some(name) => name.to_string(),
        None => plan_name(list),
    };
    let bytes = std::fs::read(list).map_err(|source| {
        Error::Plan(PlanError::Read {
            path: list.to_path_buf(),
            source,
        })
    })?;
    let file = list.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Usage(format!(
            "{file}:{line}: the list is not UTF-8 text (Migration Manager's lists are UTF-8: save it as \"CSV UTF-8\")"
        ))
    })?;
    let origin = list
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let options = mm::Options {
        name: &name,
        origin: &origin,
        destination_root: &root,
        shares: &shares,
    };
    let plan = mm::convert(&text, format, &options).map_err(|diagnostics| {
        Error::Plan(PlanError::Invalid {
            file: file.clone(),
            text: text.clone(),
            diagnostics,
        })
    })?;
    let tasks = plan.lines().filter(|l| l.starts_with("  - name: ")).count();
    // Checked as `ferry validate` checks it, in the folder it is written to.
    let folder = match request.out {
        Some(out) => std::path::absolute(out)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
        None => std::env::temp_dir(),
    };
    let mut temporary = tempfile_in(&folder)?;
    temporary
        .1
        .write_all(plan.as_bytes())
        .and_then(|()| temporary.1.sync_all())
        .map_err(Error::Output)?;
    let checked = Plan::load(&temporary.0);
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&temporary.0);
        return Err(Error::Usage(format!(
            "the plan made from {file} does not validate, so it was not written:\n{e}"
        )));
    }
    match request.out {
        Some(out) => {
            std::fs::rename(&temporary.0, out).map_err(|e| {
                let _ = std::fs::remove_file(&temporary.0);
                Error::Output(e)
            })?;
            eprintln!(
                "plan-from: {tasks} task{} in {}; next: `ferry scan {}`",
                if tasks == 1 { "" } else { "s" },
                crate::shown::escape_path(out),
                crate::shown::escape_path(out)
            );
        }
        None => {
            let _ = std::fs::remove_file(&temporary.0);
            std::io::stdout()
                .write_all(plan.as_bytes())
                .map_err(Error::Output)?;
        }
    }
    Ok(Exit::Success)
}

/// The root as the plan will hold it: absolute, or a `${VAR}` left for the plan.
fn destination_root(text: &str) -> Result<String, Error> {
    if text.starts_with("${") {
        return Ok(text.trim_end_matches('/').to_string());
    }
    let absolute = std::path::absolute(text)
        .map_err(|e| Error::Usage(format!("--destination-root {text}: {e}")))?;
    let shown = absolute
        .to_str()
        .ok_or_else(|| Error::Usage(format!("--destination-root {text}: not UTF-8")))?;
    Ok(shown.trim_end_matches('/').replace('$', "$$"))
}

/// The plan's name from the list's file name (`Finance tasks.csv` → `finance-tasks`).
fn plan_name(list: &Path) -> String {
    let stem = list
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let mut name = name.trim_matches(['-', '.', '_']).to_string();
    name.truncate(64);
    if name.is_empty() {
        "migration".to_string()
    } else {
        name
    }
}

/// A new file no one else can have made, in `folder`.
fn tempfile_in(folder: &Path) -> Result<(PathBuf, std::fs::File), Error> {
    for _ in 0..16 {
        let path = folder.join(format!(".plan-from-{:016x}.yaml", rand::random::<u64>()));
        match std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::Output(e)),
        }
    }
    Err(Error::Output(std::io::Error::other(
        "no free temporary name",
    )))
}
