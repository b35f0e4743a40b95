//! Pass `build`: the training-step graph of a network: forward, loss, backward (with the three
//! MVMs of every weighted layer), and the update. Formats are f32 placeholders here; the
//! `formats` pass assigns them.

use crate::program::{Layer, LayerOp, Network, TrainRun};
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

/// Builds the step of `run` on `net`: the forward pass, the backward pass in reverse layer
/// order, and the update.
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
            placement: None,
        },
        phase: Phase3::Forward,
    };
    let mut fw = forward(&mut b, net, run);
    b.phase = Phase3::Backward;
    let wgrads = backward(&mut b, net, &mut fw);
    b.phase = Phase3::Update;
    update(&mut b, &wgrads, &fw.mvm_layers);
    b.step
}

/// What the forward pass leaves for the backward pass: `outs[l]` is layer l's output value,
/// `ins[l]` its input values.
struct Forward {
    input: ValueId,
    outs: Vec<ValueId>,
    ins: Vec<Vec<ValueId>>,
    mvm_layers: Vec<Option<MvmLayer>>,
    dlogits: Option<ValueId>,
}

fn forward(b: &mut Builder, net: &Network, run: &TrainRun) -> Forward {
    let batch = run.batch;
    let input = b.value("input".into(), b_shape(batch, &net.input));
    let labels = b.value("labels".into(), vec![batch]);
    b.step.input = input;
    b.step.labels = labels;
    let n = net.layers.len();
    let mut fw = Forward {
        input,
        outs: Vec::with_capacity(n),
        ins: Vec::with_capacity(n),
        mvm_layers: (0..n).map(|_| None).collect(),
        dlogits: None,
    };
    for (li, layer) in net.layers.iter().enumerate() {
        let xs: Vec<ValueId> = layer.inputs.iter().map(|i| i.map_or(input, |l| fw.outs[l.0 as usize])).collect();
        let x = xs.first().copied().unwrap_or(input);
        let name = &layer.name;
        let y = match &layer.op {
            LayerOp::Dense { inputs, outputs, bias } => {
                let shape = MvmShape { reduction: *inputs, outputs: *outputs, bias: *bias, conv: None };
                forward_mvm_layer(b, run, layer, li, x, shape, &mut fw.mvm_layers)
            }
            LayerOp::Conv2d { in_channels, out_channels, kernel, stride, padding, bias } => {
                let (h, w) = (layer.in_shape[1], layer.in_shape[2]);
                let (ho, wo) = (layer.out_shape[1], layer.out_shape[2]);
                let conv = Some([*in_channels, h, w, *kernel, *stride, *padding, ho, wo]);
                let shape =
                    MvmShape { reduction: in_channels * kernel * kernel, outputs: *out_channels, bias: *bias, conv };
                forward_mvm_layer(b, run, layer, li, x, shape, &mut fw.mvm_layers)
            }
            LayerOp::SoftmaxCrossEntropy => {
                let loss = b.value("loss".into(), vec![1]);
                let d = b.value(format!("{name}.dlogits"), out_shape_of(batch, &layer.in_shape));
                b.node(Op::SoftmaxCrossEntropy, vec![x, labels], vec![loss, d], li);
                b.step.loss = loss;
                fw.dlogits = Some(d);
                loss
            }
            op => {
                let op = simple_op(b, op, name, li, &layer.in_shape);
                let y = b.value(format!("{name}.out"), b_shape(batch, &layer.out_shape));
                b.node(op, xs.clone(), vec![y], li);
                y
            }
        };
        fw.outs.push(y);
        fw.ins.push(xs);
    }
    fw
}

/// The MVM shape of a dense or conv layer.
struct MvmShape {
    reduction: usize,
    outputs: usize,
    bias: bool,
    /// Conv: `(in_channels, h, w, kernel, stride, padding, out_h, out_w)`.
    conv: Option<[usize; 8]>,
}

/// The forward pass of a dense or conv layer: (im2col,) quantized activations, the forward
/// MVM, bias, (channels-first). Records what its backward pass needs in `mvm_layers[li]`.
fn forward_mvm_layer(
    b: &mut Builder,
    run: &TrainRun,
    layer: &Layer,
    li: usize,
    x: ValueId,
    shape: MvmShape,
    mvm_layers: &mut [Option<MvmLayer>],
) -> ValueId {
    let (name, batch) = (&layer.name, run.batch);
    let MvmShape { reduction: red, outputs, bias, conv } = shape;
    let vectors = conv.map_or(batch, |c| batch * c[6] * c[7]);
    let weight = b.param(format!("{name}.w"), ParamKind::Weight, vec![outputs, red], li);
    let bias = bias.then(|| b.param(format!("{name}.b"), ParamKind::Bias, vec![outputs], li));
    // PACT's alpha is learned from the gradient arriving at the quantized input, which the
    // first layer does not compute (nothing flows into the data): there it stays at its
    // initial value.
    let needs_input_grad = layer.inputs.iter().any(Option::is_some);
    let pact = run
        .layers
        .iter()
        .any(|p| p.layer.0 as usize == li && matches!(p.activations, ActivationFormat::Int4Pact { .. }));
    let alpha = (pact && needs_input_grad && !run.reference)
        .then(|| b.param(format!("{name}.alpha"), ParamKind::PactAlpha, vec![1], li));
    let wq = b.value(format!("{name}.wq"), vec![outputs, red]);
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
    let fwd = b.mvm(format!("{name}.forward"), li, Mvm::Forward, outputs, red, vectors);
    let z = b.value(format!("{name}.z"), vec![vectors, outputs]);
    b.node(Op::Mvm(fwd), vec![wq, aq], vec![z], li);
    let mut y = z;
    if let Some(p) = bias {
        let zb = b.value(format!("{name}.zb"), vec![vectors, outputs]);
        b.node(Op::BiasAdd { param: p }, vec![y], vec![zb], li);
        y = zb;
    }
    if let Some(c) = conv {
        let m = b.value(format!("{name}.out"), b_shape(batch, &layer.out_shape));
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
        outputs,
        vectors,
        needs_input_grad,
    });
    y
}

