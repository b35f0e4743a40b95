//! Emitters of the quantizer kernels: radix-4 rounding on both grid phases with GradScale,
//! SAWB and the uniform (PACT, INT4) codes, formula for formula the reference's.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Value, types};

use super::super::abi::{Elem, Status};
use super::super::emit::{Em, Lanes, mem};
use super::super::plan::R4Out;
use super::{exit_if_nonfinite, finite_vars, mark_nonfinite};
use crate::config::{GradScaleMode, Phase};
use crate::formats::int;

/// `formats::radix4::q_even(y, levels)` for finite `y`.
pub(super) fn q_even(e: &mut Em<'_>, l: Lanes, y: Value, levels: u32) -> Value {
    let a = e.b.ins().fabs(y);
    // 4^k <= a < 4^(k+1), k = floor((biased_exponent − 127) / 2); lo = 2^(2k), hi = 4·lo.
    let bits = e.bits(l, a);
    let ex = e.b.ins().ushr_imm_u(bits, 23);
    let c127 = e.ic(l, 127);
    let e2 = e.b.ins().isub(ex, c127);
    let k = e.b.ins().sshr_imm_u(e2, 1);
    let k2 = e.b.ins().ishl_imm_u(k, 1);
    let biased = e.b.ins().iadd(k2, c127);
    let lo_bits = e.b.ins().ishl_imm_u(biased, 23);
    let lo = e.float(l, lo_bits);
    let four = e.fc(l, 4.0);
    let hi = e.b.ins().fmul(lo, four);
    let c0625 = e.fc(l, 0.625);
    let thr = e.b.ins().fmul(c0625, hi);
    let up = e.fcmp(FloatCC::GreaterThan, a, thr);
    let r = e.sel(l, up, hi, lo);
    let (zero, one) = (e.fc(l, 0.0), e.fc(l, 1.0));
    let minpos = e.fc(l, f32::MIN_POSITIVE);
    let sub = e.fcmp(FloatCC::LessThan, a, minpos);
    let r = e.sel(l, sub, zero, r);
    let top = e.fcmp(FloatCC::GreaterThanOrEqual, a, one);
    let r = e.sel(l, top, one, r);
    // Below the smallest level: the smallest above half of it, else zero.
    let smallest = crate::formats::radix4::value_of(levels as i8, Phase::Even); // 4^-(levels-1)
    let (sm, half) = (e.fc(l, smallest), e.fc(l, 0.5 * smallest));
    let above_half = e.fcmp(FloatCC::GreaterThan, a, half);
    let flushed = e.sel(l, above_half, sm, zero);
    let low = e.fcmp(FloatCC::LessThan, r, sm);
    let r = e.sel(l, low, flushed, r);
    e.copysign(l, r, y)
}

