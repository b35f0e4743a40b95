//! The text forms of the IR: the full dump ([`print`]) and the per-layer mapping summary
//! ([`mapping_summary`]). Both are stable (snapshot-tested) and documented in `spec/ir.md`.

use super::*;
use crate::config::{Adaptability, AdcZero, InputMode, Named, Precision, SignMode};
use std::fmt::Write;

fn shape(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A format's name.
pub fn format_name(f: &Format) -> &'static str {
    match f {
        Format::F32 => "f32",
        Format::Int4Sawb => "int4_sawb",
        Format::Int4Pact => "int4_pact",
        Format::Int8 => "int8",
        Format::Radix4(Phase::Even) => "radix4.even",
        Format::Radix4(Phase::Odd) => "radix4.odd",
    }
}

/// A target's name: `imc`, `digital(int4)`.
pub fn target_name(t: &Option<Target>) -> String {
    match t {
        None => "unassigned".into(),
        Some(Target::Imc) => "imc".into(),
        Some(Target::Digital(p)) => format!(
            "digital({})",
            match p {
                Precision::Int4 => "int4",
                Precision::Int8 => "int8",
                Precision::Fp16 => "fp16",
                Precision::F32 => "f32",
            }
        ),
    }
}

fn mvm_kind(k: Mvm) -> &'static str {
    k.key()
}

fn policy(p: &RangePolicy) -> String {
    match p {
        RangePolicy::Mse { momentum } => format!("mse(momentum {})", num(*momentum)),
        RangePolicy::Max { momentum } => format!("max(momentum {})", num(*momentum)),
        RangePolicy::Percentile { p, momentum } => {
            format!("percentile({}, momentum {})", num(*p), num(*momentum))
        }
        RangePolicy::Fixed { gain } => format!("fixed({})", num(*gain)),
    }
}

/// An operation as the text form prints it (`bias_add p1`, `grad[relu]`).
pub fn op_text(step: &Step, op: &Op) -> String {
    match op {
        Op::QuantizeWeights { param, format } => {
            format!("{} {} {param}", op.name(), weight_format(format))
        }
        Op::QuantizeActivations { format, alpha } => format!(
            "quantize_activations {}{}",
            act_format(format),
            alpha.map(|a| format!(" alpha={a}")).unwrap_or_default()
        ),
        Op::QuantizeErrors { format } => format!("quantize_errors {}", error_format(format)),
        Op::Im2col { kernel, stride, padding } => format!("im2col k={kernel} s={stride} p={padding}"),
        Op::Col2im { kernel, stride, padding } => format!("col2im k={kernel} s={stride} p={padding}"),
        Op::Mvm(m) => format!("mvm {m} {}", step.mvm(*m).name),
        Op::BiasAdd { param } => format!("bias_add {param}"),
        Op::Relu | Op::Reshape | Op::Add | Op::SoftmaxCrossEntropy | Op::AccumulateGrad => op.name().into(),
        Op::Pact { alpha } => format!("pact alpha={alpha}"),
        Op::MaxPool { kernel, stride, padding } => format!("maxpool k={kernel} s={stride} p={padding}"),
        Op::AvgPool { kernel, stride, padding } => format!("avgpool k={kernel} s={stride} p={padding}"),
        Op::ToChannelsFirst { h, w } => format!("to_channels_first h={h} w={w}"),
        Op::BatchNorm { gamma, beta, momentum, eps } => {
            format!("batchnorm {gamma} {beta} momentum={} eps={eps:e}", num(*momentum))
        }
        Op::Grad(inner) => format!("{}[{}]", op.name(), op_text(step, inner)),
        Op::SgdUpdate { param } => format!("sgd_update {param}"),
        Op::WriteArrays { mvm } => format!("write_arrays {mvm} {}", step.mvm(*mvm).name),
    }
}

fn weight_format(f: &WeightFormat) -> String {
    match f {
        WeightFormat::Int4Sawb { c1, c2 } => format!("int4_sawb(c1={}, c2={})", num(*c1), num(*c2)),
        WeightFormat::Int8 => "int8".into(),
        WeightFormat::F32 => "f32".into(),
    }
}

fn act_format(f: &ActivationFormat) -> String {
    match f {
        ActivationFormat::Int4Pact { alpha, .. } => format!("int4_pact(alpha0={})", num(*alpha)),
        ActivationFormat::Int8 => "int8".into(),
        ActivationFormat::F32 => "f32".into(),
    }
}

fn error_format(f: &ErrorFormat) -> String {
    match f {
        ErrorFormat::Radix4(r) => format!(
            "radix4(levels={}, tpr={}, backward={:?}, weight_grad={:?}, gradscale={:?})",
            r.levels, r.tpr, r.backward, r.weight_grad, r.gradscale
        )
        .to_lowercase(),
        ErrorFormat::Int8 => "int8".into(),
        ErrorFormat::F32 => "f32".into(),
    }
}

