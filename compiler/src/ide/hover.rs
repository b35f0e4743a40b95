//! Hover text (Markdown): a parameter's meaning, type, range, unit and default; a block's kind,
//! origin and comment; a layer's operation and inferred shapes; a constructor, layer operation
//! or unit; a diagnostic code's explanation.

use super::Analysis;
use super::context::{self, Frame, Role, SWEEP, SWEEP_TRAIN, Vocab};
use super::navigate::Symbol;
use crate::codes::Code;
use crate::program::{Layer, LayerOp};
use crate::schema::{self, Dim, Kind, ParamSpec, Presence, Ty};
use crate::span::{FileId, Span};
use std::fmt::Write;

/// Hover content for a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Hover {
    /// What the hover is about.
    pub span: Span,
    /// The text, in Markdown.
    pub markdown: String,
}

/// The hover at `offset` of `file`.
pub fn hover(a: &Analysis, file: FileId, offset: usize) -> Option<Hover> {
    let text = a.text(file);
    if let Some(h) = code_word(text, offset, file) {
        return Some(h);
    }
    let ctx = context::at(text, offset);
    let main = ctx.word.as_ref().and_then(|w| {
        let span = Span::new(file, w.range.clone());
        let md = about_word(a, file, &ctx, &w.text, w.range.start)?;
        Some(Hover { span, markdown: md })
    });
    // Diagnostics at the cursor: their codes' explanations.
    let diags: Vec<&crate::diagnostic::Diagnostic> = a
        .comp
        .diagnostics
        .iter()
        .filter(|d| d.span().is_some_and(|s| s.file == file && s.start as usize <= offset && offset <= s.end as usize))
        .collect();
    let mut codes: Vec<Code> = Vec::new();
    for d in &diags {
        if !codes.contains(&d.code) {
            codes.push(d.code);
        }
    }
    let explanations: Vec<String> = codes.into_iter().map(explain).collect();
    match (main, diags.first()) {
        (Some(mut h), _) => {
            for e in explanations {
                h.markdown.push_str("\n\n---\n\n");
                h.markdown.push_str(&e);
            }
            Some(h)
        }
        (None, Some(d)) => Some(Hover {
            span: d.span().unwrap_or(Span::new(file, offset..offset)),
            markdown: explanations.join("\n\n---\n\n"),
        }),
        (None, None) => None,
    }
}

/// A diagnostic code (`E0500`) written anywhere, comments included.
fn code_word(text: &str, offset: usize, file: FileId) -> Option<Hover> {
    let is_alnum = |c: char| c.is_ascii_alphanumeric();
    let start =
        text.get(..offset)?.char_indices().rev().find(|&(_, c)| !is_alnum(c)).map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[offset..].find(|c: char| !is_alnum(c)).map_or(text.len(), |i| offset + i);
    let code = Code::parse(&text[start..end])?;
    Some(Hover { span: Span::new(file, start..end), markdown: explain(code) })
}

fn explain(code: Code) -> String {
    format!("**{}**: {}\n\n{}", code.as_str(), code.title(), code.explanation().trim())
}

