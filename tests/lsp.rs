//! The language server (`imcc lsp`) spoken to as an editor does: JSON-RPC with Content-Length
//! framing over the real binary's stdin and stdout. Covers the lifecycle, diagnostics (the
//! same as `imcc check`, across imports), hover, completion, definition, references, the
//! outline and formatting; and random edits, which must leave the server alive and its last
//! published diagnostics equal to `imcc check` of the final text.

#[path = "common/lsp_client.rs"]
mod client;

use client::{Client, uri_of};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).canonicalize().expect("file in the repository")
}

/// A scratch directory with the 16 nm chip at `hw/cimu16.imc` (what the examples import).
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imcc-lsp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(d.join("hw")).expect("scratch dir");
    std::fs::copy(repo("examples/hw/cimu16.imc"), d.join("hw/cimu16.imc")).expect("copy chip");
    d.canonicalize().expect("canonical")
}

/// A scratch directory with `source` (an example that imports the chip) as `main.imc`: the
/// directory, the file and its text.
fn scratch_with(tag: &str, source: &str) -> (PathBuf, PathBuf, String) {
    let dir = scratch(tag);
    let main = dir.join("main.imc");
    let text = std::fs::read_to_string(repo(source)).expect("example");
    std::fs::write(&main, &text).expect("write");
    (dir, main, text)
}

/// A position in `text` as the protocol writes it (the texts here are ASCII).
fn pos(text: &str, needle: &str, nth: usize, plus: usize) -> Value {
    let at = text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no `{needle}`")).0 + plus;
    let line = text[..at].matches('\n').count();
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({ "line": line, "character": col })
}

fn at(uri: &str, position: Value) -> Value {
    json!({ "textDocument": { "uri": uri }, "position": position })
}

