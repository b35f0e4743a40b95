//! Editor features at every position of every example (and of mutated examples): hover,
//! completion, definition, references, renaming, inlay hints and the outline answer without
//! panicking, and what they point at lies inside the files.

#[path = "common/examples.rs"]
mod examples;
#[path = "common/mutate.rs"]
mod mutate;

use examples::{CHIP, EXAMPLES};
use imcc_compiler::ide::{Analysis, hints, rename};
use imcc_compiler::loader::MemLoader;
use imcc_compiler::span::{FileId, Span};
use mutate::Edit;
use proptest::prelude::*;
use std::path::Path;

const FRAGMENTS: &[&str] =
    &["{", "}", ";", "=", "(", ")", "[", "]", ",", "\"", "·", "x", "E0500", " ", "\n", "layer ", "from "];

fn analysis(src: &str) -> Analysis {
    let loader = MemLoader::default().with("/p/hw/cimu16.imc", CHIP).with("/p/digits_mlp.imc", EXAMPLES[0]);
    Analysis::new(imcc_compiler::compile(Path::new("/p/main.imc"), "main.imc", src, &loader))
}

fn inside(a: &Analysis, s: Span) {
    let text = a.text(s.file);
    assert!(s.start <= s.end && s.end as usize <= text.len(), "span {s:?} outside its file");
}

/// Every query at every `step`-th character boundary of the root file.
fn everywhere(src: &str, step: usize) {
    let a = analysis(src);
    let root = FileId(0);
    let offsets: Vec<usize> = (0..=src.len()).filter(|&i| src.is_char_boundary(i)).step_by(step).collect();
    for at in offsets {
        if let Some(h) = a.hover(root, at) {
            inside(&a, h.span);
            assert!(!h.markdown.is_empty());
        }
        let c = a.complete(root, at);
        assert!(c.range.start <= at && c.range.end <= src.len(), "completion range {:?} at {at}", c.range);
        for s in a.definitions(root, at).into_iter().chain(a.references(root, at, true)) {
            inside(&a, s);
        }
        if let Ok(s) = rename::prepare(&a, root, at) {
            inside(&a, s);
            for s in rename::rename(&a, root, at, "renamed").unwrap_or_default() {
                inside(&a, s);
            }
        }
    }
    for h in hints::shapes(&a, root, 0..src.len()) {
        assert!(h.offset <= src.len());
    }
    for item in a.outline(root) {
        inside(&a, item.span);
        inside(&a, item.selection);
    }
}

#[test]
fn every_position_of_every_example_answers() {
    for src in EXAMPLES {
        everywhere(src, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_position_of_mutated_examples_answers(
        which in 0..4usize,
        edits in prop::collection::vec(
            prop_oneof![
                (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(a, f)| Edit::Insert(a, f)),
                (any::<usize>(), 1usize..20).prop_map(|(a, n)| Edit::Delete(a, n)),
            ],
            1..8,
        ),
    ) {
        everywhere(&mutate::apply(EXAMPLES[which], &edits, FRAGMENTS), 7);
    }
}
