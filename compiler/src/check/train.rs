//! Train-block checks: references, data set against the network, and the quant and mapping
//! policies resolved per MVM layer under the science's rules.

use super::Defs;
use super::build;
use super::params::ParamSet;
use super::suggest::did_you_mean;
use super::values::Value;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::loader::FileLoader;
use crate::program::*;
use crate::schema::Kind;
use crate::span::Span;
use imcc_ir::config::{ActivationFormat, Adaptability, ErrorFormat, WeightFormat};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

/// The operand precision class of a format.
fn class_w(f: &WeightFormat) -> Precision {
    match f {
        WeightFormat::Int4Sawb { .. } => Precision::Int4,
        WeightFormat::Int8 => Precision::Int8,
        WeightFormat::F32 => Precision::F32,
    }
}
fn class_a(f: &ActivationFormat) -> Precision {
    match f {
        ActivationFormat::Int4Pact { .. } => Precision::Int4,
        ActivationFormat::Int8 => Precision::Int8,
        ActivationFormat::F32 => Precision::F32,
    }
}
fn class_e(f: &ErrorFormat) -> Precision {
    match f {
        ErrorFormat::Radix4(_) => Precision::Int4,
        ErrorFormat::Int8 => Precision::Int8,
        ErrorFormat::F32 => Precision::F32,
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Int4 => "int4",
        Precision::Int8 => "int8",
        Precision::Fp16 => "fp16",
        Precision::F32 => "f32",
    }
}

/// One diagnostic per cause (span), listing the layers it affects.
#[derive(Default)]
struct Grouped {
    by_span: BTreeMap<(Code, Option<Span>), (Diagnostic, Vec<String>)>,
}

impl Grouped {
    fn add(&mut self, d: Diagnostic, layer: &str) {
        let key = (d.code, d.span());
        self.by_span.entry(key).or_insert_with(|| (d, Vec::new())).1.push(layer.to_string());
    }

    fn emit(self, diags: &mut Diagnostics) {
        for (_, (mut d, layers)) in self.by_span {
            if layers.len() > 1 {
                d = d.note(format!(
                    "this applies to layers {}",
                    layers.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
                ));
            }
            diags.push(d);
        }
    }
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

