//! The exit codes of SPEC.md, and the one place that decides which error
//! ends a run with which code (`Error::exit`).

use crate::facts::containers::ApiError;
use crate::facts::resolve::ResolveError;
use crate::facts::stop::StopError;
use crate::platform::ReadError;
use std::io;

/// What a run of portctl tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success: every port free, every query answered.
    Ok = 0,
    /// A negative answer: in use, not found, closed, nothing free.
    Negative = 1,
    /// Invalid input or usage.
    Usage = 2,
    /// An operational failure: the socket table, a bind, a peer.
    Failure = 3,
    /// `free --exec`: the command could not be executed (as shells say).
    CannotExecute = 126,
    /// `free --exec`: the command was not found.
    CommandNotFound = 127,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that ends the command: printed once as `error: ...` (its
/// causes chained, `output::report`), then the process exits with the
/// code `exit` gives it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input or usage.
    #[error("{0}")]
    Usage(String),
    /// A negative answer worth a sentence.
    #[error("{0}")]
    Negative(String),
    /// Something on this machine or the network failed, said in full.
    #[error("{0}")]
    Failure(String),
    /// Something on this machine or the network failed: what was being
    /// done, and the OS's reason.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Table(#[from] ReadError),
    #[error(transparent)]
    Stop(#[from] StopError),
    /// A name with no address (exit 3, as an unreachable peer).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A container runtime's API would not stop a container.
    #[error("cannot stop {what}")]
    Container {
        what: String,
        #[source]
        source: ApiError,
    },
    /// Writing the answer failed (a closed pipe is not this: `deliver`).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// `free --exec`'s program could not be run.
    #[error("cannot run '{program}': {reason}")]
    Exec {
        program: String,
        reason: String,
        not_found: bool,
    },
}

impl Error {
    /// The exit code of every error, in one place.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Negative(_) => Exit::Negative,
            Error::Stop(StopError::Table(_)) => Exit::Failure,
            Error::Stop(_) => Exit::Negative,
            Error::Failure(_)
            | Error::Io { .. }
            | Error::Table(_)
            | Error::Resolve(_)
            | Error::Container { .. }
            | Error::Output(_) => Exit::Failure,
            Error::Exec {
                not_found: true, ..
            } => Exit::CommandNotFound,
            Error::Exec { .. } => Exit::CannotExecute,
        }
    }

    /// Bad input: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// Something on this machine or the network failed: exit 3.
    pub fn failure(message: impl Into<String>) -> Self {
        Error::Failure(message.into())
    }

    /// What was being done when the OS said no: exit 3.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The async runtime could not start: exit 3.
    pub fn runtime(source: io::Error) -> Self {
        Error::io("cannot start the runtime", source)
    }

    /// A negative answer worth a message: exit 1.
    pub fn negative(message: impl Into<String>) -> Self {
        Error::Negative(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_spec() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Negative.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Failure.code(), 3);
    }

    #[test]
    fn each_error_has_its_code() {
        assert_eq!(Error::usage("x").exit(), Exit::Usage);
        assert_eq!(Error::negative("x").exit(), Exit::Negative);
        let table = || ReadError::Os(io::Error::other("x"));
        assert_eq!(Error::from(table()).exit(), Exit::Failure);
        assert_eq!(Error::from(StopError::Table(table())).exit(), Exit::Failure);
        let hidden = StopError::Hidden {
            port: 1,
            user: None,
        };
        assert_eq!(Error::from(hidden).exit(), Exit::Negative);
        assert_eq!(Error::Output(io::Error::other("x")).exit(), Exit::Failure);
        let exec = |not_found| Error::Exec {
            program: "x".into(),
            reason: "y".into(),
            not_found,
        };
        assert_eq!(exec(true).exit(), Exit::CommandNotFound);
        assert_eq!(exec(false).exit(), Exit::CannotExecute);
    }
}
