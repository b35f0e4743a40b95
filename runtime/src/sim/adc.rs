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

/// Draws with at least this deviation mass (2⁻³² units; 1/256) are sampled one by one; rarer
/// deviations are found by geometric skipping.
const COMMON: u32 = 1 << 24;

/// How to sample the code of one integer column sum beyond its most likely code: codes
/// `base ..= base + len`, draws below `cum[off + i]` giving `base + i`; the most likely code
/// covers draws `lo .. lo + (2³² − dev)`.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    base: i32,
    off: u32,
    len: u32,
    lo: u32,
    /// Offset of the row's alias table (`len + 1` buckets) in `alias`.
    alias_off: u32,
}

#[inline]
fn pack(mode: i32, dev: u32) -> u64 {
    ((mode as u32 as u64) << 32) | dev as u64
}

#[inline]
fn mode_of(h: u64) -> i32 {
    (h >> 32) as u32 as i32
}

#[inline]
fn dev_of(h: u64) -> u32 {
    h as u32
}

/// Code distributions of integer column sums `vmin..=vmax` for one converter, built lazily.
/// Hot data (most likely code, deviation mass) is kept apart from the rarely used rest.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    conv: Converter,
    vmin: i64,
    built: Vec<bool>,
    /// Per sum: the most likely code (high 32 bits) and the deviation mass (low 32 bits), in
    /// one word so the hot pass makes one load per conversion.
    hot: Vec<u64>,
    meta: Vec<Meta>,
    cum: Vec<u32>,
    /// Walker alias tables of the rows, one word per bucket `k`: accept `k` when the low 32
    /// bits of a draw are below the high half, else take the bucket in the low half (a full
    /// bucket has threshold `u32::MAX` and points to itself), so a draw costs one load.
    alias: Vec<u64>,
}

/// Reused per-block buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    common: Vec<u32>,
}

impl CodeTable {
    pub fn new(conv: Converter, vmin: i64, vmax: i64) -> CodeTable {
        let n = (vmax - vmin + 1).max(1) as usize;
        CodeTable {
            conv,
            vmin,
            built: vec![false; n],
            hot: vec![0; n],
            meta: vec![Meta::default(); n],
            cum: Vec::new(),
            alias: Vec::new(),
        }
    }

    /// Heap bytes this table holds (it grows as rows are built).
    pub fn bytes(&self) -> usize {
        use std::mem::size_of;
        self.built.capacity()
            + self.hot.capacity() * size_of::<u64>()
            + self.meta.capacity() * size_of::<Meta>()
            + self.cum.capacity() * size_of::<u32>()
            + self.alias.capacity() * size_of::<u64>()
    }

    /// The table index of integer sum `v`.
    #[inline]
    pub fn index(&self, v: i64) -> u32 {
        (v - self.vmin) as u32
    }

    #[cold]
    fn build(&mut self, i: usize) {
        let c = self.conv;
        let v = i as i64 + self.vmin;
        let u = v as f64 / c.lsb;
        let s = c.sigma_counts / c.lsb;
        self.built[i] = true;
        if s == 0.0 {
            let code = (u.round() as i64).clamp(c.cmin, c.cmax) as i32;
            self.hot[i] = pack(code, 0);
            self.meta[i] = Meta { base: code, off: 0, len: 0, lo: 0, alias_off: 0 };
            return;
        }
        let lo = ((u - 7.0 * s).floor() as i64).clamp(c.cmin, c.cmax);
        let hi = ((u + 7.0 * s).ceil() as i64).clamp(c.cmin, c.cmax);
        let mut base = lo;
        let mut cum: Vec<u32> = (lo..hi)
            .map(|code| (phi((code as f64 + 0.5 - u) / s) * 4294967296.0).min(u32::MAX as f64) as u32)
            .collect();
        // Drop codes that cannot occur at 32-bit resolution.
        let first = cum.iter().take_while(|&&t| t == 0).count();
        cum.drain(..first);
        base += first as i64;
        while cum.last() == Some(&u32::MAX) {
            cum.pop();
        }
        // The mode: the widest interval between thresholds.
        let edges = |k: usize| -> (u64, u64) {
            let a = if k == 0 { 0 } else { cum[k - 1] as u64 };
            let b = if k == cum.len() { 1u64 << 32 } else { cum[k] as u64 };
            (a, b)
        };
        let mode_k = (0..=cum.len()).max_by_key(|&k| {
            let (a, b) = edges(k);
            (b - a, std::cmp::Reverse(k))
        });
        let mode_k = mode_k.unwrap_or(0);
        let (a, b) = edges(mode_k);
        self.hot[i] = pack((base + mode_k as i64) as i32, ((1u64 << 32) - (b - a)) as u32);
        let alias_off = self.alias.len() as u32;
        self.build_alias(&cum);
        self.meta[i] =
            Meta { base: base as i32, off: self.cum.len() as u32, len: cum.len() as u32, lo: a as u32, alias_off };
        self.cum.extend_from_slice(&cum);
    }

