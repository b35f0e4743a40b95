//! `imcc bench FILE --kernels`: every fusion group of a train block run three ways on the same
//! buffers in one process — the reference executor (node by node), the JIT-compiled function,
//! and the hand-written Rust kernels (`jit::native`) — with medians, ratios and the JIT's
//! compile time.

use imcc_compiler::lower;
use imcc_compiler::program::{Program, TrainRun};
use imcc_runtime::exec::{Executor, GroupMode};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One group's medians.
struct Row {
    name: String,
    nodes: usize,
    hosts: usize,
    times: [Duration; 3],
}

const MODES: [GroupMode; 3] = [GroupMode::Reference, GroupMode::Jit, GroupMode::HandWritten];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the benchmark for `run`; prints the table.
pub fn run(program: &Program, run: &TrainRun, reps: usize) -> Result<(), String> {
    let step = lower::lower(program, run, None).map_err(|_| format!("`{}` cannot be lowered", run.name))?;
    let hyper = imcc_driver::hyper(run);
    // Compile time: the median of five fresh compilations of every group.
    let mut compiles = Vec::new();
    let mut ex = Executor::new(step.clone(), hyper.clone()).map_err(|e| e.to_string())?;
    for _ in 0..5 {
        ex = Executor::new(step.clone(), hyper.clone()).map_err(|e| e.to_string())?;
        let t = Instant::now();
        ex.enable_jit().map_err(|e| e.to_string())?;
        compiles.push(t.elapsed());
    }
    let compile = median(compiles);
    let per_group: Vec<Duration> =
        ex.jit().map(|j| j.groups.iter().map(|g| g.compile_time).collect()).unwrap_or_default();
    // One real step (a deterministic synthetic batch) leaves every value in place.
    ex.keep_values(true);
    let mut shape = step.value(step.input).shape.clone();
    shape[0] = step.batch;
    let mut s = 1u64;
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    });
    let labels: Vec<u8> = (0..step.batch).map(|i| (i * 7 % 10) as u8).collect();
    ex.train_batch(x, &labels, 0.01).map_err(|e| e.to_string())?;

    let jit = ex.jit().ok_or("the JIT is off")?;
    let meta: Vec<(String, usize, usize)> = jit
        .groups
        .iter()
        .map(|g| (format!("{} {}", g.plan.group, g.plan.name), g.plan.nodes.len(), g.plan.host_nodes().count()))
        .collect();
    let mut rows = Vec::new();
    for (g, (name, nodes, hosts)) in meta.into_iter().enumerate() {
        let mut samples: [Vec<Duration>; 3] = Default::default();
        // Interleaved, so drift and caches treat the three alike; the first round warms up.
        for rep in 0..=reps {
            for (m, mode) in MODES.iter().enumerate() {
                let t = Instant::now();
                ex.run_group_as(g, *mode, 0.01).map_err(|e| format!("group g{g}: {e}"))?;
                if rep > 0 {
                    samples[m].push(t.elapsed());
                }
            }
        }
        let times = samples.map(median);
        rows.push(Row { name, nodes, hosts, times });
    }

    outln!(
        "fusion groups of `{}` (batch {}): reference executor vs JIT vs hand-written Rust, median of {reps}",
        run.name,
        step.batch
    );
    outln!(
        "{:<44} {:>5} {:>4} {:>12} {:>10} {:>12} {:>9} {:>10}",
        "group",
        "nodes",
        "host",
        "reference µs",
        "JIT µs",
        "Rust µs",
        "ref/JIT",
        "JIT/Rust"
    );
    let mut total = [Duration::ZERO; 3];
    for r in &rows {
        for (t, d) in total.iter_mut().zip(r.times) {
            *t += d;
        }
        let name: String = r.name.chars().take(44).collect();
        outln!(
            "{:<44} {:>5} {:>4} {:>12.1} {:>10.1} {:>12.1} {:>8.2}x {:>9.2}x",
            name,
            r.nodes,
            r.hosts,
            us(r.times[0]),
            us(r.times[1]),
            us(r.times[2]),
            us(r.times[0]) / us(r.times[1]),
            us(r.times[1]) / us(r.times[2]),
        );
    }
    outln!(
        "{:<44} {:>5} {:>4} {:>12.1} {:>10.1} {:>12.1} {:>8.2}x {:>9.2}x",
        "digital remainder (all groups)",
        "",
        "",
        us(total[0]),
        us(total[1]),
        us(total[2]),
        us(total[0]) / us(total[1]),
        us(total[1]) / us(total[2]),
    );
    outln!(
        "JIT compile time: {:.2} ms for {} groups (median of 5, module setup included; slowest group {:.2} ms)",
        compile.as_secs_f64() * 1e3,
        per_group.len(),
        per_group.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}

/// `imcc bench --kernels`: times the fusion groups of the first selected train block.
pub fn command(path: &std::path::Path, train: Option<&str>, reps: usize) -> ExitCode {
    let (comp, _) = match crate::load::load_checked(
        path,
        crate::load::Lowering::Skip,
        crate::use_color(crate::ColorChoice::Auto),
        train,
    ) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let shown = path.display().to_string();
    let runs = match crate::load::select(&program.trains, |r| r.name.as_str(), train, &shown) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(run) = runs.first() else {
        errln!("error: `{shown}` has no train block");
        return ExitCode::from(1);
    };
    match self::run(program, run, reps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: `{}`: {e}", run.name);
            ExitCode::from(1)
        }
    }
}
