//! A training session: one run, lowered once, trained epoch by epoch with an [`Observer`]
//! watching, evaluated, its energy accounted, checkpointed after every epoch and resumable.

use crate::checkpoint::{self, Checkpoint, RunRecord};
use crate::prepare::{self, Overrides};
use crate::{EpochMetrics, Error, RunMetrics, durable};
use imcc_compiler::program::{Program, TrainRun};
use imcc_runtime::data::{self, Dataset};
use imcc_runtime::energy::{self, MvmCounts};
use imcc_runtime::exec::Executor;
use imcc_runtime::ir::Step;
use ndarray::{ArrayD, Axis, IxDyn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How sessions run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Command-line overrides of every run's settings.
    pub overrides: Overrides,
    /// Checkpoint directory (see [`crate::prepare_checkpoints`]).
    pub checkpoint: Option<PathBuf>,
    /// Resume from the checkpoint directory.
    pub resume: bool,
    /// On resume, accept settings that differ from the checkpoint's (not the seed or the data).
    pub accept_changes: bool,
    /// Evaluate on the test set (off for speed measurements).
    pub eval: bool,
    /// Run the digital remainder as JIT-compiled code (off: the reference executor).
    pub jit: bool,
}

/// Where a session is, after each training step.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// The train block.
    pub run: &'a str,
    /// The epoch (1-based) and the number of epochs.
    pub epoch: (u64, u64),
    /// Mean training loss of this epoch so far.
    pub loss: f64,
    /// Training samples per second in this session so far.
    pub samples_per_second: f64,
    /// Training energy so far, in joules.
    pub energy_joules: f64,
    /// The last test accuracy measured.
    pub test_accuracy: Option<f64>,
}

/// Watches a session. Observing never changes a result: an observer sees copies.
pub trait Observer {
    /// The session starts `steps` training steps (after any resumed ones).
    fn started(&mut self, _run: &str, _steps: u64) {}
    /// A training step finished.
    fn step(&mut self, _p: &Progress<'_>) {}
    /// An epoch finished (evaluated or not).
    fn epoch(&mut self, _run: &str, _m: &EpochMetrics) {}
    /// The session finished or stopped.
    fn finished(&mut self, _run: &str) {}
}

/// An observer that watches nothing.
impl Observer for () {}

/// The progress of a run: where it is and what it has cost (checkpointed).
#[derive(Debug, Default)]
struct Totals {
    epochs_done: u64,
    samples: u64,
    energy: f64,
    breakdown: BTreeMap<String, BTreeMap<String, f64>>,
    by_layer: BTreeMap<String, BTreeMap<String, f64>>,
    metrics: Vec<EpochMetrics>,
}

/// One run being trained.
pub struct Session {
    run: TrainRun,
    step: Step,
    /// The step lowered at the epoch's short last batch, to price its energy at its own size.
    tail: Option<Step>,
    data: Dataset,
    input: Vec<usize>,
    n_train: usize,
    ex: Executor,
    record: RunRecord,
    checkpoint: Option<PathBuf>,
    eval: bool,
    totals: Totals,
}

impl Session {
    /// Prepares `run` of `program`: applies the overrides, lowers, loads and checks the data,
    /// builds the executor (with the JIT when asked), and restores its checkpoint when resuming.
    pub fn new(program: &Program, run: &TrainRun, opts: &Options) -> Result<Session, Error> {
        let run = prepare::apply(run, &opts.overrides)?;
        let step = prepare::lower_run(program, &run)?;
        let input: Vec<usize> = step.value(step.input).shape[1..].to_vec();
        let data = prepare::load_data(&run.data, run.seed)?;
        let features: usize = input.iter().product();
        if data.features() != features {
            return Err(Error::Data(format!(
                "the data has {} features per sample, the network input {input:?} holds {features}",
                data.features()
            )));
        }
        let n_train = opts.overrides.limit.or(run.limit).map_or(data.train_y.len(), |l| l.min(data.train_y.len()));
        let tail = match n_train % run.batch {
            0 => None,
            short => Some(prepare::lower_run(program, &TrainRun { batch: short, ..run.clone() })?),
        };
        let exec_err = |e: imcc_runtime::exec::ExecError| Error::Exec { run: run.name.clone(), message: e.to_string() };
        let mut ex = Executor::new(step.clone(), prepare::hyper(&run)).map_err(exec_err)?;
        if opts.jit {
            ex.enable_jit().map_err(exec_err)?;
        }
        ex.take_counts(); // loading the initial weights into the arrays is not a training step
        // The record is for checkpoints only (fingerprinting the data costs a pass over it).
        let record = match opts.checkpoint {
            Some(_) => prepare::run_record(program, &run, &data, n_train),
            None => RunRecord::new(),
        };
        let checkpoint = opts.checkpoint.as_ref().map(|d| checkpoint::path(d, &run.name, run.reference));
        let mut s = Session {
            run,
            step,
            tail,
            data,
            input,
            n_train,
            ex,
            record,
            checkpoint,
            eval: opts.eval,
            totals: Totals::default(),
        };
        if opts.resume {
            s.resume(opts.accept_changes)?;
        }
        Ok(s)
    }

