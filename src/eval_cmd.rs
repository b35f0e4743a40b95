//! `imcc eval`: tests trained runs, from their checkpoints, on other noise levels or another
//! chip than they were trained on (train at one noise level, test at others).

use crate::load::{Lowering, checked_runs};
use imcc_driver::{Options, Overrides, evaluate_checkpoint};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `imcc eval` was asked.
pub struct Args {
    /// The file the runs were trained from.
    pub file: PathBuf,
    /// The checkpoint directory of `imcc train --checkpoint`.
    pub checkpoint: PathBuf,
    /// Only this train block.
    pub train: Option<String>,
    /// Noise levels to test at (default: each run's own).
    pub sigma_lsb: Vec<f64>,
    /// Another `hardware` block of the file to test on.
    pub hardware: Option<String>,
    /// JSON instead of a table.
    pub json: bool,
    /// Run the digital remainder on the reference executor.
    pub no_jit: bool,
}

/// Runs `imcc eval`.
pub fn command(a: Args) -> ExitCode {
    let (comp, _, names) = match checked_runs(&a.file, a.train.as_deref(), Lowering::Skip) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let chip = match &a.hardware {
        None => None,
        Some(h) => match program.hardware.iter().find(|(n, _)| n == h) {
            Some(c) => Some(c.clone()),
            None => {
                let known: Vec<&str> = program.hardware.iter().map(|(n, _)| n.as_str()).collect();
                errln!(
                    "error: --hardware {h}: no such hardware block in {} (it has: {})",
                    a.file.display(),
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let runs: Vec<_> = program.trains.iter().filter(|r| names.contains(&r.name)).collect();
    let (mut rows, mut status) = (Vec::new(), ExitCode::SUCCESS);
    for run in runs {
        let mut run = run.clone();
        if let Some((name, hw)) = &chip {
            // The noise level stays the trained one unless --sigma-lsb says otherwise.
            let sigma = run.hardware.noise.sigma_lsb;
            run.hardware = hw.clone();
            run.hardware.noise.sigma_lsb = sigma;
            run.hardware_name = Some(name.clone());
        }
        let trained = run.hardware.noise.sigma_lsb;
        let sigmas = if a.sigma_lsb.is_empty() { vec![trained] } else { a.sigma_lsb.clone() };
        for s in sigmas {
            let opts = Options {
                overrides: Overrides { sigma_lsb: Some(s), ..Default::default() },
                jit: !a.no_jit,
                ..Default::default()
            };
            match evaluate_checkpoint(program, &run, &a.checkpoint, &opts) {
                Ok(acc) => rows.push((
                    run.name.clone(),
                    run.hardware_name.clone().unwrap_or_else(|| "default".into()),
                    trained,
                    s,
                    acc,
                )),
                Err(e) => {
                    errln!("error: {e}");
                    status = ExitCode::from(1);
                    break;
                }
            }
        }
    }
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(run, hw, trained, s, acc)| {
                serde_json::json!({ "run": run, "hardware": hw, "trained_sigma_lsb": trained, "sigma_lsb": s, "test_accuracy": acc })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "evaluations": v })).unwrap_or_default());
    } else if !rows.is_empty() {
        outln!("{:<16} {:<20} {:>14} {:>12} {:>14}", "run", "hardware", "trained sigma", "test sigma", "test accuracy");
        for (run, hw, trained, s, acc) in &rows {
            outln!("{run:<16} {hw:<20} {trained:>14} {s:>12} {acc:>14.4}");
        }
    }
    status
}

/// For `--checkpoint`: the directory must exist.
pub fn existing_dir(p: &Path) -> Result<(), String> {
    if p.is_dir() { Ok(()) } else { Err(format!("--checkpoint {}: not a directory", p.display())) }
}
