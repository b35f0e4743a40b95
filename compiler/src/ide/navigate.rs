//! Names and where they occur: every definition, `extends`, reference by parameter value, layer
//! declaration, `from` input and section label of a compilation's files, from the syntax trees
//! (so a file with errors is indexed as far as it parsed). Go to definition, find references
//! and the document outline read this index.

use super::context::{SWEEP, SWEEP_TRAIN, Vocab};
use crate::schema::{Kind, Ty};
use crate::span::{FileId, Span};
use crate::syntax::ast::{self, Expr, ExprKind, Stmt};

/// What a name refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symbol {
    /// A top-level definition; `kind` is `None` for a sweep.
    Block {
        /// Its kind.
        kind: Option<Kind>,
        /// Its name.
        name: String,
    },
    /// A layer. `network` is `None` where the network is not written: a `layer NAME { ... }`
    /// section of a quant or mapping policy names a layer of whichever network a train block
    /// pairs it with.
    Layer {
        /// Its network.
        network: Option<String>,
        /// Its name.
        name: String,
    },
}

impl Symbol {
    /// Whether two occurrences name the same thing (an unknown network matches any).
    pub fn matches(&self, other: &Symbol) -> bool {
        match (self, other) {
            (Symbol::Layer { network: a, name: n }, Symbol::Layer { network: b, name: m }) => {
                n == m && (a.is_none() || b.is_none() || a == b)
            }
            _ => self == other,
        }
    }
}

/// One occurrence of a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// What it names.
    pub symbol: Symbol,
    /// Where.
    pub span: Span,
    /// Whether this is the definition (not a use).
    pub decl: bool,
    /// For a layer's declaration, its operation.
    pub op: Option<String>,
}

/// Every occurrence of a name in `syntax`.
pub fn index(syntax: &[(FileId, ast::File)]) -> Vec<Occurrence> {
    let mut out = Vec::new();
    for (_, file) in syntax {
        for item in &file.items {
            if let ast::Item::Block(b) = item {
                block(b, &mut out);
            }
        }
    }
    out
}

fn block(b: &ast::Block, out: &mut Vec<Occurrence>) {
    let kind = Kind::from_keyword(&b.kind.name);
    if kind.is_none() && b.kind.name != SWEEP {
        return;
    }
    let me = |name: &str| Symbol::Block { kind, name: name.to_string() };
    out.push(Occurrence { symbol: me(&b.name.name), span: b.name.span, decl: true, op: None });
    if let Some(base) = &b.extends {
        out.push(Occurrence { symbol: me(&base.name), span: base.span, decl: false, op: None });
    }
    let network = (kind == Some(Kind::Network)).then(|| b.name.name.clone());
    body(&b.body, Vocab::of_block(&b.kind.name), network.as_deref(), out);
}

fn body(stmts: &[Stmt], vocab: Vocab, network: Option<&str>, out: &mut Vec<Occurrence>) {
    for s in stmts {
        match s {
            Stmt::Param(p) => {
                let spec = if matches!(vocab, Vocab::Sweep) && p.key.name == SWEEP_TRAIN.name {
                    Some(&SWEEP_TRAIN)
                } else {
                    vocab.param(&p.key.name)
                };
                if let Some(Ty::Ref(kind)) = spec.map(|s| s.ty) {
                    names(&p.value, &mut |id| {
                        out.push(Occurrence {
                            symbol: Symbol::Block { kind: Some(kind), name: id.name.clone() },
                            span: id.span,
                            decl: false,
                            op: None,
                        })
                    });
                }
            }
            Stmt::Layer(l) => {
                let layer = |name: &str| Symbol::Layer { network: network.map(str::to_string), name: name.to_string() };
                out.push(Occurrence {
                    symbol: layer(&l.name.name),
                    span: l.name.span,
                    decl: true,
                    op: Some(l.op.name.clone()),
                });
                for f in &l.from {
                    out.push(Occurrence { symbol: layer(&f.name), span: f.span, decl: false, op: None });
                }
            }
            Stmt::Section(sec) => {
                let inner = vocab.section(&sec.kind.name);
                let labels_layer = vocab.sections().iter().any(|s| s.name == sec.kind.name && s.labelled);
                if let (Some(label), true) = (&sec.label, labels_layer) {
                    out.push(Occurrence {
                        symbol: Symbol::Layer { network: None, name: label.name.clone() },
                        span: label.span,
                        decl: false,
                        op: None,
                    });
                }
                body(&sec.body, inner, network, out);
            }
            Stmt::Error(_) => {}
        }
    }
}

/// Every bare name in `e` (a list's elements included).
fn names<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a ast::Ident)) {
    match &e.kind {
        ExprKind::Name(id) => f(id),
        ExprKind::List(items) => items.iter().for_each(|i| names(i, f)),
        _ => {}
    }
}

