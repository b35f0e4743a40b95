//! The column ADC: `code = clip(round((v + n)/LSB), cmin, cmax)`, `v̂ = code·LSB`, with
//! `FS = rows·level_max / G`, `LSB = FS / cmax`, and Gaussian noise `n` of fixed size in unit
//! counts, `σ = σ_LSB0 · rows_noise·level_max / (2^B − 1)`.
//!
//! For integer column sums the code is sampled *exactly in distribution* from one uniform
//! 32-bit draw: `P(code ≤ c) = Φ((c + ½ − v/LSB)/σ_code)` at 32-bit resolution, with codes
//! outside ±7σ dropped (probability < 2⁻³²), through a Walker alias table per sum ([`CodeTable`]).
//! That equals adding a Gaussian and rounding, and costs one load and a compare per
//! conversion whatever the noise. Sums that are not integers (column gain mismatch, DAC level
//! error) take the direct path: one normal draw.

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

    /// Whether sum `v` lies beyond the outermost codes' bins (`v/LSB <= cmin − 1/2` or
    /// `>= cmax + 1/2`): the range clips it, whatever the noise adds.
    #[inline]
    pub fn clips(&self, v: f64) -> bool {
        let u = v / self.lsb;
        u <= self.cmin as f64 - 0.5 || u >= self.cmax as f64 + 0.5
    }

    /// The table indices (sum − `vmin`) that clip: `(below, from)`, the indices below `below`
    /// and from `from` on ([`Converter::clips`] on integer sums; saturated to `u32`).
    pub fn clip_indices(&self, vmin: i64) -> (u32, u32) {
        let sat = |x: f64| x.clamp(0.0, u32::MAX as f64) as u32;
        // Integer sums v with v <= (cmin − 1/2)·LSB, and v >= (cmax + 1/2)·LSB.
        let below = ((self.cmin as f64 - 0.5) * self.lsb).floor() - vmin as f64 + 1.0;
        let from = ((self.cmax as f64 + 0.5) * self.lsb).ceil() - vmin as f64;
        (sat(below), sat(from))
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

/// The most buckets one table may hold (rows times buckets per row): 512 MiB of words, and
/// only the rows in use are ever touched. A converter whose table would be larger (very wide
/// noise on a high-resolution ADC), or whose codes do not fit 16 bits, is sampled directly
/// instead ([`Converter::sample_direct`]).
const MAX_BUCKETS: u64 = 1 << 26;

/// Stored rows from which a complete table is built in parallel.
const PARALLEL_ROWS: usize = 64;

/// The low 16 bits of a bucket: the code it keeps, biased so that 0 means "not built".
const FIELD: u64 = 0xffff;

/// Code distributions of integer column sums `vmin..=vmax` for one converter, built lazily.
///
/// Each sum's distribution is a Walker alias table of `2^bits` buckets, the same `bits` for
/// every sum of the table (enough for the widest: the codes within ±7σ). A uniform 32-bit draw
/// `r` picks bucket `k = r >> (32 − bits)` and keeps its code when the remaining low bits are
/// below its threshold, else takes its alias code. Bucket capacity is `2^(32 − bits)` units of
/// `2⁻³²`, so every code has exactly its 32-bit probability: one 32-bit draw and one load per
/// conversion, no branch on the outcome.
///
/// Only the sums `lo..=hi` are stored: every sum above `hi` always gives the top code and every
/// sum below `lo` the bottom one, exactly like `hi` and `lo` themselves, so a sum's row is its
/// index clamped to that span. A narrow ADC range then needs a handful of rows, not one per
/// possible sum.
///
/// A bucket is one word: the threshold in the high 32 bits, the alias code and the kept code
/// in the two low 16-bit fields, each stored as `code − cmin + 1` (so a zero word is a bucket
/// not built yet).
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    conv: Converter,
    /// The sum of index 0.
    vmin: i64,
    /// The indices (sum − `vmin`) of the first and last stored rows.
    lo: u32,
    hi: u32,
    /// log2 of the buckets per sum.
    bits: u32,
    buckets: Vec<u64>,
    /// [`Parts::clip_below`] and [`Parts::clip_from`].
    clip_below: u32,
    clip_from: u32,
}

