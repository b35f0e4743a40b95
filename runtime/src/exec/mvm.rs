//! The executor's MVMs: writing the arrays after an update, and running an MVM on the tile
//! simulator (IMC, with the ADC range policy) or exactly on the codes (digital).

use super::nodes::round_fp16;
use super::policy::Running;
use super::tensor::{Codes, Tensor};
use super::{EVAL_NOISE_DOMAIN, ExecError, Executor, mix};
use crate::config::{AdcZero, Mvm, Target};
use crate::ir::MvmId;
use crate::sim::{Events, Gains, InputBatch, PlaneStats, StoredMatrix};
use ndarray::Array2;

impl Executor {
    pub(super) fn write_arrays(&mut self, m: MvmId, v: crate::ir::ValueId) -> Result<(), ExecError> {
        let Some(tile) = &self.tile else { return Ok(()) };
        let t = self.vals[v.index()]
            .as_ref()
            .ok_or_else(|| ExecError::Invalid(format!("{v} read before it was written")))?;
        let Some(q) = &t.quant else {
            return Err(ExecError::Invalid(format!("IMC MVM {m} stores an unquantized value")));
        };
        let Codes::Int { codes, .. } = &q.codes else {
            return Err(ExecError::Invalid(format!("IMC MVM {m} stores radix-4 codes")));
        };
        let (bits, signed) = q.stored_bits();
        let kind = self.step.mvm(m).kind;
        // The backward and weight-gradient MVMs store the transpose; the tile packs it from
        // this view without a copy.
        let stored = match kind {
            Mvm::Forward => codes.view(),
            Mvm::Backward | Mvm::WeightGrad => codes.t(),
        };
        let mut ev = Events::default();
        let p = tile.program(&StoredMatrix { codes: stored, bits, signed }, m.0 as u64, &mut ev)?;
        self.counts[m.index()].events += ev;
        self.programmed[m.index()] = Some(p);
        Ok(())
    }

