//! The column ADC: `code = clip(round((v + n)/LSB), cmin, cmax)`, `v̂ = code·LSB`, with
//! `FS = rows·level_max / G`, `LSB = FS / cmax`, and Gaussian noise `n` of fixed size in unit
//! counts, `σ = σ_LSB0 · rows_noise·level_max / (2^B − 1)`.
//!
//! For integer column sums the code is sampled *exactly in distribution* from one uniform
//! 32-bit draw: `P(code ≤ c) = Φ((c + ½ − v/LSB)/σ_code)`, with codes outside ±7σ dropped
//! (probability < 2⁻³²). That equals adding a Gaussian and rounding, costs one integer compare
//! per conversion, and costs no draw at all when the outcome is certain. Sums that are not
//! integers (column gain mismatch, DAC level error) take the direct path: one normal draw.

use crate::config::AdcZero;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// One ADC setting: resolution, range and noise, in LSB units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Converter {
    /// Size of one code in unit counts.
    pub lsb: f64,
    /// Noise in counts.
    pub sigma_counts: f64,
    /// Lowest code.
    pub cmin: i64,
    /// Highest code.
    pub cmax: i64,
}

impl Converter {
    /// The converter of a `bits`-bit ADC at gain `gain` for column sums up to
    /// `full_rows · level_max`, with noise fixed by `noise_rows`.
    pub fn new(
        bits: u32,
        zero: AdcZero,
        sigma_lsb0: f64,
        full_rows: f64,
        noise_rows: f64,
        level_max: f64,
        gain: f64,
    ) -> Converter {
        let native = ((1u64 << bits) - 1) as f64;
        let fs = full_rows * level_max / gain;
        let (cmin, cmax) = match zero {
            AdcZero::Unsigned => (0, (1i64 << bits) - 1),
            AdcZero::Signed | AdcZero::Differential => {
                let m = (1i64 << (bits - 1)) - 1;
                (-m, m)
            }
        };
        let mut sigma_counts = sigma_lsb0 * noise_rows * level_max / native;
        if zero == AdcZero::Differential {
            sigma_counts *= std::f64::consts::SQRT_2; // two columns' noise
        }
        Converter {
            lsb: fs / cmax as f64,
            sigma_counts,
            cmin,
            cmax,
        }
    }

    /// The code of sum `v` with standard-normal draw `z` (the direct path).
    #[inline]
    pub fn code_direct(&self, v: f64, z: f64) -> i64 {
        (((v + self.sigma_counts * z) / self.lsb).round() as i64).clamp(self.cmin, self.cmax)
    }

    /// The direct path with its draw.
    #[inline]
    pub fn sample_direct<R: Rng>(&self, v: f64, rng: &mut R) -> i64 {
        let z = if self.sigma_counts > 0.0 {
            StandardNormal.sample(rng)
        } else {
            0.0
        };
        self.code_direct(v, z)
    }
}

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The code distribution of one integer column sum.
#[derive(Debug, Clone)]
struct Row {
    /// The lowest possible code.
    base: i64,
    /// `cum[i]`: draws below it give code `base + i`; draws at or above the last give
    /// `base + cum.len()`. Empty: the code is certain.
    cum: Box<[u32]>,
}

/// Code distributions of integer column sums `vmin..=vmax` for one converter, built lazily.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    conv: Converter,
    vmin: i64,
    rows: Vec<Option<Row>>,
}

impl CodeTable {
    pub fn new(conv: Converter, vmin: i64, vmax: i64) -> CodeTable {
        CodeTable {
            conv,
            vmin,
            rows: vec![None; (vmax - vmin + 1).max(1) as usize],
        }
    }

    fn build(&self, v: i64) -> Row {
        let c = &self.conv;
        let u = v as f64 / c.lsb;
        let s = c.sigma_counts / c.lsb;
        if s == 0.0 {
            return Row {
                base: (u.round() as i64).clamp(c.cmin, c.cmax),
                cum: Box::new([]),
            };
        }
        let lo = ((u - 7.0 * s).floor() as i64).clamp(c.cmin, c.cmax);
        let hi = ((u + 7.0 * s).ceil() as i64).clamp(c.cmin, c.cmax);
        let mut base = lo;
        let mut cum: Vec<u32> = (lo..hi)
            .map(|code| {
                (phi((code as f64 + 0.5 - u) / s) * 4294967296.0).min(u32::MAX as f64) as u32
            })
            .collect();
        // Drop codes that cannot occur at 32-bit resolution.
        let first = cum.iter().take_while(|&&t| t == 0).count();
        cum.drain(..first);
        base += first as i64;
        while cum.last() == Some(&u32::MAX) {
            cum.pop();
        }
        Row {
            base,
            cum: cum.into_boxed_slice(),
        }
    }

    /// Samples the code of integer sum `v`.
    #[inline]
    pub fn sample<R: Rng>(&mut self, v: i64, rng: &mut R) -> i64 {
        let i = (v - self.vmin) as usize;
        if self.rows[i].is_none() {
            self.rows[i] = Some(self.build(v));
        }
        let row = self.rows[i].as_ref().expect("just built");
        if row.cum.is_empty() {
            return row.base;
        }
        let r = rng.next_u32();
        row.base + row.cum.partition_point(|&t| t <= r) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn exact_sampling_matches_direct_sampling_in_distribution() {
        // A noisy narrow range, where codes spread over several values.
        let conv = Converter::new(8, AdcZero::Unsigned, 0.5, 1152.0, 1152.0, 1.0, 4.0);
        let mut table = CodeTable::new(conv, 0, 1152);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let n = 200_000;
        for v in [0i64, 3, 10, 57] {
            let mut h_table = std::collections::BTreeMap::<i64, u32>::new();
            let mut h_direct = std::collections::BTreeMap::<i64, u32>::new();
            for _ in 0..n {
                *h_table.entry(table.sample(v, &mut rng)).or_default() += 1;
                *h_direct
                    .entry(conv.sample_direct(v as f64, &mut rng))
                    .or_default() += 1;
            }
            for (code, &a) in &h_direct {
                let b = *h_table.get(code).unwrap_or(&0);
                let (pa, pb) = (a as f64 / n as f64, b as f64 / n as f64);
                let se = (pa * (1.0 - pa) / n as f64).sqrt().max(1e-4);
                assert!(
                    (pa - pb).abs() < 6.0 * se,
                    "v={v} code={code}: direct {pa} table {pb}"
                );
            }
        }
    }

    #[test]
    fn unsigned_adc_clips_negative_noise_upward() {
        // v = 0 with noise: codes are >= 0, so the mean is biased above zero.
        let conv = Converter::new(8, AdcZero::Unsigned, 0.5, 1152.0, 1152.0, 1.0, 1.0);
        let mut table = CodeTable::new(conv, 0, 1152);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mean: f64 = (0..10_000)
            .map(|_| table.sample(0, &mut rng) as f64)
            .sum::<f64>()
            / 10_000.0;
        assert!(mean > 0.1, "{mean}");
        let signed = Converter::new(8, AdcZero::Signed, 0.5, 1152.0, 1152.0, 1.0, 1.0);
        let mut t2 = CodeTable::new(signed, -1152, 1152);
        let mean2: f64 = (0..10_000)
            .map(|_| t2.sample(0, &mut rng) as f64)
            .sum::<f64>()
            / 10_000.0;
        assert!(mean2.abs() < 0.05, "{mean2}");
    }
}
