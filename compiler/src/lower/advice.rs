//! Advice on a lowered step: warnings that are facts of the mapping, not errors (W0006, an IMC
//! MVM that drives few of its array's rows and so pays far more than the calibrated energy per
//! MAC).

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::program::{Network, Placement, TrainRun};
use imcc_cost::{StepCost, energy};
use imcc_ir::Step;
use imcc_ir::config::{Mvm, Target};

/// The warnings of `run`'s lowered `step` (on network `net`).
pub fn advise(net: &Network, run: &TrainRun, step: &Step) -> Vec<Diagnostic> {
    let threshold = run.placement.min_row_share;
    let hw = &step.hardware;
    let by_cost = matches!(run.placement.placement, Placement::Cost(_));
    let cost = StepCost::of(step);
    let mut low = Vec::new();
    for (m, c) in step.mvms.iter().zip(&cost.mvms) {
        let Some(u) = c.utilization else { continue };
        let k = Mvm::ALL.iter().position(|x| *x == m.kind).unwrap_or(0);
        let plan = run.layers.iter().find(|l| l.layer.0 == m.layer.0);
        // The compiler weighed the MVMs it placed by cost itself.
        let chosen_by_cost = by_cost && plan.is_some_and(|l| l.free[k].is_some());
        if u.rows >= threshold || chosen_by_cost || m.target != Some(Target::Imc) {
            continue;
        }
        low.push((m, c, u));
    }
    let Some(&(first, ..)) = low.first() else { return Vec::new() };
    // The calibrated energy per MAC: every conversion summing a full column.
    let full = |m: &imcc_ir::MvmOp| {
        let e = &hw.energy;
        let bits = (m.tiling.as_ref().map_or(4, |t| t.bits) * m.streamed.bits()) as f64;
        (e.column_eval + e.adc_conversion + e.shift_add) / hw.rows as f64 * bits
    };
    let mut d = Diagnostic::new(
        Code::LowRowUse,
        format!(
            "{} IMC MVM{} of train `{}` drive{} less than {:.1}% of the array's {} rows",
            low.len(),
            if low.len() == 1 { "" } else { "s" },
            run.name,
            if low.len() == 1 { "s" } else { "" },
            100.0 * threshold,
            hw.rows
        ),
    );
    // One label per layer, listing its MVMs.
    let mut layers: Vec<(imcc_ir::LayerIdx, Vec<String>)> = Vec::new();
    for (m, c, u) in &low {
        let rows = (m.reduction as u64).min(hw.rows as u64);
        let text = format!(
            "{}: {rows} of {} rows ({:.1}%), {:.0} fJ per MAC",
            m.kind.key(),
            hw.rows,
            100.0 * u.rows,
            c.joules / c.macs.max(1) as f64 * 1e15
        );
        match layers.iter_mut().find(|(l, _)| *l == m.layer) {
            Some((_, texts)) => texts.push(text),
            None => layers.push((m.layer, vec![text])),
        }
    }
    layers.sort_by_key(|(l, _)| *l);
    for (i, (li, texts)) in layers.iter().enumerate() {
        let span = net.layers[li.index()].span;
        let label = texts.join("; ");
        d = if i == 0 { d.primary(span, label) } else { d.secondary(span, label) };
    }
    let per_mac = energy::mac_energy(hw, imcc_ir::config::Precision::Int4);
    d = d.note(format!(
        "a conversion costs its full energy and plane cycle however few rows it sums: at full rows this chip pays {:.1} fJ per {}x{}-bit MAC; a digital INT4 MAC costs {:.1} fJ before operand reads",
        full(first) * 1e15,
        first.tiling.as_ref().map_or(4, |t| t.bits),
        first.streamed.bits(),
        per_mac * 1e15
    ))
    .help(
        "run these MVMs digital, or let the compiler place them by cost (`placement = cost(minimize = energy);` in the mapping); a larger batch fills a dense weight gradient's rows, smaller arrays fill any; `imcc cost` prints every MVM's row share, energy per MAC and time",
    );
    vec![d]
}