/// What an outline entry is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutlineKind {
    /// A top-level definition (`None`: a sweep).
    Definition(Option<Kind>),
    /// An `import`.
    Import,
    /// A section.
    Section,
    /// A layer.
    Layer,
    /// A parameter.
    Param,
}

/// One entry of a file's outline.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlineItem {
    /// Its name.
    pub name: String,
    /// A short description (a layer's operation, a parameter's value).
    pub detail: Option<String>,
    /// What it is.
    pub kind: OutlineKind,
    /// The whole entry.
    pub span: Span,
    /// The part to select (its name).
    pub selection: Span,
    /// What it contains.
    pub children: Vec<OutlineItem>,
}

/// The outline of one file: blocks with their sections, layers and parameters.
pub fn outline(file: &ast::File, text: &str) -> Vec<OutlineItem> {
    file.items
        .iter()
        .map(|item| match item {
            ast::Item::Import(imp) => OutlineItem {
                name: imp.path.clone(),
                detail: Some("import".into()),
                kind: OutlineKind::Import,
                span: imp.span,
                selection: imp.path_span,
                children: Vec::new(),
            },
            ast::Item::Block(b) => OutlineItem {
                name: b.name.name.clone(),
                detail: Some(match &b.extends {
                    Some(base) => format!("{} extends {}", b.kind.name, base.name),
                    None => b.kind.name.clone(),
                }),
                kind: OutlineKind::Definition(Kind::from_keyword(&b.kind.name)),
                span: b.span,
                selection: b.name.span,
                children: outline_body(&b.body, text),
            },
        })
        .collect()
}

fn outline_body(stmts: &[Stmt], text: &str) -> Vec<OutlineItem> {
    let snippet = |s: Span| {
        let t = text.get(s.range()).unwrap_or("");
        let one_line: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 60 {
            format!("{}…", one_line.chars().take(59).collect::<String>())
        } else {
            one_line
        }
    };
    stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Param(p) => Some(OutlineItem {
                name: p.key.name.clone(),
                detail: Some(snippet(p.value.span)),
                kind: OutlineKind::Param,
                span: p.span,
                selection: p.key.span,
                children: Vec::new(),
            }),
            Stmt::Layer(l) => Some(OutlineItem {
                name: l.name.name.clone(),
                detail: Some(
                    snippet(Span { end: l.span.end, ..l.op.span }).trim_end_matches(';').trim_end().to_string(),
                ),
                kind: OutlineKind::Layer,
                span: l.span,
                selection: l.name.span,
                children: Vec::new(),
            }),
            Stmt::Section(sec) => Some(OutlineItem {
                name: match &sec.label {
                    Some(l) => format!("{} {}", sec.kind.name, l.name),
                    None => sec.kind.name.clone(),
                },
                detail: None,
                kind: OutlineKind::Section,
                span: sec.span,
                selection: sec.label.as_ref().map_or(sec.kind.span, |l| sec.kind.span.to(l.span)),
                children: outline_body(&sec.body, text),
            }),
            Stmt::Error(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax;

    #[test]
    fn indexes_definitions_references_and_layers() {
        let src = "network n { input = [4]; a: dense(2); b: relu from a; }\n\
                   quant q { layer a { weights = f32; } }\n\
                   train t { network = n; quant = q; data = digits; }\n\
                   train u extends t { }\n\
                   sweep s { train = [t, u]; }";
        let (file, diags) = syntax::parse(FileId(0), src);
        assert!(diags.is_empty(), "{diags:?}");
        let occ = index(&[(FileId(0), file)]);
        let text = |o: &Occurrence| &src[o.span.range()];
        let t = Symbol::Block { kind: Some(Kind::Train), name: "t".into() };
        let uses: Vec<&str> = occ.iter().filter(|o| o.symbol == t).map(text).collect();
        assert_eq!(uses, ["t", "t", "t"], "the definition, the extends and the sweep's list");
        let a = Symbol::Layer { network: Some("n".into()), name: "a".into() };
        let layer_uses: Vec<bool> = occ.iter().filter(|o| o.symbol.matches(&a)).map(|o| o.decl).collect();
        assert_eq!(layer_uses, [true, false, false], "declaration, `from`, quant section label");
        assert!(occ.iter().any(|o| o.symbol == Symbol::Block { kind: None, name: "s".into() } && o.decl));
    }

    #[test]
    fn outlines_blocks_sections_and_layers() {
        let src = "hardware h { adc { bits = 8; } }\nnetwork n { input = [4]; a: dense(2); }";
        let (file, _) = syntax::parse(FileId(0), src);
        let o = outline(&file, src);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].children[0].name, "adc");
        assert_eq!(o[0].children[0].children[0].detail.as_deref(), Some("8"));
        assert_eq!(o[1].children[1].kind, OutlineKind::Layer);
        assert_eq!(o[1].children[1].detail.as_deref(), Some("dense(2)"));
    }
}
