//! Typing values: an [`ast::Expr`] checked against a schema [`Ty`] becomes a [`Value`], or a
//! diagnostic saying what was expected.

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::schema::{CtorSpec, Dim, ParamSpec, Presence, Ty, UNITS};
use crate::span::Span;
use crate::syntax::ast::{self, Expr, ExprKind};
use std::collections::BTreeMap;

/// A checked value. Numbers with units are stored in base units (joules, bits, LSB).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// One of a fixed set of names.
    Sym(&'static str),
    /// A reference to a definition, resolved later.
    Ref(String),
    /// Array dimensions or a shape.
    Ints(Vec<i64>),
    /// ADC adaptability: `None` is `full`, else the allowed gains.
    Gains(Option<Vec<f64>>),
    /// A list of reals.
    Reals(Vec<f64>),
    /// A constructor with all its arguments (defaults filled).
    Ctor(Ctor),
}

/// A constructor value such as `int4_sawb(c1 = 12.035, c2 = 12.03)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctor {
    /// The constructor's name.
    pub name: &'static str,
    /// Its arguments; optional arguments without value are absent.
    pub args: BTreeMap<&'static str, Value>,
}

impl Value {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is one (integers widen).
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Real(r) => Some(*r),
            _ => None,
        }
    }
}

fn found(expr: &Expr) -> &'static str {
    match &expr.kind {
        ExprKind::Number(n) if n.unit.is_some() => "a number with a unit",
        ExprKind::Number(_) => "a number",
        ExprKind::Bool(_) => "a boolean",
        ExprKind::Str(_) => "a string",
        ExprKind::Name(_) => "a name",
        ExprKind::Call { .. } => "a call",
        ExprKind::List(_) => "a list",
        ExprKind::Dims(_) => "dimensions",
        ExprKind::Error => "an invalid value",
    }
}

fn mismatch(expr: &Expr, ty: &Ty, what: &str) -> Diagnostic {
    Diagnostic::new(Code::TypeMismatch, format!("{what} expects {}, found {}", ty.describe(), found(expr)))
        .primary(expr.span, format!("expected {}", ty.describe()))
}

/// Types values against the schema, recording diagnostics. `what` names the parameter in
/// messages (e.g. "`adc.bits`").
pub struct Typer<'d> {
    /// Where diagnostics go.
    pub diags: &'d mut Diagnostics,
}

