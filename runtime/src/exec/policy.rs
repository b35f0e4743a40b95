//! ADC range policies: the gain of each input plane of each IMC MVM, chosen before every call
//! from running statistics of that plane's noiseless column sums (the previous calls').
//!
//! Column sums of a plane are modelled as Gaussian with the running mean and variance. The
//! `mse` policy picks the full scale `FS` minimising rounding plus clipping error,
//! `(FS/cmax)²/12 + E[(v − FS)²; v > FS]`; `max` covers the running maximum; `percentile(p)`
//! covers `mean + z_p·std`; `fixed(g)` uses `g`. The gain is `G = FS_native / FS` (at least 1,
//! for the adaptive policies: a range wider than the largest possible sum resolves nothing),
//! snapped to the allowed gain with the smallest modelled error when the ADC offers only a list.

use crate::config::RangePolicy;
use crate::sim::PlaneStats;
use serde::{Deserialize, Serialize};

/// Running statistics of one plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// Mean column sum.
    pub mean: f64,
    /// Mean squared column sum.
    pub sq: f64,
    /// Running maximum (decays with the momentum).
    pub max: f64,
    /// Whether any call has been seen.
    pub seen: bool,
}

fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Modelled mean squared conversion error at full scale `fs` for sums `N(mean, sd²)`.
fn error(fs: f64, cmax: f64, mean: f64, sd: f64) -> f64 {
    let lsb = fs / cmax;
    let round = lsb * lsb / 12.0;
    let clip = if sd <= 0.0 {
        if mean > fs { (mean - fs).powi(2) } else { 0.0 }
    } else {
        let t = (fs - mean) / sd;
        sd * sd * ((1.0 + t * t) * (1.0 - phi(t)) - t * pdf(t))
    };
    round + clip
}

/// The inverse standard normal CDF, by bisection (only used for percentile policies).
fn probit(p: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0, 10.0);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if phi(mid) < p { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

impl Running {
    /// Folds one call's statistics of a plane in, with `momentum` (the first call sets them).
    pub fn update(&mut self, stats: &PlaneStats, plane: usize, momentum: f64) {
        let n = stats.count.get(plane).copied().unwrap_or(0);
        if n == 0 {
            return;
        }
        let mean = stats.sum[plane] / n as f64;
        let sq = stats.sum_sq[plane] / n as f64;
        let max = stats.max[plane];
        if self.seen {
            self.mean = momentum * self.mean + (1.0 - momentum) * mean;
            self.sq = momentum * self.sq + (1.0 - momentum) * sq;
            self.max = (momentum * self.max + (1.0 - momentum) * max).max(max * (1.0 - momentum));
        } else {
            *self = Running { mean, sq, max, seen: true };
        }
    }

    /// The gain for this plane: native full scale `fs_native` (counts at gain 1), ADC codes
    /// `cmax` above zero, allowed gains (`None`: any), and the gain to use before any statistics.
    pub fn gain(&self, policy: &RangePolicy, fs_native: f64, cmax: f64, allowed: Option<&[f64]>, initial: f64) -> f64 {
        if let RangePolicy::Fixed { gain } = policy {
            return *gain;
        }
        if !self.seen {
            return initial;
        }
        let sd = (self.sq - self.mean * self.mean).max(0.0).sqrt();
        let ideal_fs = match policy {
            RangePolicy::Max { .. } => self.max,
            RangePolicy::Percentile { p, .. } => self.mean + probit(p / 100.0) * sd,
            RangePolicy::Mse { .. } => {
                // Search full scales between the mean and the native range.
                let lo = self.mean.max(1.0);
                let hi = fs_native.max(lo);
                (0..=256)
                    .map(|i| lo * (hi / lo).powf(i as f64 / 256.0))
                    .min_by(|a, b| error(*a, cmax, self.mean, sd).total_cmp(&error(*b, cmax, self.mean, sd)))
                    .unwrap_or(hi)
            }
            RangePolicy::Fixed { .. } => unreachable!("handled above"),
        };
        let g = (fs_native / ideal_fs.max(1.0)).max(1.0);
        match allowed {
            None => g,
            Some(list) => list
                .iter()
                .copied()
                .min_by(|a, b| {
                    error(fs_native / a, cmax, self.mean, sd).total_cmp(&error(fs_native / b, cmax, self.mean, sd))
                })
                .unwrap_or(g),
        }
    }

    /// The momentum of a policy (1 for `fixed`, which keeps no statistics).
    pub fn momentum(policy: &RangePolicy) -> f64 {
        match policy {
            RangePolicy::Mse { momentum }
            | RangePolicy::Max { momentum }
            | RangePolicy::Percentile { momentum, .. } => *momentum,
            RangePolicy::Fixed { .. } => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mse_narrows_the_range_for_small_sums_and_snaps_to_allowed_gains() {
        let r = Running { mean: 20.0, sq: 20.0 * 20.0 + 25.0, max: 40.0, seen: true };
        let g = r.gain(&RangePolicy::Mse { momentum: 0.9 }, 1152.0, 255.0, None, 1.0);
        assert!(g > 10.0 && g < 57.6, "FS between the mean and the native range: {g}");
        let snapped = r.gain(&RangePolicy::Mse { momentum: 0.9 }, 1152.0, 255.0, Some(&[1.0, 8.0]), 1.0);
        assert_eq!(snapped, 8.0);
        assert_eq!(r.gain(&RangePolicy::Max { momentum: 0.9 }, 1152.0, 255.0, None, 1.0), 1152.0 / 40.0);
        assert_eq!(r.gain(&RangePolicy::Fixed { gain: 3.0 }, 1152.0, 255.0, None, 1.0), 3.0);
        assert_eq!(Running::default().gain(&RangePolicy::Max { momentum: 0.9 }, 1152.0, 255.0, None, 7.0), 7.0);
    }

    #[test]
    fn probit_inverts_phi() {
        assert!((probit(0.999) - 3.0902).abs() < 1e-3);
    }
}
