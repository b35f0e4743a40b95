//! The quant and mapping policies resolved per MVM layer: each layer's formats (policy,
//! first/last-layer precision, per-layer overrides), each of its three MVMs' target, and its
//! ADC range, under the science's rules (E0500 two-level, E0502 too narrow, E0503 f32 on IMC,
//! E0504 unavailable gain) and with warnings for settings without effect.

use super::TrainCx;
use crate::check::build;
use crate::check::params::ParamSet;
use crate::check::values::Value;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::program::*;
use crate::span::Span;
use imcc_ir::config::{ActivationFormat, Adaptability, ErrorFormat, Named, WeightFormat};
use std::collections::BTreeMap;

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

/// One diagnostic per cause (span), listing the layers it affects.
#[derive(Default)]
pub(super) struct Grouped {
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

/// What every layer's policy is resolved against.
struct LayerPolicy<'a> {
    q: &'a ParamSet,
    m: &'a ParamSet,
    /// The ADC's gains, when it has a finite list.
    gains: Option<&'a [f64]>,
    two_level_digital: Mvm,
    adapt_span: Option<Span>,
}

/// A layer's operand formats and where each was set.
struct LayerFormats {
    weights: WeightFormat,
    activations: ActivationFormat,
    errors: ErrorFormat,
    w_span: Option<Span>,
    a_span: Option<Span>,
    e_span: Option<Span>,
}

impl LayerPolicy<'_> {
    /// The dotted key of layer `lname`'s override of `key`.
    fn over(&self, lname: &str, key: &str) -> String {
        format!("layer.{lname}.{key}")
    }

    /// `key` for layer `lname`: its override, else the policy's value.
    fn pick(&self, set: &ParamSet, lname: &str, key: &str) -> (Value, Option<Span>) {
        match set.map.get(&self.over(lname, key)) {
            Some(e) => (e.value.clone(), e.span),
            None => (set.get(key).clone(), set.span(key)),
        }
    }

    /// Formats: per-layer override > first/last-layer precision > policy.
    fn formats(&self, lname: &str, (first, last): (bool, bool), grouped: &mut Grouped) -> LayerFormats {
        let q = self.q;
        let (wv, w_span) = self.pick(q, lname, "weights");
        let (av, a_span) = self.pick(q, lname, "activations");
        let (ev, e_span) = self.pick(q, lname, "errors");
        let mut f = LayerFormats {
            weights: build::weight_format(&wv),
            activations: build::activation_format(&av),
            errors: build::error_format(&ev),
            w_span,
            a_span,
            e_span,
        };
        for (is_edge, key) in [(first, "first_layer"), (last, "last_layer")] {
            let prec = match q.get(key) {
                Value::Sym("int8") => Some((WeightFormat::Int8, ActivationFormat::Int8)),
                Value::Sym("f32") => Some((WeightFormat::F32, ActivationFormat::F32)),
                _ => None,
            };
            let Some((w, a)) = prec.filter(|_| is_edge) else { continue };
            let (own_w, own_a) = (
                q.map.contains_key(&self.over(lname, "weights")),
                q.map.contains_key(&self.over(lname, "activations")),
            );
            if !own_w {
                (f.weights, f.w_span) = (w, q.span(key));
            }
            if !own_a {
                (f.activations, f.a_span) = (a, q.span(key));
            }
            // A layer override replacing both formats leaves the edge setting unused.
            if own_w
                && own_a
                && let Some(edge_span) = q.span(key)
            {
                grouped.add(
                    Diagnostic::new(Code::Overridden, format!("`{key}` is overridden for layer `{lname}`"))
                        .primary(edge_span, "has no effect")
                        .secondary(
                            q.span(&self.over(lname, "weights")).unwrap_or(edge_span),
                            "the layer's own formats win",
                        )
                        .note("per-layer overrides take precedence over `first_layer` and `last_layer`"),
                    lname,
                );
            }
        }
        f
    }

    /// Two-level (or fewer) ADC settings cannot serve all three MVMs (E0500).
    fn check_two_level(&self, on_imc: &[usize], target_spans: &[Option<Span>; 3], lname: &str, grouped: &mut Grouped) {
        let Some(g) = self.gains.filter(|g| on_imc.len() > g.len().min(3)) else { return };
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
        if let Some(s) = self.adapt_span {
            d = d.secondary(s, format!("{} ADC gain{} here", g.len(), if g.len() == 1 { "" } else { "s" }));
        }
        d = d
            .note(
                "forward, backward and weight-gradient outputs have very different distributions (sums over \
                 N_in, over N_out with radix-4 errors spanning 4^7, and over the batch); each needs its own ADC range",
            )
            .help(format!(
                "keep one MVM digital, as the paper's two-level scheme does: `{} = digital(int4);` (or `auto`)",
                self.two_level_digital.key()
            ));
        grouped.add(d, lname);
    }

    /// A fixed ADC gain must be one the hardware offers (E0504).
    fn check_fixed_gain(
        &self,
        policy: RangePolicy,
        r_span: Option<Span>,
        any_imc: bool,
        lname: &str,
        grouped: &mut Grouped,
    ) {
        let RangePolicy::Fixed { gain } = policy else { return };
        let Some(g) = self.gains else { return };
        if !any_imc || g.iter().any(|x| (x - gain).abs() <= 1e-9 * gain.max(1.0)) {
            return;
        }
        let mut d = Diagnostic::new(Code::GainNotAvailable, format!("the ADC has no gain {gain}"))
            .note(format!("the hardware offers gains {g:?}"));
        if let Some(s) = r_span {
            d = d.primary(s, "not an available gain");
        }
        if let Some(s) = self.adapt_span {
            d = d.secondary(s, "the available gains");
        }
        grouped.add(d, lname);
    }
}

