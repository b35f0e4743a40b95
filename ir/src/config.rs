//! Plain parameter structs of the hardware and the number formats.
//!
//! The compiler fills these from a checked `.imc` program; the runtime's numerics and tile
//! simulator take them as they are. They hold no defaults: every default is a documented
//! parameter of the language (the compiler's schema), so it exists in exactly one place.

use serde::Serialize;

/// An enum whose variants have names in the language (`two_pass`, `bit_products`). The
/// schema lists exactly [`Named::NAMES`] as the accepted symbols, and the checker converts a
/// checked symbol with [`Named::from_name`]: renaming a variant's name changes both at once, so
/// the two can never disagree and no misspelt comparison can silently pick a default.
pub trait Named: Sized + Copy + 'static {
    /// Every variant's name, in declaration order.
    const NAMES: &'static [&'static str];
    /// Every variant, in the order of [`Named::NAMES`].
    const VARIANTS: &'static [Self];
    /// The variant called `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| Self::VARIANTS[i])
    }
    /// The variant's name.
    fn name(self) -> &'static str;
}

/// Implements [`Named`] for a fieldless enum: `named!(SignMode { TwoPass = "two_pass", ... })`.
macro_rules! named {
    ($t:ident { $($v:ident = $n:literal),+ $(,)? }) => {
        impl Named for $t {
            const NAMES: &'static [&'static str] = &[$($n),+];
            const VARIANTS: &'static [Self] = &[$($t::$v),+];
            fn name(self) -> &'static str {
                match self { $($t::$v => $n),+ }
            }
        }
    };
}

named!(SignMode { TwoPass = "two_pass", Signed = "signed" });
named!(AdcZero { Unsigned = "unsigned", Signed = "signed", Differential = "differential" });
named!(NoiseScaling { PhysicalRows = "physical_rows", DrivenRows = "driven_rows" });
named!(EnergyAccounting { Conversions = "conversions", BitProducts = "bit_products" });
named!(Phase { Even = "even", Odd = "odd" });
named!(GradScaleMode { Current = "current", Incremental = "incremental", Off = "off" });
named!(Precision { Int4 = "int4", Int8 = "int8", Fp16 = "fp16", F32 = "f32" });
named!(Mvm { Forward = "forward", Backward = "backward", WeightGrad = "weight_grad" });
named!(Objective { Energy = "energy", Time = "time", Edp = "edp" });

/// An IMC chip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareConfig {
    /// Physical rows of one array.
    pub rows: u32,
    /// Physical columns of one array.
    pub cols: u32,
    /// Number of arrays (cores).
    pub cores: u32,
    /// How inputs are applied.
    pub input: InputMode,
    /// How signed inputs are applied.
    pub signs: SignMode,
    /// Whether empty input planes are skipped.
    pub skip_empty_planes: bool,
    /// The column ADC.
    pub adc: AdcConfig,
    /// Analog non-idealities.
    pub noise: NoiseConfig,
    /// IMC energy constants (joules).
    pub energy: ImcEnergy,
    /// Digital energy constants (joules, at 45 nm before `node_scale`).
    pub digital: DigitalEnergy,
    /// Time constants (seconds, bits and operations per second).
    pub timing: Timing,
}

/// The time constants of the cost model (`spec/energy.md`): the array's plane cycle, the
/// chip's bandwidths and the digital throughputs. Rates count operations the field's way, two
/// per multiply-accumulate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// Driving one input plane onto the rows and settling the column charge, in seconds.
    pub evaluate: f64,
    /// One ADC conversion, in seconds.
    pub conversion: f64,
    /// Columns that share one ADC (conversions per ADC per plane cycle, at most).
    pub columns_per_adc: u32,
    /// Extra settling of a multi-level DAC cycle over a binary one, in seconds.
    pub dac_settle: f64,
    /// Bits per second written into the arrays, the whole chip.
    pub write_bandwidth: f64,
    /// Bits per second of streamed operands moved to the rows, the whole chip.
    pub input_bandwidth: f64,
    /// Digital operations per second at 4-bit formats.
    pub int4_ops: f64,
    /// Digital operations per second at INT8.
    pub int8_ops: f64,
    /// Digital operations per second at FP16.
    pub fp16_ops: f64,
    /// Digital operations per second at FP32.
    pub f32_ops: f64,
    /// Operations per second of the digital remainder (two per element: a multiply-add).
    pub elementwise_ops: f64,
}

/// How MVM inputs are applied to the rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum InputMode {
    /// Binary planes: integer inputs bit by bit, radix-4 inputs as exponent planes.
    BitSerial,
    /// A multi-level row DAC of `bits` bits applying the radix-4 magnitudes `levels` in one cycle.
    Dac {
        /// DAC resolution.
        bits: u32,
        /// Magnitudes applied together.
        levels: Vec<f64>,
    },
}

/// How signed inputs are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SignMode {
    /// A positive and a negative pass.
    TwoPass,
    /// A signed row drive.
    Signed,
}

/// The per-column ADC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdcConfig {
    /// Resolution B.
    pub bits: u32,
    /// Which range gains exist.
    pub adaptability: Adaptability,
    /// Zero handling.
    pub zero: AdcZero,
}

/// ADC range adaptability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Adaptability {
    /// Any gain, per MVM and plane.
    Full,
    /// Only these gains (two entries: the paper's two-level adaptability).
    Gains(Vec<f64>),
}

