//! Running compiled fusion groups: allocating what a group writes, binding its slots to the
//! executor's buffers (every length checked against the plan), the host-node callback, and
//! turning a returned status into the reference executor's error.

use super::tensor::{Codes, Quant, Tensor};
use super::{ExecError, Executor};
use crate::ir::Op;
use crate::jit::abi::{Elem, SlotKey, Status};
use crate::jit::plan::{Alloc, CodeAlloc, GroupPlan};
use ndarray::{Array2, ArrayD, IxDyn};
use std::ffi::c_void;

// Max-pool argmax buffers are `Vec<usize>` bound as `u64` slots.
const _: () = assert!(std::mem::size_of::<usize>() == 8);

/// How often compiled groups ran, and how often a group ran on the reference executor
/// instead because its inputs did not have the compiled shapes (a smaller final batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Group calls of compiled code.
    pub compiled: u64,
    /// Group runs on the reference executor.
    pub fallback: u64,
}

/// How [`Executor::run_group_as`] runs a fusion group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMode {
    /// Node by node on the reference executor.
    Reference,
    /// The JIT-compiled function.
    Jit,
    /// The hand-written Rust kernels (`jit::native`) on the same buffers.
    HandWritten,
}

/// What the host callback needs, passed through the compiled function as `ctx`.
struct HostCtx {
    exec: *mut Executor,
    plan: *const GroupPlan,
    table: *mut *mut u8,
    scalars: *mut f32,
    hosts_done: usize,
    train: bool,
    lr: f32,
    err: Option<ExecError>,
}

/// The host-node callback (see `jit::abi`): runs node `node` on the reference executor, then
/// rebinds the slot table, since the node may have replaced buffers.
unsafe extern "C" fn host_node(ctx: *mut c_void, node: u32) -> u32 {
    // SAFETY: `ctx` is the `HostCtx` that `run_group` created for this call and passed to the
    // group function, which hands it back unchanged; nothing else uses it during the call.
    let h = unsafe { &mut *(ctx as *mut HostCtx) };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `h.exec` is the executor that called the group function; while that call
        // runs, the executor is only reached through this pointer (`run_group` does not touch
        // `self` until the call returns), and the generated code holds no reference into it,
        // only raw buffer pointers it reloads from the table after this returns.
        let ex = unsafe { &mut *h.exec };
        // SAFETY: the plan lives in an `Arc` that `run_group` holds for the call.
        let plan = unsafe { &*h.plan };
        ex.run_node(node as usize, h.train, h.lr)?;
        h.hosts_done += 1;
        ex.bind(plan, h.table, h.scalars, h.hosts_done)
    }));
    match result {
        Ok(Ok(())) => Status::Ok.encode(),
        Ok(Err(e)) => {
            h.err = Some(e);
            Status::HostError.encode()
        }
        Err(_) => {
            h.err = Some(ExecError::Invalid(format!("internal error: node n{node} panicked inside a compiled group")));
            Status::HostError.encode()
        }
    }
}

fn layout_matches(t: &Tensor, a: &Alloc) -> bool {
    if t.data.shape() != a.shape.as_slice() || !t.data.is_standard_layout() {
        return false;
    }
    match (&t.quant, &a.codes) {
        (None, None) => true,
        (
            Some(Quant { codes: Codes::Int { codes, bits, signed }, .. }),
            Some(CodeAlloc::Int { rows, cols, bits: b, signed: s }),
        ) => codes.dim() == (*rows, *cols) && bits == b && signed == s && codes.is_standard_layout(),
        (
            Some(Quant { codes: Codes::Radix4 { codes, levels }, .. }),
            Some(CodeAlloc::Radix4 { rows, cols, levels: l }),
        ) => codes.dim() == (*rows, *cols) && levels == l && codes.is_standard_layout(),
        _ => false,
    }
}

fn allocate(a: &Alloc) -> Tensor {
    let data = ArrayD::zeros(IxDyn(&a.shape));
    let quant = a.codes.map(|c| match c {
        CodeAlloc::Int { rows, cols, bits, signed } => {
            Quant { codes: Codes::Int { codes: Array2::zeros((rows, cols)), bits, signed }, scale: 0.0 }
        }
        CodeAlloc::Radix4 { rows, cols, levels } => {
            Quant { codes: Codes::Radix4 { codes: Array2::zeros((rows, cols)), levels }, scale: 0.0 }
        }
    });
    Tensor { data, quant }
}

fn mismatch(key: &SlotKey, what: &str) -> ExecError {
    ExecError::Invalid(format!("internal error: JIT slot {key:?}: {what}"))
}

impl Executor {
    /// Runs group `g` as compiled code. `Ok(false)`: its inputs do not have the compiled
    /// shapes, and nothing was run (the caller runs the nodes on the reference executor).
    pub(super) fn run_group(&mut self, g: usize, train: bool, lr: f32) -> Result<bool, ExecError> {
        self.run_group_with(g, train, lr, self.group_mode)
    }

