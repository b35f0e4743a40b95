//! Train-block checks: references, data set against the network, and the quant and mapping
//! policies resolved per MVM layer under the science's rules.

use super::Defs;
use super::build;
use super::params::ParamSet;
use super::values::Value;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::loader::FileLoader;
use crate::program::*;
use crate::schema::Kind;
use crate::span::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod policy;

/// Where the files of a compilation live, for resolving the data paths written in them.
pub struct FileEnv<'a> {
    /// The directory of each file, by file id.
    pub dirs: &'a [PathBuf],
    /// The files, for their names as shown (messages show paths as the user wrote them).
    pub sources: &'a crate::span::SourceMap,
    /// Probes for data files.
    pub loader: &'a dyn FileLoader,
}

/// Checks every root-file train block; returns the runnable ones.
pub fn check_all(
    defs: &Defs<'_>,
    networks: &BTreeMap<usize, Option<Network>>,
    env: &FileEnv<'_>,
    used: &mut BTreeSet<usize>,
    diags: &mut Diagnostics,
) -> Vec<TrainRun> {
    let mut runs = Vec::new();
    for (i, d) in defs.list.iter().enumerate() {
        if d.kind != Kind::Train {
            continue;
        }
        let ps = &defs.params[i];
        let is_template =
            defs.extended.contains(&i) && (ps.try_get("network").is_none() || ps.try_get("data").is_none());
        if is_template {
            continue;
        }
        let mut cx = TrainCx { defs, env, block_span: d.block.span, ps, diags, used: &mut *used };
        if let Some(run) = cx.check(&d.block.name.name, networks)
            && d.in_root
        {
            runs.push(run);
        }
    }
    runs
}

struct TrainCx<'a, 'd> {
    defs: &'a Defs<'a>,
    env: &'a FileEnv<'a>,
    /// The train block itself (inherited settings are not its own).
    block_span: Span,
    ps: &'a ParamSet,
    diags: &'d mut Diagnostics,
    used: &'d mut BTreeSet<usize>,
}

impl TrainCx<'_, '_> {
    /// Resolves an optional reference parameter to a definition of `kind`.
    fn reference(&mut self, key: &str, kind: Kind) -> Result<Option<usize>, ()> {
        let Some(Value::Ref(name)) = self.ps.try_get(key) else {
            return Ok(None);
        };
        let span = self.ps.span(key).expect("explicit references have spans");
        match self.defs.find(kind, name) {
            Some(idx) => {
                self.used.insert(idx);
                Ok(Some(idx))
            }
            None => {
                self.diags.push(self.defs.unresolved(kind, name, span));
                Err(())
            }
        }
    }

    fn check(&mut self, name: &str, networks: &BTreeMap<usize, Option<Network>>) -> Option<TrainRun> {
        let net_idx = self.reference("network", Kind::Network);
        let quant_idx = self.reference("quant", Kind::Quant);
        let map_idx = self.reference("mapping", Kind::Mapping);
        let hw_idx = self.reference("hardware", Kind::Hardware);
        let (Ok(Some(net_idx)), Ok(quant_idx), Ok(map_idx), Ok(hw_idx)) = (net_idx, quant_idx, map_idx, hw_idx) else {
            return None;
        };
        let net = networks.get(&net_idx)?.as_ref()?; // a network with errors was reported already
        let data = self.resolve_data(build::data_set(self.ps.try_get("data")?));
        let hw_ps = hw_idx.map_or_else(|| build::defaults(Kind::Hardware), |i| self.defs.params[i].clone());
        let hardware = build::hardware(&hw_ps);
        let q_ps = quant_idx.map_or_else(|| build::defaults(Kind::Quant), |i| self.defs.params[i].clone());
        let m_ps = map_idx.map_or_else(|| build::defaults(Kind::Mapping), |i| self.defs.params[i].clone());

        self.check_data(&data, net, net_idx);
        let reference = matches!(self.ps.get("reference"), Value::Bool(true));
        let placement = build::placement_plan(&m_ps, &hardware.adc.adaptability);
        let layers = self.plan_layers(net, &q_ps, &m_ps, &hardware.adc.adaptability, hw_idx);
        self.run_warnings(reference);

        let int = |k: &str| self.ps.get(k).as_int().unwrap_or(1) as u64;
        Some(TrainRun {
            name: name.to_string(),
            network: net.name.clone(),
            quant: quant_idx.map(|i| self.defs.list[i].block.name.name.clone()),
            mapping: map_idx.map(|i| self.defs.list[i].block.name.name.clone()),
            hardware_name: hw_idx.map(|i| self.defs.list[i].block.name.name.clone()),
            hardware,
            layers: layers?,
            placement,
            accumulate: build::precision(match q_ps.get("accumulate") {
                Value::Sym(s) => s,
                _ => "f32",
            }),
            data,
            epochs: int("epochs"),
            batch: int("batch") as usize,
            optimizer: build::sgd(self.ps.get("optimizer")),
            schedule: build::schedule(self.ps.get("schedule")),
            seed: int("seed"),
            eval_every: int("eval_every"),
            limit: self.ps.try_get("limit").and_then(|v| v.as_int()).map(|l| l as usize),
            reference,
        })
    }

