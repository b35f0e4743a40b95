//! What the cursor is on: the enclosing blocks and sections, and the role of the word at the
//! cursor (a block kind, a parameter key, a constructor argument, a unit, ...).
//!
//! The classifier reads tokens, not the syntax tree, so that it works on the half-written,
//! unparsable text an editor holds while its user types: it tracks braces to know the scope and
//! reads the current statement's tokens to know the position within it.

use crate::schema::{self, BlockSpec, CtorSpec, Dim, Kind, LayerSpec, ParamSpec, SectionSpec, Ty};
use crate::syntax::lexer::{Token, lex};
use std::ops::Range;

/// The keyword of sweep blocks.
pub const SWEEP: &str = crate::check::SWEEP_KEYWORD;

/// The `train` key of a sweep block (its other keys are train-block parameters).
pub const SWEEP_TRAIN: ParamSpec = ParamSpec {
    name: "train",
    ty: Ty::Ref(Kind::Train),
    presence: schema::Presence::Required,
    doc: "The train blocks the sweep runs: each grid point extends one of them.",
};

/// The arguments of `range(from, to, step = s)` in a sweep.
pub const RANGE_ARGS: &[ParamSpec] = &[
    ParamSpec {
        name: "from",
        ty: Ty::Real { min: -1e300, min_open: false, max: 1e300, dim: Dim::None },
        presence: schema::Presence::Required,
        doc: "First value.",
    },
    ParamSpec {
        name: "to",
        ty: Ty::Real { min: -1e300, min_open: false, max: 1e300, dim: Dim::None },
        presence: schema::Presence::Required,
        doc: "Last value (included when the steps reach it).",
    },
    ParamSpec {
        name: "step",
        ty: Ty::Real { min: 0.0, min_open: true, max: 1e300, dim: Dim::None },
        presence: schema::Presence::Required,
        doc: "Distance between values.",
    },
];

/// What the names in one brace scope may be.
#[derive(Debug, Clone, Copy)]
pub enum Vocab {
    /// The body of a top-level block.
    Block(&'static BlockSpec),
    /// A section of a block.
    Section(&'static SectionSpec),
    /// The body of a sweep: `train`, train-block parameters and the `hardware`, `quant` and
    /// `mapping` sections (whose bodies are those blocks' vocabularies).
    Sweep,
    /// Nothing known (an unknown kind or section).
    Unknown,
}

/// A section name a scope accepts, with its documentation.
#[derive(Debug, Clone, Copy)]
pub struct SectionName {
    /// The keyword.
    pub name: &'static str,
    /// Whether it takes a label (a layer name).
    pub labelled: bool,
    /// What it is for.
    pub doc: &'static str,
}

impl Vocab {
    /// The vocabulary of a top-level block of kind `keyword`.
    pub fn of_block(keyword: &str) -> Vocab {
        match Kind::from_keyword(keyword) {
            Some(k) => Vocab::Block(schema::block(k)),
            None if keyword == SWEEP => Vocab::Sweep,
            None => Vocab::Unknown,
        }
    }

    /// The parameters written in this scope.
    pub fn params(self) -> Vec<&'static ParamSpec> {
        match self {
            Vocab::Block(b) => b.params.iter().collect(),
            Vocab::Section(s) => s.params.iter().collect(),
            Vocab::Sweep => std::iter::once(&SWEEP_TRAIN).chain(schema::TRAIN.params.iter()).collect(),
            Vocab::Unknown => Vec::new(),
        }
    }

    /// The parameter `key` of this scope.
    pub fn param(self, key: &str) -> Option<&'static ParamSpec> {
        self.params().into_iter().find(|p| p.name == key)
    }

    /// The sections this scope accepts.
    pub fn sections(self) -> Vec<SectionName> {
        match self {
            Vocab::Block(b) => {
                b.sections.iter().map(|s| SectionName { name: s.name, labelled: s.labelled, doc: s.doc }).collect()
            }
            Vocab::Sweep => [Kind::Hardware, Kind::Quant, Kind::Mapping]
                .into_iter()
                .map(|k| SectionName { name: k.keyword(), labelled: false, doc: sweep_section_doc(k) })
                .collect(),
            Vocab::Section(_) | Vocab::Unknown => Vec::new(),
        }
    }

