//! Typed parameter sets to the plain structs of the program and the runtime. Types were
//! checked against the schema already, so every lookup here succeeds.

use super::Defs;
use super::params::ParamSet;
use super::values::{Ctor, Value};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::program::{DataSet, Placement, PlacementPlan, Precision, RangePolicy, Schedule, Sgd, Target};
use crate::schema::{self, Kind};
use crate::span::Span;
use imcc_ir::config::*;

fn real(v: &Value) -> f64 {
    v.as_real().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_int().unwrap_or_default()
}

fn sym(v: &Value) -> &'static str {
    match v {
        Value::Sym(s) => s,
        _ => "",
    }
}

/// The enum variant a checked symbol names. The schema accepts exactly `T::NAMES` there
/// ([`Named`]), so a symbol that names no variant is a schema bug, never a user error.
fn named<T: Named>(v: &Value) -> T {
    T::from_name(sym(v)).unwrap_or_else(|| panic!("schema bug: `{}` is not one of {:?}", sym(v), T::NAMES))
}

fn ctor(v: &Value) -> &Ctor {
    match v {
        Value::Ctor(c) => c,
        other => panic!("schema bug: expected a constructor, found {other:?}"),
    }
}

fn arg<'a>(c: &'a Ctor, key: &str) -> &'a Value {
    c.args.get(key).unwrap_or_else(|| panic!("schema bug: `{}` has no `{key}`", c.name))
}

/// Every hardware definition as a runtime config, with warnings for settings without effect.
pub fn all_hardware(defs: &Defs<'_>, diags: &mut Diagnostics) -> Vec<(String, HardwareConfig)> {
    let mut out = Vec::new();
    for (i, d) in defs.list.iter().enumerate() {
        if d.kind == Kind::Hardware {
            let ps = &defs.params[i];
            let hw = hardware(ps);
            hardware_warnings(ps, &hw, diags);
            out.push((d.block.name.name.clone(), hw));
        }
    }
    out
}

/// The hardware described by a parameter set (a `hardware` block, or the defaults).
pub fn hardware(ps: &ParamSet) -> HardwareConfig {
    let dims = match ps.get("array") {
        Value::Ints(d) => d.clone(),
        _ => vec![1, 1],
    };
    let input = ctor(ps.get("input"));
    let e = |k: &str| real(ps.get(&format!("energy.{k}")));
    let g = |k: &str| real(ps.get(&format!("digital.{k}")));
    let t = |k: &str| real(ps.get(&format!("timing.{k}")));
    HardwareConfig {
        rows: dims[0] as u32,
        cols: dims[1] as u32,
        cores: int(ps.get("cores")) as u32,
        input: match input.name {
            "dac" => InputMode::Dac {
                bits: int(arg(input, "bits")) as u32,
                levels: match arg(input, "levels") {
                    Value::Reals(l) => l.clone(),
                    _ => Vec::new(),
                },
            },
            _ => InputMode::BitSerial,
        },
        signs: named(ps.get("signs")),
        skip_empty_planes: matches!(ps.get("skip_empty_planes"), Value::Bool(true)),
        adc: AdcConfig {
            bits: int(ps.get("adc.bits")) as u32,
            adaptability: match ps.get("adc.adaptability") {
                Value::Gains(Some(g)) => Adaptability::Gains(g.clone()),
                _ => Adaptability::Full,
            },
            zero: named(ps.get("adc.zero")),
        },
        noise: NoiseConfig {
            sigma_lsb: real(ps.get("noise.sigma_lsb")),
            scaling: named(ps.get("noise.scaling")),
            gain_mismatch: real(ps.get("noise.gain_mismatch")),
            dac_error: real(ps.get("noise.dac_error")),
            chip_seed: int(ps.get("noise.chip_seed")) as u64,
        },
        energy: ImcEnergy {
            column_eval: e("column_eval"),
            adc_conversion: e("adc_conversion"),
            shift_add: e("shift_add"),
            array_write_bit: e("array_write_bit"),
            move_bit: e("move_bit"),
            accounting: named(ps.get("energy.accounting")),
        },
        digital: DigitalEnergy {
            node_scale: g("node_scale"),
            int4_add: g("int4_add"),
            int4_mult: g("int4_mult"),
            int8_add: g("int8_add"),
            int8_mult: g("int8_mult"),
            int32_add: g("int32_add"),
            int32_mult: g("int32_mult"),
            fp16_add: g("fp16_add"),
            fp16_mult: g("fp16_mult"),
            fp32_add: g("fp32_add"),
            fp32_mult: g("fp32_mult"),
            sram_read_64b: g("sram_read_64b"),
            dram_access_64b: g("dram_access_64b"),
            operand_sram_share: g("operand_sram_share"),
            dram_bits_per_weight: g("dram_bits_per_weight"),
        },
        timing: Timing {
            evaluate: t("evaluate"),
            conversion: t("conversion"),
            columns_per_adc: int(ps.get("timing.columns_per_adc")) as u32,
            dac_settle: t("dac_settle"),
            write_bandwidth: t("write_bandwidth"),
            input_bandwidth: t("input_bandwidth"),
            int4_ops: t("int4_ops"),
            int8_ops: t("int8_ops"),
            fp16_ops: t("fp16_ops"),
            f32_ops: t("f32_ops"),
            elementwise_ops: t("elementwise_ops"),
        },
    }
}

