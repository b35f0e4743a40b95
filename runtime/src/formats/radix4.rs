//! Radix-4 FP4 (1 sign, 3 exponent bits, no mantissa; Sun et al. 2020) with per-tensor
//! GradScale and two-phase rounding.
//!
//! The even grid is `{0} ∪ {±4^-k : k = 0..levels-1}`; the odd grid is `Q_odd(x) = 2·Q_even(x/2)`,
//! i.e. `{0} ∪ {±2·4^-k}`. Rounding is to the nearest grid point in the linear domain (the
//! threshold between `4^(n-1)` and `4^n` is their midpoint `0.625·4^n`), ties toward the smaller
//! magnitude; values above the top level saturate, values at or below half the smallest level
//! become zero. Every threshold is a power of two times 5/8 or 1/2, so the comparisons are exact
//! in f32 and the result does not depend on how it is computed.

use ndarray::{ArrayRef, Dimension, Zip};

/// Which of the two grids.
pub use crate::config::Phase;

/// The even-grid quantization of `x` with `levels` magnitudes (top level 1). NaN stays NaN so
/// that divergence is detected downstream.
#[inline]
pub fn q_even(x: f32, levels: u32) -> f32 {
    let a = x.abs();
    if a.is_nan() {
        return x;
    }
    if a >= 1.0 {
        return 1.0f32.copysign(x);
    }
    let smallest = pow4_neg(levels.saturating_sub(1));
    let r = if a < f32::MIN_POSITIVE {
        0.0 // subnormal or zero: far below any level
    } else {
        // 4^k <= a < 4^(k+1) with k = floor(floor(log2 a) / 2).
        let e2 = ((a.to_bits() >> 23) & 0xff) as i32 - 127;
        let k = e2.div_euclid(2);
        let lo = pow2(2 * k);
        let hi = lo * 4.0;
        if a > 0.625 * hi { hi } else { lo }
    };
    let r = if r < smallest { if a > 0.5 * smallest { smallest } else { 0.0 } } else { r };
    r.copysign(x)
}

/// The odd-grid quantization: `2·q_even(x/2)`.
#[inline]
pub fn q_odd(x: f32, levels: u32) -> f32 {
    2.0 * q_even(0.5 * x, levels)
}

/// The quantization of `x` on the grid of `phase`.
#[inline]
pub fn q_phase(x: f32, levels: u32, phase: Phase) -> f32 {
    match phase {
        Phase::Even => q_even(x, levels),
        Phase::Odd => q_odd(x, levels),
    }
}

/// The FP4 code of an even-grid value: 0 for zero, `±(k+1)` for `±4^-k`. (An odd-grid value
/// `±2·4^-k` has the code of `±4^-k`; the phase is known per tensor.)
#[inline]
pub fn code_of(q: f32) -> i8 {
    let a = q.abs();
    if a == 0.0 || a.is_nan() {
        return 0;
    }
    let e2 = ((a.to_bits() >> 23) & 0xff) as i32 - 127; // -2k for 4^-k; -2k+1 for 2·4^-k
    let k = (-e2).div_euclid(2) as i8 + if e2 & 1 == 1 { 1 } else { 0 };
    let c = k + 1;
    if q < 0.0 { -c } else { c }
}

/// The magnitude `4^-k` of code `±(k+1)` on the even grid (0 for code 0).
#[inline]
pub fn value_of(code: i8, phase: Phase) -> f32 {
    if code == 0 {
        return 0.0;
    }
    let k = (code.unsigned_abs() - 1) as u32;
    let v = pow4_neg(k) * if phase == Phase::Odd { 2.0 } else { 1.0 };
    if code < 0 { -v } else { v }
}

/// `2^e` as f32 for `-126 <= e <= 127` (exact, no libm).
#[inline]
fn pow2(e: i32) -> f32 {
    f32::from_bits(((e.clamp(-126, 127) + 127) as u32) << 23)
}

#[inline]
fn pow4_neg(k: u32) -> f32 {
    pow2(-2 * k.min(63) as i32)
}

