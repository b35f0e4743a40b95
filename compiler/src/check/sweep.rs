//! Sweeps: a `sweep` block is a grid of train runs, checked point by point as train blocks.
//!
//! ```text
//! sweep noise {
//!     train = [full, two_level];                   // the train blocks (required)
//!     seed = [1, 2, 3];                            // any train-block parameter
//!     hardware { noise { sigma_lsb = [0, 0.02, 0.05, range(0.1, 0.5, step = 0.2)]; } }
//! }
//! ```
//!
//! Every statement is an *axis*: a parameter with a list of values (a plain value is an axis
//! of one) in which `range(from, to, step = s)` (inclusive) stands for its numbers, inside the sections `hardware`,
//! `quant` and `mapping` for parameters of the blocks the train block names. The grid is the
//! product of the axes in the order written, the first varying slowest.
//!
//! Each point becomes ordinary syntax: `train SWEEP[i] extends T { params }`, plus, where it
//! sets parameters of a named block, `KIND SWEEP[i] extends B { sections }`, whose statements
//! carry the spans of the sweep's own keys and values. The checker then checks them as it
//! checks any block, so a point that breaks a rule gets that rule's diagnostic at the value
//! that broke it, and [`attribute`] names the point in a note.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::diagnostic::Diagnostics;
use crate::span::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Expr, ExprKind, Ident, Stmt};
use std::collections::BTreeSet;

/// The keyword of sweep blocks.
pub const KEYWORD: &str = "sweep";

/// The most points a grid may have (a typo in a range should not start a million runs).
pub const MAX_POINTS: usize = 100_000;

/// The sections whose parameters a sweep sets: the blocks a train block names.
const SECTIONS: [&str; 3] = ["hardware", "quant", "mapping"];

/// One axis: a parameter path and its values.
#[derive(Debug, Clone)]
struct Axis {
    /// `["seed"]`, `["train"]`, `["hardware", "noise", "sigma_lsb"]`: the keys as written.
    path: Vec<Ident>,
    /// The values, as syntax (a range's values are numbers spanning the `range(...)` call).
    values: Vec<Expr>,
}

impl Axis {
    fn key(&self) -> String {
        self.path.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(".")
    }
}

/// A parsed `sweep` block.
#[derive(Debug, Clone)]
pub(crate) struct SweepDef {
    name: Ident,
    span: Span,
    axes: Vec<Axis>,
}

/// One point of a sweep: its synthesized blocks and what it sets.
#[derive(Debug, Clone)]
pub(crate) struct PointDef {
    /// Which sweep (index into the definitions).
    pub sweep: usize,
    /// Its index in the grid.
    pub index: usize,
    /// The synthesized train block's name.
    pub train: String,
    /// `(axis key, value as written)` for every axis.
    pub values: Vec<(String, String)>,
    blocks: Vec<ast::Block>,
}

/// A sweep's definition as the program reports it: name and axis keys.
#[derive(Debug, Clone)]
pub(crate) struct SweepHead {
    pub name: String,
    pub axes: Vec<String>,
}

/// The sweep blocks of `files`, removed from them and parsed into definitions (only the root
/// file's run; an imported file's sweeps are dropped, as its train blocks are not run).
pub(crate) fn extract(
    files: &[(FileId, ast::File)],
    root: FileId,
    diags: &mut Diagnostics,
) -> (Vec<(FileId, ast::File)>, Vec<SweepDef>) {
    let mut defs: Vec<SweepDef> = Vec::new();
    let mut out = Vec::with_capacity(files.len());
    for (file, ast) in files {
        let mut kept = ast::File::default();
        for item in &ast.items {
            match item {
                ast::Item::Block(b) if b.kind.name == KEYWORD => {
                    if *file != root {
                        continue;
                    }
                    if let Some(prev) = defs.iter().find(|d| d.name.name == b.name.name) {
                        diags.push(
                            Diagnostic::new(
                                Code::DuplicateDefinition,
                                format!("`sweep {}` is defined twice", b.name.name),
                            )
                            .primary(b.name.span, "defined again here")
                            .secondary(prev.name.span, "first defined here")
                            .help("rename one of them"),
                        );
                        continue;
                    }
                    if let Some(def) = parse(b, diags) {
                        defs.push(def);
                    }
                }
                other => kept.items.push(other.clone()),
            }
        }
        out.push((*file, kept));
    }
    (out, defs)
}

