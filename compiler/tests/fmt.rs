//! The formatter (`imcc fmt`): the examples are in the canonical layout, and on the examples and
//! on random mutations of them formatting is idempotent and never changes meaning: the same
//! tokens in the same order, the same diagnostics, the same lowered IR.

#[path = "common/examples.rs"]
mod examples;
#[path = "common/mutate.rs"]
mod mutate;

use examples::{CHIP, EXAMPLES};
use imcc_compiler::fmt::format;
use imcc_compiler::loader::MemLoader;
use imcc_compiler::span::FileId;
use imcc_compiler::syntax::lexer::lex;
use imcc_compiler::{compile, lower};
use mutate::Edit;
use proptest::prelude::*;
use std::path::Path;

/// Whitespace, comments and tokens that move the layout around.
const FRAGMENTS: &[&str] = &[
    " ",
    "\n",
    "\n\n\n",
    "\t",
    "// a comment\n",
    " // trailing",
    "{",
    "}",
    ";",
    ",",
    "(",
    ")",
    "[",
    "]",
    "=",
    "-",
    "x",
    "layer fc1 { }",
    "seed = 3;",
    "1.5 pJ",
    "// }\n",
    "\"s\"",
    "relu",
];

/// Everything meaning depends on: the tokens, the diagnostics, and every lowered step.
fn meaning(src: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let tokens = lex(src).into_iter().map(|(t, _)| format!("{t:?}")).collect();
    let loader = MemLoader::default().with("hw/cimu16.imc", CHIP).with("../hw/cimu16.imc", CHIP);
    let comp = compile(Path::new("main.imc"), "main.imc", src, &loader);
    let diags = comp.diagnostics.iter().map(|d| format!("{} {}", d.code.as_str(), d.message)).collect();
    let steps = comp
        .program
        .as_ref()
        .map(|p| {
            p.trains
                .iter()
                .map(|r| match lower::lower(p, r, None) {
                    Ok(s) => format!("{s:?}"),
                    Err(e) => format!("{e:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    (tokens, diags, steps)
}

fn holds(src: &str) {
    let Ok(once) = format(FileId(0), src) else { return };
    let twice = format(FileId(0), &once).expect("formatted text parses");
    assert_eq!(twice, once, "not idempotent on:\n{src}");
    let (a, b) = (meaning(src), meaning(&once));
    assert_eq!(a.0, b.0, "tokens changed");
    // Diagnostics may point elsewhere but say the same; steps carry no positions.
    assert_eq!(a.1.len(), b.1.len());
    assert_eq!(a.2, b.2, "lowered IR changed");
}

#[test]
fn the_examples_are_formatted_and_keep_their_meaning() {
    for src in EXAMPLES {
        assert_eq!(format(FileId(0), src).expect("parses"), src, "an example is not formatted: run `imcc fmt`");
        holds(src);
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(a, f)| Edit::Insert(a, f)),
        1 => (any::<usize>(), 1usize..12).prop_map(|(a, n)| Edit::Delete(a, n)),
    ]
}

fn apply(src: &str, edits: &[Edit]) -> String {
    mutate::apply(src, edits, FRAGMENTS)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn formatting_mutated_examples_is_idempotent_and_keeps_meaning(
        which in 0..4usize,
        edits in proptest::collection::vec(edit(), 1..8),
    ) {
        holds(&apply(EXAMPLES[which], &edits));
    }
}