    /// The lowered step.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// The run, with the overrides applied.
    pub fn run(&self) -> &TrainRun {
        &self.run
    }

    fn resume(&mut self, accept_changes: bool) -> Result<(), Error> {
        let Some(path) = self.checkpoint.clone().filter(|p| p.exists()) else { return Ok(()) };
        let c = checkpoint::load(&path, &self.run.name)?;
        checkpoint::check_resume(&path, &c.run, &self.record, accept_changes)?;
        self.ex.restore(&c.state).map_err(|e| Error::at(&path, e))?;
        self.totals = Totals {
            epochs_done: c.epochs_done,
            samples: c.samples,
            energy: c.energy,
            breakdown: c.breakdown,
            by_layer: c.by_layer,
            metrics: c.metrics,
        };
        Ok(())
    }

    /// Trains the remaining epochs; returns the run's metrics.
    pub fn train(mut self, obs: &mut dyn Observer) -> Result<RunMetrics, Error> {
        let epochs = self.run.epochs;
        let steps_per_epoch = self.n_train.div_ceil(self.run.batch) as u64;
        obs.started(&self.run.name, steps_per_epoch * epochs.saturating_sub(self.totals.epochs_done));
        // Training time only: evaluation and checkpoint writes are not training speed.
        let mut clock = (Duration::ZERO, 0u64);
        let result = (self.totals.epochs_done..epochs).try_for_each(|epoch| self.epoch(epoch, obs, &mut clock));
        obs.finished(&self.run.name);
        result?;
        let t = &self.totals;
        Ok(RunMetrics {
            name: self.run.name.clone(),
            policy: if self.run.reference {
                "f32 reference".to_string()
            } else {
                self.run.mapping.clone().unwrap_or_else(|| "default".into())
            },
            epochs: t.metrics.clone(),
            final_test_accuracy: t.metrics.last().and_then(|m| m.test_accuracy).unwrap_or(0.0),
            energy_joules_per_sample: if t.samples > 0 { t.energy / t.samples as f64 } else { 0.0 },
            energy_breakdown: t.breakdown.clone(),
            samples_per_second: clock.1 as f64 / clock.0.as_secs_f64().max(1e-9),
            final_adc_gains: self.ex.last_adc_gains().into_iter().collect(),
            energy_by_layer: t.by_layer.clone(),
            adc_use: self.ex.adc_use(),
            chip_seconds_per_epoch: self.chip_seconds_per_epoch(),
            peak_rss_bytes: crate::metrics::peak_rss_bytes(),
        })
    }

    /// The modelled chip time of one epoch: its full batches and its short last one, each at
    /// the cost model's time of its step.
    fn chip_seconds_per_epoch(&self) -> f64 {
        let full = (self.n_train / self.run.batch) as f64;
        let step = imcc_cost::time::estimate(&self.step).total();
        full * step + self.tail.as_ref().map_or(0.0, |t| imcc_cost::time::estimate(t).total())
    }

    /// Epoch `epoch` (0-based): train, evaluate when due, checkpoint.
    fn epoch(&mut self, epoch: u64, obs: &mut dyn Observer, clock: &mut (Duration, u64)) -> Result<(), Error> {
        let t0 = Instant::now();
        let epochs = self.run.epochs;
        let lr = prepare::lr_at(&self.run, epoch, epochs);
        let order = data::epoch_order(self.data.train_y.len(), self.run.seed, epoch);
        let (mut loss_sum, mut batches) = (0.0f64, 0u64);
        for chunk in order[..self.n_train].chunks(self.run.batch) {
            let x = batch(&self.data.train_x, chunk, &self.input);
            let y: Vec<u8> = chunk.iter().map(|&i| self.data.train_y[i]).collect();
            let loss = self
                .ex
                .train_batch(x, &y, lr)
                .map_err(|e| Error::Exec { run: self.run.name.clone(), message: e.to_string() })?;
            loss_sum += loss as f64;
            batches += 1;
            self.totals.samples += chunk.len() as u64;
            clock.1 += chunk.len() as u64;
            let priced =
                if chunk.len() == self.run.batch { &self.step } else { self.tail.as_ref().unwrap_or(&self.step) };
            add_energy(priced, &self.ex.take_counts(), &mut self.totals);
            obs.step(&Progress {
                run: &self.run.name,
                epoch: (epoch + 1, epochs),
                loss: loss_sum / batches as f64,
                samples_per_second: clock.1 as f64 / (clock.0 + t0.elapsed()).as_secs_f64().max(1e-9),
                energy_joules: self.totals.energy,
                test_accuracy: self.totals.metrics.last().and_then(|m| m.test_accuracy),
            });
        }
        clock.0 += t0.elapsed();
        let due = (epoch + 1).is_multiple_of(self.run.eval_every) || epoch + 1 == epochs;
        let test_accuracy = if due && self.eval { Some(self.evaluate()?) } else { None };
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / batches.max(1) as f64,
            test_accuracy,
            energy_joules: self.totals.energy,
        };
        obs.epoch(&self.run.name, &m);
        self.totals.metrics.push(m);
        self.totals.epochs_done = epoch + 1;
        self.save()
    }

