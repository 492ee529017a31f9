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
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    #[error(transparent)]
    Lock(#[from] crate::state::lock::LockError),
    #[error(transparent)]
    Delete(super::delete::DeleteError),
    #[error("cannot render the reports: {0}")]
    Report(#[source] std::io::Error),
    /// A command line or template that cannot be used as given.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn exit_code(&self) -> Exit {
        match self {
            Error::Plan(_) | Error::UnknownTask { .. } | Error::Usage(_) => Exit::Usage,
            Error::Lock(crate::state::lock::LockError::Held { .. })
            | Error::Run(crate::run::RunError::DestinationBusy { .. }) => Exit::Locked,
            Error::Run(crate::run::RunError::Session(
                crate::state::SessionError::PlanChanged { .. },
            ))
            | Error::Run(crate::run::RunError::Ticket(_))
            | Error::Run(crate::run::RunError::OtherAssignment { .. }) => Exit::Usage,
            Error::Output(_)
            | Error::Scan(_)
            | Error::Run(_)
            | Error::Lock(_)
            | Error::Delete(_)
            | Error::Report(_) => Exit::Fatal,
        }
    }
}
