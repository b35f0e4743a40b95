//! The planner: each node of a fusion group to an inline [`Kernel`] or a host call, with every
//! slot it touches and every length checked against the IR's shapes.

use super::super::JitError;
use super::super::abi::{Elem, Slot, SlotKey};
use super::*;
use crate::config::{ActivationFormat, ErrorFormat, GradScaleMode, WeightFormat};
use crate::ir::conv_out_size as out_size;
use crate::ir::{GroupId, NodeId, Op, ParamId, ParamKind, Step, ValueId};
use std::collections::BTreeMap;

/// Plans group `g` of `step`.
pub fn plan_group(step: &Step, g: GroupId) -> Result<GroupPlan, JitError> {
    let group = step.groups.get(g.index()).ok_or_else(|| JitError::Plan(format!("no group {g}")))?;
    // The executor runs a group in place of its nodes: they must be one run of the step.
    if group.nodes.is_empty() || group.nodes.windows(2).any(|w| w[1].0 != w[0].0 + 1) {
        return Err(JitError::Plan(format!("{g} is not a non-empty run of consecutive nodes")));
    }
    let mut p = Planner { step, slots: Vec::new(), index: BTreeMap::new(), allocs: Vec::new(), hosts: 0 };
    let mut kernels = Vec::new();
    let mut pool_args = Vec::new();
    let mut gradscale_nodes = Vec::new();
    for &id in &group.nodes {
        // Every kernel below indexes its node's operands within the op's signature.
        let node = step.nodes.get(id.index()).ok_or_else(|| bad(id, "does not exist"))?;
        let arity = node.op.arity();
        if !arity.inputs.contains(&node.inputs.len()) || !arity.outputs.contains(&node.outputs.len()) {
            return Err(bad(id, "wrong number of operands for its op"));
        }
        let k = p.kernel(id)?;
        if let Kernel::MaxPool { arg, .. } = &k {
            pool_args.push((id, p.slots[*arg].len));
        }
        if let Kernel::Radix4 { state: Some(_), .. } = &k {
            gradscale_nodes.push(id);
        }
        kernels.push(k);
    }
    let mut inputs: Vec<(ValueId, usize)> = Vec::new();
    let mut written: Vec<ValueId> = Vec::new();
    for &id in &group.nodes {
        let node = &step.nodes[id.index()];
        for &v in &node.inputs {
            if !written.contains(&v) && !inputs.iter().any(|(w, _)| *w == v) {
                inputs.push((v, numel(&step.values[v.index()].shape)));
            }
        }
        written.extend(&node.outputs);
    }
    Ok(GroupPlan {
        inputs,
        group: g,
        name: group.name.clone(),
        nodes: group.nodes.clone(),
        slots: p.slots,
        kernels,
        allocs: p.allocs,
        pool_args,
        gradscale_nodes,
    })
}

struct Planner<'a> {
    step: &'a Step,
    slots: Vec<Slot>,
    index: BTreeMap<SlotKey, S>,
    allocs: Vec<Alloc>,
    hosts: usize,
}

/// Checks that two operand lengths of node `id` agree.
fn same_len(id: NodeId) -> impl Fn(usize, usize) -> Result<(), JitError> {
    move |a, b| if a == b { Ok(()) } else { Err(bad(id, "operand lengths differ")) }
}

fn bad(node: NodeId, what: impl std::fmt::Display) -> JitError {
    JitError::Plan(format!("{node}: {what}"))
}

impl<'a> Planner<'a> {
    fn slot(&mut self, key: SlotKey, elem: Elem, len: usize, written: bool) -> Result<S, JitError> {
        if let Some(&s) = self.index.get(&key) {
            let slot = &mut self.slots[s];
            if slot.elem != elem || slot.len != len {
                return Err(JitError::Plan(format!(
                    "{key:?} used as {elem:?} x {len} and {:?} x {}",
                    slot.elem, slot.len
                )));
            }
            slot.written |= written;
            return Ok(s);
        }
        self.slots.push(Slot { key, elem, len, written, after_host: None });
        self.index.insert(key, self.slots.len() - 1);
        Ok(self.slots.len() - 1)
    }