/// `formats::radix4::code_of` of an even-grid value `q`.
pub(super) fn code_of(e: &mut Em<'_>, l: Lanes, q: Value) -> Value {
    let a = e.b.ins().fabs(q);
    let bits = e.bits(l, a);
    let ex = e.b.ins().ushr_imm_u(bits, 23);
    let c127 = e.ic(l, 127);
    let e2 = e.b.ins().isub(ex, c127);
    let neg = e.b.ins().ineg(e2);
    let k = e.b.ins().sshr_imm_u(neg, 1);
    let one = e.ic(l, 1);
    let odd = e.b.ins().band(e2, one);
    let k = e.b.ins().iadd(k, odd);
    let c = e.b.ins().iadd(k, one);
    let nc = e.b.ins().ineg(c);
    let z = e.fc(l, 0.0);
    let negative = e.fcmp(FloatCC::LessThan, q, z);
    let c = e.sel(l, negative, nc, c);
    let is0 = e.fcmp(FloatCC::Equal, a, z);
    let zi = e.ic(l, 0);
    e.sel(l, is0, zi, c)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn radix4(
    e: &mut Em<'_>,
    node: crate::ir::NodeId,
    g: usize,
    n: usize,
    levels: u32,
    mode: GradScaleMode,
    state: Option<usize>,
    outs: &[R4Out; 2],
) {
    let gp = e.slot(g);
    // Pass 1: finiteness and max|g| (max is order-free).
    let (bad4, bad1) = finite_vars(e);
    let (z4, z1) = (e.fc(Lanes::Four, 0.0), e.b.ins().f32const(0.0));
    let (m4, m1) = (e.var(types::F32X4, z4), e.var(types::F32, z1));
    e.map(n, |e, l, i| {
        let v = e.ld(l, gp, i);
        mark_nonfinite(e, l, v, bad4, bad1);
        let a = e.b.ins().fabs(v);
        let var = if l == Lanes::Four { m4 } else { m1 };
        let m = e.b.use_var(var);
        let gt = e.fcmp(FloatCC::GreaterThan, a, m);
        let m = e.sel(l, gt, a, m);
        e.b.def_var(var, m);
    });
    exit_if_nonfinite(e, bad4, bad1, Status::NonFinite(node).encode());
    let mut m = e.b.use_var(m1);
    let v4 = e.b.use_var(m4);
    for lane in 0..4u8 {
        let s = e.b.ins().extractlane(v4, lane);
        let gt = e.fcmp(FloatCC::GreaterThan, s, m);
        m = e.sel(Lanes::One, gt, s, m);
    }
    // GradScale (scalar; the host's exact rules).
    let s = match mode {
        GradScaleMode::Off => e.b.ins().f32const(1.0),
        GradScaleMode::Current => {
            let call = e.b.ins().call(e.imports.gradscale, &[m]);
            e.b.inst_results(call)[0]
        }
        GradScaleMode::Incremental => {
            let sp = e.slot(state.expect("planned with a state slot"));
            let prev = e.b.ins().load(types::F32, mem(), sp, 0);
            let call = e.b.ins().call(e.imports.gradscale_incremental, &[m, prev]);
            let s = e.b.inst_results(call)[0];
            e.b.ins().store(mem(), s, sp, 0);
            s
        }
    };
    let one = e.b.ins().f32const(1.0);
    let inv = e.b.ins().fdiv(one, s);
    let ptrs: Vec<(Phase, Value, Value)> = outs
        .iter()
        .map(|o| {
            let (dp, cp, sp) = (e.slot(o.data), e.slot(o.codes), e.slot(o.scale));
            let num = e.b.ins().f32const(if o.phase == Phase::Odd { 2.0 } else { 1.0 });
            let scale = e.b.ins().fdiv(num, s);
            e.b.ins().store(mem(), scale, sp, 0);
            (o.phase, dp, cp)
        })
        .collect();
    // Pass 2: y = g·s; data = q_phase(y)·(1/s); code = code_of(q_even(y or y/2)).
    e.map(n, |e, l, i| {
        let v = e.ld(l, gp, i);
        let sv = e.splat(l, s);
        let y = e.b.ins().fmul(v, sv);
        let invv = e.splat(l, inv);
        let mut even: Option<Value> = None;
        let mut odd: Option<Value> = None;
        for &(phase, dp, cp) in &ptrs {
            let qe = match phase {
                Phase::Even => *even.get_or_insert_with(|| q_even(e, l, y, levels)),
                Phase::Odd => *odd.get_or_insert_with(|| {
                    let h = e.fc(l, 0.5);
                    let y2 = e.b.ins().fmul(h, y);
                    q_even(e, l, y2, levels)
                }),
            };
            let q = match phase {
                Phase::Even => qe,
                Phase::Odd => {
                    let two = e.fc(l, 2.0);
                    e.b.ins().fmul(two, qe)
                }
            };
            let d = e.b.ins().fmul(q, invv);
            e.st(d, dp, i);
            let c = code_of(e, l, qe);
            let a = e.addr(cp, i, Elem::I8);
            match l {
                Lanes::One => {
                    let c8 = e.b.ins().ireduce(types::I8, c);
                    e.b.ins().store(mem(), c8, a, 0);
                }
                Lanes::Four => {
                    // i32x4 -> i16x8 -> i8x16 (saturating; codes are within ±16); the low four
                    // bytes are the four codes.
                    let h = e.b.ins().snarrow(c, c);
                    let b8 = e.b.ins().snarrow(h, h);
                    let little = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
                    let w = e.b.ins().bitcast(types::I32X4, little, b8);
                    let word = e.b.ins().extractlane(w, 0);
                    e.b.ins().store(mem(), word, a, 0);
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
pub(super) fn sawb(
    e: &mut Em<'_>,
    w: usize,
    alpha: usize,
    data: usize,
    codes: usize,
    scale: usize,
    n: usize,
    c1: f64,
    c2: f64,
) {
    let wp = e.slot(w);
    let (sq, ab, mx) = sawb_moments(e, wp, n);
    let nf = e.b.ins().f64const(n as f64);
    let ms = e.b.ins().fdiv(sq, nf);
    let rt = e.b.ins().sqrt(ms);
    let k1 = e.b.ins().f64const(c1);
    let t1 = e.b.ins().fmul(k1, rt);
    let ma = e.b.ins().fdiv(ab, nf);
    let k2 = e.b.ins().f64const(c2);
    let t2 = e.b.ins().fmul(k2, ma);
    let d = e.b.ins().fsub(t1, t2);
    let a = e.b.ins().fdemote(types::F32, d);
    // alpha > 0 and finite, else max|w|.
    let z = e.b.ins().f32const(0.0);
    let inf = e.b.ins().f32const(f32::INFINITY);
    let pos = e.fcmp(FloatCC::GreaterThan, a, z);
    let fin = e.fcmp(FloatCC::LessThan, a, inf);
    let ok = e.and(pos, fin);
    let a = e.b.ins().select(ok, a, mx);
    let ap = e.slot(alpha);
    e.b.ins().store(mem(), a, ap, 0);
    let seven = e.b.ins().f32const(7.0);
    let step = e.b.ins().fdiv(a, seven);
    let sp = e.slot(scale);
    e.b.ins().store(mem(), step, sp, 0);
    let (dp, cp) = (e.slot(data), e.slot(codes));
    let neg_a = e.b.ins().fneg(a);
    e.map(n, |e, l, i| {
        // round(7·clamp(w, −α, α)/α) (α = 0 gives NaN, i.e. code 0, as in Rust's `as`).
        let v = e.ld(l, wp, i);
        uniform_code(e, l, v, neg_a, a, 7.0, step, cp, dp, i);
    });
}

/// `formats::int::sawb_moments` of the `n` weights at `wp`: `(Σw², Σ|w|)` as f64 values and
/// `max|w|` as f32. The eight chains are four `f64x2` accumulators per sum, fed two weights at a
/// time (one 64-bit load, widened); the max runs on the same widened lanes (exact: every f32 is
/// an f64) by compare and select, which, like `f32::max`, never picks a NaN.
fn sawb_moments(e: &mut Em<'_>, wp: Value, n: usize) -> (Value, Value, Value) {
    const VECS: usize = int::SAWB_CHAINS / 2;
    let whole = n / int::SAWB_CHAINS * int::SAWB_CHAINS;
    let z = e.b.ins().f64const(0.0);
    let zv = e.b.ins().splat(types::F64X2, z);
    let sq: [_; VECS] = std::array::from_fn(|_| e.var(types::F64X2, zv));
    let ab: [_; VECS] = std::array::from_fn(|_| e.var(types::F64X2, zv));
    let mx: [_; VECS] = std::array::from_fn(|_| e.var(types::F64X2, zv));
    let little = MemFlagsData::new().with_endianness(Endianness::Little);
    e.for_range(0, whole, int::SAWB_CHAINS, |e, i| {
        for k in 0..VECS {
            let j = e.b.ins().iadd_imm_s(i, 2 * k as i64);
            let a = e.addr(wp, j, Elem::F32);
            let pair = e.b.ins().load(types::I64, mem(), a, 0);
            let pair = e.b.ins().scalar_to_vector(types::I64X2, pair);
            let pair = e.b.ins().bitcast(types::F32X4, little, pair);
            let v = e.b.ins().fvpromote_low(pair);
            let v2 = e.b.ins().fmul(v, v);
            let s = e.b.use_var(sq[k]);
            let s = e.b.ins().fadd(s, v2);
            e.b.def_var(sq[k], s);
            let av = e.b.ins().fabs(v);
            let t = e.b.use_var(ab[k]);
            let t = e.b.ins().fadd(t, av);
            e.b.def_var(ab[k], t);
            let m = e.b.use_var(mx[k]);
            let gt = e.b.ins().fcmp(FloatCC::GreaterThan, av, m);
            let gt = e.b.ins().bitcast(types::F64X2, MemFlagsData::new(), gt);
            let m = e.b.ins().bitselect(gt, av, m);
            e.b.def_var(mx[k], m);
        }
    });
    // Chains 2k and 2k+1 are the lanes of vector k: ((c0+c1)+(c2+c3))+((c4+c5)+(c6+c7)).
    let tree = |e: &mut Em<'_>, vars: &[cranelift_frontend::Variable; VECS]| {
        let pair: Vec<Value> = vars
            .iter()
            .map(|&v| {
                let v = e.b.use_var(v);
                let lo = e.b.ins().extractlane(v, 0);
                let hi = e.b.ins().extractlane(v, 1);
                e.b.ins().fadd(lo, hi)
            })
            .collect();
        let l = e.b.ins().fadd(pair[0], pair[1]);
        let r = e.b.ins().fadd(pair[2], pair[3]);
        e.b.ins().fadd(l, r)
    };
    let (s, a) = (tree(e, &sq), tree(e, &ab));
    let (s, a) = (e.var(types::F64, s), e.var(types::F64, a));
    // max|w| over the lanes (order-free: compare and select), demoted exactly.
    let mut m = e.b.ins().f64const(0.0);
    for &v in &mx {
        let v = e.b.use_var(v);
        for lane in 0..2 {
            let x = e.b.ins().extractlane(v, lane);
            let gt = e.b.ins().fcmp(FloatCC::GreaterThan, x, m);
            m = e.b.ins().select(gt, x, m);
        }
    }
    let m = e.b.ins().fdemote(types::F32, m);
    let m = e.var(types::F32, m);
    // The remaining weights, in order, on the combined sums.
    e.for_range(whole, n, 1, |e, i| {
        let v = e.ld(Lanes::One, wp, i);
        let vd = e.b.ins().fpromote(types::F64, v);
        let v2 = e.b.ins().fmul(vd, vd);
        let t = e.b.use_var(s);
        let t = e.b.ins().fadd(t, v2);
        e.b.def_var(s, t);
        let av = e.b.ins().fabs(v);
        let avd = e.b.ins().fpromote(types::F64, av);
        let t = e.b.use_var(a);
        let t = e.b.ins().fadd(t, avd);
        e.b.def_var(a, t);
        let x = e.b.use_var(m);
        let gt = e.fcmp(FloatCC::GreaterThan, av, x);
        let x = e.sel(Lanes::One, gt, av, x);
        e.b.def_var(m, x);
    });
    (e.b.use_var(s), e.b.use_var(a), e.b.use_var(m))
}

/// The uniform quantizers' shared tail (PACT and SAWB): `code = round(levels·clamp(v, lo, hi)/hi)`
/// stored at `codes[i]`, and `code·step` at `data[i]` (products commute exactly).
#[allow(clippy::too_many_arguments)]
pub(super) fn uniform_code(
    e: &mut Em<'_>,
    l: Lanes,
    v: Value,
    lo: Value,
    hi: Value,
    levels: f32,
    step: Value,
    codes: Value,
    data: Value,
    i: Value,
) {
    let (lo, hi) = (e.splat(l, lo), e.splat(l, hi));
    let c = e.clamp(l, v, lo, hi);
    let k = e.fc(l, levels);
    let y = e.b.ins().fmul(k, c);
    let y = e.b.ins().fdiv(y, hi);
    let r = e.round_away(l, y);
    let code = e.f2i(l, r);
    e.st(code, codes, i);
    let cf = e.i2f(l, code);
    let st = e.splat(l, step);
    let d = e.b.ins().fmul(st, cf);
    e.st(d, data, i);
}
