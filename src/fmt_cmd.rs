//! `imcc fmt [--check] FILE...`: rewrites files in the canonical layout (`compiler::fmt`), or
//! with `--check` lists those that are not in it. A file with syntax errors is left as it is
//! and its diagnostics are shown. `-` formats standard input to standard output (for editors).

use imcc_compiler::loader::{read_source, read_source_from};
use imcc_compiler::span::SourceMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Formats `files` in place (atomically), or checks them. Exit status: 0 when every file is (or
/// now is) formatted, 1 when `--check` finds one that is not or a file has syntax errors, 2
/// when a file cannot be read or written.
pub fn command(files: &[PathBuf], check: bool, color: bool) -> ExitCode {
    let mut status = 0u8;
    for path in files {
        let stdin = path.as_os_str() == "-";
        let shown = if stdin { "<stdin>".to_string() } else { path.display().to_string() };
        let read = if stdin { read_source_from(std::io::stdin().lock()) } else { read_source(path) };
        let text = match read {
            Ok(t) => t,
            Err(e) => {
                errln!("error: cannot read `{shown}`: {}", e.0);
                status = 2;
                continue;
            }
        };
        let mut sources = SourceMap::default();
        let id = sources.add(shown.clone(), text.clone());
        let formatted = match imcc_compiler::fmt::format(id, &text) {
            Ok(f) => f,
            Err(diags) => {
                for d in &diags {
                    err!("{}", crate::render::human(&sources, d, color));
                }
                errln!("error: `{shown}` has syntax errors; it is left as it is");
                status = status.max(1);
                continue;
            }
        };
        if stdin && !check {
            out!("{formatted}");
            continue;
        }
        if formatted == text {
            continue;
        }
        if check {
            outln!("would reformat: {shown}");
            status = status.max(1);
        } else if let Err(e) = imcc_driver::durable::write_atomic(path, formatted.as_bytes()) {
            errln!("error: cannot write `{shown}`: {e}");
            status = 2;
        } else {
            outln!("formatted: {shown}");
        }
    }
    ExitCode::from(status)
}
