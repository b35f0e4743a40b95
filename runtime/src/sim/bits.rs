//! Bit-plane transposes: 64 small values in, one word per bit out (bit `i` of plane `b` is bit
//! `b` of value `i`): how stored matrices become array columns and inputs become row drives.
//! Eight values at a time by one multiply (the bytes' bit `b` gathered into one byte), so the
//! cost is a fraction of an operation per value and bit, on any CPU.

/// Gathers bit 0 of each of a word's eight bytes into one byte (byte `i` to bit `i`).
const GATHER: u64 = 0x0102_0408_1020_4080;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;

/// Up to 64 values of up to 24 bits, staged as byte planes.
#[derive(Debug, Clone)]
pub(crate) struct Transpose {
    bytes: [[u8; 64]; 3],
    /// Byte planes in use: values up to `2^(8·wide)`.
    wide: usize,
    /// AVX-512BW: a plane is one byte-mask test.
    avx512: bool,
}

impl Transpose {
    /// Staging for values below `2^bits` (`bits <= 24`).
    pub fn new(bits: u32) -> Transpose {
        #[cfg(target_arch = "x86_64")]
        let avx512 = std::arch::is_x86_feature_detected!("avx512bw");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        Transpose { bytes: [[0; 64]; 3], wide: (bits as usize).div_ceil(8).clamp(1, 3), avx512 }
    }

    /// Sets value `i` (below `2^bits`; the bits above are ignored).
    #[inline(always)]
    pub fn set(&mut self, i: usize, v: u32) {
        self.bytes[0][i] = v as u8;
        if self.wide > 1 {
            self.bytes[1][i] = (v >> 8) as u8;
            self.bytes[2][i] = (v >> 16) as u8;
        }
    }

    /// Sets the values to `vals[i] & mask` (at most 64 of them; the rest zero).
    #[inline]
    pub fn load(&mut self, vals: &[i32], mask: u32) {
        let n = vals.len();
        if self.wide == 1 {
            for (b, &v) in self.bytes[0].iter_mut().zip(vals) {
                *b = (v as u32 & mask) as u8;
            }
        } else {
            for (i, &v) in vals.iter().enumerate() {
                self.set(i, v as u32 & mask);
            }
        }
        self.clear_from(n);
    }

    /// Sets values `from..64` to zero.
    pub fn clear_from(&mut self, from: usize) {
        for plane in &mut self.bytes[..self.wide] {
            plane[from..].fill(0);
        }
    }

    /// Plane `b < bits`: bit `i` is bit `b` of value `i`.
    #[inline]
    pub fn plane(&self, b: usize) -> u64 {
        let (bytes, shift) = (&self.bytes[b / 8], b % 8);
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is set only when the CPU has AVX-512BW.
            return unsafe { plane_avx512(bytes, shift) };
        }
        let mut word = 0u64;
        for (g, chunk) in bytes.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            word |= (((x >> shift) & LOW_BITS).wrapping_mul(GATHER) >> 56) << (8 * g);
        }
        word
    }
}

/// One byte-mask test: bit `i` set where byte `i` has bit `shift`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn plane_avx512(bytes: &[u8; 64], shift: usize) -> u64 {
    use std::arch::x86_64::*;
    // SAFETY: 64 bytes.
    let v = unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) };
    _mm512_test_epi8_mask(v, _mm512_set1_epi8((1u8 << shift) as i8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_hold_each_values_bits() {
        let mut fast = Transpose::new(24);
        let mut portable = Transpose::new(24);
        portable.avx512 = false;
        let mut s = 0x1234_5678u64;
        let vals: Vec<u32> = (0..64)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as u32 & 0xff_ffff
            })
            .collect();
        for t in [&mut fast, &mut portable] {
            for (i, &v) in vals.iter().enumerate() {
                t.set(i, v);
            }
            t.clear_from(50);
            for b in 0..24 {
                let expect = (0..50).fold(0u64, |w, i| w | (u64::from(vals[i] >> b & 1) << i));
                assert_eq!(t.plane(b), expect, "plane {b}, AVX-512 {}", t.avx512);
            }
        }
    }
}
