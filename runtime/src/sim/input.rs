//! Input operands and how they become row drives: binary bit planes for integers, exponent
//! planes for radix-4 FP4, or multi-level DAC cycles; signed values by two passes or a signed
//! drive.
//!
//! An input vector is decomposed into *masks* (one bit per row: "this row is driven in this
//! mask") and *groups*: one group is one array cycle whose column sum is
//! `v = Σ_terms level · popcount(mask & column)` and which the ADC converts once per column.
//! The group's digital weight (`2^i`, `±4^-k`, ...) scales the converted value.

use super::SimError;
use super::bits::Transpose;
use crate::config::{HardwareConfig, InputMode, SignMode};
use ndarray::ArrayView2;

/// A batch of input vectors, `n x reduction`.
#[derive(Debug, Clone, Copy)]
pub enum InputBatch<'a> {
    /// Integer codes. Unsigned: `0 <= x < 2^bits`; signed: `|x| < 2^bits` (magnitude bits).
    Int {
        /// The codes.
        codes: ArrayView2<'a, i32>,
        /// Magnitude bits.
        bits: u32,
        /// Whether negative values occur.
        signed: bool,
    },
    /// Radix-4 FP4 codes as [`crate::formats::radix4::code_of`] gives them: 0, or `±(k+1)` for
    /// `±4^-k`, `k < levels`.
    Radix4 {
        /// The codes.
        codes: ArrayView2<'a, i8>,
        /// Number of exponents.
        levels: u32,
    },
}

impl InputBatch<'_> {
    /// `(n, reduction)`.
    pub fn dim(&self) -> (usize, usize) {
        match self {
            InputBatch::Int { codes, .. } => codes.dim(),
            InputBatch::Radix4 { codes, .. } => codes.dim(),
        }
    }
}

/// One term of a group's column sum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Term {
    /// Which mask.
    pub mask: usize,
    /// Its integer level (1 for binary planes, the DAC level otherwise; negative for the
    /// negative half of a signed drive).
    pub level: i64,
    /// The level with its static DAC error, `level · (1 + ε)`.
    pub level_actual: f64,
}

/// One array cycle: the terms whose column sum the ADC converts, and the digital weight.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Index of the plane (for the ADC gain): bit, exponent or DAC cycle.
    pub plane: usize,
    /// Digital weight of the converted value.
    pub weight: f64,
    /// Terms of the column sum.
    pub terms: Vec<Term>,
    /// Largest level magnitude (the ADC's native full scale is `rows · level_max`).
    pub level_max: f64,
    /// Whether the column sum can be negative (signed drive).
    pub signed_sum: bool,
}

/// How an input kind is applied on a given chip.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub groups: Vec<Group>,
    pub masks: usize,
    /// Number of distinct planes (gains).
    pub planes: usize,
    /// Integer-coefficient sums (exact table sampling applies) unless a DAC error is set.
    pub exact_levels: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    IntBits { bits: u32 },
    IntDac { bits: u32, dac: u32 },
    R4Planes { levels: u32 },
    R4Dac { levels: u32, per_cycle: u32 },
}

/// Static per-level DAC errors `ε_j`, drawn once per chip from `chip_seed`.
fn dac_errors(hw: &HardwareConfig, n: usize) -> Vec<f64> {
    (0..n).map(|j| hw.noise.dac_error * super::noise::static_normal(hw.noise.chip_seed, 0xDAC0, j as u64)).collect()
}

