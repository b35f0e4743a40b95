//! The JIT against the reference executor, bit for bit.
//!
//! Differential property tests generate small networks with random widths, channel counts,
//! batch sizes (mostly not multiples of the vector width), formats and optimizer settings, run
//! training steps and an evaluation with and without the JIT from the same seed, and compare
//! every value of the step (data, codes and scales), which names the first kernel that differs.
//! Whole-run tests compare metrics and weights through the command line.

use imcc_compiler::loader::MemLoader;
use imcc_runtime::exec::{Executor, Hyper};
use imcc_runtime::ir::{Step, ValueId};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use std::path::Path;

mod common;
use common::imcc;

fn lower(src: &str, train: &str) -> Step {
    let comp = imcc_compiler::compile(Path::new("t.imc"), "t.imc", src, &MemLoader::default());
    let program = comp.program.unwrap_or_else(|| panic!("does not check:\n{src}\n{:?}", comp.diagnostics));
    let run = program.trains.iter().find(|r| r.name == train).expect("train block");
    imcc_compiler::lower::lower(&program, run, None).expect("lowers")
}

/// A deterministic batch for `step` (inputs in [0, 1), labels 0..10).
fn batch(step: &Step, rows: usize, salt: u64) -> (ArrayD<f32>, Vec<u8>) {
    let mut shape = step.value(step.input).shape.clone();
    shape[0] = rows;
    let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s >> 33
    };
    let x = ArrayD::from_shape_fn(IxDyn(&shape), |_| (next() % 1000) as f32 / 1000.0);
    let y = (0..rows).map(|_| (next() % 10) as u8).collect();
    (x, y)
}

#[derive(Debug, Clone)]
struct Case {
    hyper: Hyper,
    batch: usize,
    steps: usize,
}

/// Runs `case` on `step`; returns the executor after the steps and an evaluation on a batch
/// of a different size (the reference path for a partial batch), with every value kept.
fn run(step: &Step, case: &Case, jit: bool) -> (Executor, Vec<f32>) {
    run_as(step, case, jit, false)
}

/// As [`run`]; `hand`: the hand-written Rust kernels in place of the generated code.
fn run_as(step: &Step, case: &Case, jit: bool, hand: bool) -> (Executor, Vec<f32>) {
    let mut ex = Executor::new(step.clone(), case.hyper.clone()).expect("executor");
    if jit {
        ex.enable_jit().expect("compiles");
        ex.use_hand_written_kernels(hand);
    }
    ex.keep_values(true);
    let mut losses = Vec::new();
    for k in 0..case.steps {
        let (x, y) = batch(step, case.batch, k as u64);
        losses.push(ex.train_batch(x, &y, 0.05 + 0.01 * k as f32).expect("trains"));
    }
    let (x, y) = batch(step, case.batch, 99);
    let (loss, correct) = ex.evaluate(x, &y, 0).expect("evaluates");
    losses.push(loss);
    losses.push(correct as f32);
    (ex, losses)
}