    /// Runs MVM `m` with stored operand `s` and streamed operand `x`.
    pub(super) fn mvm(&mut self, m: MvmId, s: &Tensor, x: &Tensor) -> Result<Tensor, ExecError> {
        let op = self.step.mvm(m).clone();
        let counts = &mut self.counts[m.index()];
        counts.calls += 1;
        let y: Array2<f32> = match (op.target, &s.quant, &x.quant) {
            (Some(Target::Imc), Some(sq), Some(xq)) => {
                let p = self.programmed[m.index()]
                    .as_ref()
                    .ok_or_else(|| ExecError::Invalid(format!("{} runs before its arrays are written", op.name)))?;
                let tile = self.tile.as_mut().ok_or_else(|| ExecError::Invalid("no tile for an IMC MVM".into()))?;
                let xt; // streamed vectors: rows of x, or columns for the weight gradient
                let input = match (&xq.codes, op.kind) {
                    (Codes::Int { codes, bits, signed }, Mvm::WeightGrad) => {
                        xt = Codes::Int {
                            codes: codes.t().as_standard_layout().to_owned(),
                            bits: *bits,
                            signed: *signed,
                        };
                        batch_of(&xt)
                    }
                    (Codes::Radix4 { codes, levels }, Mvm::WeightGrad) => {
                        xt = Codes::Radix4 { codes: codes.t().as_standard_layout().to_owned(), levels: *levels };
                        batch_of(&xt)
                    }
                    (c, _) => batch_of(c),
                };
                let plan = op.adc.as_ref().ok_or_else(|| ExecError::Invalid(format!("{} has no ADC plan", op.name)))?;
                let fs = tile.plane_full_scales(&input)?;
                let hw = tile.hardware();
                let cmax = match hw.adc.zero {
                    AdcZero::Unsigned => ((1u64 << hw.adc.bits) - 1) as f64,
                    _ => ((1u64 << (hw.adc.bits - 1)) - 1) as f64,
                };
                let running = &mut self.adc[m.index()];
                if running.len() != fs.len() && self.eval_batch.is_none() {
                    running.resize(fs.len(), Running::default());
                }
                let gains: Vec<f64> = fs
                    .iter()
                    .enumerate()
                    .map(|(k, &f)| {
                        running.get(k).copied().unwrap_or_default().gain(
                            &plan.policy,
                            f,
                            cmax,
                            plan.allowed.as_deref(),
                            plan.initial_gains.get(k).copied().unwrap_or(1.0),
                        )
                    })
                    .collect();
                let mut ev = Events::default();
                let mut stats = PlaneStats::default();
                let stream = match self.eval_batch {
                    None => mix(self.hyper.seed, self.steps),
                    Some(b) => mix(mix(self.hyper.seed ^ EVAL_NOISE_DOMAIN, self.steps), b),
                };
                let seed = mix(stream, 0x5EED_0000 + m.0 as u64);
                if self.eval_batch.is_none() {
                    self.last_gains[m.index()].clone_from(&gains);
                    self.last_full_scales[m.index()].clone_from(&fs);
                }
                let y = tile.mvm_with_stats(p, &input, &Gains::PerPlane(gains), seed, &mut ev, &mut stats)?;
                if self.eval_batch.is_none() {
                    let clips = &mut self.clip_counts[m.index()];
                    clips.resize(stats.count.len().max(clips.len()), (0, 0));
                    for (c, (&k, &n)) in clips.iter_mut().zip(stats.clipped.iter().zip(&stats.count)) {
                        *c = (c.0 + k, c.1 + n);
                    }
                    let momentum = Running::momentum(&plan.policy);
                    for (k, r) in running.iter_mut().enumerate() {
                        r.update(&stats, k, momentum);
                    }
                }
                counts.events += ev;
                let scale = sq.scale as f64 * xq.scale as f64;
                y.mapv(|v| (v * scale) as f32)
            }
            (Some(Target::Digital(_)), Some(sq), Some(xq)) => {
                // Exact: every product and partial sum of these codes is representable in f64.
                let (rows, cols) = match &xq.codes {
                    Codes::Int { codes, .. } => codes.dim(),
                    Codes::Radix4 { codes, .. } => codes.dim(),
                };
                let reduction = if op.kind == Mvm::WeightGrad { rows } else { cols };
                let scale = sq.scale as f64 * xq.scale as f64;
                if exact_in_f32(units(&sq.codes), units(&xq.codes), reduction) {
                    // Every product and partial sum is an integer multiple, below 2^24, of the
                    // product of the operands' smallest magnitudes: the f32 GEMM gives the same
                    // exact values as f64, in any summation order, twice as fast.
                    let (sv, xv) = (sq.code_values_f32(), xq.code_values_f32());
                    counts.digital_macs += macs(op.kind, &xv, sv.len());
                    gemm(op.kind, &xv, &sv).mapv(|v| (v as f64 * scale) as f32)
                } else {
                    let (sv, xv) = (sq.code_values(), xq.code_values());
                    counts.digital_macs += macs(op.kind, &xv, sv.len());
                    gemm(op.kind, &xv, &sv).mapv(|v| (v * scale) as f32)
                }
            }
            _ => {
                // Unquantized operands: f32 GEMM on the values.
                let (sv, xv) = (s.matrix(), x.matrix());
                counts.digital_macs += macs(op.kind, &xv, sv.len());
                match op.kind {
                    Mvm::Forward => xv.dot(&sv.t()),
                    Mvm::Backward => xv.dot(&sv),
                    Mvm::WeightGrad => xv.t().dot(&sv),
                }
            }
        };
        let mut y = if self.hyper.accumulate_fp16 { y.mapv(round_fp16) } else { y };
        if !y.is_standard_layout() {
            // GEMMs may return column-major results; every consumer indexes row-major.
            y = y.as_standard_layout().into_owned();
        }
        Ok(Tensor::f32(y.into_dyn()))
    }
}

/// MACs of an MVM from its operands: `x` is the streamed matrix, `stored` the stored length.
pub(super) fn macs<T>(kind: Mvm, x: &Array2<T>, stored: usize) -> u64 {
    let k = if kind == Mvm::WeightGrad { x.ncols() } else { x.nrows() };
    (k * stored) as u64
}

pub(super) fn batch_of(c: &Codes) -> InputBatch<'_> {
    match c {
        Codes::Int { codes, bits, signed } => InputBatch::Int { codes: codes.view(), bits: *bits, signed: *signed },
        Codes::Radix4 { codes, levels } => InputBatch::Radix4 { codes: codes.view(), levels: *levels },
    }
}

