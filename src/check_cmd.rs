//! `imcc check`: diagnostics for files, rendered for people or as JSON lines for tools.

use crate::load::{Lowering, compile_and_lower};
use crate::render;
use imcc_compiler::diagnostic::Severity;
use imcc_compiler::loader::read_source;
use std::path::PathBuf;
use std::process::ExitCode;

/// Diagnostics rendered per file at most; the rest are counted.
const MAX_RENDERED: usize = 100;

pub fn command(files: &[PathBuf], format: crate::MessageFormat, color: bool, deny_warnings: bool) -> ExitCode {
    let mut worst = 0u8;
    for path in files {
        let shown = path.display().to_string();
        let text = match read_source(path) {
            Ok(t) => t,
            Err(e) => {
                errln!("error: cannot read `{shown}`: {}", e.0);
                worst = worst.max(2);
                continue;
            }
        };
        let comp = match compile_and_lower(path, &shown, &text, Lowering::Through(None)) {
            Ok((comp, _)) => comp,
            Err(e) => {
                errln!("error: {e}");
                worst = worst.max(101);
                continue;
            }
        };
        let errors = comp.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
        let warnings = comp.diagnostics.len() - errors;
        for d in comp.diagnostics.iter().take(MAX_RENDERED) {
            match format {
                crate::MessageFormat::Human => {
                    err!("{}", render::human(&comp.sources, d, color));
                }
                crate::MessageFormat::Json => {
                    outln!("{}", render::json(&comp.sources, d));
                }
            }
        }
        let failed = errors > 0 || (deny_warnings && warnings > 0);
        if let crate::MessageFormat::Human = format {
            if comp.diagnostics.len() > MAX_RENDERED {
                errln!("note: {} more diagnostics not shown", comp.diagnostics.len() - MAX_RENDERED);
            }
            let counts = plural(errors, "error")
                + &if warnings > 0 { format!(", {}", plural(warnings, "warning")) } else { String::new() };
            if failed {
                errln!("error: `{shown}` failed to check: {counts}");
            } else {
                let runs = comp.program.as_ref().map_or(0, |p| p.trains.len());
                let sweeps: Vec<String> = comp
                    .program
                    .iter()
                    .flat_map(|p| &p.sweeps)
                    .map(|s| format!(", sweep `{}` ({})", s.name, plural(s.points.len(), "point")))
                    .collect();
                outln!("ok: `{shown}`: {}{} ({counts})", plural(runs, "train block"), sweeps.concat());
            }
        }
        if failed {
            worst = worst.max(1);
        }
    }
    ExitCode::from(worst)
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
