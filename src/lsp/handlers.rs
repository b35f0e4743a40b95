//! Answers to the editor's requests: the compiler's editor features
//! ([`imcc_compiler::ide`]) in the protocol's types.

use super::convert::{self, Lines};
use super::workspace::{Workspace, imc_files};
use imcc_compiler::ide::complete::CompletionKind;
use imcc_compiler::ide::navigate::{OutlineItem, OutlineKind, Symbol};
use imcc_compiler::schema::Kind;
use imcc_compiler::span::FileId;
use lsp_server::{ErrorCode, Request};
use lsp_types as lsp;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A failed request: the protocol's error code and a message.
pub type Failure = (ErrorCode, String);

/// Decodes `req`'s parameters, runs `f` (a panic becomes an internal error, not a crash) and
/// encodes its result.
pub fn run<P: DeserializeOwned, R: Serialize>(
    req: Request,
    f: impl FnOnce(P) -> Result<R, Failure>,
) -> Result<serde_json::Value, Failure> {
    let params: P = serde_json::from_value(req.params)
        .map_err(|e| (ErrorCode::InvalidParams, format!("bad parameters for `{}`: {e}", req.method)))?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(params))).map_err(|_| {
        (ErrorCode::InternalError, format!("internal error answering `{}` (a bug in imcc)", req.method))
    })??;
    serde_json::to_value(result).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

/// The byte offset of a position in a document the workspace knows.
fn locate<'w>(
    ws: &'w Workspace,
    doc: &lsp::TextDocumentPositionParams,
) -> Option<(&'w imcc_compiler::ide::Analysis, FileId, usize)> {
    let (a, file) = ws.analysis_of(&doc.text_document.uri)?;
    let offset = Lines::new(a.text(file), ws.encoding).offset(doc.position);
    Some((a, file, offset))
}

/// Markdown about the name at the position.
pub fn hover(ws: &Workspace, p: lsp::HoverParams) -> Result<Option<lsp::Hover>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p.text_document_position_params) else {
        return Ok(None);
    };
    Ok(a.hover(file, offset).map(|h| lsp::Hover {
        contents: lsp::HoverContents::Markup(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: h.markdown }),
        range: Some(ws.range(a, h.span)),
    }))
}

/// What may be written at the position, each with the edit that writes it.
pub fn completion(ws: &Workspace, p: lsp::CompletionParams) -> Result<Option<lsp::CompletionResponse>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p.text_document_position) else {
        return Ok(None);
    };
    let mut c = a.complete(file, offset);
    if c.import_path
        && let Some(dir) = a.comp.paths.get(file.0 as usize).and_then(|p| p.parent())
    {
        let me = &a.comp.paths[file.0 as usize];
        c.items = imc_files(dir, IMPORTABLE_DEPTH)
            .into_iter()
            .filter(|p| dir.join(p) != *me)
            .map(|p| import_item(&p))
            .collect();
    }
    let range = Lines::new(a.text(file), ws.encoding).range(c.range.clone());
    let items = c
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| lsp::CompletionItem {
            label: item.label.clone(),
            kind: Some(completion_kind(item.kind)),
            detail: item.detail,
            documentation: item.doc.map(|d| {
                lsp::Documentation::MarkupContent(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: d })
            }),
            // Keep the schema's order (parameters in the order the reference lists them).
            sort_text: Some(format!("{i:04}")),
            // Editors filter on the text the edit replaces: a file's includes its quote.
            filter_text: Some(if item.kind == CompletionKind::File { item.insert.clone() } else { item.label }),
            text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit { range, new_text: item.insert })),
            ..Default::default()
        })
        .collect();
    Ok(Some(lsp::CompletionResponse::List(lsp::CompletionList { is_incomplete: false, items })))
}

/// How deep below the document's directory import paths are looked for.
const IMPORTABLE_DEPTH: usize = 3;

fn import_item(path: &str) -> imcc_compiler::ide::complete::Completion {
    imcc_compiler::ide::complete::Completion {
        label: path.to_string(),
        kind: CompletionKind::File,
        detail: Some("import".into()),
        doc: None,
        insert: format!("\"{path}\""),
    }
}

fn completion_kind(k: CompletionKind) -> lsp::CompletionItemKind {
    match k {
        CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
        CompletionKind::Definition(_) => lsp::CompletionItemKind::REFERENCE,
        CompletionKind::Section => lsp::CompletionItemKind::MODULE,
        CompletionKind::Param => lsp::CompletionItemKind::PROPERTY,
        CompletionKind::Constructor => lsp::CompletionItemKind::CONSTRUCTOR,
        CompletionKind::Value => lsp::CompletionItemKind::ENUM_MEMBER,
        CompletionKind::Unit => lsp::CompletionItemKind::UNIT,
        CompletionKind::Layer => lsp::CompletionItemKind::FIELD,
        CompletionKind::Operation => lsp::CompletionItemKind::FUNCTION,
        CompletionKind::File => lsp::CompletionItemKind::FILE,
    }
}

