//! The mapped IR: one training step of one `train` block, as the executor and the JIT consume
//! it. Every operation of the step is a [`Node`] in execution order (forward, loss, backward,
//! update); the three MVMs of every weighted layer are [`MvmOp`]s with operand formats, shapes,
//! and a target: IMC with its tiling, core allocation, input-plane schedule and ADC range plan,
//! or digital at a precision. The digital nodes between MVMs are grouped into [`FusionGroup`]s
//! for the JIT.
//!
//! Entities are typed indices into vectors (as cranelift's entities), so a node names values,
//! parameters and MVMs without pointers, and the verifier can check every reference.
//! `spec/ir.md` documents the text form printed by [`text::print`].
//!
//! This crate is the contract between the compiler, which produces steps, and the runtime, which
//! runs them: it depends on neither (nor on cranelift).

#![warn(missing_docs)]

pub mod config;
pub mod data_files;
mod pass;
pub mod text;
pub mod verify;

pub use pass::Pass;

use crate::config::{
    ActivationFormat, ErrorFormat, HardwareConfig, Mvm, Objective, Phase, RangePolicy, Target, WeightFormat,
};
use serde::Serialize;

macro_rules! entity {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("Typed index (`", $prefix, "N` in the text form).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as `usize`.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(ValueId, "v");
entity!(ParamId, "p");
entity!(NodeId, "n");
entity!(MvmId, "m");
entity!(GroupId, "g");
entity!(LayerIdx, "L");

/// The element format of a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Format {
    /// f32.
    F32,
    /// INT4 SAWB weight codes (−7..7) with a per-tensor step.
    Int4Sawb,
    /// INT4 PACT activation codes (0..15) with step alpha/15.
    Int4Pact,
    /// Symmetric INT8 codes with a per-tensor step.
    Int8,
    /// Radix-4 FP4 codes on one grid phase, with a per-tensor GradScale.
    Radix4(Phase),
}

impl Format {
    /// Bits of one element, as moved and stored (radix-4 FP4: a sign and 3 exponent bits).
    pub fn bits(&self) -> u32 {
        match self {
            Format::F32 => 32,
            Format::Int4Sawb | Format::Int4Pact | Format::Radix4(_) => 4,
            Format::Int8 => 8,
        }
    }

    /// Columns one element occupies when stored on an array bit-parallel; `None` for formats
    /// that are never stored (f32; radix-4 errors are only streamed).
    pub fn array_bits(&self) -> Option<u32> {
        match self {
            Format::Int4Sawb | Format::Int4Pact | Format::Int8 => Some(self.bits()),
            Format::F32 | Format::Radix4(_) => None,
        }
    }
}

/// A tensor of the step: activations, errors, codes. Shapes include the batch dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Value {
    /// A readable name (`fc1.z`, `fc2.delta.even`).
    pub name: String,
    /// Shape, batch first.
    pub shape: Vec<usize>,
    /// Element format.
    pub format: Format,
}

/// What a trainable parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParamKind {
    /// A weight matrix `N_out x N_in` (conv: `C_out x C_in·k·k`).
    Weight,
    /// A bias vector.
    Bias,
    /// A PACT clip alpha (scalar).
    PactAlpha,
    /// Batch-norm scale.
    BnGamma,
    /// Batch-norm shift.
    BnBeta,
}

/// A trainable f32 master parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Readable name (`fc1.w`).
    pub name: String,
    /// What it is.
    pub kind: ParamKind,
    /// Shape.
    pub shape: Vec<usize>,
    /// The layer it belongs to.
    pub layer: LayerIdx,
}

/// Where the step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase3 {
    /// Forward pass and loss.
    Forward,
    /// Backward pass.
    Backward,
    /// Optimizer update and array rewrites.
    Update,
}

