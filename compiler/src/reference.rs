//! The parameter reference, generated from the schema (`imcc reference`). `spec/language.md`
//! embeds it verbatim between markers; a test keeps the two equal.

use crate::schema::{self, CtorSpec, Kind, ParamSpec, Presence, Ty};
use std::fmt::Write;

/// The marker lines around the generated part of `spec/language.md`.
pub const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE (imcc reference) -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- END GENERATED REFERENCE -->";

fn default_text(p: &ParamSpec) -> String {
    match p.presence {
        Presence::Required => "required".into(),
        Presence::Optional => "optional".into(),
        Presence::Default(d) => format!("`{d}`"),
    }
}

fn param_table(out: &mut String, params: &[ParamSpec], ctors: &mut Vec<&'static [CtorSpec]>) {
    out.push_str("| parameter | type | default | meaning |\n|---|---|---|---|\n");
    for p in params {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            p.name,
            p.ty.describe(),
            default_text(p),
            p.doc.replace('|', "\\|")
        );
        if let Ty::Ctor(c) = p.ty
            && !ctors.iter().any(|x| std::ptr::eq(*x, c))
        {
            ctors.push(c);
        }
    }
    out.push('\n');
}

fn ctor_table(out: &mut String, ctors: &[&'static [CtorSpec]]) {
    if ctors.is_empty() {
        return;
    }
    out.push_str("Values with arguments:\n\n| value | arguments (default) | meaning |\n|---|---|---|\n");
    for group in ctors {
        for c in group.iter() {
            let args: Vec<String> =
                c.args.iter().map(|a| format!("`{}` ({}): {}", a.name, default_text(a), a.doc)).collect();
            let args = if args.is_empty() { "none".to_string() } else { args.join("<br>") };
            let _ = writeln!(out, "| `{}` | {} | {} |", c.name, args.replace('|', "\\|"), c.doc.replace('|', "\\|"));
        }
    }
    out.push('\n');
}

/// The whole reference, in Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        let spec = schema::block(kind);
        let _ = writeln!(out, "### `{}` blocks\n\n{}\n", kind.keyword(), spec.doc);
        let mut ctors = Vec::new();
        param_table(&mut out, spec.params, &mut ctors);
        for s in spec.sections {
            let head = if s.labelled { format!("{} NAME {{ ... }}", s.name) } else { format!("{} {{ ... }}", s.name) };
            let _ = writeln!(out, "#### Section `{head}`\n\n{}\n", s.doc);
            param_table(&mut out, s.params, &mut ctors);
        }
        ctor_table(&mut out, &ctors);
        if kind == Kind::Network {
            out.push_str("#### Layers\n\n| layer | arguments (default) | MVMs | meaning |\n|---|---|---|---|\n");
            for l in schema::LAYERS {
                let args: Vec<String> =
                    l.args.iter().map(|a| format!("`{}` ({}): {}", a.name, default_text(a), a.doc)).collect();
                let args = if args.is_empty() { "none".to_string() } else { args.join("<br>") };
                let _ =
                    writeln!(out, "| `{}` | {} | {} | {} |", l.op, args, if l.has_mvm { "yes" } else { "no" }, l.doc);
            }
            out.push('\n');
        }
    }
    out.push_str("### Units\n\n| unit | measures | factor |\n|---|---|---|\n");
    for (name, dim, f) in schema::UNITS {
        let _ = writeln!(out, "| `{name}` | {} | {f:e} |", dim.describe());
    }
    out
}