    fn shape(&self, v: ValueId) -> Result<&[usize], JitError> {
        self.step
            .values
            .get(v.index())
            .map(|x| x.shape.as_slice())
            .ok_or_else(|| JitError::Plan(format!("{v} does not exist")))
    }

    /// A value's data, read.
    fn read(&mut self, v: ValueId) -> Result<(S, usize), JitError> {
        let n = numel(self.shape(v)?);
        Ok((self.slot(SlotKey::Data(v), Elem::F32, n, false)?, n))
    }

    /// A value's data, written by an inline kernel (allocated by the executor).
    fn write(&mut self, v: ValueId, codes: Option<CodeAlloc>) -> Result<(S, usize), JitError> {
        let shape = self.shape(v)?.to_vec();
        let n = numel(&shape);
        if !self.allocs.iter().any(|a| a.value == v) {
            self.allocs.push(Alloc { value: v, shape, codes });
        }
        Ok((self.slot(SlotKey::Data(v), Elem::F32, n, true)?, n))
    }

    fn param(&mut self, p: ParamId, key: fn(ParamId) -> SlotKey, written: bool) -> Result<(S, usize), JitError> {
        let par = self.step.params.get(p.index()).ok_or_else(|| JitError::Plan(format!("no parameter {p}")))?;
        let n = numel(&par.shape);
        Ok((self.slot(key(p), Elem::F32, n, written)?, n))
    }

    fn scalar(&mut self, key: SlotKey, written: bool) -> Result<S, JitError> {
        self.slot(key, Elem::F32, 1, written)
    }

    /// `rows x cols` of a value as an MVM operand (first dimension by the rest).
    fn matrix(&self, v: ValueId) -> Result<(usize, usize), JitError> {
        let s = self.shape(v)?;
        let rows = s.first().copied().unwrap_or(1);
        Ok((rows, numel(s) / rows.max(1)))
    }

    fn alpha(&mut self, format_alpha: f64, learned: Option<ParamId>) -> Result<Alpha, JitError> {
        Ok(match learned {
            Some(p) => {
                let (s, n) = self.param(p, SlotKey::Param, false)?;
                if n != 1 {
                    return Err(JitError::Plan(format!("PACT alpha {p} has {n} elements")));
                }
                Alpha::Learned(s)
            }
            None => Alpha::Fixed(format_alpha as f32),
        })
    }

    fn window(&self, id: NodeId, x: ValueId, y: ValueId, k: usize, s: usize) -> Result<Window, JitError> {
        let (xs, ys) = (self.shape(x)?, self.shape(y)?);
        let (&[b, c, h, w], &[b2, c2, ho, wo]) = (xs, ys) else {
            return Err(bad(id, "pooling needs [B, C, H, W] values"));
        };
        if k == 0 || s == 0 || k > h || k > w {
            return Err(bad(id, "window larger than its input"));
        }
        if (b2, c2, ho, wo) != (b, c, out_size(h, k, s, 0), out_size(w, k, s, 0)) {
            return Err(bad(id, "pooling output shape does not match its input"));
        }
        // The last window ends inside the input: (ho-1)·s + k <= h.
        debug_assert!((ho - 1) * s + k <= h && (wo - 1) * s + k <= w);
        Ok(Window { planes: b * c, h, w, ho, wo, k, s })
    }

    /// The geometry of image `img` `[B, C, H, W]` and its columns `cols` `[B·Ho·Wo, C·k·k]`.
    fn conv(&self, id: NodeId, img: ValueId, cols: ValueId, k: usize, s: usize, p: usize) -> Result<Conv, JitError> {
        let &[b, c, h, w] = self.shape(img)? else {
            return Err(bad(id, "im2col needs a [B, C, H, W] image"));
        };
        if k == 0 || s == 0 || h + 2 * p < k || w + 2 * p < k {
            return Err(bad(id, "window larger than its padded input"));
        }
        let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
        if self.shape(cols)? != [b * ho * wo, c * k * k] {
            return Err(bad(id, "im2col shapes do not match"));
        }
        Ok(Conv { b, c, h, w, ho, wo, k, s, p })
    }

