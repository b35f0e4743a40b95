//! `imcc train`: runs the train blocks of a file, with progress, a results table, metrics JSON
//! and checkpoints.

use crate::checkpoint::{self, Checkpoint, RunRecord};
use imcc_compiler::lower;
use imcc_compiler::program::{DataSet, Schedule, TrainRun};
use imcc_runtime::config::{Mvm, Precision};
use imcc_runtime::data::{self, Dataset};
use imcc_runtime::energy;
use imcc_runtime::exec::{Executor, Hyper, MvmCounts};
use imcc_runtime::ir::Step;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, Axis, IxDyn};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options from the command line.
pub struct Options {
    /// Override every run's epochs.
    pub epochs: Option<u64>,
    /// Run the f32 reference instead.
    pub reference: bool,
    /// Override the noise of every run's hardware (sweeps).
    pub sigma_lsb: Option<f64>,
    /// Use at most this many training samples (quick runs).
    pub limit: Option<usize>,
    /// Checkpoint directory.
    pub checkpoint: Option<PathBuf>,
    /// Resume from the checkpoint directory.
    pub resume: bool,
    /// On resume, accept settings that differ from the checkpoint's (not the seed or the data).
    pub accept_changes: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Evaluate on the test set (off for speed measurements).
    pub eval: bool,
    /// Run the digital remainder as JIT-compiled code (off: the reference executor).
    pub jit: bool,
}

/// One epoch's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Test accuracy, when evaluated.
    pub test_accuracy: Option<f64>,
    /// Training energy so far.
    pub energy_joules: f64,
}

/// A run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// The train block.
    pub name: String,
    /// The mapping policy (or `f32 reference`).
    pub policy: String,
    /// Per epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch.
    pub final_test_accuracy: f64,
    /// Training energy per training sample.
    pub energy_joules_per_sample: f64,
    /// Energy by MVM kind and component, in joules, over the run.
    #[serde(default)]
    pub energy_breakdown: BTreeMap<String, BTreeMap<String, f64>>,
    /// Training samples per second (wall clock, this machine; evaluation and checkpoint writes
    /// excluded).
    #[serde(default)]
    pub samples_per_second: f64,
    /// The ADC gain of each input plane of each IMC MVM in the last training step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_adc_gains: BTreeMap<String, Vec<f64>>,
    /// Peak resident memory of the process so far, in bytes (Linux `VmHWM`; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn load_data(d: &DataSet, seed: u64) -> Result<Dataset, String> {
    let r = match d {
        DataSet::Digits { test_fraction, dir } => data::load_digits(Path::new(dir), *test_fraction, seed),
        DataSet::Mnist { dir } => data::load_idx_dir(Path::new(dir), 10),
        DataSet::Idx { dir, classes } => data::load_idx_dir(Path::new(dir), *classes),
    };
    r.map_err(|e| format!("cannot load data: {e}"))
}

fn lr_at(run: &TrainRun, epoch: u64, epochs: u64) -> f32 {
    let base = run.optimizer.lr;
    let lr = match &run.schedule {
        Schedule::Constant => base,
        Schedule::Step { every, gamma } => base * gamma.powi((epoch / every) as i32),
        Schedule::Cosine { min_lr } => {
            min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
        }
    };
    lr as f32
}

fn batch(x: &ndarray::Array2<f32>, idx: &[usize], input: &[usize]) -> ArrayD<f32> {
    let rows = x.select(Axis(0), idx);
    let shape: Vec<usize> = std::iter::once(idx.len()).chain(input.iter().copied()).collect();
    rows.into_shape_with_order(IxDyn(&shape)).expect("features match the input shape (checked by the compiler)")
}

/// Adds one training step's measured energy (the simulator's events, the digital MACs, and the
/// digital remainder) to the running totals.
fn add_energy(step: &Step, counts: &[MvmCounts], total: &mut f64, by: &mut BTreeMap<String, BTreeMap<String, f64>>) {
    let ledger = energy::measured(step, counts, 1);
    *total += ledger.total();
    for r in &ledger.rows {
        *by.entry(r.mvm.clone()).or_default().entry(r.component.to_string()).or_default() += r.joules;
    }
}

