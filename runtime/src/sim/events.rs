//! Event counts of the tile simulator, the input of the energy model.

use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

/// What the arrays did. Every count is exact, including what was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    /// Column evaluations (one per converted column per input plane or DAC cycle).
    pub column_evals: u64,
    /// ADC conversions.
    pub conversions: u64,
    /// Near-memory shift-and-adds of conversion results.
    pub shift_adds: u64,
    /// Input planes (per input vector and row-tile) skipped because no element was active.
    pub skipped_planes: u64,
    /// Conversions those skipped planes would have cost.
    pub skipped_conversions: u64,
    /// Bits written into arrays (programming stored matrices).
    pub bits_written: u64,
    /// Input bits applied to rows (operand movement).
    pub input_bits: u64,
}

impl AddAssign for Events {
    fn add_assign(&mut self, o: Events) {
        self.column_evals += o.column_evals;
        self.conversions += o.conversions;
        self.shift_adds += o.shift_adds;
        self.skipped_planes += o.skipped_planes;
        self.skipped_conversions += o.skipped_conversions;
        self.bits_written += o.bits_written;
        self.input_bits += o.input_bits;
    }
}
