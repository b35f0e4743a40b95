//! The command line's contract: exit statuses, clean messages for bad input, JSON output, and
//! the examples checking clean.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::imcc;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imcc-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn examples_check_clean_but_for_placement_advice() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["examples", "examples/hw", "examples/paper"] {
        for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).expect("examples") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "imc") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let out = imcc(&["check", "--color", "never", f.to_str().expect("utf-8 path")]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{}:\n{text}", f.display());
        // The examples compare fixed policies on purpose, so the runs that put a dense weight
        // gradient or a narrow backward MVM on IMC get W0006 advice; nothing else warns.
        let others = text.matches("Warning").count() - text.matches("[W0006]").count();
        if f.parent().is_some_and(|d| d.ends_with("paper")) {
            // The paper's networks need CIFAR-10 and ImageNet, which are not bundled: they are
            // for `lower` and `cost`, and say so.
            assert_eq!(others, 1, "{}:\n{text}", f.display());
            assert!(text.contains("[W0005]") && !text.contains("Error"), "{}:\n{text}", f.display());
            continue;
        }
        assert_eq!(others, 0, "{}:\n{text}", f.display());
        if f.ends_with("mnist_mlp.imc") {
            assert!(text.contains("[W0006] Warning: 4 IMC MVMs of train `full`"), "{text}");
            assert!(!text.contains("train `auto`"), "placement by cost weighs what it places: {text}");
        }
    }
}

#[test]
fn examples_define_full_two_level_and_all_digital_runs() {
    for (f, blocks) in [("examples/digits_mlp.imc", 5), ("examples/mnist_mlp.imc", 5), ("examples/mnist_cnn.imc", 4)] {
        let out = imcc(&["check", f]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("{blocks} train blocks")), "{f}: {text}");
        let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).expect("example");
        let auto: &[&str] = if blocks == 5 { &["train auto"] } else { &[] };
        for run in ["train full", "train two_level", "train all_digital"].iter().chain(auto) {
            assert!(src.contains(run), "{f} lacks `{run}`");
        }
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let out = imcc(&["check", "no/such/file.imc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read `no/such/file.imc`: no such file"), "{}", stderr(&out));
}

