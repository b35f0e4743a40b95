//! The same kernels written by hand in Rust (compiled ahead of time by rustc/LLVM), run on the
//! same slot table as the generated code: the baseline `imcc bench --kernels` compares the JIT
//! against, and a third implementation the tests hold bit-identical to the other two.

use super::abi::Status;
use super::plan::{Alpha, Consts, GroupPlan, Kernel, SgdKind, Window};
use crate::config::{GradScaleMode, Phase};
use crate::formats::{int, radix4};

/// The buffer table of a group, as the generated code sees it.
struct Table<'a> {
    ptrs: *const *mut u8,
    plan: &'a GroupPlan,
}

impl Table<'_> {
    /// Slot `s` as a slice of its planned length.
    ///
    /// # Safety
    /// The ABI of `jit::abi`: the table was bound for `plan`, so slot `s` points to `len`
    /// elements of its type, distinct from every other slot; the caller creates at most one
    /// slice per slot at a time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get<T>(&self, s: usize) -> &mut [T] {
        let len = self.plan.slots[s].len;
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.add(s).read().cast::<T>(), len) }
    }

    /// A one-element slot.
    #[allow(clippy::mut_from_ref)]
    unsafe fn scalar(&self, s: usize) -> &mut f32 {
        // SAFETY: as `get`.
        unsafe { &mut self.get::<f32>(s)[0] }
    }

    unsafe fn alpha(&self, a: &Alpha) -> f32 {
        match a {
            // SAFETY: as `get`.
            Alpha::Learned(s) => unsafe { *self.scalar(*s) },
            Alpha::Fixed(v) => *v,
        }
    }
}

/// Runs group `plan` kernel by kernel; host nodes through `host(ctx, node)`.
///
/// # Safety
/// `table` and `ctx` as for the generated function of `plan` (see `jit::abi`).
pub unsafe fn run_group(
    plan: &GroupPlan,
    consts: &Consts,
    table: *const *mut u8,
    ctx: *mut std::ffi::c_void,
    host: super::abi::HostNodeFn,
) -> u32 {
    let t = Table { ptrs: table, plan };
    for k in &plan.kernels {
        // SAFETY: the caller's contract; each kernel takes one slice per distinct slot.
        let st = unsafe { run(&t, k, consts, ctx, host) };
        if st != 0 {
            return st;
        }
    }
    0
}

fn finite(x: &[f32]) -> bool {
    x.iter().all(|v| v.is_finite())
}