impl Schedule {
    pub(crate) fn new(hw: &HardwareConfig, x: &InputBatch<'_>) -> Result<Schedule, SimError> {
        let two_pass = hw.signs == SignMode::TwoPass;
        let (kind, signed) = match (*x, &hw.input) {
            (InputBatch::Int { bits, signed, .. }, InputMode::BitSerial) => (Kind::IntBits { bits }, signed),
            (InputBatch::Int { bits, signed, .. }, InputMode::Dac { bits: dac, .. }) => {
                (Kind::IntDac { bits, dac: *dac }, signed)
            }
            (InputBatch::Radix4 { levels, .. }, InputMode::BitSerial) => (Kind::R4Planes { levels }, true),
            (InputBatch::Radix4 { levels, .. }, InputMode::Dac { levels: dl, .. }) => {
                for (j, &l) in dl.iter().enumerate() {
                    if l != 4f64.powi(j as i32) {
                        return Err(SimError::BadParameter(format!(
                            "DAC levels for radix-4 inputs must be 1, 4, 16, ... (level {j} is {l})"
                        )));
                    }
                }
                (Kind::R4Dac { levels, per_cycle: dl.len().max(1) as u32 }, true)
            }
        };
        let bits = match kind {
            Kind::IntBits { bits } | Kind::IntDac { bits, .. } => bits,
            Kind::R4Planes { levels } | Kind::R4Dac { levels, .. } => levels,
        };
        if bits == 0 || bits > 24 {
            return Err(SimError::BadOperand(format!("inputs need 1..=24 magnitude bits or levels, not {bits}")));
        }
        // Passes: 0 = positive (or unsigned), 1 = negative.
        let passes: &[usize] = if signed { &[0, 1] } else { &[0] };
        let (planes, slots, digital): (usize, usize, Box<dyn Fn(usize) -> f64>) = match kind {
            Kind::IntBits { bits } => (bits as usize, 1, Box::new(|p| (1u64 << p) as f64)),
            Kind::IntDac { bits, dac } => {
                let cycles = bits.div_ceil(dac) as usize;
                (cycles, dac as usize, Box::new(move |c| (1u64 << (dac as usize * c)) as f64))
            }
            Kind::R4Planes { levels } => (levels as usize, 1, Box::new(|k| 4f64.powi(-(k as i32)))),
            Kind::R4Dac { levels, per_cycle } => {
                let cycles = levels.div_ceil(per_cycle) as usize;
                let base = 4f64.powi(1 - levels as i32);
                (cycles, per_cycle as usize, Box::new(move |c| base * 4f64.powi((per_cycle as usize * c) as i32)))
            }
        };
        let level = |slot: usize| -> i64 {
            match kind {
                Kind::IntBits { .. } | Kind::R4Planes { .. } => 1,
                Kind::IntDac { .. } => 1 << slot,
                Kind::R4Dac { .. } => 1 << (2 * slot),
            }
        };
        let is_dac = matches!(kind, Kind::IntDac { .. } | Kind::R4Dac { .. });
        let eps = if is_dac { dac_errors(hw, slots) } else { vec![0.0; slots] };
        let mask_index = |p: usize, pass: usize, slot: usize| (p * 2 + pass) * slots + slot;
        let mut groups = Vec::new();
        for p in 0..planes {
            let level_max = (0..slots).map(|s| level(s) as f64).sum::<f64>().max(1.0);
            let term = |pass: usize, s: usize, sign: i64| Term {
                mask: mask_index(p, pass, s),
                level: sign * level(s),
                level_actual: sign as f64 * level(s) as f64 * (1.0 + eps[s]),
            };
            if signed && !two_pass {
                let terms = (0..slots).flat_map(|s| [term(0, s, 1), term(1, s, -1)]).collect();
                groups.push(Group { plane: p, weight: digital(p), terms, level_max, signed_sum: true });
            } else {
                for &pass in passes {
                    let terms = (0..slots).map(|s| term(pass, s, 1)).collect();
                    let w = if pass == 1 { -digital(p) } else { digital(p) };
                    groups.push(Group { plane: p, weight: w, terms, level_max, signed_sum: false });
                }
            }
        }
        let exact_levels = !is_dac || hw.noise.dac_error == 0.0;
        Ok(Schedule { groups, masks: planes * 2 * slots, planes, exact_levels, kind })
    }

    /// Fills `masks` (`self.masks x words`) with the drive pattern of `row` over rows
    /// `start..start+len`; returns an error for a code outside the declared range.
    pub(crate) fn fill_masks(
        &self,
        x: &InputBatch<'_>,
        row: usize,
        start: usize,
        len: usize,
        words: usize,
        masks: &mut [u64],
    ) -> Result<(), SimError> {
        masks.fill(0);
        let mut set = |mask: usize, r: usize| masks[mask * words + r / 64] |= 1u64 << (r % 64);
        match (*x, self.kind) {
            (InputBatch::Int { codes, bits, signed }, Kind::IntBits { .. } | Kind::IntDac { .. }) => {
                let slots = match self.kind {
                    Kind::IntDac { dac, .. } => dac as usize,
                    _ => 1,
                };
                // Magnitude bit `b` of a value of sign pass `pass` drives mask `target[b][pass]`.
                let target = |b: usize, pass: usize| ((b / slots) * 2 + pass) * slots + b % slots;
                let limit = 1u64 << bits;
                // Per word of 64 rows: magnitudes split by sign and checked, then each bit plane
                // transposed into one word.
                let (mut pos, mut neg) = (Transpose::new(bits), Transpose::new(bits));
                for w0 in (0..len).step_by(64) {
                    let n = (len - w0).min(64);
                    for i in 0..n {
                        let r = w0 + i;
                        let v = codes[[row, start + r]] as i64;
                        if (!signed && v < 0) || v.unsigned_abs() >= limit {
                            return Err(SimError::BadOperand(format!(
                                "input code {v} at ({row}, {}) does not fit {} {bits} bits",
                                start + r,
                                if signed { "signed magnitude" } else { "unsigned" }
                            )));
                        }
                        let mag = v.unsigned_abs() as u32;
                        let (p, q) = if v < 0 { (0, mag) } else { (mag, 0) };
                        pos.set(i, p);
                        neg.set(i, q);
                    }
                    pos.clear_from(n);
                    neg.clear_from(n);
                    for b in 0..bits as usize {
                        masks[target(b, 0) * words + w0 / 64] |= pos.plane(b);
                        if signed {
                            masks[target(b, 1) * words + w0 / 64] |= neg.plane(b);
                        }
                    }
                }
            }
            (InputBatch::Radix4 { codes, levels }, Kind::R4Planes { .. } | Kind::R4Dac { .. }) => {
                let per = match self.kind {
                    Kind::R4Dac { per_cycle, .. } => per_cycle as usize,
                    _ => 1,
                };
                for r in 0..len {
                    let c = codes[[row, start + r]];
                    if c == 0 {
                        continue;
                    }
                    let k = (c.unsigned_abs() - 1) as usize;
                    if k >= levels as usize {
                        return Err(SimError::BadOperand(format!(
                            "radix-4 code {c} at ({row}, {}) exceeds {levels} levels",
                            start + r
                        )));
                    }
                    let pass = usize::from(c < 0);
                    let (p, s) = if per == 1 {
                        (k, 0)
                    } else {
                        let o = levels as usize - 1 - k; // offset from the smallest magnitude
                        (o / per, o % per)
                    };
                    set((p * 2 + pass) * per + s, r);
                }
            }
            _ => unreachable!("schedule built for this input kind"),
        }
        Ok(())
    }
}
