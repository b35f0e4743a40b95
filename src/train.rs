//! `imcc train` and `imcc bench`: the command-line side of training sessions (the sessions
//! themselves are `imcc-driver`'s): progress bars, the results table, the metrics file.

use crate::load::{Lowering, checked_runs, load_checked};
use imcc_driver::durable;
use imcc_driver::{Observer, Options, Progress, RunMetrics, Session};
use imcc_runtime::config::Mvm;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// A progress bar on stderr, when it is a terminal.
struct Bar {
    bar: ProgressBar,
    visible: bool,
}

impl Observer for Bar {
    fn started(&mut self, run: &str, steps: u64) {
        self.bar = if self.visible { ProgressBar::new(steps) } else { ProgressBar::hidden() };
        self.bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        self.bar.set_prefix(run.to_string());
    }

    fn step(&mut self, p: &Progress<'_>) {
        self.bar.inc(1);
        let acc = p.test_accuracy.map_or(String::new(), |a| format!(" acc {a:.4}"));
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.4}{acc} {:.0} samples/s {:.3e} J",
            p.epoch.0, p.epoch.1, p.loss, p.samples_per_second, p.energy_joules
        ));
    }

    fn finished(&mut self, _run: &str) {
        self.bar.finish_and_clear();
    }
}

/// `imcc train`: trains the selected runs of `path`, one session each; a failing run is
/// reported and recorded and the others still train.
pub fn command(
    path: &std::path::Path,
    only: Option<&str>,
    opts: &Options,
    metrics: Option<&std::path::Path>,
    report: Option<&std::path::Path>,
) -> ExitCode {
    let (comp, _, names) = match checked_runs(path, only, Lowering::Skip) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    // Arguments and outputs are checked before hours of training, not after.
    if let Err(e) = opts.overrides.check() {
        errln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = metrics.map(durable::check_writable) {
        errln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = report.map(|d| {
        std::fs::create_dir_all(d)
            .map_err(|e| format!("--report: cannot create {}: {e}", d.display()))
            .and_then(|()| durable::check_writable(&d.join("index.html")))
    }) {
        errln!("error: {e}");
        return ExitCode::from(2);
    }
    let runs: Vec<_> = program.trains.iter().filter(|r| names.contains(&r.name)).collect();
    let _lock = match opts.checkpoint.as_deref().map(|dir| imcc_driver::prepare_checkpoints(dir, &runs, opts)) {
        Some(Err(e)) => {
            errln!("error: {e}");
            return ExitCode::from(2);
        }
        lock => lock,
    };
    let mut bar = Bar { bar: ProgressBar::hidden(), visible: std::io::IsTerminal::is_terminal(&std::io::stderr()) };
    let (mut results, mut failed, mut status) = (Vec::new(), Vec::new(), ExitCode::SUCCESS);
    for run in runs {
        match Session::new(program, run, opts).and_then(|s| s.train(&mut bar)) {
            Ok(m) => {
                outln!(
                    "{}: test accuracy {:.4}, {:.3e} J per training sample, modelled chip time {:.3e} s per epoch, {:.0} samples/s simulated",
                    m.name,
                    m.final_test_accuracy,
                    m.energy_joules_per_sample,
                    m.chip_seconds_per_epoch,
                    m.samples_per_second
                );
                if let Some(line) = gains_line(&m) {
                    outln!("{line}");
                }
                results.push(m);
            }
            Err(e) => {
                // The other runs are independent: record the failure and go on.
                if let imcc_driver::Error::Lower { diagnostics, .. } = &e {
                    for d in diagnostics {
                        err!("{}", crate::render::human(&comp.sources, d, crate::use_color(crate::ColorChoice::Auto)));
                    }
                }
                errln!("error: {e}");
                failed.push(serde_json::json!({ "name": run.name, "error": e.to_string() }));
                status = ExitCode::from(1);
            }
        }
        // Rewritten after every run, so finished runs survive whatever happens to later ones.
        if let Some(p) = metrics {
            let json = serde_json::json!({ "runs": results, "failed": failed });
            let text = serde_json::to_string_pretty(&json).unwrap_or_default();
            if let Err(e) = durable::write_atomic(p, text.as_bytes()) {
                errln!("error: {e}");
                status = ExitCode::from(2);
            }
        }
    }
    if !results.is_empty() {
        outln!();
        out!("{}", table(&results));
    }
    if let Some(dir) = report {
        match crate::report::train(dir, &path.display().to_string(), &results) {
            Ok(()) => outln!("report: {}", dir.join("index.html").display()),
            Err(e) => {
                errln!("error: the report: {e}");
                status = ExitCode::from(2);
            }
        }
    }
    status
}

/// `imcc bench`: trains every run of `path` on `samples` samples without evaluation and prints
/// samples/s with the ratio to the file's f32 reference run.
pub fn bench(path: &std::path::Path, samples: usize, no_jit: bool) -> ExitCode {
    let (comp, _) = match load_checked(path, Lowering::Skip, crate::use_color(crate::ColorChoice::Auto), None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let opts = Options {
        overrides: imcc_driver::Overrides { epochs: Some(1), limit: Some(samples), ..Default::default() },
        eval: false,
        jit: !no_jit,
        ..Default::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    outln!("training speed, {samples} samples per run, {threads} threads available");
    outln!("{:<16} {:<16} {:>12} {:>14}", "run", "policy", "samples/s", "vs reference");
    let mut reference = None;
    let mut rows = Vec::new();
    for run in &program.trains {
        match Session::new(program, run, &opts).and_then(|s| s.train(&mut ())) {
            Ok(m) => {
                if run.reference && reference.is_none() {
                    reference = Some(m.samples_per_second);
                }
                rows.push(m);
            }
            Err(e) => {
                errln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    for m in rows {
        let ratio = reference.map_or("-".to_string(), |r| format!("{:.3}x", m.samples_per_second / r));
        outln!("{:<16} {:<16} {:>12.0} {:>14}", m.name, m.policy, m.samples_per_second, ratio);
    }
    ExitCode::SUCCESS
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
    let header = [
        "run",
        "policy",
        "test acc",
        "energy/sample",
        "forward",
        "backward",
        "weight_grad",
        "chip s/epoch",
        "samples/s",
    ];
    let rows: Vec<[String; 9]> = runs
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
                format!("{:.3e}", r.chip_seconds_per_epoch),
                format!("{:.0}", r.samples_per_second),
            ]
        })
        .collect();
    let widths: Vec<usize> =
        (0..9).map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0)).collect();
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
        "energy columns: share of the run's training energy by MVM kind (the rest is the digital remainder); \
         chip s/epoch: the cost model's time of an epoch's steps on the chip; samples/s: this machine's simulation\n",
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
