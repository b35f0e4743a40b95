//! The front end never panics: not on arbitrary bytes, not on random mutations of the examples.
//! (Property tests; the case counts keep the suite fast while covering every stage.)

#[path = "common/mutate.rs"]
mod mutate;

use imcc_compiler::compile;
use imcc_compiler::loader::MemLoader;
use mutate::Edit;
use proptest::prelude::*;
use std::path::Path;

const CHIP: &str = include_str!("../../examples/hw/cimu16.imc");
const EXAMPLES: [&str; 3] = [
    include_str!("../../examples/digits_mlp.imc"),
    include_str!("../../examples/mnist_mlp.imc"),
    include_str!("../../examples/mnist_cnn.imc"),
];

/// Tokens and fragments that make mutations land in interesting places.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ":",
    ",",
    "=",
    "-",
    "x",
    "\"",
    "import",
    "extends",
    "from",
    "1152",
    "0",
    "-1",
    "1e999",
    "0.5",
    "pJ",
    "bits",
    "lsb",
    "dense",
    "conv2d(8)",
    "flatten",
    "add",
    "imc",
    "digital(int4)",
    "[1, 8]",
    "full",
    "train t extends t { }",
    "layer fc1 { }",
    "hardware",
    "network",
    "@",
    "\n",
    "//",
    "softmax_cross_entropy",
    "input = [1, 2, 3];",
];

fn check(src: &str) {
    let loader = MemLoader::default().with("hw/cimu16.imc", CHIP);
    let comp = compile(Path::new("main.imc"), "main.imc", src, &loader);
    // Errors and a program are mutually exclusive.
    assert_eq!(comp.program.is_some(), !comp.has_errors());
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(a, f)| Edit::Insert(a, f)),
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 1usize..10, 0..FRAGMENTS.len()).prop_map(|(a, n, f)| Edit::Replace(a, n, f)),
    ]
}

fn apply(src: &str, edits: &[Edit]) -> String {
    mutate::apply(src, edits, FRAGMENTS)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..80)) {
        let src: Vec<&str> = parts.iter().map(|&i| FRAGMENTS[i]).collect();
        check(&src.join(" "));
    }

    #[test]
    fn mutated_examples_never_panic(which in 0..3usize, edits in proptest::collection::vec(edit(), 1..6)) {
        check(&apply(EXAMPLES[which], &edits));
    }
}

#[test]
fn examples_compile_in_memory() {
    for src in EXAMPLES {
        let loader = MemLoader::default().with("hw/cimu16.imc", CHIP);
        let comp = compile(Path::new("main.imc"), "main.imc", src, &loader);
        assert!(comp.diagnostics.is_empty(), "{:?}", comp.diagnostics);
        assert!((4..=5).contains(&comp.program.expect("checked").trains.len()));
    }
}
