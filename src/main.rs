//! `imcc`: the command line of the imcc compiler and simulator.

mod quantize;
mod render;

use clap::{Parser, Subcommand, ValueEnum};
use imcc_compiler::codes::Code;
use imcc_compiler::diagnostic::Severity;
use imcc_compiler::loader::{FsLoader, read_source};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Diagnostics rendered per file at most; the rest are counted.
const MAX_RENDERED: usize = 100;

#[derive(Parser)]
#[command(
    name = "imcc",
    version,
    about = "Compiler and simulator for training neural networks on in-memory-computing hardware"
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
    Explain {
        /// The code (`E0500`, `W0001`); `--list` lists all.
        #[arg(required_unless_present = "list")]
        code: Option<String>,
        /// List every code with its title.
        #[arg(long)]
        list: bool,
    },
    /// Print the reference of every block, section, parameter and layer (Markdown).
    Reference,
    /// Quantize numbers read from standard input (whitespace-separated decimals) and print
    /// one dequantized value per line.
    ///
    /// The scale is the GradScale factor `s` for radix-4 formats (values are `Q(x·s)/s`) and
    /// the clip range for integer formats (SAWB alpha, INT8 max). Exit status 1 on bad input.
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
    match cli.command {
        Command::Check {
            files,
            message_format,
            color,
            deny_warnings,
        } => {
            let color = match color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            check(&files, message_format, color, deny_warnings)
        }
        Command::Explain { code, list } => explain(code.as_deref(), list),
        Command::Quantize {
            format,
            scale,
            json,
        } => run_quantize(format, &scale, json),
        Command::Reference => {
            print!("{}", imcc_compiler::reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

fn check(files: &[PathBuf], format: MessageFormat, color: bool, deny_warnings: bool) -> ExitCode {
    let mut worst = 0u8;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    for path in files {
        let shown = path.display().to_string();
        let text = match read_source(path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(stderr.lock(), "error: cannot read `{shown}`: {}", e.0);
                worst = worst.max(2);
                continue;
            }
        };
        let comp = imcc_compiler::compile(path, &shown, &text, &FsLoader);
        let errors = comp
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = comp.diagnostics.len() - errors;
        for d in comp.diagnostics.iter().take(MAX_RENDERED) {
            match format {
                MessageFormat::Human => {
                    let _ = write!(stderr.lock(), "{}", render::human(&comp.sources, d, color));
                }
                MessageFormat::Json => {
                    let _ = writeln!(stdout.lock(), "{}", render::json(&comp.sources, d));
                }
            }
        }
        let failed = errors > 0 || (deny_warnings && warnings > 0);
        if let MessageFormat::Human = format {
            let mut err = stderr.lock();
            if comp.diagnostics.len() > MAX_RENDERED {
                let _ = writeln!(
                    err,
                    "note: {} more diagnostics not shown",
                    comp.diagnostics.len() - MAX_RENDERED
                );
            }
            let counts = plural(errors, "error")
                + &if warnings > 0 {
                    format!(", {}", plural(warnings, "warning"))
                } else {
                    String::new()
                };
            if failed {
                let _ = writeln!(err, "error: `{shown}` failed to check: {counts}");
            } else {
                let runs = comp.program.as_ref().map_or(0, |p| p.trains.len());
                let _ = writeln!(
                    stdout.lock(),
                    "ok: `{shown}`: {} ({counts})",
                    plural(runs, "train block")
                );
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
                eprintln!("error: --scale must be `auto` or a number, not `{s}`");
                return ExitCode::from(2);
            }
        },
    };
    let mut text = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
        eprintln!("error: cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    let result = quantize::parse_numbers(&text).and_then(|x| quantize::quantize(format, &x, scale));
    match result {
        Ok((s, values)) => {
            let mut out = std::io::stdout().lock();
            let _ = if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "scale": s, "values": values })
                )
            } else {
                values.iter().try_for_each(|v| writeln!(out, "{v}"))
            };
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
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
            println!("{}  {}", c.as_str(), c.title());
        }
        return ExitCode::SUCCESS;
    }
    let text = code.unwrap_or_default();
    match Code::parse(text) {
        Some(c) => {
            println!(
                "{}: {}\n\n{}",
                c.as_str(),
                c.title(),
                c.explanation().trim_end()
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: `{text}` is not a diagnostic code; `imcc explain --list` lists them");
            ExitCode::from(2)
        }
    }
}
