//! Block bodies to parameter sets: each `key = value;` typed against the schema, sections
//! flattened to dotted keys (`adc.bits`, `layer.fc1.weights`), `extends` merged, defaults filled.

use super::values::{Typer, Value, default_value};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::schema::{BlockSpec, ParamSpec, Presence};
use crate::span::Span;
use crate::syntax::ast::{self, Stmt};
use std::collections::{BTreeMap, BTreeSet};

/// A parameter's value and where it was set (`None` for a default).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// The span of the whole `key = value;` statement, if written.
    pub span: Option<Span>,
}

/// Parameters by dotted key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamSet {
    /// The entries.
    pub map: BTreeMap<String, Entry>,
    /// Keys that were written but whose value was rejected (already reported): not "missing".
    pub rejected: BTreeSet<String>,
}

impl ParamSet {
    /// The value under `key`. Defaulted keys are always present after [`fill_defaults`]; a
    /// missing one is a schema bug, never a user error.
    pub fn get(&self, key: &str) -> &Value {
        &self.map.get(key).unwrap_or_else(|| panic!("schema bug: `{key}` has no value")).value
    }

    /// The value under `key`, if any.
    pub fn try_get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).map(|e| &e.value)
    }

    /// Where `key` was written, if it was.
    pub fn span(&self, key: &str) -> Option<Span> {
        self.map.get(key).and_then(|e| e.span)
    }

    /// The labels of a labelled section (`layer fc1 { }` gives `fc1`) with the label's span.
    pub fn labels(&self, section: &str) -> Vec<(String, Option<Span>)> {
        let prefix = format!("{section}.");
        let mut out: Vec<(String, Option<Span>)> = Vec::new();
        for (k, e) in &self.map {
            if let Some(rest) = k.strip_prefix(&prefix)
                && let Some((label, _)) = rest.split_once('.')
                && !out.iter().any(|(l, _)| l == label)
            {
                out.push((label.to_string(), e.span));
            }
        }
        out
    }

    /// Adds `other`'s entries over these (a child's explicit values over its base's).
    pub fn overlay(&mut self, other: &ParamSet) {
        for (k, e) in &other.map {
            self.map.insert(k.clone(), e.clone());
        }
        self.rejected.extend(other.rejected.iter().cloned());
    }
}

/// Types the explicit statements of a block body. Layer declarations are left to the network
/// checker (`allow_layers`), or reported as misplaced.
pub fn explicit(body: &[Stmt], spec: &BlockSpec, allow_layers: bool, diags: &mut Diagnostics) -> ParamSet {
    let mut set = ParamSet::default();
    let mut key_spans: BTreeMap<String, Span> = BTreeMap::new();
    let kind = spec.kind.keyword();
    for stmt in body {
        match stmt {
            Stmt::Param(p) => {
                param(p, spec.params, "", &format!("a `{kind}` block"), &mut set, &mut key_spans, diags);
            }
            Stmt::Section(s) => {
                let Some(sec) = spec.sections.iter().find(|x| x.name == s.kind.name) else {
                    let names: Vec<&str> = spec.sections.iter().map(|x| x.name).collect();
                    let mut d = Diagnostic::new(
                        Code::UnknownSection,
                        format!("a `{kind}` block has no section `{}`", s.kind.name),
                    )
                    .primary(s.kind.span, "unknown section")
                    .did_you_mean(&s.kind.name, names.iter().copied());
                    d = if names.is_empty() {
                        d.note(format!("`{kind}` blocks have no sections"))
                    } else {
                        d.note(format!("its sections are: {}", names.join(", ")))
                    };
                    diags.push(d);
                    continue;
                };
                let prefix = match (&s.label, sec.labelled) {
                    (Some(l), true) => format!("{}.{}.", sec.name, l.name),
                    (None, false) => format!("{}.", sec.name),
                    (None, true) => {
                        diags.push(
                            Diagnostic::new(Code::SyntaxError, format!("section `{}` needs a layer name", sec.name))
                                .primary(s.kind.span, "expected a layer name after this")
                                .help(format!("write `{} fc1 {{ ... }}`", sec.name)),
                        );
                        continue;
                    }
                    (Some(l), false) => {
                        diags.push(
                            Diagnostic::new(Code::SyntaxError, format!("section `{}` takes no label", sec.name))
                                .primary(l.span, "unexpected label")
                                .help(format!("write `{} {{ ... }}`", sec.name)),
                        );
                        continue;
                    }
                };
                let ctx = format!("section `{}`", sec.name);
                for inner in &s.body {
                    match inner {
                        Stmt::Param(p) => param(p, sec.params, &prefix, &ctx, &mut set, &mut key_spans, diags),
                        Stmt::Error(_) => {}
                        Stmt::Layer(l) => diags.push(misplaced(l.span, "a layer declaration", &ctx)),
                        Stmt::Section(n) => diags.push(misplaced(n.span, "a nested section", &ctx)),
                    }
                }
                // Remember where the labelled section was, even if it is empty.
                if sec.labelled
                    && let Some(l) = &s.label
                {
                    set.map
                        .entry(format!("{prefix}__label"))
                        .or_insert(Entry { value: Value::Str(l.name.clone()), span: Some(l.span) });
                }
            }
            Stmt::Layer(l) if !allow_layers => {
                diags.push(misplaced(l.span, "a layer declaration", &format!("a `{kind}` block")))
            }
            Stmt::Layer(_) | Stmt::Error(_) => {}
        }
    }
    set
}

