//! `imcc lsp`: a Language Server over stdin/stdout (`lsp-server`, the transport rust-analyzer
//! uses). Diagnostics on open and change (the same as `imcc check`, lowering included, across
//! imports), hover, completion, go to definition, references, renaming, layer shapes as inlay
//! hints, signature help, the outline, workspace symbols, formatting, and quick fixes for
//! misspelt names.
//!
//! Messages are handled in order. Edits only mark documents stale; the analysis runs once the
//! queue is empty or a request needs it, so a burst of keystrokes is checked once.

mod convert;
mod handlers;
mod workspace;

use convert::Encoding;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types as lsp;
use lsp_types::notification::Notification as _;
use std::process::ExitCode;
use workspace::Workspace;

/// Runs the server until the client sends `exit`. Exit status 0 after `shutdown`, 1 without
/// it (the protocol's rule), 2 when the connection fails.
pub fn command() -> ExitCode {
    let (conn, io) = Connection::stdio();
    let status = match serve(&conn) {
        Ok(status) => status,
        Err(e) => {
            errln!("imcc lsp: {e}");
            ExitCode::from(2)
        }
    };
    drop(conn);
    // The reader thread ends at end of input, the writer once its channel closes.
    if let Err(e) = io.join() {
        errln!("imcc lsp: {e}");
    }
    status
}

/// The server's answer to `initialize`.
fn capabilities(encoding: Encoding) -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        position_encoding: Some(match encoding {
            Encoding::Utf8 => lsp::PositionEncodingKind::UTF8,
            Encoding::Utf16 => lsp::PositionEncodingKind::UTF16,
        }),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(lsp::TextDocumentSyncKind::FULL)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        completion_provider: Some(lsp::CompletionOptions {
            trigger_characters: Some(vec!["(".into(), "=".into(), ",".into()]),
            ..Default::default()
        }),
        definition_provider: Some(lsp::OneOf::Left(true)),
        references_provider: Some(lsp::OneOf::Left(true)),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Simple(true)),
        rename_provider: Some(lsp::OneOf::Right(lsp::RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        inlay_hint_provider: Some(lsp::OneOf::Left(true)),
        workspace_symbol_provider: Some(lsp::OneOf::Left(true)),
        signature_help_provider: Some(lsp::SignatureHelpOptions {
            trigger_characters: Some(vec!["(".into(), ",".into()]),
            retrigger_characters: Some(vec!["=".into()]),
            work_done_progress_options: Default::default(),
        }),
        ..Default::default()
    }
}

fn serve(conn: &Connection) -> Result<ExitCode, String> {
    let (id, params) = conn.initialize_start().map_err(|e| e.to_string())?;
    let params: lsp::InitializeParams = serde_json::from_value(params).map_err(|e| format!("bad initialize: {e}"))?;
    // UTF-8 columns when the client offers them (no conversion), else the default UTF-16.
    let offers_utf8 = params
        .capabilities
        .general
        .and_then(|g| g.position_encodings)
        .is_some_and(|e| e.contains(&lsp::PositionEncodingKind::UTF8));
    let encoding = if offers_utf8 { Encoding::Utf8 } else { Encoding::Utf16 };
    let root = params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| &f.uri)
        .or({
            #[allow(deprecated)] // older clients send only `rootUri`
            params.root_uri.as_ref()
        })
        .and_then(convert::path_of)
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    let result = lsp::InitializeResult {
        capabilities: capabilities(encoding),
        server_info: Some(lsp::ServerInfo { name: "imcc".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
    };
    // Answered directly rather than with `initialize_finish`, which ends the connection when
    // the next message is not `initialized`; the server does not need that notification.
    let result = serde_json::to_value(result).map_err(|e| e.to_string())?;
    conn.sender.send(Response::new_ok(id, result).into()).map_err(|_| "the client's connection closed".to_string())?;

    let mut server = Server { conn, ws: Workspace::new(encoding, root), shut_down: false };
    while let Ok(first) = conn.receiver.recv() {
        let mut next = Some(first);
        // Handle everything queued, then analyze once.
        while let Some(msg) = next {
            if let Some(status) = server.handle(msg)? {
                return Ok(status);
            }
            next = conn.receiver.try_recv().ok();
        }
        server.refresh()?;
    }
    // The client went away without `exit`.
    Ok(ExitCode::from(1))
}

struct Server<'a> {
    conn: &'a Connection,
    ws: Workspace,
    shut_down: bool,
}

