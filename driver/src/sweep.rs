//! Sweeps: the points of a checked `sweep` block trained on several cores, one result file per
//! point written atomically, so that an interrupted sweep resumes without redoing a finished
//! point, shards run anywhere (a Slurm job array) and merge into the results of one machine.
//!
//! An output directory holds `points/NNNNNN.json` (one [`PointRecord`] per finished point, the
//! source of truth) and `results.json` and `results.csv`, rewritten atomically from the point
//! files after every point. A point is deterministic given its run (its own seed): neither
//! `--jobs` nor sharding changes any result but the measured speed.

use crate::checkpoint::{self, DirLock};
use crate::session::{Options, Session};
use crate::{EpochMetrics, Error, durable};
use imcc_compiler::program::{Program, Sweep, SweepPoint};
use imcc_runtime::config::Precision;
use imcc_runtime::energy;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The format tag of point files.
pub const FORMAT: &str = "imcc-sweep-point-1";

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The output directory.
    pub out: PathBuf,
    /// Points trained at once.
    pub jobs: usize,
    /// This shard `(i, n)`: the points whose index is `i` modulo `n`.
    pub shard: (usize, usize),
    /// Continue a sweep whose directory holds results.
    pub resume: bool,
    /// How each point's session runs (overrides apply to every point).
    pub session: Options,
}

/// What a sweep reports while it runs.
#[derive(Debug, Clone)]
pub enum SweepEvent<'a> {
    /// The sweep starts `todo` points (`done` are finished already, from a resumed run).
    Started {
        /// Points to train now.
        todo: usize,
        /// Points already finished.
        done: usize,
    },
    /// A point starts training.
    PointStarted(&'a SweepPoint),
    /// A point finished an epoch (`epoch` of `epochs`).
    Epoch {
        /// The point's run (`noise[3]`).
        run: &'a str,
        /// Epochs done.
        epoch: u64,
        /// Epochs in all.
        epochs: u64,
    },
    /// A point finished (trained or failed); its record is on disk.
    PointFinished(&'a PointRecord),
}

/// Passes a point's finished epochs on as [`SweepEvent::Epoch`].
struct Epochs<'o> {
    on: &'o (dyn Fn(SweepEvent<'_>) + Sync),
    epochs: u64,
}

impl crate::Observer for Epochs<'_> {
    fn epoch(&mut self, run: &str, m: &EpochMetrics) {
        (self.on)(SweepEvent::Epoch { run, epoch: m.epoch, epochs: self.epochs });
    }
}

/// One finished point: what it set, how it ended, what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    /// [`FORMAT`].
    pub format: String,
    /// The sweep.
    pub sweep: String,
    /// The point's index in the grid.
    pub index: usize,
    /// Each axis with its value at this point, as written in the file.
    pub values: Vec<(String, String)>,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Test accuracy after the last epoch.
    pub final_test_accuracy: Option<f64>,
    /// Per epoch: loss, test accuracy, energy so far.
    pub curve: Vec<EpochMetrics>,
    /// Measured training energy per sample, in joules.
    pub energy_joules_per_sample: Option<f64>,
    /// The paper's comparison: MVM energy of every MVM digital at INT4 over this point's MVM
    /// energy (per step, from the lowered shapes).
    pub mvm_saving_vs_int4: Option<f64>,
    /// Modelled chip time of one epoch, in seconds (the cost model's, `spec/energy.md`).
    #[serde(default)]
    pub chip_seconds_per_epoch: Option<f64>,
    /// Training samples per second on the machine that ran it (the one field that depends on
    /// where and how it ran).
    pub samples_per_second: Option<f64>,
    /// The settings the point trained with (the checked run), to refuse resuming or merging
    /// results of a changed file.
    pub run: serde_json::Value,
}

