//! Language-server latency on the largest example (the generated ResNet-50 file): from an edit
//! sent as `didChange` to the diagnostics published for it, and to the answer of a hover after
//! an edit, each set beside the in-process check and lowering of the same text (what `imcc
//! check` does), measured in the same run.
//!
//! `cargo bench --bench lsp`

#[path = "../tests/common/lsp_client.rs"]
mod client;

use client::{Client, uri_of};
use imcc_compiler::loader::FsLoader;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 101;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Checks and lowers `text` in-process, as `imcc check` does.
fn check_in_process(path: &Path, text: &str) {
    let comp = imcc_compiler::compile(path, "resnet50.imc", text, &FsLoader);
    if let Some(p) = &comp.program {
        for run in p.all_runs() {
            std::hint::black_box(imcc_compiler::lower::lower(p, run, None).ok());
        }
    }
    std::hint::black_box(comp.diagnostics.len());
}

fn main() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/paper/resnet50.imc").canonicalize().expect("example");
    let text = std::fs::read_to_string(&path).expect("example");
    // An edit that adds an error, and the original: each edit changes what is published.
    let broken = text.replacen("batch = 64;", "batch = ;", 1);
    assert_ne!(broken, text, "the example sets its batch");
    let uri = uri_of(&path);

    let mut baseline = Vec::new();
    for i in 0..ROUNDS {
        let t = Instant::now();
        check_in_process(&path, if i % 2 == 0 { &broken } else { &text });
        baseline.push(t.elapsed());
    }

    let (mut c, _) = Client::start(false);
    c.open(&uri, &text);
    c.diagnostics(&uri);
    let mut publish = Vec::new();
    for i in 0..ROUNDS {
        let t = Instant::now();
        c.change(&uri, i as i32 + 2, if i % 2 == 0 { &broken } else { &text });
        let d = c.next_diagnostics(&uri);
        publish.push(t.elapsed());
        assert_eq!(d.iter().any(|d| d["severity"] == 1), i % 2 == 0, "edit {i}: the error comes and goes");
    }
    // An edit that changes nothing published (a comment), then a hover: the answer waits for
    // the analysis of the new text.
    let mut hover = Vec::new();
    let line = text.lines().position(|l| l.contains("batch = 64")).expect("batch line");
    for i in 0..ROUNDS {
        let edited = format!("// edit {i}\n{text}");
        let t = Instant::now();
        c.change(&uri, (ROUNDS + i) as i32 + 2, &edited);
        let h = c.call(
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line + 1, "character": 6 } }),
        );
        hover.push(t.elapsed());
        assert!(h["contents"]["value"].as_str().is_some_and(|s| s.contains("Mini-batch")), "{h}");
    }
    c.stop();

    let base = median(baseline.clone());
    println!("language server on examples/paper/resnet50.imc ({} bytes), {ROUNDS} edits each", text.len());
    println!("  in-process check + lower (baseline)  median {:7.2} ms  p90 {:7.2} ms", ms(base), ms(p90(baseline)));
    for (name, v) in [("didChange -> publishDiagnostics", publish), ("didChange -> hover answer", hover)] {
        let m = median(v.clone());
        println!(
            "  {name:<35}  median {:7.2} ms  p90 {:7.2} ms  ({:.2}x the baseline; goal < 50 ms)",
            ms(m),
            ms(p90(v)),
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
}
