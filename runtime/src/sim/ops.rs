//! The three training MVMs of a layer on the arrays (DOMAIN.md §1):
//!
//! | MVM | stored matrix | streamed input | reduction |
//! |---|---|---|---|
//! | forward `z = W·a` | `W` (N_out x N_in) | activations `a` | N_in |
//! | backward `g = Wᵀ·δ` | a `Wᵀ` copy (N_in x N_out) | errors `δ` (radix-4) | N_out |
//! | weight-gradient `dW = δ·aᵀ` | the batch's activations `aᵀ` (N_in x batch) | each output's errors over the batch | batch |
//!
//! The weight-gradient MVM writes the streamed operand into the arrays every step, and its
//! reduction runs over the batch only (64 of 1152 rows for a dense layer at batch 64), which is
//! why its conversions per MAC are high.

use super::{Events, Gains, InputBatch, Programmed, SimError, StoredMatrix, Tile};
use ndarray::{Array2, ArrayView2};

/// Programs `W` (integer codes, `N_out x N_in`) for the forward MVM.
pub fn program_forward(
    tile: &Tile,
    w: ArrayView2<'_, i32>,
    bits: u32,
    placement: u64,
    ev: &mut Events,
) -> Result<Programmed, SimError> {
    tile.program(&StoredMatrix { codes: w, bits, signed: true }, placement, ev)
}

/// Programs the `Wᵀ` copy (`N_in x N_out`) for the backward MVM.
pub fn program_transposed(
    tile: &Tile,
    w: ArrayView2<'_, i32>,
    bits: u32,
    placement: u64,
    ev: &mut Events,
) -> Result<Programmed, SimError> {
    let wt = w.t().as_standard_layout().to_owned();
    tile.program(&StoredMatrix { codes: wt.view(), bits, signed: true }, placement, ev)
}

/// The weight gradient `dW[j, i] = Σ_b δ[b, j]·a[b, i]` (`N_out x N_in`): stores `aᵀ` (codes of
/// `a_bits` bits, unsigned for PACT activations) and streams each output's errors `δ[:, j]`
/// (radix-4 codes with `levels` exponents). Counts the bits written for `aᵀ`.
#[allow(clippy::too_many_arguments)]
pub fn weight_gradient(
    tile: &mut Tile,
    a: ArrayView2<'_, i32>,
    a_bits: u32,
    a_signed: bool,
    delta: ArrayView2<'_, i8>,
    levels: u32,
    gains: &Gains,
    placement: u64,
    seed: u64,
    ev: &mut Events,
) -> Result<Array2<f64>, SimError> {
    if a.nrows() != delta.nrows() {
        return Err(SimError::BadOperand(format!("activations have {} samples, errors {}", a.nrows(), delta.nrows())));
    }
    let at = a.t().as_standard_layout().to_owned();
    // Signed activations (INT8) are stored two's complement with one more bit for the sign.
    let bits = if a_signed { a_bits + 1 } else { a_bits };
    let stored = tile.program(&StoredMatrix { codes: at.view(), bits, signed: a_signed }, placement, ev)?;
    let dt = delta.t().as_standard_layout().to_owned();
    tile.mvm(&stored, &InputBatch::Radix4 { codes: dt.view(), levels }, gains, seed, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Phase;
    use crate::formats::radix4::value_of;

    fn exact_chip(rows: u32) -> crate::config::HardwareConfig {
        let mut h = super::super::tests::hw(rows, 64, 20);
        h.noise.sigma_lsb = 0.0;
        h
    }

    #[test]
    fn three_mvms_match_exact_arithmetic_without_adc_loss() {
        let (batch, n_in, n_out) = (6usize, 40usize, 9usize);
        let w = Array2::from_shape_fn((n_out, n_in), |(j, i)| ((j * 7 + i * 3) % 15) as i32 - 7);
        let a = Array2::from_shape_fn((batch, n_in), |(b, i)| ((b * 5 + i) % 16) as i32);
        let d = Array2::from_shape_fn((batch, n_out), |(b, j)| ((b * 3 + j * 5) % 17) as i8 - 8);
        let h = exact_chip(32);
        let mut tile = Tile::new(&h).unwrap();
        let mut ev = Events::default();
        // LSB = 1 count: G = rows / (2^20 - 1) for binary planes.
        let g = Gains::Uniform(32.0 / ((1u64 << 20) - 1) as f64);
        let fw = program_forward(&tile, w.view(), 4, 0, &mut ev).unwrap();
        let z = tile.mvm(&fw, &InputBatch::Int { codes: a.view(), bits: 4, signed: false }, &g, 1, &mut ev).unwrap();
        assert_eq!(z, a.dot(&w.t()).mapv(|v| v as f64));
        let bw = program_transposed(&tile, w.view(), 4, 1, &mut ev).unwrap();
        let back = tile.mvm(&bw, &InputBatch::Radix4 { codes: d.view(), levels: 8 }, &g, 2, &mut ev).unwrap();
        let df = d.mapv(|c| value_of(c, Phase::Even) as f64);
        let wf = w.mapv(|v| v as f64);
        assert_eq!(back, df.dot(&wf));
        let before = ev.bits_written;
        let dw = weight_gradient(&mut tile, a.view(), 4, false, d.view(), 8, &g, 2, 3, &mut ev).unwrap();
        assert_eq!(ev.bits_written - before, (batch * n_in * 4) as u64, "aᵀ is written every step");
        let af = a.mapv(|v| v as f64);
        assert_eq!(dw, df.t().dot(&af));
    }
}