/// What the conversion kernels read of a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// log2 of the buckets per row.
    pub bits: u32,
    /// `cmin − 1`: unbiases a code field.
    pub unbias: i64,
    /// Indices below `lo` read row 0, above `hi` the last row.
    pub lo: u32,
    pub hi: u32,
    pub buckets: &'a [u64],
    /// Indices below `clip_below` or from `clip_from` on are sums beyond the outermost codes'
    /// bins (`v/LSB <= cmin − 1/2` or `>= cmax + 1/2`): the ADC range clips them before noise.
    pub clip_below: u32,
    pub clip_from: u32,
}

impl Parts<'_> {
    /// The row of table index `i`.
    #[inline(always)]
    pub fn row(&self, i: u32) -> usize {
        (i.clamp(self.lo, self.hi) - self.lo) as usize
    }
}

impl CodeTable {
    /// Rows the table of `conv` for sums `vmin..=vmax` stores (the sums whose code can vary,
    /// and the first clipped sum at each end), or `None` when the table would be too large to
    /// build or its codes do not fit the 16-bit fields.
    pub fn stored_rows(conv: &Converter, vmin: i64, vmax: i64) -> Option<u64> {
        let (lo, hi) = Self::span(conv, vmin, vmax);
        let rows = (hi - lo + 1) as u64;
        (conv.cmax - conv.cmin + 1 < FIELD as i64 && rows << Self::bits_for(conv) <= MAX_BUCKETS).then_some(rows)
    }

    /// The sums whose distributions are stored: from the last sum whose code is always the
    /// bottom code to the first whose code is always the top code (both found by bisection
    /// with the very arithmetic of [`fill_row`], so the claim is exact).
    fn span(c: &Converter, vmin: i64, vmax: i64) -> (i64, i64) {
        let s = c.sigma_counts / c.lsb;
        let u = |v: i64| v as f64 / c.lsb;
        let top =
            |v: i64| if s == 0.0 { u(v).round() as i64 >= c.cmax } else { (u(v) - 7.0 * s).floor() as i64 >= c.cmax };
        let bottom =
            |v: i64| if s == 0.0 { u(v).round() as i64 <= c.cmin } else { (u(v) + 7.0 * s).ceil() as i64 <= c.cmin };
        // Smallest v with top(v) (monotone), else vmax; largest v with bottom(v), else vmin.
        let (mut a, mut b) = (vmin, vmax);
        while a < b {
            let m = a + (b - a) / 2;
            if top(m) { b = m } else { a = m + 1 }
        }
        let hi = a;
        let (mut a, mut b) = (vmin, hi);
        while a < b {
            let m = a + (b - a + 1) / 2;
            if bottom(m) { a = m } else { b = m - 1 }
        }
        (a, hi)
    }

    /// The table of `conv` for sums `vmin..=vmax` (rows built when first used); it must fit
    /// ([`CodeTable::stored_rows`] is `Some`).
    pub fn new(conv: Converter, vmin: i64, vmax: i64) -> CodeTable {
        let rows = Self::stored_rows(&conv, vmin, vmax).expect("code table too large") as usize;
        let lo = Self::span(&conv, vmin, vmax).0;
        let bits = Self::bits_for(&conv);
        let hi = lo + rows as i64 - 1;
        let (clip_below, clip_from) = conv.clip_indices(vmin);
        CodeTable {
            conv,
            vmin,
            lo: (lo - vmin) as u32,
            hi: (hi - vmin) as u32,
            bits,
            buckets: vec![0; rows << bits],
            clip_below,
            clip_from,
        }
    }

