//! The executor: runs a lowered training step ([`crate::ir::Step`]) on real data. IMC MVMs go
//! through the tile simulator; digital MVMs are computed exactly on the codes (f64 GEMM, exact
//! for these formats) or in f32 for unquantized operands; everything else is digital f32.
//!
//! Because a digital MVM over quantized operands computes the exact product and an IMC MVM
//! with zero noise and an ADC that neither rounds nor clips does too, and both then apply the
//! same scales in the same order, such a full-IMC run is bit-identical to the all-digital run
//! of the same formats (a test checks it).

mod jit;
pub(crate) mod ops;
pub mod policy;
mod state;
pub mod tensor;

use crate::config::{ActivationFormat, AdcZero, ErrorFormat, GradScaleMode, Mvm, Phase, Target, WeightFormat};
pub use crate::energy::MvmCounts;
use crate::formats::{int, radix4};
use crate::ir::{MvmId, Op, ParamKind, Phase3, Step};
use crate::sim::{Events, Gains, InputBatch, PlaneStats, Programmed, SimError, StoredMatrix, Tile};
pub use jit::{GroupMode, JitStats};
use ndarray::{Array1, Array2, ArrayD, Axis, Ix2, Ix4, IxDyn};
use policy::Running;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
pub use state::TrainState;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use tensor::{Codes, Quant, Tensor};

/// Why a step could not run.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecError {
    /// The simulator rejected an operand or parameter.
    Sim(SimError),
    /// A loss or gradient became NaN or infinite.
    NonFinite {
        /// What (the loss, or a parameter's gradient).
        what: String,
        /// The training step.
        step: u64,
    },
    /// The data does not fit the network, or the step is malformed.
    Invalid(String),
    /// The step could not be compiled.
    Jit(crate::jit::JitError),
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Sim(e) => write!(f, "{e}"),
            ExecError::NonFinite { what, step } => write!(f, "non-finite value in {what} at step {step}"),
            ExecError::Invalid(m) => write!(f, "{m}"),
            ExecError::Jit(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExecError {}

impl From<SimError> for ExecError {
    fn from(e: SimError) -> Self {
        ExecError::Sim(e)
    }
}

/// Optimizer settings (the learning rate is given per step, for schedules).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay (weights only).
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Seed of initialization and noise.
    pub seed: u64,
    /// Round MVM outputs to FP16 (the quant policy's `accumulate = fp16`).
    pub accumulate_fp16: bool,
}

/// Runs a step.
pub struct Executor {
    step: Step,
    hyper: Hyper,
    tile: Option<Tile>,
    params: Vec<ArrayD<f32>>,
    grads: Vec<ArrayD<f32>>,
    velocity: Vec<ArrayD<f32>>,
    sawb_alpha: Vec<f32>,
    vals: Vec<Option<Tensor>>,
    programmed: Vec<Option<Programmed>>,
    adc: Vec<Vec<Running>>,
    gradscale: BTreeMap<usize, f32>,
    bn_running: BTreeMap<usize, (Array1<f32>, Array1<f32>)>,
    bn_cache: BTreeMap<usize, ops::BnCache>,
    pool_arg: BTreeMap<usize, Vec<usize>>,
    /// Counts per MVM, since construction or the last [`Executor::take_counts`].
    counts: Vec<MvmCounts>,
    steps: u64,
    labels: Vec<u8>,
    /// Compiled fusion groups, when the JIT is on.
    jit: Option<Arc<crate::jit::JitStep>>,
    jit_stats: JitStats,
    /// Buffers of the last step's values, reused by compiled groups.
    spare: Vec<Option<Tensor>>,
    /// Keep every value of the last step for inspection ([`Executor::value`]).
    keep: bool,
    /// How groups run when the JIT is on.
    group_mode: GroupMode,
    /// The test batch being evaluated, while [`Executor::evaluate`] runs: it picks the noise
    /// streams, and stops the ADC statistics from learning from test data.
    eval_batch: Option<u64>,
    /// The gains each IMC MVM's planes used in the last training step (an observation, not
    /// state: it is not checkpointed).
    last_gains: Vec<Vec<f64>>,
}

/// Seeds evaluation noise apart from every training step's (`mix` of this and the step count).
const EVAL_NOISE_DOMAIN: u64 = 0xE7A1_5EED_0000_0000;

fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn nonfinite(a: &ArrayD<f32>) -> bool {
    a.iter().any(|v| !v.is_finite())
}

