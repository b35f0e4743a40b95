//! Training end to end through the command line: determinism, the golden IMC-equals-digital
//! check, resume, and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::imcc;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imcc-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("written")).expect("json")
}

/// A run's metrics without the wall-clock speed, which legitimately varies.
fn metrics(p: &Path) -> serde_json::Value {
    let mut v = json(p);
    for r in v["runs"].as_array_mut().expect("runs") {
        let r = r.as_object_mut().expect("object");
        r.remove("samples_per_second");
        r.remove("peak_rss_bytes");
    }
    v
}

fn train(dir: &Path, train: &str, extra: &[&str]) -> Output {
    let m = dir.join("metrics.json");
    let c = dir.join("ckpt");
    let mut args = vec![
        "train",
        "tests/train/exact.imc",
        "--train",
        train,
        "--metrics-json",
        m.to_str().unwrap(),
        "--checkpoint",
        c.to_str().unwrap(),
    ];
    if !extra.contains(&"--limit") {
        args.extend_from_slice(&["--limit", "256"]);
    }
    args.extend_from_slice(extra);
    imcc(&args)
}

fn state(dir: &Path, name: &str) -> serde_json::Value {
    json(&dir.join("ckpt").join(format!("{name}.ckpt.json")))["state"].clone()
}

#[test]
fn imc_without_noise_or_adc_loss_is_bit_identical_to_digital() {
    let (a, b) = (scratch("imc"), scratch("dig"));
    ok(&train(&a, "imc_exact", &[]));
    ok(&train(&b, "digital", &[]));
    let (sa, sb) = (state(&a, "imc_exact"), state(&b, "digital"));
    assert!(sa["params"] == sb["params"], "master weights differ after two epochs");
    let (ma, mb) = (metrics(&a.join("metrics.json")), metrics(&b.join("metrics.json")));
    assert_eq!(ma["runs"][0]["epochs"][1]["train_loss"], mb["runs"][0]["epochs"][1]["train_loss"]);
    assert_eq!(ma["runs"][0]["final_test_accuracy"], mb["runs"][0]["final_test_accuracy"]);
}

#[test]
fn the_noisy_chip_differs_from_digital_but_trains() {
    let (a, b) = (scratch("noisy"), scratch("dig2"));
    ok(&train(&a, "imc_noisy", &[]));
    ok(&train(&b, "digital", &[]));
    assert_ne!(state(&a, "imc_noisy")["params"], state(&b, "digital")["params"]);
    let acc = metrics(&a.join("metrics.json"))["runs"][0]["final_test_accuracy"].as_f64().expect("accuracy");
    // Chance is 0.1; over seeds 1-8 this tiny run (256 samples, 2 epochs) reaches 0.50-0.75.
    assert!(acc > 0.4, "trains on 256 samples for 2 epochs: {acc}");
}

#[test]
fn same_seed_same_result() {
    let (a, b) = (scratch("det1"), scratch("det2"));
    ok(&train(&a, "imc_noisy", &["--epochs", "1"]));
    ok(&train(&b, "imc_noisy", &["--epochs", "1"]));
    assert!(metrics(&a.join("metrics.json")) == metrics(&b.join("metrics.json")), "metrics differ run to run");
    assert!(state(&a, "imc_noisy") == state(&b, "imc_noisy"), "weights differ run to run");
}

#[test]
fn resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let (a, b) = (scratch("full"), scratch("resumed"));
    ok(&train(&a, "imc_noisy", &["--epochs", "2"]));
    ok(&train(&b, "imc_noisy", &["--epochs", "1"]));
    ok(&train(&b, "imc_noisy", &["--epochs", "2", "--resume"]));
    assert!(state(&a, "imc_noisy") == state(&b, "imc_noisy"), "resumed state differs");
    assert!(metrics(&a.join("metrics.json")) == metrics(&b.join("metrics.json")), "resumed metrics differ");
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step() {
    use imcc_compiler::loader::MemLoader;
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/train/exact.imc")).expect("fixture");
    let comp = imcc_compiler::compile(Path::new("exact.imc"), "exact.imc", &src, &MemLoader::default());
    let program = comp.program.expect("checks");
    let run = program.trains.iter().find(|r| r.name == "imc_noisy").expect("run");
    let step = imcc_compiler::lower::lower(&program, run, None).expect("lowers");
    let hyper = imcc_runtime::exec::Hyper {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        seed: 1,
        accumulate_fp16: false,
    };
    let mut ex = imcc_runtime::exec::Executor::new(step, hyper).expect("executor");
    let x = ndarray::ArrayD::from_elem(ndarray::IxDyn(&[4, 64]), 0.5f32);
    ex.train_batch(x.clone(), &[1, 2, 3, 4], 0.1).expect("a good step");
    let mut bad = x;
    bad[[2, 7]] = f32::NAN;
    let err = ex.train_batch(bad, &[1, 2, 3, 4], 0.1).expect_err("NaN input").to_string();
    assert_eq!(err, "non-finite value in the activations entering `fc1` at step 1");
}

