//! Pass `build`: the training-step graph of a network: forward, loss, backward (with the three
//! MVMs of every weighted layer), and the update. Formats are f32 placeholders here; the
//! `formats` pass assigns them.

use crate::program::{LayerId, LayerOp, Network, TrainRun};
use imcc_ir::config::{ActivationFormat, ErrorFormat, Mvm, WeightFormat};
use imcc_ir::*;

struct Builder {
    step: Step,
    phase: Phase3,
}

impl Builder {
    fn value(&mut self, name: String, shape: Vec<usize>) -> ValueId {
        self.step.values.push(Value { name, shape, format: Format::F32 });
        ValueId(self.step.values.len() as u32 - 1)
    }

    fn param(&mut self, name: String, kind: ParamKind, shape: Vec<usize>, layer: usize) -> ParamId {
        self.step.params.push(Param { name, kind, shape, layer: LayerIdx(layer as u32) });
        ParamId(self.step.params.len() as u32 - 1)
    }

    fn node(&mut self, op: Op, inputs: Vec<ValueId>, outputs: Vec<ValueId>, layer: usize) {
        let layer = Some(LayerIdx(layer as u32));
        // A gradient differentiates the latest forward node of its layer with the same op.
        let forward = match &op {
            Op::Grad(inner) => self
                .step
                .nodes
                .iter()
                .rposition(|f| {
                    f.phase == Phase3::Forward
                        && f.layer == layer
                        && std::mem::discriminant(&f.op) == std::mem::discriminant(inner.as_ref())
                })
                .map(|i| NodeId(i as u32)),
            _ => None,
        };
        self.step.nodes.push(Node { op, inputs, outputs, layer, phase: self.phase, group: None, forward });
    }

    fn mvm(
        &mut self,
        name: String,
        layer: usize,
        kind: Mvm,
        outputs: usize,
        reduction: usize,
        vectors: usize,
    ) -> MvmId {
        self.step.mvms.push(MvmOp {
            name,
            layer: LayerIdx(layer as u32),
            kind,
            outputs,
            reduction,
            vectors,
            stored: Format::F32,
            streamed: Format::F32,
            target: None,
            tiling: None,
            cores: None,
            planes: None,
            adc: None,
        });
        MvmId(self.step.mvms.len() as u32 - 1)
    }
}

/// What the forward pass of one weighted layer left for its backward pass and update.
struct MvmLayer {
    weight: ParamId,
    bias: Option<ParamId>,
    alpha: Option<ParamId>,
    wq: ValueId,
    aq: ValueId,
    fwd: MvmId,
    bwd: Option<MvmId>,
    /// Conv: `(in_channels, h, w, kernel, stride, padding, out_h, out_w)`.
    conv: Option<[usize; 8]>,
    reduction: usize,
    outputs: usize,
    vectors: usize,
    needs_input_grad: bool,
}

fn b_shape(batch: usize, s: &[usize]) -> Vec<usize> {
    std::iter::once(batch).chain(s.iter().copied()).collect()
}