/// The sweep named `name` of `program` (or its only one).
pub fn select<'p>(program: &'p Program, name: Option<&str>) -> Result<&'p Sweep, Error> {
    let names: Vec<&str> = program.sweeps.iter().map(|s| s.name.as_str()).collect();
    match name {
        Some(n) => program
            .sweeps
            .iter()
            .find(|s| s.name == n)
            .ok_or_else(|| Error::Override(format!("--sweep {n}: no such sweep (the file has: {})", list(&names)))),
        None => match program.sweeps.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Override("the file has no `sweep` block".into())),
            _ => {
                Err(Error::Override(format!("the file has several sweeps ({}): choose one with --sweep", list(&names))))
            }
        },
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// Runs the points of `sweep` in this shard that `opts.out` does not hold yet; returns every
/// record of the directory afterwards. A failing point is recorded as failed and the sweep
/// goes on; only an unusable directory or a changed file stops it.
pub fn run(
    program: &Program,
    sweep: &Sweep,
    opts: &SweepOptions,
    on: &(dyn Fn(SweepEvent<'_>) + Sync),
) -> Result<Vec<PointRecord>, Error> {
    let (i, n) = opts.shard;
    if n == 0 || i >= n {
        return Err(Error::Override(format!("--shard {i}/{n}: expected I/N with 0 <= I < N")));
    }
    if opts.jobs == 0 {
        return Err(Error::Override("--jobs must be at least 1".into()));
    }
    let _lock = open_dir(&opts.out, opts.resume)?;
    let existing = read_points(&opts.out)?;
    for r in &existing {
        check_same(r, sweep, &opts.out, &opts.session.overrides)?;
    }
    let done: Vec<usize> = existing.iter().map(|r| r.index).collect();
    let todo: Vec<&SweepPoint> = sweep.points.iter().filter(|p| p.index % n == i && !done.contains(&p.index)).collect();
    on(SweepEvent::Started { todo: todo.len(), done: existing.len() });
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    // The records so far (the directory's, then each finished point's), behind the one writer.
    let records = Mutex::new(existing);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.min(todo.len()) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = todo.get(k) else { break };
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    on(SweepEvent::PointStarted(p));
                    let record = train_point(program, sweep, p, &opts.session, on);
                    // One writer at a time: the point file, then the tables of every record.
                    let mut all = records.lock().unwrap_or_else(|e| e.into_inner());
                    let saved = save_point(&opts.out, &record).and_then(|()| {
                        all.push(record.clone());
                        all.sort_by_key(|r| r.index);
                        write_results(&opts.out, &sweep.name, &sweep.axes, sweep.points.len(), &all)
                    });
                    match saved {
                        Ok(()) => on(SweepEvent::PointFinished(&record)),
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let all = records.into_inner().unwrap_or_else(|e| e.into_inner());
    // Written again even when no point was left to train (a finished sweep resumed).
    write_results(&opts.out, &sweep.name, &sweep.axes, sweep.points.len(), &all)?;
    Ok(all)
}

/// Trains one point; a failure becomes a failed record.
fn train_point(
    program: &Program,
    sweep: &Sweep,
    p: &SweepPoint,
    opts: &Options,
    on: &(dyn Fn(SweepEvent<'_>) + Sync),
) -> PointRecord {
    let mut record = PointRecord {
        format: FORMAT.into(),
        sweep: sweep.name.clone(),
        index: p.index,
        values: sweep.axes.iter().cloned().zip(p.values.iter().cloned()).collect(),
        status: "ok".into(),
        error: None,
        final_test_accuracy: None,
        curve: Vec::new(),
        energy_joules_per_sample: None,
        mvm_saving_vs_int4: None,
        chip_seconds_per_epoch: None,
        samples_per_second: None,
        run: settings(p, &opts.overrides),
    };
    let result = Session::new(program, &p.run, opts).and_then(|s| {
        let est = energy::estimate(s.step());
        let base = energy::baseline(s.step(), Precision::Int4);
        let saving = (est.mvm_total() > 0.0).then(|| base.mvm_total() / est.mvm_total());
        let mut epochs = Epochs { on, epochs: s.run().epochs };
        s.train(&mut epochs).map(|m| (m, saving))
    });
    match result {
        Ok((m, saving)) => {
            record.final_test_accuracy = Some(m.final_test_accuracy);
            record.curve = m.epochs;
            record.energy_joules_per_sample = Some(m.energy_joules_per_sample);
            record.mvm_saving_vs_int4 = saving;
            record.chip_seconds_per_epoch = Some(m.chip_seconds_per_epoch);
            record.samples_per_second = Some(m.samples_per_second);
        }
        Err(e) => {
            record.status = "failed".into();
            record.error = Some(e.to_string());
        }
    }
    record
}

/// A point's settings as recorded: the run it trains, the command line's overrides applied
/// (`--epochs`, `--limit`: a resume with others must not mix results), without its
/// synthesized name.
fn settings(p: &SweepPoint, o: &crate::Overrides) -> serde_json::Value {
    let mut run = crate::prepare::apply(&p.run, o).unwrap_or_else(|_| p.run.clone());
    run.limit = o.limit.or(run.limit);
    let mut v = serde_json::to_value(&run).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("name");
    }
    v
}

/// Refuses a record of another sweep, point or setting.
fn check_same(r: &PointRecord, sweep: &Sweep, dir: &Path, o: &crate::Overrides) -> Result<(), Error> {
    let at = point_path(dir, r.index);
    if r.sweep != sweep.name {
        return Err(Error::at(&at, format!("holds a point of sweep `{}`, not `{}`", r.sweep, sweep.name)));
    }
    let Some(p) = sweep.points.iter().find(|p| p.index == r.index) else {
        return Err(Error::at(&at, format!("point {} is not in the grid of `{}` any more", r.index, sweep.name)));
    };
    if r.run != settings(p, o) {
        return Err(Error::at(
            &at,
            format!(
                "point {} was trained with other settings than the file and the command line now give it; use another --out directory, or remove the directory to start over",
                r.index
            ),
        ));
    }
    Ok(())
}

/// Creates or opens the output directory and locks it; without `resume` it must hold no results.
fn open_dir(dir: &Path, resume: bool) -> Result<DirLock, Error> {
    let points = dir.join("points");
    if resume && !points.is_dir() {
        return Err(Error::Checkpoint(format!("--resume: {} holds no sweep results", dir.display())));
    }
    std::fs::create_dir_all(&points).map_err(|e| Error::Write(format!("cannot create {}: {e}", points.display())))?;
    let lock = checkpoint::lock_dir(dir)?;
    if !resume && std::fs::read_dir(&points).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(Error::Checkpoint(format!(
            "{} holds results of a sweep: --resume continues it; to start over, remove it or use another --out",
            dir.display()
        )));
    }
    Ok(lock)
}

fn point_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("points").join(format!("{index:06}.json"))
}

fn save_point(dir: &Path, r: &PointRecord) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(r).map_err(|e| Error::Internal(format!("a sweep point: {e}")))?;
    durable::write_atomic(&point_path(dir, r.index), text.as_bytes()).map_err(Error::Write)
}

/// Every point record in `dir/points`, by index.
pub fn read_points(dir: &Path) -> Result<Vec<PointRecord>, Error> {
    let points = dir.join("points");
    let entries = match std::fs::read_dir(&points) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::at(&points, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(|e| Error::at(&points, e))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue; // a temporary file of an interrupted write
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::at(&path, e))?;
        let r: PointRecord =
            serde_json::from_str(&text).map_err(|e| Error::at(&path, format!("not a sweep point file: {e}")))?;
        if r.format != FORMAT {
            return Err(Error::at(&path, format!("format `{}`, expected `{FORMAT}`", r.format)));
        }
        out.push(r);
    }
    out.sort_by_key(|r| r.index);
    Ok(out)
}