/// Gradients arriving at each value during the backward pass (none flow into the data).
struct Arriving {
    input: ValueId,
    by_value: Vec<Vec<ValueId>>,
}

impl Arriving {
    fn push(&mut self, target: ValueId, g: ValueId) {
        if target != self.input {
            if self.by_value.len() <= target.index() {
                self.by_value.resize(target.index() + 1, Vec::new());
            }
            self.by_value[target.index()].push(g);
        }
    }

    fn take(&mut self, v: ValueId) -> Vec<ValueId> {
        self.by_value.get_mut(v.index()).map(std::mem::take).unwrap_or_default()
    }
}

/// The backward pass in reverse layer order; returns each weight's gradient value.
fn backward(b: &mut Builder, net: &Network, fw: &mut Forward) -> Vec<(ParamId, ValueId)> {
    let mut arriving = Arriving { input: fw.input, by_value: Vec::new() };
    let mut wgrads = Vec::new();
    for li in (0..net.layers.len()).rev() {
        let layer = &net.layers[li];
        let name = layer.name.as_str();
        let g_out = if matches!(layer.op, LayerOp::SoftmaxCrossEntropy) {
            fw.dlogits
        } else {
            let gs = arriving.take(fw.outs[li]);
            match gs.len() {
                0 => None, // unused output: nothing flows back
                1 => Some(gs[0]),
                _ => {
                    let shape = b.step.values[fw.outs[li].index()].shape.clone();
                    let sum = b.value(format!("{name}.grad"), shape);
                    b.node(Op::AccumulateGrad, gs, vec![sum], li);
                    Some(sum)
                }
            }
        };
        let Some(g_out) = g_out else { continue };
        if matches!(layer.op, LayerOp::SoftmaxCrossEntropy) {
            arriving.push(fw.ins[li][0], g_out);
        } else if let Some(m) = fw.mvm_layers[li].as_mut() {
            wgrads.push(backward_mvm_layer(b, name, li, m, g_out, fw.ins[li][0], &mut arriving));
        } else {
            backward_digital_layer(b, name, li, &fw.ins[li], g_out, &mut arriving);
        }
    }
    wgrads
}

/// The backward pass of a dense or conv layer: quantized errors, the weight-gradient MVM and,
/// when the layer's input needs a gradient, the backward MVM and PACT's straight-through
/// gradient. Returns the weight and its gradient.
fn backward_mvm_layer(
    b: &mut Builder,
    name: &str,
    li: usize,
    m: &mut MvmLayer,
    g_out: ValueId,
    x_src: ValueId,
    arriving: &mut Arriving,
) -> (ParamId, ValueId) {
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
    if m.needs_input_grad {
        let bwd = b.mvm(format!("{name}.backward"), li, Mvm::Backward, m.reduction, m.outputs, m.vectors);
        let gi = b.value(format!("{name}.grad_in"), vec![m.vectors, m.reduction]);
        b.node(Op::Mvm(bwd), vec![m.wq, d_bwd], vec![gi], li);
        m.bwd = Some(bwd);
        // The PACT quantizer of this layer's input: straight-through inside [0, alpha).
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
        arriving.push(x_src, ga);
    }
    (m.weight, dw)
}

/// The backward pass of a digital layer: the gradient of each of its inputs.
fn backward_digital_layer(
    b: &mut Builder,
    name: &str,
    li: usize,
    ins: &[ValueId],
    g_out: ValueId,
    arriving: &mut Arriving,
) {
    let fwd_op = b
        .step
        .nodes
        .iter()
        .find(|nd| nd.layer == Some(LayerIdx(li as u32)) && nd.phase == Phase3::Forward)
        .map(|nd| nd.op.clone());
    let Some(op) = fwd_op else { return };
    let gins: Vec<ValueId> = ins
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            let suffix = if ins.len() > 1 { k.to_string() } else { String::new() };
            b.value(format!("{name}.grad_in{suffix}"), b.step.values[x.index()].shape.clone())
        })
        .collect();
    let mut inputs = ins.to_vec();
    inputs.push(g_out);
    b.node(Op::Grad(Box::new(op)), inputs, gins.clone(), li);
    for (&x, &g) in ins.iter().zip(&gins) {
        arriving.push(x, g);
    }
}

/// The update: SGD on every master parameter, then re-quantize the weights and rewrite the
/// arrays holding W and its Wᵀ copy (dropped by `partition` for MVMs that end up digital).
fn update(b: &mut Builder, wgrads: &[(ParamId, ValueId)], mvm_layers: &[Option<MvmLayer>]) {
    for (pi, p) in b.step.params.clone().iter().enumerate() {
        let pid = ParamId(pi as u32);
        let li = p.layer.index();
        let grad: Vec<ValueId> = wgrads.iter().filter(|(q, _)| *q == pid).map(|(_, v)| *v).collect();
        b.node(Op::SgdUpdate { param: pid }, grad, vec![], li);
        if p.kind == ParamKind::Weight
            && let Some(m) = &mvm_layers[li]
        {
            b.node(Op::QuantizeWeights { param: m.weight, format: WeightFormat::F32 }, vec![], vec![m.wq], li);
            for mvm in std::iter::once(m.fwd).chain(m.bwd) {
                b.node(Op::WriteArrays { mvm }, vec![m.wq], vec![], li);
            }
        }
    }
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
