//! The language's vocabulary as data: every block, section, parameter, constructor and layer,
//! with its type, unit, default and documentation.
//!
//! The checker validates programs against these tables and `spec/language.md`'s parameter
//! reference is generated from them (a test keeps the two equal), so a parameter cannot exist
//! without documentation or a documented default. Defaults are written as source text of the
//! language itself and are type-checked by a test like any user value.

use imcc_ir::config::{
    AdcZero, EnergyAccounting, GradScaleMode, Mvm, Named, NoiseScaling, Objective, Phase, Precision, SignMode,
};

/// The kinds of top-level definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `hardware`: the chip.
    Hardware,
    /// `quant`: the quantization policy.
    Quant,
    /// `network`: the model.
    Network,
    /// `mapping`: which MVMs run on IMC.
    Mapping,
    /// `train`: a training run.
    Train,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [Kind::Hardware, Kind::Quant, Kind::Network, Kind::Mapping, Kind::Train];

    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Hardware => "hardware",
            Kind::Quant => "quant",
            Kind::Network => "network",
            Kind::Mapping => "mapping",
            Kind::Train => "train",
        }
    }

    /// The kind a keyword names.
    pub fn from_keyword(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.keyword() == s)
    }
}

/// The physical quantity a number measures, which decides the units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// A plain number; no unit allowed.
    None,
    /// Energy: `fJ pJ nJ uJ mJ J`, required; stored in joules.
    Energy,
    /// A bit width: `bits` or `b`, optional.
    Bits,
    /// ADC least significant bits: `lsb`, optional.
    Lsb,
    /// Time: `ps ns us ms s`, required; stored in seconds.
    Time,
    /// Operations per second (two per MAC): `GOPS TOPS ...`, required; stored in ops/s.
    Rate,
    /// Bits per second: `Mbps Gbps Tbps ...`, required; stored in bits/s.
    Bandwidth,
}

/// Every unit: its name, dimension and factor to the stored base unit.
pub const UNITS: &[(&str, Dim, f64)] = &[
    ("fJ", Dim::Energy, 1e-15),
    ("pJ", Dim::Energy, 1e-12),
    ("nJ", Dim::Energy, 1e-9),
    ("uJ", Dim::Energy, 1e-6),
    ("mJ", Dim::Energy, 1e-3),
    ("J", Dim::Energy, 1.0),
    ("bits", Dim::Bits, 1.0),
    ("b", Dim::Bits, 1.0),
    ("lsb", Dim::Lsb, 1.0),
    ("ps", Dim::Time, 1e-12),
    ("ns", Dim::Time, 1e-9),
    ("us", Dim::Time, 1e-6),
    ("ms", Dim::Time, 1e-3),
    ("s", Dim::Time, 1.0),
    ("OPS", Dim::Rate, 1.0),
    ("kOPS", Dim::Rate, 1e3),
    ("MOPS", Dim::Rate, 1e6),
    ("GOPS", Dim::Rate, 1e9),
    ("TOPS", Dim::Rate, 1e12),
    ("bps", Dim::Bandwidth, 1.0),
    ("kbps", Dim::Bandwidth, 1e3),
    ("Mbps", Dim::Bandwidth, 1e6),
    ("Gbps", Dim::Bandwidth, 1e9),
    ("Tbps", Dim::Bandwidth, 1e12),
];

impl Dim {
    /// How the dimension is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Dim::None => "a plain number",
            Dim::Energy => "an energy (fJ, pJ, nJ, uJ, mJ, J)",
            Dim::Bits => "a bit width (bits)",
            Dim::Lsb => "a noise level in ADC LSBs (lsb)",
            Dim::Time => "a time (ps, ns, us, ms, s)",
            Dim::Rate => "a rate in operations per second (OPS, kOPS, MOPS, GOPS, TOPS)",
            Dim::Bandwidth => "a bandwidth in bits per second (bps, kbps, Mbps, Gbps, Tbps)",
        }
    }

    /// Whether a number of this dimension must carry a unit (physical quantities do).
    pub fn unit_required(self) -> bool {
        matches!(self, Dim::Energy | Dim::Time | Dim::Rate | Dim::Bandwidth)
    }
}

/// A parameter's type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// An integer in `min..=max`.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
        /// Accepted unit.
        dim: Dim,
    },
    /// A real number in `min..=max` (or `min<..` when `min_open`).
    Real {
        /// Lower bound.
        min: f64,
        /// Whether the lower bound itself is excluded.
        min_open: bool,
        /// Upper bound.
        max: f64,
        /// Accepted unit.
        dim: Dim,
    },
    /// `true` or `false`.
    Bool,
    /// A string literal.
    Str,
    /// One of a fixed set of names.
    Sym(&'static [&'static str]),
    /// The name of a definition of this kind.
    Ref(Kind),
    /// Array dimensions `ROWS x COLS`.
    Dims,
    /// A tensor shape: `[N]` or `[C, H, W]`.
    Shape,
    /// ADC range adaptability: `full` or a list of allowed gains `[g1, g2, ...]`.
    Gains,
    /// A list of positive reals.
    RealList,
    /// One of several constructors: `name` or `name(args)`.
    Ctor(&'static [CtorSpec]),
}

