//! The canonical layout of `.imc` files (`imcc fmt`, and formatting in the language server).
//!
//! The formatter re-spaces the token stream: it never adds, drops or reorders a token, so a
//! formatted file parses to the same tree (and checks and lowers to the same program) as the
//! original. The layout:
//!
//! - one statement per line, four spaces per open brace; a `{` ends its line and the matching
//!   `}` stands on its own, except an empty block `{}`;
//! - one space between tokens, none before `;` `,` `:` `)` `]`, none after `(` `[` and a unary
//!   `-`, none between a name and its `(`;
//! - comments kept where they are: a comment after code stays at the end of that line (the
//!   trailing comments of consecutive lines aligned one space past the longest code), a
//!   comment on its own line stays on its own line; a comment inside a statement breaks it,
//!   and the statement continues one level deeper;
//! - blank lines kept, at most one in a row, none after `{` or before `}`; one between
//!   top-level blocks; the file ends with one newline.
//!
//! A file with syntax errors is refused with its diagnostics: there is no canonical layout of
//! text that is not yet a program.

use crate::diagnostic::Diagnostic;
use crate::span::FileId;
use crate::syntax::{self, lexer::Token};

/// One output line.
#[derive(Debug, Default)]
struct Line {
    indent: usize,
    code: String,
    comment: Option<String>,
    blank_before: bool,
}

/// The formatter's state while it walks the tokens.
struct Layout<'s> {
    src: &'s str,
    lines: Vec<Line>,
    cur: Line,
    depth: usize,
    /// Inside a statement that a comment broke: its lines go one level deeper.
    continued: bool,
    /// A blank line was seen before the next line.
    pending_blank: bool,
}

impl Layout<'_> {
    fn flush(&mut self) {
        if !self.cur.code.is_empty() || self.cur.comment.is_some() {
            let line = std::mem::take(&mut self.cur);
            self.lines.push(line);
        }
    }

    /// Starts the current line (empty) at `indent`, with a blank line before it when one was
    /// seen and the previous line does not open a block.
    fn start(&mut self, indent: usize) {
        let after_open = self.lines.last().is_none_or(|l| l.code.trim_end().ends_with('{'));
        self.cur.indent = indent;
        self.cur.blank_before = self.pending_blank && !after_open && !self.lines.is_empty();
        self.pending_blank = false;
    }

    /// The whitespace and comments between two tokens (or before the first, after the last).
    fn gap(&mut self, text: &str, at_file_start: bool) {
        let mut newlines_before = if at_file_start { 1 } else { 0 };
        let mut rest = text;
        while let Some(i) = rest.find("//") {
            newlines_before += rest[..i].matches('\n').count();
            let end = rest[i..].find('\n').map_or(rest.len(), |j| i + j);
            let comment = rest[i..end].trim_end().to_string();
            if newlines_before == 0 {
                if !self.cur.code.is_empty() {
                    // After code inside a statement: the statement continues below.
                    self.cur.comment = Some(comment);
                    self.flush();
                    self.continued = true;
                } else if let Some(last) = self.lines.last_mut().filter(|l| l.comment.is_none() && !l.code.is_empty()) {
                    last.comment = Some(comment);
                } else {
                    self.own_line(comment, false);
                }
            } else {
                if !self.cur.code.is_empty() {
                    self.flush();
                    self.continued = true;
                }
                self.own_line(comment, newlines_before >= 2);
            }
            newlines_before = 0;
            rest = &rest[end..];
        }
        newlines_before += rest.matches('\n').count();
        if newlines_before >= 2 {
            self.pending_blank = true;
        }
    }

    fn own_line(&mut self, comment: String, blank: bool) {
        self.pending_blank |= blank;
        self.start(self.depth + usize::from(self.continued));
        self.cur.comment = Some(comment);
        self.flush();
    }

    fn token(&mut self, tok: &Token<'_>, text: &str, prev: Option<&Token<'_>>, next: Option<&Token<'_>>) {
        if *tok == Token::RBrace {
            let empty_block = prev == Some(&Token::LBrace) && !self.cur.code.is_empty();
            self.depth = self.depth.saturating_sub(1);
            if empty_block {
                self.cur.code.push('}');
            } else {
                self.flush();
                self.pending_blank = false; // no blank line before `}`
                self.start(self.depth);
                self.cur.code.push('}');
            }
            self.continued = false;
            self.flush();
            // One blank line between top-level blocks.
            if self.depth == 0 && next.is_some() {
                self.pending_blank = true;
            }
            return;
        }
        if self.cur.code.is_empty() {
            self.start(self.depth + usize::from(self.continued));
        } else if prev.is_some_and(|p| space_between(p, tok)) {
            self.cur.code.push(' ');
        }
        self.cur.code.push_str(text);
        match tok {
            Token::LBrace => {
                self.depth += 1;
                self.continued = false;
                if next != Some(&Token::RBrace) {
                    self.flush();
                }
            }
            Token::Semi => {
                self.continued = false;
                self.flush();
            }
            _ => {}
        }
    }

    fn finish(mut self) -> String {
        self.flush();
        align_trailing_comments(&mut self.lines);
        let mut out = String::new();
        for l in &self.lines {
            if l.blank_before {
                out.push('\n');
            }
            let pad = " ".repeat(4 * l.indent);
            match (&l.comment, l.code.is_empty()) {
                (Some(c), true) => out.push_str(&format!("{pad}{c}\n")),
                (Some(c), false) => out.push_str(&format!("{pad}{}{c}\n", l.code)),
                (None, _) => out.push_str(&format!("{pad}{}\n", l.code)),
            }
        }
        out
    }
}

