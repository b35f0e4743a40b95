//! The lowering passes after `build`, in pipeline order. Each takes the step and the run's
//! resolved plan and fills in one more level of detail.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::program::{Network, TrainRun};
use imcc_ir::config::{
    ActivationFormat, Adaptability, ErrorFormat, InputMode, Mvm, Precision, SignMode, Target, WeightFormat,
};
use imcc_ir::*;

fn weight_fmt(f: &WeightFormat) -> Format {
    match f {
        WeightFormat::Int4Sawb { .. } => Format::Int4Sawb,
        WeightFormat::Int8 => Format::Int8,
        WeightFormat::F32 => Format::F32,
    }
}

fn act_fmt(f: &ActivationFormat) -> Format {
    match f {
        ActivationFormat::Int4Pact { .. } => Format::Int4Pact,
        ActivationFormat::Int8 => Format::Int8,
        ActivationFormat::F32 => Format::F32,
    }
}

/// The formats of the backward and weight-gradient error operands.
fn err_fmts(f: &ErrorFormat) -> (Format, Format) {
    match f {
        ErrorFormat::Radix4(r) => {
            let wg = if r.tpr { r.weight_grad } else { r.backward };
            (Format::Radix4(r.backward), Format::Radix4(wg))
        }
        ErrorFormat::Int8 => (Format::Int8, Format::Int8),
        ErrorFormat::F32 => (Format::F32, Format::F32),
    }
}

/// Pass `formats`: operand formats from the quant policy (all f32 for a reference run).
pub fn formats(step: &mut Step, run: &TrainRun) {
    for plan in &run.layers {
        let li = LayerIdx(plan.layer.0);
        let (wf, af, ef) = if run.reference {
            (WeightFormat::F32, ActivationFormat::F32, ErrorFormat::F32)
        } else {
            (plan.weights.clone(), plan.activations.clone(), plan.errors.clone())
        };
        let (wfmt, afmt, (e_bwd, e_wg)) = (weight_fmt(&wf), act_fmt(&af), err_fmts(&ef));
        for i in 0..step.nodes.len() {
            if step.nodes[i].layer != Some(li) {
                continue;
            }
            let outs = step.nodes[i].outputs.clone();
            match &mut step.nodes[i].op {
                Op::QuantizeWeights { format, .. } => {
                    *format = wf.clone();
                    step.values[outs[0].index()].format = wfmt.clone();
                }
                Op::QuantizeActivations { format, alpha } => {
                    // Without a learned alpha (the network input, normalized to [0, 1]), PACT
                    // clips at the data range.
                    *format = match (&af, alpha) {
                        (ActivationFormat::Int4Pact { alpha_decay, .. }, None) => {
                            ActivationFormat::Int4Pact { alpha: 1.0, alpha_decay: *alpha_decay }
                        }
                        _ => af.clone(),
                    };
                    step.values[outs[0].index()].format = afmt.clone();
                }
                Op::Grad(inner) => {
                    if let Op::QuantizeActivations { format, .. } = inner.as_mut() {
                        *format = af.clone();
                    }
                }
                Op::QuantizeErrors { format } => {
                    *format = ef.clone();
                    step.values[outs[0].index()].format = e_bwd.clone();
                    step.values[outs[1].index()].format = e_wg.clone();
                }
                _ => {}
            }
        }
    }
    for i in 0..step.nodes.len() {
        if let Op::Mvm(m) = step.nodes[i].op {
            let (a, b) = (step.nodes[i].inputs[0], step.nodes[i].inputs[1]);
            let (fa, fb) = (step.values[a.index()].format.clone(), step.values[b.index()].format.clone());
            let mvm = &mut step.mvms[m.index()];
            mvm.stored = fa;
            mvm.streamed = fb;
        }
    }
}

