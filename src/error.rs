//! The top-level error: every way a command can fail before or instead of doing its
//! work, each with its exit code.

use crate::exit::Exit;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("no task named `{task}` in plan {plan}; its tasks are: {known}")]
    UnknownTask {
        plan: String,
        task: String,
        known: String,
    },
    #[error(
        "`ferry {command}` is not available yet: this version validates plans and compiles their job \
         graph (`ferry validate`, `ferry graph`), but does not migrate; nothing was touched"
    )]
    NotYet { command: &'static str },
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> Exit {
        match self {
            Error::Plan(_) | Error::UnknownTask { .. } | Error::NotYet { .. } => Exit::Usage,
            Error::Output(_) => Exit::Fatal,
        }
    }
}