fn parse(b: &ast::Block, diags: &mut Diagnostics) -> Option<SweepDef> {
    let before = diags.error_count();
    if let Some(ext) = &b.extends {
        diags.push(
            Diagnostic::new(Code::SweepExtends, "a `sweep` cannot extend another definition")
                .primary(ext.span, "not supported for sweeps")
                .help("sweep several train blocks with `train = [a, b];` instead"),
        );
    }
    let mut axes = Vec::new();
    collect_axes(&b.body, &[], &mut axes, diags);
    let mut seen: Vec<(String, Span)> = Vec::new();
    for a in &axes {
        let key = a.key();
        let span = a.path.last().map_or(b.span, |i| i.span);
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            diags.push(
                Diagnostic::new(Code::SweepAxisTwice, format!("`{key}` is swept twice"))
                    .primary(span, "swept again here")
                    .secondary(*first, "first swept here")
                    .help("put every value of one parameter in one list"),
            );
        } else {
            seen.push((key, span));
        }
    }
    if !axes.iter().any(|a| a.path.len() == 1 && a.path[0].name == "train") {
        diags.push(
            Diagnostic::new(Code::SweepWithoutTrain, format!("`sweep {}` names no train block", b.name.name))
                .primary(b.name.span, "which train blocks does it run?")
                .help("add `train = [NAME, ...];`: each point extends one of them"),
        );
    }
    let points = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()));
    if points.is_none_or(|n| n > MAX_POINTS) {
        let sizes: Vec<String> = axes.iter().map(|a| format!("{} ({})", a.key(), a.values.len())).collect();
        diags.push(
            Diagnostic::new(Code::SweepTooLarge, format!("`sweep {}` has too many points", b.name.name))
                .primary(b.name.span, format!("more than {MAX_POINTS} points"))
                .note(format!("the grid is the product of its axes: {}", sizes.join(" x ")))
                .help("split it into several sweeps, or use fewer values"),
        );
    }
    (diags.error_count() == before).then(|| SweepDef { name: b.name.clone(), span: b.span, axes })
}

fn collect_axes(body: &[Stmt], prefix: &[Ident], axes: &mut Vec<Axis>, diags: &mut Diagnostics) {
    for stmt in body {
        match stmt {
            Stmt::Param(p) => {
                let mut path = prefix.to_vec();
                path.push(p.key.clone());
                if let Some(values) = values_of(&p.value, diags) {
                    axes.push(Axis { path, values });
                }
            }
            Stmt::Section(s)
                if s.label.is_none() && (!prefix.is_empty() || SECTIONS.contains(&s.kind.name.as_str())) =>
            {
                let mut path = prefix.to_vec();
                path.push(s.kind.clone());
                collect_axes(&s.body, &path, axes, diags);
            }
            Stmt::Section(s) => {
                let what = if s.label.is_some() {
                    "a labelled section".to_string()
                } else {
                    format!("a `{}` section", s.kind.name)
                };
                diags.push(
                    Diagnostic::new(Code::SweepNotAnAxis, format!("{what} is not an axis of a sweep"))
                        .primary(s.kind.span, "not sweepable")
                        .note("a sweep sets parameters of the train block (`seed = [1, 2];`) and, in `hardware`, `quant` and `mapping` sections, of the blocks it names")
                        .help("to sweep per-layer settings, write one `mapping` or `quant` block per variant and sweep `mapping = [a, b];`"),
                );
            }
            Stmt::Layer(l) => diags.push(
                Diagnostic::new(Code::SweepNotAnAxis, "a layer is not an axis of a sweep")
                    .primary(l.name.span, "layers belong in a `network` block")
                    .help("write one network per variant and sweep `network = [a, b];`"),
            ),
            Stmt::Error(_) => {} // reported by the parser
        }
    }
}

/// An axis's values: a list's elements, a range's numbers, or the value itself.
fn values_of(e: &Expr, diags: &mut Diagnostics) -> Option<Vec<Expr>> {
    let one = |e: &Expr, diags: &mut Diagnostics| match &e.kind {
        ExprKind::Call { callee, args } if callee.name == "range" => range(e.span, args, diags),
        _ => Some(vec![e.clone()]),
    };
    let values = match &e.kind {
        // A list's elements, ranges among them spliced in.
        ExprKind::List(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(one(item, diags)?);
            }
            out
        }
        _ => one(e, diags)?,
    };
    if values.is_empty() {
        diags.push(
            Diagnostic::new(Code::SweepEmptyAxis, "an axis without values")
                .primary(e.span, "no values: the grid would have no points")
                .help("give at least one value, or remove the line"),
        );
        return None;
    }
    Some(values)
}

