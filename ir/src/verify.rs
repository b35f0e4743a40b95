//! The IR verifier: invariants every pass must preserve, checked after each pass in tests and
//! debug builds, and before the executor or the JIT trusts a step.

use super::*;
use crate::config::Target;
use std::collections::BTreeSet;

/// Checks `step`; returns every violated invariant.
pub fn verify(step: &Step) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    dataflow(step, &mut errs);
    for (i, n) in step.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        signature(step, id, n, &mut errs);
        forward_link(step, id, n, &mut errs);
        references(step, id, n, &mut errs);
        if step.passes.contains(&Pass::Fuse) && !matches!(n.op, Op::Mvm(_)) && n.group.is_none() {
            errs.push(format!("{id}: a digital node outside every fusion group"));
        }
    }
    mvms(step, &mut errs);
    groups(step, &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Values are defined once, before use (the input and labels come from outside); state values
/// are readable from the start and written exactly once, by the update; every MVM runs once.
fn dataflow(step: &Step, errs: &mut Vec<String>) {
    let nv = step.values.len();
    // Values: defined once, before use; the input and labels come from outside.
    let mut defined = vec![false; nv];
    for v in [step.input, step.labels] {
        match defined.get_mut(v.index()) {
            Some(d) => *d = true,
            None => errs.push(format!("input or labels {v} out of range")),
        }
    }
    // State values are readable from the start (the previous step wrote them) and must be
    // written exactly once, by this step's update.
    let mut state_written = vec![0u32; step.state.len()];
    for v in &step.state {
        match defined.get_mut(v.index()) {
            Some(d) => *d = true,
            None => errs.push(format!("state {v} out of range")),
        }
    }
    let mut mvm_nodes = vec![0u32; step.mvms.len()];
    for (i, n) in step.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        for &v in &n.inputs {
            match defined.get(v.index()) {
                None => errs.push(format!("{id} reads {v}, which does not exist")),
                Some(false) => errs.push(format!("{id} reads {v} before it is written")),
                Some(true) => {}
            }
        }
        for &v in &n.outputs {
            if let Some(k) = step.state.iter().position(|s| *s == v) {
                state_written[k] += 1;
                if n.phase != Phase3::Update {
                    errs.push(format!("{id} writes state {v} outside the update"));
                }
                continue;
            }
            match defined.get_mut(v.index()) {
                None => errs.push(format!("{id} writes {v}, which does not exist")),
                Some(d) if *d => errs.push(format!("{id} writes {v} a second time")),
                Some(d) => *d = true,
            }
        }
        if let Op::Mvm(m) = &n.op
            && let Some(c) = mvm_nodes.get_mut(m.index())
        {
            *c += 1;
        }
    }
    for (k, &c) in state_written.iter().enumerate() {
        if c != 1 {
            errs.push(format!("state {} is written {c} times per step, expected once", step.state[k]));
        }
    }
    for (m, &c) in mvm_nodes.iter().enumerate() {
        if c != 1 {
            errs.push(format!("MVM m{m} is run by {c} nodes, expected 1"));
        }
    }
}

/// The node against its op's signature: arity, and shapes for shape-keeping ops.
fn signature(step: &Step, id: NodeId, n: &Node, errs: &mut Vec<String>) {
    let arity = n.op.arity();
    if !arity.inputs.contains(&n.inputs.len()) || !arity.outputs.contains(&n.outputs.len()) {
        errs.push(format!(
            "{id}: {} reads {} and writes {} values, its signature says {:?} and {:?}",
            n.op.name(),
            n.inputs.len(),
            n.outputs.len(),
            arity.inputs,
            arity.outputs
        ));
    } else if n.op.keeps_shape()
        && let Some(x) = n.inputs.first().and_then(|v| step.values.get(v.index()))
    {
        for o in n.outputs.iter().filter_map(|v| step.values.get(v.index())) {
            if o.shape != x.shape {
                errs.push(format!("{id}: {} writes {:?} from {:?}", n.op.name(), o.shape, x.shape));
            }
        }
    }
}

/// A gradient's link to the forward node it differentiates.
fn forward_link(step: &Step, id: NodeId, n: &Node, errs: &mut Vec<String>) {
    let i = id.index();
    match (&n.op, n.forward) {
        (Op::Grad(inner), Some(f)) => match step.nodes.get(f.index()) {
            Some(fw)
                if f.index() < i
                    && fw.phase == Phase3::Forward
                    && fw.layer == n.layer
                    && std::mem::discriminant(&fw.op) == std::mem::discriminant(inner.as_ref()) => {}
            _ => errs.push(format!("{id}: its forward node {f} is not an earlier {} of its layer", inner.name())),
        },
        (Op::Grad(inner), None)
            if matches!(inner.as_ref(), Op::MaxPool { .. } | Op::AvgPool { .. } | Op::BatchNorm { .. }) =>
        {
            errs.push(format!("{id}: the gradient of {} needs its forward node", inner.name()))
        }
        (Op::Grad(_), None) => {}
        (_, Some(f)) => errs.push(format!("{id}: links forward node {f} but is no gradient")),
        (_, None) => {}
    }
}

