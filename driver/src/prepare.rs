//! Preparing a run: command-line overrides (checked as the file's values are), the optimizer
//! settings, lowering, data, and the record a checkpoint keeps of what the run trains with.

use crate::Error;
use crate::checkpoint::RunRecord;
use imcc_compiler::lower;
use imcc_compiler::program::{DataSet, Program, Schedule, TrainRun};
use imcc_compiler::schema::{Kind, check_override};
use imcc_runtime::config::Precision;
use imcc_runtime::data::{self, Dataset};
use imcc_runtime::exec::Hyper;
use imcc_runtime::ir::Step;
use std::path::Path;

/// Settings the command line overrides for every run.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Epochs.
    pub epochs: Option<u64>,
    /// Run the f32 reference instead.
    pub reference: bool,
    /// The hardware noise, sigma in LSB at native range (sweeps).
    pub sigma_lsb: Option<f64>,
    /// At most this many training samples per epoch (quick runs).
    pub limit: Option<usize>,
}

impl Overrides {
    /// Checks each value with the rule its setting has in a file (before any run starts).
    pub fn check(&self) -> Result<(), Error> {
        if let Some(s) = self.sigma_lsb {
            check_override(Kind::Hardware, "noise.sigma_lsb", s)
                .map_err(|e| Error::Override(format!("--sigma-lsb: {e}")))?;
        }
        if let Some(e) = self.epochs {
            check_override(Kind::Train, "epochs", e as f64).map_err(|e| Error::Override(format!("--epochs: {e}")))?;
        }
        Ok(())
    }
}

/// `run` with `o` applied ([`Overrides::check`]ed).
pub fn apply(run: &TrainRun, o: &Overrides) -> Result<TrainRun, Error> {
    o.check()?;
    let mut run = run.clone();
    run.reference |= o.reference;
    if let Some(s) = o.sigma_lsb {
        run.hardware.noise.sigma_lsb = s;
    }
    if let Some(e) = o.epochs {
        run.epochs = e;
    }
    Ok(run)
}

/// The executor's optimizer settings for `run` (the one translation from the file's settings).
pub fn hyper(run: &TrainRun) -> Hyper {
    Hyper {
        momentum: run.optimizer.momentum as f32,
        weight_decay: run.optimizer.weight_decay as f32,
        nesterov: run.optimizer.nesterov,
        seed: run.seed,
        accumulate_fp16: run.accumulate == Precision::Fp16,
    }
}

/// Lowers `run` through every pass.
pub fn lower_run(program: &Program, run: &TrainRun) -> Result<Step, Error> {
    match lower::lower(program, run, None) {
        Ok(s) => Ok(s),
        Err(lower::LowerError::Diagnostics(diagnostics)) => Err(Error::Lower { run: run.name.clone(), diagnostics }),
        Err(lower::LowerError::Internal(e)) => Err(Error::Internal(e)),
    }
}

/// Loads the data set of a run.
pub fn load_data(d: &DataSet, seed: u64) -> Result<Dataset, Error> {
    let r = match d {
        DataSet::Digits { test_fraction, dir } => data::load_digits(Path::new(dir), *test_fraction, seed),
        DataSet::Mnist { dir } => data::load_idx_dir(Path::new(dir), 10),
        DataSet::Idx { dir, classes } => data::load_idx_dir(Path::new(dir), *classes),
        DataSet::Cifar10 { dir } => data::load_cifar10_dir(Path::new(dir)),
    };
    r.map_err(|e| Error::Data(format!("cannot load data: {e}")))
}

/// The learning rate of `epoch` (0-based) of `epochs` under the run's schedule.
pub fn lr_at(run: &TrainRun, epoch: u64, epochs: u64) -> f32 {
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

/// What a run trains with, for its checkpoint ([`crate::checkpoint::check_resume`]).
pub fn run_record(program: &Program, run: &TrainRun, d: &Dataset, n_train: usize) -> RunRecord {
    let o = &run.optimizer;
    // The rest (network, quantization, mapping, hardware), with the entries listed on their
    // own fixed, so that each difference is named once.
    let mut hardware = run.hardware.clone();
    hardware.noise.sigma_lsb = 0.0;
    let network = program.networks.iter().find(|n| n.name == run.network);
    let chip = format!("{network:?} {:?} {:?} {hardware:?}", run.layers, run.accumulate);
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
        ("network, quantization, mapping, hardware", format!("fingerprint {:016x}", text_fingerprint(&chip))),
    ];
    entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn data_kind(d: &DataSet) -> String {
    match d {
        DataSet::Digits { test_fraction, .. } => format!("digits(test_fraction = {test_fraction})"),
        DataSet::Mnist { .. } => "mnist".into(),
        DataSet::Idx { classes, .. } => format!("idx(classes = {classes})"),
        DataSet::Cifar10 { .. } => "cifar10".into(),
    }
}

/// FNV-1a of a text (stable across releases, unlike `std`'s hasher).
fn text_fingerprint(t: &str) -> u64 {
    t.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}