#[test]
fn an_editor_session_on_an_example() {
    let (mut c, init) = Client::start(false);
    let caps = &init["result"]["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    for cap in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "documentSymbolProvider",
        "documentFormattingProvider",
    ] {
        assert_eq!(caps[cap], true, "{cap}");
    }
    let path = repo("examples/digits_mlp.imc");
    let uri = uri_of(&path);
    let text = std::fs::read_to_string(&path).expect("example");
    c.open(&uri, &text);

    // Diagnostics on open: the example's only warnings (W0006).
    let diags = c.diagnostics(&uri);
    assert!(!diags.is_empty());
    assert!(diags.iter().all(|d| d["code"] == "W0006" && d["severity"] == 2 && d["source"] == "imcc"), "{diags:?}");

    // Hover: a parameter's unit, default and range from the schema.
    let h = c.call("textDocument/hover", at(&uri, pos(&text, "epochs", 0, 1)));
    let md = h["contents"]["value"].as_str().expect("markdown");
    assert!(md.contains("Training epochs") && md.contains("default: `1`"), "{md}");
    // A block name: where it comes from (through the import).
    let h = c.call("textDocument/hover", at(&uri, pos(&text, "hardware = cimu16", 0, 12)));
    assert!(h["contents"]["value"].as_str().unwrap().contains("Defined in `hw/cimu16.imc`"), "{h}");
    // A layer: its inferred shape.
    let h = c.call("textDocument/hover", at(&uri, pos(&text, "fc2", 0, 1)));
    assert!(h["contents"]["value"].as_str().unwrap().contains("Input `[128]` → output `[10]`"), "{h}");

    // Completion: the parameters valid in an `sgd(...)` argument list.
    let edited = text.replace("momentum = 0.9, weight_decay", "momentum = 0.9, nest, weight_decay");
    c.change(&uri, 2, &edited);
    let list = c.call("textDocument/completion", at(&uri, pos(&edited, "nest,", 0, 4)));
    let labels: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert!(labels.contains(&"nesterov") && labels.contains(&"lr"), "{labels:?}");
    // Signature help there: `sgd`'s arguments, the third (after two commas) active.
    let sig = c.call("textDocument/signatureHelp", at(&uri, pos(&edited, "nest,", 0, 4)));
    let label = sig["signatures"][0]["label"].as_str().unwrap();
    assert!(label.starts_with("sgd(lr = 0.05, momentum = 0.9,"), "{sig}");
    assert_eq!(sig["activeParameter"], 2, "lr, momentum, then the third");
    let third = &sig["signatures"][0]["parameters"][2]["label"];
    let (s, e) = (third[0].as_u64().unwrap() as usize, third[1].as_u64().unwrap() as usize);
    assert_eq!(&label[s..e], "weight_decay = 0.0001");
    let nesterov = list["items"].as_array().unwrap().iter().find(|i| i["label"] == "nesterov").unwrap();
    assert_eq!(nesterov["textEdit"]["newText"], "nesterov = ");
    assert_eq!(nesterov["textEdit"]["range"]["start"], pos(&edited, "nest,", 0, 0), "replaces the typed prefix");
    // The half-written argument is an error now, published for this version.
    let diags = c.diagnostics(&uri);
    assert!(diags.iter().any(|d| d["severity"] == 1), "{diags:?}");

    // Definition through the import, and the import string itself.
    let d = c.call("textDocument/definition", at(&uri, pos(&edited, "hardware = cimu16", 0, 12)));
    let chip_uri = uri_of(&repo("examples/hw/cimu16.imc"));
    assert_eq!(d[0]["uri"], chip_uri.as_str());
    let d = c.call("textDocument/definition", at(&uri, pos(&edited, "hw/cimu16.imc", 0, 2)));
    assert_eq!(d[0]["uri"], chip_uri.as_str());
    // References of the network: its definition and every `network = digits_mlp;`.
    let refs = c.call(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri }, "position": pos(&edited, "digits_mlp", 1, 0),
                "context": { "includeDeclaration": true } }),
    );
    assert_eq!(refs.as_array().unwrap().len(), edited.matches("digits_mlp;").count() + 1, "{refs}");

    // The outline: blocks with their layers.
    let symbols = c.call("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
    let net = symbols.as_array().unwrap().iter().find(|s| s["name"] == "digits_mlp").expect("the network");
    let layers: Vec<&str> = net["children"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(layers, ["input", "fc1", "act1", "fc2", "loss"]);

    // Formatting: refused while the file does not parse, one edit to the canonical text after.
    c.change(&uri, 3, &text.replace("epochs = 30;", "epochs = ;"));
    let refused = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert!(refused["error"]["message"].as_str().unwrap().contains("syntax errors"), "{refused}");
    let messy = text.replace("    epochs = 30;", "epochs=30 ;");
    c.change(&uri, 4, &messy);
    let edits = c.call(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(edits.as_array().unwrap().len(), 1);
    assert_eq!(edits[0]["newText"], text.as_str(), "formatting restores the canonical layout");

    // Back to the original: the error is gone, not stale.
    c.change(&uri, 5, &text);
    let diags = c.diagnostics(&uri);
    assert!(diags.iter().all(|d| d["severity"] == 2), "{diags:?}");

    // Go to symbol in workspace: definitions of the open file and its imports.
    let found = c.call("workspace/symbol", json!({ "query": "CIMU" }));
    let names: Vec<&str> = found.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cimu16", "cimu16_two_level"], "{found}");
    assert_eq!(found[0]["containerName"], "hardware");
    assert!(found[0]["location"]["uri"].as_str().unwrap().ends_with("hw/cimu16.imc"));

    // An unknown request is refused, not fatal.
    let r = c.request("textDocument/codeLens", json!({ "textDocument": { "uri": uri } }));
    assert_eq!(r["error"]["code"], -32601);
    c.stop();
}

#[test]
fn quick_fixes_replace_misspelt_names() {
    let path = repo("examples/digits_mlp.imc");
    let uri = uri_of(&path);
    let text = std::fs::read_to_string(&path).expect("example").replace("epochs = 30;", "epohcs = 30;");
    let (mut c, _) = Client::start(false);
    c.open(&uri, &text);
    let diags = c.diagnostics(&uri);
    let typo = diags.iter().find(|d| d["code"] == "E0206").expect("unknown parameter");
    assert!(typo["message"].as_str().unwrap().contains("help: did you mean `epochs`?"), "{typo}");
    // The editor asks for actions at the cursor, inside the misspelt word.
    let here = pos(&text, "epohcs", 0, 2);
    let actions = c.call(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": here, "end": here },
                "context": { "diagnostics": [typo] } }),
    );
    let actions = actions.as_array().expect("actions");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["title"], "Replace with `epochs`");
    assert_eq!(actions[0]["kind"], "quickfix");
    let edit = &actions[0]["edit"]["documentChanges"][0]["edits"][0];
    assert_eq!(edit["newText"], "epochs");
    assert_eq!(edit["range"]["start"], pos(&text, "epohcs", 0, 0));
    assert_eq!(edit["range"]["end"], pos(&text, "epohcs", 0, 6));
    // Applied, the error is gone.
    c.change(&uri, 2, &text.replace("epohcs", "epochs"));
    assert!(c.diagnostics(&uri).iter().all(|d| d["code"] != "E0206"));
    // Away from any diagnostic there is nothing to fix.
    let none = c.call(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": { "start": pos(&text, "network", 0, 0), "end": pos(&text, "network", 0, 0) },
                "context": { "diagnostics": [] } }),
    );
    assert_eq!(none, json!([]));
    c.stop();
}

