//! `imcc cost` (also `imcc energy`): the modelled energy and time of each train block's training
//! step, without training: per MVM, layer and step the joules, seconds, share of the step, array
//! utilization, effective TOPS and TOPS/W and the energy-delay product; the itemized energy
//! ledger, the digital 4-bit and FP16 baselines, the savings and the Amdahl arithmetic behind
//! them; the modelled inference throughput; and, for a placement by cost, the choice beside the
//! fixed policies. `spec/energy.md` is the model's reference.

use imcc_compiler::program::{DataSet, TrainRun};
use imcc_cost::{StepCost, time};
use imcc_runtime::config::{Mvm, Precision, Target};
use imcc_runtime::data;
use imcc_runtime::energy::{self, Component};
use imcc_runtime::ir::{Step, text};
use serde_json::json;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

/// Training steps per epoch, where the data set's size is known without loading it.
pub fn steps_per_epoch(run: &TrainRun) -> Option<u64> {
    let n = match &run.data {
        DataSet::Digits { test_fraction, .. } => data::digits_train_count(1797, *test_fraction),
        DataSet::Mnist { dir } | DataSet::Idx { dir, .. } => data::idx_train_count(Path::new(dir))?,
        DataSet::Cifar10 { dir } => data::cifar10_train_count(Path::new(dir))?,
    };
    let n = run.limit.map_or(n, |l| n.min(l));
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

/// A share as a percentage with one decimal, or `-`.
fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.1}%", 100.0 * x))
}

/// The hardware block's name as the run names it.
fn hardware_name(run: &TrainRun) -> String {
    run.hardware_name.clone().unwrap_or_else(|| "default".into())
}

/// The chip-level figures of a hardware block: its modelled 8-b peak and plane cycle, and what
/// a multi-level DAC saves.
pub fn hardware_summary(step: &Step) -> (String, serde_json::Value) {
    let hw = &step.hardware;
    let peak = time::peak_ops_8b(hw);
    let cycle = time::plane_cycle(hw, &imcc_runtime::ir::PlaneKind::BitSerial, hw.cols);
    let mut t = format!(
        "peak {:.2} TOPS at 8-b ops ({} cores of {} x {}, a {:.1} ns plane cycle, 8 bit-serial cycles per 8-b input)",
        peak / 1e12,
        hw.cores,
        hw.rows,
        hw.cols,
        cycle * 1e9
    );
    let mut j = json!({ "peak_tops_8b": peak / 1e12, "plane_cycle_seconds": cycle });
    if let Some((cycles, saving)) = time::dac_saving(hw, 5) {
        let _ = write!(t, "; multi-level DAC: a 5-b input takes {cycles} cycle(s) instead of 5, {saving:.2}x");
        j["dac_saving_5b"] = json!(saving);
    }
    (t, j)
}

/// A subtotal row of the MVM table (a layer, or the step): joules, seconds and MACs, the share
/// of the step's time, TOPS, TOPS/W and EDP.
fn total_line(t: &mut String, name: &str, what: &str, (j, s, macs): (f64, f64, u64), share: f64) {
    let ops = 2.0 * macs as f64;
    let _ = writeln!(
        t,
        "  {name:<10} {what:<12} {:<14} {j:>10.3e} {s:>10.3e} {:>6} {:>19} {:>8.3} {:>8.2} {:>8} {:>10.3e}",
        "",
        pct(Some(share)),
        "",
        ratio(ops, s) / 1e12,
        ratio(ops, j) / 1e12,
        "",
        j * s
    );
}

