//! `imcc`: the command line of the imcc compiler and simulator.

#[macro_use]
mod output;
mod bench_kernels;
mod checkpoint;
mod durable;
mod energy_cmd;
mod quantize;
mod render;
mod train;

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand, ValueEnum};
use imcc_compiler::codes::Code;
use imcc_compiler::diagnostic::Severity;
use imcc_compiler::loader::{FsLoader, read_source};
use imcc_compiler::{Compilation, lower};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Diagnostics rendered per file at most; the rest are counted.
const MAX_RENDERED: usize = 100;

#[derive(Parser)]
#[command(
    name = "imcc",
    version,
    about = "Compiler and simulator for training neural networks on in-memory-computing hardware",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check `.imc` files: parse, resolve, infer shapes and apply the policy rules.
    ///
    /// Exit status: 0 when no file has errors (warnings allowed), 1 when some file has
    /// errors, 2 on a usage or I/O error.
    #[command(display_order = 1)]
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics: `human` (rustc-like, on stderr) or `json` (one object per
        /// line, on stdout).
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
        /// Colour: `auto` (only on a terminal, and not with NO_COLOR), `always`, `never`.
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Print the long explanation of a diagnostic code, e.g. `imcc explain E0500`.
    #[command(display_order = 7)]
    Explain {
        /// The code (`E0500`, `W0001`); `--list` lists all.
        #[arg(required_unless_present = "list")]
        code: Option<String>,
        /// List every code with its title.
        #[arg(long)]
        list: bool,
    },
    /// Print the reference of every block, section, parameter and layer (Markdown).
    #[command(display_order = 8)]
    Reference,
    /// Estimate the energy of each train block's training step without training: the
    /// itemized ledger, the digital 4-bit and FP16 baselines, and the savings.
    #[command(display_order = 4)]
    Energy {
        /// The file.
        file: PathBuf,
        /// Only this train block (default: all of them).
        #[arg(long)]
        train: Option<String>,
        /// Print `{"runs": [...]}` JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Measure training speed: samples/s of each train block (one pass over `--samples`
    /// samples, no evaluation), with the ratio to the f32 reference of the first run, in one run.
    #[command(display_order = 5)]
    Bench {
        /// The file.
        file: PathBuf,
        /// Training samples per run.
        #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u64).range(1..))]
        samples: u64,
        /// Run the digital remainder on the reference executor instead of JIT-compiled code.
        #[arg(long)]
        no_jit: bool,
        /// Instead of training speed: time every fusion group on the reference executor, as
        /// JIT-compiled code and as hand-written Rust, and the JIT's compile time.
        #[arg(long)]
        kernels: bool,
        /// With `--kernels`: only this train block (default: the first).
        #[arg(long)]
        train: Option<String>,
        /// With `--kernels`: timed repetitions per group (the median is reported).
        #[arg(long, default_value_t = 31, value_parser = clap::value_parser!(u64).range(1..))]
        reps: u64,
    },
    /// Train the train blocks of a file and compare them: test accuracy, energy, speed.
    #[command(display_order = 3)]
    Train {
        /// The file.
        file: PathBuf,
        /// Only this train block (default: all of them).
        #[arg(long)]
        train: Option<String>,
        /// Override the epochs of every run.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: Option<u64>,
        /// Write `{"runs": [...]}` metrics to this file.
        #[arg(long)]
        metrics_json: Option<PathBuf>,
        /// Write a checkpoint per run into this directory after every epoch (locked while
        /// training; an existing checkpoint is never overwritten without --resume).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Continue from the checkpoints in `--checkpoint DIR`; a run whose settings differ
        /// from its checkpoint's is refused, naming the differences.
        #[arg(long, requires = "checkpoint")]
        resume: bool,
        /// With --resume: continue although the learning rate, schedule, batch, sample limit,
        /// noise or chip differ from the checkpoint's (the seed and the data never may).
        #[arg(long, requires = "resume")]
        accept_changes: bool,
        /// Run the f32 reference (no quantization, no IMC) of each run instead.
        #[arg(long)]
        reference: bool,
        /// Override the hardware noise sigma (LSB at native range) of every run.
        #[arg(long)]
        sigma_lsb: Option<f64>,
        /// Train on at most this many samples per epoch (quick runs).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Run the digital remainder on the reference executor instead of JIT-compiled code
        /// (results are bit-identical; this is slower).
        #[arg(long)]
        no_jit: bool,
    },
    /// Lower train blocks to the mapped IR and print it.
    #[command(display_order = 2)]
    Lower {
        /// The file.
        file: PathBuf,
        /// Only this train block (default: all of them).
        #[arg(long)]
        train: Option<String>,
        /// What to print: the syntax tree, the IR, the per-layer mapping summary, or the IR as JSON.
        #[arg(long, value_enum, default_value_t = Emit::Mapping)]
        emit: Emit,
        /// Stop after this pass.
        #[arg(long, value_parser = pass_parser())]
        after: Option<lower::Pass>,
        /// Colour of diagnostics: `auto`, `always`, `never`.
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Quantize numbers read from standard input (whitespace-separated decimals) and print
    /// one dequantized value per line.
    ///
    /// The scale is the GradScale factor `s` for radix-4 formats (values are `Q(x·s)/s`) and
    /// the clip range for integer formats (SAWB alpha, INT8 max). Exit status 1 on bad input.
    #[command(display_order = 6)]
    Quantize {
        /// `radix4` (even grid), `radix4-odd`, `int4-sawb`, `int4-pact:ALPHA` or `int8`.
        #[arg(long)]
        format: quantize::Format,
        /// `auto` (from the data) or a positive number.
        #[arg(long, default_value = "auto")]
        scale: String,
        /// Print `{"scale": s, "values": [...]}`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Emit {
    Ast,
    Ir,
    Mapping,
    Json,
    /// The cranelift IR of every fusion group, as the JIT builds it.
    Clif,
}

#[derive(Clone, Copy, ValueEnum)]
enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::finish(run(cli.command))
}

fn run(command: Command) -> ExitCode {
    match command {
        Command::Check { files, message_format, color, deny_warnings } => {
            check(&files, message_format, use_color(color), deny_warnings)
        }
        Command::Lower { file, train, emit, after, color } => {
            lower_cmd(&file, train.as_deref(), emit, after, use_color(color))
        }
        Command::Explain { code, list } => explain(code.as_deref(), list),
        Command::Quantize { format, scale, json } => run_quantize(format, &scale, json),
        Command::Train {
            file,
            train,
            epochs,
            metrics_json,
            checkpoint,
            resume,
            accept_changes,
            reference,
            sigma_lsb,
            limit,
            no_jit,
        } => {
            let opts = train::Options {
                epochs,
                reference,
                sigma_lsb,
                limit: limit.map(|l| l as usize),
                checkpoint,
                resume,
                accept_changes,
                progress: std::io::stderr().is_terminal(),
                eval: true,
                jit: !no_jit,
            };
            train_cmd(&file, train.as_deref(), &opts, metrics_json.as_deref())
        }
        Command::Bench { file, kernels: true, train, reps, .. } => {
            bench_kernels_cmd(&file, train.as_deref(), reps as usize)
        }
        Command::Bench { file, samples, no_jit, .. } => bench_cmd(&file, samples as usize, no_jit),
        Command::Energy { file, train, json } => energy_cmd_run(&file, train.as_deref(), json),
        Command::Reference => {
            out!("{}", imcc_compiler::reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// `--after`: the names of [`lower::Pass::ALL`], listed in `--help` and in the error for any
/// other.
fn pass_parser() -> impl clap::builder::TypedValueParser<Value = lower::Pass> {
    clap::builder::PossibleValuesParser::new(lower::Pass::ALL.map(|p| p.name()))
        .map(|name: String| lower::Pass::parse(&name).expect("a possible value names a pass"))
}

fn use_color(c: ColorChoice) -> bool {
    match c {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Compiles `path` and lowers each of its train blocks, adding lowering's diagnostics.
/// Returns the compilation and the lowered steps (empty when anything failed).
fn compile_and_lower(
    path: &std::path::Path,
    shown: &str,
    text: &str,
    after: Option<lower::Pass>,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>), String> {
    let mut comp = imcc_compiler::compile(path, shown, text, &FsLoader);
    let mut steps = Vec::new();
    if let Some(program) = &comp.program {
        for run in &program.trains {
            match lower::lower(program, run, after) {
                Ok(s) => steps.push(s),
                Err(lower::LowerError::Diagnostics(d)) => comp.diagnostics.extend(d),
                Err(lower::LowerError::Internal(e)) => {
                    return Err(format!("internal compiler error while lowering `{}`: {e}", run.name));
                }
            }
        }
        if comp.has_errors() {
            comp.program = None;
            steps.clear();
        }
    }
    Ok((comp, steps))
}

/// Reads, checks and lowers `path`, printing its diagnostics. `Err` carries the exit status
/// when it cannot go on: 2 for I/O, 1 for errors in the program, 101 for a compiler bug.
fn load_checked(
    path: &std::path::Path,
    after: Option<lower::Pass>,
    color: bool,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>), ExitCode> {
    let shown = path.display().to_string();
    let text = read_source(path).map_err(|e| {
        errln!("error: cannot read `{shown}`: {}", e.0);
        ExitCode::from(2)
    })?;
    let (comp, steps) = compile_and_lower(path, &shown, &text, after).map_err(|e| {
        errln!("error: {e}");
        ExitCode::from(101)
    })?;
    for d in &comp.diagnostics {
        err!("{}", render::human(&comp.sources, d, color));
    }
    if comp.has_errors() {
        errln!("error: `{shown}` failed to check");
        return Err(ExitCode::from(1));
    }
    Ok((comp, steps))
}

/// The train blocks named `only` (all when `None`), or a usage error listing them.
fn select<'a, T>(
    items: &'a [T],
    name: impl Fn(&T) -> &str,
    only: Option<&str>,
    shown: &str,
) -> Result<Vec<&'a T>, ExitCode> {
    let chosen: Vec<&T> = items.iter().filter(|t| only.is_none_or(|o| name(t) == o)).collect();
    if chosen.is_empty() {
        let names: Vec<&str> = items.iter().map(&name).collect();
        match only {
            Some(t) => {
                errln!("error: `{shown}` has no train block `{t}`; its train blocks are: {}", names.join(", "))
            }
            None => errln!("error: `{shown}` has no train block"),
        }
        return Err(ExitCode::from(2));
    }
    Ok(chosen)
}

/// [`load_checked`] plus the names of the train blocks `only` selects (all when `None`).
fn checked_runs(
    path: &std::path::Path,
    only: Option<&str>,
) -> Result<(Compilation, Vec<imcc_runtime::ir::Step>, Vec<String>), ExitCode> {
    let (comp, steps) = load_checked(path, None, use_color(ColorChoice::Auto))?;
    let trains = comp.program.as_ref().map_or(&[][..], |p| &p.trains[..]);
    let names = select(trains, |r| r.name.as_str(), only, &path.display().to_string())?
        .into_iter()
        .map(|r| r.name.clone())
        .collect();
    Ok((comp, steps, names))
}

fn lower_cmd(
    path: &std::path::Path,
    train: Option<&str>,
    emit: Emit,
    after: Option<lower::Pass>,
    color: bool,
) -> ExitCode {
    let shown = path.display().to_string();
    if emit == Emit::Ast {
        return match read_source(path) {
            Ok(text) => {
                outln!("{:#?}", imcc_compiler::syntax::parse(imcc_compiler::span::FileId(0), &text).0);
                ExitCode::SUCCESS
            }
            Err(e) => {
                errln!("error: cannot read `{shown}`: {}", e.0);
                ExitCode::from(2)
            }
        };
    }
    let (comp, steps) = match load_checked(path, after, color) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let selected = match select(&steps, |s| s.name.as_str(), train, &shown) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for (i, step) in selected.iter().enumerate() {
        if i > 0 && emit != Emit::Json {
            outln!();
        }
        match emit {
            Emit::Ir => out!("{}", imcc_runtime::ir::text::print(step)),
            Emit::Mapping => out!("{}", imcc_runtime::ir::text::mapping_summary(step)),
            Emit::Json => match serde_json::to_string(step) {
                Ok(j) => outln!("{j}"),
                Err(e) => {
                    errln!("error: cannot serialize the IR: {e}");
                    return ExitCode::from(101);
                }
            },
            Emit::Clif => {
                let Some(run) = comp.program.as_ref().and_then(|p| p.trains.iter().find(|r| r.name == step.name))
                else {
                    continue;
                };
                let consts = imcc_runtime::jit::Consts {
                    momentum: run.optimizer.momentum as f32,
                    weight_decay: run.optimizer.weight_decay as f32,
                    nesterov: run.optimizer.nesterov,
                };
                match imcc_runtime::jit::clif(step, &consts) {
                    Ok(text) => out!("; train {}\n{text}", step.name),
                    Err(e) => {
                        errln!("error: `{}`: {e}", step.name);
                        return ExitCode::from(1);
                    }
                }
            }
            Emit::Ast => unreachable!("handled above"),
        }
    }
    ExitCode::SUCCESS
}

fn train_cmd(
    path: &std::path::Path,
    only: Option<&str>,
    opts: &train::Options,
    metrics: Option<&std::path::Path>,
) -> ExitCode {
    let (comp, _, names) = match checked_runs(path, only) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    // Outputs are checked before hours of training, not after.
    for p in metrics.iter().copied() {
        if let Err(e) = durable::check_writable(p) {
            errln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let runs: Vec<_> = program.trains.iter().filter(|r| names.contains(&r.name)).collect();
    let _lock = match &opts.checkpoint {
        Some(dir) => match prepare_checkpoints(dir, &runs, opts) {
            Ok(lock) => Some(lock),
            Err(e) => {
                errln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut status = ExitCode::SUCCESS;
    for run in runs {
        match train::run(program, run, opts) {
            Ok(m) => {
                outln!(
                    "{}: test accuracy {:.4}, {:.3e} J per training sample, {:.0} samples/s",
                    m.name,
                    m.final_test_accuracy,
                    m.energy_joules_per_sample,
                    m.samples_per_second
                );
                if let Some(line) = train::gains_line(&m) {
                    outln!("{line}");
                }
                results.push(m);
            }
            Err(e) => {
                // The other runs are independent: record the failure and go on.
                errln!("error: {e}");
                failed.push(serde_json::json!({ "name": run.name, "error": e }));
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
        out!("{}", train::table(&results));
    }
    status
}

/// Before training: locks the checkpoint directory, and checks that a resume finds something
/// to resume and that a fresh run overwrites no checkpoint.
fn prepare_checkpoints(
    dir: &std::path::Path,
    runs: &[&imcc_compiler::program::TrainRun],
    opts: &train::Options,
) -> Result<checkpoint::DirLock, String> {
    if opts.resume && !dir.is_dir() {
        return Err(format!("--resume: {} is not a directory", dir.display()));
    }
    let lock = checkpoint::lock_dir(dir)?;
    let paths: Vec<_> = runs.iter().map(|r| checkpoint::path(dir, &r.name, opts.reference || r.reference)).collect();
    if opts.resume {
        if !paths.iter().any(|p| p.exists()) {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(format!("--resume: no checkpoint to resume (looked for {})", list.join(", ")));
        }
    } else if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(format!(
            "{} exists: --resume continues it; to start over, remove it or use another directory",
            p.display()
        ));
    }
    Ok(lock)
}

fn energy_cmd_run(path: &std::path::Path, only: Option<&str>, json: bool) -> ExitCode {
    let (comp, steps, names) = match checked_runs(path, only) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let runs = program.trains.iter().filter(|r| names.contains(&r.name));
    let mut out = Vec::new();
    for run in runs {
        let Some(step) = steps.iter().find(|s| s.name == run.name) else { continue };
        let r = energy_cmd::report(run, step);
        if json {
            out.push(r.json);
        } else {
            outln!("{}", r.text);
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "runs": out })).unwrap_or_default());
    }
    ExitCode::SUCCESS
}

fn bench_kernels_cmd(path: &std::path::Path, train: Option<&str>, reps: usize) -> ExitCode {
    let (comp, _) = match load_checked(path, None, use_color(ColorChoice::Auto)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let shown = path.display().to_string();
    let runs = match select(&program.trains, |r| r.name.as_str(), train, &shown) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(run) = runs.first() else {
        errln!("error: `{shown}` has no train block");
        return ExitCode::from(1);
    };
    match bench_kernels::run(program, run, reps) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: `{}`: {e}", run.name);
            ExitCode::from(1)
        }
    }
}

fn bench_cmd(path: &std::path::Path, samples: usize, no_jit: bool) -> ExitCode {
    let (comp, _) = match load_checked(path, None, use_color(ColorChoice::Auto)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(program) = &comp.program else { return ExitCode::from(1) };
    let opts = train::Options {
        epochs: Some(1),
        reference: false,
        sigma_lsb: None,
        limit: Some(samples),
        checkpoint: None,
        resume: false,
        accept_changes: false,
        progress: false,
        eval: false,
        jit: !no_jit,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    outln!("training speed, {samples} samples per run, {threads} threads available");
    outln!("{:<16} {:<16} {:>12} {:>14}", "run", "policy", "samples/s", "vs reference");
    let mut reference = None;
    let mut rows = Vec::new();
    for run in &program.trains {
        match train::run(program, run, &opts) {
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

fn check(files: &[PathBuf], format: MessageFormat, color: bool, deny_warnings: bool) -> ExitCode {
    let mut worst = 0u8;
    for path in files {
        let shown = path.display().to_string();
        let text = match read_source(path) {
            Ok(t) => t,
            Err(e) => {
                errln!("error: cannot read `{shown}`: {}", e.0);
                worst = worst.max(2);
                continue;
            }
        };
        let comp = match compile_and_lower(path, &shown, &text, None) {
            Ok((comp, _)) => comp,
            Err(e) => {
                errln!("error: {e}");
                worst = worst.max(101);
                continue;
            }
        };
        let errors = comp.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
        let warnings = comp.diagnostics.len() - errors;
        for d in comp.diagnostics.iter().take(MAX_RENDERED) {
            match format {
                MessageFormat::Human => {
                    err!("{}", render::human(&comp.sources, d, color));
                }
                MessageFormat::Json => {
                    outln!("{}", render::json(&comp.sources, d));
                }
            }
        }
        let failed = errors > 0 || (deny_warnings && warnings > 0);
        if let MessageFormat::Human = format {
            if comp.diagnostics.len() > MAX_RENDERED {
                errln!("note: {} more diagnostics not shown", comp.diagnostics.len() - MAX_RENDERED);
            }
            let counts = plural(errors, "error")
                + &if warnings > 0 { format!(", {}", plural(warnings, "warning")) } else { String::new() };
            if failed {
                errln!("error: `{shown}` failed to check: {counts}");
            } else {
                let runs = comp.program.as_ref().map_or(0, |p| p.trains.len());
                outln!("ok: `{shown}`: {} ({counts})", plural(runs, "train block"));
            }
        }
        if failed {
            worst = worst.max(1);
        }
    }
    ExitCode::from(worst)
}

fn run_quantize(format: quantize::Format, scale: &str, json: bool) -> ExitCode {
    let scale = match scale {
        "auto" => None,
        s => match s.parse::<f32>() {
            Ok(v) => Some(v),
            Err(_) => {
                errln!("error: --scale must be `auto` or a number, not `{s}`");
                return ExitCode::from(2);
            }
        },
    };
    let mut text = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
        errln!("error: cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    let result = quantize::parse_numbers(&text).and_then(|x| quantize::quantize(format, &x, scale));
    match result {
        Ok((s, values)) => {
            if json {
                outln!("{}", serde_json::json!({ "scale": s, "values": values }));
            } else {
                // One write for the whole output, not one per line.
                let mut text = String::with_capacity(values.len() * 12);
                for v in &values {
                    let _ = writeln!(text, "{v}");
                }
                out!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn explain(code: Option<&str>, list: bool) -> ExitCode {
    if list {
        for c in Code::ALL {
            outln!("{}  {}", c.as_str(), c.title());
        }
        return ExitCode::SUCCESS;
    }
    let text = code.unwrap_or_default();
    match Code::parse(text) {
        Some(c) => {
            outln!("{}: {}\n\n{}", c.as_str(), c.title(), c.explanation().trim_end());
            ExitCode::SUCCESS
        }
        None => {
            errln!("error: `{text}` is not a diagnostic code; `imcc explain --list` lists them");
            ExitCode::from(2)
        }
    }
}