/// Builds the step of `run` on `net`.
pub fn build(net: &Network, run: &TrainRun) -> Step {
    let batch = run.batch;
    let mut b = Builder {
        step: Step {
            name: run.name.clone(),
            network: net.name.clone(),
            batch,
            hardware: run.hardware.clone(),
            layers: net.layers.iter().map(|l| LayerInfo { name: l.name.clone(), op: op_name(&l.op).into() }).collect(),
            values: Vec::new(),
            params: Vec::new(),
            nodes: Vec::new(),
            mvms: Vec::new(),
            groups: Vec::new(),
            input: ValueId(0),
            labels: ValueId(1),
            loss: ValueId(0),
            state: Vec::new(),
            passes: Vec::new(),
        },
        phase: Phase3::Forward,
    };
    let input = b.value("input".into(), b_shape(batch, &net.input));
    let labels = b.value("labels".into(), vec![batch]);
    b.step.input = input;
    b.step.labels = labels;

    // Forward. `outs[l]` is layer l's output value; `ins[l]` its input values.
    let n = net.layers.len();
    let mut outs: Vec<ValueId> = Vec::with_capacity(n);
    let mut ins: Vec<Vec<ValueId>> = Vec::with_capacity(n);
    let mut mvm_layers: Vec<Option<MvmLayer>> = (0..n).map(|_| None).collect();
    let mut dlogits = None;
    let src = |outs: &[ValueId], id: &Option<LayerId>| id.map_or(input, |l| outs[l.0 as usize]);
    for (li, layer) in net.layers.iter().enumerate() {
        let xs: Vec<ValueId> = layer.inputs.iter().map(|i| src(&outs, i)).collect();
        let x = xs.first().copied().unwrap_or(input);
        let name = &layer.name;
        let out_shape = b_shape(batch, &layer.out_shape);
        let y = match &layer.op {
            LayerOp::Dense { .. } | LayerOp::Conv2d { .. } => {
                let (red, outputs, bias, conv) = match &layer.op {
                    LayerOp::Conv2d { in_channels, out_channels, kernel, stride, padding, bias } => {
                        let (h, w) = (layer.in_shape[1], layer.in_shape[2]);
                        let (ho, wo) = (layer.out_shape[1], layer.out_shape[2]);
                        let conv = [*in_channels, h, w, *kernel, *stride, *padding, ho, wo];
                        (in_channels * kernel * kernel, out_channels, bias, Some(conv))
                    }
                    LayerOp::Dense { inputs, outputs, bias } => (*inputs, outputs, bias, None),
                    _ => unreachable!("matched above"),
                };
                let vectors = conv.map_or(batch, |c| batch * c[6] * c[7]);
                let weight = b.param(format!("{name}.w"), ParamKind::Weight, vec![*outputs, red], li);
                let bias = bias.then(|| b.param(format!("{name}.b"), ParamKind::Bias, vec![*outputs], li));
                // PACT's alpha is learned from the gradient arriving at the quantized input, which
                // the first layer does not compute (nothing flows into the data): there it stays
                // at its initial value.
                let needs_input_grad = layer.inputs.iter().any(Option::is_some);
                let pact = run
                    .layers
                    .iter()
                    .any(|p| p.layer.0 as usize == li && matches!(p.activations, ActivationFormat::Int4Pact { .. }));
                let alpha = (pact && needs_input_grad && !run.reference)
                    .then(|| b.param(format!("{name}.alpha"), ParamKind::PactAlpha, vec![1], li));
                let wq = b.value(format!("{name}.wq"), vec![*outputs, red]);
                b.step.state.push(wq);
                let cols = match conv {
                    Some(c) => {
                        let v = b.value(format!("{name}.cols"), vec![vectors, red]);
                        b.node(Op::Im2col { kernel: c[3], stride: c[4], padding: c[5] }, vec![x], vec![v], li);
                        v
                    }
                    None => x,
                };
                let aq = b.value(format!("{name}.aq"), vec![vectors, red]);
                b.node(Op::QuantizeActivations { format: ActivationFormat::F32, alpha }, vec![cols], vec![aq], li);
                let fwd = b.mvm(format!("{name}.forward"), li, Mvm::Forward, *outputs, red, vectors);
                let z = b.value(format!("{name}.z"), vec![vectors, *outputs]);
                b.node(Op::Mvm(fwd), vec![wq, aq], vec![z], li);
                let mut y = z;
                if let Some(p) = bias {
                    let zb = b.value(format!("{name}.zb"), vec![vectors, *outputs]);
                    b.node(Op::BiasAdd { param: p }, vec![y], vec![zb], li);
                    y = zb;
                }
                if let Some(c) = conv {
                    let m = b.value(format!("{name}.out"), out_shape.clone());
                    b.node(Op::ToChannelsFirst { h: c[6], w: c[7] }, vec![y], vec![m], li);
                    y = m;
                }
                mvm_layers[li] = Some(MvmLayer {
                    weight,
                    bias,
                    alpha,
                    wq,
                    aq,
                    fwd,
                    bwd: None,
                    conv,
                    reduction: red,
                    outputs: *outputs,
                    vectors,
                    needs_input_grad,
                });
                y
            }
            LayerOp::SoftmaxCrossEntropy => {
                let loss = b.value("loss".into(), vec![1]);
                let d = b.value(format!("{name}.dlogits"), out_shape_of(batch, &layer.in_shape));
                b.node(Op::SoftmaxCrossEntropy, vec![x, labels], vec![loss, d], li);
                b.step.loss = loss;
                dlogits = Some(d);
                loss
            }
            op => {
                let op = simple_op(&mut b, op, name, li, &layer.in_shape);
                let y = b.value(format!("{name}.out"), out_shape.clone());
                b.node(op, xs.clone(), vec![y], li);
                y
            }
        };
        outs.push(y);
        ins.push(xs);
    }

    // Backward, in reverse layer order. `grads[v]` collects gradients arriving at value v.
    b.phase = Phase3::Backward;
    let mut grads: Vec<Vec<ValueId>> = vec![Vec::new(); b.step.values.len()];
    let mut wgrads: Vec<(ParamId, ValueId)> = Vec::new();
    for li in (0..n).rev() {
        let layer = &net.layers[li];
        let name = layer.name.clone();
        let g_out = if matches!(layer.op, LayerOp::SoftmaxCrossEntropy) {
            dlogits
        } else {
            let arriving = std::mem::take(&mut grads[outs[li].index()]);
            match arriving.len() {
                0 => None, // unused output: nothing flows back
                1 => Some(arriving[0]),
                _ => {
                    let shape = b.step.values[outs[li].index()].shape.clone();
                    let sum = b.value(format!("{name}.grad"), shape);
                    b.node(Op::AccumulateGrad, arriving, vec![sum], li);
                    Some(sum)
                }
            }
        };
        let Some(g_out) = g_out else { continue };
        let push_grad = |b: &mut Builder, grads: &mut Vec<Vec<ValueId>>, target: ValueId, g: ValueId| {
            if target != input {
                if grads.len() < b.step.values.len() {
                    grads.resize(b.step.values.len(), Vec::new());
                }
                grads[target.index()].push(g);
            }
        };
        if matches!(layer.op, LayerOp::SoftmaxCrossEntropy) {
            push_grad(&mut b, &mut grads, ins[li][0], g_out);
            continue;
        }
        if let Some(m) = mvm_layers[li].take() {
            let mut g = g_out;
            if let Some(c) = m.conv {
                let rows = b.value(format!("{name}.grad_rows"), vec![m.vectors, m.outputs]);
                b.node(Op::Grad(Box::new(Op::ToChannelsFirst { h: c[6], w: c[7] })), vec![g], vec![rows], li);
                g = rows;
            }
            if let Some(p) = m.bias {
                b.node(Op::Grad(Box::new(Op::BiasAdd { param: p })), vec![g], vec![], li);
            }
            let d_bwd = b.value(format!("{name}.delta.bwd"), vec![m.vectors, m.outputs]);
            let d_wg = b.value(format!("{name}.delta.wgrad"), vec![m.vectors, m.outputs]);
            b.node(Op::QuantizeErrors { format: ErrorFormat::F32 }, vec![g], vec![d_bwd, d_wg], li);
            let wg = b.mvm(format!("{name}.weight_grad"), li, Mvm::WeightGrad, m.reduction, m.vectors, m.outputs);
            b.node(Op::WriteArrays { mvm: wg }, vec![m.aq], vec![], li);
            let dw = b.value(format!("{name}.dw"), vec![m.outputs, m.reduction]);
            b.node(Op::Mvm(wg), vec![m.aq, d_wg], vec![dw], li);
            wgrads.push((m.weight, dw));
            let mut m = m;
            if m.needs_input_grad {
                let bwd = b.mvm(format!("{name}.backward"), li, Mvm::Backward, m.reduction, m.outputs, m.vectors);
                let gi = b.value(format!("{name}.grad_in"), vec![m.vectors, m.reduction]);
                b.node(Op::Mvm(bwd), vec![m.wq, d_bwd], vec![gi], li);
                m.bwd = Some(bwd);
                // The PACT quantizer of this layer's input: straight-through inside [0, alpha).
                let x_src = ins[li][0];
                let gq = match m.conv {
                    Some(c) => {
                        let img = b.value(format!("{name}.grad_in_map"), b.step.values[x_src.index()].shape.clone());
                        b.node(Op::Col2im { kernel: c[3], stride: c[4], padding: c[5] }, vec![gi], vec![img], li);
                        img
                    }
                    None => gi,
                };
                let ga = b.value(format!("{name}.grad_x"), b.step.values[x_src.index()].shape.clone());
                b.node(
                    Op::Grad(Box::new(Op::QuantizeActivations { format: ActivationFormat::F32, alpha: m.alpha })),
                    vec![x_src, gq],
                    vec![ga],
                    li,
                );
                push_grad(&mut b, &mut grads, x_src, ga);
            }
            mvm_layers[li] = Some(m);
            continue;
        }
        // A digital layer: the gradient of each input.
        let fwd_op = b
            .step
            .nodes
            .iter()
            .find(|nd| nd.layer == Some(LayerIdx(li as u32)) && nd.phase == Phase3::Forward)
            .map(|nd| nd.op.clone());
        let Some(op) = fwd_op else { continue };
        let mut gins = Vec::new();
        for (k, &x) in ins[li].iter().enumerate() {
            let gv = b.value(
                format!("{name}.grad_in{}", if ins[li].len() > 1 { k.to_string() } else { String::new() }),
                b.step.values[x.index()].shape.clone(),
            );
            gins.push(gv);
        }
        let mut inputs = ins[li].clone();
        inputs.push(g_out);
        b.node(Op::Grad(Box::new(op)), inputs, gins.clone(), li);
        for (k, &x) in ins[li].iter().enumerate() {
            push_grad(&mut b, &mut grads, x, gins[k]);
        }
    }

    // Update: SGD on every master parameter, then re-quantize weights and rewrite arrays.
    b.phase = Phase3::Update;
    for (pi, p) in b.step.params.clone().iter().enumerate() {
        let pid = ParamId(pi as u32);
        let li = p.layer.index();
        let grad: Vec<ValueId> = wgrads.iter().filter(|(q, _)| *q == pid).map(|(_, v)| *v).collect();
        b.node(Op::SgdUpdate { param: pid }, grad, vec![], li);
        if p.kind == ParamKind::Weight
            && let Some(m) = &mvm_layers[li]
        {
            b.node(Op::QuantizeWeights { param: m.weight, format: WeightFormat::F32 }, vec![], vec![m.wq], li);
            // Rewrite the arrays holding W and its Wᵀ copy (dropped by `partition` for MVMs
            // that end up digital).
            for mvm in std::iter::once(m.fwd).chain(m.bwd) {
                b.node(Op::WriteArrays { mvm }, vec![m.wq], vec![], li);
            }
        }
    }
    b.step
}

