//! `imcc energy`: the estimated energy of each train block's training step, without training:
//! the itemized ledger, the digital baselines, the savings and the Amdahl arithmetic behind them.

use imcc_compiler::program::{DataSet, TrainRun};
use imcc_runtime::config::{Mvm, Precision, Target};
use imcc_runtime::data;
use imcc_runtime::energy::{self, Component};
use imcc_runtime::ir::Step;
use serde_json::json;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

/// Training steps per epoch, where the data set's size is known without loading it.
fn steps_per_epoch(run: &TrainRun) -> Option<u64> {
    let n = match &run.data {
        DataSet::Digits { test_fraction, .. } => data::digits_train_count(1797, *test_fraction),
        DataSet::Mnist { dir } | DataSet::Idx { dir, .. } => data::idx_train_count(Path::new(dir))?,
        DataSet::Cifar10 { dir } => data::cifar10_train_count(Path::new(dir))?,
    };
    Some(n.div_ceil(run.batch) as u64)
}

/// One run's report.
pub struct Report {
    /// Text for people.
    pub text: String,
    /// JSON for tools.
    pub json: serde_json::Value,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::INFINITY }
}

/// The report of one lowered step.
pub fn report(run: &TrainRun, step: &Step) -> Report {
    let est = energy::estimate(step);
    let b4 = energy::baseline(step, Precision::Int4);
    let b16 = energy::baseline(step, Precision::Fp16);
    let policy = if run.reference {
        "f32 reference".to_string()
    } else {
        run.mapping.clone().unwrap_or_else(|| "default".into())
    };
    let mut t = String::new();
    let per_epoch = steps_per_epoch(run);
    let _ = writeln!(t, "energy of `{}` ({policy}): network {}, batch {}", run.name, step.network, step.batch);
    let _ = writeln!(
        t,
        "  per step {:.4e} J (MVMs {:.4e} J, digital remainder {:.4e} J){}",
        est.total(),
        est.mvm_total(),
        est.kind_total("remainder"),
        per_epoch.map_or(String::new(), |s| format!("; per epoch ({s} steps) {:.4e} J", est.total() * s as f64))
    );
    // The breakdown per layer and MVM.
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &est.rows {
        let k = (r.layer.clone(), r.mvm.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let _ = write!(t, "  {:<10} {:<12} {:<14}", "layer", "mvm", "target");
    for c in Component::ALL {
        let _ = write!(t, " {c:>13}");
    }
    let _ = writeln!(t, " {:>11} {:>9}", "total J", "fJ/MAC");
    let mut breakdown = Vec::new();
    for (layer, mvm) in &keys {
        let m = step.mvms.iter().find(|m| &step.layers[m.layer.index()].name == layer && m.kind.key() == mvm);
        let target = m.map_or("digital(f32)".to_string(), |m| imcc_runtime::ir::text::target_name(&m.target));
        let _ = write!(t, "  {layer:<10} {mvm:<12} {target:<14}");
        let mut total = 0.0;
        for c in Component::ALL {
            let j: f64 = est
                .rows
                .iter()
                .filter(|r| &r.layer == layer && &r.mvm == mvm && r.component == c)
                .map(|r| r.joules)
                .sum();
            total += j;
            let _ = write!(t, " {:>13}", if j > 0.0 { format!("{j:.3e}") } else { "-".into() });
        }
        let per_mac = m.map_or("-".to_string(), |m| format!("{:.1}", total / m.macs() as f64 * 1e15));
        let _ = writeln!(t, " {total:>11.3e} {per_mac:>9}");
        breakdown.push(json!({ "layer": layer, "mvm": mvm, "target": target, "joules": total,
            "components": Component::ALL.iter().map(|c| (c.to_string(), est.rows.iter().filter(|r| &r.layer == layer && &r.mvm == mvm && r.component == *c).map(|r| r.joules).sum::<f64>().into())).collect::<serde_json::Map<String, serde_json::Value>>() }));
    }
    let _ = writeln!(
        t,
        "  baselines (every MVM digital, same remainder): int4 {:.4e} J/step, fp16 {:.4e} J/step",
        b4.total(),
        b16.total()
    );
    let (s4, s16) = (ratio(b4.mvm_total(), est.mvm_total()), ratio(b16.mvm_total(), est.mvm_total()));
    let _ = writeln!(
        t,
        "  MVM energy saving (the paper's comparison): {s4:.1}x vs digital int4, {s16:.1}x vs digital fp16"
    );
    let _ = writeln!(
        t,
        "  whole-step saving (remainder included): {:.1}x vs int4, {:.1}x vs fp16",
        ratio(b4.total(), est.total()),
        ratio(b16.total(), est.total())
    );
    // The Amdahl arithmetic: per MVM kind, its share of the baseline and its own saving.
    let _ = writeln!(t, "  per MVM kind:   MACs share   on IMC   saving vs int4   saving vs fp16");
    let total_macs: u64 = step.mvms.iter().map(|m| m.macs()).sum();
    let mut amdahl4 = 0.0;
    let mut amdahl16 = 0.0;
    for kind in Mvm::ALL {
        let macs: u64 = step.mvms.iter().filter(|m| m.kind == kind).map(|m| m.macs()).sum();
        let on_imc = step.mvms.iter().filter(|m| m.kind == kind).all(|m| m.target == Some(Target::Imc));
        let (e, e4, e16) = (est.kind_total(kind.key()), b4.kind_total(kind.key()), b16.kind_total(kind.key()));
        amdahl4 += e4 / b4.mvm_total() / ratio(e4, e);
        amdahl16 += e16 / b16.mvm_total() / ratio(e16, e);
        let _ = writeln!(
            t,
            "    {:<12} {:>9.1}%   {:>6}   {:>14.1}x   {:>14.1}x",
            kind.key(),
            100.0 * macs as f64 / total_macs.max(1) as f64,
            if on_imc { "yes" } else { "no" },
            ratio(e4, e),
            ratio(e16, e)
        );
    }
    let _ = writeln!(
        t,
        "  Amdahl: 1 / sum(share_k / saving_k) = {:.1}x vs int4, {:.1}x vs fp16 (equals the MVM saving)",
        1.0 / amdahl4,
        1.0 / amdahl16
    );
    let json = json!({
        "name": run.name,
        "policy": policy,
        "energy_per_step_joules": est.total(),
        "mvm_energy_per_step_joules": est.mvm_total(),
        "energy_per_epoch_joules": per_epoch.map(|s| est.total() * s as f64),
        "baseline": { "digital_4bit": b4.total(), "digital_fp16": b16.total() },
        "savings": { "vs_digital_4bit": s4, "vs_digital_fp16": s16 },
        "savings_whole_step": { "vs_digital_4bit": ratio(b4.total(), est.total()), "vs_digital_fp16": ratio(b16.total(), est.total()) },
        "breakdown": breakdown,
    });
    Report { text: t, json }
}

/// `imcc energy`: the report of every selected train block, as text or JSON.
pub fn command(path: &std::path::Path, only: Option<&str>, json: bool) -> ExitCode {
    let (comp, steps) = match crate::load::load_checked(
        path,
        crate::load::Lowering::Through(None),
        crate::use_color(crate::ColorChoice::Auto),
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    // Train blocks and sweep points (`--train noise[3]`).
    let all: Vec<_> = program.all_runs().collect();
    let runs = match crate::load::select(&all, |r| r.name.as_str(), only, &path.display().to_string()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut out = Vec::new();
    for run in runs.into_iter().copied() {
        let Some(step) = steps.iter().find(|s| s.name == run.name) else { continue };
        let r = report(run, step);
        if json {
            out.push(r.json);
        } else {
            outln!("{}", r.text);
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": out })).unwrap_or_default());
    }
    ExitCode::SUCCESS
}