/// The hardware in one line.
pub fn hardware_line(hw: &HardwareConfig) -> String {
    let input = match &hw.input {
        InputMode::BitSerial => "bit_serial".to_string(),
        InputMode::Dac { bits, levels } => format!("dac({bits} b, levels {:?})", levels),
    };
    let signs = match hw.signs {
        SignMode::TwoPass => "two-pass signs",
        SignMode::Signed => "signed drive",
    };
    let adapt = match &hw.adc.adaptability {
        Adaptability::Full => "full".to_string(),
        Adaptability::Gains(g) => format!("gains {}", g.iter().map(|x| num(*x)).collect::<Vec<_>>().join("/")),
    };
    let zero = match hw.adc.zero {
        AdcZero::Unsigned => "unsigned",
        AdcZero::Signed => "signed",
        AdcZero::Differential => "differential",
    };
    format!(
        "{} cores of {}x{}, {input} inputs ({signs}), {}-b {zero} ADC ({adapt}), sigma {} LSB",
        hw.cores,
        hw.rows,
        hw.cols,
        hw.adc.bits,
        num(hw.noise.sigma_lsb)
    )
}

fn cores_text(c: &CoreAlloc) -> String {
    let resident: Vec<u32> = c.cores.iter().flatten().copied().collect();
    let mut out = if resident.is_empty() {
        "none resident".to_string()
    } else {
        // Compress runs: 0-3, 7
        let mut parts = Vec::new();
        let mut i = 0;
        while i < resident.len() {
            let mut j = i;
            while j + 1 < resident.len() && resident[j + 1] == resident[j] + 1 {
                j += 1;
            }
            parts.push(if j > i { format!("{}-{}", resident[i], resident[j]) } else { resident[i].to_string() });
            i = j + 1;
        }
        parts.join(", ")
    };
    if c.reloads_per_step > 0 {
        let _ = write!(out, " + {} reloaded per step", c.reloads_per_step);
    }
    out
}

/// Conversions one run of the MVM performs at most (no plane skipped).
pub fn max_conversions(m: &MvmOp) -> u64 {
    match (&m.tiling, &m.planes) {
        (Some(t), Some(p)) => {
            m.vectors as u64 * t.row_tiles as u64 * (p.planes * p.passes) as u64 * m.outputs as u64 * t.bits as u64
        }
        _ => 0,
    }
}

/// The full dump.
pub fn print(step: &Step) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "step {}: network {}, batch {}", step.name, step.network, step.batch);
    let _ = writeln!(o, "  hardware: {}", hardware_line(&step.hardware));
    let passes: Vec<&str> = step.passes.iter().map(|p| p.name()).collect();
    let _ = writeln!(o, "  passes: {}", passes.join(", "));
    let state: Vec<String> = step.state.iter().map(ToString::to_string).collect();
    let _ =
        writeln!(o, "  input {}, labels {}, loss {}, state {}", step.input, step.labels, step.loss, state.join(" "));
    o.push_str("\nparams:\n");
    for (i, p) in step.params.iter().enumerate() {
        let kind = match p.kind {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
            ParamKind::PactAlpha => "pact_alpha",
            ParamKind::BnGamma => "bn_gamma",
            ParamKind::BnBeta => "bn_beta",
        };
        let _ = writeln!(o, "  p{i} {} {kind} {}", p.name, shape(&p.shape));
    }
    o.push_str("\nvalues:\n");
    for (i, v) in step.values.iter().enumerate() {
        let _ = writeln!(o, "  v{i} {} {} {}", v.name, shape(&v.shape), format_name(&v.format));
    }
    o.push_str("\nnodes:\n");
    let mut phase = None;
    for (i, n) in step.nodes.iter().enumerate() {
        if phase != Some(n.phase) {
            let _ = writeln!(
                o,
                "  ; {}",
                match n.phase {
                    Phase3::Forward => "forward",
                    Phase3::Backward => "backward",
                    Phase3::Update => "update",
                }
            );
            phase = Some(n.phase);
        }
        let outs: Vec<String> = n.outputs.iter().map(ToString::to_string).collect();
        let ins: Vec<String> = n.inputs.iter().map(ToString::to_string).collect();
        let lhs = if outs.is_empty() { String::new() } else { format!("{} = ", outs.join(", ")) };
        let group = n.group.map(|g| format!("  ; {g}")).unwrap_or_default();
        let _ = writeln!(o, "  n{i} {lhs}{} ({}){group}", op_text(step, &n.op), ins.join(", "));
    }
    o.push_str("\nmvms:\n");
    for (i, m) in step.mvms.iter().enumerate() {
        let _ = writeln!(
            o,
            "  m{i} {}: [{} x {}] x {} vectors, {} stored x {} streamed, {} MACs -> {}",
            m.name,
            m.outputs,
            m.reduction,
            m.vectors,
            format_name(&m.stored),
            format_name(&m.streamed),
            m.macs(),
            target_name(&m.target)
        );
        if let Some(t) = &m.tiling {
            let _ = writeln!(
                o,
                "      tiling {} x {} (row x column tiles, {} b per element, last row-tile {} rows), utilization {}%",
                t.row_tiles,
                t.col_tiles,
                t.bits,
                t.last_rows,
                num(t.utilization * 100.0)
            );
        }
        if let Some(c) = &m.cores {
            let _ = writeln!(o, "      cores {}", cores_text(c));
        }
        if let Some(p) = &m.planes {
            let _ = writeln!(
                o,
                "      planes {} {} x {} pass{}{}, at most {} conversions",
                p.planes,
                match p.kind {
                    PlaneKind::BitSerial => "bit_serial",
                    PlaneKind::ExponentPlanes => "exponent_planes",
                    PlaneKind::DacCycles => "dac_cycles",
                },
                p.passes,
                if p.passes == 1 { "" } else { "es" },
                if p.skip_empty { ", empty planes skipped" } else { "" },
                max_conversions(m)
            );
        }
        if let Some(a) = &m.adc {
            let allowed = a.allowed.as_ref().map_or("any gain".to_string(), |g| {
                format!("gains {}", g.iter().map(|x| num(*x)).collect::<Vec<_>>().join("/"))
            });
            let init: Vec<String> = a.initial_gains.iter().map(|g| num(*g)).collect();
            let _ = writeln!(o, "      adc {}, {allowed}, initial gains {}", policy(&a.policy), init.join(" "));
        }
    }
    if !step.groups.is_empty() {
        o.push_str("\ngroups:\n");
        for (i, g) in step.groups.iter().enumerate() {
            let nodes: Vec<String> = g.nodes.iter().map(ToString::to_string).collect();
            let _ = writeln!(o, "  g{i} {}: {}", g.name, nodes.join(" "));
        }
    }
    o
}

