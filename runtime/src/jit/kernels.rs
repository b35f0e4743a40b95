//! One emitter per [`Kernel`]: the reference executor's formulas (`exec/`, `formats/`), operation
//! for operation, so results are bit-identical. Order-sensitive reductions (f32 sums, SAWB's f64
//! moments) keep the reference's element order; order-free ones (max, "any non-finite") use
//! vector lanes.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};

use super::abi::{Elem, Status};
use super::emit::{Em, Lanes, mem};
use super::plan::{Alpha, Consts, Conv, Kernel, R4Out, SgdKind, Window};
use crate::config::{GradScaleMode, Phase};

/// Emits kernel `k`.
pub fn emit(e: &mut Em<'_>, k: &Kernel, consts: &Consts) {
    match k {
        Kernel::Copy { x, ys, n } => copy(e, *x, ys, *n),
        Kernel::Sum { xs, y, n } => sum(e, xs, *y, *n),
        Kernel::BiasAdd { z, b, y, rows, cols } => bias_add(e, *z, *b, *y, *rows, *cols),
        Kernel::BiasGrad { g, grad, rows, cols } => bias_grad(e, *g, *grad, *rows, *cols),
        Kernel::Relu { x, y, n } => {
            let (xp, yp) = (e.slot(*x), e.slot(*y));
            e.map(*n, |e, l, i| {
                let v = e.ld(l, xp, i);
                let z = e.fc(l, 0.0);
                let pos = e.fcmp(FloatCC::GreaterThan, v, z);
                let r = e.sel(l, pos, v, z);
                e.st(r, yp, i);
            });
        }
        Kernel::ReluGrad { x, g, y, n } => {
            let (xp, gp, yp) = (e.slot(*x), e.slot(*g), e.slot(*y));
            e.map(*n, |e, l, i| {
                let v = e.ld(l, xp, i);
                let gv = e.ld(l, gp, i);
                let z = e.fc(l, 0.0);
                let pos = e.fcmp(FloatCC::GreaterThan, v, z);
                let r = e.sel(l, pos, gv, z);
                e.st(r, yp, i);
            });
        }
        Kernel::Clamp { x, alpha, y, n } => {
            let (xp, yp) = (e.slot(*x), e.slot(*y));
            let a = alpha_value(e, alpha);
            e.map(*n, |e, l, i| {
                let v = e.ld(l, xp, i);
                let (lo, hi) = (e.fc(l, 0.0), e.splat(l, a));
                let r = e.clamp(l, v, lo, hi);
                e.st(r, yp, i);
            });
        }
        Kernel::Pact { node, x, alpha, data, codes, scale, n } => {
            let xp = e.slot(*x);
            check_finite(e, xp, *n, Status::NonFinite(*node).encode());
            let (dp, cp, sp) = (e.slot(*data), e.slot(*codes), e.slot(*scale));
            let a = alpha_value(e, alpha);
            let fifteen = e.b.ins().f32const(15.0);
            let step = e.b.ins().fdiv(a, fifteen);
            e.b.ins().store(mem(), step, sp, 0);
            e.map(*n, |e, l, i| {
                // round(clamp(x, 0, a)·15/a), then code·(a/15).
                let v = e.ld(l, xp, i);
                let lo = e.b.ins().f32const(0.0);
                uniform_code(e, l, v, lo, a, 15.0, step, cp, dp, i);
            });
        }
        Kernel::PactGrad { x, g, alpha, galpha, y, n } => pact_grad(e, *x, *g, alpha, *galpha, *y, *n),
        Kernel::Radix4 { node, g, n, levels, mode, state, outs } => {
            radix4(e, *node, *g, *n, *levels, *mode, *state, outs)
        }
        Kernel::Sgd { node, param, grad, zero_grad, velocity, lr, kind, n } => {
            sgd(e, *node, *param, *grad, *zero_grad, *velocity, *lr, *kind, *n, consts)
        }
        Kernel::Sawb { w, alpha, data, codes, scale, n, c1, c2 } => {
            sawb(e, *w, *alpha, *data, *codes, *scale, *n, *c1, *c2)
        }
        Kernel::MaxPool { x, y, arg, win } => max_pool(e, *x, *y, *arg, win),
        Kernel::MaxPoolGrad { node, g, arg, y, n, m } => {
            let (gp, ap, yp) = (e.slot(*g), e.slot(*arg), e.slot(*y));
            zero(e, yp, *n);
            e.for_range(0, *m, 1, |e, j| {
                let a = e.addr(ap, j, Elem::U64);
                let idx = e.b.ins().load(types::I64, mem(), a, 0);
                // An index from memory: check it before it addresses anything.
                let oob = e.b.ins().icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, idx, *n as i64);
                e.exit_if(oob, Status::BadIndex(*node).encode());
                let gv = e.ld(Lanes::One, gp, j);
                let cur = e.ld(Lanes::One, yp, idx);
                let s = e.b.ins().fadd(cur, gv);
                e.st(s, yp, idx);
            });
        }
        Kernel::AvgPool { x, y, win } => avg_pool(e, *x, *y, win),
        Kernel::AvgPoolGrad { g, y, win } => avg_pool_grad(e, *g, *y, win),
        Kernel::Transpose { x, y, b, c, hw, inverse } => transpose(e, *x, *y, *b, *c, *hw, *inverse),
        Kernel::Im2col { x, y, conv, adjoint } => im2col(e, *x, *y, conv, *adjoint),
        Kernel::Host { node, .. } => {
            let id = e.b.ins().iconst(types::I32, node.0 as i64);
            let call = e.b.ins().call(e.imports.host_node, &[e.ctx, id]);
            let st = e.b.inst_results(call)[0];
            let failed = e.b.ins().icmp_imm_u(IntCC::NotEqual, st, 0);
            let cont = e.b.create_block();
            e.b.ins().brif(failed, e.exit, &[st.into()], cont, &[]);
            e.b.switch_to_block(cont);
        }
    }
}

