//! Rendering diagnostics: rustc-like text through ariadne for people, JSON lines for tools.
//! The only place that turns the compiler's diagnostic data into output.

use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use imcc_compiler::diagnostic::{Diagnostic, Severity};
use imcc_compiler::span::{SourceMap, Span};
use serde_json::json;

/// Renders one diagnostic as rustc-style text.
pub fn human(sources: &SourceMap, d: &Diagnostic, color: bool) -> String {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let name = |s: Span| sources.get(s.file).name.clone();
    let Some(at) = d.span() else {
        // No location: the header and the notes, in the same shape.
        let mut out = format!("{}[{}]: {}\n", kind_word(d.severity), d.code, d.message);
        for n in &d.notes {
            out.push_str(&format!("  = note: {n}\n"));
        }
        for h in &d.helps {
            out.push_str(&format!("  = help: {h}\n"));
        }
        return out;
    };
    let primary_color = if d.severity == Severity::Error { Color::Red } else { Color::Yellow };
    let mut report = Report::build(kind, (name(at), at.range()))
        .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte))
        .with_code(d.code)
        .with_message(&d.message);
    for (i, l) in d.labels.iter().enumerate() {
        let mut label = Label::new((name(l.span), l.span.range()))
            .with_color(if l.primary { primary_color } else { Color::Blue })
            .with_order(i as i32);
        if !l.message.is_empty() {
            label = label.with_message(&l.message);
        }
        report = report.with_label(label);
    }
    for n in &d.notes {
        report = report.with_note(n);
    }
    for h in &d.helps {
        report = report.with_help(h);
    }
    let cache = ariadne::sources(sources.iter().map(|(_, f)| (f.name.clone(), f.text.clone())));
    let mut buf = Vec::new();
    match report.finish().write(cache, &mut buf) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("{}[{}]: {} (could not render source: {e})\n", kind_word(d.severity), d.code, d.message),
    }
}

fn kind_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as a JSON object with file names, 1-based lines and columns, and byte ranges.
pub fn json(sources: &SourceMap, d: &Diagnostic) -> serde_json::Value {
    let loc = |s: Span| {
        let f = sources.get(s.file);
        let (line, column) = f.line_col(s.start as usize);
        let (end_line, end_column) = f.line_col(s.end as usize);
        json!({
            "file": f.name, "byte_start": s.start, "byte_end": s.end,
            "line": line, "column": column, "end_line": end_line, "end_column": end_column,
        })
    };
    json!({
        "severity": d.severity,
        "code": d.code,
        "message": d.message,
        "location": d.span().map(loc),
        "labels": d.labels.iter().map(|l| {
            let mut v = loc(l.span);
            v["message"] = json!(l.message);
            v["primary"] = json!(l.primary);
            v
        }).collect::<Vec<_>>(),
        "notes": d.notes,
        "helps": d.helps,
        "fixes": d.fixes.iter().map(|f| {
            let mut v = loc(f.span);
            v["replacement"] = json!(f.replacement);
            v
        }).collect::<Vec<_>>(),
        "rendered": human(sources, d, false),
    })
}