/// An operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// SAWB (or INT8) quantization of a weight parameter into codes and a step.
    QuantizeWeights {
        /// The master weight.
        param: ParamId,
        /// The format.
        format: WeightFormat,
    },
    /// Activation quantization (PACT or INT8) of an MVM input.
    QuantizeActivations {
        /// The format.
        format: ActivationFormat,
        /// The learned PACT alpha, if any.
        alpha: Option<ParamId>,
    },
    /// GradScale and radix-4 (two-phase) rounding of errors, or INT8/f32 pass-through:
    /// outputs the backward operand, then the weight-gradient operand.
    QuantizeErrors {
        /// The format.
        format: ErrorFormat,
    },
    /// im2col: `[B, C, H, W]` to `[B·Ho·Wo, C·k·k]`.
    Im2col {
        /// Kernel.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// col2im, the adjoint of [`Op::Im2col`] (sums overlapping patches).
    Col2im {
        /// Kernel.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// One of the three training MVMs.
    Mvm(MvmId),
    /// `z += b` (per output feature or channel).
    BiasAdd {
        /// The bias.
        param: ParamId,
    },
    /// `max(x, 0)`.
    Relu,
    /// `clip(x, 0, alpha)`.
    Pact {
        /// Alpha.
        alpha: ParamId,
    },
    /// Max pooling.
    MaxPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// Average pooling.
    AvgPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// A reshape (flatten and its inverse).
    Reshape,
    /// `[B·H·W, C]` (an MVM's rows per output position) to `[B, C, H, W]`.
    ToChannelsFirst {
        /// Output height.
        h: usize,
        /// Output width.
        w: usize,
    },
    /// Batch normalization (f32).
    BatchNorm {
        /// Scale.
        gamma: ParamId,
        /// Shift.
        beta: ParamId,
        /// Momentum.
        momentum: f64,
        /// Epsilon.
        eps: f64,
    },
    /// Elementwise sum.
    Add,
    /// Softmax cross-entropy: outputs the loss and `dL/dz`.
    SoftmaxCrossEntropy,
    /// The backward of a forward op: inputs are the forward op's saved inputs and the incoming
    /// gradient; outputs the gradient of each forward input (and accumulates parameter
    /// gradients).
    Grad(Box<Op>),
    /// Sum of gradients arriving at one value from several consumers.
    AccumulateGrad,
    /// Momentum SGD with weight decay on an f32 master parameter, from its gradient.
    SgdUpdate {
        /// The parameter.
        param: ParamId,
    },
    /// Writes re-quantized weights (or their `Wᵀ` copy) into the arrays of an IMC MVM.
    WriteArrays {
        /// The MVM whose stored matrix is rewritten.
        mvm: MvmId,
    },
}

/// A node: an operation on values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Values read.
    pub inputs: Vec<ValueId>,
    /// Values written.
    pub outputs: Vec<ValueId>,
    /// The network layer it belongs to.
    pub layer: Option<LayerIdx>,
    /// Forward, backward or update.
    pub phase: Phase3,
    /// The fusion group (digital nodes only, after the fusion pass).
    pub group: Option<GroupId>,
    /// For a gradient node, the forward node it differentiates (whose saved state, such as a
    /// pooling argmax or batch-norm cache, it reads). Set by lowering, checked by the verifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<NodeId>,
}

/// How an MVM's input vectors drive the rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PlaneKind {
    /// Integer bit planes, one per magnitude bit.
    BitSerial,
    /// Radix-4 exponent planes, one per exponent.
    ExponentPlanes,
    /// Multi-level DAC cycles.
    DacCycles,
}

/// The input-plane schedule of an IMC MVM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaneSchedule {
    /// What a plane is.
    pub kind: PlaneKind,
    /// Planes (or cycles) per sign pass.
    pub planes: u32,
    /// Sign passes (2 for two-pass signed inputs).
    pub passes: u32,
    /// Whether empty planes are skipped at run time.
    pub skip_empty: bool,
}

/// The tiling of an IMC MVM's stored matrix onto arrays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tiling {
    /// Row-tiles: `ceil(reduction / rows)`; partial sums are added digitally.
    pub row_tiles: u32,
    /// Column-tiles: `ceil(outputs · bits / cols)`.
    pub col_tiles: u32,
    /// Bits per stored element (one column each).
    pub bits: u32,
    /// Rows driven in the last row-tile.
    pub last_rows: u32,
    /// Array cells holding matrix bits / cells of the tiles.
    pub utilization: f64,
}

/// Where the tiles of an IMC MVM live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreAlloc {
    /// Core of each tile (row-tile major), when resident.
    pub cores: Vec<Option<u32>>,
    /// Tiles that do not fit and are rewritten each time the MVM runs.
    pub reloads_per_step: u32,
}

