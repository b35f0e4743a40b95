//! Cranelift building blocks for the kernels: counted loops, the `f32x4` x4-unrolled map with a
//! scalar tail, and element operations written once for both widths ([`Lanes`]).
//!
//! Code-shape rules (measured, `spec/ir.md` § JIT): cranelift neither vectorizes nor unrolls,
//! so the map emits 128-bit vectors unrolled four times; selects are `fcmp` + `bitselect`
//! (a scalar `select` on a float compare becomes a branch, and `fmax` carries a long NaN
//! sequence); no `fma` anywhere, since the reference rounds every product.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{Block, FuncRef, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::abi::Elem;

/// Scalar or four lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// One element.
    One,
    /// Four elements (`f32x4` / `i32x4`).
    Four,
}

impl Lanes {
    /// The float type.
    pub fn f(self) -> Type {
        match self {
            Lanes::One => types::F32,
            Lanes::Four => types::F32X4,
        }
    }

    /// The 32-bit integer type.
    pub fn i(self) -> Type {
        match self {
            Lanes::One => types::I32,
            Lanes::Four => types::I32X4,
        }
    }
}

/// Memory flags of every access: the ABI guarantees the buffers are valid (no trap), but only
/// element-aligned, so no `aligned` flag.
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Functions the generated code calls.
#[derive(Clone, Copy)]
pub struct Imports {
    /// `imcc_host_node(ctx, node) -> status`.
    pub host_node: FuncRef,
    /// `imcc_gradscale(max) -> s`.
    pub gradscale: FuncRef,
    /// `imcc_gradscale_incremental(max, prev) -> s`.
    pub gradscale_incremental: FuncRef,
}

/// The function being built.
pub struct Em<'a> {
    /// The cranelift builder.
    pub b: FunctionBuilder<'a>,
    /// The slot table (first argument).
    pub table: Value,
    /// The host context (second argument).
    pub ctx: Value,
    /// Imported functions.
    pub imports: Imports,
    /// The return block: one `i32` parameter, the status.
    pub exit: Block,
}

