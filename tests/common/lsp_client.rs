//! A minimal LSP client for tests and benchmarks: starts `imcc lsp` and speaks JSON-RPC with
//! Content-Length framing over its stdin and stdout, as an editor does.

#![allow(dead_code)] // each user takes what it needs

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// Long enough for a loaded CI machine; a server that takes longer has hung.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Client {
    pub child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    /// Notifications received while waiting for responses.
    pub notifications: Vec<Value>,
}

fn read_message(r: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Client {
    /// Starts `imcc lsp` and completes the handshake; `utf8` offers UTF-8 columns.
    pub fn start(utf8: bool) -> (Client, Value) {
        Client::start_in(utf8, None)
    }

    /// [`Client::start`] with a workspace folder.
    pub fn start_in(utf8: bool, root: Option<&Path>) -> (Client, Value) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imcc"))
            .args(["lsp", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("imcc lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            while let Some(m) = read_message(&mut stdout) {
                if tx.send(m).is_err() {
                    break;
                }
            }
        });
        let mut c = Client { child, stdin, incoming, next_id: 0, notifications: Vec::new() };
        let encodings = if utf8 { json!(["utf-8", "utf-16"]) } else { json!(["utf-16"]) };
        let mut params =
            json!({ "processId": null, "capabilities": { "general": { "positionEncodings": encodings } } });
        if let Some(root) = root {
            params["workspaceFolders"] = json!([{ "uri": uri_of(root), "name": "root" }]);
        }
        let init = c.request("initialize", params);
        c.notify("initialized", json!({}));
        (c, init)
    }

    pub fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("the server reads");
        self.stdin.flush().expect("flush");
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its whole response (`result` or `error`).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let m = match self.incoming.recv_timeout(PATIENCE) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => panic!("no answer to `{method}`: the server hangs"),
                Err(RecvTimeoutError::Disconnected) => panic!("the server died answering `{method}`"),
            };
            if m.get("id") == Some(&json!(id)) && m.get("method").is_none() {
                return m;
            }
            self.notifications.push(m);
        }
    }

    /// The result of a request that must succeed.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        assert!(r.get("error").is_none(), "`{method}` failed: {r}");
        r["result"].clone()
    }

    /// The diagnostics last published for `uri`, after everything sent so far is handled
    /// (a request is answered only after the server has analyzed and published).
    pub fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        self.call("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
        self.notifications
            .iter()
            .rev()
            .find(|n| n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri)
            .map(|n| n["params"]["diagnostics"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits for the next diagnostics published for `uri` (an edit that changes them).
    pub fn next_diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let m = self.incoming.recv_timeout(PATIENCE).expect("diagnostics arrive");
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                return m["params"]["diagnostics"].as_array().cloned().unwrap_or_default();
            }
            self.notifications.push(m);
        }
    }

    pub fn open(&mut self, uri: &str, text: &str) {
        let doc = json!({ "uri": uri, "languageId": "imc", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": doc }));
    }

    pub fn change(&mut self, uri: &str, version: i32, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
        );
    }

    /// `shutdown` then `exit`; the server must exit with status 0.
    pub fn stop(mut self) {
        assert_eq!(self.call("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        let status = self.child.wait().expect("the server exits");
        assert!(status.success(), "exit status {status}");
    }
}

/// The `file:` URI of `p` (the paths used here need no escapes but spaces).
pub fn uri_of(p: &Path) -> String {
    let text = p.to_str().expect("UTF-8 path").replace(' ', "%20");
    format!("file://{text}")
}