/// GradScale chosen from the current tensor: the power of two `s` with `max|x|·s ∈ (1/2, 1]`
/// (1 for an all-zero or non-finite maximum). `s` is clamped to `[2^-126, 2^127]`.
pub fn gradscale(max_abs: f32) -> f32 {
    if max_abs.is_nan() || max_abs <= 0.0 || !max_abs.is_finite() {
        return 1.0;
    }
    let (m, e) = if max_abs >= f32::MIN_POSITIVE {
        let bits = max_abs.to_bits();
        (bits & 0x7f_ffff, ((bits >> 23) & 0xff) as i32 - 127)
    } else {
        // Subnormal: log2 via f64, which represents it as a normal number.
        let d = max_abs as f64;
        let bits = d.to_bits();
        (((bits >> 29) & 0x7f_ffff) as u32, ((bits >> 52) & 0x7ff) as i32 - 1023)
    };
    // max = 1.m · 2^e: an exact power of two needs s = 2^-e, anything larger 2^-(e+1).
    let p = if m == 0 { -e } else { -(e + 1) };
    pow2(p)
}

/// GradScale by the paper's incremental rule: with `m = max|x|·s`, double `s` if `m <= 1/2`,
/// halve it if `m > 1`, else keep it. One step per call.
pub fn gradscale_incremental(max_abs: f32, s: f32) -> f32 {
    let m = max_abs * s;
    if !m.is_finite() {
        return s;
    }
    if m <= 0.5 && max_abs > 0.0 {
        (s * 2.0).min(pow2(127))
    } else if m > 1.0 {
        (s * 0.5).max(pow2(-126))
    } else {
        s
    }
}

/// `max|x|` over a tensor (NaN if any element is NaN).
pub fn max_abs<D: Dimension>(x: &ArrayRef<f32, D>) -> f32 {
    x.iter().fold(0.0f32, |m, &v| if v.is_nan() || m.is_nan() { f32::NAN } else { m.max(v.abs()) })
}

/// Two-phase rounding in one pass: `even = Q_even(x·s)/s` and `odd = Q_odd(x·s)/s` with the
/// GradScale `s` of `x`, which is returned. No allocation.
pub fn two_phase<D: Dimension>(
    x: &ArrayRef<f32, D>,
    levels: u32,
    even: &mut ArrayRef<f32, D>,
    odd: &mut ArrayRef<f32, D>,
) -> f32 {
    let s = gradscale(max_abs(x));
    let inv = 1.0 / s; // exact: s is a power of two
    Zip::from(even).and(odd).and(x).for_each(|e, o, &v| {
        let y = v * s;
        *e = q_even(y, levels) * inv;
        *o = q_odd(y, levels) * inv;
    });
    s
}

/// One phase with a given scale: `out = Q_phase(x·s)/s`.
pub fn quantize_scaled<D: Dimension>(
    x: &ArrayRef<f32, D>,
    levels: u32,
    phase: Phase,
    s: f32,
    out: &mut ArrayRef<f32, D>,
) {
    // Dividing in f64 keeps any positive scale finite (`1/s` overflows f32 below 2^-128); for
    // the power-of-two GradScales of training it is exactly the f32 product `q · (1/s)`.
    let s64 = s as f64;
    Zip::from(out).and(x).for_each(|o, &v| {
        *o = (q_phase(v * s, levels, phase) as f64 / s64).clamp(-f32::MAX as f64, f32::MAX as f64) as f32
    });
}

