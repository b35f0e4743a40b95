//! Loading a root file and everything it imports. File access goes through [`FileLoader`], so the
//! compiler stays free of I/O (the command line passes [`FsLoader`]; tests pass [`MemLoader`]).

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::span::{FileId, SourceMap};
use crate::syntax::{self, ast};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The largest source file accepted (1 MiB): larger input is certainly not a hand-written model
/// description, and rejecting it keeps diagnostics and memory bounded.
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;

/// Why a file could not be loaded; the message names the problem.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError(pub String);

/// Reads source files by path.
pub trait FileLoader {
    /// A stable identity of `path` (canonical path), used to detect import cycles and to load a
    /// file imported twice only once.
    fn canonical(&self, path: &Path) -> Result<PathBuf, LoadError>;
    /// The UTF-8 text of the file at canonical path `path`.
    fn read(&self, path: &Path) -> Result<String, LoadError>;
    /// Whether a regular file exists at `path` (used to find data sets at check time);
    /// `None` when this loader cannot tell, which skips those checks.
    fn is_file(&self, _path: &Path) -> Option<bool> {
        None
    }
}

/// Loads from the file system, enforcing [`MAX_SOURCE_BYTES`] and UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsLoader;

impl FileLoader for FsLoader {
    fn canonical(&self, path: &Path) -> Result<PathBuf, LoadError> {
        std::fs::canonicalize(path).map_err(|e| LoadError(io_reason(&e)))
    }

    fn read(&self, path: &Path) -> Result<String, LoadError> {
        read_source(path)
    }

    fn is_file(&self, path: &Path) -> Option<bool> {
        Some(path.is_file())
    }
}

/// Reads a source file with the checks every input gets: a regular file, at most
/// [`MAX_SOURCE_BYTES`], valid UTF-8. The error says which check failed.
pub fn read_source(path: &Path) -> Result<String, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError(io_reason(&e)))?;
    if meta.is_dir() {
        return Err(LoadError("is a directory, not a source file".into()));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(LoadError(format!(
            "is {:.1} MiB; source files are limited to {} MiB",
            meta.len() as f64 / (1 << 20) as f64,
            MAX_SOURCE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| LoadError(io_reason(&e)))?;
    source_text(bytes)
}

/// Reads source text from `r` (standard input) with the checks a file gets: at most
/// [`MAX_SOURCE_BYTES`], valid UTF-8.
pub fn read_source_from(r: impl std::io::Read) -> Result<String, LoadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    r.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| LoadError(io_reason(&e)))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(LoadError(format!("is over {} MiB, the limit of a source file", MAX_SOURCE_BYTES >> 20)));
    }
    source_text(bytes)
}

/// `bytes` as UTF-8 text, or where it is not.
fn source_text(bytes: Vec<u8>) -> Result<String, LoadError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        LoadError(format!("is not valid UTF-8 (invalid byte at offset {at}, line {line})"))
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// An in-memory file system for tests and tools: paths map to texts.
#[derive(Debug, Clone, Default)]
pub struct MemLoader {
    files: BTreeMap<PathBuf, String>,
}

impl MemLoader {
    /// Adds a file.
    pub fn with(mut self, path: &str, text: &str) -> MemLoader {
        self.files.insert(normalize(Path::new(path)), text.to_string());
        self
    }
}

impl FileLoader for MemLoader {
    fn canonical(&self, path: &Path) -> Result<PathBuf, LoadError> {
        let p = normalize(path);
        if self.files.contains_key(&p) { Ok(p) } else { Err(LoadError("no such file".into())) }
    }

    fn read(&self, path: &Path) -> Result<String, LoadError> {
        self.files.get(path).cloned().ok_or_else(|| LoadError("no such file".into()))
    }
}

/// Resolves `.` and `..` lexically.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The root file and all files it imports, parsed.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every file's text.
    pub sources: SourceMap,
    /// Every file's syntax tree, in load order (the root first).
    pub files: Vec<(FileId, ast::File)>,
    /// The directory of every file, by [`FileId`]: relative paths written in a file (imports,
    /// data sets) are resolved against it.
    pub dirs: Vec<PathBuf>,
    /// The canonical path of every file, by [`FileId`] (what the loader called it).
    pub paths: Vec<PathBuf>,
}

/// Parses the root file (already read by the caller, named `root_name` at `root_path`) and
/// recursively every file it imports; import problems become diagnostics at the import.
pub fn load(
    root_path: &Path,
    root_name: &str,
    root_text: &str,
    loader: &dyn FileLoader,
    diags: &mut Diagnostics,
) -> Loaded {
    let mut st = LoadState { loader, loaded: Loaded::default(), by_path: BTreeMap::new(), stack: Vec::new() };
    let canonical = loader.canonical(root_path).unwrap_or_else(|_| normalize(root_path));
    st.load_file(canonical, root_name.to_string(), root_text.to_string(), diags);
    st.loaded
}

struct LoadState<'a> {
    loader: &'a dyn FileLoader,
    loaded: Loaded,
    by_path: BTreeMap<PathBuf, FileId>,
    /// Files being loaded (for cycle detection), with their display names.
    stack: Vec<(PathBuf, String)>,
}

impl LoadState<'_> {
    fn load_file(&mut self, path: PathBuf, name: String, text: String, diags: &mut Diagnostics) {
        let id = self.loaded.sources.add(name, text);
        self.by_path.insert(path.clone(), id);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.loaded.dirs.push(dir.clone());
        self.loaded.paths.push(path.clone());
        let (file, parse_diags) = syntax::parse(id, &self.loaded.sources.get(id).text);
        for d in parse_diags {
            diags.push(d);
        }
        self.stack.push((path.clone(), self.loaded.sources.get(id).name.clone()));
        for item in &file.items {
            let ast::Item::Import(imp) = item else {
                continue;
            };
            let target = dir.join(&imp.path);
            let canonical = match self.loader.canonical(&target) {
                Ok(c) => c,
                Err(LoadError(why)) => {
                    diags.push(import_failed(imp, &why));
                    continue;
                }
            };
            if self.stack.iter().any(|(p, _)| *p == canonical) {
                diags.push(
                    Diagnostic::new(Code::ImportCycle, format!("import cycle: `{}` imports itself", imp.path))
                        .primary(imp.path_span, "this import leads back to a file that is still being loaded")
                        .note(format!(
                            "the cycle: {}",
                            self.stack
                                .iter()
                                .map(|(_, n)| n.as_str())
                                .chain([imp.path.as_str()])
                                .collect::<Vec<_>>()
                                .join(" -> ")
                        )),
                );
                continue;
            }
            if self.by_path.contains_key(&canonical) {
                continue; // already loaded through another import
            }
            match self.loader.read(&canonical) {
                Ok(text) => self.load_file(canonical, imp.path.clone(), text, diags),
                Err(LoadError(why)) => diags.push(import_failed(imp, &why)),
            }
        }
        self.stack.pop();
        self.loaded.files.push((id, file));
        // Keep the root first: files are pushed after their imports, so rotate at the end.
        if self.stack.is_empty() {
            self.loaded.files.rotate_right(1);
        }
    }
}

fn import_failed(imp: &ast::Import, why: &str) -> Diagnostic {
    Diagnostic::new(Code::ImportFailed, format!("cannot import `{}`: {why}", imp.path))
        .primary(imp.path_span, why.to_string())
        .note("import paths are relative to the importing file")
}
