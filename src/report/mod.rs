//! `--report DIR`: a self-contained `index.html` (inline SVG and CSS, nothing fetched) with
//! the charts of a training (`imcc train`) or of a sweep (`imcc sweep`).

mod plots;

use imcc_driver::RunMetrics;
use imcc_driver::durable;
use imcc_driver::sweep::PointRecord;
use imcc_runtime::exec::PlaneUse;
use plots::{Axes, Line, Spread};
use std::collections::BTreeMap;
use std::path::Path;

/// One figure: its id (for tests and links), its chart and its caption.
struct Figure {
    id: String,
    svg: String,
    caption: String,
}

/// Writes the report of trained runs to `dir/index.html`.
pub fn train(dir: &Path, file: &str, runs: &[RunMetrics]) -> Result<(), String> {
    let mut figs = Vec::new();
    let reference = |r: &RunMetrics| r.policy == "f32 reference";
    let curve = |f: &dyn Fn(&imcc_driver::EpochMetrics) -> Option<f64>| -> Vec<Line> {
        runs.iter()
            .map(|r| Line {
                name: r.name.clone(),
                points: r.epochs.iter().filter_map(|e| Some((e.epoch as f64, f(e)?))).collect(),
                reference: reference(r),
            })
            .filter(|l| !l.points.is_empty())
            .collect()
    };
    let loss = curve(&|e| Some(e.train_loss));
    if !loss.is_empty() {
        figs.push(Figure {
            id: "loss".into(),
            svg: plots::lines(
                &Axes { title: "Training loss per epoch", x: "epoch", y: "mean cross-entropy (nats)" },
                &loss,
                None,
            )?,
            caption: "Mean training loss of each epoch; the f32 reference in black.".into(),
        });
    }
    let acc = curve(&|e| e.test_accuracy.map(|a| 100.0 * a));
    if !acc.is_empty() {
        figs.push(Figure {
            id: "accuracy".into(),
            svg: plots::lines(
                &Axes { title: "Test accuracy per epoch", x: "epoch", y: "test accuracy (%)" },
                &acc,
                None,
            )?,
            caption: "Test accuracy after each evaluated epoch; the f32 reference in black.".into(),
        });
    }
    for r in runs.iter().filter(|r| !r.energy_by_layer.is_empty()) {
        let samples = samples(r);
        let layers: Vec<String> = r.energy_by_layer.keys().cloned().collect();
        let kinds = ["forward", "backward", "weight_grad", "remainder"];
        let parts: Vec<(String, Vec<f64>)> = kinds
            .iter()
            .map(|k| {
                let v = layers
                    .iter()
                    .map(|l| r.energy_by_layer[l].get(*k).copied().unwrap_or(0.0) / samples * 1e12)
                    .collect();
                (k.to_string(), v)
            })
            .filter(|(_, v): &(String, Vec<f64>)| v.iter().any(|x| *x > 0.0))
            .collect();
        figs.push(Figure {
            id: format!("energy-layers-{}", r.name),
            svg: plots::stacked(
                &Axes { title: &format!("{}: energy per sample by layer", r.name), x: "layer", y: "energy per sample (pJ)" },
                &layers,
                &parts,
            )?,
            caption: format!(
                "Measured training energy per sample of `{}` by layer, stacked by MVM kind (remainder: digital elementwise work).",
                r.name
            ),
        });
    }
    if runs.iter().any(|r| !r.energy_breakdown.is_empty()) {
        let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        let mut components: Vec<String> =
            runs.iter().flat_map(|r| r.energy_breakdown.values().flat_map(|m| m.keys().cloned())).collect();
        components.sort();
        components.dedup();
        let parts: Vec<(String, Vec<f64>)> = components
            .iter()
            .map(|c| {
                let v = runs
                    .iter()
                    .map(|r| r.energy_breakdown.values().filter_map(|m| m.get(c)).sum::<f64>() / samples(r) * 1e9)
                    .collect();
                (c.replace('_', " "), v)
            })
            .collect();
        figs.push(Figure {
            id: "energy-components".into(),
            svg: plots::stacked(
                &Axes { title: "Energy per sample by component", x: "run", y: "energy per sample (nJ)" },
                &names,
                &parts,
            )?,
            caption: "Measured training energy per sample of each run, stacked by what it pays for.".into(),
        });
    }
    for r in runs.iter().filter(|r| !r.adc_use.is_empty()) {
        let range_use = |p: &PlaneUse| (p.covered > 0.0).then(|| 100.0 * p.max_sum / p.covered);
        if let Some(svg) =
            per_plane(r, "ADC range use per input plane", "running max column sum / ADC range (%)", range_use)?
        {
            figs.push(Figure {
                id: format!("adc-{}", r.name),
                svg,
                caption: format!(
                    "`{}`, last training step: each IMC MVM's running maximum column sum as a share of the range its ADC covered (native full scale over the gain), per input plane. Above 100%: the largest sums clip.",
                    r.name
                ),
            });
        }
        let clipping = |p: &PlaneUse| (p.conversions > 0).then_some(100.0 * p.clip_rate);
        if let Some(svg) =
            per_plane(r, "ADC clipping per input plane", "conversions clipped by the range (%)", clipping)?
        {
            figs.push(Figure {
                id: format!("clipping-{}", r.name),
                svg,
                caption: format!(
                    "`{}`, over its training steps: the share of each IMC MVM's conversions whose noiseless column sum lay beyond its ADC's range (clipped by the range, not by noise), per input plane.",
                    r.name
                ),
            });
        }
    }
    let mut table = String::from(
        "<table><tr><th>run</th><th>policy</th><th>test accuracy</th><th>energy per sample (J)</th><th>chip time per epoch (s, modelled)</th><th>samples/s (simulation)</th></tr>",
    );
    for r in runs {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.3e}</td><td>{:.3e}</td><td>{:.0}</td></tr>",
            esc(&r.name),
            esc(&r.policy),
            r.final_test_accuracy,
            r.energy_joules_per_sample,
            r.chip_seconds_per_epoch,
            r.samples_per_second
        ));
    }
    table.push_str("</table>");
    write(dir, &format!("imcc training report: {file}"), &table, &figs)
}

