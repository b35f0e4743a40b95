//! Keeps `spec/language.md` true: its parameter reference is the one the compiler generates,
//! and it documents every diagnostic code.

use imcc_compiler::codes::Code;
use imcc_compiler::reference;

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spec/language.md")).expect("spec/language.md")
}

#[test]
fn parameter_reference_matches_the_schema() {
    let spec = spec();
    let start = spec.find(reference::BEGIN).expect("begin marker") + reference::BEGIN.len();
    let end = spec.find(reference::END).expect("end marker");
    let embedded = spec[start..end].trim();
    let generated = reference::markdown();
    assert!(
        embedded == generated.trim(),
        "spec/language.md's reference is stale: regenerate it with `cargo run -- reference`"
    );
}

#[test]
fn every_diagnostic_code_is_listed() {
    let spec = spec();
    for c in Code::ALL {
        assert!(spec.contains(c.as_str()), "spec/language.md does not mention {}", c.as_str());
    }
}