impl Ty {
    /// Checks real number `v` (in the parameter's base unit) against a [`Ty::Real`] range;
    /// `Err` carries the accepted range in words. Other types accept nothing.
    pub fn check_real(&self, v: f64) -> Result<(), String> {
        let Ty::Real { min, min_open, max, .. } = self else {
            return Err(self.describe());
        };
        let low_ok = if *min_open { v > *min } else { v >= *min };
        if low_ok && v <= *max && v.is_finite() {
            return Ok(());
        }
        Err(self.bounds().unwrap_or_else(|| self.describe()))
    }

    /// The accepted range of a [`Ty::Real`] in words (`a number in [0, 1]`); `None` for other
    /// types (an integer's range is part of [`Ty::describe`]).
    pub fn bounds(&self) -> Option<String> {
        let Ty::Real { min, min_open, max, dim } = self else {
            return None;
        };
        Some(if *dim == Dim::Energy {
            "a non-negative energy below 1 J".to_string()
        } else if *dim == Dim::Time {
            "a non-negative time below 1 s".to_string()
        } else if matches!(dim, Dim::Rate | Dim::Bandwidth) {
            format!("{} above zero", dim.describe())
        } else {
            match (min_open, *max >= 1e6) {
                (true, true) => format!("a number > {min}"),
                (false, true) => format!("a number >= {min}"),
                (true, false) => format!("a number in ({min}, {max}]"),
                (false, false) => format!("a number in [{min}, {max}]"),
            }
        })
    }

    /// A human description for "expected ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Ty::Int { min, max, dim } => {
                let unit = if *dim == Dim::Bits { " (bits)" } else { "" };
                if *max == i64::MAX {
                    format!("an integer >= {min}{unit}")
                } else {
                    format!("an integer in {min}..={max}{unit}")
                }
            }
            Ty::Real { dim, .. } => match dim {
                Dim::None => "a number".to_string(),
                d => d.describe().to_string(),
            },
            Ty::Bool => "`true` or `false`".into(),
            Ty::Str => "a string".into(),
            Ty::Sym(opts) => format!("one of {}", list_names(opts)),
            Ty::Ref(k) => format!("the name of a `{}` definition", k.keyword()),
            Ty::Dims => "array dimensions `ROWS x COLS`".into(),
            Ty::Shape => "a shape `[N]` or `[C, H, W]`".into(),
            Ty::Gains => "`full` or a list of ADC gains such as `[1, 8]`".into(),
            Ty::RealList => "a list of positive numbers".into(),
            Ty::Ctor(c) => format!("one of {}", list_names(&c.iter().map(|c| c.name).collect::<Vec<_>>())),
        }
    }
}

fn list_names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// Whether a parameter must be given.
#[derive(Debug, Clone, Copy)]
pub enum Presence {
    /// Must be written.
    Required,
    /// May be omitted; then it has no value (the meaning of absence is documented).
    Optional,
    /// May be omitted; then it takes this value (source text of the language).
    Default(&'static str),
}

/// One parameter (or constructor argument).
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// Its key.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Required, optional or defaulted.
    pub presence: Presence,
    /// What it means, and the source of its default (`[paper]`, `[derived]`, `[default]`).
    pub doc: &'static str,
}

/// One constructor of a [`Ty::Ctor`] type, e.g. `int4_sawb(c1, c2)` or `imc`.
#[derive(Debug, Clone, Copy)]
pub struct CtorSpec {
    /// Its name.
    pub name: &'static str,
    /// Its arguments, in positional order.
    pub args: &'static [ParamSpec],
    /// What it means.
    pub doc: &'static str,
}

/// A section of a block: `adc { ... }`, or a labelled one: `layer fc1 { ... }`.
#[derive(Debug, Clone, Copy)]
pub struct SectionSpec {
    /// The section keyword.
    pub name: &'static str,
    /// Whether it takes a label (a layer name).
    pub labelled: bool,
    /// Its parameters.
    pub params: &'static [ParamSpec],
    /// What it is for.
    pub doc: &'static str,
}

/// A block kind's vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    /// The kind.
    pub kind: Kind,
    /// Its parameters.
    pub params: &'static [ParamSpec],
    /// Its sections.
    pub sections: &'static [SectionSpec],
    /// What it describes.
    pub doc: &'static str,
}

/// One layer operation.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    /// The operation name.
    pub op: &'static str,
    /// Its arguments.
    pub args: &'static [ParamSpec],
    /// Whether it has weights and hence the three training MVMs.
    pub has_mvm: bool,
    /// What it computes.
    pub doc: &'static str,
}