/// Pass `partition`: each MVM's target from the mapping policy.
pub fn partition(step: &mut Step, run: &TrainRun) {
    for m in &mut step.mvms {
        let k = Mvm::ALL.iter().position(|x| *x == m.kind).unwrap_or(0);
        let target = if run.reference {
            Target::Digital(Precision::F32)
        } else {
            run.layers.iter().find(|p| p.layer.0 == m.layer.0).map_or(Target::Digital(Precision::F32), |p| p.targets[k])
        };
        m.target = Some(target);
    }
    // Array writes exist only for MVMs on the arrays.
    let mvms = &step.mvms;
    let keep: Vec<bool> = step
        .nodes
        .iter()
        .map(|n| match n.op {
            Op::WriteArrays { mvm } => mvms[mvm.index()].target == Some(Target::Imc),
            _ => true,
        })
        .collect();
    // Node ids shift: renumber the gradient-to-forward links.
    let new_id: Vec<u32> = keep
        .iter()
        .scan(0u32, |next, &k| {
            let id = *next;
            *next += u32::from(k);
            Some(id)
        })
        .collect();
    let mut i = 0;
    step.nodes.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    for n in &mut step.nodes {
        if let Some(f) = &mut n.forward {
            *f = NodeId(new_id[f.index()]);
        }
    }
}

/// Pass `tile`: row- and column-tiles of every IMC MVM. A stored element wider than the
/// array's columns cannot be placed (E0600).
pub fn tile(step: &mut Step, net: &Network) -> Vec<Diagnostic> {
    let (rows, cols) = (step.hardware.rows as usize, step.hardware.cols as usize);
    let mut diags = Vec::new();
    let mut reported = Vec::new();
    for m in &mut step.mvms {
        if m.target != Some(Target::Imc) {
            continue;
        }
        let Some(bits) = m.stored.array_bits() else {
            // The checker rejects IMC MVMs with f32 operands (E0503).
            unreachable!("IMC MVM {} with a {:?} stored operand passed the checker", m.name, m.stored);
        };
        if bits as usize > cols {
            let layer = &net.layers[m.layer.index()];
            if reported.contains(&m.layer) {
                continue; // one diagnostic per layer
            }
            reported.push(m.layer);
            diags.push(
                Diagnostic::new(
                    Code::CannotTile,
                    format!("the MVMs of `{}` cannot be tiled on {cols}-column arrays", layer.name),
                )
                .primary(layer.span, format!("each stored element needs {bits} columns (one per bit)"))
                .note(format!(
                    "stored operands are bit-parallel: a {bits}-bit element spans {bits} adjacent columns of one array"
                ))
                .help("use arrays with more columns, or a narrower format"),
            );
            continue;
        }
        let row_tiles = m.reduction.div_ceil(rows).max(1);
        let col_tiles = (m.outputs * bits as usize).div_ceil(cols).max(1);
        let used = (m.reduction * m.outputs * bits as usize) as f64;
        m.tiling = Some(Tiling {
            row_tiles: row_tiles as u32,
            col_tiles: col_tiles as u32,
            bits,
            last_rows: (m.reduction - (row_tiles - 1) * rows) as u32,
            utilization: used / (row_tiles * col_tiles * rows * cols) as f64,
        });
    }
    diags
}

/// Pass `allocate_cores`: one tile per core. Weight-stationary tiles (forward `W`, backward
/// `Wᵀ`) get cores first, in layer order: keeping them resident saves rewriting them at every
/// use. Weight-gradient tiles hold the batch's activations, rewritten every step anyway, so they
/// take what is left. Tiles without a core are time-multiplexed: rewritten each time they run.
pub fn allocate_cores(step: &mut Step) {
    let cores = step.hardware.cores;
    let mut next = 0u32;
    let order: Vec<usize> = (0..step.mvms.len())
        .filter(|&i| step.mvms[i].kind != Mvm::WeightGrad)
        .chain((0..step.mvms.len()).filter(|&i| step.mvms[i].kind == Mvm::WeightGrad))
        .collect();
    for i in order {
        let m = &mut step.mvms[i];
        let Some(t) = &m.tiling else { continue };
        let n = (t.row_tiles * t.col_tiles) as usize;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            if next < cores {
                slots.push(Some(next));
                next += 1;
            } else {
                slots.push(None);
            }
        }
        let reloads = slots.iter().filter(|s| s.is_none()).count() as u32;
        m.cores = Some(CoreAlloc { cores: slots, reloads_per_step: reloads });
    }
}

