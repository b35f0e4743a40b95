//! The cost model's time side (`spec/energy.md`), end to end through `imcc cost --json`: the
//! calibration against the 16 nm chip's published peak, each MVM's time against the spec's
//! formulas worked by hand, the multi-level DAC's cycle saving, the JSON a tool reads, and
//! `imcc train`'s modelled chip time.

mod common;
use common::imcc;

fn cost(file: &str) -> serde_json::Value {
    let out = imcc(&["cost", file, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn run<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["runs"].as_array().expect("runs").iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("run {name}"))
}

fn mvm<'a>(r: &'a serde_json::Value, layer: &str, kind: &str) -> &'a serde_json::Value {
    r["mvms"].as_array().expect("mvms").iter().find(|m| m["layer"] == layer && m["mvm"] == kind).expect("mvm")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

#[test]
fn the_default_chip_reproduces_the_published_8b_peak_within_ten_percent() {
    let v = cost("tests/cost/timing.imc");
    let peak = v["hardware"]["chip"]["peak_tops_8b"].as_f64().expect("peak");
    // JSSC 2022: 3 TOPS at 8-b operations for the 16 nm 4x4-core chip.
    assert!((peak / 3.0 - 1.0).abs() < 0.10, "{peak} TOPS");
    // 16 cores x 1152 rows x 32 8-b weights, two ops per MAC, over 8 plane cycles of 49 ns.
    assert!(close(peak * 1e12, 2.0 * 16.0 * 1152.0 * 32.0 / (8.0 * 49e-9)), "{peak}");
}

#[test]
fn mvm_times_follow_the_spec_formulas() {
    let v = cost("tests/cost/timing.imc");
    let base = run(&v, "base");
    let (cycle, bw) = (49e-9, 256e9);
    // fc1 forward: 32 vectors x 4 INT4 planes x 1 pass, one tile; W (32x64 INT4) written at
    // 256 Gb/s; its inputs (32 x 64 x 4 bits) stream during the cycles.
    let fwd = 32.0 * 4.0 * cycle + 32.0 * 64.0 * 4.0 / bw;
    assert!(close(mvm(base, "fc1", "forward")["seconds"].as_f64().expect("s"), fwd));
    // fc2 backward: Wᵀ (32x10) x radix-4 errors: 8 exponent planes x 2 sign passes.
    let bwd = 32.0 * 16.0 * cycle + 32.0 * 10.0 * 4.0 / bw;
    assert!(close(mvm(base, "fc2", "backward")["seconds"].as_f64().expect("s"), bwd));
    // Eight columns per ADC: a plane cycle converts eight columns one after another.
    let shared = run(&v, "shared");
    let fwd8 = 32.0 * 4.0 * (10e-9 + 8.0 * 39e-9) + 32.0 * 64.0 * 4.0 / bw;
    assert!(close(mvm(shared, "fc1", "forward")["seconds"].as_f64().expect("s"), fwd8));
    // A 5-b DAC applies an INT4 input in one cycle and 8 radix-4 exponents in 3.
    let dac = run(&v, "dac");
    assert!(close(mvm(dac, "fc1", "forward")["seconds"].as_f64().expect("s"), 32.0 * cycle + 32.0 * 64.0 * 4.0 / bw));
    assert!(close(mvm(dac, "fc2", "backward")["seconds"].as_f64().expect("s"), 32.0 * 6.0 * cycle + 1280.0 / bw));
    assert!(close(v["hardware"]["dac_rows"]["dac_saving_5b"].as_f64().expect("saving"), 5.0));
    // Writes serialize: at 1 Gb/s the weight write dominates the forward MVM.
    let writes = run(&v, "writes");
    let slow = 32.0 * 4.0 * cycle + 32.0 * 64.0 * 4.0 / 1e9;
    assert!(close(mvm(writes, "fc1", "forward")["seconds"].as_f64().expect("s"), slow));
}

