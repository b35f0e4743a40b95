//! Semantic checks: from parsed files to a checked [`Program`] or diagnostics.
//!
//! The steps: collect definitions (kinds, duplicates) → type every block's parameters against
//! the schema and merge `extends` chains → check networks (layers, shapes) → check train blocks
//! (references, data, quant and mapping policy rules) → report unused definitions.

mod build;
mod network;
mod params;
mod sweep;
mod train;
pub mod values;

/// The keyword of sweep blocks.
pub use sweep::KEYWORD as SWEEP_KEYWORD;

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::loader::{self, FileLoader};
use crate::program::Program;
use crate::schema::{self, Kind};
use crate::span::{FileId, SourceMap, Span};
use crate::syntax::ast;
use params::ParamSet;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The result of compiling a root file: its sources (for rendering diagnostics), the checked
/// program when there are no errors, and every diagnostic sorted by position.
#[derive(Debug)]
pub struct Compilation {
    /// Every file read.
    pub sources: SourceMap,
    /// The canonical path of every file read, by file id (the root first).
    pub paths: Vec<std::path::PathBuf>,
    /// Every file's syntax tree as parsed (sweep blocks included), the root first: what parsed
    /// even when the program has errors (editor features read it).
    pub syntax: Vec<(FileId, ast::File)>,
    /// The checked program; `None` when any error was reported.
    pub program: Option<Program>,
    /// Errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    /// Whether any error was reported.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Compiles the root file `root_text` (read from `root_path`, shown as `root_name`), loading its
/// imports through `loader`.
pub fn compile(root_path: &Path, root_name: &str, root_text: &str, loader: &dyn FileLoader) -> Compilation {
    let mut diags = Diagnostics::default();
    let loaded = loader::load(root_path, root_name, root_text, loader, &mut diags);
    let root = loaded.files.first().map(|(id, _)| *id).unwrap_or(FileId(0));
    let env = train::FileEnv { dirs: &loaded.dirs, sources: &loaded.sources, loader };
    let (files, sweeps) = sweep::extract(&loaded.files, root, &mut diags);
    let points = sweep::points(&sweeps, &files, &loaded.sources);
    let heads = sweep::heads(&sweeps);
    let all: Vec<&sweep::PointDef> = points.iter().collect();
    // Every check starts from what loading reported (the checker looks at earlier errors).
    let before = std::mem::take(&mut diags);
    let mut grid = before.clone();
    let program = check(&loaded.sources, &sweep::with_points(&files, root, &all), root, &env, &mut grid);
    let mut found = grid.into_vec();
    if found.len() > before.as_slice().len() && !points.is_empty() {
        found = name_points(found, &before, &files, root, &points, &heads, &loaded.sources, &env);
    }
    // Points repeat what they share; a file without sweeps keeps its diagnostics as they are.
    let found = if points.is_empty() { found } else { sweep::dedup(found) };
    for d in found {
        diags.push(d);
    }
    let program = if diags.has_errors() { None } else { program.map(|p| split_sweeps(p, &points, &heads)) };
    Compilation {
        sources: loaded.sources,
        paths: loaded.paths,
        syntax: loaded.files,
        program,
        diagnostics: diags.into_sorted(),
    }
}

/// The most points whose errors are traced back to them one by one (each is checked alone).
const POINTS_TRACED: usize = 2_000;

/// Keeps the diagnostics of the file and the errors of sweep points, each point error with a
/// note naming the first point that has it (every point is checked alone, against the file
/// without points). Warnings only points have are dropped: a point varies settings on purpose,
/// and a setting one of its values makes moot (noise scaling at `sigma_lsb = 0`) is the
/// sweep's intent, not a mistake.
#[allow(clippy::too_many_arguments)]
fn name_points(
    found: Vec<Diagnostic>,
    before: &Diagnostics,
    files: &[(FileId, ast::File)],
    root: FileId,
    points: &[sweep::PointDef],
    heads: &[sweep::SweepHead],
    sources: &SourceMap,
    env: &train::FileEnv<'_>,
) -> Vec<Diagnostic> {
    let mut base = before.clone();
    check(sources, files, root, env, &mut base);
    let known: BTreeSet<_> = base.as_slice().iter().map(sweep::identity).collect();
    let mut found: Vec<Diagnostic> =
        found.into_iter().filter(|d| d.is_error() || known.contains(&sweep::identity(d))).collect();
    if !found.iter().any(|d| !known.contains(&sweep::identity(d))) {
        return found;
    }
    let mut first: BTreeMap<_, (usize, usize)> = BTreeMap::new();
    for (i, p) in points.iter().enumerate().take(POINTS_TRACED) {
        let mut d = before.clone();
        check(sources, &sweep::with_points(files, root, &[p]), root, env, &mut d);
        for x in d.as_slice().iter().filter(|x| x.is_error()) {
            let id = sweep::identity(x);
            if !known.contains(&id) {
                first.entry(id).or_insert((i, 0)).1 += 1;
            }
        }
    }
    for d in found.iter_mut() {
        if let Some(&(i, n)) = first.get(&sweep::identity(d)) {
            let also = match n {
                1 => String::new(),
                n => format!(" (and {} more point{})", n - 1, if n == 2 { "" } else { "s" }),
            };
            d.notes.push(format!("{}{also}", sweep::describe(&points[i], heads)));
        }
    }
    found
}

/// Moves the sweep points' runs from the program's train runs into its sweeps.
fn split_sweeps(mut program: Program, points: &[sweep::PointDef], heads: &[sweep::SweepHead]) -> Program {
    let mut runs: BTreeMap<String, crate::program::TrainRun> = BTreeMap::new();
    program.trains.retain(|t| {
        if points.iter().any(|p| p.train == t.name) {
            runs.insert(t.name.clone(), t.clone());
            false
        } else {
            true
        }
    });
    program.sweeps = heads
        .iter()
        .enumerate()
        .map(|(s, h)| crate::program::Sweep {
            name: h.name.clone(),
            axes: h.axes.clone(),
            points: points
                .iter()
                .filter(|p| p.sweep == s)
                .filter_map(|p| {
                    Some(crate::program::SweepPoint {
                        index: p.index,
                        values: p.values.iter().map(|(_, v)| v.clone()).collect(),
                        run: runs.remove(&p.train)?,
                    })
                })
                .collect(),
        })
        .collect();
    program
}

/// One definition: a top-level block whose kind is known.
pub(crate) struct Def<'a> {
    pub kind: Kind,
    pub block: &'a ast::Block,
    pub in_root: bool,
}

