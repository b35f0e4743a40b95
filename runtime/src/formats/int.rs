//! Integer formats: INT4 weights by SAWB, INT4 activations by PACT, symmetric max-scaled INT8.
//!
//! Rounding is half away from zero (`f32::round`) everywhere, and every formula is evaluated in
//! the order written here, so other implementations (the JIT) can match bit for bit.

use ndarray::{ArrayRef, Dimension, Zip};

/// SAWB's clip: `α = c1·sqrt(E[w²]) − c2·E[|w|]`, the moments by [`sawb_moments`].
/// When that is not positive (possible only with user coefficients `c1 <= c2`), or the tensor
/// is empty, `α = max|w|`. An all-zero tensor gives 0.
pub fn sawb_alpha<D: Dimension>(w: &ArrayRef<f32, D>, c1: f64, c2: f64) -> f32 {
    let n = w.len();
    if n == 0 {
        return 0.0;
    }
    let (sq, ab, mx) = sawb_moments(w.iter().copied());
    let alpha = (c1 * (sq / n as f64).sqrt() - c2 * (ab / n as f64)) as f32;
    if alpha > 0.0 && alpha.is_finite() { alpha } else { mx }
}

/// SAWB's moments `(Σw², Σ|w|, max|w|)`, the sums in f64 in a fixed order every path follows:
/// [`SAWB_CHAINS`] interleaved chains (element `i` of the whole blocks of eight into chain
/// `i mod 8`, each summed in element order), combined pairwise
/// `((c0+c1)+(c2+c3))+((c4+c5)+(c6+c7))`, then the remaining `n mod 8` elements in order.
/// Eight chains hide the latency of the f64 adds (one chain is bound by it: about four cycles
/// per weight) and map onto four two-lane vectors in the JIT.
pub fn sawb_moments(w: impl ExactSizeIterator<Item = f32>) -> (f64, f64, f32) {
    let whole = w.len() / SAWB_CHAINS * SAWB_CHAINS;
    let (mut sq, mut ab, mut mx) = ([0.0f64; SAWB_CHAINS], [0.0f64; SAWB_CHAINS], 0.0f32);
    let mut tail: Option<(f64, f64)> = None;
    for (i, v) in w.enumerate() {
        let (v2, a) = ((v as f64) * (v as f64), v.abs() as f64);
        mx = mx.max(v.abs());
        if i < whole {
            sq[i % SAWB_CHAINS] += v2;
            ab[i % SAWB_CHAINS] += a;
        } else {
            let (s, b) = tail.get_or_insert_with(|| (chain_tree(&sq), chain_tree(&ab)));
            *s += v2;
            *b += a;
        }
    }
    let (s, b) = tail.unwrap_or_else(|| (chain_tree(&sq), chain_tree(&ab)));
    (s, b, mx)
}

/// The number of interleaved f64 chains of [`sawb_moments`].
pub const SAWB_CHAINS: usize = 8;

/// `((c0+c1)+(c2+c3))+((c4+c5)+(c6+c7))`.
fn chain_tree(c: &[f64; SAWB_CHAINS]) -> f64 {
    ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]))
}

/// The INT4 SAWB code of `w` (−7..=7) for clip `alpha > 0`: `round(7·clamp(w, −α, α)/α)`.
#[inline]
pub fn sawb_code(w: f32, alpha: f32) -> i8 {
    (7.0 * w.clamp(-alpha, alpha) / alpha).round() as i8
}

/// Quantizes weights by SAWB: `out = α/7·code`; returns `α`. An all-zero tensor stays zero.
/// `codes`, when given, receives the integer codes for the tile simulator.
pub fn sawb<D: Dimension>(w: &ArrayRef<f32, D>, c1: f64, c2: f64, out: &mut ArrayRef<f32, D>) -> f32 {
    let alpha = sawb_alpha(w, c1, c2);
    if alpha == 0.0 {
        out.fill(0.0);
        return 0.0;
    }
    let step = alpha / 7.0;
    Zip::from(out).and(w).for_each(|o, &v| *o = step * sawb_code(v, alpha) as f32);
    alpha
}

/// SAWB codes of `w` for a given `alpha` (all zero when `alpha == 0`).
pub fn sawb_codes<D: Dimension>(w: &ArrayRef<f32, D>, alpha: f32, codes: &mut ArrayRef<i8, D>) {
    if alpha == 0.0 {
        codes.fill(0);
        return;
    }
    Zip::from(codes).and(w).for_each(|c, &v| *c = sawb_code(v, alpha));
}

