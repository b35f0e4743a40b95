//! The JIT: every fusion group of a lowered step ([`crate::ir::FusionGroup`]: the digital nodes
//! between two MVMs of one phase) becomes one native function, generated with cranelift.
//!
//! Pipeline per group: [`plan::plan_group`] (kernels, slots and lengths from the IR, with every
//! index bound checked) → [`kernels::emit`] per node into one cranelift function (shapes,
//! constants and optimizer settings baked in; `f32x4` loops unrolled four times) → cranelift's
//! verifier and optimizer (`opt_level = speed`) → machine code in a [`JITModule`].
//!
//! Kernels compute exactly what the reference executor computes, operation for operation, so
//! results are bit-identical with and without the JIT (differential tests check every kernel).
//! Nodes without an inline kernel (array writes, softmax cross-entropy, batch-norm, im2col,
//! col2im, padded pooling, INT8 quantizers) are calls back into the reference executor from
//! inside the group's function. [`abi`] states the calling convention and its safety contract.

pub mod abi;
mod emit;
mod kernels;
pub mod native;
pub mod plan;

use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use std::fmt;
use std::time::{Duration, Instant};

use crate::formats::radix4;
use crate::ir::{GroupId, Step};
pub use plan::{Consts, GroupPlan};

/// Why a step could not be compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum JitError {
    /// The step failed the IR verifier.
    Verify(Vec<String>),
    /// A node's operands do not allow an in-bounds kernel.
    Plan(String),
    /// Cranelift rejected the code or the host CPU.
    Codegen(String),
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Verify(e) => write!(f, "the step fails the IR verifier: {}", e.join("; ")),
            JitError::Plan(m) => write!(f, "JIT plan: {m}"),
            JitError::Codegen(m) => write!(f, "JIT code generation: {m}"),
        }
    }
}

impl std::error::Error for JitError {}

fn cg(e: impl fmt::Display) -> JitError {
    JitError::Codegen(e.to_string())
}

/// A compiled group.
pub struct CompiledGroup {
    /// Its plan (the slot table the function expects).
    pub plan: GroupPlan,
    /// The function (see [`abi`]).
    pub func: abi::GroupFn,
    /// Time to generate and compile it.
    pub compile_time: Duration,
}

/// Every group of a step, compiled. Owns the code memory.
pub struct JitStep {
    /// Groups, indexed by [`GroupId`].
    pub groups: Vec<CompiledGroup>,
    /// Total compile time, module setup included.
    pub compile_time: Duration,
    /// The constants it was compiled with.
    pub consts: Consts,
    module: Option<JITModule>,
}

impl fmt::Debug for JitStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitStep").field("groups", &self.groups.len()).field("compile_time", &self.compile_time).finish()
    }
}

impl Drop for JitStep {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers in `groups` are dropped with `self` and the executor
            // that called them holds this `JitStep`, so none runs or is called after this.
            unsafe { m.free_memory() };
        }
    }
}

// SAFETY: the module is only touched when compiling and dropping (both through `&mut self` /
// ownership); the compiled functions are plain code, callable from any thread.
unsafe impl Send for JitStep {}
// SAFETY: as above; `&JitStep` only exposes the immutable plans and function pointers.
unsafe impl Sync for JitStep {}

/// `radix4::gradscale`, for the generated code.
extern "C" fn host_gradscale(m: f32) -> f32 {
    radix4::gradscale(m)
}

/// `radix4::gradscale_incremental`, starting from `gradscale(m)` when `prev` is NaN.
extern "C" fn host_gradscale_incremental(m: f32, prev: f32) -> f32 {
    let prev = if prev.is_nan() { radix4::gradscale(m) } else { prev };
    radix4::gradscale_incremental(m, prev)
}

/// A host-node callback for code that is only printed, never run.
unsafe extern "C" fn no_host(_: *mut std::ffi::c_void, _: u32) -> u32 {
    abi::Status::HostError.encode()
}

struct Gen {
    module: JITModule,
    fctx: FunctionBuilderContext,
    imports: [FuncId; 3],
}