impl Server<'_> {
    fn send(&self, msg: impl Into<Message>) -> Result<(), String> {
        self.conn.sender.send(msg.into()).map_err(|_| "the client's connection closed".to_string())
    }

    /// Analyzes stale documents and publishes changed diagnostics.
    fn refresh(&mut self) -> Result<(), String> {
        for failure in self.ws.analyze() {
            let params = lsp::ShowMessageParams { typ: lsp::MessageType::ERROR, message: failure };
            self.send(Notification::new(lsp::notification::ShowMessage::METHOD.into(), params))?;
        }
        for params in self.ws.diagnostics() {
            self.send(Notification::new(lsp::notification::PublishDiagnostics::METHOD.into(), params))?;
        }
        Ok(())
    }

    /// Handles one message; `Some(status)` when the server should exit.
    fn handle(&mut self, msg: Message) -> Result<Option<ExitCode>, String> {
        match msg {
            Message::Request(req) => {
                let resp = if self.shut_down {
                    Response::new_err(req.id, ErrorCode::InvalidRequest as i32, "the server is shutting down".into())
                } else if req.method == "shutdown" {
                    self.shut_down = true;
                    Response::new_ok(req.id, ())
                } else {
                    self.refresh()?;
                    self.answer(req)
                };
                self.send(resp)?;
            }
            Message::Notification(n) => {
                if n.method == "exit" {
                    return Ok(Some(if self.shut_down { ExitCode::SUCCESS } else { ExitCode::from(1) }));
                }
                self.notify(n);
            }
            Message::Response(_) => {} // the server sends no requests
        }
        Ok(None)
    }

    fn notify(&mut self, n: Notification) {
        use lsp::notification as N;
        match n.method.as_str() {
            N::DidOpenTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp::DidOpenTextDocumentParams>(N::DidOpenTextDocument::METHOD) {
                    self.ws.set(p.text_document.uri, p.text_document.text, p.text_document.version);
                }
            }
            N::DidChangeTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp::DidChangeTextDocumentParams>(N::DidChangeTextDocument::METHOD) {
                    // Full synchronization: the last change holds the whole text.
                    if let Some(change) = p.content_changes.into_iter().last() {
                        self.ws.set(p.text_document.uri, change.text, p.text_document.version);
                    }
                }
            }
            N::DidCloseTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp::DidCloseTextDocumentParams>(N::DidCloseTextDocument::METHOD) {
                    self.ws.close(&p.text_document.uri);
                }
            }
            // A saved or changed file on disk may be imported by an open one.
            N::DidSaveTextDocument::METHOD | N::DidChangeWatchedFiles::METHOD => self.ws.touch_all(),
            _ => {}
        }
    }

    fn answer(&self, req: Request) -> Response {
        use lsp::request as R;
        use lsp::request::Request as _;
        let id = req.id.clone();
        let result = match req.method.as_str() {
            R::HoverRequest::METHOD => handlers::run(req, |p| handlers::hover(&self.ws, p)),
            R::Completion::METHOD => handlers::run(req, |p| handlers::completion(&self.ws, p)),
            R::GotoDefinition::METHOD => handlers::run(req, |p| handlers::definition(&self.ws, p)),
            R::References::METHOD => handlers::run(req, |p| handlers::references(&self.ws, p)),
            R::DocumentSymbolRequest::METHOD => handlers::run(req, |p| handlers::symbols(&self.ws, p)),
            R::Formatting::METHOD => handlers::run(req, |p| handlers::formatting(&self.ws, p)),
            R::CodeActionRequest::METHOD => handlers::run(req, |p| handlers::code_actions(&self.ws, p)),
            R::PrepareRenameRequest::METHOD => handlers::run(req, |p| handlers::prepare_rename(&self.ws, p)),
            R::Rename::METHOD => handlers::run(req, |p| handlers::rename(&self.ws, p)),
            R::InlayHintRequest::METHOD => handlers::run(req, |p| handlers::inlay_hints(&self.ws, p)),
            R::WorkspaceSymbolRequest::METHOD => handlers::run(req, |p| handlers::workspace_symbols(&self.ws, p)),
            R::SignatureHelpRequest::METHOD => handlers::run(req, |p| handlers::signature_help(&self.ws, p)),
            other => Err((ErrorCode::MethodNotFound, format!("imcc lsp does not handle `{other}`"))),
        };
        match result {
            Ok(value) => Response { id, result: Some(value), error: None },
            Err((code, message)) => Response::new_err(id, code as i32, message),
        }
    }
}