const fn p(name: &'static str, ty: Ty, default: &'static str, doc: &'static str) -> ParamSpec {
    ParamSpec { name, ty, presence: Presence::Default(default), doc }
}
const fn req(name: &'static str, ty: Ty, doc: &'static str) -> ParamSpec {
    ParamSpec { name, ty, presence: Presence::Required, doc }
}
const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> ParamSpec {
    ParamSpec { name, ty, presence: Presence::Optional, doc }
}
const fn int(min: i64, max: i64) -> Ty {
    Ty::Int { min, max, dim: Dim::None }
}
const fn real(min: f64, max: f64) -> Ty {
    Ty::Real { min, min_open: false, max, dim: Dim::None }
}
const fn pos_real(max: f64) -> Ty {
    Ty::Real { min: 0.0, min_open: true, max, dim: Dim::None }
}
const fn energy() -> Ty {
    Ty::Real { min: 0.0, min_open: false, max: 1.0, dim: Dim::Energy }
}
const fn time() -> Ty {
    Ty::Real { min: 0.0, min_open: false, max: 1.0, dim: Dim::Time }
}
const fn rate(dim: Dim) -> Ty {
    Ty::Real { min: 0.0, min_open: true, max: 1e21, dim }
}
const fn ctor(name: &'static str, args: &'static [ParamSpec], doc: &'static str) -> CtorSpec {
    CtorSpec { name, args, doc }
}
const BIG: i64 = i64::MAX;

// ---------------------------------------------------------------- hardware

