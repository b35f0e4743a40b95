//! The calling convention between the executor and a compiled fusion group.
//!
//! A group compiles to one native function
//!
//! ```text
//! extern "C" fn(slots: *const *mut u8, ctx: *mut c_void) -> u32
//! ```
//!
//! - `slots` points to a table of [`GroupPlan::slots`](super::plan::GroupPlan::slots)`.len()`
//!   buffer pointers, one per [`Slot`], in plan order. Slot `k` points to at least
//!   `slots[k].len` elements of type `slots[k].elem`, aligned to the element size (ndarray and
//!   `Vec` buffers; nothing more is assumed, so vector loads and stores are unaligned). The
//!   executor builds the table from buffers whose lengths it has checked against the plan, and
//!   rebuilds it after every host call (a host node may replace the buffers it writes); the
//!   function therefore reloads a slot's pointer at the start of every kernel and never keeps
//!   one across a host call.
//! - Read-only slots are never written. Two slots never share memory (each slot names a
//!   distinct value, parameter, gradient, ... of the executor).
//! - `ctx` is opaque to the function: it is handed back to the host functions it calls.
//! - The return value is a [`Status`]: 0 when every node ran; otherwise why it stopped. A
//!   function that returns a non-zero status may have run a prefix of its nodes.
//!
//! Host functions the code calls (resolved by name when the module is built):
//! [`HOST_NODE`] runs one node on the reference executor; [`GRADSCALE`] and
//! [`GRADSCALE_INCREMENTAL`] are the scalar GradScale rules of `formats::radix4`.

use crate::ir::NodeId;

/// Signature of a compiled group.
pub type GroupFn = unsafe extern "C" fn(slots: *const *mut u8, ctx: *mut std::ffi::c_void) -> u32;

/// Signature of the host-node callback: runs node `node` of the step; returns a [`Status`].
pub type HostNodeFn = unsafe extern "C" fn(ctx: *mut std::ffi::c_void, node: u32) -> u32;

/// Symbol of the host-node callback.
pub const HOST_NODE: &str = "imcc_host_node";
/// Symbol of `radix4::gradscale` (`f32 -> f32`).
pub const GRADSCALE: &str = "imcc_gradscale";
/// Symbol of `radix4::gradscale_incremental` with a NaN previous scale meaning "none yet"
/// (`(max_abs: f32, prev: f32) -> f32`).
pub const GRADSCALE_INCREMENTAL: &str = "imcc_gradscale_incremental";

/// Why a compiled group stopped, as returned in a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every node ran.
    Ok,
    /// A node's finiteness check failed (the reference executor's error for that node).
    NonFinite(NodeId),
    /// A host node failed; the host stored the error in its context.
    HostError,
    /// An index read from memory (max-pool argmax) was out of bounds.
    BadIndex(NodeId),
}

const HOST_ERROR: u32 = u32::MAX;
const BAD_INDEX: u32 = 1 << 31;

impl Status {
    /// The `u32` the function returns.
    pub fn encode(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::NonFinite(n) => n.0 + 1,
            Status::HostError => HOST_ERROR,
            Status::BadIndex(n) => BAD_INDEX | n.0,
        }
    }

    /// Decodes a returned `u32`.
    pub fn decode(s: u32) -> Status {
        match s {
            0 => Status::Ok,
            HOST_ERROR => Status::HostError,
            s if s & BAD_INDEX != 0 => Status::BadIndex(NodeId(s & !BAD_INDEX)),
            s => Status::NonFinite(NodeId(s - 1)),
        }
    }
}

/// Element type of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `f32`.
    F32,
    /// `i32` (integer codes).
    I32,
    /// `i8` (radix-4 codes).
    I8,
    /// `u64` (`usize` indices: max-pool argmax).
    U64,
}

impl Elem {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::I8 => 1,
            Elem::U64 => 8,
        }
    }
}

/// What a slot points to in the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotKey {
    /// A value's f32 data.
    Data(crate::ir::ValueId),
    /// A quantized value's integer codes.
    Codes(crate::ir::ValueId),
    /// A quantized value's scale (one f32).
    Scale(crate::ir::ValueId),
    /// A master parameter.
    Param(crate::ir::ParamId),
    /// A parameter's accumulated gradient.
    Grad(crate::ir::ParamId),
    /// A parameter's momentum buffer.
    Velocity(crate::ir::ParamId),
    /// The SAWB clip last computed for a weight (one f32).
    SawbAlpha(crate::ir::ParamId),
    /// Incremental GradScale state of an error quantizer node (one f32; NaN: none yet).
    GradScale(NodeId),
    /// The argmax indices a max-pool node saved for its backward.
    PoolArg(NodeId),
    /// The learning rate of this step (one f32).
    LearningRate,
}

/// One buffer a group function reads or writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// What it is.
    pub key: SlotKey,
    /// Element type.
    pub elem: Elem,
    /// Elements.
    pub len: usize,
    /// Whether the function writes it.
    pub written: bool,
    /// The host node (position in the group) that produces it, when a host node does: the
    /// buffer exists only after that node ran.
    pub after_host: Option<usize>,
}
