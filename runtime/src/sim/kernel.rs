//! The popcount kernels: `acc[j] += popcount(mask[w] & planes[w][j])` over words `w` and outputs
//! `j` ([`accumulate`]), and the same sums written at once with each output's count kept in a
//! register across the words ([`sums`]); one source compiled for AVX-512 VPOPCNTDQ, AVX2 and a
//! portable baseline, chosen at run time. Integer arithmetic: every path gives the same result.

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// AVX-512F/BW with VPOPCNTDQ.
    Avx512,
    /// AVX2 with POPCNT.
    Avx2,
    /// Portable Rust.
    Portable,
}

/// The best path this CPU supports.
pub fn detect() -> KernelPath {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
        {
            return KernelPath::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
            return KernelPath::Avx2;
        }
    }
    KernelPath::Portable
}

#[inline(always)]
fn body(mask: &[u64], planes: &[u64], outputs: usize, acc: &mut [u32]) {
    let acc = &mut acc[..outputs];
    for (w, &x) in mask.iter().enumerate() {
        if x == 0 {
            continue; // rows not driven by this word: nothing to add (sparse exponent planes)
        }
        let row = &planes[w * outputs..(w + 1) * outputs];
        for (a, &p) in acc.iter_mut().zip(row) {
            *a += (x & p).count_ones();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
unsafe fn body_avx512(mask: &[u64], planes: &[u64], outputs: usize, acc: &mut [u32]) {
    body(mask, planes, outputs, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn body_avx2(mask: &[u64], planes: &[u64], outputs: usize, acc: &mut [u32]) {
    body(mask, planes, outputs, acc)
}

/// `acc[j] += Σ_w popcount(mask[w] & planes[w·outputs + j])` for `j < outputs`.
///
/// `planes` holds `mask.len() · outputs` words; `acc` at least `outputs` counters.
#[inline]
pub fn accumulate(path: KernelPath, mask: &[u64], planes: &[u64], outputs: usize, acc: &mut [u32]) {
    assert!(planes.len() >= mask.len() * outputs && acc.len() >= outputs, "kernel operands");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx512` is only returned by `detect()` when the CPU has these features.
        KernelPath::Avx512 => unsafe { body_avx512(mask, planes, outputs, acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only returned by `detect()` when the CPU has AVX2 and POPCNT.
        KernelPath::Avx2 => unsafe { body_avx2(mask, planes, outputs, acc) },
        _ => body(mask, planes, outputs, acc),
    }
}

/// Outputs per block of [`sums`]: two AVX-512 registers of counts.
const BLOCK: usize = 16;

#[inline(always)]
fn sums_body(driven: &[(usize, u64)], planes: &[u64], outputs: usize, out: &mut [u32]) {
    let out = &mut out[..outputs];
    let full = outputs / BLOCK * BLOCK;
    for j0 in (0..full).step_by(BLOCK) {
        let mut s = [0u64; BLOCK];
        for &(w, x) in driven {
            let row: &[u64; BLOCK] = planes[w * outputs + j0..][..BLOCK].try_into().expect("a block");
            for (a, &p) in s.iter_mut().zip(row) {
                *a += u64::from((x & p).count_ones());
            }
        }
        for (o, &a) in out[j0..j0 + BLOCK].iter_mut().zip(&s) {
            *o = a as u32;
        }
    }
    // A half block (small layers have 8 or 10 outputs), then one by one.
    let mut j0 = full;
    if outputs - j0 >= BLOCK / 2 {
        let mut s = [0u64; BLOCK / 2];
        for &(w, x) in driven {
            let row: &[u64; BLOCK / 2] = planes[w * outputs + j0..][..BLOCK / 2].try_into().expect("a half block");
            for (a, &p) in s.iter_mut().zip(row) {
                *a += u64::from((x & p).count_ones());
            }
        }
        for (o, &a) in out[j0..j0 + BLOCK / 2].iter_mut().zip(&s) {
            *o = a as u32;
        }
        j0 += BLOCK / 2;
    }
    for (j, o) in out.iter_mut().enumerate().skip(j0) {
        *o = driven.iter().map(|&(w, x)| (x & planes[w * outputs + j]).count_ones()).sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
unsafe fn sums_avx512(driven: &[(usize, u64)], planes: &[u64], outputs: usize, out: &mut [u32]) {
    sums_body(driven, planes, outputs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn sums_avx2(driven: &[(usize, u64)], planes: &[u64], outputs: usize, out: &mut [u32]) {
    sums_body(driven, planes, outputs, out)
}

/// `out[j] = Σ_{(w, x) ∈ driven} popcount(x & planes[w·outputs + j])` for `j < outputs`: the
/// column sums of one binary drive, `driven` listing its nonzero mask words.
#[inline]
pub fn sums(path: KernelPath, driven: &[(usize, u64)], planes: &[u64], outputs: usize, out: &mut [u32]) {
    assert!(driven.iter().all(|&(w, _)| planes.len() >= (w + 1) * outputs) && out.len() >= outputs, "kernel operands");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx512` is only returned by `detect()` when the CPU has these features.
        KernelPath::Avx512 => unsafe { sums_avx512(driven, planes, outputs, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx2` is only returned by `detect()` when the CPU has AVX2 and POPCNT.
        KernelPath::Avx2 => unsafe { sums_avx2(driven, planes, outputs, out) },
        _ => sums_body(driven, planes, outputs, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_the_same() {
        let outputs = 45; // two blocks, a half block and five more
        let words = 5;
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mask: Vec<u64> = (0..words).map(|i| if i == 2 { 0 } else { next() }).collect();
        let planes: Vec<u64> = (0..words * outputs).map(|_| next()).collect();
        let mut expect = vec![0u32; outputs];
        for j in 0..outputs {
            for w in 0..words {
                expect[j] += (mask[w] & planes[w * outputs + j]).count_ones();
            }
        }
        let best = detect();
        for path in [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512] {
            let usable = matches!(
                (path, best),
                (KernelPath::Portable, _)
                    | (KernelPath::Avx2, KernelPath::Avx2 | KernelPath::Avx512)
                    | (KernelPath::Avx512, KernelPath::Avx512)
            );
            if usable {
                let mut acc = vec![0u32; outputs];
                accumulate(path, &mask, &planes, outputs, &mut acc);
                assert_eq!(acc, expect, "{path:?}");
                let driven: Vec<(usize, u64)> =
                    mask.iter().enumerate().filter(|(_, x)| **x != 0).map(|(w, &x)| (w, x)).collect();
                let mut out = vec![7u32; outputs];
                sums(path, &driven, &planes, outputs, &mut out);
                assert_eq!(out, expect, "{path:?} sums");
            }
        }
    }
}