/// The MVM of `kind` on streamed `x` and stored `s`.
fn gemm<T: ndarray::LinalgScalar>(kind: Mvm, x: &Array2<T>, s: &Array2<T>) -> Array2<T> {
    match kind {
        Mvm::Forward => x.dot(&s.t()),
        Mvm::Backward => x.dot(s),
        Mvm::WeightGrad => x.t().dot(s),
    }
}

/// A bound on the code magnitudes in units of the smallest non-zero magnitude: `2^bits − 1` for
/// integer codes (from the format: no pass over a weight matrix); for radix-4 codes (magnitudes
/// `4^-k`, all multiples of the smallest present; the grid phase is in the scale) the span
/// present, `4^(k_max − k_min)` (1 for all-zero codes), from one pass over the small error matrix.
fn units(c: &Codes) -> u64 {
    match c {
        Codes::Int { bits, .. } => (1u64 << bits) - 1,
        Codes::Radix4 { codes, .. } => {
            // |code| = k + 1; zeros take no part. Branch-free so that it vectorizes.
            let span = |(lo, hi): (u8, u8), v: &i8| {
                let a = v.unsigned_abs();
                (lo.min(if a == 0 { u8::MAX } else { a }), hi.max(a))
            };
            let (lo, hi) = match codes.as_slice_memory_order() {
                Some(s) => s.iter().fold((u8::MAX, 0), span),
                None => codes.iter().fold((u8::MAX, 0), span),
            };
            if lo > hi { 1 } else { 4u64.saturating_pow(u32::from(hi - lo)) }
        }
    }
}

/// Whether an MVM with `reduction` terms per output, over codes of at most `units_s` and
/// `units_x` smallest steps, is exact in f32: `reduction · units_s · units_x < 2^24`, so every
/// partial sum is an integer number of the product of the smallest steps that f32 holds exactly
/// (powers of two scale it without rounding).
fn exact_in_f32(units_s: u64, units_x: u64, reduction: usize) -> bool {
    (reduction as u64).saturating_mul(units_s).saturating_mul(units_x) < 1 << 24
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn f32_only_where_every_partial_sum_is_an_exact_integer() {
        // INT4 x INT4: 15·15·K < 2^24 up to K = 74,565; INT8 x INT8 up to K = 1,040.
        assert!(exact_in_f32(15, 15, 74_565));
        assert!(!exact_in_f32(15, 15, 74_566));
        assert!(exact_in_f32(127, 127, 1_040) && !exact_in_f32(127, 127, 1_041));
        // Radix-4 codes spanning 4^0..4^-7 (8 levels: 4^7 units) x INT4 activations: a batch-64
        // weight gradient holds; a narrower span holds longer reductions.
        let r =
            |c: &[i8]| Codes::Radix4 { codes: Array2::from_shape_vec((1, c.len()), c.to_vec()).unwrap(), levels: 8 };
        assert_eq!(units(&r(&[0, 1, -8, 3])), 16_384);
        assert!(exact_in_f32(units(&r(&[1, -8])), 15, 68) && !exact_in_f32(units(&r(&[1, -8])), 15, 69));
        assert_eq!(units(&r(&[0, -3, 5, 0])), 16);
        assert_eq!(units(&r(&[0, 0])), 1);
        let i = Codes::Int { codes: Array2::from_shape_vec((1, 3), vec![3, -7, 0]).unwrap(), bits: 4, signed: true };
        assert_eq!(units(&i), 15);
        // And the two GEMMs agree where it holds.
        let x = Array2::from_shape_fn((5, 300), |(i, j)| ((i * 7 + j * 3) % 31) as f64 - 15.0);
        let s = Array2::from_shape_fn((4, 300), |(i, j)| ((i * 5 + j) % 15) as f64 - 7.0);
        let wide = gemm(Mvm::Forward, &x, &s);
        let narrow = gemm(Mvm::Forward, &x.mapv(|v| v as f32), &s.mapv(|v| v as f32)).mapv(|v| v as f64);
        assert_eq!(wide, narrow);
    }
}
