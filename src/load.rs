//! Loading a file for a command: read, check and (when the command needs the steps) lower it,
//! rendering its diagnostics, and select its train blocks. `Err` carries the exit status.

use crate::render;
use imcc_compiler::loader::{FsLoader, read_source};
use imcc_compiler::{Compilation, lower};
use std::process::ExitCode;

/// Whether a command needs every train block lowered (and lowering's diagnostics) up front.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lowering {
    /// Lower through every pass, or up to and including this one.
    Through(Option<lower::Pass>),
    /// Check only: a training session lowers its own run (once, with its overrides).
    Skip,
}

/// Compiles `path` and (as `lowering` says) lowers each of its train blocks and sweep points,
/// adding lowering's diagnostics. Returns the compilation and the lowered steps (empty when anything failed).
pub fn compile_and_lower(
    path: &std::path::Path,
    shown: &str,
    text: &str,
    lowering: Lowering,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>), String> {
    compile_and_lower_with(&FsLoader, path, shown, text, lowering, None)
}

/// [`compile_and_lower`] with imports read through `loader` (the language server's open
/// documents over the file system), and advice on the mapping (W0006) only for train block
/// `advise_only` when it is given (the one a command was asked to run).
pub fn compile_and_lower_with(
    loader: &dyn imcc_compiler::loader::FileLoader,
    path: &std::path::Path,
    shown: &str,
    text: &str,
    lowering: Lowering,
    advise_only: Option<&str>,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>), String> {
    let mut comp = imcc_compiler::compile(path, shown, text, loader);
    let mut steps = Vec::new();
    if let (Some(program), Lowering::Through(after)) = (&comp.program, lowering) {
        // Sweep points too: each is checked, and lowered, like a train block.
        for run in program.all_runs() {
            match lower::lower(program, run, after) {
                Ok(s) => {
                    // Advice on the mapping, for train blocks (a sweep's points share their
                    // train block's mapping and would repeat it).
                    if after.is_none()
                        && advise_only.is_none_or(|only| only == run.name)
                        && program.point_note(&run.name).is_none()
                        && let Some(net) = program.networks.iter().find(|n| n.name == run.network)
                    {
                        comp.diagnostics.extend(lower::advise(net, run, &s));
                    }
                    steps.push(s)
                }
                Err(lower::LowerError::Diagnostics(d)) => {
                    let note = program.point_note(&run.name);
                    comp.diagnostics.extend(d.into_iter().map(|mut d| {
                        d.notes.extend(note.clone());
                        d
                    }));
                }
                Err(lower::LowerError::Internal(e)) => {
                    return Err(format!("internal compiler error while lowering `{}`: {e}", run.name));
                }
            }
        }
        if comp.has_errors() {
            comp.program = None;
            steps.clear();
        }
    }
    Ok((comp, steps))
}

/// Reads, checks and lowers `path` ([`compile_and_lower`]), printing its diagnostics (advice
/// only on train block `only` when the command was asked for one). `Err` carries the exit
/// status when it cannot go on: 2 for I/O, 1 for errors in the program, 101 for a compiler bug.
pub fn load_checked(
    path: &std::path::Path,
    lowering: Lowering,
    color: bool,
    only: Option<&str>,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>), ExitCode> {
    let shown = path.display().to_string();
    let text = read_source(path).map_err(|e| {
        errln!("error: cannot read `{shown}`: {}", e.0);
        ExitCode::from(2)
    })?;
    let (comp, steps) = compile_and_lower_with(&FsLoader, path, &shown, &text, lowering, only).map_err(|e| {
        errln!("error: {e}");
        ExitCode::from(101)
    })?;
    for d in &comp.diagnostics {
        err!("{}", render::human(&comp.sources, d, color));
    }
    if comp.has_errors() {
        errln!("error: `{shown}` failed to check");
        return Err(ExitCode::from(1));
    }
    Ok((comp, steps))
}

/// The train blocks named `only` (all when `None`), or a usage error listing them.
pub fn select<'a, T>(
    items: &'a [T],
    name: impl Fn(&T) -> &str,
    only: Option<&str>,
    shown: &str,
) -> Result<Vec<&'a T>, ExitCode> {
    let chosen: Vec<&T> = items.iter().filter(|t| only.is_none_or(|o| name(t) == o)).collect();
    if chosen.is_empty() {
        let names: Vec<&str> = items.iter().map(&name).collect();
        match only {
            Some(t) => {
                errln!("error: `{shown}` has no train block `{t}`; its train blocks are: {}", names.join(", "))
            }
            None => errln!("error: `{shown}` has no train block"),
        }
        return Err(ExitCode::from(2));
    }
    Ok(chosen)
}

/// [`load_checked`] plus the names of the train blocks `only` selects (all when `None`).
pub fn checked_runs(
    path: &std::path::Path,
    only: Option<&str>,
    lowering: Lowering,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>, Vec<String>), ExitCode> {
    let (comp, steps) = load_checked(path, lowering, crate::use_color(crate::ColorChoice::Auto), only)?;
    let trains = comp.program.as_ref().map_or(&[][..], |p| &p.trains[..]);
    let names = select(trains, |r| r.name.as_str(), only, &path.display().to_string())?
        .into_iter()
        .map(|r| r.name.clone())
        .collect();
    Ok((comp, steps, names))
}