fn alpha_value(e: &mut Em<'_>, a: &Alpha) -> Value {
    match a {
        Alpha::Learned(s) => {
            let p = e.slot(*s);
            e.b.ins().load(types::F32, mem(), p, 0)
        }
        Alpha::Fixed(v) => e.b.ins().f32const(*v),
    }
}

fn zero(e: &mut Em<'_>, p: Value, n: usize) {
    e.map(n, |e, l, i| {
        let z = e.fc(l, 0.0);
        e.st(z, p, i);
    });
}

fn copy(e: &mut Em<'_>, x: usize, ys: &[usize], n: usize) {
    let xp = e.slot(x);
    let yps: Vec<Value> = ys.iter().map(|&y| e.slot(y)).collect();
    e.map(n, |e, l, i| {
        let v = e.ld(l, xp, i);
        for &yp in &yps {
            e.st(v, yp, i);
        }
    });
}

fn sum(e: &mut Em<'_>, xs: &[usize], y: usize, n: usize) {
    let xps: Vec<Value> = xs.iter().map(|&x| e.slot(x)).collect();
    let yp = e.slot(y);
    e.map(n, |e, l, i| {
        let mut acc = e.ld(l, xps[0], i);
        for &xp in &xps[1..] {
            let v = e.ld(l, xp, i);
            acc = e.b.ins().fadd(acc, v);
        }
        e.st(acc, yp, i);
    });
}

fn bias_add(e: &mut Em<'_>, z: usize, b: usize, y: usize, rows: usize, cols: usize) {
    let (zp, bp, yp) = (e.slot(z), e.slot(b), e.slot(y));
    e.for_range(0, rows, 1, |e, r| {
        let off = e.b.ins().imul_imm_s(r, cols as i64);
        let zr = e.addr(zp, off, Elem::F32);
        let yr = e.addr(yp, off, Elem::F32);
        e.map(cols, |e, l, j| {
            let v = e.ld(l, zr, j);
            let bv = e.ld(l, bp, j);
            let s = e.b.ins().fadd(v, bv);
            e.st(s, yr, j);
        });
    });
}