/// FP4 codes of `x·s` on `phase` (see [`code_of`]), for the tile simulator.
pub fn encode<D: Dimension>(x: &ArrayRef<f32, D>, levels: u32, phase: Phase, s: f32, codes: &mut ArrayRef<i8, D>) {
    Zip::from(codes)
        .and(x)
        .for_each(|c, &v| *c = code_of(q_phase(v * s, levels, phase) * if phase == Phase::Odd { 0.5 } else { 1.0 }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;
    use proptest::prelude::*;

    #[test]
    fn worked_example_of_domain_md() {
        // max|δ| = 0.012 → s = 64; δ = 0.0047 → 0.3008 → even 1/4, odd 1/8.
        let s = gradscale(0.012);
        assert_eq!(s, 64.0);
        assert_eq!(q_even(0.0047 * s, 8) / s, 0.00390625);
        assert_eq!(q_odd(0.0047 * s, 8) / s, 0.001953125);
        let x = arr1(&[0.012f32, 0.0047, -0.0047, 0.0]);
        let (mut e, mut o) = (x.clone(), x.clone());
        assert_eq!(two_phase(&x, 8, &mut e, &mut o), 64.0);
        assert_eq!(e[1], 0.00390625);
        assert_eq!(o[1], 0.001953125);
        assert_eq!(e[2], -0.00390625);
        assert_eq!(e[0], 1.0 / 64.0); // 0.768 > 0.625 → 1
    }

    #[test]
    fn grid_thresholds_ties_saturation_and_flush() {
        assert_eq!(q_even(0.625, 8), 0.25, "tie goes to the smaller magnitude");
        assert_eq!(q_even(0.62500006, 8), 1.0);
        assert_eq!(q_even(5.0, 8), 1.0, "saturates");
        assert_eq!(q_even(-5.0, 8), -1.0);
        let smallest = 4f32.powi(-7);
        assert_eq!(q_even(smallest * 0.5, 8), 0.0, "half the smallest level flushes");
        assert_eq!(q_even(smallest * 0.50001, 8), smallest);
        assert_eq!(q_even(1e-30, 8), 0.0);
        assert_eq!(q_even(f32::from_bits(1), 8), 0.0, "subnormal");
        assert_eq!(q_even(0.13, 2), 0.25, "two levels: {{0, 1/4, 1}}");
        assert_eq!(q_even(0.12, 2), 0.0);
        assert!(q_even(f32::NAN, 8).is_nan());
    }

    #[test]
    fn gradscale_puts_the_maximum_in_the_half_open_top_octave() {
        assert_eq!(gradscale(0.0), 1.0);
        assert_eq!(gradscale(1.0), 1.0);
        assert_eq!(gradscale(0.5), 2.0);
        assert_eq!(gradscale(0.75), 1.0);
        assert_eq!(gradscale(3.0), 0.25);
        assert_eq!(gradscale(f32::INFINITY), 1.0);
        let tiny = f32::from_bits(3); // subnormal
        let s = gradscale(tiny);
        assert!(s.is_finite() && s > 1e30);
        assert_eq!(gradscale_incremental(0.2, 1.0), 2.0);
        assert_eq!(gradscale_incremental(2.0, 1.0), 0.5);
        assert_eq!(gradscale_incremental(0.7, 1.0), 1.0);
    }

    #[test]
    fn codes_round_trip() {
        for phase in [Phase::Even, Phase::Odd] {
            for code in -8i8..=8 {
                let v = value_of(code, phase);
                let back = code_of(if phase == Phase::Odd { v * 0.5 } else { v });
                assert_eq!(back, code, "{phase:?} {code}");
            }
        }
    }

    proptest! {
        #[test]
        fn idempotent_symmetric_on_grid(x in -4.0f32..4.0, levels in 1u32..9) {
            for phase in [Phase::Even, Phase::Odd] {
                let q = q_phase(x, levels, phase);
                prop_assert_eq!(q_phase(q, levels, phase), q, "idempotent");
                prop_assert_eq!(q_phase(-x, levels, phase).to_bits(), (-q).to_bits(), "sign symmetric");
                let a = q.abs();
                let on_grid = a == 0.0 || (0..levels).any(|k| a == value_of(k as i8 + 1, phase));
                prop_assert!(on_grid, "{} not on the {:?} grid", q, phase);
            }
        }

        #[test]
        fn monotone(a in -4.0f32..4.0, b in -4.0f32..4.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(q_even(lo, 8) <= q_even(hi, 8));
            prop_assert!(q_odd(lo, 8) <= q_odd(hi, 8));
        }

        #[test]
        fn nearest_grid_point(x in 0.0f32..1.0) {
            // No grid point is strictly closer than the chosen one.
            let q = q_even(x, 8);
            let grid: Vec<f32> = std::iter::once(0.0).chain((0..8).map(|k| 4f32.powi(-k))).collect();
            let best = grid.iter().map(|g| (g - x).abs()).fold(f32::INFINITY, f32::min);
            prop_assert!((q - x).abs() <= best, "{} -> {} but {} is closer", x, q, best);
            // Relative error bound inside the range: at most 60% (the 0.625 threshold).
            if x >= 4f32.powi(-7) {
                prop_assert!((q - x).abs() <= 0.6 * x + 1e-12);
            }
        }

        #[test]
        fn scaled_tensor_max_is_in_top_octave(v in proptest::collection::vec(-1e3f32..1e3, 1..50)) {
            let x = ndarray::Array1::from(v);
            let m = max_abs(&x);
            let s = gradscale(m);
            if m > 0.0 {
                prop_assert!(m * s > 0.5 && m * s <= 1.0);
            }
        }
    }
}