/// Pass `schedule_planes`: how each IMC MVM's streamed operand drives the rows.
pub fn schedule_planes(step: &mut Step, run: &TrainRun) {
    let hw = step.hardware.clone();
    let passes_signed = if hw.signs == SignMode::TwoPass { 2 } else { 1 };
    for m in &mut step.mvms {
        if m.target != Some(Target::Imc) {
            continue;
        }
        let (magnitude_bits, signed, radix4) = match &m.streamed {
            Format::Int4Pact => (4, false, false),
            Format::Int8 => (7, true, false),
            Format::Radix4(_) => {
                let levels = run.layers.iter().find(|l| l.layer.0 == m.layer.0).map_or(8, |l| match &l.errors {
                    ErrorFormat::Radix4(r) => r.levels,
                    _ => 8,
                });
                (levels, true, true)
            }
            Format::Int4Sawb | Format::F32 => unreachable!("{} streams {:?}", m.name, m.streamed),
        };
        let (kind, planes) = match (&hw.input, radix4) {
            (InputMode::BitSerial, false) => (PlaneKind::BitSerial, magnitude_bits),
            (InputMode::BitSerial, true) => (PlaneKind::ExponentPlanes, magnitude_bits),
            (InputMode::Dac { bits, .. }, false) => (PlaneKind::DacCycles, magnitude_bits.div_ceil(*bits)),
            (InputMode::Dac { levels, .. }, true) => {
                (PlaneKind::DacCycles, magnitude_bits.div_ceil(levels.len().max(1) as u32))
            }
        };
        m.planes = Some(PlaneSchedule {
            kind,
            planes,
            passes: if signed { passes_signed } else { 1 },
            skip_empty: hw.skip_empty_planes,
        });
    }
}

/// Pass `assign_adc`: the range policy, the allowed gains, and a starting gain per plane. The
/// starting gain matches the full scale to the rows the largest row-tile drives,
/// `G0 = rows / min(rows, reduction)`, snapped down to an allowed gain; the policy then adapts
/// it from running statistics of the column sums.
pub fn assign_adc(step: &mut Step, run: &TrainRun) {
    let rows = step.hardware.rows as f64;
    let allowed = match &step.hardware.adc.adaptability {
        Adaptability::Full => None,
        Adaptability::Gains(g) => Some(g.clone()),
    };
    for m in &mut step.mvms {
        let Some(p) = &m.planes else { continue };
        let policy = run
            .layers
            .iter()
            .find(|l| l.layer.0 == m.layer.0)
            .map(|l| l.adc_range)
            .unwrap_or(imcc_ir::config::RangePolicy::Mse { momentum: 0.9 });
        let g0 = rows / rows.min(m.reduction as f64).max(1.0);
        let g = match (&allowed, policy) {
            // A fixed gain is the gain from the first step on.
            (_, imcc_ir::config::RangePolicy::Fixed { gain }) => gain,
            (None, _) => g0,
            (Some(list), _) => {
                let below = list.iter().copied().filter(|&x| x <= g0 * (1.0 + 1e-12)).fold(f64::NAN, f64::max);
                if below.is_nan() { list.iter().copied().fold(f64::INFINITY, f64::min) } else { below }
            }
        };
        m.adc = Some(AdcPlan { policy, allowed: allowed.clone(), initial_gains: vec![g; p.planes as usize] });
    }
}

/// Pass `fuse`: each maximal run of digital nodes between two MVMs, within one phase, is a
/// fusion group: the forward epilogue (bias, activation, PACT quantization of the next MVM's
/// input), the backward epilogue (masks, GradScale, two-phase rounding), the update.
pub fn fuse(step: &mut Step) {
    let mut groups: Vec<FusionGroup> = Vec::new();
    let mut open: Option<Phase3> = None;
    let mut layers: Vec<String> = Vec::new();
    let phase_name = |p: Phase3| match p {
        Phase3::Forward => "forward",
        Phase3::Backward => "backward",
        Phase3::Update => "update",
    };
    for i in 0..step.nodes.len() {
        let node = &step.nodes[i];
        if matches!(node.op, Op::Mvm(_)) {
            open = None;
            continue;
        }
        if open != Some(node.phase) {
            groups.push(FusionGroup { name: phase_name(node.phase).to_string(), nodes: Vec::new() });
            open = Some(node.phase);
            layers.clear();
        }
        let g = groups.len() - 1;
        if let Some(l) = node.layer {
            let name = &step.layers[l.index()].name;
            if layers.last() != Some(name) {
                layers.push(name.clone());
                groups[g].name = format!("{} {}", phase_name(node.phase), layers.join("-"));
            }
        }
        groups[g].nodes.push(NodeId(i as u32));
        step.nodes[i].group = Some(GroupId(g as u32));
    }
    step.groups = groups;
}
