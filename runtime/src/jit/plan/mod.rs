//! Planning: what each node of a fusion group becomes (an inline [`Kernel`] or a host call),
//! which buffers ([`Slot`]s) the group touches and how long each is, and the layout of every
//! value the group's kernels write (the executor allocates them before the call).
//!
//! Every length here comes from the IR's value and parameter shapes, and every kernel's index
//! arithmetic is checked against those lengths before any code is generated: a step the plan
//! cannot prove in bounds is a [`JitError`], never compiled.

use super::abi::Slot;
use crate::config::{GradScaleMode, Phase};
use crate::ir::{GroupId, NodeId, ValueId};

mod planner;

pub use planner::plan_group;

/// Optimizer constants baked into the update kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Consts {
    /// Momentum.
    pub momentum: f32,
    /// Weight decay (weights).
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Index of a slot in its group's table.
pub type S = usize;

/// Where a PACT clip comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Alpha {
    /// A learned parameter (a one-element slot).
    Learned(S),
    /// A fixed clip.
    Fixed(f32),
}

/// One phase's outputs of a radix-4 error quantizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct R4Out {
    /// The grid phase.
    pub phase: Phase,
    /// Dequantized data.
    pub data: S,
    /// Codes (`i8`).
    pub codes: S,
    /// Scale.
    pub scale: S,
}

/// What an update does besides momentum SGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SgdKind {
    /// A weight: SAWB straight-through mask (clip slot) and weight decay.
    Weight {
        /// The SAWB clip of the last quantization.
        sawb_alpha: S,
    },
    /// A PACT alpha: its own decay, and kept at least 1e-3.
    PactAlpha {
        /// The decay.
        decay: f32,
    },
    /// Biases and batch-norm parameters.
    Plain,
}

/// A pooling window (padding is zero for inline kernels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Batch times channels.
    pub planes: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Kernel.
    pub k: usize,
    /// Stride.
    pub s: usize,
}

/// A convolution's im2col geometry (image `[b, c, h, w]`, output positions `ho x wo`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv {
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
}

/// An inline kernel, with its slots and every constant baked in. Fields named like operands
/// (`x`, `g`, `y`, `data`, ...) are slot indices ([`S`]); `n`, `rows`, `cols` are element counts.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    /// `y = x` for each output (reshape, f32 pass-through quantizers, gradient fan-out).
    Copy { x: S, ys: Vec<S>, n: usize },
    /// `y = x0 + x1 + ...`, left to right.
    Sum { xs: Vec<S>, y: S, n: usize },
    /// `y[r, c] = z[r, c] + b[c]`.
    BiasAdd { z: S, b: S, y: S, rows: usize, cols: usize },
    /// `grad[c] += 0 + Σ_r g[r, c]` (rows in order).
    BiasGrad { g: S, grad: S, rows: usize, cols: usize },
    /// `y = x > 0 ? x : 0`.
    Relu { x: S, y: S, n: usize },
    /// `y = x > 0 ? g : 0`.
    ReluGrad { x: S, g: S, y: S, n: usize },
    /// `y = clamp(x, 0, alpha)`.
    Clamp { x: S, alpha: Alpha, y: S, n: usize },
    /// PACT quantization after a finiteness check: codes `round(clamp(x, 0, a)·15/a)`, data
    /// `code·(a/15)`, scale `a/15`.
    Pact { node: NodeId, x: S, alpha: Alpha, data: S, codes: S, scale: S, n: usize },
    /// PACT straight-through gradient: `y = 0 <= x < a ? g : 0`, and `Σ g over x >= a` (in
    /// order) added to the alpha's gradient when learned.
    PactGrad { x: S, g: S, alpha: Alpha, galpha: Option<S>, y: S, n: usize },
    /// Finiteness check, max|g|, GradScale, and the radix-4 quantization of both outputs.
    Radix4 { node: NodeId, g: S, n: usize, levels: u32, mode: GradScaleMode, state: Option<S>, outs: [R4Out; 2] },
    /// Momentum SGD of one parameter after a finiteness check of its gradient. `zero_grad`: the
    /// gradient is the accumulated one, reset to zero as it is read.
    Sgd { node: NodeId, param: S, grad: S, zero_grad: bool, velocity: S, lr: S, kind: SgdKind, n: usize },
    /// SAWB: clip from f64 moments (in order), codes `round(7·clamp(w, −α, α)/α)`, data
    /// `α/7·code`.
    Sawb { w: S, alpha: S, data: S, codes: S, scale: S, n: usize, c1: f64, c2: f64 },
    /// Max pooling (first maximum wins), saving each output's argmax.
    MaxPool { x: S, y: S, arg: S, win: Window },
    /// `y = 0; y[arg[j]] += g[j]` for `j < m`, with every index checked against `n`.
    MaxPoolGrad { node: NodeId, g: S, arg: S, y: S, n: usize, m: usize },
    /// Average pooling (divisor `k²`).
    AvgPool { x: S, y: S, win: Window },
    /// Backward of average pooling.
    AvgPoolGrad { g: S, y: S, win: Window },
    /// im2col (`adjoint`: col2im, summing overlapping patches into a zeroed image).
    Im2col { x: S, y: S, conv: Conv, adjoint: bool },
    /// `[B·H·W, C]` rows to `[B, C, H, W]` (`inverse`: the other way).
    Transpose { x: S, y: S, b: usize, c: usize, hw: usize, inverse: bool },
    /// A node run by the reference executor through [`super::abi::HOST_NODE`].
    Host { node: NodeId, host: usize },
}

