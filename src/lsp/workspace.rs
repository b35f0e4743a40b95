//! The server's state: the open documents, an analysis per open document (each compiled as a
//! root, its imports read from open documents first and then from disk), and the diagnostics
//! published per file.

use super::convert::{self, Encoding};
use crate::load::{Lowering, compile_and_lower_with};
use imcc_compiler::Compilation;
use imcc_compiler::ide::Analysis;
use imcc_compiler::loader::{FileLoader, FsLoader, LoadError};
use imcc_compiler::span::{FileId, SourceMap, Span};
use lsp_types as lsp;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One open document.
pub struct Document {
    /// The URI the client uses.
    pub uri: lsp::Uri,
    /// The client's text.
    pub text: String,
    /// The client's version.
    pub version: i32,
}

/// Open documents and their analyses.
pub struct Workspace {
    /// How the client counts columns.
    pub encoding: Encoding,
    /// The workspace's root directory, if the client named one.
    root: Option<PathBuf>,
    docs: BTreeMap<PathBuf, Document>,
    analyses: BTreeMap<PathBuf, Analysis>,
    /// Documents whose analysis is out of date.
    dirty: BTreeSet<PathBuf>,
    /// What was last published per URI (to send only changes, and to clear stale files).
    /// (Keyed by the URI's text: `Uri` caches parts of itself and is no map key.)
    published: BTreeMap<String, (lsp::Uri, Vec<lsp::Diagnostic>)>,
}

/// Reads open documents from the client's buffers and every other file from disk.
struct Overlay<'a> {
    docs: &'a BTreeMap<PathBuf, Document>,
}

impl FileLoader for Overlay<'_> {
    fn canonical(&self, path: &Path) -> Result<PathBuf, LoadError> {
        if self.docs.contains_key(path) {
            return Ok(path.to_path_buf());
        }
        FsLoader.canonical(path)
    }

    fn read(&self, path: &Path) -> Result<String, LoadError> {
        match self.docs.get(path) {
            Some(d) => Ok(d.text.clone()),
            None => FsLoader.read(path),
        }
    }

    fn is_file(&self, path: &Path) -> Option<bool> {
        Some(self.docs.contains_key(path) || path.is_file())
    }
}

/// The identity of a document: its canonical path when it is a file on disk (so that an
/// import of it finds the open buffer), else the path the URI names, else the URI itself.
pub fn key_of(uri: &lsp::Uri) -> PathBuf {
    match convert::path_of(uri) {
        Some(p) => std::fs::canonicalize(&p).unwrap_or(p),
        None => PathBuf::from(uri.as_str()),
    }
}

impl Workspace {
    /// An empty workspace in directory `root`.
    pub fn new(encoding: Encoding, root: Option<PathBuf>) -> Workspace {
        Workspace {
            encoding,
            root,
            docs: BTreeMap::new(),
            analyses: BTreeMap::new(),
            dirty: BTreeSet::new(),
            published: BTreeMap::new(),
        }
    }

    /// Opens or replaces a document; it and every open document that imports it go stale.
    pub fn set(&mut self, uri: lsp::Uri, text: String, version: i32) {
        let key = key_of(&uri);
        self.touch(&key);
        self.dirty.insert(key.clone());
        self.docs.insert(key, Document { uri, text, version });
    }

    /// Closes a document: the files importing it read it from disk again.
    pub fn close(&mut self, uri: &lsp::Uri) {
        let key = key_of(uri);
        self.touch(&key);
        self.docs.remove(&key);
        self.analyses.remove(&key);
        self.dirty.remove(&key);
    }

    /// Marks every analysis stale (files changed on disk).
    pub fn touch_all(&mut self) {
        self.dirty.extend(self.docs.keys().cloned());
    }

    fn touch(&mut self, key: &Path) {
        for (root, a) in &self.analyses {
            if a.comp.paths.iter().any(|p| p == key) {
                self.dirty.insert(root.clone());
            }
        }
    }

