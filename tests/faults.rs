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

/// A one-run file on the digits; `settings` are added to the train block.
fn digits_run(dir: &Path, settings: &str) -> PathBuf {
    let f = dir.join("run.imc");
    std::fs::write(
        &f,
        format!(
            "network n {{ input = [64]; fc: dense(10); loss: softmax_cross_entropy; }}\n\
             train r {{ network = n; data = digits(dir = \"{}\"); batch = 16; {settings} }}\n",
            root().join("data/digits").display()
        ),
    )
    .expect("writes");
    f
}

fn train_into(f: &Path, ckpt: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", f.to_str().unwrap(), "--limit", "64", "--checkpoint", ckpt.to_str().unwrap()];
    args.extend_from_slice(extra);
    imcc(&args)
}

#[test]
fn a_resume_that_differs_from_its_checkpoint_is_refused_naming_the_difference() {
    let d = scratch("resume-differs");
    let ckpt = d.join("ckpt");
    let f = digits_run(&d, "seed = 5; optimizer = sgd(lr = 0.1);");
    let o = train_into(&f, &ckpt, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // The seed re-splits the data: never.
    let f = digits_run(&d, "seed = 6; optimizer = sgd(lr = 0.1);");
    let o = train_into(&f, &ckpt, &["--resume", "--accept-changes"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("seed: 5 in the checkpoint, 6 now"), "{}", stderr(&o));
    assert!(stderr(&o).contains("data:"), "the split changes too: {}", stderr(&o));

    // A new learning rate, the sample limit or the noise: only on purpose.
    let f = digits_run(&d, "seed = 5; optimizer = sgd(lr = 0.2);");
    let o = train_into(&f, &ckpt, &["--resume", "--limit", "48", "--sigma-lsb", "0.3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for says in [
        "lr = 0.1",
        "lr = 0.2",
        "training samples: 64 in the checkpoint, 48 now",
        "noise sigma_lsb",
        "--accept-changes",
    ] {
        assert!(stderr(&o).contains(says), "{says}: {}", stderr(&o));
    }
    let o = train_into(&f, &ckpt, &["--resume", "--accept-changes"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn resume_needs_something_to_resume() {
    let d = scratch("resume-nothing");
    let f = digits_run(&d, "");
    let o = train_into(&f, &d.join("mistyped"), &["--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
    let o = train_into(&f, &d, &["--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no checkpoint to resume"), "{}", stderr(&o));
}

#[test]
fn a_fresh_run_never_overwrites_a_checkpoint_and_the_reference_has_its_own() {
    let d = scratch("no-overwrite");
    let ckpt = d.join("ckpt");
    let f = digits_run(&d, "");
    assert!(train_into(&f, &ckpt, &["--epochs", "1"]).status.success());
    let before = std::fs::read(ckpt.join("r.ckpt.json")).expect("checkpoint");
    let o = train_into(&f, &ckpt, &["--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("exists: --resume continues it"), "{}", stderr(&o));
    let o = train_into(&f, &ckpt, &["--epochs", "1", "--reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(ckpt.join("r.ckpt.json")).expect("checkpoint"), before, "the IMC run's is untouched");
    assert!(ckpt.join("r.f32.ckpt.json").is_file());
}

#[test]
fn a_fifo_at_the_checkpoint_path_is_an_error_not_a_hang() {
    let d = scratch("fifo");
    let ckpt = d.join("ckpt");
    std::fs::create_dir_all(&ckpt).expect("mkdir");
    let fifo = ckpt.join("r.ckpt.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let f = digits_run(&d, "");
    let o = train_into(&f, &ckpt, &["--resume"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn a_second_process_on_the_same_checkpoint_directory_is_refused() {
    let d = scratch("concurrent");
    let ckpt = d.join("ckpt");
    std::fs::create_dir_all(&ckpt).expect("mkdir");
    // Hold the lock as another imcc process would.
    let held = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(ckpt.join(".imcc.lock"));
    let held = held.expect("lock file");
    held.try_lock().expect("locks");
    let f = digits_run(&d, "");
    let o = train_into(&f, &ckpt, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another imcc process"), "{}", stderr(&o));
    drop(held);
    assert!(train_into(&f, &ckpt, &["--epochs", "1"]).status.success());
}

/// The state of checkpoint `r` in `dir` without its wall-clock fields.
fn checkpoint_state(dir: &Path) -> serde_json::Value {
    let v = json(&dir.join("r.ckpt.json"));
    serde_json::json!({ "state": v["state"], "metrics": v["metrics"], "energy": v["energy"] })
}

#[test]
fn a_kill_during_training_loses_at_most_the_epoch_in_progress() {
    let d = scratch("kill");
    let f = digits_run(&d, "epochs = 40;");
    let whole = d.join("whole");
    assert!(train_into(&f, &whole, &[]).status.success());

    let killed = d.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_imcc"))
        .args(["train", f.to_str().unwrap(), "--limit", "64", "--checkpoint", killed.to_str().unwrap()])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("imcc runs");
    // Kill it (SIGKILL: no chance to clean up) once a checkpoint exists.
    let ckpt = killed.join("r.ckpt.json");
    let t0 = std::time::Instant::now();
    while !ckpt.exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kills");
    child.wait().expect("reaped");
    let done = json(&ckpt)["epochs_done"].as_u64().expect("a complete checkpoint survives the kill");
    assert!(done >= 1);
    let o = train_into(&f, &killed, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(checkpoint_state(&killed) == checkpoint_state(&whole), "resumed after a kill at epoch {done}: differs");
}

#[test]
fn memory_stays_flat_however_many_steps_a_run_takes() {
    // Adaptive ADC ranges (the `full` mapping's MSE ranges) choose a new gain almost every
    // step: the simulator's per-gain tables must not pile up.
    let peak = |epochs: &str| {
        let d = scratch(&format!("memory-{epochs}"));
        let m = d.join("m.json");
        // Two workers (one table cache each) whatever the machine, so the caches fill alike.
        let o = Command::new(env!("CARGO_BIN_EXE_imcc"))
            .args(["train", "examples/digits_mlp.imc", "--train", "full", "--limit", "128", "--epochs", epochs])
            .args(["--metrics-json", m.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", "2")
            .current_dir(root())
            .output()
            .expect("imcc runs");
        assert!(o.status.success(), "{}", stderr(&o));
        json(&m)["runs"][0]["peak_rss_bytes"].as_u64().expect("Linux reports the peak")
    };
    // The simulator's caches fill within the first run (about 60 epochs here: the tables hold
    // only the sums whose code can vary, so many fit); after that, four times the steps must
    // not need more memory. (Before the tables were bounded this grew by about 2 MiB per
    // epoch.)
    let (short, long) = (peak("90"), peak("360"));
    let grown = long.saturating_sub(short) as f64 / (1 << 20) as f64;
    assert!(grown < 8.0, "peak memory grew by {grown:.1} MiB over 4 times the steps ({short} -> {long} bytes)");
}

/// A sweep of two digits points into `out` (`imcc sweep` arguments).
fn sweep_args(d: &Path, out: &Path) -> Vec<String> {
    let f = d.join("s.imc");
    let example = root().join("examples/digits_mlp.imc");
    std::fs::write(
        &f,
        format!(
            "import \"{}\";\nsweep s {{ train = [all_digital]; seed = [1, 2]; limit = 64; epochs = 1; }}\n",
            example.display()
        ),
    )
    .expect("write");
    ["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1"].map(String::from).to_vec()
}

#[test]
fn a_sweep_goes_on_and_keeps_its_results_when_stdout_closes() {
    let d = scratch("closed-sweep");
    let out = d.join("out");
    let args = sweep_args(&d, &out);
    let o = with_closed_stdout(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&out.join("results.json"))["points_done"], 2, "both points trained and were recorded");
}

#[test]
fn a_second_sweep_into_the_same_directory_is_refused() {
    let d = scratch("locked-sweep");
    let out = d.join("out");
    let lock = imcc_driver::checkpoint::lock_dir(&out).expect("lock");
    let args = sweep_args(&d, &out);
    let o = Command::new(env!("CARGO_BIN_EXE_imcc")).args(&args).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("in use by another imcc process"), "{}", stderr(&o));
    drop(lock);
    let o = Command::new(env!("CARGO_BIN_EXE_imcc")).args(&args).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
