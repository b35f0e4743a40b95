//! The conversion kernel: a block of integer column sums (as code-table indices) to ADC codes,
//! `acc[j] += weight · code_j`, every conversion with its own counter-based draw
//! (`noise::draw(key, counter + j)`) through its sum's alias table; with the moments of the
//! sums for the ADC range policies.
//!
//! One algorithm, written twice: for AVX-512 (eight conversions per step: the draws as eight
//! SplitMix64 lanes, two gathers, no branch on any outcome) and in portable Rust. Both are
//! integer arithmetic on the same tables, so every path gives the same codes, bit for bit.
//! Sums whose row is not built yet are left to the table ([`CodeTable::code`]) after the pass.

use super::adc::{self, CodeTable, SLOW};
use super::kernel::KernelPath;
use super::noise;

/// Exact integer moments of the table indices of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moments {
    pub count: u64,
    pub sum: u64,
    pub sum_sq: u64,
    pub lo: u32,
    pub hi: u32,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, sum: 0, sum_sq: 0, lo: u32::MAX, hi: 0 }
    }
}

impl Moments {
    #[inline(always)]
    fn add(&mut self, i: u32) {
        self.count += 1;
        self.sum += u64::from(i);
        self.sum_sq += u64::from(i) * u64::from(i);
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
    }
}

/// Whether this CPU runs the AVX-512 conversion kernel (it needs DQ for 64-bit multiplies).
pub(crate) fn avx512_usable(path: KernelPath) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        path == KernelPath::Avx512 && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = path;
        false
    }
}

/// Reused buffers of the conversion kernel.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Conversions left to the table (rows not built yet).
    slow: Vec<u32>,
    /// Per eight conversions, the lanes the vector pass left.
    misses: Vec<u8>,
}

/// Converts sums `idx` (indices into `table`) and adds `weight · code` to `acc[j]`; conversion
/// `j` draws `noise::draw(key, counter + j)`. Returns the moments of `idx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert_block(
    path: KernelPath,
    table: &mut CodeTable,
    idx: &[u32],
    weight: i64,
    acc: &mut [i64],
    key: u64,
    counter: u64,
    scratch: &mut Scratch,
) -> Moments {
    assert_eq!(idx.len(), acc.len(), "one accumulator per conversion");
    let Scratch { slow, misses } = scratch;
    slow.clear();
    let (packed, alias) = table.packed();
    let moments = if avx512_usable(path) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `avx512_usable` checked AVX-512F and DQ on this CPU.
        unsafe {
            avx512::fast_pass(packed, alias, idx, weight, acc, key, counter, slow, misses)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AVX-512 only on x86_64")
    } else {
        let mut m = Moments::default();
        fast_tail(packed, alias, idx, weight, acc, key, counter, 0, slow, &mut m);
        m
    };
    for &j in slow.iter() {
        let r = noise::draw(key, counter.wrapping_add(u64::from(j)));
        acc[j as usize] += weight * table.code(idx[j as usize] as usize, r);
    }
    moments
}

