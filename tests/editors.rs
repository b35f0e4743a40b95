//! The editor integration in `editors/vscode/` stays in step with the language: the TextMate
//! grammar names every block kind and unit the schema has, and the extension's manifest
//! registers `.imc` files, the grammar, and a client that starts `imcc lsp`.

use imcc_compiler::schema::{Kind, UNITS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/vscode").join(rel))
        .unwrap_or_else(|e| panic!("editors/vscode/{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("editors/vscode/{rel} is not JSON: {e}"))
}

/// The words of the first `(a|b|c)` group after `after` in `regex`.
fn alternatives(regex: &str, after: &str) -> BTreeSet<String> {
    let start = regex.find(after).map(|i| i + after.len()).expect("marker in the regex");
    let group = &regex[start..];
    let group = &group[..group.find(')').expect("closing parenthesis")];
    group.split('|').map(str::to_string).collect()
}

#[test]
fn the_grammar_knows_every_block_kind_and_unit() {
    let g = json("syntaxes/imc.tmLanguage.json");
    assert_eq!(g["scopeName"], "source.imc");
    let definition = g["repository"]["definition"]["match"].as_str().expect("definition rule");
    let kinds = alternatives(definition, "^\\s*(");
    let mut want: BTreeSet<String> = Kind::ALL.iter().map(|k| k.keyword().to_string()).collect();
    want.insert(imcc_compiler::check::SWEEP_KEYWORD.to_string());
    assert_eq!(kinds, want, "block kinds in the grammar");
    let number = g["repository"]["number"]["match"].as_str().expect("number rule");
    let units = alternatives(number, "\\b(");
    let want: BTreeSet<String> = UNITS.iter().map(|u| u.0.to_string()).collect();
    assert_eq!(units, want, "units in the grammar");
}

#[test]
fn the_extension_registers_the_language_and_starts_the_server() {
    let m = json("package.json");
    let lang = &m["contributes"]["languages"][0];
    assert_eq!(lang["id"], "imc");
    assert_eq!(lang["extensions"][0], ".imc");
    json(lang["configuration"].as_str().expect("language configuration"));
    let grammar = &m["contributes"]["grammars"][0];
    assert_eq!(grammar["scopeName"], "source.imc");
    json(grammar["path"].as_str().expect("grammar path"));
    assert!(m["activationEvents"].as_array().unwrap().iter().any(|e| e == "onLanguage:imc"));
    let main = read(m["main"].as_str().expect("main"));
    assert!(main.contains("args: ['lsp']"), "the client starts `imcc lsp`");
    assert!(m["dependencies"]["vscode-languageclient"].is_string());
}
