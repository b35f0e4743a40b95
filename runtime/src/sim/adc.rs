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
        Converter { lsb: fs / cmax as f64, sigma_counts, cmin, cmax }
    }

    /// The code of sum `v` with standard-normal draw `z` (the direct path).
    #[inline]
    pub fn code_direct(&self, v: f64, z: f64) -> i64 {
        (((v + self.sigma_counts * z) / self.lsb).round() as i64).clamp(self.cmin, self.cmax)
    }

    /// The direct path with its draw.
    #[inline]
    pub fn sample_direct<R: Rng>(&self, v: f64, rng: &mut R) -> i64 {
        let z = if self.sigma_counts > 0.0 { StandardNormal.sample(rng) } else { 0.0 };
        self.code_direct(v, z)
    }
}

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The packed row of a sum whose codes are not yet built, or whose alias table lies beyond what
/// the packed form addresses: the kernels leave it to [`CodeTable::code`].
pub(crate) const SLOW: u64 = u64::MAX;

/// The largest alias-table offset the packed row holds (27 bits).
const PACKED_OFF_MAX: u32 = (1 << 27) - 1;

/// How the code of one integer column sum is drawn: `2^bits` alias buckets from `off`, codes
/// counted from `base`.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    base: i32,
    off: u32,
    bits: u8,
    built: bool,
}

/// Code distributions of integer column sums `vmin..=vmax` for one converter, built lazily.
///
/// Each sum's distribution is a Walker alias table of `2^bits` buckets (padded with empty
/// codes to a power of two, so the bucket is the top bits of the draw): a draw `r` picks bucket
/// `k = r >> (64 − bits)` and keeps it when the low 32 bits of `r` are below the bucket's
/// threshold, else takes the bucket's alias. Every code then has exactly its 32-bit probability:
/// one uniform 64-bit draw per conversion, no branch on the outcome, two dependent loads.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    conv: Converter,
    vmin: i64,
    rows: Vec<Row>,
    /// Per sum, what the kernels read: the base code in the low 32 bits, `off << 5 | bits` in the
    /// high 32; [`SLOW`] until built.
    packed: Vec<u64>,
    /// Alias buckets, one word each: the threshold in the high 32 bits, the alias (a bucket
    /// number) in the low 32. A full bucket has threshold `u32::MAX` and is its own alias.
    alias: Vec<u64>,
}

impl CodeTable {
    pub fn new(conv: Converter, vmin: i64, vmax: i64) -> CodeTable {
        let n = (vmax - vmin + 1).max(1) as usize;
        CodeTable { conv, vmin, rows: vec![Row::default(); n], packed: vec![SLOW; n], alias: Vec::new() }
    }

    /// Heap bytes this table holds (it grows as rows are built).
    pub fn bytes(&self) -> usize {
        use std::mem::size_of;
        self.rows.capacity() * size_of::<Row>()
            + self.packed.capacity() * size_of::<u64>()
            + self.alias.capacity() * size_of::<u64>()
    }

    /// The table index of integer sum `v`.
    #[inline]
    pub fn index(&self, v: i64) -> u32 {
        (v - self.vmin) as u32
    }

    /// The packed rows and alias buckets, as the conversion kernels read them.
    #[inline]
    pub fn packed(&self) -> (&[u64], &[u64]) {
        (&self.packed, &self.alias)
    }

    /// The code of sum index `i` for the uniform 64-bit draw `r`, building the row if needed.
    pub fn code(&mut self, i: usize, r: u64) -> i64 {
        if !self.rows[i].built {
            self.build(i);
        }
        let row = self.rows[i];
        code_from(row.base, row.off, u32::from(row.bits), &self.alias, r)
    }

