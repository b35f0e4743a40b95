//! The same kernels written by hand in Rust (compiled ahead of time by rustc/LLVM), run on the
//! same slot table as the generated code: the baseline `imcc bench --kernels` compares the JIT
//! against, and a third implementation the tests hold bit-identical to the other two.

use super::abi::Status;
use super::plan::{Alpha, Consts, Conv, GroupPlan, Kernel, SgdKind, Window};
use crate::config::{GradScaleMode, Phase};
use crate::formats::{int, radix4};

/// The buffer table of a group, as the generated code sees it.
struct Table<'a> {
    ptrs: *const *mut u8,
    plan: &'a GroupPlan,
}

impl Table<'_> {
    /// Slot `s`, read-only, as a slice of its planned length.
    ///
    /// # Safety
    /// The ABI of `jit::abi`: the table was bound for `plan`, so slot `s` points to `len`
    /// elements of its type, distinct from every other slot, and no slice of it is being
    /// written meanwhile.
    unsafe fn read<T>(&self, s: usize) -> &[T] {
        let len = self.plan.slots[s].len;
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts(self.ptrs.add(s).read().cast::<T>().cast_const(), len) }
    }

    /// Slot `s`, which the plan marks as written, as a mutable slice.
    ///
    /// # Safety
    /// As [`Table::read`], and the caller holds no other slice of slot `s`. The mutable
    /// reference comes from the table's raw pointers, not from `&self` (one slot per kernel
    /// operand, all distinct), hence the allowed lint.
    #[allow(clippy::mut_from_ref)]
    unsafe fn write<T>(&self, s: usize) -> &mut [T] {
        debug_assert!(self.plan.slots[s].written, "slot {s} is written but planned read-only");
        let len = self.plan.slots[s].len;
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.add(s).read().cast::<T>(), len) }
    }

    /// A one-element slot's value.
    unsafe fn scalar(&self, s: usize) -> f32 {
        // SAFETY: as `read`.
        unsafe { self.read::<f32>(s)[0] }
    }

    /// A one-element written slot.
    #[allow(clippy::mut_from_ref)]
    unsafe fn scalar_mut(&self, s: usize) -> &mut f32 {
        // SAFETY: as `write`.
        unsafe { &mut self.write::<f32>(s)[0] }
    }

    unsafe fn alpha(&self, a: &Alpha) -> f32 {
        match a {
            // SAFETY: as `read`.
            Alpha::Learned(s) => unsafe { self.scalar(*s) },
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
    // SAFETY (each family): `Table`'s contract; slots of one kernel are distinct.
    unsafe {
        match k {
            Kernel::Copy { .. }
            | Kernel::Sum { .. }
            | Kernel::BiasAdd { .. }
            | Kernel::BiasGrad { .. }
            | Kernel::Relu { .. }
            | Kernel::ReluGrad { .. }
            | Kernel::Clamp { .. } => elementwise(t, k),
            Kernel::Pact { .. } | Kernel::PactGrad { .. } | Kernel::Radix4 { .. } | Kernel::Sawb { .. } => {
                quantizer(t, k)
            }
            Kernel::Sgd { .. } => sgd(t, k, c),
            Kernel::MaxPool { .. }
            | Kernel::MaxPoolGrad { .. }
            | Kernel::AvgPool { .. }
            | Kernel::AvgPoolGrad { .. }
            | Kernel::Transpose { .. }
            | Kernel::Im2col { .. } => spatial(t, k),
            Kernel::Host { node, .. } => host(ctx, node.0),
        }
    }
}

/// Copies, sums, bias, ReLU and clamps.
unsafe fn elementwise(t: &Table<'_>, k: &Kernel) -> u32 {
    // SAFETY (whole body): `Table`'s contract.
    unsafe {
        match k {
            Kernel::Copy { x, ys, .. } => {
                let x = t.read::<f32>(*x);
                for &y in ys {
                    t.write::<f32>(y).copy_from_slice(x);
                }
            }
            Kernel::Sum { xs, y, .. } => {
                let y = t.write::<f32>(*y);
                y.copy_from_slice(t.read::<f32>(xs[0]));
                for &x in &xs[1..] {
                    y.iter_mut().zip(t.read::<f32>(x).iter()).for_each(|(a, b)| *a += b);
                }
            }
            Kernel::BiasAdd { z, b, y, cols, .. } => {
                let b = t.read::<f32>(*b);
                for (yr, zr) in t.write::<f32>(*y).chunks_exact_mut(*cols).zip(t.read::<f32>(*z).chunks_exact(*cols)) {
                    for ((o, &v), &bv) in yr.iter_mut().zip(zr).zip(b.iter()) {
                        *o = v + bv;
                    }
                }
            }
            Kernel::BiasGrad { g, grad, cols, .. } => {
                let mut sum = vec![0.0f32; *cols];
                for row in t.read::<f32>(*g).chunks_exact(*cols) {
                    sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
                }
                t.write::<f32>(*grad).iter_mut().zip(&sum).for_each(|(d, &s)| *d += s);
            }
            Kernel::Relu { x, y, .. } => {
                for (o, &v) in t.write::<f32>(*y).iter_mut().zip(t.read::<f32>(*x).iter()) {
                    *o = if v > 0.0 { v } else { 0.0 };
                }
            }
            Kernel::ReluGrad { x, g, y, .. } => {
                let (x, g) = (t.read::<f32>(*x), t.read::<f32>(*g));
                for ((o, &v), &gv) in t.write::<f32>(*y).iter_mut().zip(x.iter()).zip(g.iter()) {
                    *o = if v > 0.0 { gv } else { 0.0 };
                }
            }
            Kernel::Clamp { x, alpha, y, .. } => {
                let a = t.alpha(alpha);
                for (o, &v) in t.write::<f32>(*y).iter_mut().zip(t.read::<f32>(*x).iter()) {
                    *o = v.clamp(0.0, a);
                }
            }
            other => unreachable!("{} is not elementwise (dispatched by `run`)", other.name()),
        }
    }
    0
}

/// PACT and its gradient, radix-4 errors with GradScale, SAWB weights.
unsafe fn quantizer(t: &Table<'_>, k: &Kernel) -> u32 {
    // SAFETY (whole body): `Table`'s contract.
    unsafe {
        match k {
            Kernel::Pact { node, x, alpha, data, codes, scale, .. } => {
                let x = t.read::<f32>(*x);
                if !finite(x) {
                    return Status::NonFinite(*node).encode();
                }
                let a = t.alpha(alpha);
                let step = a / 15.0;
                *t.scalar_mut(*scale) = step;
                let (d, cs) = (t.write::<f32>(*data), t.write::<i32>(*codes));
                for ((o, cd), &v) in d.iter_mut().zip(cs.iter_mut()).zip(x.iter()) {
                    let code = int::pact_code(v, a) as i32;
                    *cd = code;
                    *o = code as f32 * step;
                }
            }
            Kernel::PactGrad { x, g, alpha, galpha, y, .. } => {
                let a = t.alpha(alpha);
                let (x, g) = (t.read::<f32>(*x), t.read::<f32>(*g));
                let mut ga = 0.0f32;
                for ((o, &v), &gv) in t.write::<f32>(*y).iter_mut().zip(x.iter()).zip(g.iter()) {
                    if v >= a {
                        ga += gv;
                    }
                    *o = if (0.0..a).contains(&v) { gv } else { 0.0 };
                }
                if let Some(s) = galpha {
                    *t.scalar_mut(*s) += ga;
                }
            }
            Kernel::Radix4 { node, g, levels, mode, state, outs, .. } => {
                let g = t.read::<f32>(*g);
                if !finite(g) {
                    return Status::NonFinite(*node).encode();
                }
                let m = g.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                let s = match (mode, state) {
                    (GradScaleMode::Off, _) => 1.0,
                    (GradScaleMode::Incremental, Some(st)) => {
                        let st = t.scalar_mut(*st);
                        let prev = if st.is_nan() { radix4::gradscale(m) } else { *st };
                        *st = radix4::gradscale_incremental(m, prev);
                        *st
                    }
                    // Incremental mode is always planned with its state slot.
                    (GradScaleMode::Current | GradScaleMode::Incremental, _) => radix4::gradscale(m),
                };
                let inv = 1.0 / s;
                for o in outs {
                    let odd = o.phase == Phase::Odd;
                    *t.scalar_mut(o.scale) = if odd { 2.0 } else { 1.0 } / s;
                    let (d, cs) = (t.write::<f32>(o.data), t.write::<i8>(o.codes));
                    for ((dv, cv), &v) in d.iter_mut().zip(cs.iter_mut()).zip(g.iter()) {
                        let y = v * s;
                        let q = radix4::q_phase(y, *levels, o.phase);
                        *dv = q * inv;
                        *cv = radix4::code_of(if odd { q * 0.5 } else { q });
                    }
                }
            }
            Kernel::Sawb { w, alpha, data, codes, scale, c1, c2, .. } => {
                let w = t.read::<f32>(*w);
                let a = int::sawb_alpha(&ndarray::ArrayView1::from(w), *c1, *c2);
                *t.scalar_mut(*alpha) = a;
                let step = a / 7.0;
                *t.scalar_mut(*scale) = step;
                let (d, cs) = (t.write::<f32>(*data), t.write::<i32>(*codes));
                for ((dv, cv), &v) in d.iter_mut().zip(cs.iter_mut()).zip(w.iter()) {
                    let code = int::sawb_code(v, a) as i32;
                    *cv = code;
                    *dv = step * code as f32;
                }
            }
            other => unreachable!("{} is no quantizer (dispatched by `run`)", other.name()),
        }
    }
    0
}

/// The momentum-SGD update of one parameter.
unsafe fn sgd(t: &Table<'_>, k: &Kernel, c: &Consts) -> u32 {
    let Kernel::Sgd { node, param, grad, zero_grad, velocity, lr, kind, .. } = k else {
        unreachable!("{} is no update (dispatched by `run`)", k.name());
    };
    // SAFETY (whole body): `Table`'s contract.
    unsafe {
        let g = t.read::<f32>(*grad);
        if !finite(g) {
            return Status::NonFinite(*node).encode();
        }
        let lr = t.scalar(*lr);
        let clip = match kind {
            SgdKind::Weight { sawb_alpha } => {
                let a = t.scalar(*sawb_alpha);
                if a > 0.0 { a } else { f32::INFINITY }
            }
            _ => f32::INFINITY,
        };
        let (w, v) = (t.write::<f32>(*param), t.write::<f32>(*velocity));
        for ((wv, vv), &gr) in w.iter_mut().zip(v.iter_mut()).zip(g.iter()) {
            let mut gv = gr;
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
        if *zero_grad {
            t.write::<f32>(*grad).fill(0.0);
        }
    }
    0
}

/// Pooling, its gradients, layout transposes, im2col and col2im.
unsafe fn spatial(t: &Table<'_>, k: &Kernel) -> u32 {
    // SAFETY (whole body): `Table`'s contract.
    unsafe {
        match k {
            Kernel::MaxPool { x, y, arg, win } => {
                let (x, y, arg) = (t.read::<f32>(*x), t.write::<f32>(*y), t.write::<usize>(*arg));
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
                let y = t.write::<f32>(*y);
                y.fill(0.0);
                for (&i, &gv) in t.read::<usize>(*arg).iter().zip(t.read::<f32>(*g).iter()) {
                    if i >= *n {
                        return Status::BadIndex(*node).encode();
                    }
                    y[i] += gv;
                }
            }
            Kernel::AvgPool { x, y, win } => {
                let (x, y) = (t.read::<f32>(*x), t.write::<f32>(*y));
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
                let (g, y) = (t.read::<f32>(*g), t.write::<f32>(*y));
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
                let (x, y) = (t.read::<f32>(*x), t.write::<f32>(*y));
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
                let (x, y) = (t.read::<f32>(*x), t.write::<f32>(*y));
                if *adjoint {
                    // col2im: x holds the columns, y the image.
                    y.fill(0.0);
                    im2col_pairs(g, |col, pixel| {
                        if let Some(p) = pixel {
                            y[p] += x[col];
                        }
                    });
                } else {
                    im2col_pairs(g, |col, pixel| y[col] = pixel.map_or(0.0, |p| x[p]));
                }
            }
            other => unreachable!("{} is no spatial kernel (dispatched by `run`)", other.name()),
        }
    }
    0
}

/// Every element of the im2col matrix in the reference's order: `f(column-matrix index, image
/// index or None for padding)`.
fn im2col_pairs(g: &Conv, mut f: impl FnMut(usize, Option<usize>)) {
    let ncols = g.c * g.k * g.k;
    for bi in 0..g.b {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let row = ((bi * g.ho + oy) * g.wo + ox) * ncols;
                for ci in 0..g.c {
                    let plane = (bi * g.c + ci) * g.h * g.w;
                    for ky in 0..g.k {
                        let iy = (oy * g.s + ky).wrapping_sub(g.p);
                        for kx in 0..g.k {
                            let ix = (ox * g.s + kx).wrapping_sub(g.p);
                            let inside = iy < g.h && ix < g.w;
                            f(row + (ci * g.k + ky) * g.k + kx, inside.then(|| plane + iy * g.w + ix));
                        }
                    }
                }
            }
        }
    }
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
