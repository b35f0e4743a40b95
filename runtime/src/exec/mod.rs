//! The executor: runs a lowered training step ([`crate::ir::Step`]) on real data. IMC MVMs go
//! through the tile simulator; digital MVMs are computed exactly on the codes (f64 GEMM, exact
//! for these formats) or in f32 for unquantized operands; everything else is digital f32.
//!
//! Because a digital MVM over quantized operands computes the exact product and an IMC MVM
//! with zero noise and an ADC that neither rounds nor clips does too, and both then apply the
//! same scales in the same order, such a full-IMC run is bit-identical to the all-digital run
//! of the same formats (a test checks it).

mod jit;
mod mvm;
mod nodes;
pub(crate) mod ops;
pub mod policy;
mod state;
pub mod tensor;

use crate::config::Target;
pub use crate::energy::MvmCounts;
use crate::ir::{Op, ParamKind, Phase3, Step};
use crate::sim::{Programmed, SimError, Tile};
pub use jit::{GroupMode, JitStats};
use ndarray::{Array1, ArrayD, Ix4, IxDyn};
use nodes::pact_alpha0;
use policy::Running;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
pub use state::TrainState;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use tensor::Tensor;

/// How one IMC MVM's ADCs used their range ([`Executor::adc_use`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdcUse {
    /// The MVM (`fc1.forward`).
    pub mvm: String,
    /// Per input plane.
    pub planes: Vec<PlaneUse>,
}

/// One input plane's ADC range.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlaneUse {
    /// The range gain.
    pub gain: f64,
    /// The column-sum range the ADC covered: native full scale over gain (sums above it clip).
    pub covered: f64,
    /// The running maximum column sum (what the `max` policy fits the range to).
    pub max_sum: f64,
    /// The share of this plane's conversions whose noiseless column sum lay beyond the range
    /// (clipped by the range, not by noise), over the executor's training steps.
    pub clip_rate: f64,
    /// This plane's conversions over the executor's training steps.
    pub conversions: u64,
}

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

/// The optimizer constants the JIT bakes into its update kernels (the executor depends on the
/// JIT, never the reverse).
impl From<&Hyper> for crate::jit::Consts {
    fn from(h: &Hyper) -> crate::jit::Consts {
        crate::jit::Consts { momentum: h.momentum, weight_decay: h.weight_decay, nesterov: h.nesterov }
    }
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
    /// Per IMC MVM, the native full scale of each input plane's column sums in the last
    /// training step (with the gains: the range each plane's ADC covered).
    last_full_scales: Vec<Vec<f64>>,
    /// Per IMC MVM and input plane, `(clipped, conversions)` over this executor's training
    /// steps: how often the ADC range clipped a noiseless column sum.
    clip_counts: Vec<Vec<(u64, u64)>>,
}

/// Seeds evaluation noise apart from every training step's (`mix` of this and the step count).
const EVAL_NOISE_DOMAIN: u64 = 0xE7A1_5EED_0000_0000;

fn mix(a: u64, b: u64) -> u64 {
    crate::sim::finalize(a ^ b.wrapping_mul(crate::sim::GAMMA))
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
            last_full_scales: vec![Vec::new(); step.mvms.len()],
            clip_counts: vec![Vec::new(); step.mvms.len()],
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

    /// How each IMC MVM's ADCs used their range, plane by plane: the gain and the column-sum
    /// range it covered (native full scale over gain) in the last training step, the running
    /// maximum column sum the range policy tracks, and how often the range clipped over the
    /// training steps this executor ran (empty before the first step).
    pub fn adc_use(&self) -> Vec<AdcUse> {
        self.step
            .mvms
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.last_gains[*i].is_empty())
            .map(|(i, m)| AdcUse {
                mvm: m.name.clone(),
                planes: self.last_gains[i]
                    .iter()
                    .enumerate()
                    .map(|(k, &gain)| {
                        let covered = self.last_full_scales[i].get(k).map_or(0.0, |fs| fs / gain.max(1e-300));
                        let max = self.adc[i].get(k).map_or(0.0, |r| r.max);
                        let (clipped, conversions) = self.clip_counts[i].get(k).copied().unwrap_or_default();
                        let clip_rate = if conversions > 0 { clipped as f64 / conversions as f64 } else { 0.0 };
                        PlaneUse { gain, covered, max_sum: max, clip_rate, conversions }
                    })
                    .collect(),
            })
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
}