    /// Appends the Walker alias table of the code distribution given by thresholds `cum`
    /// (Vose's construction in integers: bucket capacity 2³², weights scaled by the bucket
    /// count, so the table reproduces the 32-bit probabilities).
    fn build_alias(&mut self, cum: &[u32]) {
        let n = cum.len() + 1;
        let cap = 1u64 << 32;
        let width = |k: usize| -> u64 {
            let a = if k == 0 { 0 } else { cum[k - 1] as u64 };
            let b = if k == cum.len() { cap } else { cum[k] as u64 };
            b - a
        };
        let mut scaled: Vec<u64> = (0..n).map(|k| width(k) * n as u64).collect();
        let mut prob = vec![cap; n];
        let mut to: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&k| scaled[k] < cap);
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
        // only the draw u32::MAX, which lands on k itself. Same codes, one word per bucket.
        self.alias.extend(prob.iter().zip(&to).map(|(&p, &t)| (p.min(u32::MAX as u64) << 32) | t as u64));
    }

    /// A code of row `i` from one 64-bit draw, through its alias table.
    #[inline]
    fn alias_code(&self, i: usize, r: u64) -> i32 {
        let m = self.meta[i];
        let n = m.len as u64 + 1;
        let k = (((r >> 32) * n) >> 32) as usize;
        let at = m.alias_off as usize + k;
        let bucket = self.alias[at];
        let pick = if (r & 0xffff_ffff) < bucket >> 32 { k } else { bucket as u32 as usize };
        m.base + pick as i32
    }

    /// The code for draw `r` (a 32-bit uniform) at index `i`.
    #[inline]
    fn code_for(&self, i: usize, r: u64) -> i32 {
        let m = self.meta[i];
        let cum = &self.cum[m.off as usize..(m.off + m.len) as usize];
        m.base + cum.iter().map(|&t| u32::from(t as u64 <= r)).sum::<u32>() as i32
    }

    /// Converts a block of column sums given by table index, adding `weight·code` to `acc[j]`.
    /// Each conversion gets its own noise, exactly in distribution: likely deviations from the
    /// most likely code are drawn one by one, rare ones by geometric skipping over the block
    /// (thinning), so a block of certain or nearly certain conversions costs almost no draws.
    pub fn convert_block<R: Rng>(
        &mut self,
        idx: &[u32],
        weight: i64,
        acc: &mut [i64],
        rng: &mut R,
        scratch: &mut Scratch,
    ) {
        let k = idx.len();
        for &i in idx {
            if !self.built[i as usize] {
                self.build(i as usize);
            }
        }
        scratch.common.resize(k, 0);
        // Branch-free pass: the most likely codes, and which conversions need their own draw.
        let hot = &self.hot;
        let mut q_dev = 0u32;
        let mut n_common = 0usize;
        for (j, (&i, a)) in idx.iter().zip(acc.iter_mut()).enumerate() {
            let i = i as usize;
            let h = hot[i];
            let d = dev_of(h);
            let common = d >= COMMON;
            // A common conversion adds its drawn code below; the others their mode now.
            *a += weight * if common { 0 } else { mode_of(h) as i64 };
            scratch.common[n_common] = j as u32;
            n_common += usize::from(common);
            q_dev = q_dev.max(if common { 0 } else { d });
        }
        for &j in &scratch.common[..n_common] {
            let i = idx[j as usize] as usize;
            // Few possible codes: compare one 32-bit draw with the thresholds; many (wide noise
            // in LSB, after a narrow range): one 64-bit draw through the alias table.
            let code = if self.meta[i].len <= 4 {
                self.code_for(i, rng.next_u32() as u64)
            } else {
                self.alias_code(i, rng.next_u64())
            };
            acc[j as usize] += weight * code as i64;
        }
        if q_dev == 0 {
            return;
        }
        // Candidates at rate q = q_dev/2³², each accepted with probability dev_j/q_dev.
        let ln1q = libm::log1p(-(q_dev as f64) / 4294967296.0);
        let mut j = 0usize;
        loop {
            let u = ((rng.next_u64() >> 11) + 1) as f64 / 9007199254740992.0; // (0, 1]
            let gap = libm::log(u) / ln1q;
            j = j.saturating_add(if gap.is_finite() { gap as usize } else { usize::MAX });
            if j >= k {
                break;
            }
            let i = idx[j] as usize;
            let d = dev_of(self.hot[i]);
            if d > 0 && d < COMMON {
                let r2 = rng.next_u32() as u64;
                if r2 * (q_dev as u64) < (d as u64) << 32 {
                    // A deviation: a draw uniform over everything but the mode's interval.
                    let x = (rng.next_u32() as u64 * d as u64) >> 32;
                    let width = (1u64 << 32) - d as u64;
                    let lo = self.meta[i].lo as u64;
                    let r = if x >= lo { x + width } else { x };
                    let code = self.code_for(i, r);
                    acc[j] += weight * (code - mode_of(self.hot[i])) as i64;
                }
            }
            j += 1;
        }
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

    /// Codes of `n` conversions of sum `v`, through the block converter (blocks of 64).
    fn sample_codes(table: &mut CodeTable, v: i64, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<i64> {
        let mut scratch = Scratch::default();
        let mut codes = Vec::new();
        let i = table.index(v);
        for _ in 0..n / 64 {
            let mut acc = vec![0i64; 64];
            table.convert_block(&[i; 64], 1, &mut acc, rng, &mut scratch);
            codes.extend(acc);
        }
        codes
    }

    #[test]
    fn rare_deviations_by_skipping_have_the_right_rate() {
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
