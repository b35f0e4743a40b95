//! Editor features over one compilation: hover, completion, go to definition, references,
//! renaming, inlay hints (layer shapes) and the outline. Positions are byte offsets into a file of the compilation and results are
//! [`Span`]s; the language server (`imcc lsp`) converts them to the protocol's lines and
//! columns. Everything here works on a file with errors, from what parsed and the schema.

pub mod complete;
pub mod context;
pub mod hints;
pub mod hover;
pub mod navigate;
pub mod rename;

use crate::Compilation;
use crate::span::{FileId, Span};
use crate::syntax::ast;
use navigate::{Occurrence, OutlineItem, Symbol};
use std::path::Path;

/// A compilation with its name index, ready for editor queries.
#[derive(Debug)]
pub struct Analysis {
    /// The compilation (sources, syntax trees, program when it checked, diagnostics).
    pub comp: Compilation,
    /// Every occurrence of a name in its files.
    pub occurrences: Vec<Occurrence>,
}

impl Analysis {
    /// Indexes `comp`.
    pub fn new(comp: Compilation) -> Analysis {
        let occurrences = navigate::index(&comp.syntax);
        Analysis { comp, occurrences }
    }

    /// The file of the compilation read from canonical path `path`.
    pub fn file_of(&self, path: &Path) -> Option<FileId> {
        self.comp.paths.iter().position(|p| p == path).map(|i| FileId(i as u32))
    }

    /// The text of `file`.
    pub fn text(&self, file: FileId) -> &str {
        &self.comp.sources.get(file).text
    }

    /// The syntax tree of `file`.
    pub fn syntax(&self, file: FileId) -> Option<&ast::File> {
        self.comp.syntax.iter().find(|(id, _)| *id == file).map(|(_, f)| f)
    }

    /// What the name at `offset` of `file` refers to, with the name's span.
    pub fn symbol_at(&self, file: FileId, offset: usize) -> Option<(Symbol, Span)> {
        let inside =
            |o: &&Occurrence| o.span.file == file && o.span.start as usize <= offset && offset <= o.span.end as usize;
        self.occurrences.iter().find(inside).map(|o| (o.symbol.clone(), o.span))
    }

    /// Every occurrence of `symbol`.
    pub fn occurrences_of<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| o.symbol.matches(symbol))
    }

    /// Where the name at `offset` is defined (several places when a layer name is used by
    /// policies of several networks), or the imported file when the cursor is on an import.
    pub fn definitions(&self, file: FileId, offset: usize) -> Vec<Span> {
        if let Some(target) = self.import_at(file, offset) {
            return vec![Span { file: target, start: 0, end: 0 }];
        }
        let Some((symbol, _)) = self.symbol_at(file, offset) else {
            return Vec::new();
        };
        self.occurrences_of(&symbol).filter(|o| o.decl).map(|o| o.span).collect()
    }

    /// Every occurrence of the name at `offset`, with or without its definition.
    pub fn references(&self, file: FileId, offset: usize, with_declaration: bool) -> Vec<Span> {
        let Some((symbol, _)) = self.symbol_at(file, offset) else {
            return Vec::new();
        };
        self.occurrences_of(&symbol).filter(|o| with_declaration || !o.decl).map(|o| o.span).collect()
    }

    /// The file an `import` at `offset` of `file` loads.
    pub fn import_at(&self, file: FileId, offset: usize) -> Option<FileId> {
        let imp = self.syntax(file)?.items.iter().find_map(|item| match item {
            ast::Item::Import(imp) if imp.span.range().contains(&offset) => Some(imp),
            _ => None,
        })?;
        let dir = self.comp.paths.get(file.0 as usize)?.parent()?;
        self.file_of(&crate::loader::normalize(&dir.join(&imp.path)))
    }

    /// The outline of `file`.
    pub fn outline(&self, file: FileId) -> Vec<OutlineItem> {
        self.syntax(file).map(|f| navigate::outline(f, self.text(file))).unwrap_or_default()
    }

    /// Hover text for `offset` of `file`.
    pub fn hover(&self, file: FileId, offset: usize) -> Option<hover::Hover> {
        hover::hover(self, file, offset)
    }

    /// The constructor or layer call being written at `offset` of `file` (signature help).
    pub fn call(&self, file: FileId, offset: usize) -> Option<context::Call> {
        context::at(self.text(file), offset).call
    }

    /// Completions at `offset` of `file`.
    pub fn complete(&self, file: FileId, offset: usize) -> complete::Completions {
        complete::complete(self, file, offset)
    }
}

#[cfg(test)]
mod tests;
