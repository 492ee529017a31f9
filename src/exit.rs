//! ferry's exit codes: the one table, also printed in the README (a test keeps the
//! two in step).
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | all done |
//! | 1 | finished, but some items failed or were skipped for errors |
//! | 2 | usage or plan error: nothing was touched |
//! | 3 | interrupted: run again to resume |
//! | 4 | another run holds the plan's lock, or is writing the same destination |
//! | 5 | fatal environment error (source unreadable, destination unwritable, disk full): fix it and run again to resume |

/// How a ferry command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// All done.
    Success = 0,
    /// Finished, but some items failed or were skipped for errors.
    Partial = 1,
    /// Usage or plan error: nothing was touched.
    Usage = 2,
    /// Interrupted: run again to resume.
    Interrupted = 3,
    /// Another run holds the plan's lock, or is writing the same destination.
    Locked = 4,
    /// Fatal environment error: fix it and run again to resume.
    Fatal = 5,
}

impl Exit {
    pub const ALL: [Exit; 6] = [
        Exit::Success,
        Exit::Partial,
        Exit::Usage,
        Exit::Interrupted,
        Exit::Locked,
        Exit::Fatal,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The meaning, as the README's table states it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "all done",
            Exit::Partial => "finished, but some items failed or were skipped for errors",
            Exit::Usage => "usage or plan error: nothing was touched",
            Exit::Interrupted => "interrupted: run again to resume",
            Exit::Locked => "another run holds the plan's lock, or is writing the same destination",
            Exit::Fatal => {
                "fatal environment error (source unreadable, destination unwritable, disk full): fix it and run again to resume"
            }
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}