    /// Test accuracy over the whole test set (leaves no trace on training: see
    /// [`Executor::evaluate`]).
    fn evaluate(&mut self) -> Result<f64, Error> {
        let d = &self.data;
        let n = d.test_y.len();
        let idx: Vec<usize> = (0..n).collect();
        let mut correct = 0usize;
        for (k, chunk) in idx.chunks(self.run.batch).enumerate() {
            let x = batch(&d.test_x, chunk, &self.input);
            let y: Vec<u8> = chunk.iter().map(|&i| d.test_y[i]).collect();
            let (_, c) = self
                .ex
                .evaluate(x, &y, k as u64)
                .map_err(|e| Error::Exec { run: self.run.name.clone(), message: e.to_string() })?;
            correct += c;
        }
        Ok(correct as f64 / n.max(1) as f64)
    }

    /// Writes the checkpoint, when there is a directory for it.
    fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.checkpoint else { return Ok(()) };
        let t = &self.totals;
        let c = Checkpoint {
            format: checkpoint::FORMAT.into(),
            train: self.run.name.clone(),
            run: self.record.clone(),
            epochs_done: t.epochs_done,
            samples: t.samples,
            energy: t.energy,
            breakdown: t.breakdown.clone(),
            by_layer: t.by_layer.clone(),
            metrics: t.metrics.clone(),
            state: self.ex.state(),
        };
        let text = serde_json::to_string(&c).map_err(|e| Error::Internal(format!("a checkpoint: {e}")))?;
        durable::write_atomic(path, text.as_bytes()).map_err(Error::Write)
    }
}

/// Test accuracy of the run trained into checkpoint directory `dir`, evaluated with `run`'s
/// settings and `opts`' overrides, which may differ from the training's in everything but the
/// seed and the data: the weights and ADC ranges a chip learned at one noise level, tested at
/// another or on another chip. Nothing is written.
pub fn evaluate_checkpoint(
    program: &Program,
    run: &TrainRun,
    dir: &std::path::Path,
    opts: &Options,
) -> Result<f64, Error> {
    let path = checkpoint::path(dir, &run.name, opts.overrides.reference || run.reference);
    if !path.exists() {
        return Err(Error::Checkpoint(format!("no checkpoint of `{}`: {} does not exist", run.name, path.display())));
    }
    let opts =
        Options { checkpoint: Some(dir.to_path_buf()), resume: true, accept_changes: true, eval: true, ..opts.clone() };
    let mut s = Session::new(program, run, &opts)?;
    if s.totals.epochs_done == 0 {
        return Err(Error::Checkpoint(format!("{} holds no finished epoch", path.display())));
    }
    s.evaluate()
}

/// Rows `idx` of `x`, shaped as a batch of the network input.
fn batch(x: &ndarray::Array2<f32>, idx: &[usize], input: &[usize]) -> ArrayD<f32> {
    let rows = x.select(Axis(0), idx);
    let shape: Vec<usize> = std::iter::once(idx.len()).chain(input.iter().copied()).collect();
    rows.into_shape_with_order(IxDyn(&shape)).expect("features match the input shape (checked in Session::new)")
}

/// Adds one training step's measured energy (the simulator's events, the digital MACs, and the
/// digital remainder) to the running totals.
fn add_energy(step: &Step, counts: &[MvmCounts], t: &mut Totals) {
    let ledger = energy::measured(step, counts, 1);
    t.energy += ledger.total();
    for r in &ledger.rows {
        *t.breakdown.entry(r.mvm.clone()).or_default().entry(r.component.to_string()).or_default() += r.joules;
        *t.by_layer.entry(r.layer.clone()).or_default().entry(r.mvm.clone()).or_default() += r.joules;
    }
}

/// Before training: locks the checkpoint directory, and checks that a resume finds something
/// to resume and that a fresh run overwrites no checkpoint. Hold the lock while training.
pub fn prepare_checkpoints(
    dir: &std::path::Path,
    runs: &[&TrainRun],
    opts: &Options,
) -> Result<checkpoint::DirLock, Error> {
    if opts.resume && !dir.is_dir() {
        return Err(Error::Checkpoint(format!("--resume: {} is not a directory", dir.display())));
    }
    let lock = checkpoint::lock_dir(dir)?;
    let paths: Vec<_> =
        runs.iter().map(|r| checkpoint::path(dir, &r.name, opts.overrides.reference || r.reference)).collect();
    if opts.resume {
        if !paths.iter().any(|p| p.exists()) {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::Checkpoint(format!(
                "--resume: no checkpoint to resume (looked for {})",
                list.join(", ")
            )));
        }
    } else if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(Error::Checkpoint(format!(
            "{} exists: --resume continues it; to start over, remove it or use another directory",
            p.display()
        )));
    }
    Ok(lock)
}