/// A chart of one value per IMC MVM and input plane of run `r` (`None`: no plane has one).
fn per_plane(
    r: &RunMetrics,
    title: &str,
    y: &str,
    value: impl Fn(&PlaneUse) -> Option<f64>,
) -> Result<Option<String>, String> {
    let lines: Vec<Line> = r
        .adc_use
        .iter()
        .map(|a| Line {
            name: a.mvm.clone(),
            points: a.planes.iter().enumerate().filter_map(|(k, p)| Some((k as f64, value(p)?))).collect(),
            reference: false,
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let title = format!("{}: {title}", r.name);
    plots::lines(&Axes { title: &title, x: "input plane", y }, &lines, None).map(Some)
}

/// Training samples the run's energy covers (from its curve; 1 when unknown).
fn samples(r: &RunMetrics) -> f64 {
    let total: f64 = r.energy_breakdown.values().flat_map(|m| m.values()).sum();
    if r.energy_joules_per_sample > 0.0 { total / r.energy_joules_per_sample } else { 1.0 }
}

/// Writes the report of a sweep's points to `dir/index.html`.
pub fn sweep(dir: &Path, name: &str, axes: &[String], points: &[PointRecord]) -> Result<(), String> {
    let ok: Vec<&PointRecord> = points.iter().filter(|p| p.status == "ok").collect();
    let mut figs = Vec::new();
    let value = |p: &PointRecord, axis: &str| p.values.iter().find(|(k, _)| k == axis).map(|(_, v)| v.clone());
    // Axes with one value (a setting every point shares) name no series.
    let varying: Vec<&String> = axes
        .iter()
        .filter(|a| {
            let mut v: Vec<String> = points.iter().filter_map(|p| value(p, a)).collect();
            dedup_keep_order(&mut v);
            v.len() > 1
        })
        .collect();
    for axis in axes.iter().filter(|a| *a != "seed") {
        let mut xs: Vec<String> = ok.iter().filter_map(|p| value(p, axis)).collect();
        dedup_keep_order(&mut xs);
        // The policy (`train`) is each other chart's series; on its own axis only when it is
        // the one thing swept.
        let others = varying.iter().any(|a| *a != "train" && *a != "seed");
        if xs.len() < 2 && axis != "train" || axis == "train" && others {
            continue;
        }
        let numeric: Option<Vec<f64>> = xs.iter().map(|x| x.parse::<f64>().ok()).collect();
        let x_of = |v: &str| match &numeric {
            Some(_) => v.parse::<f64>().unwrap_or(0.0),
            None => xs.iter().position(|x| x == v).unwrap_or(0) as f64,
        };
        // One series per combination of the other axes (the seed excepted: its spread is the bar).
        let mut groups: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for p in &ok {
            let key: Vec<String> = p
                .values
                .iter()
                .filter(|(k, _)| k != axis && k != "seed" && varying.contains(&k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let (Some(x), Some(acc)) = (value(p, axis), p.final_test_accuracy) else { continue };
            groups.entry(key.join(", ")).or_default().entry(x).or_default().push(100.0 * acc);
        }
        let series: Vec<Spread> = groups
            .into_iter()
            .take(8)
            .map(|(k, by_x)| {
                let mut points: Vec<(f64, f64, f64, f64)> = by_x
                    .iter()
                    .map(|(x, accs)| {
                        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
                        let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
                        let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        (x_of(x), mean, lo, hi)
                    })
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Spread { name: if k.is_empty() { "all".into() } else { k }, points }
            })
            .collect();
        let labels = if numeric.is_some() { None } else { Some(xs.as_slice()) };
        figs.push(Figure {
            id: format!("accuracy-{}", axis.replace('.', "-")),
            svg: plots::spread(
                &Axes { title: &format!("Test accuracy against {axis}"), x: axis, y: "final test accuracy (%)" },
                &series,
                labels,
            )?,
            caption: format!(
                "Final test accuracy against `{axis}`: the mean over seeds, the bar from the lowest to the highest seed; one line per combination of the other axes."
            ),
        });
    }
    let mut by_train: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &ok {
        if let (Some(e), Some(a)) = (p.energy_joules_per_sample, p.final_test_accuracy) {
            let t = value(p, "train").unwrap_or_else(|| "all".into());
            by_train.entry(t).or_default().push((e * 1e9, 100.0 * a));
        }
    }
    if !by_train.is_empty() {
        let groups: Vec<(String, Vec<(f64, f64)>)> = by_train.into_iter().collect();
        figs.push(Figure {
            id: "pareto".into(),
            svg: plots::pareto(
                &Axes { title: "Energy and accuracy", x: "training energy per sample (nJ)", y: "final test accuracy (%)" },
                &groups,
            )?,
            caption: "Every trained point by its measured training energy per sample and final test accuracy; the line joins the points no other point beats on both (the Pareto front).".into(),
        });
    }
    let mut table = String::from("<table><tr><th>point</th>");
    for a in axes {
        table.push_str(&format!("<th>{}</th>", esc(a)));
    }
    table.push_str("<th>status</th><th>test accuracy</th><th>energy per sample (J)</th></tr>");
    for p in points {
        table.push_str(&format!("<tr><td>{}</td>", p.index));
        for (_, v) in &p.values {
            table.push_str(&format!("<td>{}</td>", esc(v)));
        }
        let acc = p.final_test_accuracy.map_or("-".into(), |a| format!("{a:.4}"));
        let e = p.energy_joules_per_sample.map_or("-".into(), |e| format!("{e:.3e}"));
        let status = match &p.error {
            Some(why) => format!("failed: {why}"),
            None => p.status.clone(),
        };
        table.push_str(&format!("<td>{}</td><td>{acc}</td><td>{e}</td></tr>", esc(&status)));
    }
    table.push_str("</table>");
    write(dir, &format!("imcc sweep report: {name} ({} of its points)", points.len()), &table, &figs)
}

fn dedup_keep_order(v: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// Text safe inside HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1340px;color:#222}\
figure{display:inline-block;margin:0.6em;vertical-align:top;width:640px}\
figcaption{font-size:0.85em;color:#444;margin-top:0.3em}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}\
td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}";

fn write(dir: &Path, title: &str, table: &str, figs: &[Figure]) -> Result<(), String> {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\n<body><h1>{t}</h1>\n",
        t = esc(title)
    );
    for f in figs {
        html.push_str(&format!(
            "<figure class=\"plot\" id=\"{}\">{}<figcaption>{}</figcaption></figure>\n",
            esc(&f.id),
            f.svg,
            esc(&f.caption)
        ));
    }
    html.push_str(&format!(
        "<h2>Results</h2>\n{table}\n<p>Written by imcc {}.</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    ));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    durable::write_atomic(&dir.join("index.html"), html.as_bytes())
}