    /// The table of `conv` for sums `vmin..=vmax` with every stored row built, the rows in
    /// parallel; it must fit.
    pub fn complete(conv: Converter, vmin: i64, vmax: i64) -> CodeTable {
        use rayon::prelude::*;
        let mut t = CodeTable::new(conv, vmin, vmax);
        let (bits, first) = (t.bits, vmin + i64::from(t.lo));
        let fill = |(r, row): (usize, &mut [u64])| fill_row(&conv, first + r as i64, bits, row);
        // Handing rows to other threads pays only for many (a wake-up costs microseconds).
        if t.rows() >= PARALLEL_ROWS {
            t.buckets.par_chunks_mut(1 << bits).enumerate().for_each(fill);
        } else {
            t.buckets.chunks_mut(1 << bits).enumerate().for_each(fill);
        }
        t
    }

    /// Rows stored.
    fn rows(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }

    /// The code of table index `i` (its row built) for the uniform 32-bit draw `r`.
    pub fn code_built(&self, i: u32, r: u32) -> i64 {
        assert!(built(self.buckets[self.parts().row(i) << self.bits]), "code table row of index {i} not built");
        code_from(&self.parts(), i, r)
    }

    /// What identifies the table of `conv` for sums `vmin..=vmax` (`vmin` is `0` or `−vmax`).
    pub fn key(conv: &Converter, vmin: i64, vmax: i64) -> [u64; 4] {
        [
            conv.lsb.to_bits(),
            conv.sigma_counts.to_bits(),
            (conv.cmin as u64) << 32 | conv.cmax as u32 as u64,
            (vmax as u64) << 1 | u64::from(vmin < 0),
        ]
    }

    /// Buckets (log2) for the widest code distribution of `conv`: the codes within ±7σ of a
    /// sum, at most every code of the ADC.
    fn bits_for(conv: &Converter) -> u32 {
        let s = conv.sigma_counts / conv.lsb;
        let codes = if s == 0.0 { 1 } else { ((14.0 * s).ceil() as u64 + 3).min((conv.cmax - conv.cmin + 1) as u64) };
        codes.next_power_of_two().trailing_zeros()
    }

    /// Heap bytes this table holds.
    pub fn bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<u64>()
    }

    /// The table index of integer sum `v`.
    #[cfg(test)]
    pub fn index(&self, v: i64) -> u32 {
        (v - self.vmin) as u32
    }

    /// What the conversion kernels read.
    #[inline]
    pub fn parts(&self) -> Parts<'_> {
        Parts {
            bits: self.bits,
            unbias: self.conv.cmin - 1,
            lo: self.lo,
            hi: self.hi,
            buckets: &self.buckets,
            clip_below: self.clip_below,
            clip_from: self.clip_from,
        }
    }

    /// The code of table index `i` for the uniform 32-bit draw `r`, building its row if needed.
    pub fn code(&mut self, i: u32, r: u32) -> i64 {
        let (row, n) = (self.parts().row(i), 1usize << self.bits);
        if !built(self.buckets[row * n]) {
            let v = self.vmin + i64::from(self.lo) + row as i64;
            fill_row(&self.conv, v, self.bits, &mut self.buckets[row * n..(row + 1) * n]);
        }
        code_from(&self.parts(), i, r)
    }
}