/// The portable pass over `idx[from..]`: built rows converted, the others listed in `slow`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fast_tail(
    packed: &[u64],
    alias: &[u64],
    idx: &[u32],
    weight: i64,
    acc: &mut [i64],
    key: u64,
    counter: u64,
    from: usize,
    slow: &mut Vec<u32>,
    m: &mut Moments,
) {
    for j in from..idx.len() {
        let i = idx[j];
        m.add(i);
        let rec = packed.get(i as usize).copied().unwrap_or(SLOW);
        if rec == SLOW {
            slow.push(j as u32);
            continue;
        }
        let r = noise::draw(key, counter.wrapping_add(j as u64));
        let hi = (rec >> 32) as u32;
        acc[j] += weight * adc::code_from(rec as u32 as i32, hi >> 5, hi & 31, alias, r);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Moments, fast_tail, noise};
    use std::arch::x86_64::*;

    /// [`fast_tail`] eight conversions at a time.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn fast_pass(
        packed: &[u64],
        alias: &[u64],
        idx: &[u32],
        weight: i64,
        acc: &mut [i64],
        key: u64,
        counter: u64,
        slow: &mut Vec<u32>,
        misses: &mut Vec<u8>,
    ) -> Moments {
        let n = idx.len();
        let full = n / 8 * 8;
        misses.clear();
        misses.resize(full / 8, 0);
        let zero = _mm512_setzero_si512();
        let ones = _mm512_set1_epi64(-1);
        let lo32 = _mm512_set1_epi64(0xffff_ffff);
        let rows = _mm512_set1_epi64(packed.len() as i64);
        let (m1, m2) = (_mm512_set1_epi64(noise::MIX1 as i64), _mm512_set1_epi64(noise::MIX2 as i64));
        let step = _mm512_set1_epi64(8u64.wrapping_mul(noise::GAMMA) as i64);
        let wv = _mm512_set1_epi64(weight);
        // Lane l holds the state `key + (counter + l + 1)·γ` that `noise::draw` finalizes.
        let lanes: [u64; 8] =
            std::array::from_fn(|l| key.wrapping_add(counter.wrapping_add(l as u64 + 1).wrapping_mul(noise::GAMMA)));
        // SAFETY (all loads, stores and gathers below): `j + 8 <= full <= n` for `idx` and
        // `acc` (same length, checked by the caller); rows are gathered only for indices
        // below `packed.len()`, buckets only for built rows, whose buckets all exist.
        let mut z = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
        let (mut sum, mut sq, mut lo, mut hi) = (zero, zero, ones, zero);
        let mut j = 0;
        while j < full {
            let iv = _mm512_cvtepu32_epi64(unsafe { _mm256_loadu_si256(idx.as_ptr().add(j).cast()) });
            sum = _mm512_add_epi64(sum, iv);
            sq = _mm512_add_epi64(sq, _mm512_mul_epu32(iv, iv));
            lo = _mm512_min_epu64(lo, iv);
            hi = _mm512_max_epu64(hi, iv);
            let inside = _mm512_cmplt_epu64_mask(iv, rows);
            let rec = unsafe { _mm512_mask_i64gather_epi64::<8>(ones, inside, iv, packed.as_ptr().cast()) };
            let fast = _mm512_mask_cmpneq_epi64_mask(inside, rec, ones);
            // The draws: SplitMix64's finalizer on eight counters.
            let mut r = _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z));
            r = _mm512_mullo_epi64(r, m1);
            r = _mm512_xor_si512(r, _mm512_srli_epi64::<27>(r));
            r = _mm512_mullo_epi64(r, m2);
            r = _mm512_xor_si512(r, _mm512_srli_epi64::<31>(r));
            z = _mm512_add_epi64(z, step);
            // Row: base code (low half), `off << 5 | bits` (high half).
            let head = _mm512_srli_epi64::<32>(rec);
            let bits = _mm512_and_si512(head, _mm512_set1_epi64(31));
            let off = _mm512_srli_epi64::<5>(head);
            let k = _mm512_srlv_epi64(r, _mm512_sub_epi64(_mm512_set1_epi64(64), bits));
            let at = _mm512_add_epi64(off, k);
            let bucket = unsafe { _mm512_mask_i64gather_epi64::<8>(zero, fast, at, alias.as_ptr().cast()) };
            let keep = _mm512_cmplt_epu64_mask(_mm512_and_si512(r, lo32), _mm512_srli_epi64::<32>(bucket));
            let pick = _mm512_mask_blend_epi64(keep, _mm512_and_si512(bucket, lo32), k);
            let base = _mm512_srai_epi64::<32>(_mm512_slli_epi64::<32>(rec));
            let code = _mm512_add_epi64(base, pick);
            let a_ptr = unsafe { acc.as_mut_ptr().add(j) };
            let a = unsafe { _mm512_loadu_si512(a_ptr.cast()) };
            let a = _mm512_mask_add_epi64(a, fast, a, _mm512_mullo_epi64(code, wv));
            unsafe { _mm512_storeu_si512(a_ptr.cast(), a) };
            // Which lanes the table must finish, listed after the loop: no call in the loop,
            // so the vectors stay in registers.
            // SAFETY: `j / 8 < full / 8 = misses.len()`.
            unsafe { *misses.as_mut_ptr().add(j / 8) = !fast };
            j += 8;
        }
        for (c, &miss) in misses.iter().enumerate() {
            let mut rest = miss;
            while rest != 0 {
                slow.push((c * 8 + rest.trailing_zeros() as usize) as u32);
                rest &= rest - 1;
            }
        }
        let mut m = Moments::default();
        if full > 0 {
            m = Moments {
                count: full as u64,
                sum: _mm512_reduce_add_epi64(sum) as u64,
                sum_sq: _mm512_reduce_add_epi64(sq) as u64,
                lo: _mm512_reduce_min_epu64(lo) as u32,
                hi: _mm512_reduce_max_epu64(hi) as u32,
            };
        }
        fast_tail(packed, alias, idx, weight, acc, key, counter, full, slow, &mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdcZero;
    use crate::sim::adc::Converter;
    use crate::sim::kernel;

    /// Every conversion drawn one by one through the table's scalar path.
    fn reference(table: &mut CodeTable, idx: &[u32], weight: i64, key: u64, counter: u64) -> Vec<i64> {
        idx.iter()
            .enumerate()
            .map(|(j, &i)| weight * table.code(i as usize, noise::draw(key, counter + j as u64)))
            .collect()
    }

    #[test]
    fn every_path_gives_the_scalar_codes() {
        // Narrow noise (few codes per sum) and wide noise (many), half the rows built before.
        for (sigma, gain) in [(0.05, 2.0), (0.5, 16.0), (0.0, 1.0)] {
            let conv = Converter::new(8, AdcZero::Signed, sigma, 1152.0, 1152.0, 3.0, gain);
            let mut s = 0x9abcu64;
            let idx: Vec<u32> = (0..203)
                .map(|_| {
                    s = noise::mix(s);
                    (s % 700) as u32
                })
                .collect();
            let mut paths = vec![KernelPath::Portable];
            if avx512_usable(kernel::detect()) {
                paths.push(KernelPath::Avx512);
            }
            for path in paths {
                let mut table = CodeTable::new(conv, -3456, 3456);
                for &i in idx.iter().step_by(2) {
                    table.code(i as usize, 0);
                }
                let mut acc = vec![5i64; idx.len()];
                let mut scratch = Scratch::default();
                let m = convert_block(path, &mut table, &idx, -4, &mut acc, 77, 1000, &mut scratch);
                let expect: Vec<i64> = reference(&mut table, &idx, -4, 77, 1000).iter().map(|c| c + 5).collect();
                assert_eq!(acc, expect, "{path:?} sigma {sigma}");
                let mut want = Moments::default();
                idx.iter().for_each(|&i| want.add(i));
                assert_eq!(m, want, "{path:?}");
            }
        }
    }
}