    fn host(&mut self, id: NodeId) -> Result<Kernel, JitError> {
        let host = self.hosts;
        self.hosts += 1;
        let node = &self.step.nodes[id.index()];
        // Values it writes that later inline kernels read exist only after it ran.
        for &v in &node.outputs {
            if let Some(&s) = self.index.get(&SlotKey::Data(v)) {
                return Err(bad(id, format!("slot {s} for {v} planned before its host producer")));
            }
            let n = numel(self.shape(v)?);
            let s = self.slot(SlotKey::Data(v), Elem::F32, n, false)?;
            self.slots[s].after_host = Some(host);
        }
        Ok(Kernel::Host { node: id, host })
    }

    fn kernel(&mut self, id: NodeId) -> Result<Kernel, JitError> {
        let node = self.step.nodes.get(id.index()).ok_or_else(|| bad(id, "does not exist"))?;
        let (ins, outs) = (&node.inputs, &node.outputs);
        let same = same_len(id);
        Ok(match &node.op {
            Op::Relu => {
                let (x, n) = self.read(ins[0])?;
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                Kernel::Relu { x, y, n }
            }
            Op::Pact { alpha } => {
                let (x, n) = self.read(ins[0])?;
                let alpha = self.alpha(0.0, Some(*alpha))?;
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                Kernel::Clamp { x, alpha, y, n }
            }
            Op::BiasAdd { param } => {
                let (z, n) = self.read(ins[0])?;
                let (rows, cols) = self.matrix(ins[0])?;
                let (b, nb) = self.param(*param, SlotKey::Param, false)?;
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                same(nb, cols)?;
                Kernel::BiasAdd { z, b, y, rows, cols }
            }
            Op::Reshape => {
                let (x, n) = self.read(ins[0])?;
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                Kernel::Copy { x, ys: vec![y], n }
            }
            Op::Add | Op::AccumulateGrad => {
                if ins.is_empty() || outs.len() != 1 {
                    return Err(bad(id, "wrong number of operands"));
                }
                let mut xs = Vec::new();
                let mut n0 = None;
                for &v in ins {
                    let (x, n) = self.read(v)?;
                    same(*n0.get_or_insert(n), n)?;
                    xs.push(x);
                }
                let n = n0.unwrap_or(0);
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                Kernel::Sum { xs, y, n }
            }
            Op::ToChannelsFirst { h, w } => {
                let (x, n) = self.read(ins[0])?;
                let (y, m) = self.write(outs[0], None)?;
                let (rows, c) = self.matrix(ins[0])?;
                let hw = h * w;
                same(n, m)?;
                if hw == 0 || rows % hw != 0 || self.shape(outs[0])? != [rows / hw, c, *h, *w] {
                    return Err(bad(id, "to_channels_first shapes do not match"));
                }
                Kernel::Transpose { x, y, b: rows / hw, c, hw, inverse: false }
            }
            Op::QuantizeActivations { format, alpha } => self.quantize_activations_kernel(id, format, alpha)?,
            Op::QuantizeErrors { format } => self.quantize_errors_kernel(id, format)?,
            Op::QuantizeWeights { param, format } => self.quantize_weights_kernel(id, param, format)?,
            Op::SgdUpdate { param } => self.sgd_kernel(id, param)?,
            Op::MaxPool { kernel, stride, padding: 0 } if kernel * kernel <= 64 => {
                let (x, _) = self.read(ins[0])?;
                let (y, m) = self.write(outs[0], None)?;
                let win = self.window(id, ins[0], outs[0], *kernel, *stride)?;
                let arg = self.slot(SlotKey::PoolArg(id), Elem::U64, m, true)?;
                Kernel::MaxPool { x, y, arg, win }
            }
            Op::AvgPool { kernel, stride, padding: 0 } if kernel * kernel <= 64 => {
                let (x, _) = self.read(ins[0])?;
                let (y, _) = self.write(outs[0], None)?;
                let win = self.window(id, ins[0], outs[0], *kernel, *stride)?;
                Kernel::AvgPool { x, y, win }
            }
            Op::Grad(inner) => self.grad_kernel(id, inner)?,
            Op::Im2col { kernel, stride, padding } if kernel * kernel <= 64 => {
                let conv = self.conv(id, ins[0], outs[0], *kernel, *stride, *padding)?;
                let (x, _) = self.read(ins[0])?;
                let (y, _) = self.write(outs[0], None)?;
                Kernel::Im2col { x, y, conv, adjoint: false }
            }
            Op::Col2im { kernel, stride, padding } if kernel * kernel <= 64 => {
                let conv = self.conv(id, outs[0], ins[0], *kernel, *stride, *padding)?;
                let (x, _) = self.read(ins[0])?;
                let (y, _) = self.write(outs[0], None)?;
                Kernel::Im2col { x, y, conv, adjoint: true }
            }
            Op::Im2col { .. }
            | Op::Col2im { .. }
            | Op::BatchNorm { .. }
            | Op::SoftmaxCrossEntropy
            | Op::WriteArrays { .. }
            | Op::MaxPool { .. }
            | Op::AvgPool { .. } => self.host(id)?,
            Op::Mvm(_) => return Err(bad(id, "an MVM inside a fusion group")),
        })
    }

