//! `imcc sweep`: runs a sweep's grid (or this machine's shard of it) on every core with one
//! progress bar, and `imcc sweep --merge` joins shards. The sweep itself is `imcc-driver`'s.

use crate::load::{Lowering, load_checked};
use imcc_driver::Options;
use imcc_driver::sweep::{self, PointRecord, SweepEvent, SweepOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

/// What `imcc sweep` was asked.
pub struct Args {
    /// The file (absent with `--merge`).
    pub file: Option<PathBuf>,
    /// Which sweep of the file.
    pub sweep: Option<String>,
    /// Points trained at once.
    pub jobs: Option<usize>,
    /// The output directory.
    pub out: PathBuf,
    /// `I/N`.
    pub shard: Option<String>,
    /// Continue a sweep in `out`.
    pub resume: bool,
    /// Shard directories to join into `out`.
    pub merge: Vec<PathBuf>,
    /// Where to write the HTML report.
    pub report: Option<PathBuf>,
    /// Every point's session settings (overrides, JIT).
    pub session: Options,
}

/// Runs `imcc sweep`.
pub fn command(a: Args) -> ExitCode {
    if !a.merge.is_empty() {
        let code = merge(&a.merge, &a.out);
        return with_report(code, a.report.as_deref(), &a.out);
    }
    let Some(file) = a.file.as_deref() else {
        errln!("error: `imcc sweep` needs a FILE, or --merge DIR... --out DIR");
        return ExitCode::from(2);
    };
    let shard = match a.shard.as_deref().map(parse_shard).transpose() {
        Ok(s) => s.unwrap_or((0, 1)),
        Err(e) => {
            errln!("error: --shard {e}");
            return ExitCode::from(2);
        }
    };
    let (comp, _) = match load_checked(file, Lowering::Skip, crate::use_color(crate::ColorChoice::Auto), None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    if let Err(e) = a.session.overrides.check() {
        errln!("error: {e}");
        return ExitCode::from(2);
    }
    let chosen = match sweep::select(program, a.sweep.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = SweepOptions { out: a.out.clone(), jobs, shard, resume: a.resume, session: a.session };
    let visible = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = Mutex::new(ProgressBar::hidden());
    // The points training now, with their epochs done.
    let running = Mutex::new(Vec::<(String, String)>::new());
    let show = |r: &[(String, String)]| {
        let parts: Vec<String> =
            r.iter().map(|(n, e)| if e.is_empty() { n.clone() } else { format!("{n} ({e})") }).collect();
        format!("training {}", parts.join(", "))
    };
    let on = |e: SweepEvent<'_>| {
        let Ok(mut b) = bar.lock() else { return };
        match e {
            SweepEvent::Started { todo, done } => {
                let nb = if visible { ProgressBar::new(todo as u64) } else { ProgressBar::hidden() };
                nb.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} points, ETA {eta} {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                nb.set_prefix(chosen.name.clone());
                if done > 0 {
                    nb.println(format!("resuming: {done} points already done"));
                }
                *b = nb;
            }
            SweepEvent::PointStarted(p) => {
                if let Ok(mut r) = running.lock() {
                    r.push((p.run.name.clone(), String::new()));
                    b.set_message(show(&r));
                }
            }
            SweepEvent::Epoch { run, epoch, epochs } => {
                if let Ok(mut r) = running.lock() {
                    if let Some(e) = r.iter_mut().find(|(n, _)| n == run) {
                        e.1 = format!("epoch {epoch}/{epochs}");
                    }
                    b.set_message(show(&r));
                }
            }
            SweepEvent::PointFinished(r) => {
                if let Ok(mut run) = running.lock() {
                    let name = format!("{}[{}]", r.sweep, r.index);
                    run.retain(|(n, _)| *n != name);
                    b.set_message(show(&run));
                }
                b.inc(1);
                b.suspend(|| outln!("{}", line(r)));
            }
        }
    };
    let result = sweep::run(program, chosen, &opts, &on);
    if let Ok(b) = bar.lock() {
        b.finish_and_clear();
    }
    match result {
        Ok(records) => with_report(summary(&records, chosen.points.len(), &a.out), a.report.as_deref(), &a.out),
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `I/N` with `0 <= I < N`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}`: expected I/N with 0 <= I < N (e.g. `--shard $SLURM_ARRAY_TASK_ID/4`)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if n == 0 || i >= n { Err(bad()) } else { Ok((i, n)) }
}

/// One finished point, as a line.
fn line(r: &PointRecord) -> String {
    let set: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match (&r.status[..], r.final_test_accuracy) {
        ("ok", Some(acc)) => format!(
            "point {} ({}): test accuracy {acc:.4}, {:.3e} J per sample, {:.0} samples/s",
            r.index,
            set.join(" "),
            r.energy_joules_per_sample.unwrap_or(0.0),
            r.samples_per_second.unwrap_or(0.0)
        ),
        _ => format!("point {} ({}): failed: {}", r.index, set.join(" "), r.error.as_deref().unwrap_or("?")),
    }
}

fn summary(records: &[PointRecord], total: usize, out: &Path) -> ExitCode {
    let failed = records.iter().filter(|r| r.status != "ok").count();
    outln!(
        "{} of {total} points in {} ({failed} failed): {}, {}",
        records.len(),
        out.display(),
        out.join("results.csv").display(),
        out.join("results.json").display()
    );
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Writes the report of the sweep results in `out` to `dir`, when asked.
fn with_report(code: ExitCode, dir: Option<&Path>, out: &Path) -> ExitCode {
    let Some(dir) = dir else { return code };
    let read = || -> Result<(), String> {
        let text = std::fs::read_to_string(out.join("results.json"))
            .map_err(|e| format!("{}: {e}", out.join("results.json").display()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let name = v["sweep"].as_str().unwrap_or_default();
        let axes: Vec<String> = serde_json::from_value(v["axes"].clone()).map_err(|e| e.to_string())?;
        let points = sweep::read_points(out).map_err(|e| e.to_string())?;
        crate::report::sweep(dir, name, &axes, &points)
    };
    match read() {
        Ok(()) => {
            outln!("report: {}", dir.join("index.html").display());
            code
        }
        Err(e) => {
            errln!("error: the report: {e}");
            ExitCode::from(2)
        }
    }
}

fn merge(from: &[PathBuf], out: &Path) -> ExitCode {
    match sweep::merge(from, out) {
        Ok(records) => {
            let total = std::fs::read_to_string(out.join("results.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["points_total"].as_u64())
                .unwrap_or(records.len() as u64);
            summary(&records, total as usize, out)
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
