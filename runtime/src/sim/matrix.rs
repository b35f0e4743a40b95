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

/// Packs `m` into bit planes of `tile_rows`-row tiles; validates the codes' range. A matrix
/// given as the transpose of a row-major one (`Wᵀ` for the backward MVM, the activations for
/// the weight gradient) is packed from that layout directly, without a transposed copy.
pub(crate) fn pack(m: &StoredMatrix<'_>, tile_rows: usize) -> Result<Programmed, SimError> {
    let (outputs, reduction) = m.codes.dim();
    if m.bits == 0 || m.bits > 16 {
        return Err(SimError::BadOperand(format!("stored codes must have 1..=16 bits, not {}", m.bits)));
    }
    let (lo, hi) =
        if m.signed { (-(1i32 << (m.bits - 1)), (1i32 << (m.bits - 1)) - 1) } else { (0, (1i32 << m.bits) - 1) };
    // The range first, in one branch-free pass: the packers then only mask.
    let outside = |c: i32| (c.wrapping_sub(lo) as u32) > (hi - lo) as u32;
    let bad = match m.codes.as_slice_memory_order() {
        Some(all) => all.iter().fold(false, |bad, &c| bad | outside(c)),
        None => m.codes.iter().any(|&c| outside(c)),
    };
    if bad {
        let ((j, k), c) = m.codes.indexed_iter().find(|&(_, &c)| outside(c)).expect("an outside code");
        return Err(SimError::BadOperand(format!(
            "stored code {c} at ({j}, {k}) does not fit {} {} bits",
            if m.signed { "signed" } else { "unsigned" },
            m.bits
        )));
    }
    let geometry = Geometry {
        outputs,
        reduction,
        tile_rows,
        words: tile_rows.div_ceil(64),
        tiles: reduction.div_ceil(tile_rows).max(1),
        bits: m.bits as usize,
    };
    let planes = if m.codes.t().is_standard_layout() {
        pack_columns(m.codes.t(), &geometry)
    } else {
        pack_rows(m.codes.as_standard_layout().view(), &geometry)
    };
    Ok(Programmed {
        outputs,
        reduction,
        bits: m.bits,
        signed: m.signed,
        tile_rows,
        words: geometry.words,
        planes,
        gain: Vec::new(),
    })
}

/// The shape of a packed matrix.
struct Geometry {
    outputs: usize,
    reduction: usize,
    tile_rows: usize,
    words: usize,
    tiles: usize,
    bits: usize,
}

impl Geometry {
    /// Rows `k0..k1` of word `w` of tile `t`.
    fn rows(&self, t: usize, w: usize) -> (usize, usize) {
        let k0 = (t * self.tile_rows + w * 64).min(self.reduction);
        (k0, (k0 + 64).min((t + 1) * self.tile_rows).min(self.reduction).max(k0))
    }

    /// The plane word of output `j`, bit `bit`, word `w` of tile `t` is at `offset + j`.
    fn offset(&self, t: usize, bit: usize, w: usize) -> usize {
        ((t * self.bits + bit) * self.words + w) * self.outputs
    }
}

/// Packs codes given row-major as `outputs x reduction` (checked): per output and 64-row word,
/// the codes masked to their two's complement bits, then each plane transposed into a word.
fn pack_rows(codes: ndarray::ArrayView2<'_, i32>, g: &Geometry) -> Vec<u64> {
    let mut planes = vec![0u64; g.tiles * g.bits * g.words * g.outputs];
    let mask = (1u32 << g.bits) - 1;
    let mut vals = Transpose::new(g.bits as u32);
    for (j, row) in codes.outer_iter().enumerate() {
        let row = row.to_slice().expect("standard layout");
        for t in 0..g.tiles {
            for w in 0..g.words {
                let (k0, k1) = g.rows(t, w);
                vals.load(&row[k0..k1], mask);
                for bit in 0..g.bits {
                    planes[g.offset(t, bit, w) + j] = vals.plane(bit);
                }
            }
        }
    }
    planes
}

/// Packs codes given as the row-major `reduction x outputs` transpose (checked): row `k` of
/// the source sets bit `k mod 64` of one word per output and plane, over contiguous outputs
/// (so it vectorizes), while that word block stays in cache.
fn pack_columns(src: ndarray::ArrayView2<'_, i32>, g: &Geometry) -> Vec<u64> {
    let mut planes = vec![0u64; g.tiles * g.bits * g.words * g.outputs];
    let mask = (1u32 << g.bits) - 1;
    for t in 0..g.tiles {
        for w in 0..g.words {
            let (k0, k1) = g.rows(t, w);
            for bit in 0..g.bits {
                let at = g.offset(t, bit, w);
                let dst = &mut planes[at..at + g.outputs];
                for k in k0..k1 {
                    let row = src.row(k).to_slice().expect("standard layout");
                    let shift = k - k0;
                    for (d, &c) in dst.iter_mut().zip(row) {
                        *d |= u64::from((c as u32 & mask) >> bit & 1) << shift;
                    }
                }
            }
        }
    }
    planes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A `rows x cols` matrix of codes in `-2^(bits-1)..2^(bits-1)`, pseudo-random from `seed`.
    fn codes(rows: usize, cols: usize, bits: u32, mut seed: u64) -> Array2<i32> {
        Array2::from_shape_fn((rows, cols), |_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> (64 - bits)) as i32 - (1 << (bits - 1))
        })
    }

    /// Every plane bit set exactly where its code has that bit.
    fn assert_packs(codes: ndarray::ArrayView2<'_, i32>, p: &Programmed) {
        let mask = (1u32 << p.bits) - 1;
        for ((j, k), &c) in codes.indexed_iter() {
            let (t, w, shift) = (k / p.tile_rows, k % p.tile_rows / 64, k % p.tile_rows % 64);
            for bit in 0..p.bits as usize {
                let word = p.planes[((t * p.bits as usize + bit) * p.words + w) * p.outputs + j];
                assert_eq!(word >> shift & 1, u64::from((c as u32 & mask) >> bit & 1), "code ({j}, {k}) bit {bit}");
            }
        }
    }

    #[test]
    fn every_plane_bit_is_set_where_its_code_has_it() {
        // Both layouts, two row-tiles of 150 rows.
        let src = codes(260, 190, 4, 0x77);
        let rows = pack(&StoredMatrix { codes: src.view(), bits: 4, signed: true }, 150).expect("fits");
        assert_packs(src.view(), &rows);
        let cols = pack(&StoredMatrix { codes: src.t(), bits: 4, signed: true }, 150).expect("fits");
        assert_packs(src.t(), &cols);
    }

    #[test]
    fn a_transposed_view_packs_like_its_copy() {
        // 150 reduction rows on 64-row tiles: three tiles, the last one partial.
        let src = codes(150, 37, 5, 0x51);
        let view = StoredMatrix { codes: src.t(), bits: 5, signed: true };
        let copy = src.t().as_standard_layout().to_owned();
        let dense = StoredMatrix { codes: copy.view(), bits: 5, signed: true };
        let (a, b) = (pack(&view, 64).expect("fits"), pack(&dense, 64).expect("fits"));
        assert_eq!(a.planes, b.planes);
        let bad = Array2::from_elem((3, 2), 16);
        let err = pack(&StoredMatrix { codes: bad.t(), bits: 5, signed: true }, 64).expect_err("16 needs 6 bits");
        assert!(err.to_string().contains("stored code 16 at (0, 0)"), "{err}");
    }
}
