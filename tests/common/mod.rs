//! Helpers shared by the integration tests.

use std::process::{Command, Output};

/// Runs the `imcc` binary in the package root.
pub fn imcc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("imcc runs")
}