    /// Runs fusion group `g` once in `mode`, in training mode, on the values the last step
    /// left (keep them with [`Executor::keep_values`]); for benchmarks. Needs the JIT on
    /// (except for [`GroupMode::Reference`]). Parameters, gradients and optimizer state change
    /// as in a real step.
    pub fn run_group_as(&mut self, g: usize, mode: GroupMode, lr: f32) -> Result<(), ExecError> {
        let nodes = self.step.groups.get(g).map(|x| x.nodes.clone()).unwrap_or_default();
        if mode == GroupMode::Reference {
            for n in nodes {
                self.run_node(n.index(), true, lr)?;
            }
            return Ok(());
        }
        if self.run_group_with(g, true, lr, mode)? {
            Ok(())
        } else {
            Err(ExecError::Invalid(format!("group g{g} cannot run compiled (JIT off, or inputs of another shape)")))
        }
    }

    fn run_group_with(&mut self, g: usize, train: bool, lr: f32, mode: GroupMode) -> Result<bool, ExecError> {
        let Some(jit) = self.jit.clone() else { return Ok(false) };
        let Some(cg) = jit.groups.get(g) else { return Ok(false) };
        let plan = &cg.plan;
        if !self.inputs_fit(plan) {
            self.jit_stats.fallback += 1;
            return Ok(false);
        }
        for a in &plan.allocs {
            let v = a.value.index();
            if self.vals[v].as_ref().is_some_and(|t| layout_matches(t, a)) {
                continue;
            }
            self.vals[v] = match self.spare[v].take() {
                Some(t) if layout_matches(&t, a) => Some(t),
                _ => Some(allocate(a)),
            };
        }
        for &(node, len) in &plan.pool_args {
            self.pool_arg.entry(node.index()).or_default().resize(len, 0);
        }
        // Scalars owned by the call: the learning rate, then each incremental GradScale state
        // (NaN: none yet).
        let mut scalars: Vec<f32> = std::iter::once(lr)
            .chain(plan.gradscale_nodes.iter().map(|n| self.gradscale.get(&n.index()).copied().unwrap_or(f32::NAN)))
            .collect();
        let mut table = vec![std::ptr::null_mut::<u8>(); plan.slots.len()];
        let (table_ptr, scalars_ptr) = (table.as_mut_ptr(), scalars.as_mut_ptr());
        self.bind(plan, table_ptr, scalars_ptr, 0)?;
        let mut ctx = HostCtx {
            exec: self as *mut Executor,
            plan: plan as *const GroupPlan,
            table: table_ptr,
            scalars: scalars_ptr,
            hosts_done: 0,
            train,
            lr,
            err: None,
        };
        // SAFETY: the ABI of `jit::abi`: every slot of `table` was bound by `bind`, which checked
        // each buffer's element type and length against the plan the function was compiled
        // from (slots a host node produces are bound by the host callback before any kernel
        // reads them); the buffers are distinct and stay alive and unmoved for the call, except
        // through host nodes, after which the callback rebinds the table. `ctx` outlives the call.
        let ctx_ptr = &mut ctx as *mut HostCtx as *mut c_void;
        let status = match mode {
            GroupMode::HandWritten => unsafe {
                crate::jit::native::run_group(plan, &jit.consts, table_ptr, ctx_ptr, host_node)
            },
            _ => unsafe { (cg.func)(table_ptr, ctx_ptr) },
        };
        let err = ctx.err.take();
        drop(table);
        for (k, n) in plan.gradscale_nodes.iter().enumerate() {
            let s = scalars[1 + k];
            if !s.is_nan() {
                self.gradscale.insert(n.index(), s);
            }
        }
        self.jit_stats.compiled += 1;
        match Status::decode(status) {
            Status::Ok => Ok(true),
            Status::NonFinite(n) => Err(self.nonfinite_error(n.index())),
            Status::HostError => Err(err.unwrap_or_else(|| ExecError::Invalid("a host node failed".into()))),
            Status::BadIndex(n) => {
                Err(ExecError::Invalid(format!("internal error: n{}: max-pool index out of bounds", n.0)))
            }
        }
    }

    /// Whether every value the group reads from outside has the compiled length.
    fn inputs_fit(&self, plan: &GroupPlan) -> bool {
        plan.inputs.iter().all(|&(v, n)| {
            if v == self.step.labels {
                self.labels.len() == n
            } else {
                self.vals[v.index()].as_ref().is_some_and(|t| t.data.len() == n)
            }
        })
    }

