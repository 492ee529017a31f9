//! ferry migrates large file shares: a YAML plan → a validated `Plan` → a `JobGraph`
//! of tasks, each of which scans, packages, uploads and imports its files.
//!
//! The binary is a thin shell around `run`; everything else lives here so that it can
//! be tested in-process and as a binary.

pub mod cli;
pub mod error;
pub mod exit;
pub mod graph;
pub mod plan;

use std::io::Write as _;

pub use error::Error;
pub use exit::Exit;

use cli::{Cli, Command, GraphFormat};
use graph::JobGraph;
use plan::Plan;

/// Runs one command. Human messages go to stderr; stdout carries only what the command
/// was asked to print.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    match cli.command {
        Command::Validate { plans } => Ok(validate(&plans)),
        Command::Schema => print(&plan::schema_json()),
        Command::Graph { plan, format } => {
            let plan = Plan::load(&plan)?;
            let graph = JobGraph::compile(&plan);
            print(&match format {
                GraphFormat::Text => graph.to_text(),
                GraphFormat::Dot => graph.to_dot(),
                GraphFormat::Json => graph.to_json(),
            })
        }
        Command::Run { plan } => {
            Plan::load(&plan)?;
            Err(Error::NotYet { command: "run" })
        }
    }
}

fn validate(plans: &[std::path::PathBuf]) -> Exit {
    let mut exit = Exit::Success;
    for path in plans {
        match Plan::load(path) {
            Ok(plan) => {
                let graph = JobGraph::compile(&plan);
                let (tasks, stages) = (plan.tasks.len(), graph.stages.len());
                eprintln!(
                    "{}: ok ({tasks} task{}, {stages} stage{})",
                    path.display(),
                    if tasks == 1 { "" } else { "s" },
                    if stages == 1 { "" } else { "s" }
                );
            }
            Err(error) => {
                eprintln!("{error}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}

fn print(text: &str) -> Result<Exit, Error> {
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
