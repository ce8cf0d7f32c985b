//! The exit codes of SPEC.md, in one place, and the error that carries one.

use std::fmt;

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

/// An error that ends the command: printed once as `error: ...`, then the
/// process exits with its code.
#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    pub message: String,
}

impl Error {
    /// Bad input: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// Something on this machine or the network failed: exit 3.
    pub fn failure(message: impl Into<String>) -> Self {
        Error {
            exit: Exit::Failure,
            message: message.into(),
        }
    }

    /// The async runtime could not start: exit 3.
    pub fn runtime(e: std::io::Error) -> Self {
        Error::failure(format!("cannot start the runtime: {e}"))
    }

    /// A negative answer worth a message: exit 1.
    pub fn negative(message: impl Into<String>) -> Self {
        Error {
            exit: Exit::Negative,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<crate::platform::ReadError> for Error {
    fn from(e: crate::platform::ReadError) -> Self {
        Error::failure(e.to_string())
    }
}


/// Output errors: a closed pipe ends the run quietly with success (the
/// reader has what it wanted); anything else is an operational failure.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error {
                exit: Exit::Ok,
                message: String::new(),
            }
        } else {
            Error::failure(format!("cannot write output: {e}"))
        }
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
    fn broken_pipe_is_quiet_success() {
        let e: Error = std::io::Error::from(std::io::ErrorKind::BrokenPipe).into();
        assert_eq!(e.exit, Exit::Ok);
        assert!(e.message.is_empty());
    }
}
