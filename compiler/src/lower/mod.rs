//! Lowering: a checked `train` block to the mapped IR ([`imcc_ir::Step`]), through a
//! linear, named pipeline of passes with the IR verifier after each one (in tests and debug
//! builds), as cranelift's `Context::optimize` does.

mod advice;
mod build;
mod passes;
mod place;

pub use advice::advise;
pub use place::mapping_source;

use crate::diagnostic::Diagnostic;
use crate::program::{Network, Placement, Program, TrainRun};
pub use imcc_ir::Pass;
use imcc_ir::{Step, verify::verify};

/// Why lowering stopped.
#[derive(Debug)]
pub enum LowerError {
    /// The program cannot be mapped; the diagnostics say why.
    Diagnostics(Vec<Diagnostic>),
    /// A pass broke an IR invariant: a compiler bug.
    Internal(String),
}

/// Lowers `run` (of `program`) through every pass ([`Pass::ALL`]), or up to and including
/// `after`.
pub fn lower(program: &Program, run: &TrainRun, after: Option<Pass>) -> Result<Step, LowerError> {
    let net =
        program.networks.iter().find(|n| n.name == run.network).ok_or_else(|| {
            LowerError::Internal(format!("network `{}` of train `{}` is missing", run.network, run.name))
        })?;
    // A placement by cost chooses the `auto` targets first, from the modelled cost of each.
    let placed = match run.placement.placement {
        Placement::Cost(objective) if !run.reference => Some(place::choose(net, run, objective)?),
        _ => None,
    };
    let (run, record) = match &placed {
        Some((r, rec)) => (r, Some(rec.clone())),
        None => (run, None),
    };
    let mut step = build::build(net, run);
    step.placement = record;
    pipeline(&mut step, net, run, after)?;
    Ok(step)
}

/// Runs the passes after `build` on `step`, through `after` (all when `None`), verifying after
/// each in tests and debug builds.
fn pipeline(step: &mut Step, net: &Network, run: &TrainRun, after: Option<Pass>) -> Result<(), LowerError> {
    let check = cfg!(debug_assertions) || cfg!(test);
    for pass in Pass::ALL {
        let diags = match pass {
            Pass::Build => Vec::new(),
            Pass::Formats => {
                passes::formats(step, run);
                Vec::new()
            }
            Pass::Partition => {
                passes::partition(step, run);
                Vec::new()
            }
            Pass::Tile => passes::tile(step, net),
            Pass::AllocateCores => {
                passes::allocate_cores(step);
                Vec::new()
            }
            Pass::SchedulePlanes => {
                passes::schedule_planes(step, run);
                Vec::new()
            }
            Pass::AssignAdc => {
                passes::assign_adc(step, run);
                Vec::new()
            }
            Pass::Fuse => {
                passes::fuse(step);
                Vec::new()
            }
        };
        if !diags.is_empty() {
            return Err(LowerError::Diagnostics(diags));
        }
        step.passes.push(pass);
        if check && let Err(errs) = verify(step) {
            return Err(LowerError::Internal(format!(
                "IR verifier failed after pass `{pass}`:\n  {}",
                errs.join("\n  ")
            )));
        }
        if after == Some(pass) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MemLoader;
    use imcc_ir::{NodeId, Op};
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
                for pass in Pass::ALL {
                    let step = lower(&program, run, Some(pass)).unwrap_or_else(|e| panic!("{}: {e:?}", run.name));
                    assert_eq!(step.passes.last(), Some(&pass));
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
        let mut bad = step.clone();
        bad.nodes[0].group = None;
        assert!(verify(&bad).is_err(), "ungrouped digital node after fusion");
        let relu = step.nodes.iter().position(|n| n.op == Op::Relu).expect("a relu");
        let mut bad = step.clone();
        let extra = bad.nodes[relu].inputs[0];
        bad.nodes[relu].inputs.push(extra);
        let errs = verify(&bad).expect_err("relu with two inputs").join("; ");
        assert!(errs.contains("relu reads 2 and writes 1 values"), "{errs}");
        let grad = step.nodes.iter().position(|n| n.forward.is_some()).expect("a gradient with its forward");
        let mut bad = step.clone();
        bad.nodes[grad].forward = Some(NodeId(grad as u32 + 1));
        let errs = verify(&bad).expect_err("a forward link pointing ahead").join("; ");
        assert!(errs.contains("is not an earlier"), "{errs}");
        let mut bad = step;
        bad.nodes[relu].forward = Some(NodeId(0));
        assert!(verify(&bad).is_err(), "a forward link on a forward node");
    }
}
