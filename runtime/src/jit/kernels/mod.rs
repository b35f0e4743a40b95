//! One emitter per [`Kernel`]: the reference executor's formulas (`exec/`, `formats/`), operation
//! for operation, so results are bit-identical. Order-sensitive reductions (f32 sums, SAWB's f64
//! moments) keep the reference's element order; order-free ones (max, "any non-finite") use
//! vector lanes.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::abi::{Elem, Status};
use super::emit::{Em, Lanes, mem};
use super::plan::{Alpha, Consts, Kernel, SgdKind};

mod quant;
mod spatial;

use quant::*;
use spatial::*;

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

pub(super) fn alpha_value(e: &mut Em<'_>, a: &Alpha) -> Value {
    match a {
        Alpha::Learned(s) => {
            let p = e.slot(*s);
            e.b.ins().load(types::F32, mem(), p, 0)
        }
        Alpha::Fixed(v) => e.b.ins().f32const(*v),
    }
}

pub(super) fn zero(e: &mut Em<'_>, p: Value, n: usize) {
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
pub(super) fn check_finite(e: &mut Em<'_>, p: Value, n: usize, status: u32) {
    let (bad4, bad1) = finite_vars(e);
    e.map(n, |e, l, i| {
        let v = e.ld(l, p, i);
        mark_nonfinite(e, l, v, bad4, bad1);
    });
    exit_if_nonfinite(e, bad4, bad1, status);
}

pub(super) fn finite_vars(e: &mut Em<'_>) -> (cranelift_frontend::Variable, cranelift_frontend::Variable) {
    let z4 = e.ic(Lanes::Four, 0);
    let z1 = e.b.ins().iconst(types::I8, 0);
    (e.var(types::I32X4, z4), e.var(types::I8, z1))
}

pub(super) fn mark_nonfinite(
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

pub(super) fn exit_if_nonfinite(
    e: &mut Em<'_>,
    bad4: cranelift_frontend::Variable,
    bad1: cranelift_frontend::Variable,
    st: u32,
) {
    let v4 = e.b.use_var(bad4);
    let any4 = e.b.ins().vany_true(v4);
    let v1 = e.b.use_var(bad1);
    let any = e.b.ins().bor(any4, v1);
    e.exit_if(any, st);
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