/// `range(from, to, step = s)`: `from, from + s, ...` up to `to` inclusive.
fn range(span: Span, args: &[ast::Arg], diags: &mut Diagnostics) -> Option<Vec<Expr>> {
    let bad = |diags: &mut Diagnostics, at: Span, why: &str| {
        diags.push(
            Diagnostic::new(Code::SweepBadRange, format!("bad range: {why}"))
                .primary(at, why.to_string())
                .help("write `range(FROM, TO, step = STEP)` with numbers, FROM <= TO and STEP > 0 (TO included)"),
        );
        None
    };
    let mut pos = Vec::new();
    let mut step = None;
    for a in args {
        let ExprKind::Number(n) = &a.value.kind else {
            return bad(diags, a.value.span, "not a number");
        };
        match &a.name {
            None => pos.push((n.clone(), a.value.span)),
            Some(k) if k.name == "step" => step = Some((n.clone(), a.value.span)),
            Some(k) => return bad(diags, k.span, "`range` takes `from`, `to` and `step`"),
        }
    }
    if pos.len() == 3 && step.is_none() {
        step = pos.pop();
    }
    let (Ok([(from, from_span), (to, _)]), Some((st, st_span))) = (<[_; 2]>::try_from(pos), step) else {
        return bad(diags, span, "`range` takes `from`, `to` and `step`");
    };
    if from.unit.is_some() || to.unit.is_some() || st.unit.is_some() {
        return bad(diags, span, "units go on the parameter's values, not inside `range`");
    }
    if !(st.value > 0.0 && st.value.is_finite()) {
        return bad(diags, st_span, "the step must be positive");
    }
    if to.value < from.value {
        return bad(diags, from_span, "`from` is above `to`");
    }
    let count = ((to.value - from.value) / st.value + 1e-9).floor() + 1.0;
    if count > MAX_POINTS as f64 {
        return bad(diags, st_span, "more values than a sweep may have");
    }
    let integer = from.is_integer && st.is_integer;
    Some(
        (0..count as usize)
            .map(|i| {
                // Rounded to 12 significant digits: 0.1 + 2·0.1 is 0.3, not 0.30000000000000004.
                let v = from.value + i as f64 * st.value;
                let v = if v == 0.0 { 0.0 } else { format!("{v:.11e}").parse().unwrap_or(v) };
                Expr { kind: ExprKind::Number(ast::Number { value: v, is_integer: integer, unit: None }), span }
            })
            .collect(),
    )
}

/// The points of every sweep, in order: sweep by sweep, each grid with its first axis slowest.
pub(crate) fn points(defs: &[SweepDef], files: &[(FileId, ast::File)], sources: &SourceMap) -> Vec<PointDef> {
    let mut out = Vec::new();
    for (s, def) in defs.iter().enumerate() {
        let total: usize = def.axes.iter().map(|a| a.values.len()).product();
        for index in 0..total {
            // Mixed radix, the last axis fastest.
            let mut rest = index;
            let mut pick = vec![0; def.axes.len()];
            for (k, a) in def.axes.iter().enumerate().rev() {
                pick[k] = rest % a.values.len();
                rest /= a.values.len();
            }
            out.push(point(s, def, index, &pick, files, sources));
        }
    }
    out
}