fn no_effect(span: Span, message: String, label: &str) -> Diagnostic {
    Diagnostic::new(Code::NoEffect, message).primary(span, label.to_string())
}

fn hardware_warnings(ps: &ParamSet, hw: &HardwareConfig, diags: &mut Diagnostics) {
    if let InputMode::Dac { bits, levels } = &hw.input
        && let Some(span) = ps.span("input")
    {
        let powers_of_four = levels.iter().enumerate().all(|(j, &l)| l == 4f64.powi(j as i32));
        if !powers_of_four {
            diags.push(
                Diagnostic::new(Code::ValueOutOfRange, "DAC levels must be successive powers of 4 starting at 1")
                    .primary(span, format!("levels {levels:?}"))
                    .note("a cycle applies neighbouring radix-4 exponents at once, so its levels are 1, 4, 16, ...")
                    .help("write e.g. `dac(bits = 5, levels = [1, 4, 16])`"),
            );
        } else if let Some(&top) = levels.last()
            && top > ((1u64 << *bits) - 1) as f64
        {
            diags.push(
                Diagnostic::new(Code::ValueOutOfRange, format!("a {bits}-bit DAC cannot apply level {top}"))
                    .primary(span, format!("levels up to {top} need {} bits", (top + 1.0).log2().ceil()))
                    .help("raise `bits` or drop the top level"),
            );
        }
    }
    if hw.signs == SignMode::Signed
        && hw.adc.zero == AdcZero::Unsigned
        && let Some(span) = ps.span("signs").or(ps.span("adc.zero"))
    {
        let mut d = Diagnostic::new(Code::SignedDriveUnsignedAdc, "signed row drive with an unsigned ADC")
            .primary(span, "column sums can be negative")
            .note("an unsigned ADC clips every negative column sum to zero")
            .help("set `adc { zero = signed; }` (or `differential`), or `signs = two_pass`");
        if let Some(z) = ps.span("adc.zero") {
            d = d.secondary(z, "unsigned here");
        }
        diags.push(d);
    }
    if let Some(span) = ps.span("noise.dac_error")
        && hw.input == InputMode::BitSerial
        && hw.noise.dac_error > 0.0
    {
        diags.push(
            no_effect(span, "`noise.dac_error` has no effect with bit-serial inputs".into(), "ignored")
                .note("binary input planes use no DAC; the error applies to `input = dac(...)` only"),
        );
    }
    if let Some(span) = ps.span("noise.scaling")
        && hw.noise.sigma_lsb == 0.0
    {
        diags.push(
            no_effect(span, "`noise.scaling` has no effect without noise".into(), "ignored")
                .note("`noise.sigma_lsb` is 0"),
        );
    }
}

/// A weight format value.
pub fn weight_format(v: &Value) -> WeightFormat {
    let c = ctor(v);
    match c.name {
        "int4_sawb" => WeightFormat::Int4Sawb { c1: real(arg(c, "c1")), c2: real(arg(c, "c2")) },
        "int8" => WeightFormat::Int8,
        _ => WeightFormat::F32,
    }
}