fn about_word(a: &Analysis, file: FileId, ctx: &context::Context, word: &str, start: usize) -> Option<String> {
    // A name the index knows (definitions, references, layers) hovers as what it names.
    if let Some((symbol, _)) = a.symbol_at(file, start) {
        return Some(about_symbol(a, &symbol, ctx));
    }
    match ctx.role {
        Role::Item => match Kind::from_keyword(word) {
            Some(k) => Some(about_kind(k)),
            None if word == SWEEP => Some(SWEEP_DOC.to_string()),
            None if word == "import" => Some(IMPORT_DOC.to_string()),
            None => None,
        },
        Role::AfterName if word == "extends" => Some(EXTENDS_DOC.to_string()),
        Role::Key(vocab) => match ctx.next.as_deref() {
            Some("{") => about_section(vocab, word),
            _ if matches!(vocab, Vocab::Sweep) && word == SWEEP_TRAIN.name => {
                Some(about_param(&SWEEP_TRAIN, "key of a `sweep`"))
            }
            _ => vocab.param(word).map(|p| about_param(p, &format!("parameter of `{}`", ctx.scope_path()))),
        },
        Role::LayerOp => schema::layer(word).map(|l| about_layer_op(l.op)),
        Role::Value(ty) => ty.and_then(|t| about_value(a, t, word)),
        Role::ArgName { args, positional } => match ctx.next.as_deref() {
            Some("=") => args.iter().find(|p| p.name == word).map(|p| about_param(p, "argument")),
            _ => positional.and_then(|t| about_value(a, t, word)),
        },
        Role::Unit(_) => about_unit(word),
        _ => None,
    }
}

fn about_kind(k: Kind) -> String {
    let spec = schema::block(k);
    let mut md = format!("**{}** block\n\n{}", k.keyword(), spec.doc);
    if !spec.sections.is_empty() {
        let names: Vec<String> = spec.sections.iter().map(|s| format!("`{}`", s.name)).collect();
        let _ = write!(md, "\n\nSections: {}.", names.join(", "));
    }
    md
}

const SWEEP_DOC: &str = "**sweep** block\n\nA grid of train runs: every statement is an axis (a parameter with a list of values, \
     `range(from, to, step = s)` for evenly spaced numbers); `train = [...]` names the train blocks, and the sections \
     `hardware`, `quant` and `mapping` set parameters of the blocks they name. `imcc sweep FILE` runs the grid.";
const IMPORT_DOC: &str = "**import** \"PATH\";\n\nMakes the definitions of another file visible. The path is relative to the importing file.";
const EXTENDS_DOC: &str = "**extends**\n\nThe block inherits every parameter and section of the named block of the same kind, and overrides what it writes.";

fn about_section(vocab: Vocab, name: &str) -> Option<String> {
    let s = vocab.sections().into_iter().find(|s| s.name == name)?;
    let label = if s.labelled { " LAYER" } else { "" };
    Some(format!("**{name}**{label} {{ … }} section\n\n{}", s.doc))
}

/// A parameter's meaning, type, range, unit and default; `what` says what it is
/// (`parameter of `hardware › noise``, `argument`).
pub fn about_param(p: &ParamSpec, what: &str) -> String {
    let mut md = format!("**{}** · {what}\n\n{}\n", p.name, p.doc);
    let _ = write!(md, "\n- type: {}", p.ty.describe());
    if let Some(bounds) = p.ty.bounds().filter(|b| !p.ty.describe().contains(b.as_str())) {
        let _ = write!(md, ", {bounds}");
    }
    if let Some(units) = units_of(&p.ty) {
        let _ = write!(md, "\n- units: {units}");
    }
    match p.presence {
        Presence::Required => md.push_str("\n- required"),
        Presence::Optional => md.push_str("\n- optional"),
        Presence::Default(d) => {
            let _ = write!(md, "\n- default: `{d}`");
        }
    }
    if let Ty::Ctor(ctors) = p.ty {
        md.push_str("\n\nOne of:");
        for c in ctors {
            let _ = write!(md, "\n- `{}` — {}", signature(c.name, c.args), c.doc);
        }
    }
    md
}

fn units_of(ty: &Ty) -> Option<String> {
    let dim = match ty {
        Ty::Int { dim, .. } | Ty::Real { dim, .. } => *dim,
        _ => return None,
    };
    if dim == Dim::None {
        return None;
    }
    let names: Vec<String> = schema::UNITS.iter().filter(|u| u.1 == dim).map(|u| format!("`{}`", u.0)).collect();
    let need = if dim.unit_required() { "required" } else { "optional" };
    Some(format!("{} ({need})", names.join(", ")))
}