/// The `hardware` block.
pub const HARDWARE: BlockSpec = BlockSpec {
    kind: Kind::Hardware,
    doc: "An IMC chip: its arrays, inputs, ADCs, noise and energy constants. Defaults describe the \
          16 nm 4x4-core prototype (JSSC 2022) that calibrates the energy model.",
    params: &[
        p("array", Ty::Dims, "1152 x 256", "Rows x columns of one array (core). [paper: 16 nm chip]"),
        p("cores", int(1, 1 << 20), "16", "Number of arrays (cores) on the chip. [paper: 4x4 cores]"),
        p("input", Ty::Ctor(INPUT_MODES), "bit_serial", "How MVM inputs are applied to the rows."),
        p(
            "signs",
            Ty::Sym(SignMode::NAMES),
            "two_pass",
            "Signed inputs: a positive and a negative pass per plane (`two_pass`), or a signed row drive \
           (`signed`). [default]",
        ),
        p(
            "skip_empty_planes",
            Ty::Bool,
            "true",
            "Skip input planes with no active element (no conversion, no energy). [default]",
        ),
    ],
    sections: &[
        SectionSpec {
            name: "adc",
            labelled: false,
            doc: "The per-column ADC.",
            params: &[
                p("bits", Ty::Int { min: 1, max: 16, dim: Dim::Bits }, "8 bits", "ADC resolution B. [paper: 8 b]"),
                p(
                    "adaptability",
                    Ty::Gains,
                    "full",
                    "Range adaptability: `full` (any gain G per MVM and plane) or the list of gains the ADC \
                   offers; two entries is the paper's two-level adaptability. [paper: names; default: meaning]",
                ),
                p(
                    "zero",
                    Ty::Sym(AdcZero::NAMES),
                    "unsigned",
                    "Zero handling: `unsigned` clips negative noise at code 0 (the chips' AND mode), `signed` \
                   converts around mid-rail, `differential` uses +-1 columns. [default]",
                ),
            ],
        },
        SectionSpec {
            name: "noise",
            labelled: false,
            doc: "Analog non-idealities, all drawn from seeded generators.",
            params: &[
                p(
                    "sigma_lsb",
                    Ty::Real { min: 0.0, min_open: false, max: 1e6, dim: Dim::Lsb },
                    "0.05 lsb",
                    "Gaussian noise per conversion, in LSB at native range (sigma_LSB0), referred to the ADC \
                   input. [default]",
                ),
                p(
                    "scaling",
                    Ty::Sym(NoiseScaling::NAMES),
                    "physical_rows",
                    "Whether noise in unit counts is fixed by the array's physical rows, or scales with the rows \
                   a row-tile actually drives. [default]",
                ),
                p(
                    "gain_mismatch",
                    real(0.0, 1.0),
                    "0",
                    "Sigma of the static per-column relative gain error. [default]",
                ),
                p(
                    "dac_error",
                    real(0.0, 1.0),
                    "0",
                    "Sigma of the relative per-level DAC error (multi-level inputs only). [default]",
                ),
                p(
                    "chip_seed",
                    int(0, BIG),
                    "1",
                    "Seed of the static mismatch pattern (one seed is one chip instance). [default]",
                ),
            ],
        },
        SectionSpec {
            name: "energy",
            labelled: false,
            doc: "IMC energy constants. The defaults split the calibrated 1.2 pJ per 1152-row column \
                  evaluation (30 TOPS/W at 8 b = 1.04 fJ per 1b-MAC) into array, ADC and near-memory \
                  parts. [derived from paper; split default]",
            params: &[
                p(
                    "column_eval",
                    energy(),
                    "0.35 pJ",
                    "Array energy of one column evaluation (all rows). [default split]",
                ),
                p("adc_conversion", energy(), "0.75 pJ", "One ADC conversion. [default split]"),
                p(
                    "shift_add",
                    energy(),
                    "0.10 pJ",
                    "One near-memory shift-and-add of a conversion result. [default split]",
                ),
                p(
                    "array_write_bit",
                    energy(),
                    "0.05 pJ",
                    "Writing one bit into an array (weight updates, Wᵀ copies). [default]",
                ),
                p("move_bit", energy(), "0.02 pJ", "Moving one operand bit between memory and the array. [default]"),
                p(
                    "accounting",
                    Ty::Sym(EnergyAccounting::NAMES),
                    "conversions",
                    "How MVM energy is counted: per conversion actually performed (a partial row-tile or a sparse \
                     plane costs a full conversion), or per 1b x 1b product at full utilization, (column_eval + \
                     adc_conversion + shift_add) / rows each, the calibration's 1.04 fJ. [default: conversions; \
                     bit_products is the paper's calibration]",
                ),
            ],
        },
        SectionSpec {
            name: "timing",
            labelled: false,
            doc: "Time constants of the cost model (`spec/energy.md`). A plane cycle is `evaluate` plus \
                  `ceil(columns used / columns_per_adc)` conversions; the defaults' 49 ns cycle is calibrated \
                  on the 16 nm chip's 3 TOPS at 8-b operations. Rates count two operations per MAC.",
            params: &[
                p(
                    "evaluate",
                    time(),
                    "10 ns",
                    "Driving one input plane onto the rows and settling the column charge. [default split of \
                     the calibrated 49 ns cycle]",
                ),
                p(
                    "conversion",
                    time(),
                    "39 ns",
                    "One ADC conversion. [derived: with `evaluate`, 49 ns per plane cycle = 2 x 1152 x 32 x 16 \
                     ops / (8 cycles x 3 TOPS), the 16 nm chip's 8-b peak; split default]",
                ),
                p(
                    "columns_per_adc",
                    int(1, 1 << 16),
                    "1",
                    "Columns sharing one ADC, converted one after another in a plane cycle. [paper: an ADC per \
                     column]",
                ),
                p(
                    "dac_settle",
                    time(),
                    "0 ns",
                    "Extra settling of a multi-level DAC cycle over a binary one. [default: the 28 nm macro's 5x \
                     throughput over binary inputs at 5 b leaves no room for more]",
                ),
                p(
                    "write_bandwidth",
                    rate(Dim::Bandwidth),
                    "256 Gbps",
                    "Bits per second written into the arrays, the whole chip (weight updates, Wᵀ copies, the \
                     weight gradient's activations, reloads). [default: not public; one 256-bit row per ns]",
                ),
                p(
                    "input_bandwidth",
                    rate(Dim::Bandwidth),
                    "256 Gbps",
                    "Bits per second of streamed operands moved to the rows, the whole chip; overlaps the \
                     cycles. [default: not public]",
                ),
                p(
                    "int4_ops",
                    rate(Dim::Rate),
                    "2 TOPS",
                    "Digital throughput at 4-bit formats (two ops per MAC). [default: a digital engine with \
                     1024 4-b MACs at 1 GHz; not public]",
                ),
                p("int8_ops", rate(Dim::Rate), "1 TOPS", "Digital throughput at INT8. [default: half the 4-bit rate]"),
                p("fp16_ops", rate(Dim::Rate), "0.5 TOPS", "Digital throughput at FP16. [default: a quarter]"),
                p("f32_ops", rate(Dim::Rate), "0.25 TOPS", "Digital throughput at FP32. [default: an eighth]"),
                p(
                    "elementwise_ops",
                    rate(Dim::Rate),
                    "64 GOPS",
                    "Throughput of the digital remainder, two ops per element written (quantizers, \
                     activations, loss, update). [default: a 32-lane f32 vector unit at 1 GHz]",
                ),
            ],
        },
        SectionSpec {
            name: "digital",
            labelled: false,
            doc: "Digital energy constants, for the digital remainder and the all-digital baselines. \
                  Defaults are Horowitz (ISSCC 2014) 45 nm figures, scaled by `node_scale`.",
            params: &[
                p("node_scale", pos_real(100.0), "0.3", "Energy factor from 45 nm to the chip's node. [default]"),
                p("int4_add", energy(), "0.015 pJ", "4-bit add at 45 nm. [default: half the INT8 add]"),
                p("int4_mult", energy(), "0.05 pJ", "4-bit multiply at 45 nm. [default: INT8 mult x (4/8)^2]"),
                p("int8_add", energy(), "0.03 pJ", "INT8 add at 45 nm. [paper: Horowitz]"),
                p("int8_mult", energy(), "0.2 pJ", "INT8 multiply at 45 nm. [paper: Horowitz]"),
                p("int32_add", energy(), "0.1 pJ", "INT32 add at 45 nm. [paper: Horowitz]"),
                p("int32_mult", energy(), "3.1 pJ", "INT32 multiply at 45 nm. [paper: Horowitz]"),
                p("fp16_add", energy(), "0.4 pJ", "FP16 add at 45 nm. [paper: Horowitz]"),
                p("fp16_mult", energy(), "1.1 pJ", "FP16 multiply at 45 nm. [paper: Horowitz]"),
                p("fp32_add", energy(), "0.9 pJ", "FP32 add at 45 nm. [paper: Horowitz]"),
                p("fp32_mult", energy(), "3.7 pJ", "FP32 multiply at 45 nm. [paper: Horowitz]"),
                p(
                    "sram_read_64b",
                    energy(),
                    "10 pJ",
                    "64-bit SRAM read at 45 nm: 10 pJ for 8 KB, 20 pJ for 32 KB, 100 pJ for 1 MB. [paper: Horowitz]",
                ),
                p("dram_access_64b", energy(), "1.3 nJ", "64-bit DRAM access. [paper: Horowitz, low end]"),
                p(
                    "operand_sram_share",
                    real(0.0, 1.0),
                    "0.5",
                    "Share of a digital MAC's operand bits fetched from SRAM (1: no reuse in registers). [default]",
                ),
                p(
                    "dram_bits_per_weight",
                    real(0.0, 1e6),
                    "0",
                    "DRAM traffic per weight per training step of a digital MVM, in bits (weights that do not fit on chip). [default]",
                ),
            ],
        },
    ],
};

