//! Number formats: quantize and dequantize on ndarray views, allocation-free.

pub mod int;
pub mod radix4;