/// Where the name at the position is defined (the imported file, on an import's path).
pub fn definition(
    ws: &Workspace,
    p: lsp::GotoDefinitionParams,
) -> Result<Option<lsp::GotoDefinitionResponse>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p.text_document_position_params) else {
        return Ok(None);
    };
    let locations: Vec<lsp::Location> = a
        .definitions(file, offset)
        .into_iter()
        .map(|s| lsp::Location { uri: ws.uri_of(a, s.file), range: ws.range(a, s) })
        .collect();
    Ok((!locations.is_empty()).then_some(lsp::GotoDefinitionResponse::Array(locations)))
}

/// References from every analysis that includes the file: the open files' and those of the
/// workspace's closed files that import it, so that the uses of a chip in the files importing
/// it are found from the chip's own file.
pub fn references(ws: &Workspace, p: lsp::ReferenceParams) -> Result<Option<Vec<lsp::Location>>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p.text_document_position) else {
        return Ok(None);
    };
    let Some((symbol, _)) = a.symbol_at(file, offset) else {
        return Ok(None);
    };
    let mut out: Vec<lsp::Location> = Vec::new();
    let closed = ws.closed_importers(&p.text_document_position.text_document.uri);
    let open = ws.analyses_with(&p.text_document_position.text_document.uri).into_iter().map(|(a, _)| a);
    for other in open.chain(closed.iter().map(|(a, _)| a)) {
        for o in other.occurrences_of(&symbol) {
            if o.decl && !p.context.include_declaration {
                continue;
            }
            let loc = lsp::Location { uri: ws.uri_of(other, o.span.file), range: ws.range(other, o.span) };
            if !out.contains(&loc) {
                out.push(loc);
            }
        }
    }
    Ok(Some(out))
}

/// The document's outline: blocks, their sections, layers and parameters.
pub fn symbols(ws: &Workspace, p: lsp::DocumentSymbolParams) -> Result<Option<lsp::DocumentSymbolResponse>, Failure> {
    let Some((a, file)) = ws.analysis_of(&p.text_document.uri) else {
        return Ok(None);
    };
    let lines = Lines::new(a.text(file), ws.encoding);
    let items = a.outline(file).iter().map(|i| symbol(i, &lines)).collect();
    Ok(Some(lsp::DocumentSymbolResponse::Nested(items)))
}

#[allow(deprecated)] // `deprecated` is a required field of the protocol's struct
fn symbol(i: &OutlineItem, lines: &Lines<'_>) -> lsp::DocumentSymbol {
    lsp::DocumentSymbol {
        name: i.name.clone(),
        detail: i.detail.clone(),
        kind: match i.kind {
            OutlineKind::Definition(k) => block_kind(k),
            OutlineKind::Import => lsp::SymbolKind::FILE,
            OutlineKind::Section => lsp::SymbolKind::NAMESPACE,
            OutlineKind::Layer => lsp::SymbolKind::FIELD,
            OutlineKind::Param => lsp::SymbolKind::PROPERTY,
        },
        tags: None,
        deprecated: None,
        range: lines.range(i.span.range()),
        selection_range: lines.range(i.selection.range()),
        children: Some(i.children.iter().map(|c| symbol(c, lines)).collect()),
    }
}

/// Quick fixes for the diagnostics at the range: the replacement "did you mean" suggests.
pub fn code_actions(ws: &Workspace, p: lsp::CodeActionParams) -> Result<Option<lsp::CodeActionResponse>, Failure> {
    let Some((a, file)) = ws.analysis_of(&p.text_document.uri) else {
        return Ok(None);
    };
    let lines = Lines::new(a.text(file), ws.encoding);
    let (start, end) = (lines.offset(p.range.start), lines.offset(p.range.end));
    let version = ws.document(&p.text_document.uri).map(|d| d.version);
    let mut out = Vec::new();
    for d in &a.comp.diagnostics {
        // A cursor touching the misspelt word counts.
        let here = d
            .fixes
            .iter()
            .filter(|f| f.span.file == file && f.span.start as usize <= end && start <= f.span.end as usize);
        for fix in here {
            let edit = lsp::TextEdit { range: lines.range(fix.span.range()), new_text: fix.replacement.clone() };
            let doc = lsp::TextDocumentEdit {
                text_document: lsp::OptionalVersionedTextDocumentIdentifier {
                    uri: p.text_document.uri.clone(),
                    version,
                },
                edits: vec![lsp::OneOf::Left(edit)],
            };
            let uri_of_file = |f: FileId| ws.uri_of(a, f);
            out.push(lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
                title: format!("Replace with `{}`", fix.replacement),
                kind: Some(lsp::CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![convert::diagnostic(d, &a.comp.sources, &uri_of_file, ws.encoding)]),
                edit: Some(lsp::WorkspaceEdit {
                    document_changes: Some(lsp::DocumentChanges::Edits(vec![doc])),
                    ..Default::default()
                }),
                is_preferred: Some(true),
                ..Default::default()
            }));
        }
    }
    Ok(Some(out))
}

