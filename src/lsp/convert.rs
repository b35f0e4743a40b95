//! Between the compiler's terms and the protocol's: byte offsets and LSP positions (UTF-16 or
//! UTF-8 code units, as negotiated), file paths and `file:` URIs, diagnostics.

use imcc_compiler::codes::Code;
use imcc_compiler::diagnostic::{Diagnostic, Severity};
use imcc_compiler::span::{SourceMap, Span};
use lsp_types as lsp;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How the client counts columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-16 code units (the protocol's default).
    Utf16,
    /// Bytes.
    Utf8,
}

/// Line starts of one text, for converting offsets and positions.
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
    encoding: Encoding,
}

impl<'a> Lines<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str, encoding: Encoding) -> Lines<'a> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { text, starts, encoding }
    }

    /// The position of byte `offset` (clamped to the text, and back to a character boundary).
    pub fn position(&self, offset: usize) -> lsp::Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let before = &self.text[self.starts[line]..offset];
        let character = match self.encoding {
            Encoding::Utf8 => before.len(),
            Encoding::Utf16 => before.encode_utf16().count(),
        };
        lsp::Position { line: line as u32, character: character as u32 }
    }

    /// The byte offset of `pos`; a column past the line's end means its end, a line past the
    /// text's end means the end of the text.
    pub fn offset(&self, pos: lsp::Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let end = self.starts.get(pos.line as usize + 1).map_or(self.text.len(), |&e| e - 1);
        let line = &self.text[start..end.max(start)];
        let mut units = 0usize;
        for (i, c) in line.char_indices() {
            if units >= pos.character as usize {
                return start + i;
            }
            units += match self.encoding {
                Encoding::Utf8 => c.len_utf8(),
                Encoding::Utf16 => c.len_utf16(),
            };
        }
        start + line.len()
    }

    /// The range of a byte range.
    pub fn range(&self, r: std::ops::Range<usize>) -> lsp::Range {
        lsp::Range { start: self.position(r.start), end: self.position(r.end) }
    }

    /// The range of the whole text.
    pub fn whole(&self) -> lsp::Range {
        self.range(0..self.text.len())
    }
}

/// The path a `file:` URI names (percent-escapes decoded); `None` for other schemes.
pub fn path_of(uri: &lsp::Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str()).ok()?.to_file_path().ok()
}

/// The `file:` URI of absolute path `path`, escaping what a URI path may not hold.
pub fn uri_of(path: &Path) -> lsp::Uri {
    url::Url::from_file_path(path)
        .ok()
        .and_then(|u| lsp::Uri::from_str(u.as_str()).ok())
        .unwrap_or_else(|| lsp::Uri::from_str("file:///").expect("a valid URI"))
}

/// A compiler diagnostic as the protocol's, in the file of its location: the message with the
/// primary label's text and `note:`/`help:` lines (the text `imcc check` prints), and every
/// labelled span as related information.
pub fn diagnostic(
    d: &Diagnostic,
    sources: &SourceMap,
    uri_of_file: &dyn Fn(imcc_compiler::span::FileId) -> lsp::Uri,
    encoding: Encoding,
) -> lsp::Diagnostic {
    let range_of = |s: Span| Lines::new(&sources.get(s.file).text, encoding).range(s.range());
    // Editors show the message at the range: the primary label (what is wrong there) follows
    // the summary, then the notes and help, as `imcc check` prints them.
    let mut message = d.message.clone();
    if let Some(l) = d.labels.iter().find(|l| l.primary && !l.message.is_empty()) {
        message.push('\n');
        message.push_str(&l.message);
    }
    for n in &d.notes {
        message.push_str("\nnote: ");
        message.push_str(n);
    }
    for h in &d.helps {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter(|l| !l.message.is_empty())
        .map(|l| lsp::DiagnosticRelatedInformation {
            location: lsp::Location { uri: uri_of_file(l.span.file), range: range_of(l.span) },
            message: l.message.clone(),
        })
        .collect();
    lsp::Diagnostic {
        range: d.span().map_or_else(lsp::Range::default, range_of),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(lsp::NumberOrString::String(d.code.as_str().to_string())),
        code_description: None,
        source: Some("imcc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: is_unnecessary(d.code).then(|| vec![lsp::DiagnosticTag::UNNECESSARY]),
        data: None,
    }
}

/// Whether a code marks text that has no effect (editors grey it out).
fn is_unnecessary(code: Code) -> bool {
    matches!(code, Code::UnusedDefinition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_and_clamp() {
        let text = "a = 1;\n// µ𝄞 x\nb";
        let l = Lines::new(text, Encoding::Utf16);
        let x = text.find('x').unwrap();
        assert_eq!(l.position(x), lsp::Position { line: 1, character: 7 }, "µ is 1 unit, 𝄞 is 2");
        assert_eq!(l.offset(l.position(x)), x);
        assert_eq!(l.offset(lsp::Position { line: 1, character: 99 }), text.rfind('\n').unwrap());
        assert_eq!(l.offset(lsp::Position { line: 9, character: 0 }), text.len());
        let u8 = Lines::new(text, Encoding::Utf8);
        assert_eq!(u8.position(x), lsp::Position { line: 1, character: 10 });
        // Inside a character: back to its start.
        let mu = text.find('µ').unwrap();
        assert_eq!(l.position(mu + 1), l.position(mu));
    }

    #[test]
    fn uris_round_trip_with_escapes() {
        let p = Path::new("/tmp/my models/net #1.imc");
        let u = uri_of(p);
        assert_eq!(u.as_str(), "file:///tmp/my%20models/net%20%231.imc");
        assert_eq!(path_of(&u).as_deref(), Some(p));
        assert_eq!(path_of(&lsp::Uri::from_str("untitled:Untitled-1").unwrap()), None);
    }
}
