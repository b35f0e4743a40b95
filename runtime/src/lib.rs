//! The imcc runtime: number formats, the IMC tile simulator and training. It never depends on
//! the language front end; the compiler fills its plain parameter structs.

#![warn(missing_docs)]

/// The mapped IR (the `imcc-ir` crate).
pub use imcc_ir as ir;
pub use imcc_ir::config;

pub mod data;
pub mod energy;
pub mod exec;
pub mod formats;
pub mod jit;
pub mod sim;