const INPUT_MODES: &[CtorSpec] = &[
    ctor(
        "bit_serial",
        &[],
        "Binary input planes, one per cycle: integer inputs bit by bit, radix-4 inputs as exponent planes.",
    ),
    ctor(
        "dac",
        &[
            p(
                "bits",
                Ty::Int { min: 1, max: 8, dim: Dim::Bits },
                "5 bits",
                "DAC resolution. [paper: 5-b, 28 nm macro]",
            ),
            p(
                "levels",
                Ty::RealList,
                "[1, 4, 16]",
                "Radix-4 magnitudes applied in one cycle; 8 exponents take 3 cycles. [paper: follow-up]",
            ),
        ],
        "Multi-level inputs through a row DAC (the follow-up paper).",
    ),
];

// ---------------------------------------------------------------- quant

const PRECISIONS: &[&str] = Precision::NAMES;

const WEIGHT_FORMATS: &[CtorSpec] = &[
    ctor(
        "int4_sawb",
        &[
            p("c1", real(-1e3, 1e3), "12.035", "SAWB coefficient c1 (15-level grid). [paper: IBM]"),
            p("c2", real(-1e3, 1e3), "12.03", "SAWB coefficient c2 (15-level grid). [paper: IBM]"),
        ],
        "INT4 weights, clip alpha = c1*sqrt(E[w^2]) - c2*E[|w|], codes -7..7.",
    ),
    ctor("int8", &[], "INT8, symmetric, max-scaled."),
    ctor("f32", &[], "Unquantized."),
];

const ACTIVATION_FORMATS: &[CtorSpec] = &[
    ctor(
        "int4_pact",
        &[
            p("alpha", pos_real(1e6), "6.0", "Initial clip alpha. [default]"),
            p("alpha_decay", real(0.0, 1.0), "0.0002", "L2 penalty on alpha. [default]"),
        ],
        "INT4 activations by PACT: clip(x, 0, alpha), 16 levels, alpha learned.",
    ),
    ctor("int8", &[], "INT8, symmetric, max-scaled."),
    ctor("f32", &[], "Unquantized."),
];

const ERROR_FORMATS: &[CtorSpec] = &[
    ctor(
        "radix4",
        &[
            p("levels", int(1, 16), "8", "Magnitudes 4^0 .. 4^-(levels-1) below the top level, plus zero. [default]"),
            p(
                "tpr",
                Ty::Bool,
                "true",
                "Two-phase rounding: quantize the error onto the even and the odd grid. [paper]",
            ),
            p("backward", Ty::Sym(Phase::NAMES), "even", "The phase that feeds the backward MVM. [default]"),
            p("weight_grad", Ty::Sym(Phase::NAMES), "odd", "The phase that feeds the weight-gradient MVM. [default]"),
            p(
                "gradscale",
                Ty::Sym(GradScaleMode::NAMES),
                "current",
                "GradScale timing: the power of two chosen from the current tensor, or the paper's one-step \
           adjustment per iteration. [default: current]",
            ),
        ],
        "Radix-4 FP4 errors (1 sign, 3 exponent bits) with per-layer GradScale.",
    ),
    ctor("int8", &[], "INT8, symmetric, max-scaled."),
    ctor("f32", &[], "Unquantized."),
];

const LAYER_PRECISION: Ty = Ty::Sym(&["quantized", "int8", "f32"]);

/// The `quant` block.
pub const QUANT: BlockSpec = BlockSpec {
    kind: Kind::Quant,
    doc: "The quantization policy: the formats of weights, activations and errors, with per-layer overrides.",
    params: &[
        p("weights", Ty::Ctor(WEIGHT_FORMATS), "int4_sawb", "Weight format. [paper]"),
        p("activations", Ty::Ctor(ACTIVATION_FORMATS), "int4_pact", "Format of MVM input activations. [paper]"),
        p("errors", Ty::Ctor(ERROR_FORMATS), "radix4", "Format of back-propagated errors. [paper]"),
        p(
            "first_layer",
            LAYER_PRECISION,
            "quantized",
            "Keep the first MVM layer at higher precision (weights and input): `quantized` keeps the policy. [default]",
        ),
        p(
            "last_layer",
            LAYER_PRECISION,
            "quantized",
            "Keep the last MVM layer at higher precision (weights and input). [default]",
        ),
        p("accumulate", Ty::Sym(&["f32", "fp16"]), "f32", "Precision of MVM output accumulation. [default]"),
    ],
    sections: &[SectionSpec {
        name: "layer",
        labelled: true,
        doc: "Per-layer override: `layer fc1 { weights = int8; }`.",
        params: &[
            opt("weights", Ty::Ctor(WEIGHT_FORMATS), "Weight format of this layer."),
            opt("activations", Ty::Ctor(ACTIVATION_FORMATS), "Format of this layer's input activations."),
            opt("errors", Ty::Ctor(ERROR_FORMATS), "Format of this layer's output errors."),
        ],
    }],
};

