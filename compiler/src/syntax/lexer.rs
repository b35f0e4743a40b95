//! The token set of the `.imc` language (a logos lexer).

use logos::Logos;
use std::fmt;

/// One token. Literal tokens borrow their text from the source.
#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Token<'src> {
    /// A character or sequence no token matches (reported by the parser as E0001).
    Error,
    /// A string literal that reaches the end of its line (E0002).
    UnterminatedStr,
    /// `import`
    #[token("import")]
    Import,
    /// `extends`
    #[token("extends")]
    Extends,
    /// `from`
    #[token("from")]
    From,
    /// `true` / `false`
    #[token("true", |_| true)]
    #[token("false", |_| false)]
    Bool(bool),
    /// `x`, the dimension separator in `1152 x 256`.
    #[token("x", priority = 5)]
    Times,
    /// An identifier: block kinds, names, parameter keys, units.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'src str),
    /// A decimal number, kept as text so that integer-ness survives.
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")]
    Num(&'src str),
    /// A string literal, without its quotes (no escapes but `\"` and `\\`).
    #[regex(r#""([^"\\\n]|\\.)*""#, |lex| { let s = lex.slice(); &s[1..s.len() - 1] })]
    Str(&'src str),
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `;`
    #[token(";")]
    Semi,
    /// `:`
    #[token(":")]
    Colon,
    /// `,`
    #[token(",")]
    Comma,
    /// `=`
    #[token("=")]
    Eq,
    /// `-`
    #[token("-")]
    Minus,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Token::Error => write!(f, "an unknown character"),
            Token::UnterminatedStr => write!(f, "an unterminated string"),
            Token::Import => write!(f, "`import`"),
            Token::Extends => write!(f, "`extends`"),
            Token::From => write!(f, "`from`"),
            Token::Bool(b) => write!(f, "`{b}`"),
            Token::Times => write!(f, "`x`"),
            Token::Ident(s) => write!(f, "identifier `{s}`"),
            Token::Num(s) => write!(f, "number `{s}`"),
            Token::Str(s) => write!(f, "string \"{s}\""),
            Token::LBrace => write!(f, "`{{`"),
            Token::RBrace => write!(f, "`}}`"),
            Token::LParen => write!(f, "`(`"),
            Token::RParen => write!(f, "`)`"),
            Token::LBracket => write!(f, "`[`"),
            Token::RBracket => write!(f, "`]`"),
            Token::Semi => write!(f, "`;`"),
            Token::Colon => write!(f, "`:`"),
            Token::Comma => write!(f, "`,`"),
            Token::Eq => write!(f, "`=`"),
            Token::Minus => write!(f, "`-`"),
        }
    }
}

/// Lexes `src` into tokens with byte ranges. Unknown input becomes [`Token::Error`] or
/// [`Token::UnterminatedStr`] so that lexing never fails.
pub fn lex(src: &str) -> Vec<(Token<'_>, std::ops::Range<usize>)> {
    let mut lexer = Token::lexer(src);
    let mut out = Vec::new();
    while let Some(tok) = lexer.next() {
        let span = lexer.span();
        match tok {
            Ok(t) => out.push((t, span)),
            Err(()) if src[span.start..].starts_with('"') => {
                // An unterminated string: swallow the rest of the line so it yields one error.
                let end = src[span.start..].find('\n').map_or(src.len(), |i| span.start + i);
                lexer.bump(end - span.end);
                out.push((Token::UnterminatedStr, span.start..end));
            }
            Err(()) => out.push((Token::Error, span)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<String> {
        lex(src).into_iter().map(|(t, _)| t.to_string()).collect()
    }

    #[test]
    fn lexes_units_dims_and_comments() {
        assert_eq!(
            kinds("array = 1152 x 256; // rows x cols\nE = 1.2e-3 pJ;"),
            [
                "identifier `array`",
                "`=`",
                "number `1152`",
                "`x`",
                "number `256`",
                "`;`",
                "identifier `E`",
                "`=`",
                "number `1.2e-3`",
                "identifier `pJ`",
                "`;`"
            ]
        );
    }

    #[test]
    fn keywords_are_not_prefixes_of_identifiers() {
        assert_eq!(kinds("xor imports fromage"), ["identifier `xor`", "identifier `imports`", "identifier `fromage`"]);
    }

    #[test]
    fn unterminated_string_is_one_token_to_end_of_line() {
        let toks = lex("import \"hw/a.imc;\nhardware");
        assert_eq!(toks[1].0, Token::UnterminatedStr);
        assert_eq!(toks[1].1, 7..17);
        assert_eq!(toks[2].0, Token::Ident("hardware"));
    }

    #[test]
    fn unknown_characters_are_error_tokens() {
        assert_eq!(kinds("a @ b"), ["identifier `a`", "an unknown character", "identifier `b`"]);
    }
}
