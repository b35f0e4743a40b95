//! `imcc lower`: a file's train blocks as mapping summaries, IR text, IR JSON, CLIF or syntax.

use crate::load::{Lowering, load_checked, select};
use imcc_compiler::loader::read_source;
use imcc_compiler::lower;
use std::process::ExitCode;

pub fn command(
    path: &std::path::Path,
    train: Option<&str>,
    emit: crate::Emit,
    after: Option<lower::Pass>,
    color: bool,
) -> ExitCode {
    let shown = path.display().to_string();
    if emit == crate::Emit::Ast {
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
    let (comp, steps) = match load_checked(path, Lowering::Through(after), color, train) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let selected = match select(&steps, |s| s.name.as_str(), train, &shown) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for (i, step) in selected.iter().enumerate() {
        if i > 0 && emit != crate::Emit::Json {
            outln!();
        }
        match emit {
            crate::Emit::Ir => out!("{}", imcc_runtime::ir::text::print(step)),
            crate::Emit::Mapping => out!("{}", imcc_runtime::ir::text::mapping_summary(step)),
            crate::Emit::MappingImc => {
                let Some(run) = comp.program.as_ref().and_then(|p| p.all_runs().find(|r| r.name == step.name)) else {
                    continue;
                };
                out!("{}", lower::mapping_source(step, run));
            }
            crate::Emit::Json => match serde_json::to_string(step) {
                Ok(j) => outln!("{j}"),
                Err(e) => {
                    errln!("error: cannot serialize the IR: {e}");
                    return ExitCode::from(101);
                }
            },
            crate::Emit::Clif => {
                let Some(run) = comp.program.as_ref().and_then(|p| p.all_runs().find(|r| r.name == step.name)) else {
                    continue;
                };
                let consts = imcc_runtime::jit::Consts::from(&imcc_driver::hyper(run));
                match imcc_runtime::jit::clif(step, &consts) {
                    Ok(text) => out!("; train {}\n{text}", step.name),
                    Err(e) => {
                        errln!("error: `{}`: {e}", step.name);
                        return ExitCode::from(1);
                    }
                }
            }
            crate::Emit::Ast => unreachable!("handled above"),
        }
    }
    ExitCode::SUCCESS
}