impl Gen {
    fn new(host: abi::HostNodeFn) -> Result<Gen, JitError> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(cg)?;
        flags.set("is_pic", "false").map_err(cg)?;
        // Cranelift's IR verifier runs in debug builds (every test) and on `--emit clif`; release
        // builds skip it (a third of the compile time).
        flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }).map_err(cg)?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Codegen(format!("this CPU is not supported: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(cg)?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        jb.symbol(abi::HOST_NODE, host as *const u8);
        jb.symbol(abi::GRADSCALE, host_gradscale as *const u8);
        jb.symbol(abi::GRADSCALE_INCREMENTAL, host_gradscale_incremental as *const u8);
        let mut module = JITModule::new(jb);
        let cc = module.isa().default_call_conv();
        let sig = |params: &[types::Type], ret: types::Type| {
            let mut s = Signature::new(cc);
            s.params.extend(params.iter().map(|&t| AbiParam::new(t)));
            s.returns.push(AbiParam::new(ret));
            s
        };
        let host_sig = sig(&[types::I64, types::I32], types::I32);
        let gs = sig(&[types::F32], types::F32);
        let gsi = sig(&[types::F32, types::F32], types::F32);
        let imports = [
            module.declare_function(abi::HOST_NODE, Linkage::Import, &host_sig).map_err(cg)?,
            module.declare_function(abi::GRADSCALE, Linkage::Import, &gs).map_err(cg)?,
            module.declare_function(abi::GRADSCALE_INCREMENTAL, Linkage::Import, &gsi).map_err(cg)?,
        ];
        Ok(Gen { module, fctx: FunctionBuilderContext::new(), imports })
    }

    /// Builds group `plan` into `ctx.func` (not yet compiled).
    fn build(&mut self, ctx: &mut cranelift_codegen::Context, plan: &GroupPlan, consts: &Consts, index: u32) {
        let cc = self.module.isa().default_call_conv();
        ctx.func.signature = Signature::new(cc);
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.returns.push(AbiParam::new(types::I32));
        ctx.func.name = UserFuncName::user(0, index);
        let refs = self.imports.map(|id| self.module.declare_func_in_func(id, &mut ctx.func));
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let (table, hctx) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let exit = b.create_block();
        b.append_block_param(exit, types::I32);
        let imports = emit::Imports { host_node: refs[0], gradscale: refs[1], gradscale_incremental: refs[2] };
        let mut e = emit::Em { b, table, ctx: hctx, imports, exit };
        for k in &plan.kernels {
            kernels::emit(&mut e, k, consts);
        }
        let ok = e.b.ins().iconst(types::I32, 0);
        e.b.ins().jump(exit, &[ok.into()]);
        e.b.switch_to_block(exit);
        let st = e.b.block_params(exit)[0];
        e.b.ins().return_(&[st]);
        // Loops are built with variables; sealing at the end lets the SSA builder place their
        // block parameters once every predecessor is known.
        e.b.seal_all_blocks();
        e.b.finalize(self.module.target_config());
    }
}

/// Plans every group of `step`.
pub fn plan(step: &Step) -> Result<Vec<GroupPlan>, JitError> {
    crate::ir::verify::verify(step).map_err(JitError::Verify)?;
    (0..step.groups.len()).map(|g| plan::plan_group(step, GroupId(g as u32))).collect()
}

/// Compiles every group of `step`; `host` is the callback for host nodes (see [`abi`]).
pub fn compile(step: &Step, consts: &Consts, host: abi::HostNodeFn) -> Result<JitStep, JitError> {
    let t0 = Instant::now();
    let plans = plan(step)?;
    let mut gen_ = Gen::new(host)?;
    let mut ctx = gen_.module.make_context();
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let t = Instant::now();
        gen_.build(&mut ctx, p, consts, i as u32);
        let id = gen_.module.declare_function(&format!("group{i}"), Linkage::Local, &ctx.func.signature).map_err(cg)?;
        gen_.module.define_function(id, &mut ctx).map_err(|e| JitError::Codegen(format!("{}: {e:?}", p.name)))?;
        gen_.module.clear_context(&mut ctx);
        ids.push(id);
        times.push(t.elapsed());
    }
    gen_.module.finalize_definitions().map_err(cg)?;
    let mut groups = Vec::new();
    for ((p, id), compile_time) in plans.into_iter().zip(ids).zip(times) {
        let ptr = gen_.module.get_finalized_function(id);
        // SAFETY: `ptr` is the finalized code of a function built by `Gen::build` with the
        // signature (i64, i64) -> i32 in the host's default calling convention, which is
        // `extern "C"` for `GroupFn` on the platforms cranelift-native supports.
        let func = unsafe { std::mem::transmute::<*const u8, abi::GroupFn>(ptr) };
        groups.push(CompiledGroup { plan: p, func, compile_time });
    }
    Ok(JitStep { groups, compile_time: t0.elapsed(), consts: *consts, module: Some(gen_.module) })
}

/// The cranelift IR of every group, as built (before optimization), for `imcc lower --emit clif`.
pub fn clif(step: &Step, consts: &Consts) -> Result<String, JitError> {
    let plans = plan(step)?;
    let mut gen_ = Gen::new(no_host)?;
    let mut ctx = gen_.module.make_context();
    let mut out = String::new();
    for (i, p) in plans.iter().enumerate() {
        gen_.build(&mut ctx, p, consts, i as u32);
        cranelift_codegen::verifier::verify_function(&ctx.func, gen_.module.isa())
            .map_err(|e| JitError::Codegen(format!("{}: {e}", p.name)))?;
        out.push_str(&describe(step, p));
        out.push_str(&ctx.func.display().to_string());
        out.push('\n');
        gen_.module.clear_context(&mut ctx);
    }
    Ok(out)
}

/// A comment block naming a group's nodes, kernels and slots.
pub fn describe(step: &Step, p: &GroupPlan) -> String {
    use std::fmt::Write;
    let mut s = format!("; {} {}: {} node(s)\n", p.group, p.name, p.nodes.len());
    for (id, k) in p.nodes.iter().zip(&p.kernels) {
        let _ = writeln!(s, ";   {id} {}: {}", crate::ir::text::op_text(step, &step.nodes[id.index()].op), k.name());
    }
    for (i, sl) in p.slots.iter().enumerate() {
        let rw = if sl.written { "rw" } else { "r" };
        let _ = writeln!(s, ";   slot {i}: {:?} {:?} x {} {rw}", sl.key, sl.elem, sl.len);
    }
    s.push_str(&format!(
        ";   fn0 = {}, fn1 = {}, fn2 = {}\n",
        abi::HOST_NODE,
        abi::GRADSCALE,
        abi::GRADSCALE_INCREMENTAL
    ));
    s
}