    /// The document at `uri`, if open.
    pub fn document(&self, uri: &lsp::Uri) -> Option<&Document> {
        self.docs.get(&key_of(uri))
    }

    /// Brings every stale analysis up to date; returns the compiler failures met (bugs).
    pub fn analyze(&mut self) -> Vec<String> {
        let stale = std::mem::take(&mut self.dirty);
        let mut failures = Vec::new();
        for key in &stale {
            let Some(doc) = self.docs.get(key) else { continue };
            // Named as `imcc check` run in the workspace's root would name it.
            let shown = self.root.as_deref().and_then(|r| key.strip_prefix(r).ok()).unwrap_or(key);
            let (analysis, failure) = analyze(key, &shown.display().to_string(), &doc.text, &self.docs);
            failures.extend(failure);
            self.analyses.insert(key.clone(), analysis);
        }
        failures
    }

    /// The analysis that answers questions about `uri` and the file's id in it: the
    /// document's own when it is open, else one whose root imports it.
    pub fn analysis_of(&self, uri: &lsp::Uri) -> Option<(&Analysis, FileId)> {
        let key = key_of(uri);
        if let Some(a) = self.analyses.get(&key) {
            return Some((a, FileId(0))); // the root of its own analysis
        }
        self.analyses.values().find_map(|a| a.file_of(&key).map(|f| (a, f)))
    }

    /// Every analysis (one per open document).
    pub fn analyses(&self) -> impl Iterator<Item = &Analysis> {
        self.analyses.values()
    }

    /// Every analysis that includes `uri`, with the file's id in it.
    pub fn analyses_with(&self, uri: &lsp::Uri) -> Vec<(&Analysis, FileId)> {
        let key = key_of(uri);
        self.analyses.values().filter_map(|a| a.file_of(&key).map(|f| (a, f))).collect()
    }

    /// Analyses of the `.imc` files of the workspace that are not open but import `uri`
    /// (directly or not), with the file's id in each, so that references and renaming reach
    /// them. Only syntax is needed:
    /// each is compiled without lowering. The workspace is the client's folder, else the
    /// document's directory.
    pub fn closed_importers(&self, uri: &lsp::Uri) -> Vec<(Analysis, FileId)> {
        let key = key_of(uri);
        let Some(dir) = self.root.as_deref().or(key.parent()) else {
            return Vec::new();
        };
        let loader = Overlay { docs: &self.docs };
        imc_files(dir, WORKSPACE_DEPTH)
            .into_iter()
            .map(|rel| dir.join(rel))
            .filter(|p| *p != key && !self.docs.contains_key(p))
            .filter_map(|p| {
                let text = FsLoader.read(&p).ok()?;
                // Cheap test first: a file without an import cannot reach this one.
                if !text.contains("import") {
                    return None;
                }
                let shown =
                    self.root.as_deref().and_then(|r| p.strip_prefix(r).ok()).unwrap_or(&p).display().to_string();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    compile_and_lower_with(&loader, &p, &shown, &text, Lowering::Skip, None)
                }));
                let (comp, _) = run.ok()?.ok()?;
                let at = comp.paths.iter().skip(1).position(|q| *q == key)?;
                Some((Analysis::new(comp), FileId(at as u32 + 1)))
            })
            .collect()
    }

    /// The URI of `file` of analysis `a`: the client's own URI for an open document.
    pub fn uri_of(&self, a: &Analysis, file: FileId) -> lsp::Uri {
        let path = &a.comp.paths[file.0 as usize];
        match self.docs.get(path) {
            Some(d) => d.uri.clone(),
            None => convert::uri_of(path),
        }
    }

    /// The protocol range of `span` of analysis `a`.
    pub fn range(&self, a: &Analysis, span: Span) -> lsp::Range {
        convert::Lines::new(a.text(span.file), self.encoding).range(span.range())
    }

    /// The diagnostics to publish now: per URI whose diagnostics changed since the last call,
    /// the full new list (empty to clear a file that has none any more), with the document's
    /// version when it is open. An open document shows its own analysis's diagnostics; a file
    /// that is not open shows those the analyses of the open files that import it found there.
    pub fn diagnostics(&mut self) -> Vec<lsp::PublishDiagnosticsParams> {
        let mut now: BTreeMap<String, (lsp::Uri, Vec<lsp::Diagnostic>)> = BTreeMap::new();
        for (root, a) in &self.analyses {
            let uri_of_file = |f: FileId| self.uri_of(a, f);
            for d in &a.comp.diagnostics {
                let file = d.span().map_or(FileId(0), |s| s.file);
                let path = &a.comp.paths[file.0 as usize];
                if path != root && self.docs.contains_key(path) {
                    continue; // an open file shows its own analysis
                }
                let uri = uri_of_file(file);
                let (_, list) = now.entry(uri.as_str().to_string()).or_insert_with(|| (uri, Vec::new()));
                let converted = convert::diagnostic(d, &a.comp.sources, &uri_of_file, self.encoding);
                if !list.contains(&converted) {
                    list.push(converted);
                }
            }
        }
        let mut out = Vec::new();
        let stale: Vec<(String, lsp::Uri)> = self
            .published
            .iter()
            .filter(|(k, _)| !now.contains_key(*k))
            .map(|(k, (u, _))| (k.clone(), u.clone()))
            .collect();
        let cleared = stale.into_iter().map(|(k, u)| (k, (u, Vec::new())));
        for (key, (uri, list)) in now.into_iter().chain(cleared) {
            if self.published.get(&key).is_some_and(|(_, l)| *l == list) {
                continue;
            }
            let version = self.docs.get(&key_of(&uri)).map(|d| d.version);
            if list.is_empty() {
                self.published.remove(&key);
            } else {
                self.published.insert(key, (uri.clone(), list.clone()));
            }
            out.push(lsp::PublishDiagnosticsParams { uri, diagnostics: list, version });
        }
        out
    }
}