/// MVMs, parameters and array writes a node names exist; an MVM node's operands and output.
fn references(step: &Step, id: NodeId, n: &Node, errs: &mut Vec<String>) {
    let check_param = |p: &ParamId, errs: &mut Vec<String>| {
        if p.index() >= step.params.len() {
            errs.push(format!("{id} uses parameter {p}, which does not exist"));
        }
    };
    match &n.op {
        Op::Mvm(m) => match step.mvms.get(m.index()) {
            Some(mvm) => {
                if n.inputs.len() != 2 || n.outputs.len() != 1 {
                    errs.push(format!("{id}: an MVM reads the stored and the streamed operand and writes one value"));
                } else if let Some(out) = step.values.get(n.outputs[0].index())
                    && out.shape != [mvm.vectors, mvm.outputs]
                {
                    errs.push(format!(
                        "{id}: {} writes {:?}, expected [{}, {}]",
                        mvm.name, out.shape, mvm.vectors, mvm.outputs
                    ));
                }
                if n.group.is_some() {
                    errs.push(format!("{id}: MVMs are not part of fusion groups"));
                }
            }
            None => errs.push(format!("{id} runs MVM {m}, which does not exist")),
        },
        Op::WriteArrays { mvm } if mvm.index() >= step.mvms.len() => {
            errs.push(format!("{id} rewrites MVM {mvm}, which does not exist"))
        }
        Op::QuantizeWeights { param, .. }
        | Op::BiasAdd { param }
        | Op::SgdUpdate { param }
        | Op::Pact { alpha: param } => check_param(param, errs),
        _ => {}
    }
}

/// Per-MVM state after each pass: targets, tiling, cores, planes and ADC plans.
fn mvms(step: &Step, errs: &mut Vec<String>) {
    let ran = |p: Pass| step.passes.contains(&p);
    // Per-MVM state after each pass.
    let hw = &step.hardware;
    let mut used_cores = BTreeSet::new();
    for (i, m) in step.mvms.iter().enumerate() {
        let name = format!("m{i} ({})", m.name);
        if ran(Pass::Partition) && m.target.is_none() {
            errs.push(format!("{name}: no target after partitioning"));
        }
        let imc = m.target == Some(Target::Imc);
        let stage_fields = [
            (Pass::Tile, m.tiling.is_some()),
            (Pass::AllocateCores, m.cores.is_some()),
            (Pass::SchedulePlanes, m.planes.is_some()),
            (Pass::AssignAdc, m.adc.is_some()),
        ];
        for (pass, present) in stage_fields {
            if ran(pass) && imc && !present {
                errs.push(format!("{name}: IMC MVM without its `{pass}` result"));
            }
            if !imc && present {
                errs.push(format!("{name}: digital MVM with an IMC `{pass}` result"));
            }
        }
        if let Some(t) = &m.tiling {
            let (rows, cols) = (hw.rows as usize, hw.cols as usize);
            let rt = m.reduction.div_ceil(rows) as u32;
            let ct = (m.outputs * t.bits as usize).div_ceil(cols) as u32;
            if t.row_tiles != rt || t.col_tiles != ct {
                errs.push(format!("{name}: tiling {}x{} but the shape needs {rt}x{ct}", t.row_tiles, t.col_tiles));
            }
            if !(t.utilization > 0.0 && t.utilization <= 1.0) {
                errs.push(format!("{name}: utilization {} out of (0, 1]", t.utilization));
            }
            if let Some(c) = &m.cores {
                if c.cores.len() != (t.row_tiles * t.col_tiles) as usize {
                    errs.push(format!("{name}: {} core slots for {} tiles", c.cores.len(), t.row_tiles * t.col_tiles));
                }
                for &core in c.cores.iter().flatten() {
                    if core >= hw.cores {
                        errs.push(format!("{name}: core {core} does not exist"));
                    }
                    if !used_cores.insert(core) {
                        errs.push(format!("{name}: core {core} holds two tiles"));
                    }
                }
            }
        }
        if let (Some(p), Some(a)) = (&m.planes, &m.adc)
            && a.initial_gains.len() != p.planes as usize
        {
            errs.push(format!("{name}: {} initial gains for {} planes", a.initial_gains.len(), p.planes));
        }
    }
}

/// Fusion groups list exactly their members.
fn groups(step: &Step, errs: &mut Vec<String>) {
    for (gi, g) in step.groups.iter().enumerate() {
        for &n in &g.nodes {
            match step.nodes.get(n.index()) {
                Some(node) if node.group == Some(GroupId(gi as u32)) => {}
                Some(_) => errs.push(format!("g{gi} lists {n}, which is not marked as its member")),
                None => errs.push(format!("g{gi} lists {n}, which does not exist")),
            }
        }
    }
}