/// All definitions, with their typed parameters.
pub(crate) struct Defs<'a> {
    pub list: Vec<Def<'a>>,
    by_name: BTreeMap<(Kind, &'a str), usize>,
    /// Each definition's parameters with its `extends` chain merged and defaults filled.
    pub params: Vec<ParamSet>,
    /// Definitions that another one extends.
    pub extended: BTreeSet<usize>,
}

impl<'a> Defs<'a> {
    /// The definition of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Option<usize> {
        self.by_name.get(&(kind, name)).copied()
    }

    /// Reports an unresolved `name` expected to be a `kind`: the wrong kind, or a typo.
    pub fn unresolved(&self, kind: Kind, name: &str, span: Span) -> Diagnostic {
        if let Some(other) = Kind::ALL.into_iter().find(|k| self.find(*k, name).is_some()) {
            let def = &self.list[self.find(other, name).unwrap_or(0)];
            return Diagnostic::new(
                Code::WrongKindOfName,
                format!("`{name}` is a `{}`, not a `{}`", other.keyword(), kind.keyword()),
            )
            .primary(span, format!("expected a `{}`", kind.keyword()))
            .secondary(def.block.name.span, format!("`{name}` is defined here as a `{}`", other.keyword()));
        }
        let names: Vec<&str> = self.by_name.keys().filter(|(k, _)| *k == kind).map(|(_, n)| *n).collect();
        let mut d = Diagnostic::new(Code::UnresolvedName, format!("no `{}` named `{name}`", kind.keyword()))
            .primary(span, "not found")
            .did_you_mean(name, names.iter().copied());
        if names.is_empty() {
            d = d.note(format!("no `{}` is defined or imported", kind.keyword()));
        }
        d
    }
}

