//! The syntax tree of one `.imc` file, with spans on everything a diagnostic may point at.
//!
//! The tree is deliberately generic: every top-level definition is `KIND NAME [extends BASE] { ... }`
//! and a body holds parameters, layer declarations and nested blocks. Which kinds, keys and layers
//! exist is the checker's business (see `schema`), so that a misspelt key gets a "did you mean"
//! from the checker instead of a bare syntax error.

use crate::span::Span;

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A parsed file: its items in source order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct File {
    /// Top-level items.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import "path";`
    Import(Import),
    /// `KIND NAME [extends BASE] { ... }`
    Block(Block),
}

/// `import "path";`: the items of another file become visible.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The path as written, relative to the importing file.
    pub path: String,
    /// The span of the string literal.
    pub path_span: Span,
    /// The whole statement.
    pub span: Span,
}

/// A definition: `hardware cimu16 { ... }`, `train full extends base { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// `hardware`, `quant`, `network`, `mapping` or `train` (checked later).
    pub kind: Ident,
    /// The definition's name.
    pub name: Ident,
    /// The definition it inherits parameters from.
    pub extends: Option<Ident>,
    /// Its statements.
    pub body: Vec<Stmt>,
    /// From the kind to the closing brace.
    pub span: Span,
}

/// A statement in a block body.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `key = value;`
    Param(Param),
    /// `name: op(args) [from a, b];` (network bodies)
    Layer(LayerDecl),
    /// `kind [label] { ... }`, e.g. `adc { ... }` or `layer fc1 { ... }`.
    Section(Section),
    /// A statement that did not parse; its error was already reported.
    Error(Span),
}

/// `key = value;`
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Expr,
    /// The whole statement.
    pub span: Span,
}

/// `name: op(args) [from a, b];`
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDecl {
    /// The layer's name.
    pub name: Ident,
    /// The operation (`dense`, `conv2d`, ...).
    pub op: Ident,
    /// Arguments, if parenthesised.
    pub args: Vec<Arg>,
    /// Explicit inputs; empty means "the previous layer".
    pub from: Vec<Ident>,
    /// The whole statement.
    pub span: Span,
}

/// `kind [label] { ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The section kind (`adc`, `noise`, `layer`, ...).
    pub kind: Ident,
    /// The optional label (`fc1` in `layer fc1 { ... }`).
    pub label: Option<Ident>,
    /// Its statements.
    pub body: Vec<Stmt>,
    /// The whole section.
    pub span: Span,
}

/// A value expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number with an optional unit: `8`, `-0.5`, `1.2 pJ`.
    Number(Number),
    /// `true` / `false`.
    Bool(bool),
    /// `"text"`.
    Str(String),
    /// A bare name: an enum value or a reference to a definition.
    Name(Ident),
    /// `callee(args)`: a format, optimizer or policy with arguments.
    Call {
        /// The constructor name.
        callee: Ident,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// `a x b [x c]`: array dimensions.
    Dims(Vec<Expr>),
    /// An expression that did not parse; its error was already reported.
    Error,
}

/// A number literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// The value (negated when written with a leading `-`).
    pub value: f64,
    /// Whether it was written without a fraction or exponent.
    pub is_integer: bool,
    /// The unit written after it, if any.
    pub unit: Option<Ident>,
}

/// `name = value` or a positional `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The argument's name, if given.
    pub name: Option<Ident>,
    /// Its value.
    pub value: Expr,
}
