//! The imcc driver: training sessions as a library, between the compiler (which checks and
//! lowers a file) and a front end such as the command line (which parses arguments, renders and
//! writes files). A [`Session`] lowers its run once, loads its data, trains it with an
//! [`Observer`] watching, evaluates, accounts energy, and checkpoints and resumes with the
//! guarantees of `spec/training.md`; errors are [`Error`] values the front end renders.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod durable;
mod error;
mod metrics;
mod prepare;
mod session;
pub mod sweep;

pub use error::Error;
pub use metrics::{EpochMetrics, RunMetrics};
pub use prepare::{Overrides, hyper};
pub use session::{Observer, Options, Progress, Session, evaluate_checkpoint, prepare_checkpoints};