fn check(
    sources: &SourceMap,
    files: &[(FileId, ast::File)],
    root: FileId,
    env: &train::FileEnv<'_>,
    diags: &mut Diagnostics,
) -> Option<Program> {
    let mut defs = collect(files, root, diags);
    if defs.list.is_empty() {
        if !diags.has_errors() {
            let end = sources.get(root).text.len();
            diags.push(
                Diagnostic::new(Code::EmptyFile, "nothing to compile: the file defines nothing")
                    .primary(Span::new(root, end..end), "no `hardware`, `quant`, `network`, `mapping` or `train` block")
                    .help("see `spec/language.md` or the files in `examples/`"),
            );
        }
        return None;
    }
    resolve_params(&mut defs, diags);
    let networks = network::check_all(&defs, diags);
    let hardware = build::all_hardware(&defs, diags);
    let mut used = BTreeSet::new();
    let trains = train::check_all(&defs, &networks, env, &mut used, diags);
    if !diags.has_errors() {
        report_unused(&defs, &used, diags); // after errors, "unused" is mostly noise
    }
    Some(Program { hardware, networks: networks.into_values().flatten().collect(), trains, sweeps: Vec::new() })
}

/// Collects the definitions of every file, reporting unknown kinds and duplicates.
fn collect<'a>(files: &'a [(FileId, ast::File)], root: FileId, diags: &mut Diagnostics) -> Defs<'a> {
    let mut defs = Defs { list: Vec::new(), by_name: BTreeMap::new(), params: Vec::new(), extended: BTreeSet::new() };
    for (file, ast) in files {
        for item in &ast.items {
            let ast::Item::Block(block) = item else {
                continue;
            };
            let Some(kind) = Kind::from_keyword(&block.kind.name) else {
                let keywords = Kind::ALL.map(Kind::keyword);
                diags.push(
                    Diagnostic::new(Code::UnknownItemKind, format!("unknown kind of definition `{}`", block.kind.name))
                        .primary(block.kind.span, "expected a kind of definition")
                        .did_you_mean(&block.kind.name, keywords)
                        .note("definitions are `hardware`, `quant`, `network`, `mapping` and `train` blocks"),
                );
                continue;
            };
            let name = block.name.name.as_str();
            if let Some(&first) = defs.by_name.get(&(kind, name)) {
                let prev: &ast::Block = defs.list[first].block;
                diags.push(
                    Diagnostic::new(Code::DuplicateDefinition, format!("`{} {name}` is defined twice", kind.keyword()))
                        .primary(block.name.span, "defined again here")
                        .secondary(prev.name.span, "first defined here")
                        .help("rename one of them"),
                );
                continue;
            }
            defs.by_name.insert((kind, name), defs.list.len());
            defs.list.push(Def { kind, block, in_root: *file == root });
        }
    }
    defs
}

