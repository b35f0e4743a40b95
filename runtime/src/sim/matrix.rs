//! Stored matrices: integer codes written bit-parallel into arrays, one column per weight bit.

use super::SimError;
use super::bits::Transpose;
use ndarray::ArrayView2;

/// A matrix to store in the arrays: `outputs x reduction` integer codes of `bits` bits, signed
/// (two's complement, MSB column weighted `-2^(bits-1)`) or unsigned.
#[derive(Debug, Clone)]
pub struct StoredMatrix<'a> {
    /// Codes, `outputs x reduction`.
    pub codes: ArrayView2<'a, i32>,
    /// Bits per code (one array column each).
    pub bits: u32,
    /// Two's complement or unsigned.
    pub signed: bool,
}

/// A matrix packed into row-tiles of bit planes, ready for popcount MVMs.
///
/// Layout: for row-tile `t`, weight bit `m`, word `w` (64 rows), the bits of all outputs are
/// contiguous: `planes[((t * bits + m) * words + w) * outputs + j]`, so the kernel's inner loop
/// runs over outputs with one broadcast input word (no horizontal reductions).
#[derive(Debug, Clone)]
pub struct Programmed {
    /// Output rows of the stored matrix.
    pub outputs: usize,
    /// Reduction length.
    pub reduction: usize,
    /// Bits per code.
    pub bits: u32,
    /// Two's complement or unsigned.
    pub signed: bool,
    /// Rows per row-tile (the array's rows).
    pub tile_rows: usize,
    /// 64-bit words per row-tile.
    pub words: usize,
    pub(crate) planes: Vec<u64>,
    /// Physical-column gain factors `1 + ε` per (row-tile, weight bit, output); empty when the
    /// chip has no gain mismatch.
    pub(crate) gain: Vec<f32>,
}

impl Programmed {
    /// Row-tiles: `ceil(reduction / rows)`.
    pub fn row_tiles(&self) -> usize {
        self.reduction.div_ceil(self.tile_rows).max(1)
    }

    /// Rows of row-tile `t`.
    pub fn rows_in(&self, t: usize) -> usize {
        (self.reduction - t * self.tile_rows).min(self.tile_rows)
    }

    /// Column-tiles: `ceil(outputs · bits / cols)`.
    pub fn col_tiles(&self, cols: usize) -> usize {
        (self.outputs * self.bits as usize).div_ceil(cols).max(1)
    }

    /// [`Programmed::bit_weight`] as an integer.
    pub fn bit_weight_int(&self, m: u32) -> i64 {
        let w = 1i64 << m;
        if self.signed && m + 1 == self.bits { -w } else { w }
    }

    /// The digital weight of bit column `m`: `2^m`, negative for a signed matrix's MSB.
    pub fn bit_weight(&self, m: u32) -> f64 {
        let w = (1u64 << m) as f64;
        if self.signed && m + 1 == self.bits { -w } else { w }
    }
}

/// Packs `m` into bit planes of `tile_rows`-row tiles; validates the codes' range.
pub(crate) fn pack(m: &StoredMatrix<'_>, tile_rows: usize) -> Result<Programmed, SimError> {
    let (outputs, reduction) = m.codes.dim();
    if m.bits == 0 || m.bits > 16 {
        return Err(SimError::BadOperand(format!("stored codes must have 1..=16 bits, not {}", m.bits)));
    }
    let (lo, hi) =
        if m.signed { (-(1i64 << (m.bits - 1)), (1i64 << (m.bits - 1)) - 1) } else { (0, (1i64 << m.bits) - 1) };
    let words = tile_rows.div_ceil(64);
    let tiles = reduction.div_ceil(tile_rows).max(1);
    let bits = m.bits as usize;
    let mut planes = vec![0u64; tiles * bits * words * outputs];
    let mask = (1u32 << bits) - 1;
    let mut vals = Transpose::new(m.bits);
    for (j, row) in m.codes.outer_iter().enumerate() {
        // One 64-row word of every bit plane at a time: the codes checked and masked to their
        // two's complement bits, then each plane transposed into a word.
        for t in 0..tiles {
            for w in 0..words {
                let k0 = t * tile_rows + w * 64;
                let k1 = (k0 + 64).min((t + 1) * tile_rows).min(reduction).max(k0);
                for k in k0..k1 {
                    let c = row[k] as i64;
                    if c < lo || c > hi {
                        return Err(SimError::BadOperand(format!(
                            "stored code {c} at ({j}, {k}) does not fit {} {} bits",
                            if m.signed { "signed" } else { "unsigned" },
                            m.bits
                        )));
                    }
                    vals.set(k - k0, (c as u32) & mask);
                }
                vals.clear_from(k1 - k0);
                for bit in 0..bits {
                    planes[((t * bits + bit) * words + w) * outputs + j] = vals.plane(bit);
                }
            }
        }
    }
    Ok(Programmed { outputs, reduction, bits: m.bits, signed: m.signed, tile_rows, words, planes, gain: Vec::new() })
}