/// The range of the name at the position, if it can be renamed.
pub fn prepare_rename(
    ws: &Workspace,
    p: lsp::TextDocumentPositionParams,
) -> Result<Option<lsp::PrepareRenameResponse>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p) else {
        return Ok(None);
    };
    // No name here: `null`, which the editor reads as "nothing to rename"; a name that cannot
    // be renamed is an error that says why.
    if a.symbol_at(file, offset).is_none() {
        return Ok(None);
    }
    match imcc_compiler::ide::rename::prepare(a, file, offset) {
        Ok(span) => Ok(Some(lsp::PrepareRenameResponse::Range(ws.range(a, span)))),
        Err(why) => Err((ErrorCode::RequestFailed, why)),
    }
}

/// Every occurrence of the name, in every analysis that includes this file (open files and the
/// workspace's closed files that import it), as one edit per file.
pub fn rename(ws: &Workspace, p: lsp::RenameParams) -> Result<Option<lsp::WorkspaceEdit>, Failure> {
    let pos = &p.text_document_position;
    let Some((a, file, offset)) = locate(ws, pos) else {
        return Ok(None);
    };
    // The document's own analysis decides (its refusal is the answer); the other analyses that
    // include the file add their files' uses.
    let own = imcc_compiler::ide::rename::rename(a, file, offset, &p.new_name)
        .map_err(|why| (ErrorCode::RequestFailed, why))?;
    let closed = ws.closed_importers(&pos.text_document.uri);
    let others = ws
        .analyses_with(&pos.text_document.uri)
        .into_iter()
        .filter(|(other, _)| !std::ptr::eq(*other, a))
        .chain(closed.iter().map(|(other, f)| (other, *f)))
        .filter_map(|(other, f)| {
            let at = Lines::new(other.text(f), ws.encoding).offset(pos.position);
            Some((other, imcc_compiler::ide::rename::rename(other, f, at, &p.new_name).ok()?))
        });
    let mut per_file: Vec<(String, lsp::Uri, Vec<lsp::TextEdit>)> = Vec::new();
    for (other, spans) in std::iter::once((a, own)).chain(others) {
        for span in spans {
            let uri = ws.uri_of(other, span.file);
            let edit = lsp::TextEdit { range: ws.range(other, span), new_text: p.new_name.clone() };
            match per_file.iter_mut().find(|(k, _, _)| k == uri.as_str()) {
                Some((_, _, edits)) if !edits.contains(&edit) => edits.push(edit),
                Some(_) => {}
                None => per_file.push((uri.as_str().to_string(), uri, vec![edit])),
            }
        }
    }
    let changes = per_file
        .into_iter()
        .map(|(_, uri, edits)| lsp::TextDocumentEdit {
            text_document: lsp::OptionalVersionedTextDocumentIdentifier {
                version: ws.document(&uri).map(|d| d.version),
                uri,
            },
            edits: edits.into_iter().map(lsp::OneOf::Left).collect(),
        })
        .collect();
    Ok(Some(lsp::WorkspaceEdit { document_changes: Some(lsp::DocumentChanges::Edits(changes)), ..Default::default() }))
}

/// Each layer's inferred output shape after its declaration.
pub fn inlay_hints(ws: &Workspace, p: lsp::InlayHintParams) -> Result<Option<Vec<lsp::InlayHint>>, Failure> {
    let Some((a, file)) = ws.analysis_of(&p.text_document.uri) else {
        return Ok(None);
    };
    let lines = Lines::new(a.text(file), ws.encoding);
    let range = lines.offset(p.range.start)..lines.offset(p.range.end);
    let hints = imcc_compiler::ide::hints::shapes(a, file, range)
        .into_iter()
        .map(|h| lsp::InlayHint {
            position: lines.position(h.offset),
            label: lsp::InlayHintLabel::String(h.label),
            kind: Some(lsp::InlayHintKind::TYPE),
            text_edits: None,
            tooltip: Some(lsp::InlayHintTooltip::String(h.tooltip)),
            padding_left: Some(true),
            padding_right: None,
            data: None,
        })
        .collect();
    Ok(Some(hints))
}