fn misplaced(span: Span, what: &str, ctx: &str) -> Diagnostic {
    Diagnostic::new(Code::MisplacedStatement, format!("{what} is not allowed in {ctx}"))
        .primary(span, "not allowed here")
        .note("layers are declared in `network` blocks as `name: op(args);`")
}

fn param(
    p: &ast::Param,
    specs: &'static [ParamSpec],
    prefix: &str,
    ctx: &str,
    set: &mut ParamSet,
    key_spans: &mut BTreeMap<String, Span>,
    diags: &mut Diagnostics,
) {
    let Some(spec) = specs.iter().find(|s| s.name == p.key.name) else {
        let d = Diagnostic::new(Code::UnknownParameter, format!("{ctx} has no parameter `{}`", p.key.name))
            .primary(p.key.span, "unknown parameter")
            .did_you_mean(&p.key.name, specs.iter().map(|s| s.name));
        let d = if d.fixes.is_empty() { d.maybe_help(belongs_elsewhere(&p.key.name)) } else { d };
        diags.push(d);
        return;
    };
    let key = format!("{prefix}{}", spec.name);
    if let Some(first) = key_spans.get(&key) {
        diags.push(
            Diagnostic::new(Code::DuplicateParameter, format!("`{key}` is set twice"))
                .primary(p.key.span, "set again here")
                .secondary(*first, "first set here")
                .help("remove one of them"),
        );
        return;
    }
    key_spans.insert(key.clone(), p.key.span);
    let what = format!("`{key}`");
    match (Typer { diags }).eval(&p.value, &spec.ty, &what) {
        Some(value) => {
            set.map.insert(key, Entry { value, span: Some(p.span) });
        }
        None => {
            set.rejected.insert(key);
        }
    }
}

/// Where a parameter unknown here does belong (`sigma_lsb` is a hardware noise setting), as a
/// help line; `None` when it belongs nowhere.
fn belongs_elsewhere(name: &str) -> Option<String> {
    for kind in crate::schema::Kind::ALL {
        let spec = crate::schema::block(kind);
        let place = if spec.params.iter().any(|p| p.name == name) {
            format!("`{} {{ {name} = ...; }}`", kind.keyword())
        } else if let Some(sec) = spec.sections.iter().find(|s| s.params.iter().any(|p| p.name == name)) {
            let label = if sec.labelled { " NAME" } else { "" };
            format!("`{} {{ {}{label} {{ {name} = ...; }} }}`", kind.keyword(), sec.name)
        } else {
            continue;
        };
        let sweep = if name == "sigma_lsb" { " (or `imcc train --sigma-lsb` for a sweep)" } else { "" };
        return Some(format!("`{name}` is set in {place}{sweep}"));
    }
    None
}

/// Fills the defaults of top-level and unlabelled-section parameters, and reports missing
/// required ones at `block_span`.
pub fn fill_defaults(
    set: &mut ParamSet,
    spec: &BlockSpec,
    block_name: &str,
    block_span: Span,
    diags: &mut Diagnostics,
) {
    let mut missing = Vec::new();
    let sections = spec.sections.iter().filter(|s| !s.labelled).map(|s| (format!("{}.", s.name), s.params));
    for (prefix, params) in std::iter::once((String::new(), spec.params)).chain(sections) {
        for ps in params {
            let key = format!("{prefix}{}", ps.name);
            if set.map.contains_key(&key) {
                continue;
            }
            match ps.presence {
                Presence::Default(_) => {
                    let value = default_value(ps)
                        .unwrap_or_else(|| panic!("schema bug: default of `{key}` does not type-check"));
                    set.map.insert(key, Entry { value, span: None });
                }
                // A rejected value was reported where it was written, not again as missing.
                Presence::Required if set.rejected.contains(&key) => {}
                Presence::Required => missing.push(ps),
                Presence::Optional => {}
            }
        }
    }
    for ps in missing {
        diags.push(
            Diagnostic::new(
                Code::MissingParameter,
                format!("`{} {block_name}` needs `{}`", spec.kind.keyword(), ps.name),
            )
            .primary(block_span, format!("`{}` is missing", ps.name))
            .help(format!("add `{} = ...;`: {}", ps.name, ps.doc)),
        );
    }
}
