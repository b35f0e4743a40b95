//! Diagnostics as data. The compiler never prints; the command line renders these (ariadne for
//! people, JSON for tools).

use crate::codes::Code;
pub use crate::codes::Severity;
use crate::span::Span;
use serde::Serialize;

/// A labelled span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
    /// The primary label marks the cause; secondary ones give context.
    pub primary: bool,
}

/// A machine-applicable edit that fixes a diagnostic: replace `span` by `replacement` (the
/// "did you mean" of a misspelt name). Editors offer it as a quick fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// What to replace.
    pub span: Span,
    /// The text to put there.
    pub replacement: String,
}

/// One diagnostic: a code, a message, labelled spans, and notes and help lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code (`imcc explain CODE` explains it).
    pub code: Code,
    /// The one-line summary.
    pub message: String,
    /// Labelled spans; the first primary one is the diagnostic's location.
    pub labels: Vec<Label>,
    /// `note:` lines: why.
    pub notes: Vec<String>,
    /// `help:` lines: what to do.
    pub helps: Vec<String>,
    /// Edits that fix it (each also said in a `help:` line). A boxed slice: rare, and it keeps
    /// `Diagnostic` small enough to return by value.
    pub fixes: Box<[Fix]>,
}

impl Diagnostic {
    /// An error with `code` and `message` (its severity is the code's).
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            helps: Vec::new(),
            fixes: Box::default(),
        }
    }

    /// Adds the primary label.
    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: true });
        self
    }

    /// Adds a secondary label.
    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into(), primary: false });
        self
    }

    /// Adds a `note:` line.
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Adds a `help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.helps.push(help.into());
        self
    }

    /// When a candidate is close to `word` (a plausible typo), adds the help "did you mean
    /// `CANDIDATE`?" and the fix that replaces the diagnostic's location (which must be the
    /// misspelt word) with it.
    pub fn did_you_mean<'a>(mut self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Diagnostic {
        let Some(c) = crate::suggest::closest(word, candidates) else {
            return self;
        };
        if let Some(span) = self.span() {
            let mut fixes = std::mem::take(&mut self.fixes).into_vec();
            fixes.push(Fix { span, replacement: c.to_string() });
            self.fixes = fixes.into_boxed_slice();
        }
        self.help(format!("did you mean `{c}`?"))
    }

    /// Adds a `help:` line when `help` is `Some`.
    pub fn maybe_help(self, help: Option<String>) -> Diagnostic {
        match help {
            Some(h) => self.help(h),
            None => self,
        }
    }

    /// The location: the first primary label's span.
    pub fn span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).or(self.labels.first()).map(|l| l.span)
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Collected diagnostics of one compilation.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records `d`.
    pub fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }

    /// All diagnostics, sorted by file and position (stable for equal positions).
    /// Exact duplicates (a policy shared by several train blocks is checked once per block) are
    /// reported once.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| d.span().map(|s| (s.file, s.start)));
        let mut out: Vec<Diagnostic> = Vec::with_capacity(self.list.len());
        for d in self.list {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// All diagnostics in the order they were recorded.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.list
    }

    /// How many errors were recorded.
    pub fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_error()).count()
    }

    /// Every diagnostic, to edit before recording them elsewhere.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }
}
