//! The conversion kernel: a block of integer column sums (as code-table indices) to ADC codes,
//! `acc[j] += weight · code_j`, every conversion with its own counter-based 32-bit draw
//! (`noise::draw32(key, counter + j)`) through its sum's alias table; with the moments of the
//! sums for the ADC range policies.
//!
//! One algorithm, written twice: for AVX-512 (sixteen conversions per step: the draws as eight
//! SplitMix64 lanes split in halves, one bucket gathered per conversion, no branch on any
//! outcome) and in portable Rust. Both are integer arithmetic on the same tables, so every path gives the same
//! codes, bit for bit. Sums whose row is not built yet are left to the table
//! ([`CodeTable::code`]) after the pass.

use super::adc::{self, CodeTable, Parts};
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
    /// Indices the ADC range clips ([`adc::Parts::clip_below`], [`adc::Parts::clip_from`]).
    pub clipped: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, sum: 0, sum_sq: 0, lo: u32::MAX, hi: 0, clipped: 0 }
    }
}

impl Moments {
    /// Adds another block's moments.
    pub fn merge(&mut self, o: &Moments) {
        self.count += o.count;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.lo = self.lo.min(o.lo);
        self.hi = self.hi.max(o.hi);
        self.clipped += o.clipped;
    }

    #[inline(always)]
    fn add(&mut self, i: u32, p: &Parts<'_>) {
        self.clipped += u64::from(i < p.clip_below || i >= p.clip_from);
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
    /// Per sixteen conversions, the lanes the vector pass left.
    misses: Vec<u16>,
}

/// Converts sums `idx` (indices into `table`) and adds `weight · code` to `acc[j]`; conversion
/// `j` draws `noise::draw32(key, counter + j)` (`counter` even). Conversions whose row is not
/// built are given to `slow_code(i, draw)` (which builds it, or fails for a table that should
/// be complete). Returns the moments of `idx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert_block(
    path: KernelPath,
    table: &CodeTable,
    idx: &[u32],
    weight: i64,
    acc: &mut [i64],
    key: u64,
    counter: u64,
    scratch: &mut Scratch,
) -> Moments {
    assert_eq!(idx.len(), acc.len(), "one accumulator per conversion");
    assert!(counter.is_multiple_of(2), "blocks start on a whole 64-bit draw");
    let Scratch { slow, misses } = scratch;
    slow.clear();
    let parts = table.parts();
    if avx512_usable(path) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `avx512_usable` checked AVX-512F and DQ on this CPU.
        unsafe {
            avx512::fast_pass(parts, idx, weight, acc, key, counter, slow, misses)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AVX-512 only on x86_64")
    } else {
        fast_portable(parts, idx, weight, acc, key, counter, slow)
    }
}

/// Finishes the conversions [`convert_block`] left (rows not built), in order: `code(i, r)`
/// gives the code of sum index `i` for draw `r`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_slow(
    idx: &[u32],
    weight: i64,
    acc: &mut [i64],
    key: u64,
    counter: u64,
    scratch: &Scratch,
    mut code: impl FnMut(u32, u32) -> i64,
) {
    for &j in &scratch.slow {
        let r = noise::draw32(key, counter.wrapping_add(u64::from(j)));
        acc[j as usize] += weight * code(idx[j as usize], r);
    }
}