fn point(
    sweep: usize,
    def: &SweepDef,
    index: usize,
    pick: &[usize],
    files: &[(FileId, ast::File)],
    sources: &SourceMap,
) -> PointDef {
    let name = format!("{}[{index}]", def.name.name);
    let ident = |n: &str, span: Span| Ident { name: n.to_string(), span };
    let mut values = Vec::new();
    let mut base: Option<Ident> = None;
    let mut train_body: Vec<Stmt> = Vec::new();
    let mut sections: Vec<(usize, Vec<Stmt>, Span)> = Vec::new(); // (SECTIONS index, body, first span)
    for (a, &k) in def.axes.iter().zip(pick) {
        let v = &a.values[k];
        values.push((a.key(), shown(v, sources)));
        match a.path.as_slice() {
            [t] if t.name == "train" => {
                base = Some(match &v.kind {
                    ExprKind::Name(n) => n.clone(),
                    // Not a name: an extends that cannot resolve, reported at the value.
                    _ => ident(&shown(v, sources), v.span),
                });
            }
            [key] => train_body.push(Stmt::Param(ast::Param { key: key.clone(), value: v.clone(), span: v.span })),
            [section, rest @ ..] => {
                let i = SECTIONS.iter().position(|s| *s == section.name).expect("checked section");
                let at = match sections.iter().position(|(j, _, _)| *j == i) {
                    Some(at) => at,
                    None => {
                        sections.push((i, Vec::new(), v.span));
                        sections.len() - 1
                    }
                };
                insert(&mut sections[at].1, rest, v);
            }
            [] => unreachable!("an axis has a key"),
        }
    }
    let base = base.unwrap_or_else(|| ident("", def.name.span));
    let mut blocks = Vec::new();
    for (i, body, span) in sections {
        let kind = SECTIONS[i];
        // The block this point's train names: set by the point itself, or inherited.
        let named = train_body
            .iter()
            .find_map(|s| match s {
                Stmt::Param(p) if p.key.name == kind => match &p.value.kind {
                    ExprKind::Name(n) => Some(n.clone()),
                    _ => None,
                },
                _ => None,
            })
            .or_else(|| inherited_ref(files, &base.name, kind));
        blocks.push(ast::Block {
            kind: ident(kind, span),
            name: ident(&name, def.name.span),
            extends: named,
            body,
            span: def.span,
        });
        train_body.retain(|s| !matches!(s, Stmt::Param(p) if p.key.name == kind));
        train_body.push(Stmt::Param(ast::Param {
            key: ident(kind, span),
            value: Expr { kind: ExprKind::Name(ident(&name, span)), span },
            span,
        }));
    }
    blocks.push(ast::Block {
        kind: ident("train", def.name.span),
        name: ident(&name, def.name.span),
        extends: Some(base),
        body: train_body,
        span: def.span,
    });
    PointDef { sweep, index, train: name, values, blocks }
}

/// Puts `key.path = v` into a block body, in nested sections.
fn insert(body: &mut Vec<Stmt>, path: &[Ident], v: &Expr) {
    match path {
        [key] => body.push(Stmt::Param(ast::Param { key: key.clone(), value: v.clone(), span: v.span })),
        [section, rest @ ..] => {
            let at = body.iter().position(|s| matches!(s, Stmt::Section(x) if x.kind.name == section.name));
            let at = at.unwrap_or_else(|| {
                body.push(Stmt::Section(ast::Section {
                    kind: section.clone(),
                    label: None,
                    body: Vec::new(),
                    span: section.span,
                }));
                body.len() - 1
            });
            if let Stmt::Section(s) = &mut body[at] {
                insert(&mut s.body, rest, v);
            }
        }
        [] => {}
    }
}

/// The `kind` block that train block `train` names, through its `extends` chain (syntax only;
/// the checker reports whatever does not resolve).
fn inherited_ref(files: &[(FileId, ast::File)], train: &str, kind: &str) -> Option<Ident> {
    let find = |name: &str| {
        files.iter().flat_map(|(_, f)| &f.items).find_map(|i| match i {
            ast::Item::Block(b) if b.kind.name == "train" && b.name.name == name => Some(b),
            _ => None,
        })
    };
    let mut seen = BTreeSet::new();
    let mut cur = find(train);
    while let Some(b) = cur {
        if !seen.insert(b.name.name.clone()) {
            return None; // a cycle, reported by the checker
        }
        let set = b.body.iter().find_map(|s| match s {
            Stmt::Param(p) if p.key.name == kind => Some(&p.value),
            _ => None,
        });
        if let Some(v) = set {
            return match &v.kind {
                ExprKind::Name(n) => Some(n.clone()),
                _ => None,
            };
        }
        cur = b.extends.as_ref().and_then(|e| find(&e.name));
    }
    None
}

/// A value as the user wrote it (a range's numbers as numbers).
fn shown(e: &Expr, sources: &SourceMap) -> String {
    match &e.kind {
        ExprKind::Number(n)
            if sources.get(e.span.file).text.get(e.span.range()).is_some_and(|t| t.starts_with("range")) =>
        {
            format!("{}", n.value)
        }
        _ => sources.get(e.span.file).text.get(e.span.range()).unwrap_or("?").trim().to_string(),
    }
}

