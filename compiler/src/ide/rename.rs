//! Renaming a block or a layer: every occurrence the index knows, refused when the new name is
//! not an identifier, is taken by a definition of the same kind, or when a layer name is
//! declared by several networks (a policy's `layer NAME { }` section could mean any of them).

use super::Analysis;
use super::navigate::Symbol;
use crate::span::{FileId, Span};
use crate::syntax::lexer::{Token, lex};
use std::collections::BTreeSet;

/// The name at `offset` if it can be renamed: its span.
pub fn prepare(a: &Analysis, file: FileId, offset: usize) -> Result<Span, String> {
    let (symbol, span) = a.symbol_at(file, offset).ok_or("no block or layer name here")?;
    resolve(a, &symbol)?;
    Ok(span)
}

/// The spans to replace by `new_name` to rename the name at `offset` of `file`.
pub fn rename(a: &Analysis, file: FileId, offset: usize, new_name: &str) -> Result<Vec<Span>, String> {
    let (symbol, _) = a.symbol_at(file, offset).ok_or("no block or layer name here")?;
    let symbol = resolve(a, &symbol)?;
    if !is_identifier(new_name) {
        return Err(format!("`{new_name}` is not a name (letters, digits and `_`, not a keyword)"));
    }
    let taken = match &symbol {
        Symbol::Block { kind, .. } => Symbol::Block { kind: *kind, name: new_name.to_string() },
        Symbol::Layer { network, .. } => Symbol::Layer { network: network.clone(), name: new_name.to_string() },
    };
    if a.occurrences.iter().any(|o| o.decl && o.symbol.matches(&taken)) {
        return Err(format!("`{new_name}` is already defined there"));
    }
    let mut spans: Vec<Span> = a.occurrences_of(&symbol).map(|o| o.span).collect();
    spans.sort();
    spans.dedup();
    Ok(spans)
}

/// A symbol with its network made definite for a layer named by a policy's section.
fn resolve(a: &Analysis, symbol: &Symbol) -> Result<Symbol, String> {
    let Symbol::Layer { name, .. } = symbol else {
        return Ok(symbol.clone());
    };
    let networks: BTreeSet<&str> = a
        .occurrences
        .iter()
        .filter(|o| o.decl)
        .filter_map(|o| match &o.symbol {
            Symbol::Layer { network: Some(n), name: m } if m == name => Some(n.as_str()),
            _ => None,
        })
        .collect();
    match networks.len() {
        0 => Err(format!("no network declares a layer `{name}`")),
        1 => Ok(Symbol::Layer { network: networks.first().map(|n| n.to_string()), name: name.clone() }),
        _ => Err(format!(
            "layer `{name}` is declared in several networks ({}): a policy's `layer {name}` section could mean any of them",
            networks.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Whether `s` lexes as exactly one identifier (keywords and `x` do not).
fn is_identifier(s: &str) -> bool {
    matches!(lex(s).as_slice(), [(Token::Ident(_), r)] if r.len() == s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MemLoader;
    use std::path::Path;

    fn analysis(src: &str) -> Analysis {
        Analysis::new(crate::compile(Path::new("/m.imc"), "m.imc", src, &MemLoader::default()))
    }

    const SRC: &str = "network n { input = [4]; a: dense(2); b: relu from a; }\n\
                       quant q { layer a { weights = f32; } }\n\
                       train t { network = n; quant = q; data = digits; }\n\
                       train u extends t { seed = 2; }";

    #[test]
    fn renames_every_use_of_a_block_and_a_layer() {
        let a = analysis(SRC);
        let at = |needle: &str| SRC.find(needle).unwrap();
        let spans = rename(&a, FileId(0), at("t {"), "base").unwrap();
        assert_eq!(spans.len(), 2, "the definition and the extends");
        let spans = rename(&a, FileId(0), at("a: dense"), "fc").unwrap();
        let texts: Vec<&str> = spans.iter().map(|s| &SRC[s.range()]).collect();
        assert_eq!(texts, ["a", "a", "a"], "declaration, `from`, the quant section");
    }

    #[test]
    fn refuses_bad_names_taken_names_and_ambiguous_layers() {
        let a = analysis(SRC);
        let t = SRC.find("t {").unwrap();
        assert!(rename(&a, FileId(0), t, "2x").unwrap_err().contains("not a name"));
        assert!(rename(&a, FileId(0), t, "from").unwrap_err().contains("not a name"));
        assert!(rename(&a, FileId(0), t, "u").unwrap_err().contains("already defined"));
        let two = format!("{SRC}\nnetwork m {{ input = [4]; a: dense(2); }}");
        let a = analysis(&two);
        let label = two.find("layer a").unwrap() + 6;
        assert!(prepare(&a, FileId(0), label).unwrap_err().contains("several networks"));
        assert!(prepare(&a, FileId(0), two.find("weights").unwrap()).is_err(), "not a name");
    }
}
