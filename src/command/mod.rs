//! One module per subcommand. Each loads its plan, takes the locks it needs, drives the
//! layers below (`run`, `scan`, `state`, `report`) and ends in an [`Exit`] or an
//! [`Error`], whose one table of exit codes is in `exit.rs`.

pub mod delete;
pub mod dry_run;
pub mod error;
pub mod finish;
pub mod gc;
pub mod metrics;
pub mod plan_from;
pub mod report;
pub mod run;
pub mod status;
pub mod validate;
pub mod verify;

use std::io::Write as _;
use std::path::Path;

pub use error::Error;

use crate::exit::Exit;
use crate::plan::graph::JobGraph;
use crate::plan::{self, Plan};

/// How `ferry graph` prints the job graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Json,
}

/// `ferry graph PLAN`.
pub fn graph(path: &Path, format: GraphFormat) -> Result<Exit, Error> {
    let plan = Plan::load(path)?;
    let graph = JobGraph::compile(&plan);
    print(&match format {
        GraphFormat::Text => graph.to_text(),
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Json => graph.to_json(),
    })
}

/// `ferry schema`.
pub fn schema() -> Result<Exit, Error> {
    print(&plan::schema_json())
}

/// The tasks a command works on: the one named (or an error naming the known ones, with
/// a guess), or all of them in dependency order.
pub(crate) fn chosen_tasks<'p>(
    plan: &'p Plan,
    path: &Path,
    only: Option<&str>,
) -> Result<Vec<&'p plan::Task>, Error> {
    let Some(name) = only else {
        return Ok(JobGraph::compile(plan).order().collect());
    };
    match plan.tasks.iter().find(|t| t.name == name) {
        Some(task) => Ok(vec![task]),
        None => {
            let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
            let mut known = names
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(close) = plan::closest(name, &names) {
                known.push_str(&format!(" (did you mean `{close}`?)"));
            }
            Err(Error::UnknownTask {
                plan: path.display().to_string(),
                task: name.to_string(),
                known,
            })
        }
    }
}

pub(crate) fn print(text: &str) -> Result<Exit, Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(Exit::Success),
        // A closed pipe (`ferry schema | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(Error::Output(e)),
    }
}