/// How deep below the workspace folder files are looked for when searching for importers.
const WORKSPACE_DEPTH: usize = 6;
/// The most files looked at for importers or offered as import paths.
const MAX_FILES: usize = 500;

/// `.imc` files under `dir` (relative, `/`-separated, sorted), at most `depth` directories down,
/// skipping hidden directories, `target` and `node_modules`.
pub fn imc_files(dir: &Path, depth: usize) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if out.len() >= MAX_FILES || name.starts_with('.') {
                continue;
            }
            if path.is_dir() && depth > 0 && name != "target" && name != "node_modules" {
                walk(&path, &format!("{prefix}{name}/"), depth - 1, out);
            } else if path.extension().is_some_and(|x| x == "imc") {
                out.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", depth, &mut out);
    out
}

/// Checks and lowers `text` as a root file (as `imcc check` does), never panicking: on a
/// compiler bug the analysis keeps what parses, and the second value says what failed.
fn analyze(key: &Path, shown: &str, text: &str, docs: &BTreeMap<PathBuf, Document>) -> (Analysis, Option<String>) {
    let loader = Overlay { docs };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compile_and_lower_with(&loader, key, shown, text, Lowering::Through(None), None)
    }));
    let failure = match run {
        Ok(Ok((comp, _steps))) => return (Analysis::new(comp), None),
        Ok(Err(internal)) => internal,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("internal compiler error on `{shown}` (a bug in imcc, please report it): {why}")
        }
    };
    let mut sources = SourceMap::default();
    let file = sources.add(shown.to_string(), text);
    let (syntax, diagnostics) = imcc_compiler::syntax::parse(file, text);
    let comp = Compilation {
        sources,
        paths: vec![key.to_path_buf()],
        syntax: vec![(file, syntax)],
        program: None,
        diagnostics,
    };
    (Analysis::new(comp), Some(failure))
}