    /// The operands of node `id` (checked against its op's arity in `plan_group`).
    fn operands(&self, id: NodeId) -> (&'a [ValueId], &'a [ValueId]) {
        let node = &self.step.nodes[id.index()];
        (&node.inputs, &node.outputs)
    }

    fn quantize_activations_kernel(
        &mut self,
        id: NodeId,
        format: &ActivationFormat,
        alpha: &Option<ParamId>,
    ) -> Result<Kernel, JitError> {
        let (ins, outs) = self.operands(id);
        let same = same_len(id);
        Ok({
            let (x, n) = self.read(ins[0])?;
            match format {
                ActivationFormat::Int4Pact { alpha: a0, .. } => {
                    let (rows, cols) = self.matrix(outs[0])?;
                    let alpha = self.alpha(*a0, *alpha)?;
                    let codes = CodeAlloc::Int { rows, cols, bits: 4, signed: false };
                    let (data, m) = self.write(outs[0], Some(codes))?;
                    same(n, m)?;
                    let codes = self.slot(SlotKey::Codes(outs[0]), Elem::I32, n, true)?;
                    let scale = self.scalar(SlotKey::Scale(outs[0]), true)?;
                    Kernel::Pact { node: id, x, alpha, data, codes, scale, n }
                }
                ActivationFormat::F32 => {
                    let (y, m) = self.write(outs[0], None)?;
                    same(n, m)?;
                    Kernel::Copy { x, ys: vec![y], n }
                }
                ActivationFormat::Int8 => self.host(id)?,
            }
        })
    }

    fn quantize_errors_kernel(&mut self, id: NodeId, format: &ErrorFormat) -> Result<Kernel, JitError> {
        let (ins, outs) = self.operands(id);
        let same = same_len(id);
        Ok({
            let (g, n) = self.read(ins[0])?;
            match format {
                ErrorFormat::Radix4(cfg) => {
                    let (rows, cols) = self.matrix(ins[0])?;
                    let wg_phase = if cfg.tpr { cfg.weight_grad } else { cfg.backward };
                    let mut outs4 = Vec::new();
                    for (k, phase) in [(0, cfg.backward), (1, wg_phase)] {
                        let v = outs[k];
                        let codes = CodeAlloc::Radix4 { rows, cols, levels: cfg.levels };
                        let (data, m) = self.write(v, Some(codes))?;
                        same(n, m)?;
                        let codes = self.slot(SlotKey::Codes(v), Elem::I8, n, true)?;
                        let scale = self.scalar(SlotKey::Scale(v), true)?;
                        outs4.push(R4Out { phase, data, codes, scale });
                    }
                    if outs[0] == outs[1] {
                        return Err(bad(id, "both error outputs are one value"));
                    }
                    if !(1..=16).contains(&cfg.levels) {
                        return Err(bad(id, "radix-4 levels outside 1..=16"));
                    }
                    let state = match cfg.gradscale {
                        GradScaleMode::Incremental => Some(self.scalar(SlotKey::GradScale(id), true)?),
                        _ => None,
                    };
                    Kernel::Radix4 {
                        node: id,
                        g,
                        n,
                        levels: cfg.levels,
                        mode: cfg.gradscale,
                        state,
                        outs: [outs4[0], outs4[1]],
                    }
                }
                ErrorFormat::F32 => {
                    let (y0, m0) = self.write(outs[0], None)?;
                    let (y1, m1) = self.write(outs[1], None)?;
                    same(n, m0)?;
                    same(n, m1)?;
                    Kernel::Copy { x: g, ys: vec![y0, y1], n }
                }
                ErrorFormat::Int8 => self.host(id)?,
            }
        })
    }