/// The PACT code of `x` (0..=15) for clip `alpha > 0`: `round(clip(x, 0, α)·15/α)`.
#[inline]
pub fn pact_code(x: f32, alpha: f32) -> u8 {
    (x.clamp(0.0, alpha) * 15.0 / alpha).round() as u8
}

/// PACT forward: `out = round(clip(x, 0, α)·15/α)·α/15`.
pub fn pact<D: Dimension>(x: &ArrayRef<f32, D>, alpha: f32, out: &mut ArrayRef<f32, D>) {
    let step = alpha / 15.0;
    Zip::from(out).and(x).for_each(|o, &v| *o = pact_code(v, alpha) as f32 * step);
}

/// PACT backward with straight-through estimators: `gx = g` where `0 <= x < α` (else 0), and
/// returns `dL/dα = Σ g` over `x >= α`, accumulated in f64 in iteration order.
pub fn pact_backward<D: Dimension>(
    x: &ArrayRef<f32, D>,
    g: &ArrayRef<f32, D>,
    alpha: f32,
    gx: &mut ArrayRef<f32, D>,
) -> f32 {
    let mut galpha = 0.0f64;
    Zip::from(gx).and(x).and(g).for_each(|o, &v, &gv| {
        let inside = (0.0..alpha).contains(&v);
        *o = if inside { gv } else { 0.0 };
        if v >= alpha {
            galpha += gv as f64;
        }
    });
    galpha as f32
}

/// The INT8 code of `v` under `max|x| = m` (finite, positive): `round(v·127/m)`, computed in
/// f64 so that neither a tiny `m` (where `127/m` overflows f32) nor `f32::MAX` leaves the range.
pub fn int8_code(v: f32, m: f32) -> i32 {
    (v as f64 * 127.0 / m as f64).round() as i32
}