/// Compares two executors value by value; names the first difference and the node that wrote it.
fn same(step: &Step, a: &Executor, b: &Executor) -> Result<(), String> {
    // In execution order, so the first difference names the kernel that caused it.
    let order = step.nodes.iter().flat_map(|n| n.outputs.iter().copied());
    for id in std::iter::once(step.input).chain(order) {
        let v = step.value(id);
        let (ta, tb) = (a.value(id), b.value(id));
        let writer = step.nodes.iter().position(|n| n.outputs.contains(&id));
        let name = |what: &str| {
            let op = writer.map_or("input".to_string(), |n| {
                format!("n{n} {}", imcc_runtime::ir::text::op_text(step, &step.nodes[n].op))
            });
            format!("{what} of {id} `{}` (written by {op})", v.name)
        };
        match (ta, tb) {
            (None, None) => {}
            (Some(ta), Some(tb)) => {
                let bits =
                    |t: &imcc_runtime::exec::tensor::Tensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                if ta.data.shape() != tb.data.shape() || bits(ta) != bits(tb) {
                    return Err(name("data"));
                }
                if ta.quant != tb.quant {
                    return Err(name("codes or scale"));
                }
            }
            _ => return Err(name("presence")),
        }
    }
    let (sa, sb) = (a.state(), b.state());
    let bits = |v: &std::collections::BTreeMap<String, Vec<f32>>| {
        v.values().map(|p| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    if bits(&sa.params) != bits(&sb.params) {
        return Err("master parameters differ".into());
    }
    if bits(&sa.velocity) != bits(&sb.velocity) {
        return Err("momentum buffers differ".into());
    }
    if sa.gradscale != sb.gradscale || sa.bn_running != sb.bn_running || sa.adc != sb.adc {
        return Err("GradScale, batch-norm or ADC state differs".into());
    }
    Ok(())
}

fn check(src: &str, train: &str, case: &Case) -> Result<(), TestCaseError> {
    let step = lower(src, train);
    let (a, la) = run(&step, case, true);
    let (b, lb) = run(&step, case, false);
    prop_assert_eq!(a.jit_stats().compiled > 0, true, "no group ran compiled");
    let la: Vec<u32> = la.iter().map(|x| x.to_bits()).collect();
    let lb: Vec<u32> = lb.iter().map(|x| x.to_bits()).collect();
    if let Err(e) = same(&step, &a, &b) {
        return Err(TestCaseError::fail(format!("{e}\n{src}\n{case:?}")));
    }
    prop_assert_eq!(&la, &lb, "losses differ");
    // The benchmark's hand-written Rust baseline computes the same.
    let (c, lc) = run_as(&step, case, true, true);
    if let Err(e) = same(&step, &c, &b) {
        return Err(TestCaseError::fail(format!("hand-written Rust: {e}\n{src}\n{case:?}")));
    }
    prop_assert_eq!(lc.iter().map(|x| x.to_bits()).collect::<Vec<u32>>(), lb, "hand-written Rust losses differ");
    Ok(())
}

fn errors(levels: u32, tpr: bool, odd_backward: bool, mode: &str) -> String {
    let (b, w) = if odd_backward { ("odd", "even") } else { ("even", "odd") };
    format!("radix4(levels = {levels}, tpr = {tpr}, backward = {b}, weight_grad = {w}, gradscale = {mode})")
}

fn hyper(momentum: f32, decay: f32, nesterov: bool) -> Hyper {
    Hyper { momentum, weight_decay: decay, nesterov, seed: 3, accumulate_fp16: false }
}

prop_compose! {
    fn opt()(momentum in prop_oneof![Just(0.0f32), Just(0.9f32), 0.0f32..0.99],
             decay in prop_oneof![Just(0.0f32), 0.0f32..0.01],
             nesterov in any::<bool>()) -> Hyper {
        hyper(momentum, decay, nesterov)
    }
}

fn quant(errors: &str, activations: &str, weights: &str) -> String {
    format!("quant q {{ weights = {weights}; activations = {activations}; errors = {errors}; }}\n")
}

const TAIL: &str = "
mapping m { forward = digital(int4); backward = digital(int4); weight_grad = digital(int4); }
train t { network = n; quant = q; mapping = m; data = digits; batch = 8; optimizer = sgd(lr = 0.1); }
train r extends t { reference = true; }
";

proptest! {
    // 24 cases each by default (CI); PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    /// MLPs: bias, ReLU or PACT, PACT quantizer (learned alpha), its gradients, bias gradients,
    /// radix-4 error quantizers of every setting, SGD and SAWB of every shape.
    #[test]
    fn mlp_kernels_match_the_reference(
        h1 in 1usize..40, h2 in 1usize..23, pact in any::<bool>(),
        levels in 1u32..17, tpr in any::<bool>(), odd in any::<bool>(),
        mode in prop_oneof![Just("current"), Just("incremental"), Just("off")],
        batch in 1usize..37, hyper in opt(), reference in any::<bool>(),
    ) {
        let act = if pact { "pact" } else { "relu" };
        let src = format!(
            "network n {{ input = [64]; fc1: dense({h1}); a1: {act}; fc2: dense({h2}); a2: relu; fc3: dense(10); loss: softmax_cross_entropy; }}\n{}{TAIL}",
            quant(&errors(levels, tpr, odd, mode), "int4_pact(alpha = 4.0)", "int4_sawb"),
        );
        let train = if reference { "r" } else { "t" };
        check(&src, train, &Case { hyper, batch, steps: 3 })?;
    }

    /// CNNs: im2col (host), to-channels-first and back, max or average pooling of several
    /// windows and strides and their gradients, flatten.
    #[test]
    fn cnn_kernels_match_the_reference(
        c1 in 1usize..6, k in 1usize..4, stride in 1usize..3, avg in any::<bool>(), h in 1usize..20,
        batch in 1usize..9, hyper in opt(),
    ) {
        let pool = if avg { "avgpool" } else { "maxpool" };
        let stride = stride.min(k);
        let src = format!(
            "network n {{ input = [1, 8, 8]; c1: conv2d({c1}, kernel = 3, padding = 1); a1: relu; p1: {pool}({k}, stride = {stride}); f: flatten; fc1: dense({h}); a2: relu; fc2: dense(10); loss: softmax_cross_entropy; }}\n{}{TAIL}",
            quant(&errors(8, true, false, "current"), "int4_pact", "int4_sawb"),
        );
        check(&src, "t", &Case { hyper, batch, steps: 2 })?;
    }
}

/// Host nodes inside compiled groups: batch-norm, residual adds, INT8 quantizers of all three
/// kinds, padded pooling.
#[test]
fn host_nodes_inside_compiled_groups_match() {
    let src = format!(
        "network n {{ input = [1, 8, 8]; c1: conv2d(3, kernel = 3, padding = 1); bn: batchnorm; a1: relu; p1: maxpool(3, stride = 2, padding = 1);
           f: flatten; fc1: dense(21); a2: relu; fc2: dense(21); a3: relu; s: add from a2, a3; fc3: dense(10); loss: softmax_cross_entropy; }}\n{}{TAIL}",
        quant("int8", "int8", "int8"),
    )
    .replace("digital(int4)", "digital(int8)");
    let step = lower(&src, "t");
    let case = Case { hyper: hyper(0.9, 1e-4, true), batch: 7, steps: 3 };
    let (a, la) = run(&step, &case, true);
    let (b, lb) = run(&step, &case, false);
    assert!(a.jit_stats().compiled > 0);
    same(&step, &a, &b).unwrap();
    assert_eq!(la.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), lb.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}

