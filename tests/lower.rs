//! Snapshot tests of lowering: the mapping summary of every train block of every example and
//! lowering fixture, and full IR dumps of a dense and a conv network. A change to lowering
//! shows up as a reviewed snapshot diff.

use std::path::Path;
use std::process::Command;

fn lower(file: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(["lower", file, "--color", "never"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("imcc runs");
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn mapping_summaries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["examples", "examples/paper", "tests/lower"] {
        let mut files: Vec<_> =
            std::fs::read_dir(root.join(dir)).expect("dir").map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "imc")) {
            let rel = f.strip_prefix(root).expect("inside").to_str().expect("utf-8").to_string();
            let name = rel.replace(['/', '.'], "_");
            insta::assert_snapshot!(format!("mapping__{name}"), lower(&rel, &["--emit", "mapping"]), &rel);
        }
    }
}

#[test]
fn ir_dumps() {
    insta::assert_snapshot!("ir__digits_full", lower("examples/digits_mlp.imc", &["--train", "full", "--emit", "ir"]));
    insta::assert_snapshot!("ir__small_chip", lower("tests/lower/small_chip.imc", &["--emit", "ir"]));
}

#[test]
fn stop_after_a_pass() {
    let ir = lower("examples/mnist_mlp.imc", &["--train", "full", "--emit", "ir", "--after", "partition"]);
    assert!(ir.contains("passes: build, formats, partition\n"));
    assert!(!ir.contains("tiling"), "no tiling before the tile pass");
    assert!(ir.contains("-> imc"));
}

#[test]
fn json_is_the_ir() {
    let json = lower("examples/mnist_mlp.imc", &["--train", "two_level", "--emit", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["name"], "two_level");
    assert_eq!(v["mvms"].as_array().expect("mvms").len(), 8);
    assert_eq!(v["passes"].as_array().expect("passes").len(), 8);
}

#[test]
fn unknown_train_or_pass_is_a_usage_error() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imcc"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("runs")
    };
    let out = run(&["lower", "examples/mnist_mlp.imc", "--train", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("its train blocks are: full, two_level, all_digital, auto, f32_reference")
    );
    let out = run(&["lower", "examples/mnist_mlp.imc", "--after", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The cranelift IR the JIT builds for a few fusion groups of a small CNN: a forward epilogue
/// with pooling, a backward epilogue with radix-4 quantization, and the optimizer step.
#[test]
fn clif_of_jit_kernels() {
    let out = lower("tests/jit/kernels.imc", &["--emit", "clif"]);
    let groups: Vec<&str> = out.split("\n; g").collect();
    for (g, name) in [(1, "forward_epilogue_pool"), (5, "backward_epilogue"), (6, "backward_pool"), (7, "update")] {
        let text = groups.iter().find(|t| t.starts_with(&format!("{g} "))).expect("group listed");
        insta::assert_snapshot!(format!("clif__{name}"), format!("; g{text}"));
    }
}

#[test]
fn a_fixed_gain_is_the_initial_gain_shown() {
    let ir = lower("tests/train/exact.imc", &["--train", "imc_exact", "--emit", "ir"]);
    let adc: Vec<&str> = ir.lines().filter(|l| l.contains("initial gains")).collect();
    assert!(!adc.is_empty());
    for l in adc {
        let gains = l.split("initial gains").nth(1).expect("gains");
        assert!(gains.split_whitespace().all(|g| g == "1"), "under fixed(1): {l}");
    }
}