#[test]
fn import_paths_complete_from_the_files_beside() {
    let dir = scratch("import-paths");
    let main = dir.join("main.imc");
    let text = "import \"h\";\n";
    std::fs::write(&main, text).expect("write");
    let uri = uri_of(&main);
    let (mut c, _) = Client::start(false);
    c.open(&uri, text);
    let list = c.call("textDocument/completion", at(&uri, pos(text, "h\"", 0, 1)));
    let items = list["items"].as_array().expect("items");
    let labels: Vec<&str> = items.iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["hw/cimu16.imc"], "the file itself is not offered");
    assert_eq!(items[0]["textEdit"]["newText"], "\"hw/cimu16.imc\"");
    assert_eq!(items[0]["textEdit"]["range"]["start"], pos(text, "\"h", 0, 0), "the whole string is replaced");
    assert_eq!(items[0]["filterText"], "\"hw/cimu16.imc\"");
    c.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rename_reaches_through_imports_and_hints_show_shapes() {
    let (dir, main, text) = scratch_with("rename", "examples/digits_mlp.imc");
    let (uri, chip_uri) = (uri_of(&main), uri_of(&dir.join("hw/cimu16.imc")));
    let (mut c, _) = Client::start(false);
    c.open(&uri, &text);
    let here = pos(&text, "hardware = cimu16;", 0, 12);
    let nothing = c.call("textDocument/prepareRename", at(&uri, pos(&text, "epochs", 0, 1)));
    assert_eq!(nothing, Value::Null, "a parameter key is not renamed: nothing to rename, no error");
    let range = c.call("textDocument/prepareRename", at(&uri, here.clone()));
    assert_eq!(range["start"], pos(&text, "hardware = cimu16;", 0, 11));
    let edit =
        c.call("textDocument/rename", json!({ "textDocument": { "uri": uri }, "position": here, "newName": "chip" }));
    let files = edit["documentChanges"].as_array().expect("edits per file");
    let count = |u: &str| {
        files
            .iter()
            .filter(|f| f["textDocument"]["uri"] == u)
            .map(|f| f["edits"].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(count(&uri), text.matches("= cimu16;").count(), "every `hardware = cimu16;` here");
    assert_eq!(count(&chip_uri), 2, "the definition and the `extends` in the imported chip file");
    assert!(files.iter().all(|f| f["edits"].as_array().unwrap().iter().all(|e| e["newText"] == "chip")));
    let bad = c.request("textDocument/rename", json!({ "textDocument": { "uri": uri }, "position": pos(&text, "hardware = cimu16;", 0, 12), "newName": "two words" }));
    assert!(bad["error"]["message"].as_str().unwrap().contains("not a name"), "{bad}");

    let hints = c.call(
        "textDocument/inlayHint",
        json!({ "textDocument": { "uri": uri }, "range": { "start": { "line": 0, "character": 0 }, "end": { "line": 999, "character": 0 } } }),
    );
    let labels: Vec<&str> = hints.as_array().unwrap().iter().map(|h| h["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["→ [128]", "→ [128]", "→ [10]", "→ [10]"], "fc1, act1, fc2, loss");
    assert_eq!(hints[0]["position"], pos(&text, "fc1: dense(128);", 0, 16));
    c.stop();

    // From the chip's own file, with the file that imports it closed: the workspace's files
    // are searched for importers, so the rename does not break them.
    let chip_text = std::fs::read_to_string(dir.join("hw/cimu16.imc")).expect("chip");
    let (mut c, _) = Client::start_in(false, Some(&dir));
    c.open(&chip_uri, &chip_text);
    let decl = pos(&chip_text, "hardware cimu16 {", 0, 10);
    let refs = c.call(
        "textDocument/references",
        json!({ "textDocument": { "uri": chip_uri }, "position": decl, "context": { "includeDeclaration": true } }),
    );
    let in_main = refs.as_array().unwrap().iter().filter(|r| r["uri"] == uri.as_str()).count();
    assert_eq!(in_main, 1, "the closed importer's use: {refs}");
    let edit = c.call(
        "textDocument/rename",
        json!({ "textDocument": { "uri": chip_uri }, "position": decl, "newName": "chip" }),
    );
    let files = edit["documentChanges"].as_array().expect("edits per file");
    let main_edits =
        files.iter().find(|f| f["textDocument"]["uri"] == uri.as_str()).expect("the closed importer is edited");
    assert_eq!(main_edits["textDocument"]["version"], Value::Null, "a file on disk has no version");
    assert_eq!(main_edits["edits"].as_array().unwrap().len(), 1);
    c.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn diagnostics_follow_imports_and_clear_when_fixed() {
    let (dir, main, main_text) = scratch_with("imports", "examples/digits_mlp.imc");
    let chip = dir.join("hw/cimu16.imc");
    let chip_text = std::fs::read_to_string(&chip).expect("chip");
    let (mut c, _) = Client::start(true);
    let (main_uri, chip_uri) = (uri_of(&main), uri_of(&chip));
    c.open(&main_uri, &main_text);
    assert!(c.diagnostics(&main_uri).iter().all(|d| d["severity"] == 2));

    // An error typed into the open imported file shows there, as that file's own analysis.
    c.open(&chip_uri, &chip_text);
    let broken = chip_text.replacen("bits = 8 bits;", "bits = 80 bits;", 1);
    assert_ne!(broken, chip_text, "the chip sets adc bits");
    c.change(&chip_uri, 2, &broken);
    let diags = c.diagnostics(&chip_uri);
    assert!(diags.iter().any(|d| d["code"] == "E0303"), "{diags:?}");
    // Closed, the chip's errors come from the file that imports it, which reads the closed
    // file from disk again: the disk's text is fine, so they clear.
    c.notify("textDocument/didClose", json!({ "textDocument": { "uri": chip_uri } }));
    assert!(c.diagnostics(&chip_uri).is_empty());
    assert!(c.diagnostics(&main_uri).iter().all(|d| d["severity"] == 2));
    c.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_server_survives_garbage_and_a_missing_shutdown() {
    let (mut c, _) = Client::start(false);
    let r = c.request("textDocument/hover", json!({ "nonsense": true }));
    assert_eq!(r["error"]["code"], -32602, "invalid params: {r}");
    // A document the server never saw: no answer, no crash.
    let r = c.call("textDocument/hover", at("file:///nowhere/x.imc", json!({ "line": 0, "character": 0 })));
    assert_eq!(r, Value::Null);
    c.notify("exit", Value::Null);
    let status = c.child.wait().expect("exits");
    assert_eq!(status.code(), Some(1), "exit without shutdown is status 1");
}

/// What `imcc check` reports for `path`: (code, byte offset, first line of the message).
fn check(path: &Path) -> Vec<(String, u64, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(["check", "--message-format", "json"])
        .arg(path)
        .output()
        .expect("imcc check runs");
    let mut v: Vec<(String, u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|d| d["location"]["file"].as_str().is_none_or(|f| f.ends_with("main.imc")))
        .map(|d| {
            let at = d["location"]["byte_start"].as_u64().unwrap_or(0);
            (d["code"].as_str().unwrap_or("").to_string(), at, d["message"].as_str().unwrap_or("").to_string())
        })
        .collect();
    v.sort();
    v
}

/// The server's diagnostics in the same terms (UTF-8 columns were negotiated).
fn published(diags: &[Value], text: &str) -> Vec<(String, u64, String)> {
    let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut v: Vec<(String, u64, String)> = diags
        .iter()
        .map(|d| {
            let line = d["range"]["start"]["line"].as_u64().unwrap() as usize;
            let at = starts.get(line).copied().unwrap_or(text.len())
                + d["range"]["start"]["character"].as_u64().unwrap() as usize;
            let message = d["message"].as_str().unwrap().lines().next().unwrap_or("").to_string();
            (d["code"].as_str().unwrap().to_string(), at as u64, message)
        })
        .collect();
    v.sort();
    v
}

const FRAGMENTS: &[&str] = &[
    " ",
    "\n",
    "{",
    "}",
    ";",
    "=",
    "(",
    ")",
    "[",
    "]",
    ",",
    "x",
    "\"",
    "é",
    "// c\n",
    "layer fc1 { }",
    "seed = 3;",
    "1.5 pJ",
    "relu",
    "bits = 99;",
    "import \"nope.imc\";",
    "train",
    "extends",
    "from",
];

/// One edit: replace `len` bytes at fraction `at` of the text with a fragment.
fn apply(text: &str, (at, len, frag): (f64, usize, usize)) -> String {
    let mut i = ((text.len() as f64) * at) as usize;
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    let mut j = (i + len).min(text.len());
    while !text.is_char_boundary(j) {
        j += 1;
    }
    format!("{}{}{}", &text[..i], FRAGMENTS[frag], &text[j..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_never_crash_hang_or_leave_stale_diagnostics(
        edits in prop::collection::vec((0.0..1.0f64, 0usize..12, 0..FRAGMENTS.len()), 1..16),
        which in 0usize..2,
    ) {
        let source = ["examples/digits_mlp.imc", "examples/mnist_cnn.imc"][which];
        let (_dir, path, mut text) = scratch_with(&format!("edits-{which}"), source);
        let uri = uri_of(&path);
        let (mut c, init) = Client::start(true);
        prop_assert_eq!(&init["result"]["capabilities"]["positionEncoding"], "utf-8");
        c.open(&uri, &text);
        for (version, e) in edits.into_iter().enumerate() {
            text = apply(&text, e);
            c.change(&uri, version as i32 + 2, &text);
            // Requests in between, at the edit, must not fail.
            let p = json!({ "line": 5, "character": 3 });
            let h = c.request("textDocument/hover", at(&uri, p.clone()));
            prop_assert!(h.get("error").is_none(), "{}", h);
            let k = c.request("textDocument/completion", at(&uri, p));
            prop_assert!(k.get("error").is_none(), "{}", k);
        }
        let diags = c.diagnostics(&uri);
        std::fs::write(&path, &text).expect("write");
        prop_assert_eq!(published(&diags, &text), check(&path), "final text:\n{}", text);
        c.stop();
    }
}
