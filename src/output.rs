//! Standard output and standard error that never panic and never lose a failure.
//!
//! `println!` panics when stdout is closed (`imcc lower … | head -1`) or full (`> /dev/full`).
//! Here the first write error on stdout is remembered and later writes are skipped, so a
//! command (training above all) goes on and finishes its work; [`finish`] then flushes and turns
//! the error into the exit status: a closed pipe is a quiet exit (the reader has what it wanted),
//! any other error is a message and status 2. Writes to stderr ignore errors: there is nowhere
//! left to report them.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Mutex;

/// The first error writing stdout, if any.
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// Writes to stdout unless an earlier write failed; remembers the first failure.
pub fn write_stdout(args: fmt::Arguments) {
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none()
        && let Err(e) = io::stdout().lock().write_fmt(args)
    {
        *failed = Some(e);
    }
}

/// Writes to stderr, ignoring errors.
pub fn write_stderr(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Like `print!`, without the panic ([`write_stdout`]).
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*)) };
}

/// Like `println!`, without the panic ([`write_stdout`]).
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// Like `eprint!`, without the panic ([`write_stderr`]).
macro_rules! err {
    ($($t:tt)*) => { $crate::output::write_stderr(format_args!($($t)*)) };
}

/// Like `eprintln!`, without the panic ([`write_stderr`]).
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::write_stderr(format_args!("{}\n", format_args!($($t)*))) };
}

/// Flushes stdout and folds a write error into the command's exit status `code`: a closed pipe
/// leaves it as it is, any other error is reported and makes a successful status 2.
pub fn finish(code: ExitCode) -> ExitCode {
    let flushed = io::stdout().lock().flush();
    let failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner()).take().or(flushed.err());
    match failed {
        None => code,
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => code,
        Some(e) => {
            errln!("error: cannot write standard output: {e}");
            if code == ExitCode::SUCCESS { ExitCode::from(2) } else { code }
        }
    }
}