#[test]
fn the_json_has_the_step_time_throughput_and_efficiency() {
    let v = cost("examples/mnist_mlp.imc");
    for r in v["runs"].as_array().expect("runs") {
        let t = &r["time"];
        let (s, sps) = (t["step_seconds"].as_f64().expect("step"), t["samples_per_second"].as_f64().expect("sps"));
        assert!(s > 0.0 && close(sps, 64.0 / s), "{}", r["name"]);
        // The step is the sum of its parts, the MVMs' and the remainder's.
        let parts: f64 =
            t["breakdown"].as_array().expect("breakdown").iter().map(|p| p["seconds"].as_f64().unwrap_or(0.0)).sum();
        assert!((parts / s - 1.0).abs() < 1e-9);
        let edp = r["edp_joule_seconds"].as_f64().expect("edp");
        assert!(close(edp, s * r["energy_per_step_joules"].as_f64().expect("j")));
        for m in r["mvms"].as_array().expect("mvms") {
            let (macs, j, sec) = (
                m["macs"].as_f64().expect("macs"),
                m["joules"].as_f64().expect("j"),
                m["seconds"].as_f64().expect("s"),
            );
            assert!(close(m["tops"].as_f64().expect("tops"), 2.0 * macs / sec / 1e12));
            assert!(close(m["tops_per_watt"].as_f64().expect("tops/w"), 2.0 * macs / j / 1e12));
            if m["target"] == "imc" {
                let u = &m["utilization"];
                let rows = u["rows"].as_f64().expect("rows");
                assert!(rows > 0.0 && rows <= 1.0 && u["cols"].as_f64().expect("cols") <= 1.0);
            }
        }
    }
    let full = run(&v, "full");
    // The weight gradient reduces over the batch: 64 of 1152 rows.
    let wg = mvm(full, "fc1", "weight_grad");
    assert!(close(wg["utilization"]["rows"].as_f64().expect("rows"), 64.0 / 1152.0));
    assert!(v["hardware"]["cimu16"]["peak_tops_8b"].as_f64().is_some());
    // `imcc energy` is the same command.
    let old = imcc(&["energy", "examples/mnist_mlp.imc", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&old.stdout).expect("json"), v);
}

#[test]
fn placement_by_cost_is_no_worse_than_any_fixed_policy_and_strictly_better_on_the_mlps() {
    for file in ["examples/mnist_mlp.imc", "examples/digits_mlp.imc"] {
        let v = cost(file);
        let auto = run(&v, "auto");
        let mvm_joules = auto["mvm_energy_per_step_joules"].as_f64().expect("mvm joules");
        let best_fixed = ["full", "two_level", "all_digital"]
            .iter()
            .map(|n| run(&v, n)["mvm_energy_per_step_joules"].as_f64().expect("mvm joules"))
            .fold(f64::INFINITY, f64::min);
        assert!(mvm_joules < best_fixed, "{file}: auto {mvm_joules} vs best fixed {best_fixed}");
        let record = &auto["placement"];
        assert_eq!(record["objective"], "energy");
        assert_eq!(record["compared"][0]["policy"], "chosen");
    }
}

#[test]
fn train_reports_the_modelled_chip_time_of_an_epoch() {
    let dir = std::env::temp_dir().join(format!("imcc-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let metrics = dir.join("m.json");
    let out = imcc(&[
        "train",
        "examples/digits_mlp.imc",
        "--train",
        "auto",
        "--epochs",
        "1",
        "--limit",
        "100",
        "--metrics-json",
        metrics.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("modelled chip time"));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("json");
    let chip = m["runs"][0]["chip_seconds_per_epoch"].as_f64().expect("chip time");
    let step = run(&cost("examples/digits_mlp.imc"), "auto")["time"]["step_seconds"].as_f64().expect("step");
    // 100 samples at batch 32: three full steps and a short one of 4 samples.
    assert!(chip > 3.0 * step && chip < 4.0 * step, "{chip} vs {step}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_spec_states_the_modelled_cifar_inference_throughput() {
    let v = cost("examples/paper/cifar_cnn.imc");
    let ips = run(&v, "full")["inference"]["samples_per_second"].as_f64().expect("images/s");
    let spec =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/energy.md")).expect("spec");
    let stated = format!("{},{:03} images/s", ips as u64 / 1000, ips as u64 % 1000);
    assert!(spec.contains(&stated), "spec/energy.md should state the model's {stated} beside the published 7,815");
}