/// Column sums in row order, four vectors of columns at a time (independent chains).
fn bias_grad(e: &mut Em<'_>, g: usize, grad: usize, rows: usize, cols: usize) {
    let (gp, dp) = (e.slot(g), e.slot(grad));
    let block = |e: &mut Em<'_>, l: Lanes, width: usize, j: Value| {
        let per = if l == Lanes::Four { 4 } else { 1 };
        let vars: Vec<_> = (0..width / per)
            .map(|_| {
                let z = e.fc(l, 0.0);
                e.var(l.f(), z)
            })
            .collect();
        e.for_range(0, rows, 1, |e, r| {
            let off = e.b.ins().imul_imm_s(r, cols as i64);
            let row = e.addr(gp, off, Elem::F32);
            for (u, &var) in vars.iter().enumerate() {
                let ju = e.b.ins().iadd_imm_s(j, (u * per) as i64);
                let v = e.ld(l, row, ju);
                let acc = e.b.use_var(var);
                let acc = e.b.ins().fadd(acc, v);
                e.b.def_var(var, acc);
            }
        });
        for (u, &var) in vars.iter().enumerate() {
            let ju = e.b.ins().iadd_imm_s(j, (u * per) as i64);
            let acc = e.b.use_var(var);
            let cur = e.ld(l, dp, ju);
            let s = e.b.ins().fadd(cur, acc);
            e.st(s, dp, ju);
        }
    };
    let (c16, c4) = (cols / 16 * 16, cols / 4 * 4);
    e.for_range(0, c16, 16, |e, j| block(e, Lanes::Four, 16, j));
    e.for_range(c16, c4, 4, |e, j| block(e, Lanes::Four, 4, j));
    e.for_range(c4, cols, 1, |e, j| block(e, Lanes::One, 1, j));
}

fn pact_grad(e: &mut Em<'_>, x: usize, g: usize, alpha: &Alpha, galpha: Option<usize>, y: usize, n: usize) {
    let (xp, gp, yp) = (e.slot(x), e.slot(g), e.slot(y));
    let a = alpha_value(e, alpha);
    let z0 = e.b.ins().f32const(0.0);
    let ga = e.var(types::F32, z0);
    e.map(n, |e, l, i| {
        let v = e.ld(l, xp, i);
        let gv = e.ld(l, gp, i);
        let (z, av) = (e.fc(l, 0.0), e.splat(l, a));
        let ge0 = e.fcmp(FloatCC::GreaterThanOrEqual, v, z);
        let lta = e.fcmp(FloatCC::LessThan, v, av);
        let inside = e.and(ge0, lta);
        let r = e.sel(l, inside, gv, z);
        e.st(r, yp, i);
        if galpha.is_some() {
            // Σ g over x >= a in element order; adding 0.0 elsewhere is exact (the sum is
            // never −0.0: it starts at +0.0).
            let above = e.fcmp(FloatCC::GreaterThanOrEqual, v, av);
            let m = e.sel(l, above, gv, z);
            let mut acc = e.b.use_var(ga);
            match l {
                Lanes::One => acc = e.b.ins().fadd(acc, m),
                Lanes::Four => {
                    for lane in 0..4u8 {
                        let s = e.b.ins().extractlane(m, lane);
                        acc = e.b.ins().fadd(acc, s);
                    }
                }
            }
            e.b.def_var(ga, acc);
        }
    });
    if let Some(s) = galpha {
        let p = e.slot(s);
        let cur = e.b.ins().load(types::F32, mem(), p, 0);
        let acc = e.b.use_var(ga);
        let r = e.b.ins().fadd(cur, acc);
        e.b.ins().store(mem(), r, p, 0);
    }
}

/// Returns `status` if any of the `n` floats at `p` is NaN or infinite (`x − x != 0`).
fn check_finite(e: &mut Em<'_>, p: Value, n: usize, status: u32) {
    let (bad4, bad1) = finite_vars(e);
    e.map(n, |e, l, i| {
        let v = e.ld(l, p, i);
        mark_nonfinite(e, l, v, bad4, bad1);
    });
    exit_if_nonfinite(e, bad4, bad1, status);
}