#[test]
fn directory_is_an_io_error() {
    let out = imcc(&["check", "examples"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn non_utf8_input_is_rejected_with_its_position() {
    let p = scratch("latin1.imc");
    std::fs::write(&p, b"hardware h {\n  cores = 4; // caf\xe9\n}\n").expect("write");
    let out = imcc(&["check", p.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not valid UTF-8 (invalid byte at offset 32, line 2)"), "{}", stderr(&out));
}

#[test]
fn ten_megabyte_file_is_rejected_cleanly() {
    let p = scratch("huge.imc");
    std::fs::write(&p, "hardware h { cores = 4; }\n".repeat(400_000)).expect("write");
    let out = imcc(&["check", p.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("source files are limited to 1 MiB"), "{}", stderr(&out));
}

#[test]
fn ten_thousand_deep_nesting_is_a_diagnostic_not_a_crash() {
    let p = scratch("deep.imc");
    let src = format!("hardware h {{ array = {}1{}; }}\n", "[".repeat(10_000), "]".repeat(10_000));
    std::fs::write(&p, src).expect("write");
    let out = imcc(&["check", "--color", "never", p.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("[E0004]"), "{}", stderr(&out));
}

#[test]
fn empty_file_is_a_diagnostic() {
    let p = scratch("empty.imc");
    std::fs::write(&p, "").expect("write");
    let out = imcc(&["check", "--color", "never", p.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("[E0005]"), "{}", stderr(&out));
}

#[test]
fn json_messages_carry_code_location_and_rendering() {
    let out = imcc(&["check", "--message-format", "json", "tests/ui/unknown_parameter.imc"]);
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8_lossy(&out.stdout).lines().next().expect("one diagnostic").to_string();
    let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(v["code"], "E0206");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["location"]["file"], "tests/ui/unknown_parameter.imc");
    assert_eq!(v["location"]["line"], 4);
    assert_eq!(v["location"]["column"], 9);
    assert_eq!(v["helps"][0], "did you mean `sigma_lsb`?");
    // The suggestion as an edit a tool can apply: the misspelt key's bytes and the replacement.
    assert_eq!(v["fixes"][0]["replacement"], "sigma_lsb");
    assert_eq!((v["fixes"][0]["line"].clone(), v["fixes"][0]["column"].clone()), (4.into(), 9.into()));
    assert_eq!(v["fixes"][0]["end_column"], 18);
    assert!(v["rendered"].as_str().expect("string").contains("sigma_lbs"));
}

#[test]
fn colour_only_when_asked() {
    let plain = imcc(&["check", "tests/ui/unknown_parameter.imc"]);
    assert!(!stderr(&plain).contains('\x1b'), "not a terminal: no colour");
    let coloured = imcc(&["check", "--color", "always", "tests/ui/unknown_parameter.imc"]);
    assert!(stderr(&coloured).contains('\x1b'));
}

#[test]
fn deny_warnings_fails_on_warnings() {
    let f = "tests/ui/unused_definition.imc";
    assert_eq!(imcc(&["check", f]).status.code(), Some(0));
    assert_eq!(imcc(&["check", "--deny-warnings", f]).status.code(), Some(1));
}

#[test]
fn worst_status_wins_over_several_files() {
    let out = imcc(&["check", "examples/digits_mlp.imc", "tests/ui/type_mismatch.imc", "missing.imc"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_prints_every_code_and_rejects_unknown_ones() {
    let out = imcc(&["explain", "E0500"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("E0500: two-level ADC cannot serve all three MVMs"), "{text}");
    assert!(text.contains("weight_grad = digital(int4)"));
    let list = imcc(&["explain", "--list"]);
    assert!(String::from_utf8_lossy(&list.stdout).lines().count() >= 40);
    let bad = imcc(&["explain", "E9999"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(imcc(&["check"]).status.code(), Some(2));
    assert_eq!(imcc(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(imcc(&["train", "examples/digits_mlp.imc", "--epochs", "0"]).status.code(), Some(2));
    assert_eq!(imcc(&["train", "examples/digits_mlp.imc", "--limit", "0"]).status.code(), Some(2));
    assert_eq!(imcc(&["bench", "examples/digits_mlp.imc", "--samples", "0"]).status.code(), Some(2));
    assert_eq!(imcc(&["train", "examples/digits_mlp.imc", "--train", "nope"]).status.code(), Some(2));
    let bad_sigma = imcc(&["train", "examples/digits_mlp.imc", "--train", "full", "--sigma-lsb=-1", "--limit", "32"]);
    assert_eq!(bad_sigma.status.code(), Some(2), "checked before training, with the file's rule");
    let says = "--sigma-lsb: `noise.sigma_lsb` is out of range: expected a number >= 0, found -1";
    assert!(stderr(&bad_sigma).contains(says), "{}", stderr(&bad_sigma));
}

fn imcc_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("imcc runs");
    // The program may exit before reading (a usage error): a broken pipe is not a failure.
    let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
    child.wait_with_output().expect("exits")
}

#[test]
fn quantize_reproduces_the_worked_example() {
    let out = imcc_stdin(&["quantize", "--format", "radix4"], "0.012 0.0047\n-0.0047 0");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0.015625\n0.00390625\n-0.00390625\n0\n");
    let out = imcc_stdin(&["quantize", "--format", "radix4-odd", "--json"], "0.012 0.0047");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["scale"], 64.0);
    assert_eq!(v["values"][1], 0.001953125);
}

#[test]
fn quantize_integer_formats_and_fixed_scale() {
    let out = imcc_stdin(&["quantize", "--format", "int4-pact:6"], "-1 2.9 7");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n2.8\n6\n");
    let out = imcc_stdin(&["quantize", "--format", "radix4", "--scale", "1"], "0.3 2");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0.25\n1\n");
    let out = imcc_stdin(&["quantize", "--format", "int4-sawb", "--json"], "0.1 -0.2 0.3 -0.4");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["scale"].as_f64().expect("alpha") > 0.0);
}

#[test]
fn quantize_rejects_bad_input() {
    for (input, needle) in
        [("1 x", "`x` is not a decimal number"), ("1 NaN", "`NaN` is not a finite number"), ("", "no numbers")]
    {
        let out = imcc_stdin(&["quantize", "--format", "int8"], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}");
        assert!(stderr(&out).contains(needle), "{input:?}: {}", stderr(&out));
    }
    let out = imcc_stdin(&["quantize", "--format", "fp8"], "1");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cost_report_and_json() {
    let out = imcc(&["cost", "examples/paper/cifar_cnn.imc", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = v["runs"].as_array().expect("runs");
    let run = |name: &str| runs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("run {name}"));
    for key in ["energy_per_step_joules", "baseline", "savings", "breakdown"] {
        assert!(!run("full")[key].is_null(), "{key}");
    }
    let saving = |name: &str, base: &str| run(name)["savings"][base].as_f64().expect("saving");
    // The paper's headline under its calibration (bit products) and the file's stated baseline.
    assert!(saving("full", "vs_digital_fp16") > 400.0);
    assert!((2.9..3.1).contains(&saving("two_level_fp16", "vs_digital_fp16")));
    assert!((2.9..3.1).contains(&saving("two_level", "vs_digital_4bit")));
    assert!((saving("all_digital", "vs_digital_4bit") - 1.0).abs() < 1e-9, "the all-digital run is its own baseline");
    // Paying every conversion in full costs more than the calibration's bit-product rate.
    assert!(saving("full_conversions", "vs_digital_fp16") < saving("full", "vs_digital_fp16"));
    let text =
        String::from_utf8_lossy(&imcc(&["energy", "examples/mnist_mlp.imc", "--train", "full"]).stdout).into_owned();
    assert!(text.contains("Amdahl"), "{text}");
}

#[test]
fn data_paths_resolve_against_the_file_so_examples_run_from_anywhere() {
    let elsewhere = std::env::temp_dir();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.imc");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(["train", file.to_str().expect("utf-8"), "--train", "full", "--epochs", "1", "--limit", "32"])
        .current_dir(&elsewhere)
        .output()
        .expect("imcc runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("full: test accuracy"));
}

#[test]
fn train_renders_lowering_diagnostics_of_a_run_that_cannot_be_mapped() {
    let out = imcc(&["train", "tests/ui/cannot_tile.imc", "--limit", "8"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("[E0600]") && err.contains("cannot be lowered"), "{err}");
}

#[test]
fn fmt_formats_standard_input_for_editors() {
    let out = imcc_stdin(&["fmt", "-"], "train t{seed=1;} // end\n");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "train t {\n    seed = 1;\n} // end\n");
    let check = imcc_stdin(&["fmt", "--check", "-"], "train t{seed=1;}\n");
    assert_eq!(check.status.code(), Some(1), "--check: not formatted");
    assert!(String::from_utf8_lossy(&check.stdout).contains("would reformat: <stdin>"));
    let broken = imcc_stdin(&["fmt", "--color", "never", "-"], "train t{seed=\n");
    assert_eq!(broken.status.code(), Some(1));
    assert!(broken.stdout.is_empty(), "nothing to replace the buffer with");
    assert!(String::from_utf8_lossy(&broken.stderr).contains("E0003"));
}

#[test]
fn advice_is_about_the_train_block_asked_for() {
    let all = stderr(&imcc(&["cost", "examples/digits_mlp.imc"]));
    assert!(all.contains("train `full`") && all.contains("train `two_level`"), "{all}");
    let one = stderr(&imcc(&["cost", "examples/digits_mlp.imc", "--train", "full"]));
    assert!(one.contains("[W0006]") && one.contains("train `full`"), "{one}");
    assert!(!one.contains("train `two_level`"), "advice on a block not asked for: {one}");
    let digital = imcc(&["lower", "examples/digits_mlp.imc", "--train", "all_digital", "--emit", "mapping"]);
    assert!(!stderr(&digital).contains("W0006"), "{}", stderr(&digital));
}