/// Builds the row of sum `v` of a table of `conv` with `2^bits` buckets per sum.
fn fill_row(c: &Converter, v: i64, bits: u32, row: &mut [u64]) {
    let u = v as f64 / c.lsb;
    let s = c.sigma_counts / c.lsb;
    let field = |code: i64| (code - c.cmin + 1) as u64;
    let lo = ((u - 7.0 * s).floor() as i64).clamp(c.cmin, c.cmax);
    let hi = ((u + 7.0 * s).ceil() as i64).clamp(c.cmin, c.cmax);
    if s == 0.0 || lo == hi {
        // One possible code (no noise, or far beyond a clipping edge): every bucket keeps it.
        let code = if s == 0.0 { (u.round() as i64).clamp(c.cmin, c.cmax) } else { lo };
        let cap = 1u64 << (32 - bits);
        row.fill((cap - 1) << 32 | field(code) << 16 | field(code));
        return;
    }
    SCRATCH.with_borrow_mut(|(cum, stack)| {
        // P(code <= k) at 32-bit resolution, for the codes within ±7σ.
        cum.clear();
        cum.extend((lo..hi).map(|code| (phi((code as f64 + 0.5 - u) / s) * 4294967296.0).min(u32::MAX as f64) as u32));
        // Drop codes that cannot occur at 32-bit resolution.
        let first = cum.iter().take_while(|&&t| t == 0).count();
        while cum.last() == Some(&u32::MAX) {
            cum.pop();
        }
        let cum = &cum[first..];
        let base = lo + first as i64;
        debug_assert!(cum.len() < row.len(), "a sum has more codes than its table has buckets");
        alias_row(cum, bits, stack, row);
        // Codes beyond the row's own are empty buckets: their alias is some real code, so
        // clamping the kept code of an empty bucket never changes a draw.
        let field_k = |k: u64| field((base + k as i64).min(c.cmax));
        for (k, b) in row.iter_mut().enumerate() {
            *b = (*b >> 32) << 32 | field_k(*b & 0xffff_ffff) << 16 | field_k(k as u64);
        }
    });
}