    fn plan_layers(
        &mut self,
        net: &Network,
        q: &ParamSet,
        m: &ParamSet,
        adapt: &Adaptability,
        hw_idx: Option<usize>,
    ) -> Option<Vec<MvmLayerPlan>> {
        let mvm_layers: Vec<usize> = (0..net.layers.len()).filter(|&i| net.layers[i].op.has_mvm()).collect();
        let errors_before = self.diags.has_errors();
        self.check_labels(q, net, "quant", "has no weights to quantize");
        self.check_labels(m, net, "mapping", "has no MVMs to map");
        let gains = match adapt {
            Adaptability::Gains(g) => Some(g.clone()),
            Adaptability::Full => None,
        };
        let two_level_digital = match m.get("two_level_digital") {
            Value::Sym("forward") => Mvm::Forward,
            Value::Sym("backward") => Mvm::Backward,
            _ => Mvm::WeightGrad,
        };
        if gains.is_none()
            && let Some(span) = m.span("two_level_digital")
        {
            self.diags.push(
                Diagnostic::new(Code::NoEffect, "`two_level_digital` has no effect with full ADC adaptability")
                    .primary(span, "ignored")
                    .note("`auto` keeps an MVM digital only on hardware with a finite list of ADC gains"),
            );
        }
        let adapt_span = hw_idx.and_then(|i| self.defs.params[i].span("adc.adaptability"));
        let mut grouped = Grouped::default();
        let mut plans = Vec::new();
        for (pos, &li) in mvm_layers.iter().enumerate() {
            let layer = &net.layers[li];
            let lname = &layer.name;
            let over = |key: &str| format!("layer.{lname}.{key}");
            let pick = |set: &ParamSet, key: &str| -> (Value, Option<Span>) {
                match set.map.get(&over(key)) {
                    Some(e) => (e.value.clone(), e.span),
                    None => (set.get(key).clone(), set.span(key)),
                }
            };
            // Formats: per-layer override > first/last-layer precision > policy.
            let (wv, mut w_span) = pick(q, "weights");
            let (av, mut a_span) = pick(q, "activations");
            let (ev, e_span) = pick(q, "errors");
            let mut weights = build::weight_format(&wv);
            let mut activations = build::activation_format(&av);
            let errors = build::error_format(&ev);
            let edge = [(pos == 0, "first_layer"), (pos + 1 == mvm_layers.len(), "last_layer")];
            for (is_edge, key) in edge {
                if !is_edge {
                    continue;
                }
                let prec = match q.get(key) {
                    Value::Sym("int8") => Some((WeightFormat::Int8, ActivationFormat::Int8)),
                    Value::Sym("f32") => Some((WeightFormat::F32, ActivationFormat::F32)),
                    _ => None,
                };
                if let Some((w, a)) = prec {
                    if !q.map.contains_key(&over("weights")) {
                        weights = w;
                        w_span = q.span(key);
                    }
                    if !q.map.contains_key(&over("activations")) {
                        activations = a;
                        a_span = q.span(key);
                    }
                    // A layer override replacing both formats leaves the edge setting unused.
                    if q.map.contains_key(&over("weights"))
                        && q.map.contains_key(&over("activations"))
                        && let Some(edge_span) = q.span(key)
                    {
                        grouped.add(
                            Diagnostic::new(Code::Overridden, format!("`{key}` is overridden for layer `{lname}`"))
                                .primary(edge_span, "has no effect")
                                .secondary(q.span(&over("weights")).unwrap_or(edge_span), "the layer's own formats win")
                                .note("per-layer overrides take precedence over `first_layer` and `last_layer`"),
                            lname,
                        );
                    }
                }
            }
            let (cw, ca, ce) = (class_w(&weights), class_a(&activations), class_e(&errors));
            let operands = [(cw, ca, w_span, a_span), (cw, ce, w_span, e_span), (ce, ca, e_span, a_span)];

            let mut targets = [Target::Imc; 3];
            let mut target_spans = [None; 3];
            for (k, mvm) in Mvm::ALL.into_iter().enumerate() {
                let (tv, t_span) = pick(m, mvm.key());
                target_spans[k] = t_span;
                let (c1, c2, s1, s2) = operands[k];
                let widest = c1.max(c2);
                targets[k] = match build::target(&tv) {
                    Some(t) => {
                        self.check_target(t, widest, (c1, s1), (c2, s2), t_span, mvm, &mut grouped, lname);
                        t
                    }
                    None if widest == Precision::F32 => Target::Digital(Precision::F32),
                    None if gains.as_ref().is_some_and(|g| g.len() < 3) && mvm == two_level_digital => {
                        Target::Digital(widest)
                    }
                    None => Target::Imc,
                };
            }
            // Two-level (or fewer) ADC settings cannot serve all three MVMs.
            let on_imc: Vec<usize> = (0..3).filter(|&k| targets[k] == Target::Imc).collect();
            if let Some(g) = &gains
                && on_imc.len() > g.len().min(3)
            {
                let cause = on_imc.iter().rev().find_map(|&k| target_spans[k].map(|s| (s, Mvm::ALL[k].key())));
                let mut d = Diagnostic::new(
                    Code::TwoLevelAllImc,
                    format!(
                        "{} of layer `{lname}`'s MVMs are mapped to IMC, but the ADC offers only {} range setting{}",
                        if on_imc.len() == 3 { "all three".to_string() } else { on_imc.len().to_string() },
                        g.len(),
                        if g.len() == 1 { "" } else { "s" }
                    ),
                );
                if let Some((s, key)) = cause {
                    d = d.primary(s, format!("`{key}` mapped to IMC here"));
                }
                if let Some(s) = adapt_span {
                    d = d.secondary(s, format!("{} ADC gain{} here", g.len(), if g.len() == 1 { "" } else { "s" }));
                }
                d = d
                    .note(
                        "forward, backward and weight-gradient outputs have very different distributions (sums over \
                         N_in, over N_out with radix-4 errors spanning 4^7, and over the batch); each needs its own ADC range",
                    )
                    .help(format!(
                        "keep one MVM digital, as the paper's two-level scheme does: `{} = digital(int4);` (or `auto`)",
                        two_level_digital.key()
                    ));
                grouped.add(d, lname);
            }
            let (rv, r_span) = pick(m, "adc_range");
            let adc_range = build::range_policy(&rv);
            if let RangePolicy::Fixed { gain } = adc_range
                && let Some(g) = &gains
                && !on_imc.is_empty()
                && !g.iter().any(|x| (x - gain).abs() <= 1e-9 * gain.max(1.0))
            {
                let mut d = Diagnostic::new(Code::GainNotAvailable, format!("the ADC has no gain {gain}"))
                    .note(format!("the hardware offers gains {g:?}"));
                if let Some(s) = r_span {
                    d = d.primary(s, "not an available gain");
                }
                if let Some(s) = adapt_span {
                    d = d.secondary(s, "the available gains");
                }
                grouped.add(d, lname);
            }
            if on_imc.is_empty()
                && let Some(e) = m.map.get(&over("adc_range"))
                && let Some(s) = e.span
            {
                self.diags.push(
                    Diagnostic::new(Code::NoEffect, format!("`adc_range` of layer `{lname}` has no effect"))
                        .primary(s, "ignored")
                        .note(format!("all three MVMs of `{lname}` are digital, so no ADC is used")),
                );
            }
            plans.push(MvmLayerPlan { layer: LayerId(li as u32), weights, activations, errors, targets, adc_range });
        }
        if let Some(s) = m.span("adc_range")
            && !plans.is_empty()
            && plans.iter().all(|p| p.targets.iter().all(|t| *t != Target::Imc))
        {
            self.diags.push(
                Diagnostic::new(Code::NoEffect, "`adc_range` has no effect: no MVM runs on IMC")
                    .primary(s, "ignored")
                    .note("every MVM of the network is mapped digital under this train block"),
            );
        }
        grouped.emit(self.diags);
        if self.diags.has_errors() && !errors_before { None } else { Some(plans) }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_target(
        &mut self,
        t: Target,
        widest: Precision,
        (c1, s1): (Precision, Option<Span>),
        (c2, s2): (Precision, Option<Span>),
        t_span: Option<Span>,
        mvm: Mvm,
        grouped: &mut Grouped,
        lname: &str,
    ) {
        let fmt_span = if c1 >= c2 { s1 } else { s2 };
        match t {
            Target::Imc if widest == Precision::F32 => {
                let mut d = Diagnostic::new(
                    Code::ImcNeedsQuantized,
                    format!("the {} MVM of `{lname}` is mapped to IMC with f32 operands", mvm.key()),
                );
                if let Some(s) = t_span {
                    d = d.primary(s, "mapped to IMC here");
                }
                if let Some(s) = fmt_span {
                    d = d.secondary(s, "f32 operands from here");
                }
                grouped.add(
                    d.help(format!("map it `digital(f32)`, or `auto`, or quantize the operands of `{lname}`")),
                    lname,
                );
            }
            Target::Digital(p) if p < widest => {
                let mut d = Diagnostic::new(
                    Code::DigitalTooNarrow,
                    format!(
                        "the {} MVM of `{lname}` runs on `digital({})` but has {} operands",
                        mvm.key(),
                        precision_name(p),
                        precision_name(widest)
                    ),
                );
                if let Some(s) = t_span {
                    d = d.primary(s, "too narrow");
                }
                if let Some(s) = fmt_span {
                    d = d.secondary(s, format!("{} operands from here", precision_name(widest)));
                }
                grouped.add(d.help(format!("use `digital({})`", precision_name(widest))), lname);
            }
            _ => {}
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
                        .maybe_help(did_you_mean(
                            &label,
                            net.layers.iter().filter(|l| l.op.has_mvm()).map(|l| l.name.as_str()),
                        )),
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