/// The report of one lowered step.
pub fn report(run: &TrainRun, step: &Step) -> Report {
    let cost = StepCost::of(step);
    let est = &cost.energy;
    let b4 = energy::baseline(step, Precision::Int4);
    let b16 = energy::baseline(step, Precision::Fp16);
    let (t4, t16) = (time::baseline(step, Precision::Int4), time::baseline(step, Precision::Fp16));
    let policy = if run.reference {
        "f32 reference".to_string()
    } else {
        run.mapping.clone().unwrap_or_else(|| "default".into())
    };
    let (joules, seconds) = (cost.joules(), cost.seconds());
    let samples_per_second = ratio(step.batch as f64, seconds);
    let mut t = String::new();
    let per_epoch = steps_per_epoch(run);
    let _ = writeln!(
        t,
        "cost of `{}` ({policy}): network {}, batch {}, hardware `{}`",
        run.name,
        step.network,
        step.batch,
        hardware_name(run)
    );
    let _ = writeln!(
        t,
        "  per step {joules:.4e} J (MVMs {:.4e} J, digital remainder {:.4e} J), {seconds:.4e} s ({samples_per_second:.0} samples/s on the chip), EDP {:.4e} J·s",
        est.mvm_total(),
        est.kind_total("remainder"),
        cost.edp()
    );
    if let Some(s) = per_epoch {
        let _ = writeln!(t, "  per epoch ({s} steps) {:.4e} J, {:.4e} s", joules * s as f64, seconds * s as f64);
    }

    // Time, utilization and efficiency per MVM, then per layer, then the step.
    let _ = writeln!(
        t,
        "  {:<10} {:<12} {:<14} {:>10} {:>10} {:>6} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>10}",
        "layer",
        "mvm",
        "target",
        "joules",
        "seconds",
        "share",
        "rows",
        "cols",
        "cores",
        "TOPS",
        "TOPS/W",
        "fJ/MAC",
        "EDP J·s"
    );
    let mut mvms = Vec::new();
    for c in &cost.mvms {
        let target = text::target_name(&c.target);
        let u = c.utilization;
        let _ = writeln!(
            t,
            "  {:<10} {:<12} {:<14} {:>10.3e} {:>10.3e} {:>6} {:>6} {:>6} {:>5} {:>8.3} {:>8.2} {:>8.1} {:>10.3e}",
            c.layer,
            c.mvm,
            target,
            c.joules,
            c.seconds,
            pct(Some(ratio(c.seconds, seconds))),
            pct(u.map(|u| u.rows)),
            pct(u.map(|u| u.cols)),
            u.map_or("-".into(), |u| u.cores.to_string()),
            c.ops_per_second() / 1e12,
            c.ops_per_joule() / 1e12,
            c.joules / c.macs.max(1) as f64 * 1e15,
            c.joules * c.seconds
        );
        mvms.push(json!({
            "layer": c.layer, "mvm": c.mvm, "target": target, "macs": c.macs, "joules": c.joules,
            "seconds": c.seconds, "share_of_step": ratio(c.seconds, seconds),
            "utilization": u.map(|u| json!({ "rows": u.rows, "cols": u.cols, "cores": u.cores })),
            "tops": c.ops_per_second() / 1e12, "tops_per_watt": c.ops_per_joule() / 1e12,
            "edp_joule_seconds": c.joules * c.seconds,
        }));
    }
    let mut layers = Vec::new();
    for layer in step.layers.iter().map(|l| &l.name) {
        let j = est.rows.iter().filter(|r| &r.layer == layer).fold(0.0, |a, r| a + r.joules);
        let s = cost.time.rows.iter().filter(|r| &r.layer == layer).fold(0.0, |a, r| a + r.seconds);
        if j == 0.0 && s == 0.0 {
            continue;
        }
        let macs: u64 = cost.mvms.iter().filter(|c| &c.layer == layer).map(|c| c.macs).sum();
        total_line(&mut t, layer, "(layer)", (j, s, macs), ratio(s, seconds));
        layers.push(
            json!({ "layer": layer, "joules": j, "seconds": s, "share_of_step": ratio(s, seconds), "macs": macs }),
        );
    }
    let macs: u64 = step.mvms.iter().map(|m| m.macs()).sum();
    total_line(&mut t, "(step)", "", (joules, seconds, macs), 1.0);
    let _ = writeln!(
        t,
        "  time by part: {}",
        time::Part::ALL
            .iter()
            .map(|p| {
                let s = cost.time.rows.iter().filter(|r| r.part == *p).fold(0.0, |a, r| a + r.seconds);
                format!("{} {}", p.name(), pct(Some(ratio(s, seconds))))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The energy ledger per layer, MVM and component.
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &est.rows {
        let k = (r.layer.clone(), r.mvm.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let _ = write!(t, "  energy by component (J):\n  {:<10} {:<12}", "layer", "mvm");
    for c in Component::ALL {
        let _ = write!(t, " {c:>13}");
    }
    let _ = writeln!(t);
    let mut breakdown = Vec::new();
    for (layer, mvm) in &keys {
        let _ = write!(t, "  {layer:<10} {mvm:<12}");
        let part = |c: Component| -> f64 {
            est.rows.iter().filter(|r| &r.layer == layer && &r.mvm == mvm && r.component == c).map(|r| r.joules).sum()
        };
        let mut total = 0.0;
        let mut components = serde_json::Map::new();
        for c in Component::ALL {
            let j = part(c);
            total += j;
            components.insert(c.to_string(), j.into());
            let _ = write!(t, " {:>13}", if j > 0.0 { format!("{j:.3e}") } else { "-".into() });
        }
        let _ = writeln!(t);
        let target = step
            .mvms
            .iter()
            .find(|m| &step.layers[m.layer.index()].name == layer && m.kind.key() == mvm)
            .map_or("digital(f32)".to_string(), |m| text::target_name(&m.target));
        breakdown
            .push(json!({ "layer": layer, "mvm": mvm, "target": target, "joules": total, "components": components }));
    }

    let _ = writeln!(
        t,
        "  baselines (every MVM digital, same remainder): int4 {:.4e} J, {:.4e} s per step; fp16 {:.4e} J, {:.4e} s",
        b4.total(),
        t4.total(),
        b16.total(),
        t16.total()
    );
    let (s4, s16) = (ratio(b4.mvm_total(), est.mvm_total()), ratio(b16.mvm_total(), est.mvm_total()));
    let _ = writeln!(
        t,
        "  MVM energy saving (the paper's comparison): {s4:.1}x vs digital int4, {s16:.1}x vs digital fp16"
    );
    let _ = writeln!(
        t,
        "  whole-step saving (remainder included): {:.1}x vs int4, {:.1}x vs fp16; speed-up {:.2}x vs int4, {:.2}x vs fp16",
        ratio(b4.total(), joules),
        ratio(b16.total(), joules),
        ratio(t4.total(), seconds),
        ratio(t16.total(), seconds)
    );
    // The Amdahl arithmetic: per MVM kind, its share of the baseline and its own saving.
    let _ = writeln!(t, "  per MVM kind:   MACs share   on IMC   saving vs int4   saving vs fp16");
    let total_macs = macs;
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
    let inf = time::inference(step);
    let _ = writeln!(
        t,
        "  inference (forward only, batch {}): {:.0} samples/s; {} forward tiles resident, {} rewritten per batch ({:.1}% of its time)",
        step.batch,
        inf.samples_per_second,
        inf.resident_tiles,
        inf.reloaded_tiles,
        100.0 * ratio(inf.reload_seconds, inf.seconds_per_batch)
    );
    if let Some(p) = &step.placement {
        t.push_str(&text::placement_lines(p));
    }
    let json = json!({
        "name": run.name,
        "policy": policy,
        "hardware": hardware_name(run),
        "energy_per_step_joules": joules,
        "mvm_energy_per_step_joules": est.mvm_total(),
        "energy_per_epoch_joules": per_epoch.map(|s| joules * s as f64),
        "baseline": { "digital_4bit": b4.total(), "digital_fp16": b16.total() },
        "savings": { "vs_digital_4bit": s4, "vs_digital_fp16": s16 },
        "savings_whole_step": { "vs_digital_4bit": ratio(b4.total(), joules), "vs_digital_fp16": ratio(b16.total(), joules) },
        "breakdown": breakdown,
        "time": {
            "step_seconds": seconds,
            "samples_per_second": samples_per_second,
            "epoch_seconds": per_epoch.map(|s| seconds * s as f64),
            "baseline": { "digital_4bit": t4.total(), "digital_fp16": t16.total() },
            "breakdown": cost.time.rows,
        },
        "edp_joule_seconds": cost.edp(),
        "mvms": mvms,
        "layers": layers,
        "inference": inf,
        "placement": step.placement,
    });
    Report { text: t, json }
}

/// `imcc cost`: the report of every selected train block, as text or JSON.
pub fn command(path: &std::path::Path, only: Option<&str>, json: bool) -> ExitCode {
    let (comp, steps) = match crate::load::load_checked(
        path,
        crate::load::Lowering::Through(None),
        crate::use_color(crate::ColorChoice::Auto),
        only,
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
    let mut hardware = serde_json::Map::new();
    for run in runs.into_iter().copied() {
        let Some(step) = steps.iter().find(|s| s.name == run.name) else { continue };
        let name = hardware_name(run);
        if !hardware.contains_key(&name) {
            let (text, j) = hardware_summary(step);
            if !json {
                outln!("hardware `{name}`: {text}\n");
            }
            hardware.insert(name, j);
        }
        let r = report(run, step);
        if json {
            out.push(r.json);
        } else {
            outln!("{}", r.text);
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&json!({ "runs": out, "hardware": hardware })).unwrap_or_default());
    }
    ExitCode::SUCCESS
}