/// `name(arg, arg = default, ...)`.
pub fn signature(name: &str, args: &[ParamSpec]) -> String {
    if args.is_empty() {
        return name.to_string();
    }
    let parts: Vec<String> = args.iter().map(arg_label).collect();
    format!("{name}({})", parts.join(", "))
}

/// One argument as a signature shows it: `lr = 0.05`, `alpha?` (optional), `every` (required).
pub fn arg_label(a: &ParamSpec) -> String {
    match a.presence {
        Presence::Default(d) => format!("{} = {d}", a.name),
        Presence::Optional => format!("{}?", a.name),
        Presence::Required => a.name.to_string(),
    }
}

fn about_layer_op(op: &str) -> String {
    let Some(spec) = schema::layer(op) else {
        return format!("`{op}`");
    };
    let mut md = format!("**{}** layer\n\n{}", signature(spec.op, spec.args), spec.doc);
    if spec.has_mvm {
        md.push_str("\n\nHas weights, hence the three training MVMs (forward, backward, weight gradient).");
    }
    for a in spec.args {
        let _ = write!(md, "\n- `{}`: {}", a.name, a.doc);
    }
    md
}

fn about_value(a: &Analysis, ty: Ty, word: &str) -> Option<String> {
    match ty {
        Ty::Ctor(ctors) => {
            let c = ctors.iter().find(|c| c.name == word)?;
            let mut md = format!("**{}**\n\n{}", signature(c.name, c.args), c.doc);
            for arg in c.args {
                let _ = write!(md, "\n- `{}`: {}", arg.name, arg.doc);
            }
            Some(md)
        }
        Ty::Sym(opts) if opts.contains(&word) => Some(format!("`{word}`: {}", ty.describe())),
        Ty::Ref(kind) => Some(about_block(a, Some(kind), word)),
        _ => None,
    }
}

fn about_unit(word: &str) -> Option<String> {
    let (name, dim, factor) = schema::UNITS.iter().find(|u| u.0 == word)?;
    let base = match dim {
        Dim::Energy => "J",
        Dim::Time => "s",
        Dim::Rate => "operations/s",
        Dim::Bandwidth => "bits/s",
        Dim::Bits => "bits",
        Dim::Lsb => "ADC LSBs",
        Dim::None => "",
    };
    Some(format!("**{name}**: {}; 1 {name} = {factor:e} {base}", dim.describe()))
}

fn about_symbol(a: &Analysis, symbol: &Symbol, ctx: &context::Context) -> String {
    match symbol {
        Symbol::Block { kind, name } => about_block(a, *kind, name),
        Symbol::Layer { network, name } => {
            let network = network.clone().or_else(|| match ctx.frames.first() {
                Some(Frame::Block { kind, .. }) if kind == "network" => ctx.block_name().map(str::to_string),
                _ => None,
            });
            about_layer(a, network.as_deref(), name)
        }
    }
}

fn about_block(a: &Analysis, kind: Option<Kind>, name: &str) -> String {
    let keyword = kind.map_or(SWEEP, Kind::keyword);
    let decl = a.occurrences.iter().find(|o| o.decl && o.symbol == Symbol::Block { kind, name: name.to_string() });
    let Some(decl) = decl else {
        return format!("**{keyword} {name}**\n\nNot defined in this file or its imports.");
    };
    let src = a.comp.sources.get(decl.span.file);
    let (line, _) = src.line_col(decl.span.start as usize);
    let mut md = format!("**{keyword} {name}**");
    let block =
        a.comp.syntax.iter().filter(|(f, _)| *f == decl.span.file).flat_map(|(_, f)| &f.items).find_map(|i| match i {
            crate::syntax::ast::Item::Block(b) if b.name.span == decl.span => Some(b),
            _ => None,
        });
    if let Some(base) = block.and_then(|b| b.extends.as_ref()) {
        let _ = write!(md, " extends `{}`", base.name);
    }
    let _ = write!(md, "\n\nDefined in `{}`, line {line}.", src.name);
    if let Some(b) = block
        && let Some(comment) = leading_comment(&src.text, b.span.start as usize)
    {
        let _ = write!(md, "\n\n{comment}");
    }
    if let (Some(Kind::Network), Some(p)) = (kind, &a.comp.program)
        && let Some(net) = p.networks.iter().find(|n| n.name == name)
    {
        let weights: usize = net.layers.iter().map(|l| weight_count(&l.op)).sum();
        let mvm = net.layers.iter().filter(|l| l.op.has_mvm()).count();
        let _ = write!(
            md,
            "\n\nInput `{:?}`, {} layers ({mvm} with weights, {} parameters).",
            net.input,
            net.layers.len(),
            thousands(weights)
        );
    }
    md
}