fn evaluate(ex: &mut Executor, d: &Dataset, input: &[usize], batch_size: usize) -> Result<f64, String> {
    let mut correct = 0usize;
    let n = d.test_y.len();
    let idx: Vec<usize> = (0..n).collect();
    for (k, chunk) in idx.chunks(batch_size).enumerate() {
        let x = batch(&d.test_x, chunk, input);
        let y: Vec<u8> = chunk.iter().map(|&i| d.test_y[i]).collect();
        let (_, c) = ex.evaluate(x, &y, k as u64).map_err(|e| e.to_string())?;
        correct += c;
    }
    Ok(correct as f64 / n.max(1) as f64)
}

/// What a run trains with, for its checkpoint ([`checkpoint::check_resume`]).
fn run_record(
    program: &imcc_compiler::program::Program,
    run: &TrainRun,
    d: &Dataset,
    n_train: usize,
) -> Result<RunRecord, String> {
    let o = &run.optimizer;
    // The rest (network, quantization, mapping, hardware) as lowered, with the entries above
    // fixed so that each difference is named once.
    let mut canonical = run.clone();
    (canonical.batch, canonical.hardware.noise.sigma_lsb) = (1, 0.0);
    let lowered = imcc_runtime::ir::text::print(&lower_run(program, &canonical)?);
    let entries = [
        ("seed", run.seed.to_string()),
        // What the samples are, not where they lie: a moved data directory resumes.
        ("data", format!("{}, fingerprint {:016x}", data_kind(&run.data), d.fingerprint())),
        ("training samples", n_train.to_string()),
        ("batch", run.batch.to_string()),
        (
            "optimizer",
            format!(
                "sgd(lr = {}, momentum = {}, weight_decay = {}, nesterov = {})",
                o.lr, o.momentum, o.weight_decay, o.nesterov
            ),
        ),
        ("schedule", format!("{:?}", run.schedule)),
        ("noise sigma_lsb", run.hardware.noise.sigma_lsb.to_string()),
        ("variant", if run.reference { "f32 reference" } else { "as mapped" }.to_string()),
        ("network, quantization, mapping, hardware", format!("lowered to {:016x}", text_fingerprint(&lowered))),
    ];
    Ok(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn data_kind(d: &DataSet) -> String {
    match d {
        DataSet::Digits { test_fraction, .. } => format!("digits(test_fraction = {test_fraction})"),
        DataSet::Mnist { .. } => "mnist".into(),
        DataSet::Idx { classes, .. } => format!("idx(classes = {classes})"),
    }
}

/// FNV-1a of a text (stable across releases, unlike `std`'s hasher).
fn text_fingerprint(t: &str) -> u64 {
    t.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}

fn lower_run(program: &imcc_compiler::program::Program, run: &TrainRun) -> Result<Step, String> {
    match lower::lower(program, run, None) {
        Ok(s) => Ok(s),
        Err(lower::LowerError::Diagnostics(_)) => Err(format!("`{}` cannot be lowered; run `imcc check`", run.name)),
        Err(lower::LowerError::Internal(e)) => Err(format!("internal compiler error: {e}")),
    }
}

/// Trains one run; returns its metrics.
pub fn run(program: &imcc_compiler::program::Program, run: &TrainRun, opts: &Options) -> Result<RunMetrics, String> {
    let mut run = run.clone();
    if opts.reference {
        run.reference = true;
    }
    if let Some(s) = opts.sigma_lsb {
        run.hardware.noise.sigma_lsb = s;
    }
    let epochs = opts.epochs.unwrap_or(run.epochs);
    let step = lower_run(program, &run)?;
    let input: Vec<usize> = step.value(step.input).shape[1..].to_vec();
    let d = load_data(&run.data, run.seed)?;
    let features: usize = input.iter().product();
    if d.features() != features {
        return Err(format!(
            "the data has {} features per sample, the network input {input:?} holds {features}",
            d.features()
        ));
    }
    let n_train = opts.limit.map_or(d.train_y.len(), |l| l.min(d.train_y.len()));
    // The last batch of an epoch may be short; its energy is priced at its own size (operand
    // moves and the digital remainder scale with the batch), from the step lowered at that size.
    let tail = n_train % run.batch;
    let tail_step = if tail > 0 { Some(lower_run(program, &TrainRun { batch: tail, ..run.clone() })?) } else { None };
    let hyper = Hyper {
        momentum: run.optimizer.momentum as f32,
        weight_decay: run.optimizer.weight_decay as f32,
        nesterov: run.optimizer.nesterov,
        seed: run.seed,
        accumulate_fp16: run.accumulate == Precision::Fp16,
    };
    let mut ex = Executor::new(step.clone(), hyper).map_err(|e| format!("`{}`: {e}", run.name))?;
    if opts.jit {
        ex.enable_jit().map_err(|e| format!("`{}`: {e}", run.name))?;
    }
    ex.take_counts(); // loading the initial weights into the arrays is not a training step
    let policy = if run.reference {
        "f32 reference".to_string()
    } else {
        run.mapping.clone().unwrap_or_else(|| "default".into())
    };

    let record = run_record(program, &run, &d, n_train)?;
    let ckpt_path = opts.checkpoint.as_ref().map(|d| checkpoint::path(d, &run.name, run.reference));
    let (mut start, mut samples, mut energy_total, mut breakdown, mut metrics) =
        (0u64, 0u64, 0.0f64, BTreeMap::new(), Vec::new());
    if let Some(path) = ckpt_path.as_ref().filter(|p| opts.resume && p.exists()) {
        let c = checkpoint::load(path, &run.name)?;
        checkpoint::check_resume(path, &c.run, &record, opts.accept_changes)?;
        ex.restore(&c.state).map_err(|e| format!("{}: {e}", path.display()))?;
        (start, samples, energy_total, breakdown, metrics) =
            (c.epochs_done, c.samples, c.energy, c.breakdown, c.metrics);
    }

    let steps_per_epoch = n_train.div_ceil(run.batch) as u64;
    let bar = if opts.progress {
        ProgressBar::new(steps_per_epoch * epochs.saturating_sub(start))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}").expect("template").progress_chars("=> "),
    );
    bar.set_prefix(run.name.clone());
    // Training time only: evaluation and checkpoint writes are not training speed.
    let mut training_time = std::time::Duration::ZERO;
    let mut trained_now = 0u64;
    for epoch in start..epochs {
        let t0 = Instant::now();
        let lr = lr_at(&run, epoch, epochs);
        let order = data::epoch_order(d.train_y.len(), run.seed, epoch);
        let order = &order[..n_train];
        let mut loss_sum = 0.0f64;
        let mut batches = 0u64;
        for chunk in order.chunks(run.batch) {
            let x = batch(&d.train_x, chunk, &input);
            let y: Vec<u8> = chunk.iter().map(|&i| d.train_y[i]).collect();
            let loss = ex.train_batch(x, &y, lr).map_err(|e| format!("`{}`: {e}", run.name))?;
            loss_sum += loss as f64;
            batches += 1;
            samples += chunk.len() as u64;
            trained_now += chunk.len() as u64;
            let priced = if chunk.len() == run.batch { &step } else { tail_step.as_ref().unwrap_or(&step) };
            add_energy(priced, &ex.take_counts(), &mut energy_total, &mut breakdown);
            bar.inc(1);
            let rate = trained_now as f64 / (training_time + t0.elapsed()).as_secs_f64().max(1e-9);
            let acc = metrics
                .last()
                .and_then(|m: &EpochMetrics| m.test_accuracy)
                .map_or(String::new(), |a| format!(" acc {a:.4}"));
            bar.set_message(format!(
                "epoch {}/{epochs} loss {:.4}{acc} {:.0} samples/s {:.3e} J",
                epoch + 1,
                loss_sum / batches as f64,
                rate,
                energy_total
            ));
        }
        training_time += t0.elapsed();
        let last = epoch + 1 == epochs;
        let acc = if ((epoch + 1) % run.eval_every == 0 || last) && opts.eval {
            Some(evaluate(&mut ex, &d, &input, run.batch)?)
        } else {
            None
        };
        ex.take_counts(); // evaluation is not training energy
        metrics.push(EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / batches.max(1) as f64,
            test_accuracy: acc,
            energy_joules: energy_total,
        });
        if let Some(path) = &ckpt_path {
            let c = Checkpoint {
                format: checkpoint::FORMAT.into(),
                train: run.name.clone(),
                run: record.clone(),
                epochs_done: epoch + 1,
                samples,
                energy: energy_total,
                breakdown: breakdown.clone(),
                metrics: metrics.clone(),
                state: ex.state(),
            };
            crate::durable::write_atomic(path, serde_json::to_string(&c).map_err(|e| e.to_string())?.as_bytes())?;
        }
    }
    bar.finish_and_clear();
    let rate = trained_now as f64 / training_time.as_secs_f64().max(1e-9);
    let final_acc = metrics.last().and_then(|m| m.test_accuracy).unwrap_or(0.0);
    Ok(RunMetrics {
        name: run.name.clone(),
        policy,
        epochs: metrics,
        final_test_accuracy: final_acc,
        energy_joules_per_sample: if samples > 0 { energy_total / samples as f64 } else { 0.0 },
        energy_breakdown: breakdown,
        samples_per_second: rate,
        final_adc_gains: ex.last_adc_gains().into_iter().collect(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// One line with the ADC gains a run ended with, per MVM the range over its planes.
pub fn gains_line(r: &RunMetrics) -> Option<String> {
    if r.final_adc_gains.is_empty() {
        return None;
    }
    let parts: Vec<String> = r
        .final_adc_gains
        .iter()
        .map(|(m, g)| {
            let (lo, hi) = g.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            if lo == hi { format!("{m} {lo:.3}") } else { format!("{m} {lo:.3}..{hi:.3}") }
        })
        .collect();
    Some(format!("{}: final ADC gains: {}", r.name, parts.join(", ")))
}

/// The results table.
pub fn table(runs: &[RunMetrics]) -> String {
    let mut out = String::new();
    let header = ["run", "policy", "test acc", "energy/sample", "forward", "backward", "weight_grad", "samples/s"];
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            let kind = |k: &str| {
                let total: f64 = r.energy_breakdown.get(k).map_or(0.0, |m| m.values().sum());
                let samples = r.energy_joules_per_sample;
                if samples > 0.0 {
                    format!(
                        "{:.1}%",
                        100.0 * total / (r.energy_breakdown.values().flat_map(|m| m.values()).sum::<f64>()).max(1e-300)
                    )
                } else {
                    "-".into()
                }
            };
            [
                r.name.clone(),
                r.policy.clone(),
                format!("{:.4}", r.final_test_accuracy),
                format!("{:.3e} J", r.energy_joules_per_sample),
                kind(Mvm::Forward.key()),
                kind(Mvm::Backward.key()),
                kind(Mvm::WeightGrad.key()),
                format!("{:.0}", r.samples_per_second),
            ]
        })
        .collect();
    let widths: Vec<usize> =
        (0..8).map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0)).collect();
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    out.push_str(&line(header.to_vec()));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out.push_str(
        "energy columns: share of the run's training energy by MVM kind (the rest is the digital remainder)\n",
    );
    for r in runs {
        let mut by: BTreeMap<&str, f64> = BTreeMap::new();
        for comps in r.energy_breakdown.values() {
            for (c, j) in comps {
                *by.entry(c.as_str()).or_default() += j;
            }
        }
        let total: f64 = by.values().sum();
        if total > 0.0 {
            let mut parts: Vec<(&str, f64)> = by.into_iter().filter(|(_, j)| *j > 0.0).collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1));
            let text: Vec<String> = parts.iter().map(|(c, j)| format!("{c} {:.1}%", 100.0 * j / total)).collect();
            out.push_str(&format!("{} by component: {}\n", r.name, text.join(", ")));
        }
    }
    out
}