    /// The vocabulary inside section `name` of this scope.
    pub fn section(self, name: &str) -> Vocab {
        match self {
            Vocab::Block(b) => b.sections.iter().find(|s| s.name == name).map_or(Vocab::Unknown, Vocab::Section),
            Vocab::Sweep => match Kind::from_keyword(name) {
                Some(k @ (Kind::Hardware | Kind::Quant | Kind::Mapping)) => Vocab::Block(schema::block(k)),
                _ => Vocab::Unknown,
            },
            Vocab::Section(_) | Vocab::Unknown => Vocab::Unknown,
        }
    }

    /// Whether layers are declared here (a network body).
    pub fn has_layers(self) -> bool {
        matches!(self, Vocab::Block(b) if b.kind == Kind::Network)
    }
}

fn sweep_section_doc(kind: Kind) -> &'static str {
    match kind {
        Kind::Hardware => "Sweep parameters of the `hardware` block each train block names.",
        Kind::Quant => "Sweep parameters of the `quant` block each train block names.",
        _ => "Sweep parameters of the `mapping` block each train block names.",
    }
}

/// An enclosing `{ ... }`.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A top-level block `KIND NAME [extends BASE] {`.
    Block {
        /// Its kind keyword as written.
        kind: String,
        /// Its name.
        name: String,
    },
    /// A section `NAME [LABEL] {`.
    Section {
        /// Its keyword.
        name: String,
        /// Its label, if any.
        label: Option<String>,
    },
}

/// The role of the word at the cursor (or of the word about to be typed there).
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// The start of a top-level item: a block kind, `import` or `sweep`.
    Item,
    /// The name a block defines (`None` for a sweep).
    BlockName(Option<Kind>),
    /// After a block's name: `extends` or `{` may follow.
    AfterName,
    /// After `extends`: a block of this kind.
    Extends(Kind),
    /// The string of an `import`.
    ImportPath,
    /// The start of a statement in a scope: a parameter key, a section name or a layer name.
    Key(Vocab),
    /// The label of a labelled section: a layer name.
    SectionLabel,
    /// A layer's operation.
    LayerOp,
    /// After `from`: a layer of the enclosing network.
    LayerFrom,
    /// A value of this type (`None`: unknown).
    Value(Option<Ty>),
    /// The start of a constructor's or layer's argument: an argument name, or a positional
    /// value of type `positional`.
    ArgName {
        /// The callee's arguments.
        args: &'static [ParamSpec],
        /// The type of the positional argument at this place.
        positional: Option<Ty>,
    },
    /// A unit after a number of this dimension.
    Unit(Dim),
    /// Nowhere known.
    Other,
}

/// A word (identifier, keyword or string) with its byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// Its text (a string's text without quotes).
    pub text: String,
    /// Its byte range in the file.
    pub range: Range<usize>,
}

/// Everything known about a cursor position.
#[derive(Debug, Clone)]
pub struct Context {
    /// The enclosing blocks and sections, outermost first.
    pub frames: Vec<Frame>,
    /// The vocabulary of the innermost scope.
    pub vocab: Vocab,
    /// The role of the word at the cursor.
    pub role: Role,
    /// The word at (or ending at) the cursor.
    pub word: Option<Word>,
    /// The text of the token after the word (`:`, `=`, `{`, `(`), if any.
    pub next: Option<String>,
    /// The innermost constructor or layer call the cursor is in, if any.
    pub call: Option<Call>,
}

/// A call being written: `sgd(lr = 0.1, |`.
#[derive(Debug, Clone)]
pub struct Call {
    /// The constructor or layer operation.
    pub name: String,
    /// What it means.
    pub doc: &'static str,
    /// Its arguments.
    pub args: &'static [ParamSpec],
    /// The argument being written: the named one, else the positional one (`None` past the
    /// last).
    pub active: Option<usize>,
}