/// The ADC range plan of an IMC MVM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdcPlan {
    /// How gains are chosen at run time.
    pub policy: RangePolicy,
    /// The gains the hardware allows (`None`: any).
    pub allowed: Option<Vec<f64>>,
    /// The starting gain per plane (the policy adapts it from running statistics).
    pub initial_gains: Vec<f64>,
}

/// One training MVM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvmOp {
    /// Readable name (`fc1.forward`).
    pub name: String,
    /// The layer.
    pub layer: LayerIdx,
    /// Which of the three.
    pub kind: Mvm,
    /// Rows of the stored matrix (outputs of the MVM).
    pub outputs: usize,
    /// Reduction length.
    pub reduction: usize,
    /// Input vectors per step (batch, times output positions for conv).
    pub vectors: usize,
    /// Format of the stored operand.
    pub stored: Format,
    /// Format of the streamed operand.
    pub streamed: Format,
    /// Where it runs (after partitioning).
    pub target: Option<Target>,
    /// IMC: tiling (after tiling).
    pub tiling: Option<Tiling>,
    /// IMC: core allocation.
    pub cores: Option<CoreAlloc>,
    /// IMC: input planes.
    pub planes: Option<PlaneSchedule>,
    /// IMC: ADC ranges.
    pub adc: Option<AdcPlan>,
}

impl MvmOp {
    /// Multiply-accumulates per step.
    pub fn macs(&self) -> u64 {
        (self.outputs * self.reduction * self.vectors) as u64
    }
}

/// A group of digital nodes compiled together by the JIT.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FusionGroup {
    /// Readable name (`fc1.forward_epilogue`).
    pub name: String,
    /// Its nodes, in order.
    pub nodes: Vec<NodeId>,
}

/// A layer of the network, for names and summaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    /// Its name.
    pub name: String,
    /// Its operation (`dense`, `conv2d`, ...).
    pub op: String,
}

/// One training step of one train block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The train block.
    pub name: String,
    /// The network.
    pub network: String,
    /// Mini-batch size.
    pub batch: usize,
    /// The chip.
    pub hardware: HardwareConfig,
    /// The network's layers.
    pub layers: Vec<LayerInfo>,
    /// Tensors.
    pub values: Vec<Value>,
    /// Trainable parameters.
    pub params: Vec<Param>,
    /// Operations in execution order.
    pub nodes: Vec<Node>,
    /// The training MVMs.
    pub mvms: Vec<MvmOp>,
    /// Fusion groups (after fusion).
    pub groups: Vec<FusionGroup>,
    /// The network input value.
    pub input: ValueId,
    /// The labels value.
    pub labels: ValueId,
    /// The loss value.
    pub loss: ValueId,
    /// Values carried from one step to the next (quantized weights): written by the update,
    /// read by the next step's forward pass.
    pub state: Vec<ValueId>,
    /// The passes run so far, in order.
    pub passes: Vec<Pass>,
    /// How the MVM targets were chosen, when the mapping let the compiler choose by cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// The record of a placement by cost (`placement = cost(...)` in a mapping): what it
/// minimized and the modelled cost of the chosen targets beside the fixed policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// What was minimized.
    pub objective: Objective,
    /// The chosen assignment first (`chosen`), then `full`, `two_level` and `all_digital`.
    pub compared: Vec<PlacementCost>,
}

/// The modelled cost of one assignment of MVM targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementCost {
    /// `chosen`, `full`, `two_level` or `all_digital`.
    pub policy: String,
    /// Whether the chip's rules allow it (a two-level ADC serves at most two MVMs per layer).
    pub allowed: bool,
    /// Joules per step, everything.
    pub joules: f64,
    /// Joules per step of the MVMs.
    pub mvm_joules: f64,
    /// Seconds per step.
    pub seconds: f64,
}

/// How many values an op reads and writes: its signature, the one home of these facts. The
/// verifier checks every node against it, so the executor and the JIT planner may index a
/// verified node's inputs and outputs within these bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arity {
    /// Values read.
    pub inputs: std::ops::RangeInclusive<usize>,
    /// Values written.
    pub outputs: std::ops::RangeInclusive<usize>,
}

