//! The energy model: the measured energy of training steps (the simulator's event counts)
//! agrees with `imcc energy`'s estimate from the IR when no plane is skipped, and differs by
//! exactly the skipped conversions otherwise.

use imcc_compiler::loader::MemLoader;
use imcc_runtime::energy;
use imcc_runtime::exec::{Executor, Hyper, MvmCounts};
use std::path::Path;

fn measure(train: &str, steps: usize) -> (imcc_runtime::ir::Step, Vec<MvmCounts>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("tests/energy/agree.imc")).expect("fixture");
    let comp = imcc_compiler::compile(Path::new("agree.imc"), "agree.imc", &src, &MemLoader::default());
    let program = comp.program.expect("checks");
    let run = program.trains.iter().find(|r| r.name == train).expect("run");
    let step = imcc_compiler::lower::lower(&program, run, None).expect("lowers");
    let data = imcc_runtime::data::load_digits(&root.join("data/digits"), 0.2, 1).expect("digits");
    let hyper = Hyper { momentum: 0.9, weight_decay: 0.0, nesterov: false, seed: 1, accumulate_fp16: false };
    let mut ex = Executor::new(step.clone(), hyper).expect("executor");
    ex.take_counts(); // initial programming is not a training step
    let mut total = vec![MvmCounts::default(); step.mvms.len()];
    for s in 0..steps {
        let idx: Vec<usize> = (s * 32..(s + 1) * 32).collect();
        let x = imcc_runtime::data::gather(data.train_x.view(), &idx).into_dyn();
        let y: Vec<u8> = idx.iter().map(|&i| data.train_y[i]).collect();
        ex.train_batch(x, &y, 0.05).expect("trains");
        for (t, c) in total.iter_mut().zip(ex.take_counts()) {
            t.events += c.events;
            t.digital_macs += c.digital_macs;
            t.calls += c.calls;
        }
    }
    (step, total)
}

#[test]
fn measured_equals_estimate_without_skipping() {
    let (step, counts) = measure("every_plane", 4);
    let est = energy::estimate(&step).total();
    let meas = energy::measured(&step, &counts, 4).total();
    let rel = (meas - est).abs() / est;
    assert!(rel < 0.01, "measured {meas:e} J/step vs estimated {est:e} J/step: {:.4}%", rel * 100.0);
    assert!(rel < 1e-9, "with no plane skipped the counts are the same: {:.2e}", rel);
}

#[test]
fn skipped_planes_explain_the_difference() {
    let (step, counts) = measure("skipping", 4);
    let est = energy::estimate(&step).total();
    let meas = energy::measured(&step, &counts, 4).total();
    let skipped: u64 = counts.iter().map(|c| c.events.skipped_conversions).sum();
    assert!(skipped > 0, "radix-4 errors leave exponent planes empty");
    let e = &step.hardware.energy;
    let per_conversion = e.column_eval + e.adc_conversion + e.shift_add;
    let explained = skipped as f64 / 4.0 * per_conversion;
    assert!(meas < est);
    assert!(((est - meas) - explained).abs() <= 1e-9 * est, "difference {:e} J vs skipped {explained:e} J", est - meas);
}