/// Symmetric max-scaled INT8: `code = round(x·127/max|x|)`, `out = code·max|x|/127`; returns
/// the step `max|x|/127` (0 for an all-zero tensor, which stays zero). Finite input gives
/// finite output for every `max|x|`, subnormal to `f32::MAX`.
pub fn int8<D: Dimension>(x: &ArrayRef<f32, D>, out: &mut ArrayRef<f32, D>) -> f32 {
    let m = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    if m.is_nan() || m <= 0.0 || !m.is_finite() {
        Zip::from(out).and(x).for_each(|o, &v| *o = if m.is_finite() { 0.0 } else { v });
        return 0.0;
    }
    let m64 = m as f64;
    Zip::from(out).and(x).for_each(|o, &v| *o = (int8_code(v, m) as f64 * m64 / 127.0) as f32);
    (m64 / 127.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, arr1};
    use proptest::prelude::*;

    const C1: f64 = 12.035;
    const C2: f64 = 12.03;

    #[test]
    fn sawb_moments_follow_the_stated_order_and_agree_with_a_plain_sum() {
        // Values whose f64 sums depend on the order: large and tiny magnitudes mixed.
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 40, 203] {
            let w: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 1e4 } else { 1e-4 } * ((i as f32) - 5.5)).collect();
            let (sq, ab, mx) = sawb_moments(w.iter().copied());
            let whole = n / 8 * 8;
            let mut c = [[0.0f64; 8]; 2];
            for (i, &v) in w[..whole].iter().enumerate() {
                c[0][i % 8] += (v as f64) * (v as f64);
                c[1][i % 8] += v.abs() as f64;
            }
            let t = |c: [f64; 8]| ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
            let (mut s, mut a) = (t(c[0]), t(c[1]));
            for &v in &w[whole..] {
                s += (v as f64) * (v as f64);
                a += v.abs() as f64;
            }
            assert_eq!((sq.to_bits(), ab.to_bits()), (s.to_bits(), a.to_bits()), "n = {n}");
            assert_eq!(mx, w.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            let plain: f64 = w.iter().map(|&v| (v as f64) * (v as f64)).sum();
            assert!((sq - plain).abs() <= 1e-12 * plain.max(1.0), "n = {n}: {sq} vs {plain}");
        }
    }

    #[test]
    fn sawb_known_values_and_zero_tensor() {
        let w = arr1(&[0.1f32, -0.2, 0.3, -0.4, 0.05]);
        let mut out = w.clone();
        let alpha = sawb(&w, C1, C2, &mut out);
        let n = 5.0f64;
        let rms = ((0.01f64 + 0.04 + 0.09 + 0.16 + 0.0025) / n).sqrt();
        let mean = (0.1 + 0.2 + 0.3 + 0.4 + 0.05) / n;
        assert!((alpha as f64 - (C1 * rms - C2 * mean)).abs() < 1e-6);
        for (&o, &v) in out.iter().zip(w.iter()) {
            let code = (o / (alpha / 7.0)).round();
            assert!((-7.0..=7.0).contains(&code));
            assert!((o - v).abs() <= alpha / 14.0 + 1e-6 || v.abs() > alpha);
        }
        let z = Array1::<f32>::zeros(4);
        let mut zo = z.clone();
        assert_eq!(sawb(&z, C1, C2, &mut zo), 0.0);
        assert!(zo.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn round_half_away_from_zero() {
        assert_eq!(sawb_code(0.5, 7.0), 1); // 7·0.5/7 = 0.5 → 1
        assert_eq!(sawb_code(-0.5, 7.0), -1);
        assert_eq!(pact_code(0.5, 15.0), 1);
    }

    #[test]
    fn pact_clips_and_gradients() {
        let x = arr1(&[-1.0f32, 0.0, 2.9, 6.0, 7.5]);
        let mut y = x.clone();
        pact(&x, 6.0, &mut y);
        assert_eq!(y.to_vec(), vec![0.0, 0.0, 2.8, 6.0, 6.0]);
        let g = arr1(&[1.0f32; 5]);
        let mut gx = g.clone();
        let ga = pact_backward(&x, &g, 6.0, &mut gx);
        assert_eq!(gx.to_vec(), vec![0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(ga, 2.0);
    }

    #[test]
    fn int8_stays_finite_from_subnormal_to_max() {
        for m in [1e-45f32, 1e-40, 3.0e-37, 1.0, f32::MAX / 2.0, f32::MAX] {
            let x = arr1(&[m, -m, m / 3.0, 0.0]);
            let mut y = x.clone();
            int8(&x, &mut y);
            assert!(y.iter().all(|v| v.is_finite()), "max {m}: {y}");
            assert_eq!(y[0], m, "max {m} is a code");
            assert_eq!(y[1], -m);
        }
    }

    #[test]
    fn int8_symmetric() {
        let x = arr1(&[1.27f32, -0.635, 0.0]);
        let mut y = x.clone();
        let step = int8(&x, &mut y);
        assert!((step - 0.01).abs() < 1e-7);
        assert_eq!(y[0], 127.0 * step);
        assert_eq!(y[1], -64.0 * step); // -63.5 rounds away from zero
    }

    proptest! {
        #[test]
        fn sawb_idempotent_bounded_symmetric(v in proptest::collection::vec(-2.0f32..2.0, 2..64)) {
            let w = Array1::from(v);
            let mut q = w.clone();
            let alpha = sawb(&w, C1, C2, &mut q);
            let neg = w.mapv(|x| -x);
            let mut qn = neg.clone();
            prop_assert_eq!(sawb(&neg, C1, C2, &mut qn), alpha);
            for (a, b) in q.iter().zip(qn.iter()) {
                prop_assert_eq!(*a, -*b);
            }
            for &x in q.iter() {
                prop_assert!(x.abs() <= alpha * 1.000001);
            }
            // Re-quantizing the codes with the same alpha changes nothing.
            let mut codes = ndarray::Array1::<i8>::zeros(q.len());
            sawb_codes(&q, alpha, &mut codes);
            for (c, &x) in codes.iter().zip(q.iter()) {
                prop_assert_eq!(*c as f32 * (alpha / 7.0), x);
            }
        }

        #[test]
        fn pact_monotone_and_bounded(a in -10.0f32..10.0, b in -10.0f32..10.0, alpha in 0.1f32..10.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(pact_code(lo, alpha) <= pact_code(hi, alpha));
            let y = pact_code(a, alpha) as f32 * alpha / 15.0;
            let c = a.clamp(0.0, alpha);
            prop_assert!((y - c).abs() <= alpha / 30.0 * 1.0001);
        }

        #[test]
        fn int8_error_bound(v in proptest::collection::vec(-100.0f32..100.0, 1..64)) {
            let x = Array1::from(v);
            let mut y = x.clone();
            let step = int8(&x, &mut y);
            for (a, b) in x.iter().zip(y.iter()) {
                prop_assert!((a - b).abs() <= step * 0.5001 + 1e-6);
            }
        }
    }
}