/// Whether the canonical layout puts a space between `a` and `b`.
fn space_between(a: &Token<'_>, b: &Token<'_>) -> bool {
    if matches!(b, Token::Semi | Token::Comma | Token::Colon | Token::RParen | Token::RBracket) {
        return false;
    }
    if matches!(a, Token::LParen | Token::LBracket | Token::Minus) {
        return false;
    }
    !(matches!(b, Token::LParen) && matches!(a, Token::Ident(_)))
}

/// Pads the code of lines with a trailing comment so that, in each run of consecutive such
/// lines at one indentation, the comments start one space past the longest code.
fn align_trailing_comments(lines: &mut [Line]) {
    let trailing = |l: &Line| l.comment.is_some() && !l.code.is_empty();
    let mut i = 0;
    while i < lines.len() {
        if !trailing(&lines[i]) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && trailing(&lines[j]) && !lines[j].blank_before && lines[j].indent == lines[i].indent {
            j += 1;
        }
        let width = lines[i..j].iter().map(|l| 4 * l.indent + l.code.chars().count()).max().unwrap_or(0);
        for l in &mut lines[i..j] {
            let pad = width - 4 * l.indent - l.code.chars().count() + 1;
            l.code.push_str(&" ".repeat(pad));
        }
        i = j;
    }
}

/// `src` in the canonical layout, or the syntax errors that stop it.
pub fn format(file: FileId, src: &str) -> Result<String, Vec<Diagnostic>> {
    let (_, diags) = syntax::parse(file, src);
    if !diags.is_empty() {
        return Err(diags);
    }
    let tokens = syntax::lexer::lex(src);
    let mut layout =
        Layout { src, lines: Vec::new(), cur: Line::default(), depth: 0, continued: false, pending_blank: false };
    let mut end = 0;
    for (i, (tok, range)) in tokens.iter().enumerate() {
        layout.gap(&src[end..range.start], i == 0);
        let prev = i.checked_sub(1).map(|p| &tokens[p].0);
        let next = tokens.get(i + 1).map(|t| &t.0);
        layout.token(tok, &layout.src[range.clone()], prev, next);
        end = range.end;
    }
    layout.gap(&src[end..], tokens.is_empty());
    Ok(layout.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format(FileId(0), s).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn lays_out_blocks_statements_and_spacing() {
        let src = "hardware  chip{array=1152 x 256;adc{bits=8 bits;}}\nnetwork n { input = [ 64 ];\n fc1 : dense( 10 , bias=false ) ; loss: softmax_cross_entropy; }";
        assert_eq!(
            fmt(src),
            "hardware chip {\n    array = 1152 x 256;\n    adc {\n        bits = 8 bits;\n    }\n}\n\nnetwork n {\n    input = [64];\n    fc1: dense(10, bias = false);\n    loss: softmax_cross_entropy;\n}\n"
        );
    }

    #[test]
    fn keeps_comments_blank_lines_and_negative_numbers() {
        let src = "// head\n\n\n\nquant q {   // trailing\n\n  weights = int8;  // w\n  activations = f32; // a much longer comment\n\n\n  // own line\n  errors = int8;\n}\nmapping m {}\ntrain t { seed = 1; data = digits(test_fraction = 0.2); }";
        let out = fmt(src);
        assert_eq!(
            out,
            "// head\n\nquant q { // trailing\n    weights = int8;    // w\n    activations = f32; // a much longer comment\n\n    // own line\n    errors = int8;\n}\n\nmapping m {}\n\ntrain t {\n    seed = 1;\n    data = digits(test_fraction = 0.2);\n}\n"
        );
        assert_eq!(fmt(&out), out, "idempotent");
        assert!(fmt("hardware h { noise { sigma_lsb = -0.5 lsb; } }").contains("sigma_lsb = -0.5 lsb;"));
    }

    #[test]
    fn a_comment_inside_a_statement_continues_it_deeper() {
        let src = "sweep s { train = [a, // first\n b]; }";
        let out = fmt(src);
        assert_eq!(out, "sweep s {\n    train = [a, // first\n        b];\n}\n");
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn refuses_syntax_errors() {
        let err = format(FileId(0), "hardware h { array = ; }").expect_err("a syntax error");
        assert!(err.iter().any(|d| d.code.as_str() == "E0003"), "{err:?}");
    }
}