unsafe fn run(t: &Table<'_>, k: &Kernel, c: &Consts, ctx: *mut std::ffi::c_void, host: super::abi::HostNodeFn) -> u32 {
    // SAFETY (whole body): `Table::get`'s contract; slots of one kernel are distinct.
    unsafe {
        match k {
            Kernel::Copy { x, ys, .. } => {
                let x = t.get::<f32>(*x);
                for &y in ys {
                    t.get::<f32>(y).copy_from_slice(x);
                }
            }
            Kernel::Sum { xs, y, .. } => {
                let y = t.get::<f32>(*y);
                y.copy_from_slice(t.get::<f32>(xs[0]));
                for &x in &xs[1..] {
                    y.iter_mut().zip(t.get::<f32>(x).iter()).for_each(|(a, b)| *a += b);
                }
            }
            Kernel::BiasAdd { z, b, y, cols, .. } => {
                let b = t.get::<f32>(*b);
                for (yr, zr) in t.get::<f32>(*y).chunks_exact_mut(*cols).zip(t.get::<f32>(*z).chunks_exact(*cols)) {
                    for ((o, &v), &bv) in yr.iter_mut().zip(zr).zip(b.iter()) {
                        *o = v + bv;
                    }
                }
            }
            Kernel::BiasGrad { g, grad, cols, .. } => {
                let mut sum = vec![0.0f32; *cols];
                for row in t.get::<f32>(*g).chunks_exact(*cols) {
                    sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
                }
                t.get::<f32>(*grad).iter_mut().zip(&sum).for_each(|(d, &s)| *d += s);
            }
            Kernel::Relu { x, y, .. } => {
                for (o, &v) in t.get::<f32>(*y).iter_mut().zip(t.get::<f32>(*x).iter()) {
                    *o = if v > 0.0 { v } else { 0.0 };
                }
            }
            Kernel::ReluGrad { x, g, y, .. } => {
                let (x, g) = (t.get::<f32>(*x), t.get::<f32>(*g));
                for ((o, &v), &gv) in t.get::<f32>(*y).iter_mut().zip(x.iter()).zip(g.iter()) {
                    *o = if v > 0.0 { gv } else { 0.0 };
                }
            }
            Kernel::Clamp { x, alpha, y, .. } => {
                let a = t.alpha(alpha);
                for (o, &v) in t.get::<f32>(*y).iter_mut().zip(t.get::<f32>(*x).iter()) {
                    *o = v.clamp(0.0, a);
                }
            }
            Kernel::Pact { node, x, alpha, data, codes, scale, .. } => {
                let x = t.get::<f32>(*x);
                if !finite(x) {
                    return Status::NonFinite(*node).encode();
                }
                let a = t.alpha(alpha);
                let step = a / 15.0;
                *t.scalar(*scale) = step;
                let (d, cs) = (t.get::<f32>(*data), t.get::<i32>(*codes));
                for ((o, cd), &v) in d.iter_mut().zip(cs.iter_mut()).zip(x.iter()) {
                    let code = int::pact_code(v, a) as i32;
                    *cd = code;
                    *o = code as f32 * step;
                }
            }
            Kernel::PactGrad { x, g, alpha, galpha, y, .. } => {
                let a = t.alpha(alpha);
                let (x, g) = (t.get::<f32>(*x), t.get::<f32>(*g));
                let mut ga = 0.0f32;
                for ((o, &v), &gv) in t.get::<f32>(*y).iter_mut().zip(x.iter()).zip(g.iter()) {
                    if v >= a {
                        ga += gv;
                    }
                    *o = if (0.0..a).contains(&v) { gv } else { 0.0 };
                }
                if let Some(s) = galpha {
                    *t.scalar(*s) += ga;
                }
            }
            Kernel::Radix4 { node, g, levels, mode, state, outs, .. } => {
                let g = t.get::<f32>(*g);
                if !finite(g) {
                    return Status::NonFinite(*node).encode();
                }
                let m = g.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                let s = match mode {
                    GradScaleMode::Off => 1.0,
                    GradScaleMode::Current => radix4::gradscale(m),
                    GradScaleMode::Incremental => {
                        let st = t.scalar(state.expect("planned with a state slot"));
                        let prev = if st.is_nan() { radix4::gradscale(m) } else { *st };
                        *st = radix4::gradscale_incremental(m, prev);
                        *st
                    }
                };
                let inv = 1.0 / s;
                for o in outs {
                    let odd = o.phase == Phase::Odd;
                    *t.scalar(o.scale) = if odd { 2.0 } else { 1.0 } / s;
                    let (d, cs) = (t.get::<f32>(o.data), t.get::<i8>(o.codes));
                    for ((dv, cv), &v) in d.iter_mut().zip(cs.iter_mut()).zip(g.iter()) {
                        let y = v * s;
                        let q = radix4::q_phase(y, *levels, o.phase);
                        *dv = q * inv;
                        *cv = radix4::code_of(if odd { q * 0.5 } else { q });
                    }
                }
            }
            Kernel::Sgd { node, param, grad, zero_grad, velocity, lr, kind, .. } => {
                let g = t.get::<f32>(*grad);
                if !finite(g) {
                    return Status::NonFinite(*node).encode();
                }
                let lr = *t.scalar(*lr);
                let clip = match kind {
                    SgdKind::Weight { sawb_alpha } => {
                        let a = *t.scalar(*sawb_alpha);
                        if a > 0.0 { a } else { f32::INFINITY }
                    }
                    _ => f32::INFINITY,
                };
                let (w, v) = (t.get::<f32>(*param), t.get::<f32>(*velocity));
                for ((wv, vv), gr) in w.iter_mut().zip(v.iter_mut()).zip(g.iter_mut()) {
                    let mut gv = *gr;
                    if *zero_grad {
                        *gr = 0.0;
                    }
                    match kind {
                        SgdKind::Weight { .. } => {
                            if wv.abs() > clip {
                                gv = 0.0;
                            }
                            gv += c.weight_decay * *wv;
                        }
                        SgdKind::PactAlpha { decay } => gv += decay * *wv,
                        SgdKind::Plain => {}
                    }
                    *vv = c.momentum * *vv + gv;
                    let upd = if c.nesterov { gv + c.momentum * *vv } else { *vv };
                    *wv -= lr * upd;
                    if let SgdKind::PactAlpha { .. } = kind {
                        *wv = wv.max(1e-3);
                    }
                }
            }
            Kernel::Sawb { w, alpha, data, codes, scale, c1, c2, .. } => {
                let w = t.get::<f32>(*w);
                let a = int::sawb_alpha(&ndarray::ArrayView1::from(&*w), *c1, *c2);
                *t.scalar(*alpha) = a;
                let step = a / 7.0;
                *t.scalar(*scale) = step;
                let (d, cs) = (t.get::<f32>(*data), t.get::<i32>(*codes));
                for ((dv, cv), &v) in d.iter_mut().zip(cs.iter_mut()).zip(w.iter()) {
                    let code = int::sawb_code(v, a) as i32;
                    *cv = code;
                    *dv = step * code as f32;
                }
            }
            Kernel::MaxPool { x, y, arg, win } => {
                let (x, y, arg) = (t.get::<f32>(*x), t.get::<f32>(*y), t.get::<usize>(*arg));
                windows(win, |first, o| {
                    let (mut best, mut at) = (x[first], first);
                    for ky in 0..win.k {
                        for kx in 0..win.k {
                            let i = first + ky * win.w + kx;
                            if x[i] > best {
                                best = x[i];
                                at = i;
                            }
                        }
                    }
                    y[o] = best;
                    arg[o] = at;
                });
            }
            Kernel::MaxPoolGrad { node, g, arg, y, n, .. } => {
                let y = t.get::<f32>(*y);
                y.fill(0.0);
                for (&i, &gv) in t.get::<usize>(*arg).iter().zip(t.get::<f32>(*g).iter()) {
                    if i >= *n {
                        return Status::BadIndex(*node).encode();
                    }
                    y[i] += gv;
                }
            }
            Kernel::AvgPool { x, y, win } => {
                let (x, y) = (t.get::<f32>(*x), t.get::<f32>(*y));
                let inv = 1.0 / (win.k * win.k) as f32;
                windows(win, |first, o| {
                    let mut sum = 0.0f32;
                    for ky in 0..win.k {
                        for kx in 0..win.k {
                            sum += x[first + ky * win.w + kx];
                        }
                    }
                    y[o] = sum * inv;
                });
            }
            Kernel::AvgPoolGrad { g, y, win } => {
                let (g, y) = (t.get::<f32>(*g), t.get::<f32>(*y));
                y.fill(0.0);
                let inv = 1.0 / (win.k * win.k) as f32;
                windows(win, |first, o| {
                    let v = g[o] * inv;
                    for ky in 0..win.k {
                        for kx in 0..win.k {
                            y[first + ky * win.w + kx] += v;
                        }
                    }
                });
            }
            Kernel::Transpose { x, y, b, c, hw, inverse } => {
                let (x, y) = (t.get::<f32>(*x), t.get::<f32>(*y));
                for bi in 0..*b {
                    let base = bi * c * hw;
                    for pos in 0..*hw {
                        for ci in 0..*c {
                            let (r, f) = (base + pos * c + ci, base + ci * hw + pos);
                            if *inverse {
                                y[r] = x[f];
                            } else {
                                y[f] = x[r];
                            }
                        }
                    }
                }
            }
            Kernel::Im2col { x, y, conv: g, adjoint } => {
                let (x, y) = (t.get::<f32>(*x), t.get::<f32>(*y));
                let (img, cols) = if *adjoint { (&mut *y, &mut *x) } else { (&mut *x, &mut *y) };
                if *adjoint {
                    img.fill(0.0);
                }
                let ncols = g.c * g.k * g.k;
                for bi in 0..g.b {
                    for oy in 0..g.ho {
                        for ox in 0..g.wo {
                            let row = &mut cols[((bi * g.ho + oy) * g.wo + ox) * ncols..][..ncols];
                            for ci in 0..g.c {
                                let plane = &mut img[(bi * g.c + ci) * g.h * g.w..][..g.h * g.w];
                                for ky in 0..g.k {
                                    let iy = (oy * g.s + ky).wrapping_sub(g.p);
                                    for kx in 0..g.k {
                                        let ix = (ox * g.s + kx).wrapping_sub(g.p);
                                        let col = &mut row[(ci * g.k + ky) * g.k + kx];
                                        let inside = iy < g.h && ix < g.w;
                                        if *adjoint {
                                            if inside {
                                                plane[iy * g.w + ix] += *col;
                                            }
                                        } else {
                                            *col = if inside { plane[iy * g.w + ix] } else { 0.0 };
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Kernel::Host { node, .. } => return host(ctx, node.0),
        }
    }
    0
}

/// Every pooled output: `f(first input index of its window, output index)`.
fn windows(w: &Window, mut f: impl FnMut(usize, usize)) {
    for p in 0..w.planes {
        for oy in 0..w.ho {
            for ox in 0..w.wo {
                f((p * w.h + oy * w.s) * w.w + ox * w.s, (p * w.ho + oy) * w.wo + ox);
            }
        }
    }
}
