//! `imcc eval`: a run trained into a checkpoint, tested at other noise levels and on another
//! chip; at the trained settings it reproduces the run's own test accuracy exactly.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn imcc(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imcc")).args(args).output().expect("imcc runs")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imcc-eval-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn a_checkpoint_is_tested_at_other_noise_and_on_another_chip() {
    let d = tempdir("noise");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.imc");
    let (ck, metrics) = (d.join("ck"), d.join("m.json"));
    let o = imcc(&[
        "train".as_ref(),
        example.as_os_str(),
        "--train".as_ref(),
        "full".as_ref(),
        "--epochs".as_ref(),
        "2".as_ref(),
        "--limit".as_ref(),
        "256".as_ref(),
        "--checkpoint".as_ref(),
        ck.as_os_str(),
        "--metrics-json".as_ref(),
        metrics.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("JSON");
    let trained = m["runs"][0]["final_test_accuracy"].as_f64().expect("accuracy");

    let eval = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["eval".as_ref(), example.as_os_str(), "--checkpoint".as_ref(), ck.as_os_str()];
        args.extend(["--train", "full", "--json"].iter().map(std::ffi::OsStr::new));
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let o = imcc(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        v["evaluations"].as_array().expect("evaluations").clone()
    };
    // At the trained settings: the run's own final test accuracy, bit for bit.
    let own = eval(&[]);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["sigma_lsb"], 0.05);
    assert_eq!(own[0]["test_accuracy"].as_f64(), Some(trained));
    // At other noise levels: one evaluation each, and far more noise costs accuracy.
    let sweep = eval(&["--sigma-lsb", "0,0.05,2"]);
    let acc: Vec<f64> = sweep.iter().map(|e| e["test_accuracy"].as_f64().expect("accuracy")).collect();
    assert_eq!(acc.len(), 3);
    assert_eq!(acc[1], trained, "the same noise level gives the same accuracy");
    assert!(acc[2] < acc[0] - 0.2, "sigma 2 LSB should wreck what sigma 0 keeps: {acc:?}");
    // On the two-level chip of the same file.
    let other = eval(&["--hardware", "cimu16_two_level"]);
    assert_eq!(other[0]["hardware"], "cimu16_two_level");

    // No checkpoint of the run: a clear error.
    let o = imcc(&[
        "eval".as_ref(),
        example.as_os_str(),
        "--checkpoint".as_ref(),
        ck.as_os_str(),
        "--train".as_ref(),
        "two_level".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no checkpoint of `two_level`"));
    // An unknown chip: a usage error naming the chips there are.
    let o = imcc(&[
        "eval".as_ref(),
        example.as_os_str(),
        "--checkpoint".as_ref(),
        ck.as_os_str(),
        "--hardware".as_ref(),
        "nope".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cimu16_two_level"));
    let _ = std::fs::remove_dir_all(&d);
}
