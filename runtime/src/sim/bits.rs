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
}

impl Default for Transpose {
    fn default() -> Self {
        Transpose { bytes: [[0; 64]; 3] }
    }
}

impl Transpose {
    /// Sets value `i` (below `2^24`; the bits above are ignored).
    #[inline(always)]
    pub fn set(&mut self, i: usize, v: u32) {
        self.bytes[0][i] = v as u8;
        self.bytes[1][i] = (v >> 8) as u8;
        self.bytes[2][i] = (v >> 16) as u8;
    }

    /// Sets values `from..64` to zero.
    pub fn clear_from(&mut self, from: usize) {
        for plane in &mut self.bytes {
            plane[from..].fill(0);
        }
    }

    /// Plane `b < 24`: bit `i` is bit `b` of value `i`.
    #[inline]
    pub fn plane(&self, b: usize) -> u64 {
        let (bytes, shift) = (&self.bytes[b / 8], b % 8);
        let mut word = 0u64;
        for (g, chunk) in bytes.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            word |= (((x >> shift) & LOW_BITS).wrapping_mul(GATHER) >> 56) << (8 * g);
        }
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_hold_each_values_bits() {
        let mut t = Transpose::default();
        let mut s = 0x1234_5678u64;
        let vals: Vec<u32> = (0..64)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as u32 & 0xff_ffff
            })
            .collect();
        for (i, &v) in vals.iter().enumerate() {
            t.set(i, v);
        }
        t.clear_from(50);
        for b in 0..24 {
            let expect = (0..50).fold(0u64, |w, i| w | (u64::from(vals[i] >> b & 1) << i));
            assert_eq!(t.plane(b), expect, "plane {b}");
        }
    }
}