fn finite_vars(e: &mut Em<'_>) -> (cranelift_frontend::Variable, cranelift_frontend::Variable) {
    let z4 = e.ic(Lanes::Four, 0);
    let z1 = e.b.ins().iconst(types::I8, 0);
    (e.var(types::I32X4, z4), e.var(types::I8, z1))
}

fn mark_nonfinite(
    e: &mut Em<'_>,
    l: Lanes,
    v: Value,
    bad4: cranelift_frontend::Variable,
    bad1: cranelift_frontend::Variable,
) {
    let d = e.b.ins().fsub(v, v);
    let z = e.fc(l, 0.0);
    let m = e.fcmp(FloatCC::NotEqual, d, z);
    e.any_into(if l == Lanes::Four { bad4 } else { bad1 }, m);
}

fn exit_if_nonfinite(e: &mut Em<'_>, bad4: cranelift_frontend::Variable, bad1: cranelift_frontend::Variable, st: u32) {
    let v4 = e.b.use_var(bad4);
    let any4 = e.b.ins().vany_true(v4);
    let v1 = e.b.use_var(bad1);
    let any = e.b.ins().bor(any4, v1);
    e.exit_if(any, st);
}

/// `formats::radix4::q_even(y, levels)` for finite `y`.
fn q_even(e: &mut Em<'_>, l: Lanes, y: Value, levels: u32) -> Value {
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
fn code_of(e: &mut Em<'_>, l: Lanes, q: Value) -> Value {
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
fn radix4(
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
fn sgd(
    e: &mut Em<'_>,
    node: crate::ir::NodeId,
    param: usize,
    grad: usize,
    zero_grad: bool,
    velocity: usize,
    lr: usize,
    kind: SgdKind,
    n: usize,
    c: &Consts,
) {
    let gp = e.slot(grad);
    check_finite(e, gp, n, Status::NonFinite(node).encode());
    let (wp, vp, lp) = (e.slot(param), e.slot(velocity), e.slot(lr));
    let lr = e.b.ins().load(types::F32, mem(), lp, 0);
    // The SAWB mask applies only when the last clip was positive: use +inf otherwise.
    let clip = match kind {
        SgdKind::Weight { sawb_alpha } => {
            let ap = e.slot(sawb_alpha);
            let a = e.b.ins().load(types::F32, mem(), ap, 0);
            let z = e.b.ins().f32const(0.0);
            let pos = e.fcmp(FloatCC::GreaterThan, a, z);
            let inf = e.b.ins().f32const(f32::INFINITY);
            Some(e.b.ins().select(pos, a, inf))
        }
        _ => None,
    };
    e.map(n, |e, l, i| {
        let w = e.ld(l, wp, i);
        let mut gv = e.ld(l, gp, i);
        if zero_grad {
            let z = e.fc(l, 0.0);
            e.st(z, gp, i);
        }
        match kind {
            SgdKind::Weight { .. } => {
                let a = e.splat(l, clip.expect("weight clip"));
                let aw = e.b.ins().fabs(w);
                let out = e.fcmp(FloatCC::GreaterThan, aw, a);
                let z = e.fc(l, 0.0);
                gv = e.sel(l, out, z, gv);
                let wd = e.fc(l, c.weight_decay);
                let d = e.b.ins().fmul(wd, w);
                gv = e.b.ins().fadd(gv, d);
            }
            SgdKind::PactAlpha { decay } => {
                let dc = e.fc(l, decay);
                let d = e.b.ins().fmul(dc, w);
                gv = e.b.ins().fadd(gv, d);
            }
            SgdKind::Plain => {}
        }
        let mu = e.fc(l, c.momentum);
        let v = e.ld(l, vp, i);
        let mv = e.b.ins().fmul(mu, v);
        let v = e.b.ins().fadd(mv, gv);
        e.st(v, vp, i);
        let upd = if c.nesterov {
            let mv = e.b.ins().fmul(mu, v);
            e.b.ins().fadd(gv, mv)
        } else {
            v
        };
        let lrv = e.splat(l, lr);
        let step = e.b.ins().fmul(lrv, upd);
        let mut w = e.b.ins().fsub(w, step);
        if let SgdKind::PactAlpha { .. } = kind {
            // f32::max(w, 1e-3): NaN gives 1e-3.
            let floor = e.fc(l, 1e-3);
            let gt = e.fcmp(FloatCC::GreaterThan, w, floor);
            w = e.sel(l, gt, w, floor);
        }
        e.st(w, wp, i);
    });
}

#[allow(clippy::too_many_arguments)]
fn sawb(e: &mut Em<'_>, w: usize, alpha: usize, data: usize, codes: usize, scale: usize, n: usize, c1: f64, c2: f64) {
    let wp = e.slot(w);
    // Moments in f64, in element order (two independent chains), and max|w|.
    let zd = e.b.ins().f64const(0.0);
    let (sq, ab) = (e.var(types::F64, zd), e.var(types::F64, zd));
    let zf = e.b.ins().f32const(0.0);
    let mx = e.var(types::F32, zf);
    e.for_range(0, n, 1, |e, i| {
        let v = e.ld(Lanes::One, wp, i);
        let vd = e.b.ins().fpromote(types::F64, v);
        let v2 = e.b.ins().fmul(vd, vd);
        let s = e.b.use_var(sq);
        let s = e.b.ins().fadd(s, v2);
        e.b.def_var(sq, s);
        let av = e.b.ins().fabs(v);
        let avd = e.b.ins().fpromote(types::F64, av);
        let a = e.b.use_var(ab);
        let a = e.b.ins().fadd(a, avd);
        e.b.def_var(ab, a);
        let m = e.b.use_var(mx);
        let gt = e.fcmp(FloatCC::GreaterThan, av, m);
        let m = e.sel(Lanes::One, gt, av, m);
        e.b.def_var(mx, m);
    });
    let nf = e.b.ins().f64const(n as f64);
    let s = e.b.use_var(sq);
    let ms = e.b.ins().fdiv(s, nf);
    let rt = e.b.ins().sqrt(ms);
    let k1 = e.b.ins().f64const(c1);
    let t1 = e.b.ins().fmul(k1, rt);
    let a = e.b.use_var(ab);
    let ma = e.b.ins().fdiv(a, nf);
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
    let m = e.b.use_var(mx);
    let a = e.b.ins().select(ok, a, m);
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

/// The uniform quantizers' shared tail (PACT and SAWB): `code = round(levels·clamp(v, lo, hi)/hi)`
/// stored at `codes[i]`, and `code·step` at `data[i]` (products commute exactly).
#[allow(clippy::too_many_arguments)]
fn uniform_code(
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

/// Loops over every pooled output: `body(e, plane_base, out_index, oy, ox)` where `plane_base`
/// is the input offset of the plane and `out_index` the flat output index.
fn pooled(e: &mut Em<'_>, w: &Window, mut body: impl FnMut(&mut Em<'_>, Value, Value)) {
    let w = *w;
    e.for_range(0, w.planes, 1, |e, p| {
        e.for_range(0, w.ho, 1, |e, oy| {
            e.for_range(0, w.wo, 1, |e, ox| {
                // First tap: (p·h + oy·s)·w + ox·s; output: (p·ho + oy)·wo + ox.
                let ph = e.b.ins().imul_imm_s(p, w.h as i64);
                let oys = e.b.ins().imul_imm_s(oy, w.s as i64);
                let row = e.b.ins().iadd(ph, oys);
                let row = e.b.ins().imul_imm_s(row, w.w as i64);
                let oxs = e.b.ins().imul_imm_s(ox, w.s as i64);
                let first = e.b.ins().iadd(row, oxs);
                let pho = e.b.ins().imul_imm_s(p, w.ho as i64);
                let o = e.b.ins().iadd(pho, oy);
                let o = e.b.ins().imul_imm_s(o, w.wo as i64);
                let o = e.b.ins().iadd(o, ox);
                body(e, first, o);
            });
        });
    });
}

fn max_pool(e: &mut Em<'_>, x: usize, y: usize, arg: usize, win: &Window) {
    let (xp, yp, ap) = (e.slot(x), e.slot(y), e.slot(arg));
    let (k, w) = (win.k, win.w);
    pooled(e, win, |e, first, o| {
        let mut best = e.ld(Lanes::One, xp, first);
        let mut at = first;
        for ky in 0..k {
            for kx in 0..k {
                if ky == 0 && kx == 0 {
                    continue;
                }
                let t = e.b.ins().iadd_imm_s(first, (ky * w + kx) as i64);
                let v = e.ld(Lanes::One, xp, t);
                let gt = e.fcmp(FloatCC::GreaterThan, v, best);
                best = e.b.ins().select(gt, v, best);
                at = e.b.ins().select(gt, t, at);
            }
        }
        e.st(best, yp, o);
        let a = e.addr(ap, o, Elem::U64);
        e.b.ins().store(mem(), at, a, 0);
    });
}

fn avg_pool(e: &mut Em<'_>, x: usize, y: usize, win: &Window) {
    let (xp, yp) = (e.slot(x), e.slot(y));
    let (k, w) = (win.k, win.w);
    let inv = 1.0 / (k * k) as f32;
    pooled(e, win, |e, first, o| {
        let mut sum = e.b.ins().f32const(0.0);
        for ky in 0..k {
            for kx in 0..k {
                let t = e.b.ins().iadd_imm_s(first, (ky * w + kx) as i64);
                let v = e.ld(Lanes::One, xp, t);
                sum = e.b.ins().fadd(sum, v);
            }
        }
        let invc = e.b.ins().f32const(inv);
        let r = e.b.ins().fmul(sum, invc);
        e.st(r, yp, o);
    });
}

fn avg_pool_grad(e: &mut Em<'_>, g: usize, y: usize, win: &Window) {
    let (gp, yp) = (e.slot(g), e.slot(y));
    zero(e, yp, win.planes * win.h * win.w);
    let (k, w) = (win.k, win.w);
    let inv = 1.0 / (k * k) as f32;
    pooled(e, win, |e, first, o| {
        let gv = e.ld(Lanes::One, gp, o);
        let invc = e.b.ins().f32const(inv);
        let v = e.b.ins().fmul(gv, invc);
        for ky in 0..k {
            for kx in 0..k {
                let t = e.b.ins().iadd_imm_s(first, (ky * w + kx) as i64);
                let cur = e.ld(Lanes::One, yp, t);
                let s = e.b.ins().fadd(cur, v);
                e.st(s, yp, t);
            }
        }
    });
}

/// Per batch element, `[HW, C]` to `[C, HW]` (or back).
fn transpose(e: &mut Em<'_>, x: usize, y: usize, b: usize, c: usize, hw: usize, inverse: bool) {
    let (xp, yp) = (e.slot(x), e.slot(y));
    e.for_range(0, b, 1, |e, bi| {
        let base = e.b.ins().imul_imm_s(bi, (c * hw) as i64);
        e.for_range(0, hw, 1, |e, pos| {
            e.for_range(0, c, 1, |e, ci| {
                // rows index (bi·hw + pos)·c + ci; channels-first index (bi·c + ci)·hw + pos.
                let pc = e.b.ins().imul_imm_s(pos, c as i64);
                let r = e.b.ins().iadd(base, pc);
                let r = e.b.ins().iadd(r, ci);
                let ch = e.b.ins().imul_imm_s(ci, hw as i64);
                let f = e.b.ins().iadd(base, ch);
                let f = e.b.ins().iadd(f, pos);
                let (from, to) = if inverse { (f, r) } else { (r, f) };
                let v = e.ld(Lanes::One, xp, from);
                e.st(v, yp, to);
            });
        });
    });
}

/// im2col: `cols[(b, oy, ox), (c, ky, kx)] = img[b, c, oy·s + ky − p, ox·s + kx − p]`, zero in
/// the padding; col2im (`adjoint`) adds each column element into the zeroed image instead, in
/// the same order as the reference. Taps are unrolled; a tap outside the image (an unsigned
/// compare of its coordinates) branches around its access.
fn im2col(e: &mut Em<'_>, x: usize, y: usize, g: &Conv, adjoint: bool) {
    let (xp, yp) = (e.slot(x), e.slot(y));
    let (img, cols) = if adjoint { (yp, xp) } else { (xp, yp) };
    if adjoint {
        zero(e, img, g.b * g.c * g.h * g.w);
    }
    let g = *g;
    let ncols = g.c * g.k * g.k;
    e.for_range(0, g.b, 1, |e, bi| {
        e.for_range(0, g.ho, 1, |e, oy| {
            e.for_range(0, g.wo, 1, |e, ox| {
                // row = (bi·ho + oy)·wo + ox
                let r = e.b.ins().imul_imm_s(bi, g.ho as i64);
                let r = e.b.ins().iadd(r, oy);
                let r = e.b.ins().imul_imm_s(r, g.wo as i64);
                let r = e.b.ins().iadd(r, ox);
                let row = e.b.ins().imul_imm_s(r, ncols as i64);
                let oys = e.b.ins().imul_imm_s(oy, g.s as i64);
                let oxs = e.b.ins().imul_imm_s(ox, g.s as i64);
                e.for_range(0, g.c, 1, |e, ci| {
                    let plane = e.b.ins().imul_imm_s(bi, g.c as i64);
                    let plane = e.b.ins().iadd(plane, ci);
                    let plane = e.b.ins().imul_imm_s(plane, (g.h * g.w) as i64);
                    let col0 = e.b.ins().imul_imm_s(ci, (g.k * g.k) as i64);
                    let col0 = e.b.ins().iadd(row, col0);
                    for ky in 0..g.k {
                        let iy = e.b.ins().iadd_imm_s(oys, ky as i64 - g.p as i64);
                        let y_in = e.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, iy, g.h as i64);
                        for kx in 0..g.k {
                            let ix = e.b.ins().iadd_imm_s(oxs, kx as i64 - g.p as i64);
                            let x_in = e.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, ix, g.w as i64);
                            let inside = e.b.ins().band(y_in, x_in);
                            let col = e.b.ins().iadd_imm_s(col0, (ky * g.k + kx) as i64);
                            let at_img = |e: &mut Em<'_>| {
                                let i = e.b.ins().imul_imm_s(iy, g.w as i64);
                                let i = e.b.ins().iadd(i, ix);
                                e.b.ins().iadd(plane, i)
                            };
                            if adjoint {
                                let (yes, done) = (e.b.create_block(), e.b.create_block());
                                e.b.ins().brif(inside, yes, &[], done, &[]);
                                e.b.switch_to_block(yes);
                                let i = at_img(e);
                                let v = e.ld(Lanes::One, cols, col);
                                let cur = e.ld(Lanes::One, img, i);
                                let s = e.b.ins().fadd(cur, v);
                                e.st(s, img, i);
                                e.b.ins().jump(done, &[]);
                                e.b.switch_to_block(done);
                            } else {
                                let (yes, no, done) = (e.b.create_block(), e.b.create_block(), e.b.create_block());
                                e.b.append_block_param(done, types::F32);
                                e.b.ins().brif(inside, yes, &[], no, &[]);
                                e.b.switch_to_block(yes);
                                let i = at_img(e);
                                let v = e.ld(Lanes::One, img, i);
                                e.b.ins().jump(done, &[v.into()]);
                                e.b.switch_to_block(no);
                                let z = e.b.ins().f32const(0.0);
                                e.b.ins().jump(done, &[z.into()]);
                                e.b.switch_to_block(done);
                                let v = e.b.block_params(done)[0];
                                e.st(v, cols, col);
                            }
                        }
                    }
                });
            });
        });
    });
}