    /// Fills `table` with the buffer of every slot available after `hosts_done` host nodes,
    /// checking each against the plan.
    fn bind(
        &mut self,
        plan: &GroupPlan,
        table: *mut *mut u8,
        scalars: *mut f32,
        hosts_done: usize,
    ) -> Result<(), ExecError> {
        for (i, s) in plan.slots.iter().enumerate() {
            if s.after_host.is_some_and(|h| h >= hosts_done) {
                continue;
            }
            let (ptr, elem, len): (*mut u8, Elem, usize) = match s.key {
                SlotKey::Data(v) => {
                    let t = self.vals[v.index()].as_mut().ok_or_else(|| mismatch(&s.key, "not written"))?;
                    if !t.data.is_standard_layout() {
                        // A GEMM may return column-major results; kernels index row-major.
                        t.data = t.data.as_standard_layout().into_owned();
                    }
                    let d = t.data.as_slice_mut().ok_or_else(|| mismatch(&s.key, "not contiguous"))?;
                    (d.as_mut_ptr().cast(), Elem::F32, d.len())
                }
                SlotKey::Codes(v) => {
                    let q = self.vals[v.index()]
                        .as_mut()
                        .and_then(|t| t.quant.as_mut())
                        .ok_or_else(|| mismatch(&s.key, "not quantized"))?;
                    match &mut q.codes {
                        Codes::Int { codes, .. } => {
                            let c = codes.as_slice_mut().ok_or_else(|| mismatch(&s.key, "not contiguous"))?;
                            (c.as_mut_ptr().cast(), Elem::I32, c.len())
                        }
                        Codes::Radix4 { codes, .. } => {
                            let c = codes.as_slice_mut().ok_or_else(|| mismatch(&s.key, "not contiguous"))?;
                            (c.as_mut_ptr().cast(), Elem::I8, c.len())
                        }
                    }
                }
                SlotKey::Scale(v) => {
                    let q = self.vals[v.index()]
                        .as_mut()
                        .and_then(|t| t.quant.as_mut())
                        .ok_or_else(|| mismatch(&s.key, "not quantized"))?;
                    ((&mut q.scale as *mut f32).cast(), Elem::F32, 1)
                }
                SlotKey::Param(p) | SlotKey::Grad(p) | SlotKey::Velocity(p) => {
                    let a = match s.key {
                        SlotKey::Param(_) => &mut self.params[p.index()],
                        SlotKey::Grad(_) => &mut self.grads[p.index()],
                        _ => &mut self.velocity[p.index()],
                    };
                    let d = a.as_slice_mut().ok_or_else(|| mismatch(&s.key, "not contiguous"))?;
                    (d.as_mut_ptr().cast(), Elem::F32, d.len())
                }
                SlotKey::SawbAlpha(p) => {
                    let a = self.sawb_alpha.get_mut(p.index()).ok_or_else(|| mismatch(&s.key, "no such parameter"))?;
                    ((a as *mut f32).cast(), Elem::F32, 1)
                }
                SlotKey::PoolArg(n) => {
                    let v = self.pool_arg.get_mut(&n.index()).ok_or_else(|| mismatch(&s.key, "no saved argmax"))?;
                    (v.as_mut_ptr().cast(), Elem::U64, v.len())
                }
                SlotKey::LearningRate => (scalars.cast(), Elem::F32, 1),
                SlotKey::GradScale(n) => {
                    let k = plan
                        .gradscale_nodes
                        .iter()
                        .position(|&m| m == n)
                        .ok_or_else(|| mismatch(&s.key, "no state"))?;
                    // SAFETY: `scalars` has 1 + gradscale_nodes.len() elements (`run_group`).
                    (unsafe { scalars.add(1 + k) }.cast(), Elem::F32, 1)
                }
            };
            if elem != s.elem || len != s.len {
                return Err(mismatch(&s.key, &format!("{elem:?} x {len}, compiled for {:?} x {}", s.elem, s.len)));
            }
            // SAFETY: `table` has `plan.slots.len()` entries (`run_group`).
            unsafe { table.add(i).write(ptr) };
        }
        Ok(())
    }

    /// The error the reference executor reports when node `i`'s finiteness check fails.
    pub(super) fn nonfinite_error(&self, i: usize) -> ExecError {
        let node = &self.step.nodes[i];
        let layer = node.layer.map_or("the network".to_string(), |l| format!("`{}`", self.step.layers[l.index()].name));
        let what = match &node.op {
            Op::QuantizeActivations { .. } => format!("the activations entering {layer}"),
            Op::QuantizeErrors { .. } => format!("the errors leaving {layer}"),
            Op::SgdUpdate { param } => format!("the gradient of `{}`", self.step.params[param.index()].name),
            _ => format!("{} in {layer}", crate::ir::text::op_text(&self.step, &node.op)),
        };
        ExecError::NonFinite { what, step: self.steps }
    }
}

/// The host-node callback of this executor, for [`crate::jit::compile`].
pub(super) const HOST: crate::jit::abi::HostNodeFn = host_node;
