//! Emitters of the spatial kernels: max and average pooling (and the average's gradient), the
//! channels-first transposes, and im2col with its adjoint col2im.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::super::abi::Elem;
use super::super::emit::{Em, Lanes, mem};
use super::super::plan::{Conv, Window};
use super::zero;

/// Loops over every pooled output: `body(e, plane_base, out_index, oy, ox)` where `plane_base`
/// is the input offset of the plane and `out_index` the flat output index.
pub(super) fn pooled(e: &mut Em<'_>, w: &Window, mut body: impl FnMut(&mut Em<'_>, Value, Value)) {
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

pub(super) fn max_pool(e: &mut Em<'_>, x: usize, y: usize, arg: usize, win: &Window) {
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

pub(super) fn avg_pool(e: &mut Em<'_>, x: usize, y: usize, win: &Window) {
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

pub(super) fn avg_pool_grad(e: &mut Em<'_>, g: usize, y: usize, win: &Window) {
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
pub(super) fn transpose(e: &mut Em<'_>, x: usize, y: usize, b: usize, c: usize, hw: usize, inverse: bool) {
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
pub(super) fn im2col(e: &mut Em<'_>, x: usize, y: usize, g: &Conv, adjoint: bool) {
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