// ---------------------------------------------------------------- mapping

const TARGETS: &[CtorSpec] = &[
    ctor(
        "auto",
        &[],
        "IMC, except the MVM named by `two_level_digital` on hardware with a finite gain list, which runs `digital(int4)`.",
    ),
    ctor("imc", &[], "On the IMC arrays."),
    ctor(
        "digital",
        &[p(
            "precision",
            Ty::Sym(PRECISIONS),
            "int4",
            "MAC precision: `int4` (4-bit formats incl. radix-4), `int8`, `fp16`, `f32`.",
        )],
        "On digital MAC units.",
    ),
];

const RANGE_POLICIES: &[CtorSpec] = &[
    ctor(
        "mse",
        &[p("momentum", real(0.0, 1.0), "0.9", "Running-statistics momentum. [default]")],
        "Choose G minimising clipping plus rounding error from running statistics of the column sums. [default]",
    ),
    ctor(
        "max",
        &[p("momentum", real(0.0, 1.0), "0.9", "Running-statistics momentum. [default]")],
        "Choose G so the range covers the running maximum (no clipping).",
    ),
    ctor(
        "percentile",
        &[
            p(
                "p",
                Ty::Real { min: 50.0, min_open: false, max: 100.0, dim: Dim::None },
                "99.9",
                "Percentile of |sum| to cover.",
            ),
            p("momentum", real(0.0, 1.0), "0.9", "Running-statistics momentum. [default]"),
        ],
        "Choose G so the range covers a percentile of the column sums.",
    ),
    ctor("fixed", &[req("gain", pos_real(1e6), "The gain G.")], "One fixed gain for every MVM and plane."),
];

const PLACEMENTS: &[CtorSpec] = &[
    ctor(
        "fixed",
        &[],
        "Every MVM runs where its target says; `auto` is IMC, except the `two_level_digital` MVM under a \
         two-level ADC.",
    ),
    ctor(
        "cost",
        &[p(
            "minimize",
            Ty::Sym(Objective::NAMES),
            "energy",
            "What the modelled step minimizes: `energy` (joules), `time` (seconds) or `edp` (their product).",
        )],
        "The compiler places each `auto` MVM on IMC or digital (at its operands' precision), layer by layer, \
         to minimize the modelled step within the chip's rules (a two-level ADC serves two MVMs per layer); \
         explicit targets are kept.",
    ),
];

const MVM_TARGET_PARAMS: [ParamSpec; 3] = [
    p("forward", Ty::Ctor(TARGETS), "auto", "Target of the forward MVM `W·a`."),
    p("backward", Ty::Ctor(TARGETS), "auto", "Target of the backward MVM `Wᵀ·δ`."),
    p("weight_grad", Ty::Ctor(TARGETS), "auto", "Target of the weight-gradient MVM `δ·aᵀ`."),
];

/// The `mapping` block.
pub const MAPPING: BlockSpec = BlockSpec {
    kind: Kind::Mapping,
    doc: "The mapping policy: where each of a layer's three training MVMs runs, and how ADC ranges are chosen.",
    params: &[
        MVM_TARGET_PARAMS[0],
        MVM_TARGET_PARAMS[1],
        MVM_TARGET_PARAMS[2],
        p(
            "two_level_digital",
            Ty::Sym(Mvm::NAMES),
            "weight_grad",
            "Under a finite gain list, the MVM that `auto` keeps digital. [default: weight-gradient]",
        ),
        p(
            "adc_range",
            Ty::Ctor(RANGE_POLICIES),
            "mse",
            "How ADC gains are chosen (snapped to the allowed gains). [default]",
        ),
        p(
            "placement",
            Ty::Ctor(PLACEMENTS),
            "fixed",
            "Who decides where `auto` MVMs run: the fixed rule, or the compiler by modelled cost. [default]",
        ),
        p(
            "min_row_share",
            real(0.0, 1.0),
            "0.125",
            "An IMC MVM whose row-tiles drive less than this share of the array's rows gets warning W0006 \
             (0: never). [default: an MVM paying over 8x the calibrated energy per MAC]",
        ),
    ],
    sections: &[SectionSpec {
        name: "layer",
        labelled: true,
        doc: "Per-layer override: `layer fc3 { weight_grad = digital(f32); }`.",
        params: &[
            opt("forward", Ty::Ctor(TARGETS), "Target of this layer's forward MVM."),
            opt("backward", Ty::Ctor(TARGETS), "Target of this layer's backward MVM."),
            opt("weight_grad", Ty::Ctor(TARGETS), "Target of this layer's weight-gradient MVM."),
            opt("adc_range", Ty::Ctor(RANGE_POLICIES), "ADC range policy of this layer."),
        ],
    }],
};