/// The `//` comment lines right above byte `start` (a block's doc comment).
fn leading_comment(text: &str, start: usize) -> Option<String> {
    let before = &text[..start];
    let mut lines: Vec<&str> = Vec::new();
    for line in before.lines().rev().skip(usize::from(!before.ends_with('\n'))) {
        match line.trim().strip_prefix("//") {
            Some(c) => lines.push(c.strip_prefix(' ').unwrap_or(c)),
            None => break,
        }
    }
    lines.reverse();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn about_layer(a: &Analysis, network: Option<&str>, name: &str) -> String {
    let decls: Vec<_> = a
        .occurrences
        .iter()
        .filter(|o| {
            o.decl && o.symbol.matches(&Symbol::Layer { network: network.map(str::to_string), name: name.to_string() })
        })
        .collect();
    let mut md = String::new();
    for d in &decls {
        let Symbol::Layer { network: Some(net), .. } = &d.symbol else { continue };
        let op = d.op.as_deref().unwrap_or("?");
        if !md.is_empty() {
            md.push_str("\n\n---\n\n");
        }
        let _ = write!(md, "**layer {name}**: `{op}` in network `{net}`");
        let checked = a.comp.program.as_ref().and_then(|p| p.networks.iter().find(|n| &n.name == net));
        match checked.and_then(|n| n.layers.iter().find(|l| l.name == name)) {
            Some(l) => md.push_str(&shapes(l)),
            None => md.push_str("\n\nShapes are inferred once the file checks without errors."),
        }
        if let Some(spec) = schema::layer(op) {
            let _ = write!(md, "\n\n{}", spec.doc);
        }
    }
    if md.is_empty() {
        md = format!("**layer {name}**\n\nNo network here declares a layer `{name}`.");
    }
    md
}

fn shapes(l: &Layer) -> String {
    let mut md = format!("\n\nInput `{:?}` → output `{:?}`", l.in_shape, l.out_shape);
    let w = weight_count(&l.op);
    match &l.op {
        LayerOp::Dense { inputs, outputs, .. } => {
            let _ = write!(
                md,
                "; {} parameters. MVMs: forward {inputs}→{outputs}, backward {outputs}→{inputs}, weight gradient {inputs}×{outputs}.",
                thousands(w)
            );
        }
        LayerOp::Conv2d { in_channels, out_channels, kernel, stride, padding, .. } => {
            let _ = write!(
                md,
                "; {kernel}×{kernel} kernel, stride {stride}, padding {padding}; {} parameters. MVMs per output pixel: {}→{out_channels}.",
                thousands(w),
                in_channels * kernel * kernel
            );
        }
        _ => md.push('.'),
    }
    md
}

fn weight_count(op: &LayerOp) -> usize {
    match op {
        LayerOp::Dense { inputs, outputs, bias } => inputs * outputs + if *bias { *outputs } else { 0 },
        LayerOp::Conv2d { in_channels, out_channels, kernel, bias, .. } => {
            in_channels * out_channels * kernel * kernel + if *bias { *out_channels } else { 0 }
        }
        _ => 0,
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