/// Types every definition's parameters and merges `extends` chains.
fn resolve_params(defs: &mut Defs<'_>, diags: &mut Diagnostics) {
    let explicit: Vec<ParamSet> = defs
        .list
        .iter()
        .map(|d| params::explicit(&d.block.body, schema::block(d.kind), d.kind == Kind::Network, diags))
        .collect();
    // The base of each definition (after reporting bad `extends`).
    let mut base: Vec<Option<usize>> = vec![None; defs.list.len()];
    for (i, d) in defs.list.iter().enumerate() {
        let Some(ext) = &d.block.extends else {
            continue;
        };
        if d.kind == Kind::Network {
            diags.push(
                Diagnostic::new(Code::ExtendsWrongKind, "a `network` cannot extend another definition")
                    .primary(ext.span, "not supported for networks")
                    .note("`extends` is for `hardware`, `quant`, `mapping` and `train` blocks; write the layers out"),
            );
            continue;
        }
        match defs.find(d.kind, &ext.name) {
            Some(b) => {
                base[i] = Some(b);
                defs.extended.insert(b);
            }
            None => {
                let d = match defs.unresolved(d.kind, &ext.name, ext.span) {
                    d if d.code == Code::WrongKindOfName => Diagnostic { code: Code::ExtendsWrongKind, ..d }
                        .note("a definition can only extend one of its own kind"),
                    d => d,
                };
                diags.push(d);
            }
        }
    }
    // Break cycles: a definition whose chain returns to itself loses its `extends`.
    for start in 0..defs.list.len() {
        let mut seen = vec![start];
        let mut cur = base[start];
        while let Some(b) = cur {
            if b == start {
                let ext = defs.list[start].block.extends.as_ref().expect("has a base");
                let chain: Vec<&str> = seen.iter().map(|&i| defs.list[i].block.name.name.as_str()).collect();
                diags.push(
                    Diagnostic::new(
                        Code::ExtendsCycle,
                        format!("`{}` extends itself", defs.list[start].block.name.name),
                    )
                    .primary(ext.span, "this `extends` leads back here")
                    .note(format!(
                        "the chain: {} -> {}",
                        chain.join(" -> "),
                        defs.list[start].block.name.name
                    )),
                );
                base[start] = None;
                break;
            }
            if seen.contains(&b) {
                break; // a cycle not through `start`; reported from its own members
            }
            seen.push(b);
            cur = base[b];
        }
    }
    let mut merged: Vec<Option<ParamSet>> = vec![None; defs.list.len()];
    fn merge(i: usize, base: &[Option<usize>], explicit: &[ParamSet], merged: &mut Vec<Option<ParamSet>>) -> ParamSet {
        if let Some(m) = &merged[i] {
            return m.clone();
        }
        let mut set = match base[i] {
            Some(b) => merge(b, base, explicit, merged),
            None => ParamSet::default(),
        };
        set.overlay(&explicit[i]);
        merged[i] = Some(set.clone());
        set
    }
    for i in 0..defs.list.len() {
        let mut set = merge(i, &base, &explicit, &mut merged);
        let d = &defs.list[i];
        // A train block that others extend may be an incomplete template.
        let mut sink = Diagnostics::default();
        let target = if d.kind == Kind::Train && defs.extended.contains(&i) { &mut sink } else { &mut *diags };
        // After a statement failed to parse, a "missing" parameter is probably that statement.
        let parse_failed = d.block.body.iter().any(|s| matches!(s, ast::Stmt::Error(_)));
        let target = if parse_failed { &mut sink } else { target };
        params::fill_defaults(&mut set, schema::block(d.kind), &d.block.name.name, d.block.name.span, target);
        defs.params.push(set);
    }
}

/// Warns about root-file definitions no train block uses (directly or through `extends`).
fn report_unused(defs: &Defs<'_>, used: &BTreeSet<usize>, diags: &mut Diagnostics) {
    let has_train = defs.list.iter().any(|d| d.kind == Kind::Train);
    if !has_train {
        return; // a library of definitions (e.g. a chip description) is used by its importers
    }
    for (i, d) in defs.list.iter().enumerate() {
        if d.in_root && d.kind != Kind::Train && !used.contains(&i) && !defs.extended.contains(&i) {
            diags.push(
                Diagnostic::new(
                    Code::UnusedDefinition,
                    format!("`{} {}` is never used", d.kind.keyword(), d.block.name.name),
                )
                .primary(d.block.name.span, "no `train` block uses this")
                .help(format!(
                    "use it from a `train` block (`{} = {};`) or remove it",
                    d.kind.keyword(),
                    d.block.name.name
                )),
            );
        }
    }
}