impl Executor {
    /// Prepares `step`: initializes parameters from the seed (He-uniform weights, zero biases,
    /// PACT alphas at their initial value), quantizes the weights and programs the arrays.
    ///
    /// The step is verified first ([`crate::ir::verify::verify`]): everything the executor
    /// indexes (values, parameters, MVMs, each op's inputs and outputs) is then in bounds.
    pub fn new(step: Step, hyper: Hyper) -> Result<Executor, ExecError> {
        crate::ir::verify::verify(&step)
            .map_err(|errs| ExecError::Invalid(format!("the step fails the IR verifier: {}", errs.join("; "))))?;
        let needs_tile = step.mvms.iter().any(|m| m.target == Some(Target::Imc));
        let tile = if needs_tile { Some(Tile::new(&step.hardware)?) } else { None };
        let mut params = Vec::new();
        for (i, p) in step.params.iter().enumerate() {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(hyper.seed, 0x1A17 + i as u64));
            let a = match p.kind {
                ParamKind::Weight => {
                    let fan_in = p.shape.get(1).copied().unwrap_or(1).max(1) as f32;
                    let bound = (6.0 / fan_in).sqrt();
                    ArrayD::from_shape_fn(IxDyn(&p.shape), |_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
                }
                ParamKind::Bias | ParamKind::BnBeta => ArrayD::zeros(IxDyn(&p.shape)),
                ParamKind::BnGamma => ArrayD::ones(IxDyn(&p.shape)),
                ParamKind::PactAlpha => ArrayD::from_elem(IxDyn(&p.shape), pact_alpha0(&step, i) as f32),
            };
            params.push(a);
        }
        let n_params = params.len();
        let mut ex = Executor {
            grads: params.iter().map(|p| ArrayD::zeros(p.raw_dim())).collect(),
            velocity: params.iter().map(|p| ArrayD::zeros(p.raw_dim())).collect(),
            params,
            sawb_alpha: vec![0.0; n_params],
            vals: vec![None; step.values.len()],
            programmed: vec![None; step.mvms.len()],
            adc: step
                .mvms
                .iter()
                .map(|m| vec![Running::default(); m.planes.as_ref().map_or(0, |p| p.planes as usize)])
                .collect(),
            gradscale: BTreeMap::new(),
            bn_running: BTreeMap::new(),
            bn_cache: BTreeMap::new(),
            pool_arg: BTreeMap::new(),
            counts: vec![MvmCounts::default(); step.mvms.len()],
            steps: 0,
            labels: Vec::new(),
            jit: None,
            jit_stats: JitStats::default(),
            spare: vec![None; step.values.len()],
            keep: false,
            group_mode: GroupMode::Jit,
            eval_batch: None,
            last_gains: vec![Vec::new(); step.mvms.len()],
            tile,
            hyper,
            step,
        };
        ex.prime()?;
        Ok(ex)
    }

    /// The step being run.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// Compiles the step's fusion groups with the JIT (once) and runs them as native code from
    /// now on. Results are bit-identical to the reference executor's.
    pub fn enable_jit(&mut self) -> Result<(), ExecError> {
        if self.jit.is_none() {
            let consts = crate::jit::Consts::from(&self.hyper);
            let compiled = crate::jit::compile(&self.step, &consts, jit::HOST).map_err(ExecError::Jit)?;
            self.jit = Some(Arc::new(compiled));
        }
        Ok(())
    }

    /// With the JIT on, runs groups as the hand-written Rust kernels on the same buffers instead
    /// of the generated code (the benchmark baseline; results are identical).
    pub fn use_hand_written_kernels(&mut self, on: bool) {
        self.group_mode = if on { GroupMode::HandWritten } else { GroupMode::Jit };
    }

    /// Runs every node on the reference executor from now on.
    pub fn disable_jit(&mut self) {
        self.jit = None;
        self.spare.iter_mut().for_each(|s| *s = None);
    }

    /// The compiled step, when the JIT is on.
    pub fn jit(&self) -> Option<&crate::jit::JitStep> {
        self.jit.as_deref()
    }

    /// How often compiled groups ran, and how often they fell back.
    pub fn jit_stats(&self) -> JitStats {
        self.jit_stats
    }

    /// Keeps every value of the last step (or evaluation) until the next one, for
    /// [`Executor::value`] (debugging, and the JIT's differential tests).
    pub fn keep_values(&mut self, on: bool) {
        self.keep = on;
    }

    /// Value `v` of the last step, when kept ([`Executor::keep_values`]) or a state value.
    pub fn value(&self, v: crate::ir::ValueId) -> Option<&Tensor> {
        self.vals.get(v.index())?.as_ref()
    }

    /// Training steps run so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Quantizes the weights and writes the arrays, as the update does after every step.
    fn prime(&mut self) -> Result<(), ExecError> {
        for i in 0..self.step.nodes.len() {
            let n = &self.step.nodes[i];
            if n.phase == Phase3::Update && matches!(n.op, Op::QuantizeWeights { .. } | Op::WriteArrays { .. }) {
                self.run_node(i, true, 0.0)?;
            }
        }
        Ok(())
    }

    /// One training step on a mini-batch (`x`: `[B, ...]` matching the network input); returns
    /// the loss.
    pub fn train_batch(&mut self, x: ArrayD<f32>, labels: &[u8], lr: f32) -> Result<f32, ExecError> {
        self.load(x, labels)?;
        self.run_nodes(true, lr)?;
        let loss = self.loss()?;
        self.steps += 1;
        self.clear();
        Ok(loss)
    }

    /// The forward pass only: the loss and the number of correct predictions. `batch` numbers
    /// the test batch within one evaluation and picks its own noise streams.
    ///
    /// Evaluation leaves no trace on training: batch-norm runs in inference mode, the ADC
    /// running statistics are read but not updated, the noise streams are disjoint from every
    /// training step's, and its simulator events and MACs are not counted
    /// ([`Executor::take_counts`] returns what training did).
    pub fn evaluate(&mut self, x: ArrayD<f32>, labels: &[u8], batch: u64) -> Result<(f32, usize), ExecError> {
        let counts = self.counts.clone();
        self.eval_batch = Some(batch);
        let r = self.evaluate_inner(x, labels);
        self.eval_batch = None;
        self.counts = counts;
        if r.is_err() {
            self.clear();
        }
        r
    }