/// Writes `results.json` and `results.csv` of `dir` from `records` (by index), atomically.
fn write_results(dir: &Path, name: &str, axes: &[String], total: usize, records: &[PointRecord]) -> Result<(), Error> {
    let json = serde_json::json!({
        "sweep": name,
        "axes": axes,
        "points_total": total,
        "points_done": records.len(),
        "points": records,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Internal(format!("sweep results: {e}")))?;
    durable::write_atomic(&dir.join("results.json"), text.as_bytes()).map_err(Error::Write)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["index".into()];
    header.extend(axes.iter().cloned());
    header.extend(
        [
            "status",
            "final_test_accuracy",
            "energy_joules_per_sample",
            "mvm_saving_vs_int4",
            "chip_seconds_per_epoch",
            "samples_per_second",
            "epochs_done",
            "error",
        ]
        .map(String::from),
    );
    let csv_err = |e: csv::Error| Error::Internal(format!("sweep results: {e}"));
    w.write_record(&header).map_err(csv_err)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in records {
        let mut row = vec![r.index.to_string()];
        row.extend(r.values.iter().map(|(_, v)| v.clone()));
        row.extend([
            r.status.clone(),
            opt(r.final_test_accuracy),
            opt(r.energy_joules_per_sample),
            opt(r.mvm_saving_vs_int4),
            opt(r.chip_seconds_per_epoch),
            opt(r.samples_per_second),
            r.curve.len().to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
        w.write_record(&row).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Internal(format!("sweep results: {e}")))?;
    durable::write_atomic(&dir.join("results.csv"), &bytes).map_err(Error::Write)
}

/// Joins the point files of shard directories `from` into `out` (created; it must hold no
/// results); returns the records. Two shards with the same point must agree on it.
pub fn merge(from: &[PathBuf], out: &Path) -> Result<Vec<PointRecord>, Error> {
    let mut all: Vec<PointRecord> = Vec::new();
    let mut meta: Option<(String, Vec<String>, usize)> = None;
    for dir in from {
        let results = dir.join("results.json");
        let text = std::fs::read_to_string(&results).map_err(|e| Error::at(&results, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::at(&results, format!("not sweep results: {e}")))?;
        let name = v["sweep"].as_str().unwrap_or_default().to_string();
        let axes: Vec<String> = serde_json::from_value(v["axes"].clone()).unwrap_or_default();
        let total = v["points_total"].as_u64().unwrap_or(0) as usize;
        match &meta {
            None => meta = Some((name, axes, total)),
            Some(m) if *m != (name.clone(), axes.clone(), total) => {
                return Err(Error::at(&results, format!("is sweep `{name}` with other axes or grid than `{}`", m.0)));
            }
            Some(_) => {}
        }
        for r in read_points(dir)? {
            match all.iter().find(|a| a.index == r.index) {
                Some(a) if !same_result(a, &r) => {
                    return Err(Error::at(
                        &point_path(dir, r.index),
                        format!("point {} differs from the same point in another shard", r.index),
                    ));
                }
                Some(_) => {}
                None => all.push(r),
            }
        }
    }
    let Some((name, axes, total)) = meta else {
        return Err(Error::Override("--merge: no directories given".into()));
    };
    let _lock = open_dir(out, false)?;
    all.sort_by_key(|r| r.index);
    for r in &all {
        save_point(out, r)?;
    }
    write_results(out, &name, &axes, total, &all)?;
    Ok(all)
}

/// Whether two records of a point agree on everything but where it ran (speed).
pub fn same_result(a: &PointRecord, b: &PointRecord) -> bool {
    PointRecord { samples_per_second: None, ..a.clone() } == PointRecord { samples_per_second: None, ..b.clone() }
}