/// An activation format value.
pub fn activation_format(v: &Value) -> ActivationFormat {
    let c = ctor(v);
    match c.name {
        "int4_pact" => {
            ActivationFormat::Int4Pact { alpha: real(arg(c, "alpha")), alpha_decay: real(arg(c, "alpha_decay")) }
        }
        "int8" => ActivationFormat::Int8,
        _ => ActivationFormat::F32,
    }
}

/// An error format value.
pub fn error_format(v: &Value) -> ErrorFormat {
    let c = ctor(v);
    let phase = |k: &str| named::<Phase>(arg(c, k));
    match c.name {
        "radix4" => ErrorFormat::Radix4(Radix4Config {
            levels: int(arg(c, "levels")) as u32,
            tpr: matches!(arg(c, "tpr"), Value::Bool(true)),
            backward: phase("backward"),
            weight_grad: phase("weight_grad"),
            gradscale: named(arg(c, "gradscale")),
        }),
        "int8" => ErrorFormat::Int8,
        _ => ErrorFormat::F32,
    }
}

/// A precision name.
pub fn precision(s: &str) -> Precision {
    Precision::from_name(s).unwrap_or_else(|| panic!("schema bug: `{s}` is not one of {:?}", Precision::NAMES))
}

/// A target value: `None` for `auto`.
pub fn target(v: &Value) -> Option<Target> {
    let c = ctor(v);
    match c.name {
        "imc" => Some(Target::Imc),
        "digital" => Some(Target::Digital(precision(sym(arg(c, "precision"))))),
        _ => None,
    }
}

/// The placement settings of a mapping on a chip with ADC adaptability `adapt`.
pub fn placement_plan(m: &ParamSet, adapt: &Adaptability) -> PlacementPlan {
    let c = ctor(m.get("placement"));
    PlacementPlan {
        placement: match c.name {
            "cost" => Placement::Cost(named(arg(c, "minimize"))),
            _ => Placement::Fixed,
        },
        max_imc: match adapt {
            Adaptability::Full => 3,
            Adaptability::Gains(g) => g.len().min(3),
        },
        two_level_digital: named(m.get("two_level_digital")),
        min_row_share: real(m.get("min_row_share")),
    }
}

/// A range policy value.
pub fn range_policy(v: &Value) -> RangePolicy {
    let c = ctor(v);
    let momentum = || real(arg(c, "momentum"));
    match c.name {
        "max" => RangePolicy::Max { momentum: momentum() },
        "percentile" => RangePolicy::Percentile { p: real(arg(c, "p")), momentum: momentum() },
        "fixed" => RangePolicy::Fixed { gain: real(arg(c, "gain")) },
        _ => RangePolicy::Mse { momentum: momentum() },
    }
}

/// A data set value.
pub fn data_set(v: &Value) -> DataSet {
    let c = ctor(v);
    let s = |k: &str| match arg(c, k) {
        Value::Str(s) => s.clone(),
        _ => String::new(),
    };
    match c.name {
        "digits" => DataSet::Digits { test_fraction: real(arg(c, "test_fraction")), dir: s("dir") },
        "mnist" => DataSet::Mnist { dir: s("dir") },
        "cifar10" => DataSet::Cifar10 { dir: s("dir") },
        _ => DataSet::Idx { dir: s("dir"), classes: int(arg(c, "classes")) as usize },
    }
}

/// An optimizer value.
pub fn sgd(v: &Value) -> Sgd {
    let c = ctor(v);
    Sgd {
        lr: real(arg(c, "lr")),
        momentum: real(arg(c, "momentum")),
        weight_decay: real(arg(c, "weight_decay")),
        nesterov: matches!(arg(c, "nesterov"), Value::Bool(true)),
    }
}

/// A schedule value.
pub fn schedule(v: &Value) -> Schedule {
    let c = ctor(v);
    match c.name {
        "step" => Schedule::Step { every: int(arg(c, "every")) as u64, gamma: real(arg(c, "gamma")) },
        "cosine" => Schedule::Cosine { min_lr: real(arg(c, "min_lr")) },
        _ => Schedule::Constant,
    }
}

/// The parameter set of an absent optional definition: every default of `kind`.
pub fn defaults(kind: Kind) -> ParamSet {
    let mut set = ParamSet::default();
    let mut sink = Diagnostics::default();
    super::params::fill_defaults(&mut set, schema::block(kind), "", Span::new(crate::span::FileId(0), 0..0), &mut sink);
    set
}
