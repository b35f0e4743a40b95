//! The digital remainder's kernels (reference implementations; the JIT must match them bit for
//! bit): convolution lowering, pooling, batch-norm, softmax cross-entropy, and their backward
//! passes. Feature maps are `[B, C, H, W]`, MVM operands `[rows, features]`.

use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4, Axis, Zip};

use crate::ir::conv_out_size as out_size;

/// im2col: `[B, C, H, W]` to `[B·Ho·Wo, C·k·k]`, rows ordered `(b, ho, wo)`, columns `(c, kh, kw)`.
pub fn im2col(x: ArrayView4<'_, f32>, k: usize, s: usize, p: usize) -> Array2<f32> {
    let (b, c, h, w) = x.dim();
    let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
    let mut out = Array2::<f32>::zeros((b * ho * wo, c * k * k));
    for bi in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut row = out.row_mut((bi * ho + oy) * wo + ox);
                let row = row.as_slice_mut().expect("contiguous");
                for ci in 0..c {
                    for ky in 0..k {
                        let iy = (oy * s + ky) as isize - p as isize;
                        for kx in 0..k {
                            let ix = (ox * s + kx) as isize - p as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                row[(ci * k + ky) * k + kx] = x[[bi, ci, iy as usize, ix as usize]];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// col2im, the adjoint of [`im2col`]: overlapping patches are summed.
pub fn col2im(
    cols: ArrayView2<'_, f32>,
    shape: (usize, usize, usize, usize),
    k: usize,
    s: usize,
    p: usize,
) -> Array4<f32> {
    let (b, c, h, w) = shape;
    let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
    let mut out = Array4::<f32>::zeros(shape);
    for bi in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                let row = cols.row((bi * ho + oy) * wo + ox);
                for ci in 0..c {
                    for ky in 0..k {
                        let iy = (oy * s + ky) as isize - p as isize;
                        for kx in 0..k {
                            let ix = (ox * s + kx) as isize - p as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                out[[bi, ci, iy as usize, ix as usize]] += row[(ci * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `[B·H·W, C]` (rows `(b, y, x)`) to `[B, C, H, W]`.
pub fn to_channels_first(rows: ArrayView2<'_, f32>, h: usize, w: usize) -> Array4<f32> {
    let c = rows.ncols();
    let b = rows.nrows() / (h * w);
    Array4::from_shape_fn((b, c, h, w), |(bi, ci, y, x)| rows[[(bi * h + y) * w + x, ci]])
}

/// The inverse of [`to_channels_first`].
pub fn to_rows(x: ArrayView4<'_, f32>) -> Array2<f32> {
    let (b, c, h, w) = x.dim();
    Array2::from_shape_fn((b * h * w, c), |(r, ci)| {
        let (bi, rest) = (r / (h * w), r % (h * w));
        x[[bi, ci, rest / w, rest % w]]
    })
}

/// The input coordinate of window offset `k` at output `o`, if inside (not padding).
#[inline]
fn tap(o: usize, k: usize, s: usize, p: usize, size: usize) -> Option<usize> {
    let at = (o * s + k) as isize - p as isize;
    (at >= 0 && (at as usize) < size).then_some(at as usize)
}

/// Max pooling with padding that never wins; also returns the flat index of each output's
/// maximum (first on ties).
pub fn maxpool(x: ArrayView4<'_, f32>, k: usize, s: usize, p: usize) -> (Array4<f32>, Vec<usize>) {
    let (b, c, h, w) = x.dim();
    let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
    let mut out = Array4::<f32>::zeros((b, c, ho, wo));
    let mut arg = Vec::with_capacity(b * c * ho * wo);
    for bi in 0..b {
        for ci in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut best, mut at) = (f32::NEG_INFINITY, None);
                    for ky in 0..k {
                        let Some(iy) = tap(oy, ky, s, p, h) else { continue };
                        for kx in 0..k {
                            let Some(ix) = tap(ox, kx, s, p, w) else { continue };
                            let v = x[[bi, ci, iy, ix]];
                            if v > best || at.is_none() {
                                best = v;
                                at = Some((iy, ix));
                            }
                        }
                    }
                    let (iy, ix) = at.unwrap_or((0, 0)); // a window always overlaps the input (p < k)
                    out[[bi, ci, oy, ox]] = best;
                    arg.push(((bi * c + ci) * h + iy) * w + ix);
                }
            }
        }
    }
    (out, arg)
}

/// Backward of max pooling: each output gradient goes to its maximum.
pub fn maxpool_grad(x_shape: (usize, usize, usize, usize), arg: &[usize], g: &[f32]) -> Array4<f32> {
    let mut out = Array4::<f32>::zeros(x_shape);
    let flat = out.as_slice_mut().expect("contiguous");
    for (&i, &gv) in arg.iter().zip(g) {
        flat[i] += gv;
    }
    out
}

/// Average pooling; padding counts as zeros (the divisor is always `k²`).
pub fn avgpool(x: ArrayView4<'_, f32>, k: usize, s: usize, p: usize) -> Array4<f32> {
    let (b, c, h, w) = x.dim();
    let (ho, wo) = (out_size(h, k, s, p), out_size(w, k, s, p));
    let inv = 1.0 / (k * k) as f32;
    Array4::from_shape_fn((b, c, ho, wo), |(bi, ci, oy, ox)| {
        let mut sum = 0.0f32;
        for ky in 0..k {
            let Some(iy) = tap(oy, ky, s, p, h) else { continue };
            for kx in 0..k {
                if let Some(ix) = tap(ox, kx, s, p, w) {
                    sum += x[[bi, ci, iy, ix]];
                }
            }
        }
        sum * inv
    })
}

/// Backward of average pooling.
pub fn avgpool_grad(
    x_shape: (usize, usize, usize, usize),
    g: ArrayView4<'_, f32>,
    k: usize,
    s: usize,
    p: usize,
) -> Array4<f32> {
    let mut out = Array4::<f32>::zeros(x_shape);
    let (h, w) = (x_shape.2, x_shape.3);
    let inv = 1.0 / (k * k) as f32;
    let (b, c, ho, wo) = g.dim();
    for bi in 0..b {
        for ci in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let v = g[[bi, ci, oy, ox]] * inv;
                    for ky in 0..k {
                        let Some(iy) = tap(oy, ky, s, p, h) else { continue };
                        for kx in 0..k {
                            if let Some(ix) = tap(ox, kx, s, p, w) {
                                out[[bi, ci, iy, ix]] += v;
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Softmax cross-entropy, mean over rows: the loss and `dL/dlogits`.
pub fn softmax_xent(logits: ArrayView2<'_, f32>, labels: &[u8]) -> (f32, Array2<f32>) {
    let n = logits.nrows();
    let mut grad = Array2::<f32>::zeros(logits.dim());
    let mut loss = 0.0f64;
    for (i, (row, mut g)) in logits.outer_iter().zip(grad.outer_iter_mut()).enumerate() {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut z = 0.0f32;
        for (gv, &v) in g.iter_mut().zip(row) {
            *gv = (v - m).exp();
            z += *gv;
        }
        let y = labels[i] as usize;
        loss += -(((row[y] - m) as f64) - (z as f64).ln());
        for (j, gv) in g.iter_mut().enumerate() {
            *gv = (*gv / z - if j == y { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    ((loss / n as f64) as f32, grad)
}

/// Batch statistics of batch-norm: per channel (axis 1) over every other axis of a `[N, C, ...]`
/// tensor viewed as `[N, C, L]`.
pub struct BnCache {
    /// Normalized input.
    pub xhat: Array2<f32>,
    /// `1/sqrt(var + eps)` per channel.
    pub inv_std: Array1<f32>,
}

/// Reshapes `[N, C, ...]` data into `[N·L, C]` rows (channels as columns).
pub fn channels_as_columns(x: &ndarray::ArrayD<f32>) -> Array2<f32> {
    match x.ndim() {
        2 => x.clone().into_dimensionality().expect("2-D"),
        _ => {
            let v = x.view().into_dimensionality::<ndarray::Ix4>().expect("4-D feature map");
            to_rows(v)
        }
    }
}

/// Batch-norm forward in training mode over columns: returns `y`, the cache, and the batch mean
/// and variance (for running statistics).
pub fn batchnorm(
    x: ArrayView2<'_, f32>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Array2<f32>, BnCache, Array1<f32>, Array1<f32>) {
    let mean = x.mean_axis(Axis(0)).expect("rows");
    let var = x.map_axis(Axis(0), |c| {
        let m = c.mean().unwrap_or(0.0);
        c.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / c.len() as f32
    });
    let inv_std = var.mapv(|v| 1.0 / (v + eps).sqrt());
    let mut xhat = x.to_owned();
    for (mut col, (&m, &is)) in xhat.axis_iter_mut(Axis(1)).zip(mean.iter().zip(&inv_std)) {
        col.mapv_inplace(|v| (v - m) * is);
    }
    let mut y = xhat.clone();
    for (j, mut col) in y.axis_iter_mut(Axis(1)).enumerate() {
        col.mapv_inplace(|v| v * gamma[j] + beta[j]);
    }
    (y, BnCache { xhat, inv_std }, mean, var)
}

/// Batch-norm backward: `dx`, and `(dgamma, dbeta)`.
pub fn batchnorm_grad(g: ArrayView2<'_, f32>, cache: &BnCache, gamma: &[f32]) -> (Array2<f32>, Vec<f32>, Vec<f32>) {
    let n = g.nrows() as f32;
    let mut dx = Array2::<f32>::zeros(g.dim());
    let mut dgamma = vec![0.0; g.ncols()];
    let mut dbeta = vec![0.0; g.ncols()];
    for j in 0..g.ncols() {
        let (gc, xc) = (g.column(j), cache.xhat.column(j));
        let sum_g: f32 = gc.sum();
        let sum_gx: f32 = Zip::from(&gc).and(&xc).fold(0.0, |a, &gv, &xv| a + gv * xv);
        dgamma[j] = sum_gx;
        dbeta[j] = sum_g;
        let k = gamma[j] * cache.inv_std[j] / n;
        for i in 0..g.nrows() {
            dx[[i, j]] = k * (n * gc[i] - sum_g - xc[i] * sum_gx);
        }
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> == <x, col2im(c)> for random x, c.
        let mut s = 1u64;
        let mut r = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((s >> 40) as f32 / 16777216.0) - 0.5
        };
        let x = Array4::from_shape_fn((2, 3, 7, 6), |_| r());
        let cols = im2col(x.view(), 3, 2, 1);
        let c = Array2::from_shape_fn(cols.dim(), |_| r());
        let lhs: f32 = (&cols * &c).sum();
        let back = col2im(c.view(), (2, 3, 7, 6), 3, 2, 1);
        let rhs: f32 = (&x * &back).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    #[test]
    fn conv_by_im2col_matches_direct_convolution() {
        let x = Array4::from_shape_fn((1, 2, 5, 5), |(_, c, y, x)| (c * 25 + y * 5 + x) as f32);
        let w = Array2::from_shape_fn((4, 2 * 3 * 3), |(o, i)| ((o + i) % 5) as f32 - 2.0);
        let y = im2col(x.view(), 3, 1, 1).dot(&w.t());
        let y = to_channels_first(y.view(), 5, 5);
        // Direct: output (o, 2, 2) = Σ_c,ky,kx w[o, c, ky, kx] x[c, 1+ky, 1+kx].
        let mut direct = 0.0;
        for c in 0..2 {
            for ky in 0..3 {
                for kx in 0..3 {
                    direct += w[[1, (c * 3 + ky) * 3 + kx]] * x[[0, c, 1 + ky, 1 + kx]];
                }
            }
        }
        assert_eq!(y[[0, 1, 2, 2]], direct);
        assert_eq!(to_rows(y.view()), im2col(x.view(), 3, 1, 1).dot(&w.t()));
    }

    #[test]
    fn padded_pooling_and_its_adjoint() {
        let x = Array4::from_shape_fn((1, 1, 3, 3), |(_, _, y, x)| (y * 3 + x) as f32 - 4.0);
        let (m, arg) = maxpool(x.view(), 3, 2, 1);
        assert_eq!(m.dim(), (1, 1, 2, 2));
        assert_eq!(m[[0, 0, 0, 0]], 0.0, "padding never wins: max of x[0..2, 0..2]");
        assert_eq!(arg[0], 4);
        // <avgpool(x), g> == <x, avgpool_grad(g)>.
        let a = avgpool(x.view(), 3, 2, 1);
        let g = Array4::from_shape_fn(a.dim(), |(_, _, y, x)| (y * 2 + x) as f32 + 1.0);
        let lhs: f32 = (&a * &g).sum();
        let rhs: f32 = (&x * &avgpool_grad((1, 1, 3, 3), g.view(), 3, 2, 1)).sum();
        assert!((lhs - rhs).abs() < 1e-5, "{lhs} vs {rhs}");
    }

    #[test]
    fn softmax_gradient_sums_to_zero_per_row() {
        let logits = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]).unwrap();
        let (loss, g) = softmax_xent(logits.view(), &[2, 0]);
        assert!(loss > 0.0);
        for row in g.outer_iter() {
            assert!(row.sum().abs() < 1e-6);
        }
    }
}