#[test]
fn missing_data_is_a_clear_error() {
    let dir = scratch("nodata");
    let f = dir.join("m.imc");
    std::fs::write(&f, "network n { input = [784]; fc: dense(10); loss: softmax_cross_entropy; }\ntrain t { network = n; data = mnist(dir = \"/no/such/dir\"); }\n").expect("write");
    let out = imcc(&["train", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/dir/train-images-idx3-ubyte: no such file"), "{err}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let run = |threads: &str, dir: &Path| {
        let m = dir.join("metrics.json");
        let c = dir.join("ckpt");
        let out = Command::new(env!("CARGO_BIN_EXE_imcc"))
            .args(["train", "tests/train/exact.imc", "--train", "imc_noisy", "--limit", "128", "--epochs", "1"])
            .args(["--metrics-json", m.to_str().unwrap(), "--checkpoint", c.to_str().unwrap()])
            .env("RAYON_NUM_THREADS", threads)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("imcc runs");
        ok(&out);
    };
    let (a, b) = (scratch("t1"), scratch("t3"));
    run("1", &a);
    run("3", &b);
    assert!(state(&a, "imc_noisy") == state(&b, "imc_noisy"), "weights differ between 1 and 3 threads");
    assert!(
        metrics(&a.join("metrics.json")) == metrics(&b.join("metrics.json")),
        "metrics differ between 1 and 3 threads"
    );
}

#[test]
fn evaluating_after_every_epoch_changes_nothing_in_training() {
    let (a, b) = (scratch("eval-each"), scratch("eval-last"));
    ok(&train(&a, "eval_each", &[]));
    ok(&train(&b, "eval_last", &[]));
    let (sa, sb) = (state(&a, "eval_each"), state(&b, "eval_last"));
    assert!(sa["params"] == sb["params"], "master weights differ");
    assert!(sa["adc"] == sb["adc"], "ADC running statistics differ");
    let (ma, mb) = (metrics(&a.join("metrics.json")), metrics(&b.join("metrics.json")));
    for e in 0..3 {
        assert_eq!(ma["runs"][0]["epochs"][e]["train_loss"], mb["runs"][0]["epochs"][e]["train_loss"]);
        assert_eq!(ma["runs"][0]["epochs"][e]["energy_joules"], mb["runs"][0]["epochs"][e]["energy_joules"]);
    }
    assert_eq!(ma["runs"][0]["final_test_accuracy"], mb["runs"][0]["final_test_accuracy"]);
    assert!(ma["runs"][0]["epochs"][0]["test_accuracy"].is_number());
    assert!(mb["runs"][0]["epochs"][0]["test_accuracy"].is_null());
}

#[test]
fn a_short_last_batch_is_priced_at_its_own_size() {
    let per_sample = |limit: &str| {
        let d = scratch(&format!("tail-{limit}"));
        ok(&train(&d, "imc_noisy", &["--limit", limit]));
        metrics(&d.join("metrics.json"))["runs"][0]["energy_joules_per_sample"].as_f64().expect("energy")
    };
    let (full, one_more) = (per_sample("64"), per_sample("65"));
    // One extra sample is one more step of batch 1: per sample it costs more (the update and the
    // array writes are per step), but nothing like a whole batch's operand moves and remainder.
    let ratio = one_more / full;
    assert!((0.98..1.08).contains(&ratio), "J/sample with one sample more: {ratio}x");
}

#[test]
fn the_gains_a_run_ended_with_are_reported() {
    let d = scratch("gains");
    let o = train(&d, "imc_noisy", &["--epochs", "1"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("imc_noisy: final ADC gains: fc1.forward"));
    let gains = &metrics(&d.join("metrics.json"))["runs"][0]["final_adc_gains"];
    let fwd = gains["fc1.forward"].as_array().expect("per plane");
    assert!(!fwd.is_empty() && fwd.iter().all(|g| g.as_f64().is_some_and(|g| g >= 1.0)), "{gains}");
}

#[test]
fn cifar10_trains_from_its_binary_batches() {
    let d = scratch("cifar");
    let data = d.join("cifar");
    std::fs::create_dir_all(&data).expect("mkdir");
    let mut s = 7u32;
    let mut byte = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 24) as u8
    };
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        let mut records = Vec::new();
        for label in 0..4u8 {
            records.push(label);
            records.extend((0..3072).map(|_| byte()));
        }
        std::fs::write(data.join(name), records).expect("writes");
    }
    let f = d.join("cifar.imc");
    std::fs::write(
        &f,
        format!(
            "network n {{ input = [3, 32, 32]; c: conv2d(4, kernel = 3, stride = 2); a: relu; p: maxpool(3); f: flatten; fc: dense(10); loss: softmax_cross_entropy; }}\n\
             train t {{ network = n; data = cifar10(\"{}\"); batch = 8; }}\n",
            data.display()
        ),
    )
    .expect("writes");
    let m = d.join("m.json");
    let o = imcc(&["train", f.to_str().unwrap(), "--metrics-json", m.to_str().unwrap()]);
    ok(&o);
    let v = metrics(&m);
    assert_eq!(v["runs"][0]["epochs"][0]["epoch"], 1);
    assert!(v["runs"][0]["final_test_accuracy"].as_f64().is_some());
}