impl Em<'_> {
    /// The pointer in slot `s` (loaded from the table now; see the ABI on host calls).
    pub fn slot(&mut self, s: usize) -> Value {
        self.b.ins().load(types::I64, mem(), self.table, (s * 8) as i32)
    }

    /// `base + idx·bytes`.
    pub fn addr(&mut self, base: Value, idx: Value, elem: Elem) -> Value {
        let off = self.b.ins().imul_imm_s(idx, elem.bytes() as i64);
        self.b.ins().iadd(base, off)
    }

    /// An `i64` constant.
    pub fn i64c(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// `for i in (start..end).step_by(step) { body(i) }` with `i: i64`.
    pub fn for_range(&mut self, start: usize, end: usize, step: usize, body: impl FnOnce(&mut Self, Value)) {
        if start >= end {
            return;
        }
        let header = self.b.create_block();
        let body_b = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        let s = self.i64c(start as i64);
        self.b.ins().jump(header, &[s.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, end as i64);
        self.b.ins().brif(more, body_b, &[], done, &[]);
        self.b.switch_to_block(body_b);
        body(self, i);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        self.b.ins().jump(header, &[next.into()]);
        self.b.switch_to_block(done);
    }

    /// Calls `f(lanes, i)` for every element index `i` of `0..n`: four vectors per iteration
    /// (when `n >= 16`), single vectors up to the last multiple of four, then scalars. `f`
    /// handles elements `i .. i + lanes`. Short loops skip the unrolled body, which keeps code
    /// (and compile time) small.
    pub fn map(&mut self, n: usize, mut f: impl FnMut(&mut Self, Lanes, Value)) {
        let (n16, n4) = if n >= 64 { (n / 16 * 16, n / 4 * 4) } else { (0, n / 4 * 4) };
        self.for_range(0, n16, 16, |e, i| {
            for u in 0..4 {
                let j = e.b.ins().iadd_imm_s(i, 4 * u);
                f(e, Lanes::Four, j);
            }
        });
        self.for_range(n16, n4, 4, |e, i| f(e, Lanes::Four, i));
        self.for_range(n4, n, 1, |e, i| f(e, Lanes::One, i));
    }

    /// Loads `lanes` f32 (or i32) elements at `base[idx]`.
    pub fn ld(&mut self, l: Lanes, base: Value, idx: Value) -> Value {
        let a = self.addr(base, idx, Elem::F32);
        self.b.ins().load(l.f(), mem(), a, 0)
    }

    /// Stores `v` (f32 or i32 lanes) at `base[idx]` (4-byte elements).
    pub fn st(&mut self, v: Value, base: Value, idx: Value) {
        let a = self.addr(base, idx, Elem::F32);
        self.b.ins().store(mem(), v, a, 0);
    }

    /// A float constant of the lane type.
    pub fn fc(&mut self, l: Lanes, c: f32) -> Value {
        let s = self.b.ins().f32const(c);
        self.splat(l, s)
    }

    /// An i32 constant of the lane type.
    pub fn ic(&mut self, l: Lanes, c: i32) -> Value {
        let s = self.b.ins().iconst(types::I32, c as i64);
        self.splat(l, s)
    }

    /// A scalar broadcast to the lane type.
    pub fn splat(&mut self, l: Lanes, s: Value) -> Value {
        match l {
            Lanes::One => s,
            Lanes::Four => {
                let ty = self.b.func.dfg.value_type(s);
                let vt = if ty == types::F32 { types::F32X4 } else { types::I32X4 };
                self.b.ins().splat(vt, s)
            }
        }
    }

    /// A float comparison: an `i8` (0/1) for scalars, an `i32x4` lane mask for vectors.
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    /// `m ? a : b` for a mask from [`Em::fcmp`].
    pub fn sel(&mut self, l: Lanes, m: Value, a: Value, b: Value) -> Value {
        match l {
            Lanes::One => self.b.ins().select(m, a, b),
            Lanes::Four => {
                let ty = self.b.func.dfg.value_type(a);
                let m = if ty == types::F32X4 { self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m) } else { m };
                self.b.ins().bitselect(m, a, b)
            }
        }
    }

    /// Both masks.
    pub fn and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }

    /// Rust's `f32::round` (half away from zero): `t = trunc(y)`, plus `±1` where
    /// `|y − t| >= 0.5` (`y − t` is exact). `t` itself is kept otherwise, so `−0.0` survives.
    pub fn round_away(&mut self, l: Lanes, y: Value) -> Value {
        let t = self.b.ins().trunc(y);
        let d = self.b.ins().fsub(y, t);
        let ad = self.b.ins().fabs(d);
        let half = self.fc(l, 0.5);
        let up = self.fcmp(FloatCC::GreaterThanOrEqual, ad, half);
        let one = self.fc(l, 1.0);
        let s1 = self.copysign(l, one, y);
        let t1 = self.b.ins().fadd(t, s1);
        self.sel(l, up, t1, t)
    }

    /// `mag` with the sign of `sign` (`f32::copysign`); vectors by bit masks (x64 has no
    /// vector `fcopysign` in cranelift).
    pub fn copysign(&mut self, l: Lanes, mag: Value, sign: Value) -> Value {
        match l {
            Lanes::One => self.b.ins().fcopysign(mag, sign),
            Lanes::Four => {
                let (m, s) = (self.bits(l, mag), self.bits(l, sign));
                let low = self.ic(l, 0x7fff_ffff);
                let high = self.ic(l, i32::MIN);
                let m = self.b.ins().band(m, low);
                let s = self.b.ins().band(s, high);
                let r = self.b.ins().bor(m, s);
                self.float(l, r)
            }
        }
    }

    /// Rust's `x.clamp(lo, hi)`: `x < lo ? lo : x`, then `> hi ? hi : _` (NaN passes through).
    pub fn clamp(&mut self, l: Lanes, x: Value, lo: Value, hi: Value) -> Value {
        let below = self.fcmp(FloatCC::LessThan, x, lo);
        let x = self.sel(l, below, lo, x);
        let above = self.fcmp(FloatCC::GreaterThan, x, hi);
        self.sel(l, above, hi, x)
    }

    /// `f32 as i32` (saturating; NaN is 0).
    pub fn f2i(&mut self, l: Lanes, x: Value) -> Value {
        self.b.ins().fcvt_to_sint_sat(l.i(), x)
    }

    /// `i32 as f32`.
    pub fn i2f(&mut self, l: Lanes, x: Value) -> Value {
        self.b.ins().fcvt_from_sint(l.f(), x)
    }

    /// Reinterprets float lanes as integers.
    pub fn bits(&mut self, l: Lanes, x: Value) -> Value {
        self.b.ins().bitcast(l.i(), MemFlagsData::new(), x)
    }

    /// Reinterprets integer lanes as floats.
    pub fn float(&mut self, l: Lanes, x: Value) -> Value {
        self.b.ins().bitcast(l.f(), MemFlagsData::new(), x)
    }

    /// Adds lane mask `m` (non-zero where true) to an accumulating "any" variable of the same
    /// width.
    pub fn any_into(&mut self, var: Variable, m: Value) {
        let acc = self.b.use_var(var);
        let acc = self.b.ins().bor(acc, m);
        self.b.def_var(var, acc);
    }

    /// Returns `status` from the function if `cond` (an `i8`) is non-zero.
    pub fn exit_if(&mut self, cond: Value, status: u32) {
        let cont = self.b.create_block();
        let st = self.b.ins().iconst(types::I32, status as i64);
        self.b.ins().brif(cond, self.exit, &[st.into()], cont, &[]);
        self.b.switch_to_block(cont);
    }

    /// Declares a variable initialized to `v`.
    pub fn var(&mut self, ty: Type, v: Value) -> Variable {
        let var = self.b.declare_var(ty);
        self.b.def_var(var, v);
        var
    }
}
