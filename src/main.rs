//! `imcc`: the command line of the imcc compiler and simulator.

#[macro_use]
mod output;
mod bench_kernels;
mod check_cmd;
mod cost_cmd;
mod eval_cmd;
mod fmt_cmd;
mod load;
mod lower_cmd;
mod lsp;
mod quantize;
mod render;
mod report;
mod sweep_cmd;
mod train;

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand, ValueEnum};
use imcc_compiler::codes::Code;
use imcc_compiler::lower;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Rewrite files in the canonical layout (comments kept, meaning unchanged), or with
    /// `--check` list the files that are not in it.
    #[command(display_order = 9)]
    Fmt {
        /// The files; `-` formats standard input to standard output.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
        /// Colour of diagnostics: `auto`, `always`, `never`.
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Print the reference of every block, section, parameter and layer (Markdown).
    #[command(display_order = 8)]
    Reference,
    /// Run the language server on stdin/stdout for editors: diagnostics as you type, hover,
    /// completion, go to definition, references, outline and formatting (see README).
    #[command(display_order = 10)]
    Lsp {
        /// Accepted for clients that pass it (stdio is the only transport).
        #[arg(long)]
        stdio: bool,
    },
    /// Model the energy and time of each train block's training step without training: per
    /// MVM, layer and step the joules, seconds, array utilization, TOPS, TOPS/W and EDP; the
    /// digital 4-bit and FP16 baselines and the savings; inference throughput (alias: `energy`).
    #[command(display_order = 4, visible_alias = "energy")]
    Cost {
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
        #[command(flatten)]
        run: RunFlags,
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
    },
    /// Run a `sweep` block's grid on every core (or one shard of it), writing
    /// `results.csv` and `results.json` atomically after every point; `--merge` joins shards.
    ///
    /// Exit status: 0 when every point trained, 1 when some point failed (recorded, the others
    /// still ran) or the file has errors, 2 on a usage or I/O error.
    #[command(display_order = 4)]
    Sweep {
        /// The file (not with --merge).
        #[arg(required_unless_present = "merge")]
        file: Option<PathBuf>,
        /// Which sweep of the file (default: its only one).
        #[arg(long)]
        sweep: Option<String>,
        /// Points trained at once (default: the number of cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: Option<u64>,
        /// The output directory (created; it must hold no results unless --resume).
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
        /// Run only shard I of N (points whose index is I modulo N), e.g. `--shard
        /// $SLURM_ARRAY_TASK_ID/8`; merge the shards' directories with --merge.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Continue the sweep in --out: finished points are kept, the rest trained.
        #[arg(long)]
        resume: bool,
        /// Join the results of these shard directories into --out instead of training.
        #[arg(long, num_args = 1.., value_name = "DIR", conflicts_with_all = ["file", "shard", "resume", "sweep"])]
        merge: Vec<PathBuf>,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Test trained runs (from `imcc train --checkpoint DIR`) at other noise levels or on
    /// another chip than they were trained on: the weights and ADC ranges learned at one noise
    /// level, evaluated at others.
    ///
    /// Exit status: 0 on success, 1 when the file has errors or a run has no usable checkpoint,
    /// 2 on a usage error.
    #[command(display_order = 4)]
    Eval {
        /// The file the runs were trained from.
        file: PathBuf,
        /// The checkpoint directory the runs were trained into.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Only this train block (default: all of them).
        #[arg(long)]
        train: Option<String>,
        /// Test at these noise levels (sigma in LSB at native range; repeat or separate with
        /// commas; default: each run's own).
        #[arg(long, value_delimiter = ',')]
        sigma_lsb: Vec<f64>,
        /// Test on this `hardware` block of the file instead of the trained chip.
        #[arg(long)]
        hardware: Option<String>,
        /// Print `{"evaluations": [...]}` JSON.
        #[arg(long)]
        json: bool,
        /// Run the digital remainder on the reference executor instead of JIT-compiled code.
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

/// The flags `train` and `sweep` share: how each run (each sweep point) trains, and the report.
#[derive(clap::Args)]
struct RunFlags {
    /// Override the epochs of every run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Train every run on at most this many samples per epoch (quick runs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Run the digital remainder on the reference executor instead of JIT-compiled code
    /// (results are bit-identical; this is slower).
    #[arg(long)]
    no_jit: bool,
    /// Write a self-contained HTML report (`DIR/index.html`, SVG charts) of the results.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum Emit {
    Ast,
    Ir,
    Mapping,
    /// The targets as a `mapping` block of the language, to paste into a file.
    MappingImc,
    Json,
    /// The cranelift IR of every fusion group, as the JIT builds it.
    Clif,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
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
            check_cmd::command(&files, message_format, use_color(color), deny_warnings)
        }
        Command::Lower { file, train, emit, after, color } => {
            lower_cmd::command(&file, train.as_deref(), emit, after, use_color(color))
        }
        Command::Explain { code, list } => explain(code.as_deref(), list),
        Command::Fmt { files, check, color } => fmt_cmd::command(&files, check, use_color(color)),
        Command::Lsp { stdio: _ } => lsp::command(),
        Command::Quantize { format, scale, json } => quantize::command(format, &scale, json),
        Command::Train { file, train, run, metrics_json, checkpoint, resume, accept_changes, reference, sigma_lsb } => {
            let opts = imcc_driver::Options {
                overrides: imcc_driver::Overrides {
                    epochs: run.epochs,
                    reference,
                    sigma_lsb,
                    limit: run.limit.map(|l| l as usize),
                },
                checkpoint,
                resume,
                accept_changes,
                eval: true,
                jit: !run.no_jit,
            };
            train::command(&file, train.as_deref(), &opts, metrics_json.as_deref(), run.report.as_deref())
        }
        Command::Bench { file, kernels: true, train, reps, .. } => {
            bench_kernels::command(&file, train.as_deref(), reps as usize)
        }
        Command::Bench { file, samples, no_jit, .. } => train::bench(&file, samples as usize, no_jit),
        Command::Sweep { file, sweep, jobs, out, shard, resume, merge, run } => sweep_cmd::command(sweep_cmd::Args {
            file,
            sweep,
            jobs: jobs.map(|j| j as usize),
            out,
            shard,
            resume,
            merge,
            report: run.report,
            session: imcc_driver::Options {
                overrides: imcc_driver::Overrides {
                    epochs: run.epochs,
                    limit: run.limit.map(|l| l as usize),
                    ..Default::default()
                },
                eval: true,
                jit: !run.no_jit,
                ..Default::default()
            },
        }),
        Command::Eval { file, checkpoint, train, sigma_lsb, hardware, json, no_jit } => {
            if let Err(e) = eval_cmd::existing_dir(&checkpoint) {
                errln!("error: {e}");
                return ExitCode::from(2);
            }
            eval_cmd::command(eval_cmd::Args { file, checkpoint, train, sigma_lsb, hardware, json, no_jit })
        }
        Command::Cost { file, train, json } => cost_cmd::command(&file, train.as_deref(), json),
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

pub fn use_color(c: ColorChoice) -> bool {
    match c {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
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
