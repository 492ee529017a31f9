//! ferry migrates large file shares: a YAML plan → a validated `Plan` → a `JobGraph`
//! of tasks, each of which scans, packages, uploads and imports its files.
//!
//! The binary is a thin shell around [`run`]; everything else lives here so that it can
//! be tested in-process and as a binary. The layers, each using only those below it
//! (`tests/integration/layers.rs` keeps it so; docs/ARCHITECTURE.md draws it):
//!
//! `cli` → `command` → `run` → `scan`, `package`, `import`, `staging`, `crypto`,
//! `report`, `state` → `plan`, `failure`, `exit`, `shown`, `clock`, `log`.

pub mod cli;
pub mod clock;
pub mod command;
pub mod crypto;
pub mod exit;
pub mod failpoint;
pub mod failure;
pub mod fuzzing;
pub mod import;
pub mod latency;
pub mod log;
pub mod package;
pub mod plan;
pub mod report;
pub mod run;
pub mod scan;
pub mod shown;
pub mod staging;
pub mod state;

pub use command::Error;
pub use exit::Exit;

use cli::{Cli, Command};

/// Runs one command. Human messages go to stderr; stdout carries only what the command
/// was asked to print.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    harden_process();
    log::start(cli.log_format, cli.log_file.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    match cli.command {
        Command::Validate { plans } => Ok(command::validate::run(&plans)),
        Command::Schema => command::schema(),
        Command::Graph { plan, format } => command::graph(&plan, format),
        Command::Scan {
            plan,
            task,
            workers,
        } => command::run::run(
            &plan,
            &command::run::Options {
                only: task.as_deref(),
                workers,
                ..command::run::Options::default()
            },
        ),
        Command::Run {
            plan,
            task,
            workers,
            stages,
            ticket,
            max_duration,
            metrics_file,
            restart,
            force,
            shard,
        } => command::run::run(
            &plan,
            &command::run::Options {
                only: task.as_deref(),
                workers,
                run: Some(stages.into()),
                ticket: ticket.as_deref(),
                max_duration,
                metrics: metrics_file.as_deref(),
                restart,
                force,
                shard,
            },
        ),
        Command::Finish { plan, shards } => command::finish::run(&plan, shards),
        Command::Status { plan, json } => command::status::run(&plan, json),
        Command::DryRun { plan, task } => command::dry_run::run(&plan, task.as_deref()),
        Command::PlanFrom {
            list,
            destination_root,
            share_map,
            name,
            out,
            force,
        } => command::plan_from::run(&command::plan_from::Request {
            list: &list,
            destination_root: &destination_root,
            share_maps: &share_map,
            name: name.as_deref(),
            out: out.as_deref(),
            force,
        }),
        Command::Delete { plan, task, yes } => command::delete::run(&plan, &task, yes),
        Command::Gc { plan, task, yes } => command::gc::run(&plan, task.as_deref(), yes),
        Command::Verify {
            plan,
            task,
            sample,
            against,
            workers,
        } => command::verify::run(
            &plan,
            &command::verify::Options {
                only: task.as_deref(),
                sample,
                against,
                workers,
            },
        ),
        Command::Report {
            plan,
            task,
            round,
            format,
            template,
            out,
        } => command::report::run(
            &plan,
            task.as_deref(),
            round,
            format,
            template.as_deref(),
            out,
        ),
    }
}

/// What holds for the whole process, before any key or path is touched:
///
/// - No core dump: a dump of a run would hold the container key in clear (reliability
///   review, finding 13). `PR_SET_DUMPABLE` 0 also keeps other processes of the same
///   account from attaching to read the key.
/// - Private by default: everything ferry creates (state, journals, item lists, keys,
///   reports, staged objects) is at most 0600 for files and 0700 for folders, since
///   they name every source path (finding 14). What ferry creates at the destination
///   gets its mode explicitly, from the source or the usual 0644/0755.
fn harden_process() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit};
    let _ = rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}