    fn evaluate_inner(&mut self, x: ArrayD<f32>, labels: &[u8]) -> Result<(f32, usize), ExecError> {
        self.load(x, labels)?;
        self.run_nodes(false, 0.0)?;
        let mut correct = 0;
        for n in self.step.nodes.iter().filter(|n| n.op == Op::SoftmaxCrossEntropy) {
            let logits = self.get(n.inputs[0])?.matrix();
            for (row, &y) in logits.outer_iter().zip(labels) {
                let arg = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
                    .0;
                correct += usize::from(arg == y as usize);
            }
        }
        let loss = self.loss()?;
        self.clear();
        Ok((loss, correct))
    }

    /// Runs the step's nodes in order (training: all; evaluation: the forward pass), each
    /// fusion group as compiled code when the JIT is on and the batch has the compiled shape.
    fn run_nodes(&mut self, train: bool, lr: f32) -> Result<(), ExecError> {
        let mut i = 0;
        while i < self.step.nodes.len() {
            let node = &self.step.nodes[i];
            if !train && node.phase != Phase3::Forward {
                i += 1;
                continue;
            }
            if self.jit.is_some()
                && let Some(g) = node.group
                && self.step.groups[g.index()].nodes.first() == Some(&crate::ir::NodeId(i as u32))
                && self.run_group(g.index(), train, lr)?
            {
                i += self.step.groups[g.index()].nodes.len();
                continue;
            }
            self.run_node(i, train, lr)?;
            i += 1;
        }
        Ok(())
    }

    fn load(&mut self, x: ArrayD<f32>, labels: &[u8]) -> Result<(), ExecError> {
        let want = &self.step.value(self.step.input).shape[1..];
        if &x.shape()[1..] != want || x.shape()[0] != labels.len() {
            return Err(ExecError::Invalid(format!(
                "a batch of shape {:?} with {} labels does not fit the network input {want:?}",
                x.shape(),
                labels.len()
            )));
        }
        let input = self.step.input;
        self.vals[input.index()] = Some(Tensor::f32(x));
        self.labels = labels.to_vec();
        Ok(())
    }

    fn loss(&self) -> Result<f32, ExecError> {
        Ok(self.get(self.step.loss)?.data.iter().next().copied().unwrap_or(f32::NAN))
    }

    /// Drops everything but the state values between steps.
    fn clear(&mut self) {
        let keep = self.jit.is_some();
        for (i, v) in self.vals.iter_mut().enumerate() {
            if !self.keep && !self.step.state.iter().any(|s| s.index() == i) {
                let t = v.take();
                if keep {
                    self.spare[i] = t;
                }
            }
        }
        self.bn_cache.clear();
        self.pool_arg.clear();
    }

    fn get(&self, v: crate::ir::ValueId) -> Result<&Tensor, ExecError> {
        self.vals[v.index()].as_ref().ok_or_else(|| ExecError::Invalid(format!("{v} read before it was written")))
    }

    /// Value `v` as a `[B, C, H, W]` feature map.
    fn feature_map(&self, v: crate::ir::ValueId) -> Result<ndarray::Array4<f32>, ExecError> {
        self.get(v)?
            .data
            .view()
            .into_dimensionality::<Ix4>()
            .map(|a| a.to_owned())
            .map_err(|e| ExecError::Invalid(format!("{v}: {e}")))
    }

    fn set(&mut self, v: crate::ir::ValueId, t: Tensor) {
        self.vals[v.index()] = Some(t);
    }

    /// Counts per MVM since the last call (and resets them).
    pub fn take_counts(&mut self) -> Vec<MvmCounts> {
        std::mem::replace(&mut self.counts, vec![MvmCounts::default(); self.step.mvms.len()])
    }

    /// The ADC gain of every input plane of every IMC MVM in the last training step, by MVM
    /// name (empty before the first step).
    pub fn last_adc_gains(&self) -> Vec<(String, Vec<f64>)> {
        self.step
            .mvms
            .iter()
            .zip(&self.last_gains)
            .filter(|(_, g)| !g.is_empty())
            .map(|(m, g)| (m.name.clone(), g.clone()))
            .collect()
    }

    /// The master parameters, by name.
    pub fn params(&self) -> Vec<(String, &ArrayD<f32>)> {
        self.step.params.iter().map(|p| p.name.clone()).zip(self.params.iter()).collect()
    }

    /// The index of the forward node gradient node `i` differentiates (`i` itself for other
    /// nodes, whose own state it is).
    fn forward_index(&self, i: usize) -> usize {
        self.step.forward_of(crate::ir::NodeId(i as u32)).map_or(i, |f| f.index())
    }

