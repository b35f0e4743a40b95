//! The front end's syntax layer: lexing and parsing one file. Parsing never fails: it returns
//! what it could parse plus diagnostics.

pub mod ast;
pub mod lexer;
mod parser;

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use chumsky::error::{RichPattern, RichReason};
use chumsky::input::{Input, Stream};
use chumsky::prelude::*;
use lexer::Token;

/// The deepest bracket nesting accepted; deeper input is rejected before parsing so that the
/// recursive parser's stack stays bounded on any input.
pub const MAX_NESTING: usize = 64;

/// Parses `src` (the text of file `file`) into a syntax tree and the diagnostics found on the way.
pub fn parse(file: FileId, src: &str) -> (ast::File, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut tokens = Vec::new();
    for (tok, range) in lexer::lex(src) {
        let span = Span::new(file, range.clone());
        match tok {
            Token::Error => {
                let ch = src[range].chars().next().unwrap_or('?');
                diags.push(
                    Diagnostic::new(Code::UnknownCharacter, format!("unknown character `{}`", ch.escape_debug()))
                        .primary(span, "not part of any token"),
                );
            }
            Token::UnterminatedStr => diags.push(
                Diagnostic::new(Code::UnterminatedString, "unterminated string")
                    .primary(span, "this string is never closed")
                    .help("close it with `\"` on the same line"),
            ),
            tok => tokens.push((tok, SimpleSpan::from(range))),
        }
    }

    if let Some(d) = check_nesting(file, &tokens) {
        diags.push(d);
        return (ast::File::default(), diags);
    }

    let eoi = SimpleSpan::from(src.len()..src.len());
    let input = Stream::from_iter(tokens.iter().cloned()).map(eoi, |(t, s): (_, _)| (t, s));
    let (out, errs) = parser::file_parser(file).parse(input).into_output_errors();
    diags.extend(errs.into_iter().map(|e| syntax_error(file, &e)));
    (out.unwrap_or_default(), diags)
}

/// Rejects input whose brackets nest deeper than [`MAX_NESTING`].
fn check_nesting(file: FileId, tokens: &[(Token<'_>, SimpleSpan)]) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (tok, span) in tokens {
        match tok {
            Token::LBrace | Token::LParen | Token::LBracket => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::new(
                            Code::NestingTooDeep,
                            format!("brackets nest deeper than {MAX_NESTING} levels"),
                        )
                        .primary(Span::new(file, span.into_range()), "this bracket is too deep"),
                    );
                }
            }
            Token::RBrace | Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Turns a chumsky error into an E0003 diagnostic with an "expected ..., found ..." message.
fn syntax_error(file: FileId, e: &parser::ParseError<'_, '_>) -> Diagnostic {
    let span = Span::new(file, e.span().into_range());
    let found = e.found().map_or_else(|| "end of file".to_string(), |t| t.to_string());
    let message = match e.reason() {
        RichReason::Custom(msg) => msg.to_string(),
        RichReason::ExpectedFound { .. } => {
            let mut expected: Vec<String> = e
                .expected()
                .filter_map(|p| match p {
                    RichPattern::Token(t) => Some(t.to_string()),
                    RichPattern::Label(l) => Some(l.to_string()),
                    RichPattern::EndOfInput => Some("end of file".to_string()),
                    _ => None,
                })
                .collect();
            expected.sort();
            expected.dedup();
            match expected.len() {
                0 => format!("unexpected {found}"),
                1 => format!("expected {}, found {found}", expected[0]),
                n => format!("expected {} or {}, found {found}", expected[..n - 1].join(", "), expected[n - 1]),
            }
        }
    };
    let mut d = Diagnostic::new(Code::SyntaxError, message).primary(span, format!("unexpected {found}"));
    for (label, ctx) in e.contexts() {
        if let RichPattern::Label(l) = label {
            d = d.secondary(Span::new(file, ctx.into_range()), format!("while parsing this {l}"));
        }
    }
    if matches!(e.found(), Some(Token::Times)) {
        d = d.note("`x` is reserved for dimensions such as `1152 x 256`");
    }
    d
}

/// Parses a lone value (used for the schema's default texts); `None` if it does not parse.
pub fn parse_value(text: &str) -> Option<ast::Expr> {
    let src = format!("hardware __ {{ __ = {text}; }}");
    let (file, diags) = parse(FileId(u32::MAX), &src);
    if !diags.is_empty() {
        return None;
    }
    match file.items.into_iter().next()? {
        ast::Item::Block(b) => match b.body.into_iter().next()? {
            ast::Stmt::Param(p) => Some(p.value),
            _ => None,
        },
        ast::Item::Import(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<String> {
        parse(FileId(0), src)
            .1
            .into_iter()
            .map(|d| format!("{} {} @{:?}", d.code, d.message, d.span().map(|s| s.range())))
            .collect()
    }

    #[test]
    fn parses_every_construct() {
        let src = r#"
            import "hw/chip.imc";
            hardware h extends base {
                array = 1152 x 256;
                input = dac(bits = 5, levels = [1, 4, 16]);
                adc { bits = 8 bits; adaptability = [1, 8]; }
                energy { column_eval = 1.2 pJ; }
                offset = -0.5;
                flag = true;
                path = "d";
            }
            network n {
                input = [1, 28, 28];
                c1: conv2d(8, kernel = 3);
                s: add from c1, c1;
                loss: softmax_cross_entropy;
            }
        "#;
        let (file, diags) = parse(FileId(0), src);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(file.items.len(), 3);
        let ast::Item::Block(hw) = &file.items[1] else { panic!() };
        assert_eq!(hw.extends.as_ref().unwrap().name, "base");
        assert_eq!(hw.body.len(), 7);
        let ast::Stmt::Param(p) = &hw.body[0] else { panic!() };
        assert!(matches!(&p.value.kind, ast::ExprKind::Dims(d) if d.len() == 2));
        let ast::Stmt::Param(p) = &hw.body[4] else { panic!() };
        let ast::ExprKind::Number(n) = &p.value.kind else { panic!() };
        assert_eq!(n.value, -0.5);
        assert!(!n.is_integer);
        let ast::Item::Block(net) = &file.items[2] else { panic!() };
        let ast::Stmt::Layer(add) = &net.body[2] else { panic!() };
        assert_eq!(add.from.len(), 2);
    }

    #[test]
    fn recovers_and_reports_independent_errors() {
        let src = "train a {\n epochs = 10\n batch = 64;\n}\ntrain b {\n seed = ;\n lr = 0.1;\n}\n";
        let errs = errors(src);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].starts_with("E0003 expected"), "{errs:#?}");
        let (file, _) = parse(FileId(0), src);
        assert_eq!(file.items.len(), 2, "both blocks survive recovery");
    }

    #[test]
    fn lexer_errors_are_reported_and_skipped() {
        let errs = errors("hardware h { a = 1 @; }");
        assert_eq!(errs, ["E0001 unknown character `@` @Some(19..20)"]);
    }

    #[test]
    fn deep_nesting_is_rejected_without_recursion() {
        let src = format!("hardware h {{ a = {}1{}; }}", "[".repeat(10_000), "]".repeat(10_000));
        let errs = errors(&src);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("E0004"));
    }

    #[test]
    fn missing_closing_brace_is_reported() {
        let errs = errors("hardware h { a = 1;");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("end of file"), "{errs:#?}");
    }
}