thread_local! {
    /// Reused buffers of [`fill_row`]: the thresholds and the Vose work lists.
    static SCRATCH: std::cell::RefCell<(Vec<u32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The Walker alias table of `row.len() = 2^bits` buckets for the codes given by thresholds
/// `cum` (code `k` has probability `(cum[k] − cum[k−1]) / 2³²`; codes beyond `cum.len()` have
/// none), written as `threshold << 32 | alias` per bucket. Vose's construction in integers
/// with bucket capacity `2^(32 − bits)`: the table reproduces the 32-bit probabilities
/// exactly. A full bucket (threshold = capacity) gets capacity − 1 and itself as alias: the one
/// low value it then rejects lands on the same code. `stack` is scratch (the small list grows
/// from its front, the large one from its back: every bucket is in at most one).
fn alias_row(cum: &[u32], bits: u32, stack: &mut Vec<u32>, row: &mut [u64]) {
    let n = row.len();
    let cap = 1u64 << (32 - bits);
    // Work words: the remaining mass (up to 2³², 33 bits) above the alias (below 2¹⁶ buckets).
    const ALIAS: u64 = 0xffff;
    for (k, w) in row.iter_mut().enumerate() {
        let width = if k > cum.len() {
            0
        } else {
            let a = if k == 0 { 0 } else { cum[k - 1] as u64 };
            let b = if k == cum.len() { 1 << 32 } else { cum[k] as u64 };
            b - a
        };
        *w = width << 16 | k as u64;
    }
    stack.clear();
    stack.resize(n, 0);
    let (mut n_small, mut n_large) = (0, 0);
    for (k, w) in row.iter().enumerate() {
        if w >> 16 < cap {
            stack[n_small] = k as u32;
            n_small += 1;
        } else {
            n_large += 1;
            stack[n - n_large] = k as u32;
        }
    }
    while n_small > 0 && n_large > 0 {
        n_small -= 1;
        let l = stack[n_small] as usize;
        let g = stack[n - n_large] as usize;
        let (ml, mg) = (row[l] >> 16, row[g] >> 16);
        row[l] = ml << 16 | g as u64;
        let mg = mg - (cap - ml);
        row[g] = mg << 16 | (row[g] & ALIAS);
        if mg < cap {
            n_large -= 1;
            stack[n_small] = g as u32;
            n_small += 1;
        }
    }
    // What remains (in exact integers: mass exactly `cap`) is full and its own alias; every
    // processed small bucket keeps its mass as threshold.
    for w in row.iter_mut() {
        let (mass, alias) = (*w >> 16, *w & ALIAS);
        *w = mass.min(cap - 1) << 32 | alias;
    }
}

/// The code a draw `r` gives for table index `i` (its row built): the arithmetic every
/// conversion kernel reproduces exactly.
#[inline(always)]
pub(crate) fn code_from(p: &Parts<'_>, i: u32, r: u32) -> i64 {
    let k = r.checked_shr(32 - p.bits).unwrap_or(0);
    let bucket = p.buckets[(p.row(i) << p.bits) | k as usize];
    let low = u64::from(r & (u32::MAX >> p.bits));
    let field = if low < bucket >> 32 { bucket & FIELD } else { bucket >> 16 & FIELD };
    field as i64 + p.unbias
}

/// Whether a bucket word is built.
#[inline(always)]
pub(crate) fn built(bucket: u64) -> bool {
    bucket & FIELD != 0
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
            let idx = [i; 64];
            let counter = (b * 64) as u64;
            convert::convert_block(path, table, &idx, 1, &mut acc, key, counter, &mut scratch);
            convert::finish_slow(&idx, 1, &mut acc, key, counter, &scratch, |i, r| table.code(i, r));
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
    fn sums_beyond_the_stored_span_give_the_codes_of_their_own_rows() {
        // Narrow ranges (high gain): most sums clip. Each sum's own row, built directly, must
        // give the same code as the table (which stores only the span) for every draw tried.
        for (zero, sigma, gain, vmin) in
            [(AdcZero::Unsigned, 0.05, 40.0, 0), (AdcZero::Signed, 0.3, 60.0, -1152), (AdcZero::Unsigned, 0.0, 90.0, 0)]
        {
            let conv = Converter::new(8, zero, sigma, 1152.0, 1152.0, 1.0, gain);
            let mut table = CodeTable::new(conv, vmin, 1152);
            assert!(
                table.buckets.len() < ((1152 - vmin) as usize) << table.bits,
                "the span is narrower than the range"
            );
            let n = 1usize << table.bits;
            let mut own = vec![0u64; n];
            for v in vmin..=1152 {
                fill_row(&conv, v, table.bits, &mut own);
                let p = Parts {
                    bits: table.bits,
                    unbias: conv.cmin - 1,
                    lo: 0,
                    hi: 0,
                    buckets: &own,
                    clip_below: 0,
                    clip_from: u32::MAX,
                };
                for r in (0..64u32).map(|k| k.wrapping_mul(0x9E37_79B9) ^ (k << 26)) {
                    assert_eq!(table.code(table.index(v), r), code_from(&p, 0, r), "{zero:?} v={v} r={r:#x}");
                }
            }
        }
    }

    #[test]
    fn clip_indices_are_the_sums_the_range_clips() {
        for (zero, gain, vmin) in
            [(AdcZero::Unsigned, 1.0, 0), (AdcZero::Unsigned, 7.3, 0), (AdcZero::Signed, 2.5, -1152)]
        {
            let conv = Converter::new(8, zero, 0.05, 1152.0, 1152.0, 1.0, gain);
            let (below, from) = conv.clip_indices(vmin);
            let mut clipped = 0;
            for v in vmin..=1152 {
                let i = (v - vmin) as u32;
                assert_eq!(i < below || i >= from, conv.clips(v as f64), "{zero:?} gain {gain} v={v}");
                // Exactly the sums whose noiseless code falls outside the ADC's codes.
                let r = (v as f64 / conv.lsb).round() as i64;
                assert_eq!(conv.clips(v as f64), r > conv.cmax || r < conv.cmin, "v={v}");
                clipped += u64::from(conv.clips(v as f64));
            }
            assert_eq!(clipped > 0, gain > 1.0, "{zero:?} gain {gain}: {clipped} clipped sums");
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