    fn run_node(&mut self, i: usize, train: bool, lr: f32) -> Result<(), ExecError> {
        let node = self.step.nodes[i].clone();
        let out = |k: usize| node.outputs[k];
        let input = |k: usize| node.inputs[k];
        match &node.op {
            Op::QuantizeWeights { param, format } => {
                let w = self.params[param.index()].clone();
                let t = self.quantize_weights(&w, format, param.index());
                self.set(out(0), t);
            }
            Op::QuantizeActivations { format, alpha } => {
                let x = self.get(input(0))?.matrix();
                // Quantizers would silently turn NaN into a code: stop instead.
                if !x.iter().all(|v| v.is_finite()) {
                    return Err(self.nonfinite_error(i));
                }
                let a = alpha.map(|p| self.params[p.index()][[0]]);
                self.set(out(0), quantize_activations(x, format, a));
            }
            Op::QuantizeErrors { format } => {
                let g = self.get(input(0))?.matrix();
                if !g.iter().all(|v| v.is_finite()) {
                    return Err(self.nonfinite_error(i));
                }
                let (b, w) = self.quantize_errors(i, g, format);
                self.set(out(0), b);
                self.set(out(1), w);
            }
            Op::Im2col { kernel, stride, padding } => {
                let x = self
                    .get(input(0))?
                    .data
                    .clone()
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(out(0), Tensor::f32(ops::im2col(x.view(), *kernel, *stride, *padding).into_dyn()));
            }
            Op::Col2im { kernel, stride, padding } => {
                let cols = self.get(input(0))?.matrix();
                let shape = &self.step.value(out(0)).shape;
                let b = cols.nrows()
                    / (crate::ir::conv_out_size(shape[2], *kernel, *stride, *padding)
                        * crate::ir::conv_out_size(shape[3], *kernel, *stride, *padding));
                let img = ops::col2im(cols.view(), (b, shape[1], shape[2], shape[3]), *kernel, *stride, *padding);
                self.set(out(0), Tensor::f32(img.into_dyn()));
            }
            Op::Mvm(m) => {
                // Borrow the operands out of the value table instead of copying them (the stored
                // operand is a whole weight matrix), and put them back whatever happens.
                let (si, xi) = (input(0), input(1));
                self.get(si)?;
                self.get(xi)?;
                let s = self.vals[si.index()].take().expect("checked above");
                let x = self.vals[xi.index()].take().unwrap_or_else(|| s.clone()); // same value twice
                let y = self.mvm(*m, &s, &x);
                if xi != si {
                    self.vals[xi.index()] = Some(x);
                }
                self.vals[si.index()] = Some(s);
                self.set(out(0), y?);
            }
            Op::BiasAdd { param } => {
                let mut z = self.get(input(0))?.matrix();
                let b = self.params[param.index()]
                    .view()
                    .into_dimensionality::<ndarray::Ix1>()
                    .map_err(|e| ExecError::Invalid(e.to_string()))?;
                z += &b;
                self.set(out(0), Tensor::f32(z.into_dyn()));
            }
            Op::ToChannelsFirst { h, w } => {
                let z = self.get(input(0))?.matrix();
                self.set(out(0), Tensor::f32(ops::to_channels_first(z.view(), *h, *w).into_dyn()));
            }
            Op::Relu => {
                let x = &self.get(input(0))?.data;
                self.set(out(0), Tensor::f32(x.mapv(|v| if v > 0.0 { v } else { 0.0 })));
            }
            Op::Pact { alpha } => {
                let a = self.params[alpha.index()][[0]];
                let x = &self.get(input(0))?.data;
                self.set(out(0), Tensor::f32(x.mapv(|v| v.clamp(0.0, a))));
            }
            Op::MaxPool { kernel, stride, padding } => {
                let x = self.feature_map(input(0))?;
                let (y, arg) = ops::maxpool(x.view(), *kernel, *stride, *padding);
                self.pool_arg.insert(i, arg);
                self.set(out(0), Tensor::f32(y.into_dyn()));
            }
            Op::AvgPool { kernel, stride, padding } => {
                let x = self.feature_map(input(0))?;
                self.set(out(0), Tensor::f32(ops::avgpool(x.view(), *kernel, *stride, *padding).into_dyn()));
            }
            Op::Reshape => {
                let x = &self.get(input(0))?.data;
                let shape: Vec<usize> =
                    std::iter::once(x.shape()[0]).chain(self.step.value(out(0)).shape[1..].iter().copied()).collect();
                let y = x.to_shape(IxDyn(&shape)).map_err(|e| ExecError::Invalid(e.to_string()))?.to_owned();
                self.set(out(0), Tensor::f32(y));
            }
            Op::BatchNorm { gamma, beta, momentum, eps } => {
                let x = self.get(input(0))?.data.clone();
                let cols = ops::channels_as_columns(&x);
                let (g, b) = (
                    self.params[gamma.index()].iter().copied().collect::<Vec<_>>(),
                    self.params[beta.index()].iter().copied().collect::<Vec<_>>(),
                );
                let y = if train {
                    let (y, cache, mean, var) = ops::batchnorm(cols.view(), &g, &b, *eps as f32);
                    let m = *momentum as f32;
                    let e = self
                        .bn_running
                        .entry(i)
                        .or_insert_with(|| (Array1::zeros(mean.len()), Array1::ones(var.len())));
                    e.0 = &e.0 * (1.0 - m) + &mean * m;
                    e.1 = &e.1 * (1.0 - m) + &var * m;
                    self.bn_cache.insert(i, cache);
                    y
                } else {
                    let (mean, var) = self
                        .bn_running
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| (Array1::zeros(g.len()), Array1::ones(g.len())));
                    let mut y = cols.clone();
                    for (j, mut c) in y.axis_iter_mut(Axis(1)).enumerate() {
                        let is = 1.0 / (var[j] + *eps as f32).sqrt();
                        c.mapv_inplace(|v| (v - mean[j]) * is * g[j] + b[j]);
                    }
                    y
                };
                self.set(out(0), Tensor::f32(from_columns(y, x.shape())));
            }
            Op::Add => {
                let mut y = self.get(input(0))?.data.clone();
                for k in 1..node.inputs.len() {
                    y += &self.get(input(k))?.data;
                }
                self.set(out(0), Tensor::f32(y));
            }
            Op::SoftmaxCrossEntropy => {
                let logits = self.get(input(0))?.matrix();
                let (loss, grad) = ops::softmax_xent(logits.view(), &self.labels);
                if !loss.is_finite() {
                    return Err(ExecError::NonFinite { what: "the loss".into(), step: self.steps });
                }
                self.set(out(0), Tensor::f32(ArrayD::from_elem(IxDyn(&[1]), loss)));
                self.set(out(1), Tensor::f32(grad.into_dyn()));
            }
            Op::Grad(inner) => self.grad(i, inner, &node.inputs, &node.outputs)?,
            Op::AccumulateGrad => {
                let mut y = self.get(input(0))?.data.clone();
                for k in 1..node.inputs.len() {
                    y += &self.get(input(k))?.data;
                }
                self.set(out(0), Tensor::f32(y));
            }
            Op::SgdUpdate { param } => {
                let grad = match node.inputs.first() {
                    Some(v) => self.get(*v)?.data.clone(),
                    None => std::mem::replace(
                        &mut self.grads[param.index()],
                        ArrayD::zeros(self.params[param.index()].raw_dim()),
                    ),
                };
                self.sgd(i, param.index(), grad, lr)?;
            }
            Op::WriteArrays { mvm } => self.write_arrays(*mvm, input(0))?,
        }
        Ok(())
    }

    fn quantize_weights(&mut self, w: &ArrayD<f32>, format: &WeightFormat, p: usize) -> Tensor {
        let w2 = w.view().into_dimensionality::<Ix2>().expect("weights are matrices").to_owned();
        match format {
            WeightFormat::Int4Sawb { c1, c2 } => {
                let alpha = int::sawb_alpha(&w2, *c1, *c2);
                self.sawb_alpha[p] = alpha;
                let mut codes = Array2::<i8>::zeros(w2.dim());
                int::sawb_codes(&w2, alpha, &mut codes);
                let step = alpha / 7.0;
                let data = codes.mapv(|c| step * c as f32);
                Tensor {
                    data: data.into_dyn(),
                    quant: Some(Quant {
                        codes: Codes::Int { codes: codes.mapv(i32::from), bits: 3, signed: true },
                        scale: step,
                    }),
                }
            }
            WeightFormat::Int8 => int8_tensor(w2),
            WeightFormat::F32 => Tensor::f32(w.clone()),
        }
    }

    fn quantize_errors(&mut self, node: usize, g: Array2<f32>, format: &ErrorFormat) -> (Tensor, Tensor) {
        match format {
            ErrorFormat::Radix4(cfg) => {
                let m = radix4::max_abs(&g);
                let s = match cfg.gradscale {
                    GradScaleMode::Current => radix4::gradscale(m),
                    GradScaleMode::Off => 1.0,
                    GradScaleMode::Incremental => {
                        let prev = self.gradscale.get(&node).copied().unwrap_or_else(|| radix4::gradscale(m));
                        let s = radix4::gradscale_incremental(m, prev);
                        self.gradscale.insert(node, s);
                        s
                    }
                };
                let one = |phase: Phase| {
                    let mut codes = Array2::<i8>::zeros(g.dim());
                    radix4::encode(&g, cfg.levels, phase, s, &mut codes);
                    let mut data = g.clone();
                    radix4::quantize_scaled(&g, cfg.levels, phase, s, &mut data);
                    let scale = if phase == Phase::Odd { 2.0 } else { 1.0 } / s;
                    Tensor {
                        data: data.into_dyn(),
                        quant: Some(Quant { codes: Codes::Radix4 { codes, levels: cfg.levels }, scale }),
                    }
                };
                let wg_phase = if cfg.tpr { cfg.weight_grad } else { cfg.backward };
                (one(cfg.backward), one(wg_phase))
            }
            ErrorFormat::Int8 => {
                let t = int8_tensor(g);
                (t.clone(), t)
            }
            ErrorFormat::F32 => {
                let t = Tensor::f32(g.into_dyn());
                (t.clone(), t)
            }
        }
    }

    fn write_arrays(&mut self, m: MvmId, v: crate::ir::ValueId) -> Result<(), ExecError> {
        let Some(tile) = &self.tile else { return Ok(()) };
        let t = self.vals[v.index()]
            .as_ref()
            .ok_or_else(|| ExecError::Invalid(format!("{v} read before it was written")))?;
        let Some(q) = &t.quant else {
            return Err(ExecError::Invalid(format!("IMC MVM {m} stores an unquantized value")));
        };
        let Codes::Int { codes, .. } = &q.codes else {
            return Err(ExecError::Invalid(format!("IMC MVM {m} stores radix-4 codes")));
        };
        let (bits, signed) = q.stored_bits();
        let kind = self.step.mvm(m).kind;
        let stored = match kind {
            Mvm::Forward => codes.clone(),
            Mvm::Backward | Mvm::WeightGrad => codes.t().as_standard_layout().to_owned(),
        };
        let mut ev = Events::default();
        let p = tile.program(&StoredMatrix { codes: stored.view(), bits, signed }, m.0 as u64, &mut ev)?;
        self.counts[m.index()].events += ev;
        self.programmed[m.index()] = Some(p);
        Ok(())
    }

    /// Runs MVM `m` with stored operand `s` and streamed operand `x`.
    fn mvm(&mut self, m: MvmId, s: &Tensor, x: &Tensor) -> Result<Tensor, ExecError> {
        let op = self.step.mvm(m).clone();
        let counts = &mut self.counts[m.index()];
        counts.calls += 1;
        let y: Array2<f32> = match (op.target, &s.quant, &x.quant) {
            (Some(Target::Imc), Some(sq), Some(xq)) => {
                let p = self.programmed[m.index()]
                    .as_ref()
                    .ok_or_else(|| ExecError::Invalid(format!("{} runs before its arrays are written", op.name)))?;
                let tile = self.tile.as_mut().ok_or_else(|| ExecError::Invalid("no tile for an IMC MVM".into()))?;
                let xt; // streamed vectors: rows of x, or columns for the weight gradient
                let input = match (&xq.codes, op.kind) {
                    (Codes::Int { codes, bits, signed }, Mvm::WeightGrad) => {
                        xt = Codes::Int {
                            codes: codes.t().as_standard_layout().to_owned(),
                            bits: *bits,
                            signed: *signed,
                        };
                        batch_of(&xt)
                    }
                    (Codes::Radix4 { codes, levels }, Mvm::WeightGrad) => {
                        xt = Codes::Radix4 { codes: codes.t().as_standard_layout().to_owned(), levels: *levels };
                        batch_of(&xt)
                    }
                    (c, _) => batch_of(c),
                };
                let plan = op.adc.as_ref().ok_or_else(|| ExecError::Invalid(format!("{} has no ADC plan", op.name)))?;
                let fs = tile.plane_full_scales(&input)?;
                let hw = tile.hardware();
                let cmax = match hw.adc.zero {
                    AdcZero::Unsigned => ((1u64 << hw.adc.bits) - 1) as f64,
                    _ => ((1u64 << (hw.adc.bits - 1)) - 1) as f64,
                };
                let running = &mut self.adc[m.index()];
                if running.len() != fs.len() && self.eval_batch.is_none() {
                    running.resize(fs.len(), Running::default());
                }
                let gains: Vec<f64> = fs
                    .iter()
                    .enumerate()
                    .map(|(k, &f)| {
                        running.get(k).copied().unwrap_or_default().gain(
                            &plan.policy,
                            f,
                            cmax,
                            plan.allowed.as_deref(),
                            plan.initial_gains.get(k).copied().unwrap_or(1.0),
                        )
                    })
                    .collect();
                let mut ev = Events::default();
                let mut stats = PlaneStats::default();
                let stream = match self.eval_batch {
                    None => mix(self.hyper.seed, self.steps),
                    Some(b) => mix(mix(self.hyper.seed ^ EVAL_NOISE_DOMAIN, self.steps), b),
                };
                let seed = mix(stream, 0x5EED_0000 + m.0 as u64);
                if self.eval_batch.is_none() {
                    self.last_gains[m.index()].clone_from(&gains);
                }
                let y = tile.mvm_with_stats(p, &input, &Gains::PerPlane(gains), seed, &mut ev, &mut stats)?;
                if self.eval_batch.is_none() {
                    let momentum = Running::momentum(&plan.policy);
                    for (k, r) in running.iter_mut().enumerate() {
                        r.update(&stats, k, momentum);
                    }
                }
                counts.events += ev;
                let scale = sq.scale as f64 * xq.scale as f64;
                y.mapv(|v| (v * scale) as f32)
            }
            (Some(Target::Digital(_)), Some(sq), Some(xq)) => {
                // Exact: every product and partial sum of these codes is representable in f64.
                let (sv, xv) = (sq.code_values(), xq.code_values());
                counts.digital_macs += macs(op.kind, &xv, sv.len());
                let y = match op.kind {
                    Mvm::Forward => xv.dot(&sv.t()),
                    Mvm::Backward => xv.dot(&sv),
                    Mvm::WeightGrad => xv.t().dot(&sv),
                };
                let scale = sq.scale as f64 * xq.scale as f64;
                y.mapv(|v| (v * scale) as f32)
            }
            _ => {
                // Unquantized operands: f32 GEMM on the values.
                let (sv, xv) = (s.matrix(), x.matrix());
                counts.digital_macs += macs(op.kind, &xv, sv.len());
                match op.kind {
                    Mvm::Forward => xv.dot(&sv.t()),
                    Mvm::Backward => xv.dot(&sv),
                    Mvm::WeightGrad => xv.t().dot(&sv),
                }
            }
        };
        let mut y = if self.hyper.accumulate_fp16 { y.mapv(round_fp16) } else { y };
        if !y.is_standard_layout() {
            // GEMMs may return column-major results; every consumer indexes row-major.
            y = y.as_standard_layout().into_owned();
        }
        Ok(Tensor::f32(y.into_dyn()))
    }

    fn grad(
        &mut self,
        i: usize,
        op: &Op,
        inputs: &[crate::ir::ValueId],
        outputs: &[crate::ir::ValueId],
    ) -> Result<(), ExecError> {
        let g_id = *inputs.last().ok_or_else(|| ExecError::Invalid("a gradient node without inputs".into()))?;
        let g = self.get(g_id)?.data.clone();
        match op {
            Op::QuantizeActivations { format, alpha } => {
                let x = self.get(inputs[0])?.data.clone();
                let g = g.into_shape_with_order(x.raw_dim()).map_err(|e| ExecError::Invalid(e.to_string()))?;
                let gx = match (format, alpha) {
                    (ActivationFormat::Int4Pact { .. }, Some(p)) => self.pact_grad(*p, &x, &g),
                    (ActivationFormat::Int4Pact { alpha: a, .. }, None) => {
                        let a = *a as f32;
                        ndarray::Zip::from(&x)
                            .and(&g)
                            .map_collect(|&xv, &gv| if (0.0..a).contains(&xv) { gv } else { 0.0 })
                    }
                    _ => g,
                };
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::Relu => {
                let x = &self.get(inputs[0])?.data;
                let gx = ndarray::Zip::from(x).and(&g).map_collect(|&xv, &gv| if xv > 0.0 { gv } else { 0.0 });
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::Pact { alpha } => {
                let x = self.get(inputs[0])?.data.clone();
                let gx = self.pact_grad(*alpha, &x, &g);
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::BiasAdd { param } => {
                let g2 = g.into_dimensionality::<Ix2>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                // Column sums from 0, rows in order (the order the JIT keeps).
                let mut sum = Array1::<f32>::zeros(g2.ncols());
                for row in g2.rows() {
                    sum += &row;
                }
                self.grads[param.index()] += &sum.into_dyn();
            }
            Op::ToChannelsFirst { .. } => {
                let g4 = g.into_dimensionality::<Ix4>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(outputs[0], Tensor::f32(ops::to_rows(g4.view()).into_dyn()));
            }
            Op::MaxPool { .. } => {
                let x = &self.get(inputs[0])?.data;
                let s = x.shape();
                let arg = self.pool_arg.get(&self.forward_index(i)).cloned().unwrap_or_default();
                let gx = ops::maxpool_grad(
                    (s[0], s[1], s[2], s[3]),
                    &arg,
                    g.as_slice().unwrap_or(&g.iter().copied().collect::<Vec<_>>()),
                );
                self.set(outputs[0], Tensor::f32(gx.into_dyn()));
            }
            Op::AvgPool { kernel, stride, padding } => {
                let s = self.get(inputs[0])?.data.shape().to_vec();
                let g4 = g.into_dimensionality::<Ix4>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(
                    outputs[0],
                    Tensor::f32(
                        ops::avgpool_grad((s[0], s[1], s[2], s[3]), g4.view(), *kernel, *stride, *padding).into_dyn(),
                    ),
                );
            }
            Op::Reshape => {
                let shape = self.get(inputs[0])?.data.shape().to_vec();
                let gx = g.to_shape(IxDyn(&shape)).map_err(|e| ExecError::Invalid(e.to_string()))?.to_owned();
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::BatchNorm { gamma, beta, .. } => {
                let x_shape = self.get(inputs[0])?.data.shape().to_vec();
                let gcols = ops::channels_as_columns(&g);
                let fwd = self.forward_index(i);
                let cache = self
                    .bn_cache
                    .get(&fwd)
                    .ok_or_else(|| ExecError::Invalid("batch-norm backward without forward".into()))?;
                let gam: Vec<f32> = self.params[gamma.index()].iter().copied().collect();
                let (dx, dg, db) = ops::batchnorm_grad(gcols.view(), cache, &gam);
                let (gd, bd) = (self.grads[gamma.index()].raw_dim(), self.grads[beta.index()].raw_dim());
                let dg = ArrayD::from_shape_vec(gd, dg).map_err(|e| ExecError::Invalid(e.to_string()))?;
                let db = ArrayD::from_shape_vec(bd, db).map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.grads[gamma.index()] += &dg;
                self.grads[beta.index()] += &db;
                self.set(outputs[0], Tensor::f32(from_columns(dx, &x_shape)));
            }
            Op::Add => {
                for &o in outputs {
                    self.set(o, Tensor::f32(g.clone()));
                }
            }
            other => return Err(ExecError::Invalid(format!("no backward for {other:?}"))),
        }
        Ok(())
    }

    /// PACT's straight-through gradients: `g` inside `[0, alpha)`, and the alpha gradient
    /// (summed over `x >= alpha`) accumulated into the parameter's gradient.
    fn pact_grad(&mut self, alpha: crate::ir::ParamId, x: &ArrayD<f32>, g: &ArrayD<f32>) -> ArrayD<f32> {
        let a = self.params[alpha.index()][[0]];
        let mut ga = 0.0f32;
        let gx = ndarray::Zip::from(x).and(g).map_collect(|&xv, &gv| {
            if xv >= a {
                ga += gv;
            }
            if (0.0..a).contains(&xv) { gv } else { 0.0 }
        });
        self.grads[alpha.index()][[0]] += ga;
        gx
    }

    fn sgd(&mut self, node: usize, p: usize, grad: ArrayD<f32>, lr: f32) -> Result<(), ExecError> {
        let kind = self.step.params[p].kind;
        let mut g =
            grad.into_shape_with_order(self.params[p].raw_dim()).map_err(|e| ExecError::Invalid(e.to_string()))?;
        if nonfinite(&g) {
            return Err(self.nonfinite_error(node));
        }
        let w = &self.params[p];
        match kind {
            ParamKind::Weight => {
                // SAWB's straight-through estimator passes the gradient inside the clip only.
                let a = self.sawb_alpha[p];
                if a > 0.0 {
                    ndarray::Zip::from(&mut g).and(w).for_each(|gv, &wv| {
                        if wv.abs() > a {
                            *gv = 0.0;
                        }
                    });
                }
                g.zip_mut_with(w, |gv, &wv| *gv += self.hyper.weight_decay * wv);
            }
            ParamKind::PactAlpha => {
                let decay = self.step.pact_decay(crate::ir::ParamId(p as u32)) as f32;
                g.zip_mut_with(w, |gv, &wv| *gv += decay * wv);
            }
            _ => {}
        }
        let (mu, nesterov) = (self.hyper.momentum, self.hyper.nesterov);
        let v = &mut self.velocity[p];
        ndarray::Zip::from(&mut *v).and(&g).for_each(|vv, &gv| *vv = mu * *vv + gv);
        let w = &mut self.params[p];
        ndarray::Zip::from(w).and(&*v).and(&g).for_each(|wv, &vv, &gv| {
            let upd = if nesterov { gv + mu * vv } else { vv };
            *wv -= lr * upd;
        });
        if kind == ParamKind::PactAlpha {
            self.params[p].mapv_inplace(|a| a.max(1e-3)); // a clip range must stay positive
        }
        Ok(())
    }
}

/// MACs of an MVM from its operands: `x` is the streamed matrix, `stored` the stored length.
fn macs<T>(kind: Mvm, x: &Array2<T>, stored: usize) -> u64 {
    let k = if kind == Mvm::WeightGrad { x.ncols() } else { x.nrows() };
    (k * stored) as u64
}

fn batch_of(c: &Codes) -> InputBatch<'_> {
    match c {
        Codes::Int { codes, bits, signed } => InputBatch::Int { codes: codes.view(), bits: *bits, signed: *signed },
        Codes::Radix4 { codes, levels } => InputBatch::Radix4 { codes: codes.view(), levels: *levels },
    }
}

fn int8_tensor(x: Array2<f32>) -> Tensor {
    let mut data = x.clone();
    let step = int::int8(&x, &mut data);
    // The same codes `int::int8` dequantized: round(x·127/max).
    let m = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let codes = if m > 0.0 && m.is_finite() { x.mapv(|v| int::int8_code(v, m)) } else { Array2::zeros(x.dim()) };
    Tensor {
        data: data.into_dyn(),
        quant: Some(Quant { codes: Codes::Int { codes, bits: 7, signed: true }, scale: step }),
    }
}

fn quantize_activations(x: Array2<f32>, format: &ActivationFormat, learned: Option<f32>) -> Tensor {
    match format {
        ActivationFormat::Int4Pact { alpha, .. } => {
            let a = learned.unwrap_or(*alpha as f32);
            let codes = x.mapv(|v| int::pact_code(v, a) as i32);
            let step = a / 15.0;
            let data = codes.mapv(|c| c as f32 * step);
            Tensor {
                data: data.into_dyn(),
                quant: Some(Quant { codes: Codes::Int { codes, bits: 4, signed: false }, scale: step }),
            }
        }
        ActivationFormat::Int8 => int8_tensor(x),
        ActivationFormat::F32 => Tensor::f32(x.into_dyn()),
    }
}

fn from_columns(y: Array2<f32>, shape: &[usize]) -> ArrayD<f32> {
    if shape.len() == 4 { ops::to_channels_first(y.view(), shape[2], shape[3]).into_dyn() } else { y.into_dyn() }
}

fn round_fp16(v: f32) -> f32 {
    // Round to the nearest FP16 value (ties to even), saturating to the largest finite value.
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let a = v.abs().min(65504.0);
    let e = a.log2().floor().max(-14.0);
    let ulp = 2f32.powf(e - 10.0);
    ((a / ulp).round_ties_even() * ulp).copysign(v)
}

fn pact_alpha0(step: &Step, p: usize) -> f64 {
    for n in &step.nodes {
        if let Op::QuantizeActivations { format: ActivationFormat::Int4Pact { alpha, .. }, alpha: Some(q) } = &n.op
            && q.index() == p
        {
            return *alpha;
        }
    }
    6.0
}