    fn quantize_weights_kernel(
        &mut self,
        id: NodeId,
        param: &ParamId,
        format: &WeightFormat,
    ) -> Result<Kernel, JitError> {
        let outs = self.operands(id).1;
        let same = same_len(id);
        Ok({
            let (w, n) = self.param(*param, SlotKey::Param, false)?;
            match format {
                WeightFormat::Int4Sawb { c1, c2 } => {
                    if n == 0 {
                        return Err(bad(id, "empty weight"));
                    }
                    let (rows, cols) = self.matrix(outs[0])?;
                    let codes = CodeAlloc::Int { rows, cols, bits: 3, signed: true };
                    let (data, m) = self.write(outs[0], Some(codes))?;
                    same(n, m)?;
                    let codes = self.slot(SlotKey::Codes(outs[0]), Elem::I32, n, true)?;
                    let scale = self.scalar(SlotKey::Scale(outs[0]), true)?;
                    let alpha = self.scalar(SlotKey::SawbAlpha(*param), true)?;
                    Kernel::Sawb { w, alpha, data, codes, scale, n, c1: *c1, c2: *c2 }
                }
                WeightFormat::F32 => {
                    let (y, m) = self.write(outs[0], None)?;
                    same(n, m)?;
                    Kernel::Copy { x: w, ys: vec![y], n }
                }
                WeightFormat::Int8 => self.host(id)?,
            }
        })
    }

    fn sgd_kernel(&mut self, id: NodeId, param: &ParamId) -> Result<Kernel, JitError> {
        let ins = self.operands(id).0;
        let same = same_len(id);
        Ok({
            let (w, n) = self.param(*param, SlotKey::Param, true)?;
            let (grad, zero_grad) = match ins.first() {
                Some(&v) => {
                    let (g, m) = self.read(v)?;
                    same(n, m)?;
                    (g, false)
                }
                None => (self.param(*param, SlotKey::Grad, true)?.0, true),
            };
            let (velocity, _) = self.param(*param, SlotKey::Velocity, true)?;
            let lr = self.scalar(SlotKey::LearningRate, false)?;
            let kind = match self.step.params[param.index()].kind {
                ParamKind::Weight => SgdKind::Weight { sawb_alpha: self.scalar(SlotKey::SawbAlpha(*param), false)? },
                ParamKind::PactAlpha => SgdKind::PactAlpha { decay: self.step.pact_decay(*param) as f32 },
                _ => SgdKind::Plain,
            };
            Kernel::Sgd { node: id, param: w, grad, zero_grad, velocity, lr, kind, n }
        })
    }