/// `files` with the blocks of `points` appended to the root file.
pub(crate) fn with_points(
    files: &[(FileId, ast::File)],
    root: FileId,
    points: &[&PointDef],
) -> Vec<(FileId, ast::File)> {
    let mut out = files.to_vec();
    if let Some((_, f)) = out.iter_mut().find(|(id, _)| *id == root) {
        for p in points {
            f.items.extend(p.blocks.iter().cloned().map(ast::Item::Block));
        }
    }
    out
}

/// The sweeps' names and axis keys.
pub(crate) fn heads(defs: &[SweepDef]) -> Vec<SweepHead> {
    defs.iter().map(|d| SweepHead { name: d.name.name.clone(), axes: d.axes.iter().map(Axis::key).collect() }).collect()
}

/// The note naming a point: `point 7 of sweep `noise`: train = full, seed = 2`.
pub(crate) fn describe(p: &PointDef, heads: &[SweepHead]) -> String {
    let set: Vec<String> = p.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("at point {} of sweep `{}`: {}", p.index, heads[p.sweep].name, set.join(", "))
}

/// Keeps the first of diagnostics with the same code, message and primary span (the points of
/// a sweep repeat the diagnostics of what they share).
pub(crate) fn dedup(list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = BTreeSet::new();
    list.into_iter().filter(|d| seen.insert(identity(d))).collect()
}

/// What makes two diagnostics the same report: code, primary span, and the message with point
/// names (`noise[12]`) made alike.
pub(crate) fn identity(d: &Diagnostic) -> (Code, Option<Span>, String) {
    let mut msg = String::with_capacity(d.message.len());
    let mut rest = d.message.as_str();
    while let Some(at) = rest.find('[') {
        let (head, tail) = rest.split_at(at + 1);
        msg.push_str(head);
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && tail[digits..].starts_with(']') {
            msg.push('*');
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    msg.push_str(rest);
    (d.code, d.labels.iter().find(|l| l.primary).map(|l| l.span), msg)
}

#[cfg(test)]
mod tests {
    use crate::loader::MemLoader;
    use std::path::Path;

    const BASE: &str = "network mlp { input = [64]; fc1: dense(10); loss: softmax_cross_entropy; }\n\
                        train run { network = mlp; data = digits; }\n";

    fn compile(sweep: &str) -> crate::Compilation {
        let src = format!("{BASE}{sweep}\n");
        crate::compile(Path::new("s.imc"), "s.imc", &src, &MemLoader::default())
    }

    #[test]
    fn the_grid_varies_the_last_axis_fastest_and_ranges_give_round_numbers() {
        let c = compile(
            "sweep s { train = [run]; seed = [1, 2]; hardware { noise { sigma_lsb = range(0.1, 0.5, step = 0.2); } } }",
        );
        let p = c.program.expect("checks");
        let s = &p.sweeps[0];
        assert_eq!(s.axes, ["train", "seed", "hardware.noise.sigma_lsb"]);
        let values: Vec<Vec<&str>> = s.points.iter().map(|p| p.values.iter().map(String::as_str).collect()).collect();
        assert_eq!(values[0], ["run", "1", "0.1"]);
        assert_eq!(values[1], ["run", "1", "0.3"]);
        assert_eq!(values[5], ["run", "2", "0.5"]);
        assert_eq!(s.points[4].run.seed, 2);
        assert_eq!(s.points[4].run.hardware.noise.sigma_lsb, 0.3);
        assert!(p.trains.iter().all(|t| !t.name.contains('[')), "points are not train blocks");
    }

    #[test]
    fn every_malformed_range_is_an_error_not_a_dropped_axis() {
        for bad in ["range(1)", "range(1, 2, 3, 4)", "range(1, 2)", "range(a, 2, step = 1)", "range(3, 2, step = 1)"] {
            let c = compile(&format!("sweep s {{ train = [run]; seed = {bad}; }}"));
            assert!(c.program.is_none(), "{bad} was accepted");
            assert!(c.diagnostics.iter().any(|d| d.code == crate::codes::Code::SweepBadRange), "{bad}");
        }
    }
}