/// The portable pass: conversions of built rows done, the others listed in `slow`; returns
/// the moments of `idx`.
fn fast_portable(
    p: Parts<'_>,
    idx: &[u32],
    weight: i64,
    acc: &mut [i64],
    key: u64,
    counter: u64,
    slow: &mut Vec<u32>,
) -> Moments {
    let mut m = Moments::default();
    for j in 0..idx.len() {
        let i = idx[j];
        m.add(i, &p);
        let r = noise::draw32(key, counter.wrapping_add(j as u64));
        let k = r.checked_shr(32 - p.bits).unwrap_or(0) as usize;
        if !adc::built(p.buckets[(p.row(i) << p.bits) | k]) {
            slow.push(j as u32);
            continue;
        }
        acc[j] += weight * adc::code_from(&p, i, r);
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Moments, Parts, noise};
    use std::arch::x86_64::*;

    /// [`fast_portable`](super::fast_portable) sixteen conversions at a time.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn fast_pass(
        parts: Parts<'_>,
        idx: &[u32],
        weight: i64,
        acc: &mut [i64],
        key: u64,
        counter: u64,
        slow: &mut Vec<u32>,
        misses: &mut Vec<u16>,
    ) -> Moments {
        let Parts { bits, unbias, lo: row_lo, hi: row_hi, buckets, clip_below, clip_from } = parts;
        let (clip_below, clip_from) = (_mm512_set1_epi32(clip_below as i32), _mm512_set1_epi32(clip_from as i32));
        let mut clipped = 0u64;
        let n = idx.len();
        let blocks = n.div_ceil(16);
        misses.clear();
        misses.resize(blocks, 0);
        let zero = _mm512_setzero_si512();
        let (row_lo, row_hi) = (_mm512_set1_epi32(row_lo as i32), _mm512_set1_epi32(row_hi as i32));
        let low_mask = _mm512_set1_epi64(i64::from(u32::MAX >> bits));
        let field = _mm512_set1_epi64(0xffff);
        let unbias = _mm512_set1_epi64(unbias);
        let shift_bits = _mm_cvtsi32_si128(bits as i32);
        let shift_k = _mm_cvtsi32_si128(32 - bits as i32);
        let (m1, m2) = (_mm512_set1_epi64(noise::MIX1 as i64), _mm512_set1_epi64(noise::MIX2 as i64));
        let step = _mm512_set1_epi64(8u64.wrapping_mul(noise::GAMMA) as i64);
        let wv = _mm512_set1_epi64(weight);
        // Lane l holds the state `key + (counter/2 + l + 1)·γ` that `noise::mix` finalizes: its
        // low and high halves are draws `counter + 2l` and `counter + 2l + 1`.
        let lanes: [u64; 8] = std::array::from_fn(|l| {
            key.wrapping_add((counter / 2).wrapping_add(l as u64 + 1).wrapping_mul(noise::GAMMA))
        });
        // Eight conversions (one half of a step): the gathered buckets, their draws, the code
        // (kept or alias) into the accumulators of built lanes; returns the built lanes.
        let half = |bucket: __m512i, r: __m256i, a_ptr: *mut i64, valid: u8| -> u8 {
            let built = _mm512_mask_test_epi64_mask(valid, bucket, field);
            let low = _mm512_and_si512(_mm512_cvtepu32_epi64(r), low_mask);
            let keep = _mm512_cmplt_epu64_mask(low, _mm512_srli_epi64::<32>(bucket));
            let kept = _mm512_and_si512(bucket, field);
            let alias = _mm512_and_si512(_mm512_srli_epi64::<16>(bucket), field);
            let code = _mm512_add_epi64(_mm512_mask_blend_epi64(keep, alias, kept), unbias);
            // SAFETY: the caller passes `valid` accumulators at `a_ptr`.
            unsafe {
                let a = _mm512_maskz_loadu_epi64(valid, a_ptr);
                _mm512_mask_storeu_epi64(
                    a_ptr,
                    valid,
                    _mm512_mask_add_epi64(a, built, a, _mm512_mullo_epi64(code, wv)),
                );
            }
            built
        };
        // SAFETY (all loads, stores and gathers below): only the `valid` lanes of `idx` and
        // `acc` (same length, checked by the caller) are read and written; every index is
        // clamped to a stored row, so `row << bits | k` is below `buckets.len()` (masked-off
        // lanes read index 0); `misses` has one entry per block.
        let mut z = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
        let (mut sum, mut sq) = (zero, zero);
        let (mut lo, mut hi) = (_mm512_set1_epi32(-1), zero);
        let mut j = 0;
        while j < n {
            // The last block may be partial: its missing lanes are masked off throughout.
            let valid: u16 = if n - j >= 16 { u16::MAX } else { (1u16 << (n - j)) - 1 };
            let iv = unsafe { _mm512_maskz_loadu_epi32(valid, idx.as_ptr().add(j).cast()) };
            let (iv_lo, iv_hi) = (
                _mm512_cvtepu32_epi64(_mm512_castsi512_si256(iv)),
                _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64::<1>(iv)),
            );
            sum = _mm512_add_epi64(sum, _mm512_add_epi64(iv_lo, iv_hi));
            sq = _mm512_add_epi64(sq, _mm512_add_epi64(_mm512_mul_epu32(iv_lo, iv_lo), _mm512_mul_epu32(iv_hi, iv_hi)));
            lo = _mm512_mask_min_epu32(lo, valid, lo, iv);
            hi = _mm512_mask_max_epu32(hi, valid, hi, iv);
            let clip = _mm512_mask_cmplt_epu32_mask(valid, iv, clip_below)
                | _mm512_mask_cmpge_epu32_mask(valid, iv, clip_from);
            clipped += u64::from(clip.count_ones());
            // Sixteen draws: SplitMix64's finalizer on eight counters, split in halves.
            let mut r = _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z));
            r = _mm512_mullo_epi64(r, m1);
            r = _mm512_xor_si512(r, _mm512_srli_epi64::<27>(r));
            r = _mm512_mullo_epi64(r, m2);
            r = _mm512_xor_si512(r, _mm512_srli_epi64::<31>(r));
            z = _mm512_add_epi64(z, step);
            let k = _mm512_srl_epi32(r, shift_k);
            let row = _mm512_sub_epi32(_mm512_min_epu32(_mm512_max_epu32(iv, row_lo), row_hi), row_lo);
            let at = _mm512_or_si512(_mm512_sll_epi32(row, shift_bits), k);
            let (at_lo, at_hi) = (_mm512_castsi512_si256(at), _mm512_extracti64x4_epi64::<1>(at));
            let (r_lo, r_hi) = (_mm512_castsi512_si256(r), _mm512_extracti64x4_epi64::<1>(r));
            let (b_lo, b_hi) = unsafe {
                (
                    _mm512_i32gather_epi64::<8>(at_lo, buckets.as_ptr().cast()),
                    _mm512_i32gather_epi64::<8>(at_hi, buckets.as_ptr().cast()),
                )
            };
            let a_ptr = unsafe { acc.as_mut_ptr().add(j) };
            let built = u16::from(half(b_lo, r_lo, a_ptr, valid as u8))
                | u16::from(half(b_hi, r_hi, unsafe { a_ptr.add(8) }, (valid >> 8) as u8)) << 8;
            // Which lanes the table must finish, listed after the loop: no call in the loop,
            // so the vectors stay in registers.
            unsafe { *misses.as_mut_ptr().add(j / 16) = valid & !built };
            j += 16;
        }
        for (c, &miss) in misses.iter().enumerate() {
            let mut rest = miss;
            while rest != 0 {
                slow.push((c * 16 + rest.trailing_zeros() as usize) as u32);
                rest &= rest - 1;
            }
        }
        if n == 0 {
            return Moments::default();
        }
        Moments {
            count: n as u64,
            sum: _mm512_reduce_add_epi64(sum) as u64,
            sum_sq: _mm512_reduce_add_epi64(sq) as u64,
            lo: _mm512_reduce_min_epu32(lo),
            hi: _mm512_reduce_max_epu32(hi),
            clipped,
        }
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
        idx.iter().enumerate().map(|(j, &i)| weight * table.code(i, noise::draw32(key, counter + j as u64))).collect()
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
                    table.code(i, 0);
                }
                let mut acc = vec![5i64; idx.len()];
                let mut scratch = Scratch::default();
                let m = convert_block(path, &table, &idx, -4, &mut acc, 77, 1000, &mut scratch);
                finish_slow(&idx, -4, &mut acc, 77, 1000, &scratch, |i, r| table.code(i, r));
                let expect: Vec<i64> = reference(&mut table, &idx, -4, 77, 1000).iter().map(|c| c + 5).collect();
                assert_eq!(acc, expect, "{path:?} sigma {sigma}");
                let mut want = Moments::default();
                idx.iter().for_each(|&i| want.add(i, &table.parts()));
                assert_eq!(m, want, "{path:?}");
                // The clipped count, against the converter's own rule on the sums.
                let clipped = idx.iter().filter(|&&i| conv.clips((i as i64 - 3456) as f64)).count() as u64;
                assert_eq!(m.clipped, clipped, "{path:?} gain {gain}");
            }
        }
    }
}