// ---------------------------------------------------------------- network

/// The `network` block's parameters (its layers are declared with `name: op(args);`).
pub const NETWORK: BlockSpec = BlockSpec {
    kind: Kind::Network,
    doc: "A network: an input shape and layers `name: op(args) [from a, b];`, each reading the previous \
          layer unless `from` names its inputs.",
    params: &[req("input", Ty::Shape, "Input shape per sample: `[N]` or `[C, H, W]`.")],
    sections: &[],
};

/// Every layer operation.
pub const LAYERS: &[LayerSpec] = &[
    LayerSpec {
        op: "dense",
        has_mvm: true,
        doc: "Fully connected layer `z = W·a + b`.",
        args: &[
            req("out", int(1, 1 << 24), "Output features."),
            opt("in", int(1, 1 << 24), "Input features (inferred; checked when given)."),
            p("bias", Ty::Bool, "true", "Whether the layer has a bias."),
        ],
    },
    LayerSpec {
        op: "conv2d",
        has_mvm: true,
        doc: "2-D convolution, lowered with im2col (N_in = C_in·k·k).",
        args: &[
            req("out", int(1, 1 << 20), "Output channels."),
            p("kernel", int(1, 64), "3", "Kernel size k (k x k)."),
            p("stride", int(1, 64), "1", "Stride."),
            p("padding", int(0, 64), "0", "Zero padding on each side."),
            p("bias", Ty::Bool, "true", "Whether the layer has a bias."),
        ],
    },
    LayerSpec {
        op: "maxpool",
        has_mvm: false,
        doc: "Max pooling (padding never wins).",
        args: &[
            p("kernel", int(1, 64), "2", "Window size."),
            opt("stride", int(1, 64), "Stride (default: the window size)."),
            p("padding", int(0, 32), "0", "Padding on each side."),
        ],
    },
    LayerSpec {
        op: "avgpool",
        has_mvm: false,
        doc: "Average pooling (padding counts as zeros: the divisor is always kernel²).",
        args: &[
            p("kernel", int(1, 64), "2", "Window size."),
            opt("stride", int(1, 64), "Stride (default: the window size)."),
            p("padding", int(0, 32), "0", "Padding on each side."),
        ],
    },
    LayerSpec { op: "flatten", has_mvm: false, doc: "`[C, H, W]` to `[C·H·W]`.", args: &[] },
    LayerSpec { op: "relu", has_mvm: false, doc: "max(x, 0).", args: &[] },
    LayerSpec {
        op: "pact",
        has_mvm: false,
        doc: "PACT clip `clip(x, 0, alpha)` with learned alpha (quantized when the next MVM's activations are).",
        args: &[opt("alpha", pos_real(1e6), "Initial alpha (default: the quant policy's).")],
    },
    LayerSpec {
        op: "batchnorm",
        has_mvm: false,
        doc: "Batch normalization (kept in f32).",
        args: &[
            p("momentum", real(0.0, 1.0), "0.1", "Running-statistics momentum."),
            p("eps", pos_real(1.0), "0.00001", "Variance epsilon."),
        ],
    },
    LayerSpec { op: "add", has_mvm: false, doc: "Elementwise sum of two or more inputs (residual).", args: &[] },
    LayerSpec {
        op: "softmax_cross_entropy",
        has_mvm: false,
        doc: "Softmax and cross-entropy loss; must be last.",
        args: &[],
    },
];

/// The layer operation named `op`.
pub fn layer(op: &str) -> Option<&'static LayerSpec> {
    LAYERS.iter().find(|l| l.op == op)
}

// ---------------------------------------------------------------- train

const DATASETS: &[CtorSpec] = &[
    ctor(
        "digits",
        &[
            p(
                "test_fraction",
                Ty::Real { min: 0.0, min_open: true, max: 0.9, dim: Dim::None },
                "0.2",
                "Share of the 1797 samples held out for testing (a seeded shuffle picks them).",
            ),
            p("dir", Ty::Str, "\"data/digits\"", "Directory of `digits.csv.gz` (or `digits.csv`)."),
        ],
        "The 8x8 handwritten digits (UCI), 64 pixels, 10 classes.",
    ),
    ctor(
        "mnist",
        &[p("dir", Ty::Str, "\"data/mnist\"", "Directory of the four idx files (raw or gzip).")],
        "MNIST, 28x28 = 784 pixels, 10 classes.",
    ),
    ctor(
        "idx",
        &[
            req("dir", Ty::Str, "Directory with train-/t10k- images and labels idx files (raw or gzip)."),
            p("classes", int(2, 1 << 16), "10", "Number of classes."),
        ],
        "Any idx pair (Fashion-MNIST, ...).",
    ),
    ctor(
        "cifar10",
        &[p(
            "dir",
            Ty::Str,
            "\"data/cifar10\"",
            "Directory of the binary version's `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin` (raw or gzip).",
        )],
        "CIFAR-10, 3x32x32 = 3072 values per image, 10 classes (input `[3, 32, 32]`).",
    ),
];