/// ADC zero handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdcZero {
    /// Unsigned: negative noise clips at code 0.
    Unsigned,
    /// Signed around mid-rail.
    Signed,
    /// Differential (+-1) columns.
    Differential,
}

/// Analog non-idealities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseConfig {
    /// Noise per conversion in LSB at native range (sigma_LSB0).
    pub sigma_lsb: f64,
    /// What fixes the noise in unit counts.
    pub scaling: NoiseScaling,
    /// Sigma of the static per-column relative gain error.
    pub gain_mismatch: f64,
    /// Sigma of the relative per-level DAC error.
    pub dac_error: f64,
    /// Seed of the static mismatch pattern.
    pub chip_seed: u64,
}

/// What fixes the noise in unit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoiseScaling {
    /// The array's physical row count.
    PhysicalRows,
    /// The rows a row-tile drives.
    DrivenRows,
}

/// IMC energy constants, in joules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImcEnergy {
    /// Array energy of one column evaluation.
    pub column_eval: f64,
    /// One ADC conversion.
    pub adc_conversion: f64,
    /// One near-memory shift-and-add.
    pub shift_add: f64,
    /// Writing one bit into an array.
    pub array_write_bit: f64,
    /// Moving one operand bit.
    pub move_bit: f64,
    /// How MVM energy is counted.
    pub accounting: EnergyAccounting,
}

/// How IMC MVM energy is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EnergyAccounting {
    /// Per conversion actually performed.
    Conversions,
    /// Per 1b x 1b product at full array utilization.
    BitProducts,
}

/// Digital energy constants, in joules at 45 nm (multiply by `node_scale`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct DigitalEnergy {
    /// Factor from 45 nm to the chip's node.
    pub node_scale: f64,
    pub int4_add: f64,
    pub int4_mult: f64,
    pub int8_add: f64,
    pub int8_mult: f64,
    pub int32_add: f64,
    pub int32_mult: f64,
    pub fp16_add: f64,
    pub fp16_mult: f64,
    pub fp32_add: f64,
    pub fp32_mult: f64,
    pub sram_read_64b: f64,
    pub dram_access_64b: f64,
    /// Share of a digital MAC's operand bits fetched from SRAM.
    pub operand_sram_share: f64,
    /// DRAM bits per weight per step in the digital baseline.
    pub dram_bits_per_weight: f64,
}

/// A weight format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum WeightFormat {
    /// INT4 by SAWB with coefficients (c1, c2).
    Int4Sawb {
        /// c1.
        c1: f64,
        /// c2.
        c2: f64,
    },
    /// INT8, max-scaled.
    Int8,
    /// Unquantized.
    F32,
}

/// An activation format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ActivationFormat {
    /// INT4 by PACT.
    Int4Pact {
        /// Initial alpha.
        alpha: f64,
        /// L2 penalty on alpha.
        alpha_decay: f64,
    },
    /// INT8, max-scaled.
    Int8,
    /// Unquantized.
    F32,
}

/// An error (gradient) format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ErrorFormat {
    /// Radix-4 FP4.
    Radix4(Radix4Config),
    /// INT8, max-scaled.
    Int8,
    /// Unquantized.
    F32,
}

/// Radix-4 FP4 parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Radix4Config {
    /// Number of magnitudes below and including the top level.
    pub levels: u32,
    /// Two-phase rounding.
    pub tpr: bool,
    /// Phase feeding the backward MVM.
    pub backward: Phase,
    /// Phase feeding the weight-gradient MVM.
    pub weight_grad: Phase,
    /// GradScale timing.
    pub gradscale: GradScaleMode,
}

/// A radix-4 grid phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Powers 4^k.
    Even,
    /// 2·4^k.
    Odd,
}

/// GradScale timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GradScaleMode {
    /// Chosen from the current tensor.
    Current,
    /// One doubling or halving per iteration.
    Incremental,
    /// No scaling.
    Off,
}

/// The three training MVMs of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Mvm {
    /// `z = W·a`.
    Forward,
    /// `g = Wᵀ·δ`.
    Backward,
    /// `dW = δ·aᵀ`.
    WeightGrad,
}

impl Mvm {
    /// All three, in order.
    pub const ALL: [Mvm; 3] = [Mvm::Forward, Mvm::Backward, Mvm::WeightGrad];

    /// The language's key for it.
    pub fn key(self) -> &'static str {
        self.name()
    }
}

/// What a placement by cost minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Joules per training step.
    Energy,
    /// Seconds per training step.
    Time,
    /// Their product, the energy-delay product.
    Edp,
}

/// Digital MAC precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Precision {
    /// 4-bit formats (int4 and radix-4 FP4).
    Int4,
    /// INT8.
    Int8,
    /// FP16.
    Fp16,
    /// FP32.
    F32,
}

/// Where an MVM runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    /// On the IMC arrays.
    Imc,
    /// On digital MAC units of this precision.
    Digital(Precision),
}

/// How ADC gains are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum RangePolicy {
    /// Minimise clipping plus rounding error from running statistics.
    Mse {
        /// Momentum of the statistics.
        momentum: f64,
    },
    /// Cover the running maximum.
    Max {
        /// Momentum of the statistics.
        momentum: f64,
    },
    /// Cover a percentile of |sum|.
    Percentile {
        /// The percentile.
        p: f64,
        /// Momentum of the statistics.
        momentum: f64,
    },
    /// One fixed gain.
    Fixed {
        /// The gain.
        gain: f64,
    },
}