impl Context {
    /// The name of the enclosing top-level block.
    pub fn block_name(&self) -> Option<&str> {
        match self.frames.first() {
            Some(Frame::Block { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// Where the scope is, for hover text: `hardware › noise`.
    pub fn scope_path(&self) -> String {
        let names: Vec<&str> = self
            .frames
            .iter()
            .map(|f| match f {
                Frame::Block { kind, .. } => kind.as_str(),
                Frame::Section { name, .. } => name.as_str(),
            })
            .collect();
        names.join(" › ")
    }
}

fn is_word(t: &Token<'_>) -> bool {
    matches!(
        t,
        Token::Ident(_)
            | Token::Import
            | Token::Extends
            | Token::From
            | Token::Bool(_)
            | Token::Times
            | Token::Str(_)
            | Token::UnterminatedStr
    )
}

fn word_text(src: &str, t: &Token<'_>, range: &Range<usize>) -> String {
    match t {
        Token::Str(s) => s.to_string(),
        Token::UnterminatedStr => src[range.clone()].trim_start_matches('"').to_string(),
        _ => src[range.clone()].to_string(),
    }
}

/// Classifies byte `offset` of `src`.
pub fn at(src: &str, offset: usize) -> Context {
    let tokens: Vec<(Token<'_>, Range<usize>)> =
        lex(src).into_iter().filter(|(t, _)| !matches!(t, Token::Error)).collect();
    // The word: one containing the cursor, else one ending at it (a prefix being typed).
    let containing = tokens.iter().position(|(t, r)| is_word(t) && r.start <= offset && offset < r.end);
    let ending = || tokens.iter().position(|(t, r)| is_word(t) && r.end == offset);
    let word_at = containing.or_else(ending);
    let cut = word_at.unwrap_or_else(|| tokens.partition_point(|(_, r)| r.end <= offset));
    let word = word_at.map(|i| Word { text: word_text(src, &tokens[i].0, &tokens[i].1), range: tokens[i].1.clone() });
    let next = tokens.get(if word_at.is_some() { cut + 1 } else { cut }).map(|(_, r)| src[r.clone()].to_string());

    let mut frames: Vec<Frame> = Vec::new();
    let mut stmt: Vec<&Token<'_>> = Vec::new();
    for (t, _) in &tokens[..cut] {
        match t {
            Token::LBrace => {
                frames.push(frame_of(&stmt, frames.is_empty()));
                stmt.clear();
            }
            Token::RBrace => {
                frames.pop();
                stmt.clear();
            }
            Token::Semi => stmt.clear(),
            t => stmt.push(t),
        }
    }
    let vocab = vocab_of(&frames);
    let mut call = None;
    let role = if frames.is_empty() { top_role(&stmt) } else { body_role(&stmt, vocab, &mut call) };
    Context { frames, vocab, role, word, next, call }
}

fn ident<'a>(t: Option<&&Token<'a>>) -> Option<&'a str> {
    match t {
        Some(Token::Ident(s)) => Some(s),
        _ => None,
    }
}

fn frame_of(stmt: &[&Token<'_>], top: bool) -> Frame {
    let first = ident(stmt.first()).unwrap_or_default().to_string();
    let second = ident(stmt.get(1)).map(str::to_string);
    if top {
        Frame::Block { kind: first, name: second.unwrap_or_default() }
    } else {
        Frame::Section { name: first, label: second }
    }
}

fn vocab_of(frames: &[Frame]) -> Vocab {
    let mut vocab = Vocab::Unknown;
    for f in frames {
        vocab = match f {
            Frame::Block { kind, .. } => Vocab::of_block(kind),
            Frame::Section { name, .. } => vocab.section(name),
        };
    }
    vocab
}

fn top_role(stmt: &[&Token<'_>]) -> Role {
    match stmt {
        [] => Role::Item,
        [Token::Import, ..] => Role::ImportPath,
        [Token::Ident(kind)] => Role::BlockName(Kind::from_keyword(kind)),
        [Token::Ident(_), Token::Ident(_)] => Role::AfterName,
        [Token::Ident(kind), Token::Ident(_), Token::Extends] => {
            Kind::from_keyword(kind).map_or(Role::Other, Role::Extends)
        }
        _ => Role::Other,
    }
}

fn body_role(stmt: &[&Token<'_>], vocab: Vocab, call: &mut Option<Call>) -> Role {
    match stmt {
        [] => Role::Key(vocab),
        [Token::Ident(_)] => Role::SectionLabel,
        [Token::Ident(_), Token::Colon, rest @ ..] if vocab.has_layers() => layer_role(rest, call),
        [Token::Ident(key), Token::Eq, rest @ ..] => {
            let ty = vocab.param(key).map(|p| p.ty);
            value_role(rest, ty, None, call)
        }
        _ => Role::Other,
    }
}

/// The role in a layer declaration after `name :`.
fn layer_role(rest: &[&Token<'_>], call: &mut Option<Call>) -> Role {
    if rest.iter().any(|t| matches!(t, Token::From)) {
        return Role::LayerFrom;
    }
    match rest {
        [] => Role::LayerOp,
        [Token::Ident(op), tail @ ..] => match schema::layer(op) {
            Some(spec) if !tail.is_empty() => value_role(rest, None, Some(spec), call),
            _ => Role::Other,
        },
        _ => Role::Other,
    }
}

/// One open bracket of a value.
enum Open {
    /// `callee(`: the call (when the callee is known) and the positional index.
    Args(Option<Call>, usize),
    /// `[`: elements of the type the list was expected to hold.
    List(Option<Ty>),
}

/// The role at the end of value tokens `rest`, which should be of type `ty` (or, for a layer's
/// arguments, the layer `layer`); `call` receives the innermost call the end is in.
fn value_role(rest: &[&Token<'_>], ty: Option<Ty>, layer: Option<&'static LayerSpec>, call: &mut Option<Call>) -> Role {
    let mut stack: Vec<Open> = Vec::new();
    let mut expected = ty;
    let mut callee: Option<Call> = None;
    let mut prev: Option<&Token<'_>> = None;
    for (i, t) in rest.iter().enumerate() {
        match t {
            Token::Ident(name) if matches!(rest.get(i + 1), Some(Token::LParen)) => {
                let found = match (stack.is_empty(), layer) {
                    (true, Some(spec)) => Some((spec.doc, spec.args)),
                    _ => ctor_of(expected, name)
                        .map(|c| (c.doc, c.args))
                        .or((*name == "range").then_some(("Evenly spaced numbers, `to` included.", RANGE_ARGS))),
                };
                callee = found.map(|(doc, args)| Call { name: name.to_string(), doc, args, active: Some(0) });
            }
            Token::Ident(name) if matches!(rest.get(i + 1), Some(Token::Eq)) => {
                if let Some(Open::Args(Some(c), _)) = stack.last_mut() {
                    let at = c.args.iter().position(|a| a.name == *name);
                    expected = at.map(|k| c.args[k].ty);
                    c.active = at;
                }
            }
            Token::LParen => {
                let c = callee.take();
                expected = c.as_ref().and_then(|c| c.args.first()).map(|a| a.ty);
                stack.push(Open::Args(c, 0));
            }
            Token::LBracket => stack.push(Open::List(expected)),
            Token::Comma => match stack.last_mut() {
                Some(Open::Args(c, pos)) => {
                    *pos += 1;
                    let at = *pos;
                    expected = c.as_ref().and_then(|c| c.args.get(at)).map(|a| a.ty);
                    if let Some(c) = c {
                        c.active = (at < c.args.len()).then_some(at);
                    }
                }
                Some(Open::List(elem)) => expected = *elem,
                None => {}
            },
            Token::RParen | Token::RBracket => {
                stack.pop();
                expected = None;
            }
            _ => {}
        }
        prev = Some(t);
    }
    *call = stack
        .iter()
        .rev()
        .find_map(|o| match o {
            Open::Args(c, _) => Some(c.clone()),
            Open::List(_) => None,
        })
        .flatten();
    match (prev, stack.last()) {
        (Some(Token::Num(_)), _) => Role::Unit(dim_of(expected)),
        (Some(Token::LParen | Token::Comma), Some(Open::Args(Some(c), _))) => {
            Role::ArgName { args: c.args, positional: expected }
        }
        _ => Role::Value(expected),
    }
}

fn ctor_of(ty: Option<Ty>, name: &str) -> Option<&'static CtorSpec> {
    match ty {
        Some(Ty::Ctor(ctors)) => ctors.iter().find(|c| c.name == name),
        _ => None,
    }
}

fn dim_of(ty: Option<Ty>) -> Dim {
    match ty {
        Some(Ty::Int { dim, .. } | Ty::Real { dim, .. }) => dim,
        _ => Dim::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The context at the `|` in `src` (the bar removed).
    fn ctx(src: &str) -> Context {
        let at_bar = src.find('|').expect("a cursor");
        at(&src.replace('|', ""), at_bar)
    }

    #[test]
    fn top_level_positions() {
        assert!(matches!(ctx("|").role, Role::Item));
        assert!(matches!(ctx("hard|").role, Role::Item));
        assert!(matches!(ctx("hardware |").role, Role::BlockName(Some(Kind::Hardware))));
        assert!(matches!(ctx("train a extends |").role, Role::Extends(Kind::Train)));
        assert!(matches!(ctx("import \"hw/a|.imc\";").role, Role::ImportPath));
        assert_eq!(ctx("import \"hw/a|.imc\";").word.unwrap().text, "hw/a.imc");
        let typing = ctx("import \"hw/|\nnetwork n {}");
        assert!(matches!(typing.role, Role::ImportPath));
        assert_eq!(typing.word.unwrap().range, 7..11, "an unterminated string is the word being typed");
    }

    #[test]
    fn keys_sections_and_values() {
        let c = ctx("hardware h { adc { bi|ts = 8; } }");
        assert!(matches!(c.role, Role::Key(Vocab::Section(s)) if s.name == "adc"));
        assert_eq!(c.word.as_ref().unwrap().text, "bits");
        assert_eq!(c.next.as_deref(), Some("="));
        assert_eq!(c.scope_path(), "hardware › adc");
        let c = ctx("mapping m { forward = |");
        assert!(matches!(c.role, Role::Value(Some(Ty::Ctor(_)))));
        let c = ctx("train t { optimizer = sgd(lr = 0.1, |");
        assert!(matches!(c.role, Role::ArgName { args, .. } if args.iter().any(|a| a.name == "momentum")));
        let c = ctx("train t { optimizer = sgd(nesterov = |");
        assert!(matches!(c.role, Role::Value(Some(Ty::Bool))));
        let c = ctx("hardware h { energy { adc_conversion = 1.5 p| } }");
        assert!(matches!(c.role, Role::Unit(Dim::Energy)));
        let c = ctx("train t { network = n|; }");
        assert!(matches!(c.role, Role::Value(Some(Ty::Ref(Kind::Network)))));
    }

    #[test]
    fn layers_and_sweeps() {
        assert!(matches!(ctx("network n { fc1: |").role, Role::LayerOp));
        assert!(matches!(ctx("network n { a: add from fc1, |").role, Role::LayerFrom));
        let c = ctx("network n { c: conv2d(8, kernel = 3, |");
        assert!(matches!(c.role, Role::ArgName { args, .. } if args.iter().any(|a| a.name == "stride")));
        let call = c.call.expect("in a call");
        assert_eq!((call.name.as_str(), call.active), ("conv2d", Some(2)), "the third argument");
        let named = ctx("train t { optimizer = sgd(lr = 0.1, weight_decay = 0.|").call.expect("in a call");
        assert_eq!(named.args[named.active.unwrap()].name, "weight_decay");
        assert!(ctx("train t { optimizer = sgd(lr = 0.1); seed = |").call.is_none(), "closed");
        assert!(matches!(ctx("quant q { layer |").role, Role::SectionLabel));
        let c = ctx("sweep s { hardware { noise { sigma_lsb = [0, 1]; | } } }");
        assert!(matches!(c.role, Role::Key(Vocab::Section(s)) if s.name == "noise"));
        assert!(matches!(ctx("sweep s { train = [a, |").role, Role::Value(Some(Ty::Ref(Kind::Train)))));
    }

    #[test]
    fn unparsable_text_still_has_a_context() {
        let c = ctx("hardware h { adc { bits = ; = = } noise { |");
        assert!(matches!(c.role, Role::Key(Vocab::Section(s)) if s.name == "noise"));
    }
}
