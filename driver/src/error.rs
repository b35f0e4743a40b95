//! What can stop a session, as data; the front end renders it (`Display` gives the message).

use std::fmt;

/// Why a session could not start or finish.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A command-line override is outside what the language accepts for that setting.
    Override(String),
    /// The run does not lower (e.g. an MVM that cannot be tiled under the overrides): the
    /// diagnostics, for the front end to render against the file's sources.
    Lower {
        /// The train block.
        run: String,
        /// Why.
        diagnostics: Vec<imcc_compiler::diagnostic::Diagnostic>,
    },
    /// A compiler bug.
    Internal(String),
    /// The data set cannot be loaded, or does not fit the network.
    Data(String),
    /// Training stopped (a non-finite value, a simulator error).
    Exec {
        /// The train block.
        run: String,
        /// What happened.
        message: String,
    },
    /// A checkpoint cannot be used, or resume differs from it, or the directory is unusable.
    Checkpoint(String),
    /// A file cannot be written.
    Write(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Override(m) | Error::Data(m) | Error::Checkpoint(m) | Error::Write(m) => f.write_str(m),
            Error::Lower { run, diagnostics } => {
                let first = diagnostics.first().map_or(String::new(), |d| format!(": {}", d.message));
                write!(f, "`{run}` cannot be lowered{first}")
            }
            Error::Internal(m) => write!(f, "internal compiler error: {m}"),
            Error::Exec { run, message } => write!(f, "`{run}`: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// An error about the file at `path`.
    pub(crate) fn at(path: &std::path::Path, message: impl fmt::Display) -> Error {
        Error::Checkpoint(format!("{}: {message}", path.display()))
    }
}
