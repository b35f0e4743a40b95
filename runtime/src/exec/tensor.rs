//! Run-time values: f32 data (dequantized for quantized formats) with the integer codes and
//! scale that MVMs use, so digital and IMC MVMs see exactly the same operands.

use crate::config::Phase;
use crate::formats::radix4;
use ndarray::{Array2, ArrayD, Ix2};

/// Integer codes of a quantized 2-D value.
#[derive(Debug, Clone, PartialEq)]
pub enum Codes {
    /// Integer codes (SAWB −7..7, PACT 0..15, INT8 −127..127).
    Int {
        /// The codes.
        codes: Array2<i32>,
        /// Magnitude bits (4 for INT4, 7 for INT8).
        bits: u32,
        /// Whether negative codes occur.
        signed: bool,
    },
    /// Radix-4 FP4 codes (0 or ±(k+1) for ±4^-k).
    Radix4 {
        /// The codes.
        codes: Array2<i8>,
        /// Exponents.
        levels: u32,
    },
}

/// A quantized value: `value = code_value · scale`, where an FP4 code's value is `±4^-k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    /// The codes.
    pub codes: Codes,
    /// Code units to value.
    pub scale: f32,
}

impl Quant {
    /// The codes as exact f64 values (integers, or `±4^-k`): every product and sum of an MVM
    /// over them is exact in f64, so a digital MVM computes the exact product.
    pub fn code_values(&self) -> Array2<f64> {
        self.code_values_in::<f64>()
    }

    /// The codes as exact f32 values (every code value is exact in f32; sums need not be).
    pub fn code_values_f32(&self) -> Array2<f32> {
        self.code_values_in::<f32>()
    }

    fn code_values_in<T: From<f32> + Copy>(&self) -> Array2<T> {
        match &self.codes {
            Codes::Int { codes, .. } => codes.mapv(|c| T::from(c as f32)),
            Codes::Radix4 { codes, .. } => codes.mapv(|c| T::from(radix4::value_of(c, Phase::Even))),
        }
    }

    /// Bits per element when stored in an array (one column each; two's complement if signed).
    pub fn stored_bits(&self) -> (u32, bool) {
        match &self.codes {
            Codes::Int { bits, signed, .. } => (if *signed { bits + 1 } else { *bits }, *signed),
            Codes::Radix4 { .. } => (4, true),
        }
    }
}

/// A value of the step.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The data (dequantized when quantized).
    pub data: ArrayD<f32>,
    /// Codes and scale, for quantized 2-D values.
    pub quant: Option<Quant>,
}

impl Tensor {
    /// An unquantized tensor.
    pub fn f32(data: ArrayD<f32>) -> Tensor {
        Tensor { data, quant: None }
    }

    /// The data as a matrix (MVM operands are 2-D).
    pub fn matrix(&self) -> Array2<f32> {
        self.data.clone().into_dimensionality::<Ix2>().unwrap_or_else(|_| {
            let rows = self.data.shape().first().copied().unwrap_or(1);
            let cols = self.data.len() / rows.max(1);
            Array2::from_shape_vec((rows, cols), self.data.iter().copied().collect()).expect("reshape keeps the length")
        })
    }
}
