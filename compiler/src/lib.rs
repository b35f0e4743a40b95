//! The imcc compiler: the `.imc` front end (lexer, parser, semantic checks and diagnostics).
//!
//! The compiler is pure: it reads files only through a [`loader::FileLoader`] supplied by the
//! caller, returns diagnostics as data, and never prints.

#![warn(missing_docs)]

pub mod check;
pub mod codes;
pub mod diagnostic;
pub mod fmt;
pub mod ide;
pub mod loader;
pub mod lower;
pub mod program;
pub mod reference;
pub mod schema;
pub mod span;
pub mod suggest;
pub mod syntax;

pub use check::{Compilation, compile};