    #[cold]
    fn build(&mut self, i: usize) {
        let c = self.conv;
        let v = i as i64 + self.vmin;
        let u = v as f64 / c.lsb;
        let s = c.sigma_counts / c.lsb;
        let (base, cum) = if s == 0.0 {
            ((u.round() as i64).clamp(c.cmin, c.cmax), Vec::new())
        } else {
            let lo = ((u - 7.0 * s).floor() as i64).clamp(c.cmin, c.cmax);
            let hi = ((u + 7.0 * s).ceil() as i64).clamp(c.cmin, c.cmax);
            // P(code <= k) at 32-bit resolution, for the codes within ±7σ.
            let mut cum: Vec<u32> = (lo..hi)
                .map(|code| (phi((code as f64 + 0.5 - u) / s) * 4294967296.0).min(u32::MAX as f64) as u32)
                .collect();
            // Drop codes that cannot occur at 32-bit resolution.
            let first = cum.iter().take_while(|&&t| t == 0).count();
            cum.drain(..first);
            while cum.last() == Some(&u32::MAX) {
                cum.pop();
            }
            (lo + first as i64, cum)
        };
        let bits = (cum.len() + 1).next_power_of_two().trailing_zeros();
        let off = self.alias.len() as u32;
        self.build_alias(&cum, 1 << bits);
        self.rows[i] = Row { base: base as i32, off, bits: bits as u8, built: true };
        if off <= PACKED_OFF_MAX {
            self.packed[i] = (u64::from(off << 5 | bits) << 32) | u64::from(base as i32 as u32);
        }
    }

    /// Appends the Walker alias table of `buckets` buckets for the codes given by thresholds
    /// `cum` (codes beyond `cum.len()` have probability 0). Vose's construction in integers:
    /// bucket capacity 2³², weights scaled by the bucket count, so the table reproduces the
    /// 32-bit probabilities exactly.
    fn build_alias(&mut self, cum: &[u32], buckets: usize) {
        let cap = 1u64 << 32;
        let width = |k: usize| -> u64 {
            if k > cum.len() {
                return 0;
            }
            let a = if k == 0 { 0 } else { cum[k - 1] as u64 };
            let b = if k == cum.len() { cap } else { cum[k] as u64 };
            b - a
        };
        let mut scaled: Vec<u64> = (0..buckets).map(|k| width(k) * buckets as u64).collect();
        let mut prob = vec![cap; buckets];
        let mut to: Vec<u32> = (0..buckets as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..buckets).partition(|&k| scaled[k] < cap);
        while let (Some(l), Some(&g)) = (small.pop(), large.last()) {
            prob[l] = scaled[l];
            to[l] = g as u32;
            scaled[g] -= cap - scaled[l];
            if scaled[g] < cap {
                large.pop();
                small.push(g);
            }
        }
        // A full bucket (prob = 2³²) keeps `to[k] = k`: the threshold u32::MAX then rejects
        // only the low half u32::MAX, which lands on k itself. Same codes, one word per bucket.
        self.alias.extend(prob.iter().zip(&to).map(|(&p, &t)| (p.min(u32::MAX as u64) << 32) | t as u64));
    }
}