/// The per-layer mapping summary.
pub fn mapping_summary(step: &Step) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mapping of `{}`: network {}, batch {}", step.name, step.network, step.batch);
    let _ = writeln!(o, "chip: {}", hardware_line(&step.hardware));
    let header =
        ["layer", "mvm", "target", "stored x streamed", "shape", "tiles", "cores", "planes", "conv/sample", "util"];
    let mut rows: Vec<[String; 10]> = Vec::new();
    let mut order: Vec<&MvmOp> = step.mvms.iter().collect();
    order.sort_by_key(|m| (m.layer, Mvm::ALL.iter().position(|k| *k == m.kind)));
    for m in order {
        let layer = &step.layers[m.layer.index()].name;
        let tiles = m.tiling.as_ref().map_or("-".into(), |t| format!("{}x{}", t.row_tiles, t.col_tiles));
        let cores = m.cores.as_ref().map_or("-".into(), cores_text);
        let planes = m.planes.as_ref().map_or("-".into(), |p| format!("{}x{}", p.planes, p.passes));
        let conv =
            if m.tiling.is_some() { (max_conversions(m) / step.batch.max(1) as u64).to_string() } else { "-".into() };
        let util = m.tiling.as_ref().map_or("-".into(), |t| format!("{:.1}%", t.utilization * 100.0));
        rows.push([
            layer.clone(),
            mvm_kind(m.kind).into(),
            target_name(&m.target),
            format!("{} x {}", format_name(&m.stored), format_name(&m.streamed)),
            format!("{}x{} x{}", m.outputs, m.reduction, m.vectors),
            tiles,
            cores,
            planes,
            conv,
            util,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| -> String {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let _ = writeln!(o, "{}", line(header.to_vec()));
    for r in &rows {
        let _ = writeln!(o, "{}", line(r.iter().map(String::as_str).collect()));
    }
    let tiles: u32 = step.mvms.iter().filter_map(|m| m.tiling.as_ref()).map(|t| t.row_tiles * t.col_tiles).sum();
    let reloads: u32 = step.mvms.iter().filter_map(|m| m.cores.as_ref()).map(|c| c.reloads_per_step).sum();
    let imc = step.mvms.iter().filter(|m| m.target == Some(Target::Imc)).count();
    let _ = writeln!(
        o,
        "{imc} of {} MVMs on IMC; {tiles} tiles on {} cores{}",
        step.mvms.len(),
        step.hardware.cores,
        if reloads > 0 {
            format!(": does not fit, {reloads} tile reloads per step (time-multiplexed)")
        } else {
            ": all resident".into()
        }
    );
    if let Some(p) = &step.placement {
        o.push_str(&placement_lines(p));
    }
    o
}

/// A placement by cost: the chosen targets' modelled cost beside the fixed policies'.
pub fn placement_lines(p: &Placement) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "placement by cost, minimizing {} (modelled, per step):", p.objective.name());
    let _ = writeln!(
        o,
        "  {:<12} {:<16} {:>12} {:>12} {:>12} {:>12}",
        "policy", "chip rules", "joules", "MVM joules", "seconds", "EDP J·s"
    );
    for c in &p.compared {
        let _ = writeln!(
            o,
            "  {:<12} {:<16} {:>12.4e} {:>12.4e} {:>12.4e} {:>12.4e}",
            c.policy,
            if c.allowed { "allowed" } else { "forbidden (E0500)" },
            c.joules,
            c.mvm_joules,
            c.seconds,
            c.joules * c.seconds
        );
    }
    o
}