fn out_shape_of(batch: usize, s: &[usize]) -> Vec<usize> {
    b_shape(batch, s)
}

fn simple_op(b: &mut Builder, op: &LayerOp, name: &str, li: usize, in_shape: &[usize]) -> Op {
    match op {
        LayerOp::Relu => Op::Relu,
        LayerOp::Pact { .. } => Op::Pact { alpha: b.param(format!("{name}.alpha"), ParamKind::PactAlpha, vec![1], li) },
        LayerOp::MaxPool { kernel, stride, padding } => {
            Op::MaxPool { kernel: *kernel, stride: *stride, padding: *padding }
        }
        LayerOp::AvgPool { kernel, stride, padding } => {
            Op::AvgPool { kernel: *kernel, stride: *stride, padding: *padding }
        }
        LayerOp::Flatten => Op::Reshape,
        LayerOp::BatchNorm { momentum, eps } => {
            let c = in_shape.first().copied().unwrap_or(1);
            let gamma = b.param(format!("{name}.gamma"), ParamKind::BnGamma, vec![c], li);
            let beta = b.param(format!("{name}.beta"), ParamKind::BnBeta, vec![c], li);
            Op::BatchNorm { gamma, beta, momentum: *momentum, eps: *eps }
        }
        LayerOp::Add => Op::Add,
        LayerOp::Dense { .. } | LayerOp::Conv2d { .. } | LayerOp::SoftmaxCrossEntropy => {
            unreachable!("handled by the caller")
        }
    }
}

/// The language's name of a layer operation.
pub fn op_name(op: &LayerOp) -> &'static str {
    match op {
        LayerOp::Dense { .. } => "dense",
        LayerOp::Conv2d { .. } => "conv2d",
        LayerOp::MaxPool { .. } => "maxpool",
        LayerOp::AvgPool { .. } => "avgpool",
        LayerOp::Flatten => "flatten",
        LayerOp::Relu => "relu",
        LayerOp::Pact { .. } => "pact",
        LayerOp::BatchNorm { .. } => "batchnorm",
        LayerOp::Add => "add",
        LayerOp::SoftmaxCrossEntropy => "softmax_cross_entropy",
    }
}