/// The JIT reports the reference executor's error for non-finite values.
#[test]
fn non_finite_values_stop_compiled_groups_with_the_reference_error() {
    let src = format!(
        "network n {{ input = [64]; fc1: dense(13); a1: relu; fc2: dense(10); loss: softmax_cross_entropy; }}\n{}{TAIL}",
        quant(&errors(8, true, false, "current"), "int4_pact", "int4_sawb"),
    );
    let step = lower(&src, "t");
    let case = Case { hyper: hyper(0.9, 0.0, false), batch: 6, steps: 1 };
    for jit in [true, false] {
        let (mut ex, _) = run(&step, &case, jit);
        let (mut x, y) = batch(&step, 6, 7);
        x[[1, 5]] = f32::INFINITY;
        let err = ex.train_batch(x, &y, 0.1).expect_err("inf input").to_string();
        assert_eq!(err, "non-finite value in the activations entering `fc1` at step 1", "jit = {jit}");
    }
}

fn metrics_without_speed(p: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).expect("metrics")).expect("json");
    for r in v["runs"].as_array_mut().expect("runs") {
        let r = r.as_object_mut().expect("object");
        r.remove("samples_per_second");
        r.remove("peak_rss_bytes");
    }
    v
}

/// A whole training run (two epochs, partial final batches, evaluation) gives identical
/// metrics and weights with and without the JIT.
#[test]
fn whole_runs_are_identical_with_and_without_the_jit() {
    let dir = std::env::temp_dir().join(format!("imcc-jit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut results = Vec::new();
    for flag in [None, Some("--no-jit")] {
        let sub = dir.join(flag.unwrap_or("jit"));
        std::fs::create_dir_all(&sub).expect("dir");
        let m = sub.join("m.json");
        let c = sub.join("ckpt");
        let mut args = vec![
            "train",
            "tests/train/exact.imc",
            "--limit",
            "200",
            "--metrics-json",
            m.to_str().unwrap(),
            "--checkpoint",
            c.to_str().unwrap(),
        ];
        args.extend(flag);
        let out = imcc(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let state = |n: &str| std::fs::read_to_string(c.join(format!("{n}.ckpt.json"))).expect("checkpoint");
        results.push((metrics_without_speed(&m), state("imc_noisy"), state("digital")));
    }
    assert!(results[0] == results[1], "metrics or checkpoints differ between JIT and --no-jit");
}

/// A malformed step is rejected before any code is generated: by the IR verifier (a dangling
/// value, or an elementwise op whose output shape differs from its input's, against the op's
/// signature); the JIT's plan checks operand lengths again for the kernels it builds.
#[test]
fn malformed_steps_are_rejected_not_compiled() {
    let src = format!(
        "network n {{ input = [64]; fc1: dense(13); a1: relu; fc2: dense(10); loss: softmax_cross_entropy; }}\n{}{TAIL}",
        quant(&errors(8, true, false, "current"), "int4_pact", "int4_sawb"),
    );
    let step = lower(&src, "t");
    assert!(imcc_runtime::jit::plan(&step).is_ok());

    let relu = step.nodes.iter().position(|n| n.op == imcc_runtime::ir::Op::Relu).expect("a relu");
    let mut dangling = step.clone();
    dangling.nodes[relu].inputs[0] = ValueId(10_000);
    let err = imcc_runtime::jit::plan(&dangling).expect_err("dangling value");
    assert!(matches!(err, imcc_runtime::jit::JitError::Verify(_)), "{err}");

    let mut longer = step.clone();
    let out = longer.nodes[relu].outputs[0];
    longer.values[out.index()].shape[1] += 1; // the ReLU would write past its input's length
    let err = imcc_runtime::jit::plan(&longer).expect_err("mismatched lengths");
    assert!(matches!(err, imcc_runtime::jit::JitError::Verify(_)), "{err}");
    assert!(err.to_string().contains("relu writes [8, 14] from [8, 13]"), "{err}");
}

#[test]
fn a_damaged_checkpoint_state_is_refused_before_anything_changes() {
    let src = "network n { input = [1, 8, 8]; c1: conv2d(3, kernel = 3, padding = 1); bn: batchnorm; a1: relu; f: flatten; fc: dense(10); loss: softmax_cross_entropy; }
               train t { network = n; data = digits; batch = 4; }";
    let step = lower(src, "t");
    let hyper = Hyper { momentum: 0.9, weight_decay: 0.0, nesterov: false, seed: 3, accumulate_fp16: false };
    let mut ex = Executor::new(step.clone(), hyper).expect("executor");
    let (x, y) = batch(&step, 4, 1);
    ex.train_batch(x, &y, 0.1).expect("trains");
    let good = ex.state();
    assert_eq!(good.bn_running.len(), 1);
    let mut short = good.clone();
    short.bn_running.values_mut().for_each(|(m, _)| m.truncate(1));
    let e = ex.restore(&short).expect_err("wrong length").to_string();
    assert!(e.contains("batch-norm statistics of lengths 1 and 3 for 3 channels"), "{e}");
    let mut moved = good.clone();
    let (_, v) = moved.bn_running.pop_first().expect("one");
    moved.bn_running.insert("c1.z".into(), v);
    let e = ex.restore(&moved).expect_err("not a BN node").to_string();
    assert!(e.contains("has batch-norm statistics for `c1.z`, which no batch norm writes"), "{e}");
    let mut renamed = good.clone();
    let w = renamed.params.remove("c1.w").expect("a conv weight");
    renamed.params.insert("c2.w".into(), w);
    let e = ex.restore(&renamed).expect_err("another network").to_string();
    assert!(e.contains("has no `c1.w` among its parameters"), "{e}");
    assert_eq!(ex.state(), good, "a refused restore changes nothing");
    ex.restore(&good).expect("the good state restores");
}
