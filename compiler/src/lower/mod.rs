//! Lowering: a checked `train` block to the mapped IR ([`imcc_runtime::ir::Step`]), through a
//! linear, named pipeline of passes with the IR verifier after each one (in tests and debug
//! builds), as cranelift's `Context::optimize` does.

mod build;
mod passes;

use crate::diagnostic::Diagnostic;
use crate::program::{Program, TrainRun};
use imcc_runtime::ir::{Step, verify::verify};

/// The passes, in order.
pub const PASSES: [&str; 8] =
    ["build", "formats", "partition", "tile", "allocate_cores", "schedule_planes", "assign_adc", "fuse"];

/// Why lowering stopped.
#[derive(Debug)]
pub enum LowerError {
    /// The program cannot be mapped; the diagnostics say why.
    Diagnostics(Vec<Diagnostic>),
    /// A pass broke an IR invariant: a compiler bug.
    Internal(String),
}

/// Lowers `run` (of `program`) through every pass, or up to and including `after`.
pub fn lower(program: &Program, run: &TrainRun, after: Option<&str>) -> Result<Step, LowerError> {
    if let Some(a) = after
        && !PASSES.contains(&a)
    {
        return Err(LowerError::Internal(format!("unknown pass `{a}`; the passes are {}", PASSES.join(", "))));
    }
    let net =
        program.networks.iter().find(|n| n.name == run.network).ok_or_else(|| {
            LowerError::Internal(format!("network `{}` of train `{}` is missing", run.network, run.name))
        })?;
    let mut step = build::build(net, run);
    let check = cfg!(debug_assertions) || cfg!(test);
    for pass in PASSES {
        let diags = match pass {
            "build" => Vec::new(),
            "formats" => {
                passes::formats(&mut step, run);
                Vec::new()
            }
            "partition" => {
                passes::partition(&mut step, run);
                Vec::new()
            }
            "tile" => passes::tile(&mut step, net),
            "allocate_cores" => {
                passes::allocate_cores(&mut step);
                Vec::new()
            }
            "schedule_planes" => {
                passes::schedule_planes(&mut step, run);
                Vec::new()
            }
            "assign_adc" => {
                passes::assign_adc(&mut step, run);
                Vec::new()
            }
            "fuse" => {
                passes::fuse(&mut step);
                Vec::new()
            }
            _ => unreachable!("PASSES lists every pass"),
        };
        if !diags.is_empty() {
            return Err(LowerError::Diagnostics(diags));
        }
        step.passes.push(pass.to_string());
        if check && let Err(errs) = verify(&step) {
            return Err(LowerError::Internal(format!(
                "IR verifier failed after pass `{pass}`:\n  {}",
                errs.join("\n  ")
            )));
        }
        if after == Some(pass) {
            break;
        }
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MemLoader;
    use std::path::Path;

    fn compile(src: &str) -> Program {
        let chip = include_str!("../../../examples/hw/cimu16.imc");
        let comp =
            crate::compile(Path::new("main.imc"), "main.imc", src, &MemLoader::default().with("hw/cimu16.imc", chip));
        assert!(comp.diagnostics.is_empty(), "{:?}", comp.diagnostics);
        comp.program.expect("checked")
    }

    #[test]
    fn every_example_lowers_and_verifies_after_every_pass() {
        for src in [
            include_str!("../../../examples/digits_mlp.imc"),
            include_str!("../../../examples/mnist_mlp.imc"),
            include_str!("../../../examples/mnist_cnn.imc"),
        ] {
            let program = compile(src);
            for run in &program.trains {
                for pass in PASSES {
                    let step = lower(&program, run, Some(pass)).unwrap_or_else(|e| panic!("{}: {e:?}", run.name));
                    assert_eq!(step.passes.last().map(String::as_str), Some(pass));
                    assert_eq!(verify(&step), Ok(()));
                }
            }
        }
    }

    #[test]
    fn verifier_catches_broken_invariants() {
        let program = compile(include_str!("../../../examples/mnist_mlp.imc"));
        let step = lower(&program, &program.trains[0], None).expect("lowers");
        let mut bad = step.clone();
        bad.mvms[0].tiling.as_mut().expect("imc").row_tiles += 1;
        assert!(verify(&bad).is_err());
        let mut bad = step.clone();
        bad.nodes.swap(0, 5);
        assert!(verify(&bad).is_err(), "use before definition");
        let mut bad = step.clone();
        if let Some(c) = bad.mvms[1].cores.as_mut() {
            c.cores[0] = Some(0);
        }
        assert!(verify(&bad).is_err(), "a core holding two tiles");
        let mut bad = step;
        bad.nodes[0].group = None;
        assert!(verify(&bad).is_err(), "ungrouped digital node after fusion");
    }
}