impl Op {
    /// The op's keyword in the text form (`quantize_weights`, `grad`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::QuantizeWeights { .. } => "quantize_weights",
            Op::QuantizeActivations { .. } => "quantize_activations",
            Op::QuantizeErrors { .. } => "quantize_errors",
            Op::Im2col { .. } => "im2col",
            Op::Col2im { .. } => "col2im",
            Op::Mvm(_) => "mvm",
            Op::BiasAdd { .. } => "bias_add",
            Op::Relu => "relu",
            Op::Pact { .. } => "pact",
            Op::MaxPool { .. } => "maxpool",
            Op::AvgPool { .. } => "avgpool",
            Op::Reshape => "reshape",
            Op::ToChannelsFirst { .. } => "to_channels_first",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Add => "add",
            Op::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Op::Grad(_) => "grad",
            Op::AccumulateGrad => "accumulate_grad",
            Op::SgdUpdate { .. } => "sgd_update",
            Op::WriteArrays { .. } => "write_arrays",
        }
    }

    /// The op's [`Arity`].
    pub fn arity(&self) -> Arity {
        let a =
            |i: std::ops::RangeInclusive<usize>, o: std::ops::RangeInclusive<usize>| Arity { inputs: i, outputs: o };
        match self {
            Op::QuantizeWeights { .. } => a(0..=0, 1..=1),
            Op::QuantizeErrors { .. } => a(1..=1, 2..=2),
            Op::QuantizeActivations { .. }
            | Op::Im2col { .. }
            | Op::Col2im { .. }
            | Op::BiasAdd { .. }
            | Op::Relu
            | Op::Pact { .. }
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::Reshape
            | Op::ToChannelsFirst { .. }
            | Op::BatchNorm { .. } => a(1..=1, 1..=1),
            Op::Mvm(_) => a(2..=2, 1..=1),
            Op::Add | Op::AccumulateGrad => a(2..=usize::MAX, 1..=1),
            Op::SoftmaxCrossEntropy => a(2..=2, 2..=2),
            Op::SgdUpdate { .. } => a(0..=1, 0..=0),
            Op::WriteArrays { .. } => a(1..=1, 0..=0),
            Op::Grad(inner) => match inner.as_ref() {
                // The incoming gradient is always the last input.
                Op::Add => a(1..=usize::MAX, 1..=usize::MAX),
                Op::BiasAdd { .. } => a(1..=1, 0..=0),
                Op::ToChannelsFirst { .. } => a(1..=1, 1..=1),
                _ => a(2..=2, 1..=1),
            },
        }
    }

    /// Whether the op writes values of its first input's shape (elementwise ops and their
    /// gradients), which the verifier checks.
    pub fn keeps_shape(&self) -> bool {
        match self {
            Op::Relu | Op::Pact { .. } | Op::QuantizeActivations { .. } | Op::BiasAdd { .. } | Op::Add => true,
            Op::Grad(inner) => matches!(inner.as_ref(), Op::Relu | Op::Pact { .. } | Op::QuantizeActivations { .. }),
            _ => false,
        }
    }
}

/// Output size of a convolution or pooling window along one axis: `(size + 2p − k) / s + 1`.
pub fn conv_out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

impl Step {
    /// The forward node that gradient node `grad` differentiates ([`Node::forward`]).
    pub fn forward_of(&self, grad: NodeId) -> Option<NodeId> {
        self.nodes.get(grad.index())?.forward
    }

    /// The L2 decay of PACT alpha parameter `p` (0 when `p` is no PACT alpha).
    pub fn pact_decay(&self, p: ParamId) -> f64 {
        self.nodes
            .iter()
            .find_map(|n| match &n.op {
                Op::QuantizeActivations { format: ActivationFormat::Int4Pact { alpha_decay, .. }, alpha: Some(q) }
                    if *q == p =>
                {
                    Some(*alpha_decay)
                }
                _ => None,
            })
            .unwrap_or(0.0)
    }

    /// The value `id`.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    /// The MVM `id`.
    pub fn mvm(&self, id: MvmId) -> &MvmOp {
        &self.mvms[id.index()]
    }
}