    /// Resolves the data set's directory against the file that names it, as imports are. A
    /// default directory (`data/digits`) is looked up beside that file and then in each parent
    /// directory, so that the bundled data serves files anywhere in the repository. A data set
    /// that is not there is a warning: checking, lowering and energy need no data, training does.
    fn resolve_data(&mut self, data: DataSet) -> DataSet {
        let Some(span) = self.ps.span("data") else { return data };
        let base = self.env.dirs.get(span.file.0 as usize).cloned().unwrap_or_default();
        let written = PathBuf::from(data.dir());
        if written.is_absolute() {
            self.warn_missing_data(&data, std::slice::from_ref(&written), &written, span);
            return data;
        }
        let candidates: Vec<PathBuf> = if data.is_default_dir() {
            base.ancestors().map(|a| a.join(&written)).collect()
        } else {
            vec![base.join(&written)]
        };
        let found = candidates.iter().find(|dir| {
            data.files().iter().all(|stem| {
                let (raw, gz) = (dir.join(stem), dir.join(format!("{stem}.gz")));
                self.env.loader.is_file(&raw) == Some(true) || self.env.loader.is_file(&gz) == Some(true)
            })
        });
        match found {
            Some(dir) => data.with_dir(dir.display().to_string()),
            None => {
                let shown =
                    Path::new(&self.env.sources.get(span.file).name).parent().unwrap_or(Path::new("")).join(&written);
                self.warn_missing_data(&data, &candidates, &shown, span);
                data.with_dir(candidates[0].display().to_string())
            }
        }
    }

    fn warn_missing_data(&mut self, data: &DataSet, looked: &[PathBuf], shown: &Path, span: Span) {
        let dir = &looked[0];
        let missing: Vec<String> = data
            .files()
            .iter()
            .filter(|stem| {
                [dir.join(stem), dir.join(format!("{stem}.gz"))]
                    .iter()
                    .all(|p| self.env.loader.is_file(p) == Some(false))
            })
            .map(|s| format!("`{s}`"))
            .collect();
        if missing.is_empty() {
            return; // found, or this loader cannot tell
        }
        let mut d = Diagnostic::new(
            Code::DataNotFound,
            format!("data set not found: no {} (raw or .gz) in `{}`", missing.join(", "), shown.display()),
        )
        .primary(span, "training needs this data")
        .note("a relative `dir` is resolved against the file that names it, as imports are");
        if looked.len() > 1 {
            d = d.note("the default directory is also looked for in each parent directory of that file");
        }
        self.diags.push(d.help("point `dir` at the data (`idx(\"DIR\")` loads any idx data set)"));
    }