    fn grad_kernel(&mut self, id: NodeId, inner: &Op) -> Result<Kernel, JitError> {
        let node = &self.step.nodes[id.index()];
        let (ins, outs) = (node.inputs.clone(), node.outputs.clone());
        let same = same_len(id);
        Ok(match inner {
            Op::Relu => {
                let (x, n) = self.read(ins[0])?;
                let (g, m) = self.read(ins[1])?;
                let (y, k) = self.write(outs[0], None)?;
                same(n, m)?;
                same(n, k)?;
                Kernel::ReluGrad { x, g, y, n }
            }
            Op::Pact { alpha } => self.pact_grad(id, 0.0, Some(*alpha))?,
            Op::QuantizeActivations { format: ActivationFormat::Int4Pact { alpha: a0, .. }, alpha } => {
                self.pact_grad(id, *a0, *alpha)?
            }
            Op::QuantizeActivations { .. } | Op::Reshape => {
                let (_, n) = self.read(ins[0])?;
                let (g, m) = self.read(ins[1])?;
                let (y, k) = self.write(outs[0], None)?;
                same(n, m)?;
                same(n, k)?;
                Kernel::Copy { x: g, ys: vec![y], n }
            }
            Op::BiasAdd { param } => {
                let (g, _) = self.read(ins[0])?;
                let (rows, cols) = self.matrix(ins[0])?;
                let (grad, nb) = self.param(*param, SlotKey::Grad, true)?;
                same(nb, cols)?;
                Kernel::BiasGrad { g, grad, rows, cols }
            }
            Op::ToChannelsFirst { h, w } => {
                let (x, n) = self.read(ins[0])?;
                let (y, m) = self.write(outs[0], None)?;
                same(n, m)?;
                let &[b, c, hh, ww] = self.shape(ins[0])? else {
                    return Err(bad(id, "to_channels_first gradient needs a [B, C, H, W] value"));
                };
                if (hh, ww) != (*h, *w) || self.shape(outs[0])? != [b * h * w, c] {
                    return Err(bad(id, "to_channels_first gradient shapes do not match"));
                }
                Kernel::Transpose { x, y, b, c, hw: h * w, inverse: true }
            }
            Op::Add => {
                // Inputs: the forward operands (unused), then the incoming gradient.
                let (Some(&g), false) = (ins.last(), outs.is_empty()) else {
                    return Err(bad(id, "wrong number of operands"));
                };
                let (x, n) = self.read(g)?;
                let mut ys = Vec::new();
                for &v in &outs {
                    let (y, m) = self.write(v, None)?;
                    same(n, m)?;
                    ys.push(y);
                }
                Kernel::Copy { x, ys, n }
            }
            Op::MaxPool { kernel, stride, padding: 0 } if kernel * kernel <= 64 => {
                let fwd = self.step.forward_of(id).ok_or_else(|| bad(id, "max-pool gradient without its forward"))?;
                let (g, m) = self.read(ins[1])?;
                let (y, n) = self.write(outs[0], None)?;
                same(n, numel(self.shape(ins[0])?))?;
                let _ = self.window(id, ins[0], self.step.nodes[fwd.index()].outputs[0], *kernel, *stride)?;
                // The argmax is read, written by the forward node (in an earlier group).
                let arg = self.slot(SlotKey::PoolArg(fwd), Elem::U64, m, false)?;
                Kernel::MaxPoolGrad { node: id, g, arg, y, n, m }
            }
            Op::AvgPool { kernel, stride, padding: 0 } if kernel * kernel <= 64 => {
                let (g, _) = self.read(ins[1])?;
                let (y, _) = self.write(outs[0], None)?;
                let fwd = self.step.forward_of(id).ok_or_else(|| bad(id, "avg-pool gradient without its forward"))?;
                let win = self.window(id, ins[0], self.step.nodes[fwd.index()].outputs[0], *kernel, *stride)?;
                if numel(self.shape(ins[1])?) != win.planes * win.ho * win.wo {
                    return Err(bad(id, "avg-pool gradient shape does not match"));
                }
                Kernel::AvgPoolGrad { g, y, win }
            }
            _ => self.host(id)?,
        })
    }

    fn pact_grad(&mut self, id: NodeId, a0: f64, learned: Option<ParamId>) -> Result<Kernel, JitError> {
        let node = &self.step.nodes[id.index()];
        let (ins, outs) = (node.inputs.clone(), node.outputs.clone());
        if ins.len() != 2 || outs.len() != 1 {
            return Err(bad(id, "wrong number of operands"));
        }
        let (x, n) = self.read(ins[0])?;
        let (g, m) = self.read(ins[1])?;
        let (y, k) = self.write(outs[0], None)?;
        if n != m || n != k {
            return Err(bad(id, "operand lengths differ"));
        }
        let alpha = self.alpha(a0, learned)?;
        let galpha = match learned {
            Some(p) => Some(self.param(p, SlotKey::Grad, true)?.0),
            None => None,
        };
        Ok(Kernel::PactGrad { x, g, alpha, galpha, y, n })
    }
}