const OPTIMIZERS: &[CtorSpec] = &[ctor(
    "sgd",
    &[
        p("lr", pos_real(100.0), "0.05", "Learning rate."),
        p("momentum", real(0.0, 0.9999), "0.9", "Momentum."),
        p("weight_decay", real(0.0, 1.0), "0.0001", "L2 weight decay."),
        p("nesterov", Ty::Bool, "false", "Nesterov momentum."),
    ],
    "SGD with momentum and weight decay, on f32 master weights.",
)];

const SCHEDULES: &[CtorSpec] = &[
    ctor("constant", &[], "The learning rate stays fixed."),
    ctor(
        "step",
        &[
            req("every", int(1, BIG), "Epochs between steps."),
            p("gamma", pos_real(1.0), "0.1", "Factor applied at each step."),
        ],
        "Multiply the learning rate by `gamma` every `every` epochs.",
    ),
    ctor(
        "cosine",
        &[p("min_lr", real(0.0, 100.0), "0", "Final learning rate.")],
        "Cosine decay to `min_lr` over the run.",
    ),
];

/// The `train` block.
pub const TRAIN: BlockSpec = BlockSpec {
    kind: Kind::Train,
    doc: "A training run. Several `train` blocks in one file are run and compared.",
    params: &[
        req("network", Ty::Ref(Kind::Network), "The network to train."),
        opt("quant", Ty::Ref(Kind::Quant), "The quantization policy (default: every `quant` default)."),
        opt("mapping", Ty::Ref(Kind::Mapping), "The mapping policy (default: every `mapping` default)."),
        opt("hardware", Ty::Ref(Kind::Hardware), "The chip (default: every `hardware` default, the 16 nm chip)."),
        req("data", Ty::Ctor(DATASETS), "The data set."),
        p("epochs", int(1, 1_000_000), "1", "Training epochs."),
        p("batch", int(1, 1 << 16), "64", "Mini-batch size."),
        p("optimizer", Ty::Ctor(OPTIMIZERS), "sgd", "The optimizer. [default: master weights f32, update digital]"),
        p("schedule", Ty::Ctor(SCHEDULES), "constant", "The learning-rate schedule."),
        p("seed", int(0, BIG), "1", "Seed of initialization, shuffling and noise."),
        p("eval_every", int(1, BIG), "1", "Evaluate on the test set every this many epochs (and after the last)."),
        p("reference", Ty::Bool, "false", "Run the f32 reference instead: no quantization, no IMC."),
        opt("limit", int(1, BIG), "Train on at most this many samples per epoch (default: the whole training set)."),
    ],
    sections: &[],
};

/// The parameter `key` of a `kind` block (`noise.sigma_lsb` for a section's parameter).
pub fn param(kind: Kind, key: &str) -> Option<&'static ParamSpec> {
    let spec = block(kind);
    match key.split_once('.') {
        None => spec.params.iter().find(|p| p.name == key),
        Some((section, name)) => {
            spec.sections.iter().find(|s| s.name == section)?.params.iter().find(|p| p.name == name)
        }
    }
}

/// Checks a number given on the command line for parameter `key` of a `kind` block with the
/// same rule the file's value gets (one check, one message).
pub fn check_override(kind: Kind, key: &str, v: f64) -> Result<(), String> {
    let spec = param(kind, key).ok_or_else(|| format!("no parameter `{key}` in a `{}` block", kind.keyword()))?;
    let checked = match spec.ty {
        Ty::Int { min, max, .. } if v.fract() == 0.0 && v >= min as f64 && v <= max as f64 => Ok(()),
        Ty::Int { .. } => Err(spec.ty.describe()),
        _ => spec.ty.check_real(v),
    };
    checked.map_err(|range| format!("`{key}` is out of range: expected {range}, found {v}"))
}

/// The vocabulary of a block kind.
pub fn block(kind: Kind) -> &'static BlockSpec {
    match kind {
        Kind::Hardware => &HARDWARE,
        Kind::Quant => &QUANT,
        Kind::Network => &NETWORK,
        Kind::Mapping => &MAPPING,
        Kind::Train => &TRAIN,
    }
}

/// The operand role whose formats include `name`, for "format not valid in this role" errors.
pub fn format_role(name: &str) -> Option<&'static str> {
    [("weights", WEIGHT_FORMATS), ("activations", ACTIVATION_FORMATS), ("errors", ERROR_FORMATS)]
        .into_iter()
        .find(|(_, list)| list.iter().any(|c| c.name == name))
        .map(|(role, _)| role)
}

/// Whether `ctors` is one of the operand-format lists.
pub fn is_format_list(ctors: &[CtorSpec]) -> bool {
    // By names, not addresses: constants have no guaranteed unique address (release builds
    // may merge or duplicate them).
    let names = |l: &[CtorSpec]| l.iter().map(|c| c.name).collect::<Vec<_>>();
    [WEIGHT_FORMATS, ACTIVATION_FORMATS, ERROR_FORMATS].iter().any(|l| names(l) == names(ctors))
}
