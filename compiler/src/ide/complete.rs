//! Completion: what may be written at the cursor, from the schema (block kinds, sections,
//! parameters, constructors and their arguments, units, layer operations) and from the index
//! (block names of the kind a parameter refers to, layer names).

use super::Analysis;
use super::context::{self, Frame, Role, SWEEP, Vocab};
use super::hover::{about_param, signature};
use super::navigate::Symbol;
use crate::schema::{self, Dim, Kind, Ty};
use crate::span::FileId;
use std::collections::BTreeSet;
use std::ops::Range;

/// What a completion inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    /// A keyword (`hardware`, `import`, `extends`).
    Keyword,
    /// The name of a definition of this kind (`None`: a sweep).
    Definition(Option<Kind>),
    /// A section name.
    Section,
    /// A parameter or argument name.
    Param,
    /// A constructor (`int4_sawb`, `sgd`, `digits`).
    Constructor,
    /// A fixed value (`true`, `even`, `full`).
    Value,
    /// A unit.
    Unit,
    /// A layer name.
    Layer,
    /// A layer operation.
    Operation,
    /// A file to import.
    File,
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// What the list shows (and what the editor filters on).
    pub label: String,
    /// What it is.
    pub kind: CompletionKind,
    /// One line beside the label (a type, a signature).
    pub detail: Option<String>,
    /// Documentation (Markdown).
    pub doc: Option<String>,
    /// The text inserted in place of [`Completions::range`].
    pub insert: String,
}

/// The completions at a position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completions {
    /// The byte range a completion replaces: the word being typed (empty at a fresh position).
    pub range: Range<usize>,
    /// The candidates, in the order to show them.
    pub items: Vec<Completion>,
    /// The cursor is in an `import`'s path: the caller, which may read the file system (the
    /// compiler does not), offers files; [`Completions::range`] is then the whole string.
    pub import_path: bool,
}

fn item(label: &str, kind: CompletionKind, detail: Option<String>, doc: Option<String>) -> Completion {
    Completion { label: label.to_string(), kind, detail, doc, insert: label.to_string() }
}

/// The completions at `offset` of `file`.
pub fn complete(a: &Analysis, file: FileId, offset: usize) -> Completions {
    let text = a.text(file);
    let ctx = context::at(text, offset);
    // Only a word ending at the cursor is being typed; a word after it is left alone.
    let range = match &ctx.word {
        Some(w) if w.range.start <= offset => w.range.start..offset.min(w.range.end).max(w.range.start),
        _ => offset..offset,
    };
    let items = match ctx.role {
        Role::Item => top_level(),
        Role::AfterName => vec![item("extends", CompletionKind::Keyword, None, None)],
        Role::Extends(kind) => definitions(a, Some(kind)),
        Role::Key(vocab) => keys(vocab),
        Role::SectionLabel => layers(a, None),
        Role::LayerOp => schema::LAYERS
            .iter()
            .map(|l| item(l.op, CompletionKind::Operation, Some(signature(l.op, l.args)), Some(l.doc.to_string())))
            .collect(),
        Role::LayerFrom => {
            let net = match ctx.frames.first() {
                Some(Frame::Block { name, .. }) => Some(name.clone()),
                None => None,
                Some(Frame::Section { .. }) => None,
            };
            layers(a, net)
        }
        Role::Value(ty) => ty.map(|t| values(a, t)).unwrap_or_default(),
        Role::ArgName { args, positional } => {
            let mut out: Vec<Completion> = args
                .iter()
                .map(|p| Completion {
                    insert: format!("{} = ", p.name),
                    ..item(p.name, CompletionKind::Param, Some(p.ty.describe()), Some(about_param(p, "argument")))
                })
                .collect();
            out.extend(positional.map(|t| values(a, t)).unwrap_or_default());
            out
        }
        Role::Unit(dim) => units(dim),
        Role::ImportPath => {
            let range = ctx.word.as_ref().map_or(offset..offset, |w| w.range.clone());
            return Completions { range, items: Vec::new(), import_path: true };
        }
        Role::BlockName(_) | Role::Other => Vec::new(),
    };
    Completions { range, items, import_path: false }
}

fn top_level() -> Vec<Completion> {
    let mut out: Vec<Completion> = Kind::ALL
        .iter()
        .map(|k| item(k.keyword(), CompletionKind::Keyword, Some("block".into()), Some(schema::block(*k).doc.into())))
        .collect();
    out.push(item(SWEEP, CompletionKind::Keyword, Some("block".into()), Some("A grid of train runs.".into())));
    out.push(Completion {
        insert: "import \"\";".into(),
        ..item("import", CompletionKind::Keyword, None, Some("Make another file's definitions visible.".into()))
    });
    out
}

fn keys(vocab: Vocab) -> Vec<Completion> {
    let mut out: Vec<Completion> = vocab
        .params()
        .into_iter()
        .map(|p| Completion {
            insert: format!("{} = ", p.name),
            ..item(p.name, CompletionKind::Param, Some(p.ty.describe()), Some(about_param(p, "parameter")))
        })
        .collect();
    for s in vocab.sections() {
        let insert = if s.labelled { format!("{} ", s.name) } else { format!("{} {{", s.name) };
        out.push(Completion { insert, ..item(s.name, CompletionKind::Section, None, Some(s.doc.to_string())) });
    }
    out
}

fn values(a: &Analysis, ty: Ty) -> Vec<Completion> {
    match ty {
        Ty::Bool => ["true", "false"].iter().map(|v| item(v, CompletionKind::Value, None, None)).collect(),
        Ty::Sym(opts) => opts.iter().map(|v| item(v, CompletionKind::Value, None, None)).collect(),
        Ty::Gains => vec![item("full", CompletionKind::Value, Some("every gain".into()), None)],
        Ty::Ref(kind) => definitions(a, Some(kind)),
        Ty::Ctor(ctors) => ctors
            .iter()
            .map(|c| {
                item(c.name, CompletionKind::Constructor, Some(signature(c.name, c.args)), Some(c.doc.to_string()))
            })
            .collect(),
        Ty::Int { .. } | Ty::Real { .. } | Ty::Str | Ty::Dims | Ty::Shape | Ty::RealList => Vec::new(),
    }
}

fn units(dim: Dim) -> Vec<Completion> {
    schema::UNITS
        .iter()
        .filter(|u| u.1 == dim && dim != Dim::None)
        .map(|u| item(u.0, CompletionKind::Unit, Some(dim.describe().to_string()), None))
        .collect()
}

fn definitions(a: &Analysis, kind: Option<Kind>) -> Vec<Completion> {
    let names: BTreeSet<&str> = a
        .occurrences
        .iter()
        .filter(|o| o.decl)
        .filter_map(|o| match &o.symbol {
            Symbol::Block { kind: k, name } if *k == kind => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let what = kind.map_or(SWEEP, Kind::keyword);
    names.into_iter().map(|n| item(n, CompletionKind::Definition(kind), Some(what.to_string()), None)).collect()
}

fn layers(a: &Analysis, network: Option<String>) -> Vec<Completion> {
    let mut seen = BTreeSet::new();
    a.occurrences
        .iter()
        .filter(|o| o.decl)
        .filter_map(|o| match &o.symbol {
            Symbol::Layer { network: Some(net), name } if network.as_ref().is_none_or(|n| n == net) => {
                seen.insert(name.clone()).then(|| {
                    item(
                        name,
                        CompletionKind::Layer,
                        Some(format!("{} in {net}", o.op.as_deref().unwrap_or("layer"))),
                        None,
                    )
                })
            }
            _ => None,
        })
        .collect()
}