impl TrainCx<'_, '_> {
    /// Resolves the quant and mapping policies for every layer with MVMs: formats, targets and
    /// ADC range, with the science's rules checked (diagnostics grouped per cause).
    pub(super) fn plan_layers(
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
            Value::Sym(s) => Mvm::from_name(s).unwrap_or(Mvm::WeightGrad),
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
        let cx = LayerPolicy {
            q,
            m,
            gains: gains.as_deref(),
            two_level_digital,
            adapt_span: hw_idx.and_then(|i| self.defs.params[i].span("adc.adaptability")),
        };
        let mut grouped = Grouped::default();
        let mut plans = Vec::new();
        for (pos, &li) in mvm_layers.iter().enumerate() {
            let lname = &net.layers[li].name;
            let edges = (pos == 0, pos + 1 == mvm_layers.len());
            let f = cx.formats(lname, edges, &mut grouped);
            let (targets, target_spans, free) = self.targets(&cx, &f, lname, &mut grouped);
            let on_imc: Vec<usize> = (0..3).filter(|&k| targets[k] == Target::Imc).collect();
            cx.check_two_level(&on_imc, &target_spans, lname, &mut grouped);
            let (rv, r_span) = cx.pick(m, lname, "adc_range");
            let adc_range = build::range_policy(&rv);
            cx.check_fixed_gain(adc_range, r_span, !on_imc.is_empty(), lname, &mut grouped);
            if on_imc.is_empty()
                && let Some(e) = m.map.get(&cx.over(lname, "adc_range"))
                && let Some(s) = e.span
            {
                self.diags.push(
                    Diagnostic::new(Code::NoEffect, format!("`adc_range` of layer `{lname}` has no effect"))
                        .primary(s, "ignored")
                        .note(format!("all three MVMs of `{lname}` are digital, so no ADC is used")),
                );
            }
            let (weights, activations, errors) = (f.weights, f.activations, f.errors);
            plans.push(MvmLayerPlan {
                layer: LayerId(li as u32),
                weights,
                activations,
                errors,
                targets,
                free,
                adc_range,
            });
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

    /// Each MVM's target: the mapping's (checked against the operand formats), or for `auto`
    /// IMC unless the operands are f32 or a two-level ADC keeps this MVM digital; and which
    /// `auto` MVMs a placement by cost may move (with the precision they would run at).
    #[allow(clippy::type_complexity)]
    fn targets(
        &mut self,
        cx: &LayerPolicy<'_>,
        f: &LayerFormats,
        lname: &str,
        grouped: &mut Grouped,
    ) -> ([Target; 3], [Option<Span>; 3], [Option<Precision>; 3]) {
        let (cw, ca, ce) = (class_w(&f.weights), class_a(&f.activations), class_e(&f.errors));
        let operands = [(cw, ca, f.w_span, f.a_span), (cw, ce, f.w_span, f.e_span), (ce, ca, f.e_span, f.a_span)];
        let mut targets = [Target::Imc; 3];
        let mut target_spans = [None; 3];
        let mut free = [None; 3];
        for (k, mvm) in Mvm::ALL.into_iter().enumerate() {
            let (tv, t_span) = cx.pick(cx.m, lname, mvm.key());
            target_spans[k] = t_span;
            let (c1, c2, s1, s2) = operands[k];
            let widest = c1.max(c2);
            if build::target(&tv).is_none() && widest != Precision::F32 {
                free[k] = Some(widest);
            }
            targets[k] = match build::target(&tv) {
                Some(t) => {
                    self.check_target(t, widest, (c1, s1), (c2, s2), t_span, mvm, grouped, lname);
                    t
                }
                None if widest == Precision::F32 => Target::Digital(Precision::F32),
                None if cx.gains.is_some_and(|g| g.len() < 3) && mvm == cx.two_level_digital => Target::Digital(widest),
                None => Target::Imc,
            };
        }
        (targets, target_spans, free)
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
                        p.name(),
                        widest.name()
                    ),
                );
                if let Some(s) = t_span {
                    d = d.primary(s, "too narrow");
                }
                if let Some(s) = fmt_span {
                    d = d.secondary(s, format!("{} operands from here", widest.name()));
                }
                grouped.add(d.help(format!("use `digital({})`", widest.name())), lname);
            }
            _ => {}
        }
    }
}
