//! Fault injection: closed pipes, full disks, bad output paths, failing runs, kills at chosen
//! points, concurrent runs on one checkpoint directory, and memory over many steps. Each test
//! states what must survive.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::imcc;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imcc-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("written")).expect("json")
}

/// Runs imcc with stdout a pipe whose reading end is closed before imcc writes.
fn with_closed_stdout(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("imcc runs");
    drop(child.stdout.take());
    child.wait_with_output().expect("imcc exits")
}

/// Runs imcc with stdout on `/dev/full`.
fn with_full_stdout(args: &[&str], stdin: Option<&str>) -> Output {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .expect("imcc runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writes stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("imcc exits")
}

const PRINTING: &[&[&str]] = &[
    &["lower", "examples/digits_mlp.imc"],
    &["lower", "examples/digits_mlp.imc", "--emit", "ir"],
    &["reference"],
    &["energy", "examples/digits_mlp.imc"],
    &["explain", "--list"],
    &["explain", "E0001"],
    &["check", "examples/digits_mlp.imc"],
];

#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    for args in PRINTING {
        let o = with_closed_stdout(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_full_disk_is_a_message_and_a_failure() {
    for args in PRINTING {
        let o = with_full_stdout(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot write standard output"), "{args:?}: {}", stderr(&o));
    }
    let o = with_full_stdout(&["quantize", "--format", "int8"], Some("1 2 3\n"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A file with runs on the digits: `good` and `after` train; `bad`, between them when asked
/// for, fails when its data turns out corrupt (after `good` has finished).
fn runs_file(dir: &Path, with_bad: bool) -> PathBuf {
    let data = root().join("data/digits");
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).expect("mkdir");
    std::fs::write(corrupt.join("digits.csv"), "not,a,digit\n").expect("writes");
    let bad = if with_bad {
        format!("train bad extends good {{ data = digits(dir = \"{}\"); }}\n", corrupt.display())
    } else {
        String::new()
    };
    let f = dir.join("runs.imc");
    std::fs::write(
        &f,
        format!(
            "network n {{ input = [64]; fc: dense(10); loss: softmax_cross_entropy; }}\n\
             mapping dig {{ forward = digital(int4); backward = digital(int4); weight_grad = digital(int4); }}\n\
             train good {{ network = n; mapping = dig; data = digits(dir = \"{}\"); epochs = 1; batch = 16; }}\n\
             {bad}train after extends good {{ seed = 9; }}\n",
            data.display()
        ),
    )
    .expect("writes");
    f
}

#[test]
fn training_goes_on_and_keeps_its_results_when_stdout_closes() {
    let d = scratch("closed-train");
    let f = runs_file(&d, false);
    let m = d.join("m.json");
    let o = with_closed_stdout(&["train", f.to_str().unwrap(), "--limit", "64", "--metrics-json", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let runs = json(&m)["runs"].as_array().expect("runs").len();
    assert_eq!(runs, 2, "both runs trained and were recorded");
}

#[test]
fn a_failing_run_keeps_the_finished_ones_and_the_rest_still_train() {
    let d = scratch("failing-run");
    let f = runs_file(&d, true);
    let m = d.join("m.json");
    let o = imcc(&["train", f.to_str().unwrap(), "--limit", "64", "--metrics-json", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot load data"), "{}", stderr(&o));
    let v = json(&m);
    let names: Vec<&str> = v["runs"].as_array().expect("runs").iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["good", "after"]);
    assert_eq!(v["failed"][0]["name"], "bad");
    assert!(v["failed"][0]["error"].as_str().unwrap().contains("corrupt/digits.csv"));
}

#[test]
fn bad_metrics_paths_are_refused_before_training() {
    let d = scratch("bad-metrics");
    let f = runs_file(&d, false);
    for (target, says) in [(d.join("no/such/dir/m.json"), "does not exist"), (d.clone(), "is a directory")] {
        let o = imcc(&["train", f.to_str().unwrap(), "--train", "good", "--metrics-json", target.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(o.stdout.is_empty(), "nothing trained: {}", String::from_utf8_lossy(&o.stdout));
    }
}