/// How the executor allocates a value the group's kernels write.
#[derive(Debug, Clone, PartialEq)]
pub struct Alloc {
    /// The value.
    pub value: ValueId,
    /// Its shape (the IR's).
    pub shape: Vec<usize>,
    /// Integer codes as `[rows, cols]`, when quantized.
    pub codes: Option<CodeAlloc>,
}

/// The codes of a quantized value (`rows x cols`, as the executor's `Codes`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CodeAlloc {
    /// `i32` codes with magnitude bits and signedness.
    Int { rows: usize, cols: usize, bits: u32, signed: bool },
    /// Radix-4 `i8` codes.
    Radix4 { rows: usize, cols: usize, levels: u32 },
}

/// Everything the executor and the code generator need about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    /// The group.
    pub group: GroupId,
    /// Its name (`forward fc1`).
    pub name: String,
    /// Its nodes, first to last.
    pub nodes: Vec<NodeId>,
    /// The buffer table.
    pub slots: Vec<Slot>,
    /// One kernel per node, in order.
    pub kernels: Vec<Kernel>,
    /// Values to allocate before the call.
    pub allocs: Vec<Alloc>,
    /// Max-pool nodes whose argmax the group writes, with their lengths.
    pub pool_args: Vec<(NodeId, usize)>,
    /// Error quantizer nodes with incremental GradScale state.
    pub gradscale_nodes: Vec<NodeId>,
    /// Every value the group's nodes (host nodes included) read that it does not write, with
    /// its element count: the executor runs the compiled code only when all of them have it.
    pub inputs: Vec<(ValueId, usize)>,
}

impl Kernel {
    /// The kernel's name in listings.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Copy { .. } => "copy",
            Kernel::Sum { .. } => "sum",
            Kernel::BiasAdd { .. } => "bias_add",
            Kernel::BiasGrad { .. } => "bias_grad",
            Kernel::Relu { .. } => "relu",
            Kernel::ReluGrad { .. } => "relu_grad",
            Kernel::Clamp { .. } => "clamp",
            Kernel::Pact { .. } => "pact_quantize",
            Kernel::PactGrad { .. } => "pact_grad",
            Kernel::Radix4 { .. } => "radix4_quantize",
            Kernel::Sgd { .. } => "sgd",
            Kernel::Sawb { .. } => "sawb_quantize",
            Kernel::MaxPool { .. } => "max_pool",
            Kernel::MaxPoolGrad { .. } => "max_pool_grad",
            Kernel::AvgPool { .. } => "avg_pool",
            Kernel::AvgPoolGrad { .. } => "avg_pool_grad",
            Kernel::Im2col { adjoint: false, .. } => "im2col",
            Kernel::Im2col { adjoint: true, .. } => "col2im",
            Kernel::Transpose { inverse: false, .. } => "to_channels_first",
            Kernel::Transpose { inverse: true, .. } => "to_rows",
            Kernel::Host { .. } => "host call",
        }
    }
}

impl GroupPlan {
    /// Host nodes (calls back into the reference executor).
    pub fn host_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.kernels.iter().filter_map(|k| match k {
            Kernel::Host { node, .. } => Some(*node),
            _ => None,
        })
    }
}

pub(super) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}