/// The code a draw `r` gives through the alias table of `2^bits` buckets at `off` (the
/// arithmetic every conversion kernel reproduces exactly).
#[inline(always)]
pub(crate) fn code_from(base: i32, off: u32, bits: u32, alias: &[u64], r: u64) -> i64 {
    let k = r.checked_shr(64 - bits).unwrap_or(0);
    let bucket = alias[off as usize + k as usize];
    let pick = if (r & 0xffff_ffff) < bucket >> 32 { k } else { bucket & 0xffff_ffff };
    base as i64 + pick as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::convert;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn exact_sampling_matches_direct_sampling_in_distribution() {
        // A noisy narrow range, where codes spread over several values.
        let conv = Converter::new(8, AdcZero::Unsigned, 0.5, 1152.0, 1152.0, 1.0, 4.0);
        let mut table = CodeTable::new(conv, 0, 1152);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let n = 200_000 / 64 * 64;
        for v in [0i64, 3, 10, 57] {
            let mut h_table = std::collections::BTreeMap::<i64, u32>::new();
            let mut h_direct = std::collections::BTreeMap::<i64, u32>::new();
            for code in sample_codes(&mut table, v, n, &mut rng) {
                *h_table.entry(code).or_default() += 1;
            }
            for _ in 0..n {
                *h_direct.entry(conv.sample_direct(v as f64, &mut rng)).or_default() += 1;
            }
            for (code, &a) in &h_direct {
                let b = *h_table.get(code).unwrap_or(&0);
                let (pa, pb) = (a as f64 / n as f64, b as f64 / n as f64);
                let se = (pa * (1.0 - pa) / n as f64).sqrt().max(1e-4);
                assert!((pa - pb).abs() < 6.0 * se, "v={v} code={code}: direct {pa} table {pb}");
            }
        }
    }

    /// Codes of `n` conversions of sum `v`, through the block converter (blocks of 64) on the
    /// fastest path this CPU has, with draws keyed by the next value of `rng`.
    fn sample_codes(table: &mut CodeTable, v: i64, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<i64> {
        let key = rng.next_u64();
        let path = crate::sim::kernel::detect();
        let mut scratch = convert::Scratch::default();
        let mut codes = Vec::new();
        let i = table.index(v);
        for b in 0..n / 64 {
            let mut acc = vec![0i64; 64];
            convert::convert_block(path, table, &[i; 64], 1, &mut acc, key, (b * 64) as u64, &mut scratch);
            codes.extend(acc);
        }
        codes
    }

    /// Mean and variance of the code of sum `v` under the model: Gaussian noise, rounding,
    /// clipping, summed over the codes.
    fn code_moments(conv: &Converter, v: f64) -> (f64, f64) {
        let (u, s) = (v / conv.lsb, conv.sigma_counts / conv.lsb);
        let (mut m1, mut m2) = (0.0, 0.0);
        for c in conv.cmin..=conv.cmax {
            let below = if c == conv.cmin { 0.0 } else { phi((c as f64 - 0.5 - u) / s) };
            let upto = if c == conv.cmax { 1.0 } else { phi((c as f64 + 0.5 - u) / s) };
            m1 += c as f64 * (upto - below);
            m2 += (c * c) as f64 * (upto - below);
        }
        (m1, m2 - m1 * m1)
    }

    #[test]
    fn mean_codes_match_the_noise_model_over_the_whole_range() {
        // Narrow and wide noise in LSB, unsigned and signed ADCs, sums up to and past clipping.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for (zero, sigma, gain, vmin) in
            [(AdcZero::Unsigned, 0.05, 2.0, 0), (AdcZero::Unsigned, 0.5, 8.0, 0), (AdcZero::Signed, 0.2, 4.0, -1152)]
        {
            let conv = Converter::new(8, zero, sigma, 1152.0, 1152.0, 1.0, gain);
            let mut table = CodeTable::new(conv, vmin, 1152);
            let n = 4096;
            for v in (vmin..=1152).step_by(37) {
                let codes = sample_codes(&mut table, v, n, &mut rng);
                let mean = codes.iter().sum::<i64>() as f64 / n as f64;
                let (expect, var) = code_moments(&conv, v as f64);
                let tol = 6.0 * (var / n as f64).sqrt() + 1e-6;
                assert!((mean - expect).abs() < tol, "{zero:?} σ={sigma} g={gain} v={v}: mean {mean}, model {expect}");
            }
        }
    }

    #[test]
    fn rare_deviations_have_the_right_rate() {
        // Low noise: at v = 0, a deviation to code 1 needs z > LSB/2 (about 5σ here).
        let conv = Converter::new(8, AdcZero::Unsigned, 0.05, 1152.0, 1152.0, 1.0, 2.0);
        let mut table = CodeTable::new(conv, 0, 1152);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let s = conv.sigma_counts / conv.lsb;
        let p = 0.5 * libm::erfc(0.5 / s / std::f64::consts::SQRT_2);
        let n = 6_400_000;
        let hits = sample_codes(&mut table, 0, n, &mut rng).iter().filter(|&&c| c == 1).count() as f64;
        let expect = p * n as f64;
        assert!((hits - expect).abs() < 5.0 * expect.sqrt() + 2.0, "{hits} deviations, expected {expect}");
    }

    #[test]
    fn unsigned_adc_clips_negative_noise_upward() {
        // v = 0 with noise: codes are >= 0, so the mean is biased above zero.
        let conv = Converter::new(8, AdcZero::Unsigned, 0.5, 1152.0, 1152.0, 1.0, 1.0);
        let mut table = CodeTable::new(conv, 0, 1152);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mean: f64 = sample_codes(&mut table, 0, 10_048, &mut rng).iter().map(|&c| c as f64).sum::<f64>() / 10_048.0;
        assert!(mean > 0.1, "{mean}");
        let signed = Converter::new(8, AdcZero::Signed, 0.5, 1152.0, 1152.0, 1.0, 1.0);
        let mut t2 = CodeTable::new(signed, -1152, 1152);
        let mean2: f64 = sample_codes(&mut t2, 0, 10_048, &mut rng).iter().map(|&c| c as f64).sum::<f64>() / 10_048.0;
        assert!(mean2.abs() < 0.05, "{mean2}");
    }
}