impl Typer<'_> {
    /// Checks `expr` against `ty`; `None` after reporting a diagnostic (or for an `Error` node,
    /// which was reported by the parser).
    pub fn eval(&mut self, expr: &Expr, ty: &Ty, what: &str) -> Option<Value> {
        if matches!(expr.kind, ExprKind::Error) {
            return None;
        }
        match self.eval_inner(expr, ty, what) {
            Ok(v) => Some(v),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn eval_inner(&mut self, expr: &Expr, ty: &Ty, what: &str) -> Result<Value, Diagnostic> {
        match ty {
            Ty::Int { min, max, dim } => {
                let (v, is_int) = number(expr, *dim, ty, what)?;
                if !is_int || v.fract() != 0.0 {
                    return Err(Diagnostic::new(Code::ExpectedInteger, format!("{what} must be a whole number"))
                        .primary(expr.span, format!("expected {}", ty.describe())));
                }
                if v < *min as f64 || v > *max as f64 {
                    return Err(out_of_range(expr.span, what, &ty.describe()));
                }
                Ok(Value::Int(v as i64))
            }
            Ty::Real { dim, .. } => {
                let (v, _) = number(expr, *dim, ty, what)?;
                ty.check_real(v).map_err(|range| out_of_range(expr.span, what, &range))?;
                Ok(Value::Real(v))
            }
            Ty::Bool => match expr.kind {
                ExprKind::Bool(b) => Ok(Value::Bool(b)),
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Str => match &expr.kind {
                ExprKind::Str(s) => Ok(Value::Str(s.clone())),
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Sym(opts) => match &expr.kind {
                ExprKind::Name(id) => match opts.iter().find(|o| **o == id.name) {
                    Some(o) => Ok(Value::Sym(o)),
                    None => Err(unknown_variant(id, what, ty, opts.iter().copied())),
                },
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Ref(_) => match &expr.kind {
                ExprKind::Name(id) => Ok(Value::Ref(id.name.clone())),
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Dims => match &expr.kind {
                ExprKind::Dims(parts) if parts.len() == 2 => {
                    let mut out = Vec::new();
                    for part in parts {
                        out.push(
                            self.eval_inner(part, &Ty::Int { min: 1, max: 1 << 24, dim: Dim::None }, what)?
                                .as_int()
                                .unwrap_or(1),
                        );
                    }
                    Ok(Value::Ints(out))
                }
                _ => Err(mismatch(expr, ty, what).help("write rows x columns, e.g. `1152 x 256`")),
            },
            Ty::Shape => match &expr.kind {
                ExprKind::List(items) if items.len() == 1 || items.len() == 3 => {
                    let mut out = Vec::new();
                    for item in items {
                        out.push(
                            self.eval_inner(item, &Ty::Int { min: 1, max: 1 << 24, dim: Dim::None }, what)?
                                .as_int()
                                .unwrap_or(1),
                        );
                    }
                    Ok(Value::Ints(out))
                }
                ExprKind::List(_) => {
                    Err(Diagnostic::new(Code::TypeMismatch, format!("{what} must have 1 or 3 dimensions"))
                        .primary(expr.span, "expected `[N]` or `[C, H, W]`"))
                }
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Gains => match &expr.kind {
                ExprKind::Name(id) if id.name == "full" => Ok(Value::Gains(None)),
                ExprKind::Name(id) => Err(unknown_variant(id, what, ty, ["full"])),
                ExprKind::List(_) => match self.eval_inner(expr, &Ty::RealList, what)? {
                    Value::Reals(g) => Ok(Value::Gains(Some(g))),
                    _ => unreachable!("RealList yields Reals"),
                },
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::RealList => match &expr.kind {
                ExprKind::List(items) if !items.is_empty() => {
                    let elem = Ty::Real { min: 0.0, min_open: true, max: 1e9, dim: Dim::None };
                    let mut out = Vec::new();
                    for item in items {
                        out.push(self.eval_inner(item, &elem, what)?.as_real().unwrap_or(1.0));
                    }
                    Ok(Value::Reals(out))
                }
                _ => Err(mismatch(expr, ty, what)),
            },
            Ty::Ctor(ctors) => {
                let (callee, args): (&ast::Ident, &[ast::Arg]) = match &expr.kind {
                    ExprKind::Name(id) => (id, &[]),
                    ExprKind::Call { callee, args } => (callee, args),
                    _ => return Err(mismatch(expr, ty, what)),
                };
                let Some(spec) = ctors.iter().find(|c| c.name == callee.name) else {
                    if crate::schema::is_format_list(ctors)
                        && let Some(role) = crate::schema::format_role(&callee.name)
                    {
                        return Err(Diagnostic::new(
                            Code::FormatRole,
                            format!("`{}` is a format for {role}, not for {what}", callee.name),
                        )
                        .primary(callee.span, format!("expected {}", ty.describe())));
                    }
                    return Err(unknown_variant(callee, what, ty, ctors.iter().map(|c| c.name)));
                };
                let args = self.args(spec.args, args, expr.span, &format!("`{}`", spec.name))?;
                Ok(Value::Ctor(Ctor { name: spec.name, args }))
            }
        }
    }

    /// Binds call arguments (positional, then named) to `params`, filling defaults. Shared by
    /// constructors and layer declarations.
    pub fn args(
        &mut self,
        params: &'static [ParamSpec],
        args: &[ast::Arg],
        call_span: Span,
        what: &str,
    ) -> Result<BTreeMap<&'static str, Value>, Diagnostic> {
        let mut bound: BTreeMap<&'static str, (Value, Span)> = BTreeMap::new();
        let mut positional = 0;
        for arg in args {
            let spec = match &arg.name {
                Some(name) => match params.iter().find(|p| p.name == name.name) {
                    Some(p) => p,
                    None => {
                        let d =
                            Diagnostic::new(Code::UnknownArgument, format!("{what} has no argument `{}`", name.name))
                                .primary(name.span, "unknown argument")
                                .did_you_mean(&name.name, params.iter().map(|p| p.name));
                        return Err(with_arg_list(d, params));
                    }
                },
                None => {
                    positional += 1;
                    match params.get(positional - 1) {
                        Some(p) => p,
                        None => {
                            let d = Diagnostic::new(
                                Code::TooManyArguments,
                                format!(
                                    "{what} takes at most {} argument{}",
                                    params.len(),
                                    if params.len() == 1 { "" } else { "s" }
                                ),
                            )
                            .primary(arg.value.span, "extra argument");
                            return Err(with_arg_list(d, params));
                        }
                    }
                }
            };
            if let Some((_, first)) = bound.get(spec.name) {
                return Err(Diagnostic::new(Code::UnknownArgument, format!("argument `{}` given twice", spec.name))
                    .primary(arg.value.span, "second value")
                    .secondary(*first, "first value"));
            }
            let v = self.eval(&arg.value, &spec.ty, &format!("argument `{}` of {what}", spec.name));
            // A bad argument was reported; bind the default so checking can go on.
            let v = v.or_else(|| default_value(spec));
            if let Some(v) = v {
                bound.insert(spec.name, (v, arg.value.span));
            }
        }
        let mut out = BTreeMap::new();
        for spec in params {
            match bound.remove(spec.name) {
                Some((v, _)) => {
                    out.insert(spec.name, v);
                }
                None => match spec.presence {
                    Presence::Required => {
                        return Err(Diagnostic::new(
                            Code::MissingParameter,
                            format!("{what} needs argument `{}`", spec.name),
                        )
                        .primary(call_span, format!("`{}` missing: {}", spec.name, spec.doc)));
                    }
                    Presence::Optional => {}
                    Presence::Default(_) => {
                        if let Some(v) = default_value(spec) {
                            out.insert(spec.name, v);
                        }
                    }
                },
            }
        }
        Ok(out)
    }
}

fn with_arg_list(d: Diagnostic, params: &[ParamSpec]) -> Diagnostic {
    if params.is_empty() {
        d.note("it takes no arguments")
    } else {
        d.note(format!("its arguments are: {}", params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")))
    }
}

fn out_of_range(span: Span, what: &str, range: &str) -> Diagnostic {
    Diagnostic::new(Code::ValueOutOfRange, format!("{what} is out of range")).primary(span, format!("expected {range}"))
}

fn unknown_variant<'a>(
    id: &ast::Ident,
    what: &str,
    ty: &Ty,
    options: impl IntoIterator<Item = &'a str> + Clone,
) -> Diagnostic {
    let d = Diagnostic::new(Code::UnknownVariant, format!("`{}` is not a valid value for {what}", id.name))
        .primary(id.span, format!("expected {}", ty.describe()));
    let d = d.did_you_mean(&id.name, options);
    if d.fixes.is_empty() && what == "`data`" {
        d.help("`idx(\"DIR\")` loads any idx data set (Fashion-MNIST, KMNIST, ...)")
    } else {
        d
    }
}

/// A number and whether it was written as an integer, after unit checking and conversion.
fn number(expr: &Expr, dim: Dim, ty: &Ty, what: &str) -> Result<(f64, bool), Diagnostic> {
    let ExprKind::Number(n) = &expr.kind else {
        return Err(mismatch(expr, ty, what));
    };
    let factor = match &n.unit {
        None if dim.unit_required() => {
            let example = UNITS.iter().find(|u| u.1 == dim && u.2 != 1.0).map_or("", |u| u.0);
            return Err(Diagnostic::new(Code::MissingUnit, format!("{what} needs a unit: {}", dim.describe()))
                .primary(expr.span, "no unit")
                .help(format!("write e.g. `{} {example}`", fmt_num(n.value))));
        }
        None => 1.0,
        Some(unit) => match UNITS.iter().find(|(name, _, _)| *name == unit.name) {
            None => {
                return Err(Diagnostic::new(Code::UnknownUnit, format!("unknown unit `{}`", unit.name))
                    .primary(unit.span, "not a unit")
                    .did_you_mean(&unit.name, UNITS.iter().map(|u| u.0))
                    .note(format!("{what} expects {}", dim.describe())));
            }
            Some((_, udim, f)) if *udim == dim => *f,
            Some((_, udim, _)) => {
                let expected = if dim == Dim::None {
                    "a plain number, without unit".to_string()
                } else {
                    dim.describe().to_string()
                };
                return Err(Diagnostic::new(
                    Code::UnitMismatch,
                    format!("{what} expects {expected}, found `{}`", unit.name),
                )
                .primary(unit.span, format!("`{}` is {}", unit.name, udim.describe())));
            }
        },
    };
    Ok((n.value * factor, n.is_integer))
}

fn fmt_num(v: f64) -> String {
    format!("{v}")
}

/// The default of a parameter with one, parsed and typed from its source text. Schema defaults
/// are checked by a test, so this only fails on a schema bug.
pub fn default_value(spec: &'static ParamSpec) -> Option<Value> {
    let Presence::Default(text) = spec.presence else {
        return None;
    };
    // Every block and sweep point fills its defaults: parse each one once per thread. Keyed by
    // the spec's address: specs are statics, and two at one address have the same content.
    thread_local! {
        static PARSED: std::cell::RefCell<std::collections::HashMap<usize, Option<Value>>> = Default::default();
    }
    let key = spec as *const ParamSpec as usize;
    if let Some(v) = PARSED.with(|p| p.borrow().get(&key).cloned()) {
        return v;
    }
    let mut diags = Diagnostics::default();
    let value =
        crate::syntax::parse_value(text).and_then(|e| Typer { diags: &mut diags }.eval(&e, &spec.ty, spec.name));
    PARSED.with(|p| p.borrow_mut().insert(key, value.clone()));
    value
}

/// A constructor's spec by name, for callers that interpret [`Ctor`] values.
pub fn ctor_spec(ctors: &'static [CtorSpec], name: &str) -> Option<&'static CtorSpec> {
    ctors.iter().find(|c| c.name == name)
}
