//! The chumsky parser: tokens to [`ast::File`](super::ast::File), with error recovery so that
//! several independent syntax errors in one file are all reported.

use super::ast::*;
use super::lexer::Token;
use crate::span::{FileId, Span};
use chumsky::input::ValueInput;
use chumsky::prelude::*;

/// The parser's error type.
pub type ParseError<'t, 'src> = Rich<'t, Token<'src>, SimpleSpan>;
type Extra<'t, 'src> = extra::Err<ParseError<'t, 'src>>;

/// Parses a whole file: items until the end of input.
pub fn file_parser<'t, 'src: 't, I>(file: FileId) -> impl Parser<'t, I, File, Extra<'t, 'src>>
where
    I: ValueInput<'t, Token = Token<'src>, Span = SimpleSpan>,
{
    let sp = move |s: SimpleSpan| Span::new(file, s.into_range());

    let ident = select! { Token::Ident(s) => s }
        .map_with(move |s: &str, e| Ident { name: s.to_string(), span: sp(e.span()) })
        .labelled("identifier");

    let expr = expr_parser(file, ident);
    let args = args_parser(expr.clone(), ident);

    // A statement that does not parse is skipped up to its `;`, up to (not past) the closing
    // brace of its block, or over a whole `{ ... }` it started, and becomes `Stmt::Error`.
    let brace_block = || {
        nested_delimiters(
            Token::LBrace,
            Token::RBrace,
            [(Token::LParen, Token::RParen), (Token::LBracket, Token::RBracket)],
            |_| (),
        )
    };
    let stmt_end = choice((just(Token::Semi).ignored(), brace_block(), just(Token::RBrace).rewind().ignored(), end()));
    let stmt_recovery = choice((
        none_of([Token::Semi, Token::LBrace, Token::RBrace]).repeated().at_least(1).then(stmt_end).ignored(),
        just(Token::Semi).ignored(),
        brace_block(),
    ))
    .map_with(move |_, e| Stmt::Error(sp(e.span())));

    let stmt = recursive(|stmt| {
        let body = stmt.repeated().collect::<Vec<_>>().delimited_by(just(Token::LBrace), just(Token::RBrace));

        let param = ident
            .then_ignore(just(Token::Eq))
            .then(expr.clone())
            .then_ignore(just(Token::Semi))
            .map_with(move |(key, value), e| Stmt::Param(Param { key, value, span: sp(e.span()) }));

        let from =
            just(Token::From).ignore_then(ident.separated_by(just(Token::Comma)).at_least(1).collect::<Vec<_>>());
        let layer = ident
            .then_ignore(just(Token::Colon))
            .then(ident)
            .then(args.clone().or_not())
            .then(from.or_not())
            .then_ignore(just(Token::Semi))
            .map_with(move |(((name, op), args), from), e| {
                Stmt::Layer(LayerDecl {
                    name,
                    op,
                    args: args.unwrap_or_default(),
                    from: from.unwrap_or_default(),
                    span: sp(e.span()),
                })
            });

        let section = ident
            .then(ident.or_not())
            .then(body)
            .map_with(move |((kind, label), body), e| Stmt::Section(Section { kind, label, body, span: sp(e.span()) }));

        choice((param, layer, section)).labelled("statement").recover_with(via_parser(stmt_recovery))
    });

    let body = stmt.repeated().collect::<Vec<_>>().delimited_by(just(Token::LBrace), just(Token::RBrace));

    let string = select! { Token::Str(s) => s }.labelled("string");
    let import = just(Token::Import)
        .ignore_then(string.map_with(move |s: &str, e| (s.to_string(), sp(e.span()))))
        .then_ignore(just(Token::Semi))
        .map_with(move |(path, path_span), e| Item::Import(Import { path, path_span, span: sp(e.span()) }));

    let block = ident.then(ident).then(just(Token::Extends).ignore_then(ident).or_not()).then(body).map_with(
        move |(((kind, name), extends), body), e| Item::Block(Block { kind, name, extends, body, span: sp(e.span()) }),
    );

    choice((import, block))
        .labelled("item")
        .recover_with(skip_then_retry_until(any().ignored(), end()))
        .repeated()
        .collect::<Vec<_>>()
        .then_ignore(end())
        .map(|items| File { items })
}

/// Arguments: `(a, name = b, ...)`.
fn args_parser<'t, 'src: 't, I, E, N>(expr: E, ident: N) -> impl Parser<'t, I, Vec<Arg>, Extra<'t, 'src>> + Clone
where
    I: ValueInput<'t, Token = Token<'src>, Span = SimpleSpan>,
    E: Parser<'t, I, Expr, Extra<'t, 'src>> + Clone,
    N: Parser<'t, I, Ident, Extra<'t, 'src>> + Clone,
{
    ident
        .then_ignore(just(Token::Eq))
        .or_not()
        .then(expr)
        .map(|(name, value)| Arg { name, value })
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LParen), just(Token::RParen))
        .labelled("arguments")
}

/// A value: `8`, `-0.5`, `1.2 pJ`, `true`, `"dir"`, `name`, `f(args)`, `[a, b]`, `a x b`.
fn expr_parser<'t, 'src: 't, I, N>(file: FileId, ident: N) -> impl Parser<'t, I, Expr, Extra<'t, 'src>> + Clone
where
    I: ValueInput<'t, Token = Token<'src>, Span = SimpleSpan>,
    N: Parser<'t, I, Ident, Extra<'t, 'src>> + Clone + 't,
{
    let sp = move |s: SimpleSpan| Span::new(file, s.into_range());
    recursive(move |expr| {
        let number = just(Token::Minus)
            .or_not()
            .then(select! { Token::Num(s) => s })
            .then(ident.clone().or_not())
            .map(|((minus, text), unit): ((Option<Token>, &str), Option<Ident>)| {
                // The lexer's regex only admits valid decimal syntax; overflow gives inf,
                // which the checker reports as out of range.
                let v: f64 = text.parse().unwrap_or(f64::INFINITY);
                let is_integer = !text.contains(['.', 'e', 'E']);
                ExprKind::Number(Number { value: if minus.is_some() { -v } else { v }, is_integer, unit })
            })
            .labelled("number");

        let literal = select! {
            Token::Bool(b) => ExprKind::Bool(b),
            Token::Str(s) => ExprKind::Str(s.to_string()),
        };

        let name_or_call =
            ident.clone().then(args_parser(expr.clone(), ident.clone()).or_not()).map(|(callee, args)| match args {
                Some(args) => ExprKind::Call { callee, args },
                None => ExprKind::Name(callee),
            });

        let list = expr
            .clone()
            .separated_by(just(Token::Comma))
            .allow_trailing()
            .collect::<Vec<_>>()
            .delimited_by(just(Token::LBracket), just(Token::RBracket))
            .map(ExprKind::List);

        let atom = choice((number, literal, name_or_call, list))
            .map_with(move |kind, e| Expr { kind, span: sp(e.span()) })
            .recover_with(via_parser(nested_delimiters(
                Token::LBracket,
                Token::RBracket,
                [(Token::LParen, Token::RParen), (Token::LBrace, Token::RBrace)],
                move |s| Expr { kind: ExprKind::Error, span: sp(s) },
            )))
            .labelled("value")
            .boxed();

        atom.separated_by(just(Token::Times)).at_least(1).collect::<Vec<_>>().map_with(move |mut parts, e| {
            if parts.len() == 1 {
                parts.pop().expect("at_least(1)")
            } else {
                Expr { kind: ExprKind::Dims(parts), span: sp(e.span()) }
            }
        })
    })
}