/// The arguments of the constructor or layer call being written, the current one marked.
pub fn signature_help(ws: &Workspace, p: lsp::SignatureHelpParams) -> Result<Option<lsp::SignatureHelp>, Failure> {
    let Some((a, file, offset)) = locate(ws, &p.text_document_position_params) else {
        return Ok(None);
    };
    let Some(call) = a.call(file, offset) else {
        return Ok(None);
    };
    let mut label = format!("{}(", call.name);
    let mut parameters = Vec::new();
    for (i, arg) in call.args.iter().enumerate() {
        if i > 0 {
            label.push_str(", ");
        }
        let start = label.encode_utf16().count() as u32;
        label.push_str(&imcc_compiler::ide::hover::arg_label(arg));
        let end = label.encode_utf16().count() as u32;
        parameters.push(lsp::ParameterInformation {
            label: lsp::ParameterLabel::LabelOffsets([start, end]),
            documentation: Some(lsp::Documentation::MarkupContent(lsp::MarkupContent {
                kind: lsp::MarkupKind::Markdown,
                value: format!("{} ({})", arg.doc, arg.ty.describe()),
            })),
        });
    }
    label.push(')');
    let active = call.active.map(|a| a as u32);
    Ok(Some(lsp::SignatureHelp {
        signatures: vec![lsp::SignatureInformation {
            label,
            documentation: Some(lsp::Documentation::String(call.doc.to_string())),
            parameters: Some(parameters),
            active_parameter: active,
        }],
        active_signature: Some(0),
        active_parameter: active,
    }))
}

/// The definitions (blocks and layers) of every open file and its imports whose name contains
/// the query (ignoring case), for the editor's "go to symbol in workspace".
#[allow(deprecated)] // `deprecated` is a required field of the protocol's struct
pub fn workspace_symbols(
    ws: &Workspace,
    p: lsp::WorkspaceSymbolParams,
) -> Result<Option<lsp::WorkspaceSymbolResponse>, Failure> {
    let query = p.query.to_lowercase();
    let mut out: Vec<lsp::SymbolInformation> = Vec::new();
    for a in ws.analyses() {
        for o in a.occurrences.iter().filter(|o| o.decl) {
            let (name, kind, container) = match &o.symbol {
                Symbol::Block { kind, name } => {
                    (name, block_kind(*kind), kind.map_or("sweep", Kind::keyword).to_string())
                }
                Symbol::Layer { network, name } => (name, lsp::SymbolKind::FIELD, network.clone().unwrap_or_default()),
            };
            if !name.to_lowercase().contains(&query) {
                continue;
            }
            let location = lsp::Location { uri: ws.uri_of(a, o.span.file), range: ws.range(a, o.span) };
            if out.iter().any(|s| s.location == location) {
                continue;
            }
            out.push(lsp::SymbolInformation {
                name: name.clone(),
                kind,
                tags: None,
                deprecated: None,
                location,
                container_name: Some(container),
            });
        }
    }
    Ok(Some(lsp::WorkspaceSymbolResponse::Flat(out)))
}

fn block_kind(kind: Option<Kind>) -> lsp::SymbolKind {
    match kind {
        Some(Kind::Network) => lsp::SymbolKind::CLASS,
        Some(Kind::Train) => lsp::SymbolKind::FUNCTION,
        Some(Kind::Hardware) => lsp::SymbolKind::STRUCT,
        _ => lsp::SymbolKind::OBJECT,
    }
}

/// The whole document in the canonical layout (`imcc fmt`), or an error when it does not parse.
pub fn formatting(ws: &Workspace, p: lsp::DocumentFormattingParams) -> Result<Option<Vec<lsp::TextEdit>>, Failure> {
    let Some(doc) = ws.document(&p.text_document.uri) else {
        return Err((ErrorCode::InvalidParams, format!("`{}` is not open", p.text_document.uri.as_str())));
    };
    match imcc_compiler::fmt::format(FileId(0), &doc.text) {
        Ok(formatted) if formatted == doc.text => Ok(Some(Vec::new())),
        Ok(formatted) => {
            let range = Lines::new(&doc.text, ws.encoding).whole();
            Ok(Some(vec![lsp::TextEdit { range, new_text: formatted }]))
        }
        Err(diags) => Err((
            ErrorCode::RequestFailed,
            format!(
                "cannot format a file with syntax errors ({})",
                diags.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
            ),
        )),
    }
}