    fn check_data(&mut self, data: &DataSet, net: &Network, net_idx: usize) {
        let data_span = self.ps.span("data");
        let net_input_span = self.defs.params[net_idx].span("input");
        let pixels: usize = net.input.iter().product();
        let (expect_pixels, classes) = match data {
            DataSet::Idx { classes, .. } => (None, *classes),
            d => {
                let (p, c) = d.shape().unwrap_or((pixels, 10));
                (Some(p), c)
            }
        };
        if let Some(p) = expect_pixels
            && p != pixels
        {
            let mut d = Diagnostic::new(
                Code::DataShapeMismatch,
                format!("network `{}` takes {pixels} inputs per sample, the data set has {p}", net.name),
            );
            if let Some(s) = data_span {
                d = d.primary(s, format!("samples have {p} pixels"));
            }
            if let Some(s) = net_input_span {
                d = d.secondary(s, format!("the network input holds {pixels}"));
            }
            self.diags.push(d);
        }
        if let Some(loss) = net.layers.iter().find(|l| matches!(l.op, LayerOp::SoftmaxCrossEntropy))
            && loss.in_shape.first() != Some(&classes)
        {
            let got = loss.in_shape.first().copied().unwrap_or(0);
            let mut d = Diagnostic::new(
                Code::ClassCountMismatch,
                format!("network `{}` outputs {got} scores, the data set has {classes} classes", net.name),
            )
            .primary(loss.span, format!("the loss receives {got} values"));
            if let Some(s) = data_span {
                d = d.secondary(s, format!("{classes} classes"));
            }
            self.diags.push(d.help(format!("make the last dense layer `dense({classes})`")));
        }
    }

    /// Validates `layer NAME { }` labels of a quant or mapping policy against the network.
    fn check_labels(&mut self, set: &ParamSet, net: &Network, what: &str, no_mvm: &str) {
        for (label, span) in set.labels("layer") {
            let Some(span) = span else { continue };
            match net.layers.iter().find(|l| l.name == label) {
                None => self.diags.push(
                    Diagnostic::new(Code::UnknownLayer, format!("{what} override for unknown layer `{label}`"))
                        .primary(span, format!("network `{}` has no such layer", net.name))
                        .did_you_mean(&label, net.layers.iter().filter(|l| l.op.has_mvm()).map(|l| l.name.as_str())),
                ),
                Some(l) if !l.op.has_mvm() => self.diags.push(
                    Diagnostic::new(Code::NoMvm, format!("{what} override for layer `{label}`, which {no_mvm}"))
                        .primary(span, "not a `dense` or `conv2d` layer")
                        .secondary(l.span, "declared here"),
                ),
                Some(_) => {}
            }
        }
    }

    /// Where this block itself (not a base it extends) sets `key`.
    fn own_span(&self, key: &str) -> Option<Span> {
        let b = self.block_span;
        self.ps.span(key).filter(|s| s.file == b.file && s.start >= b.start && s.end <= b.end)
    }

    fn run_warnings(&mut self, reference: bool) {
        let epochs = self.ps.get("epochs").as_int().unwrap_or(1);
        if reference {
            for key in ["quant", "mapping"] {
                if let Some(s) = self.own_span(key) {
                    self.diags.push(
                        Diagnostic::new(Code::Overridden, format!("`{key}` is overridden by `reference = true`"))
                            .primary(s, "not used")
                            .note("the f32 reference run uses no quantization and no IMC")
                            .help(format!("remove `{key}`, or set `reference = false`")),
                    );
                }
            }
        }
        if let Some(s) = self.ps.span("eval_every")
            && self.ps.get("eval_every").as_int().unwrap_or(1) > epochs
        {
            self.diags.push(
                Diagnostic::new(Code::NoEffect, format!("`eval_every` exceeds `epochs` ({epochs})"))
                    .primary(s, "never reached")
                    .note("the test set is evaluated after the last epoch only"),
            );
        }
        if let Some(Value::Ctor(c)) = self.ps.try_get("schedule")
            && c.name == "step"
            && c.args.get("every").and_then(Value::as_int).unwrap_or(0) >= epochs
            && let Some(s) = self.ps.span("schedule")
        {
            self.diags.push(
                Diagnostic::new(Code::NoEffect, format!("the step schedule never steps in {epochs} epochs"))
                    .primary(s, "the learning rate stays constant")
                    .help("lower `every`, or use `constant`"),
            );
        }
        if let Some(Value::Ctor(c)) = self.ps.try_get("optimizer")
            && matches!(c.args.get("nesterov"), Some(Value::Bool(true)))
            && c.args.get("momentum").and_then(Value::as_real) == Some(0.0)
            && let Some(s) = self.ps.span("optimizer")
        {
            self.diags.push(
                Diagnostic::new(Code::NoEffect, "`nesterov` has no effect without momentum")
                    .primary(s, "momentum is 0"),
            );
        }
    }
}
