//! The energy model: a ledger of one training step per layer, MVM kind and component, priced
//! with the hardware block's constants (`spec/energy.md` documents the model, the constants and
//! their sources).
//!
//! - IMC MVM: `column evaluations · E_col + conversions · E_adc + shift-adds · E_nmc +
//!   bits written · E_write + input bits moved · E_move`. The defaults split the 16 nm chip's
//!   calibrated 1.2 pJ per 1152-row column evaluation (30 TOPS/W at 8 b, about 1.04 fJ per
//!   1b-MAC) into array, ADC and near-memory parts.
//! - Digital MVM: `MACs · (E_mult + E_add)(precision) + SRAM operand traffic + DRAM traffic`,
//!   all at 45 nm times `node_scale`.
//! - Digital remainder (quantizers, activations, pooling, normalization, loss, update): one
//!   f32 multiply-add per element written, plus reading and writing each element (64 bits of
//!   SRAM traffic), times `node_scale`.
//!
//! [`estimate`] counts from the IR's shapes (every plane converted); the runtime prices the
//! simulator's event counts (empty planes skipped) with [`imc_mvm`] and [`digital_mvm`], so the
//! two agree when no plane is skipped.

use imcc_ir::config::{EnergyAccounting, HardwareConfig, Mvm, Precision, Target};
use imcc_ir::{Format, MvmOp, Op, Step, text};
use serde::Serialize;

/// What a ledger entry pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// Evaluating a column (IMC).
    ColumnEvals,
    /// ADC conversions (IMC).
    Adc,
    /// Near-memory shift-and-add of column codes (IMC).
    ShiftAdd,
    /// Writing the arrays (IMC).
    ArrayWrites,
    /// Moving input bits to the rows (IMC).
    OperandMoves,
    /// Digital multiply-accumulates.
    DigitalMacs,
    /// Operand SRAM reads of digital MVMs.
    Sram,
    /// Weight DRAM traffic of digital MVMs.
    Dram,
    /// The digital remainder's elementwise work.
    Elementwise,
}

impl Component {
    /// Every component, in report order.
    pub const ALL: [Component; 9] = [
        Component::ColumnEvals,
        Component::Adc,
        Component::ShiftAdd,
        Component::ArrayWrites,
        Component::OperandMoves,
        Component::DigitalMacs,
        Component::Sram,
        Component::Dram,
        Component::Elementwise,
    ];

    /// Its name in reports and metrics (`column_evals`).
    pub fn name(self) -> &'static str {
        match self {
            Component::ColumnEvals => "column_evals",
            Component::Adc => "adc",
            Component::ShiftAdd => "shift_add",
            Component::ArrayWrites => "array_writes",
            Component::OperandMoves => "operand_moves",
            Component::DigitalMacs => "digital_macs",
            Component::Sram => "sram",
            Component::Dram => "dram",
            Component::Elementwise => "elementwise",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name()) // honours width and alignment in report columns
    }
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The layer.
    pub layer: String,
    /// The MVM kind (`forward`, `backward`, `weight_grad`) or `remainder` for digital nodes.
    pub mvm: String,
    /// What it pays for.
    pub component: Component,
    /// Joules per training step.
    pub joules: f64,
}

/// Energy of one training step, itemized.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ledger {
    /// Entries with non-zero energy.
    pub rows: Vec<Row>,
}

impl Ledger {
    /// Adds an entry (entries of zero joules are left out).
    pub fn add(&mut self, layer: &str, mvm: &str, component: Component, joules: f64) {
        if joules != 0.0 {
            self.rows.push(Row { layer: layer.to_string(), mvm: mvm.to_string(), component, joules });
        }
    }

    /// Total joules per step.
    pub fn total(&self) -> f64 {
        self.rows.iter().fold(0.0, |a, r| a + r.joules)
    }

    /// Joules per step of the MVMs (everything but the digital remainder).
    pub fn mvm_total(&self) -> f64 {
        self.rows.iter().filter(|r| r.mvm != "remainder").fold(0.0, |a, r| a + r.joules)
    }

    /// Joules per step of one MVM kind (or `remainder`).
    pub fn kind_total(&self, kind: &str) -> f64 {
        self.rows.iter().filter(|r| r.mvm == kind).fold(0.0, |a, r| a + r.joules)
    }

    /// Joules per step of one component.
    pub fn component_total(&self, c: Component) -> f64 {
        self.rows.iter().filter(|r| r.component == c).fold(0.0, |a, r| a + r.joules)
    }

    /// Scales every entry (e.g. a sum over steps to a mean per step).
    pub fn scaled(mut self, f: f64) -> Ledger {
        for r in &mut self.rows {
            r.joules *= f;
        }
        self
    }
}

/// Bits of one element of a format ([`Format::bits`]).
pub fn format_bits(f: &Format) -> u64 {
    f.bits() as u64
}

/// Energy of one digital MAC at `precision`, without operand traffic, at the chip's node.
pub fn mac_energy(hw: &HardwareConfig, p: Precision) -> f64 {
    let d = &hw.digital;
    let e = match p {
        Precision::Int4 => d.int4_mult + d.int4_add,
        Precision::Int8 => d.int8_mult + d.int8_add,
        Precision::Fp16 => d.fp16_mult + d.fp16_add,
        Precision::F32 => d.fp32_mult + d.fp32_add,
    };
    e * d.node_scale
}

/// Operand bits of a digital MAC at `precision` with these formats (the wider of the format and
/// the precision's word for each operand).
fn operand_bits(p: Precision, a: &Format, b: &Format) -> u64 {
    let word = match p {
        Precision::Int4 => 4,
        Precision::Int8 => 8,
        Precision::Fp16 => 16,
        Precision::F32 => 32,
    };
    format_bits(a).max(word) + format_bits(b).max(word)
}

fn layer_name(step: &Step, m: &MvmOp) -> String {
    step.layers[m.layer.index()].name.clone()
}

/// Adds a digital MVM of `macs` MACs at `p` to the ledger.
pub fn digital_mvm(l: &mut Ledger, hw: &HardwareConfig, step: &Step, m: &MvmOp, p: Precision, macs: f64) {
    let d = &hw.digital;
    let (layer, kind) = (layer_name(step, m), m.kind.key());
    l.add(&layer, kind, Component::DigitalMacs, macs * mac_energy(hw, p));
    let bits = operand_bits(p, &m.stored, &m.streamed) as f64;
    l.add(&layer, kind, Component::Sram, macs * bits * d.operand_sram_share / 64.0 * d.sram_read_64b * d.node_scale);
    // DRAM: the weight matrix of forward/backward, per step.
    if m.kind != Mvm::WeightGrad && d.dram_bits_per_weight > 0.0 {
        let weights = (m.outputs * m.reduction) as f64 / 2.0; // forward and backward share W
        l.add(
            &layer,
            kind,
            Component::Dram,
            weights * d.dram_bits_per_weight / 64.0 * d.dram_access_64b * d.node_scale,
        );
    }
}

/// Bits moved to the rows per step: every element of every streamed vector.
pub fn input_bits(m: &MvmOp) -> f64 {
    (m.vectors * m.reduction) as f64 * format_bits(&m.streamed) as f64
}

/// Bits written per step: the stored matrix (W and Wᵀ after each update; the batch's
/// activations for the weight gradient).
pub fn stored_bits(m: &MvmOp) -> f64 {
    let bits = m.tiling.as_ref().map_or(4, |t| t.bits) as f64;
    (m.outputs * m.reduction) as f64 * bits
}

/// Conversion-related energy of an IMC MVM. `events` are the conversions, column evaluations
/// and shift-adds counted (estimated or measured); `macs` its MACs. Under bit-product
/// accounting every 1b x 1b product costs `(column_eval + adc_conversion + shift_add) / rows`,
/// as if every conversion filled a whole column (the calibration's 1.04 fJ per 1b-MAC).
pub fn imc_mvm(
    l: &mut Ledger,
    hw: &HardwareConfig,
    step: &Step,
    m: &MvmOp,
    events: [f64; 3],
    macs: f64,
    bits_written: f64,
) {
    let e = &hw.energy;
    let (layer, kind) = (layer_name(step, m), m.kind.key());
    let [conversions, column_evals, shift_adds] = match e.accounting {
        EnergyAccounting::Conversions => events,
        EnergyAccounting::BitProducts => {
            let bits = m.tiling.as_ref().map_or(4, |t| t.bits) as f64;
            [macs * format_bits(&m.streamed) as f64 * bits / hw.rows as f64; 3]
        }
    };
    l.add(&layer, kind, Component::ColumnEvals, column_evals * e.column_eval);
    l.add(&layer, kind, Component::Adc, conversions * e.adc_conversion);
    l.add(&layer, kind, Component::ShiftAdd, shift_adds * e.shift_add);
    l.add(&layer, kind, Component::ArrayWrites, bits_written * e.array_write_bit);
    l.add(&layer, kind, Component::OperandMoves, input_bits(m) * e.move_bit);
}

/// The digital remainder: one f32 multiply-add per element each node writes (per parameter
/// element for updates), plus reading and writing it.
pub fn remainder(l: &mut Ledger, step: &Step) {
    let d = &step.hardware.digital;
    let per_elem = (d.fp32_add + d.fp32_mult + d.sram_read_64b) * d.node_scale;
    for (_, layer, elems) in remainder_elements(step) {
        l.add(&layer, "remainder", Component::Elementwise, elems as f64 * per_elem);
    }
}

/// The elements the digital remainder writes, per node in order, with the node's index and
/// layer name (`step` for nodes of no layer): the count both the energy and the time model price.
pub fn remainder_elements(step: &Step) -> impl Iterator<Item = (usize, String, usize)> + '_ {
    step.nodes.iter().enumerate().filter_map(|(i, n)| {
        let elems: usize = match &n.op {
            Op::Mvm(_) | Op::WriteArrays { .. } => return None,
            Op::SgdUpdate { param } => step.params[param.index()].shape.iter().product(),
            Op::Grad(inner) if matches!(inner.as_ref(), Op::BiasAdd { .. }) => {
                n.inputs.iter().map(|v| step.value(*v).shape.iter().product::<usize>()).sum()
            }
            _ => n.outputs.iter().map(|v| step.value(*v).shape.iter().product::<usize>()).sum(),
        };
        let layer = n.layer.map_or("step".to_string(), |li| step.layers[li.index()].name.clone());
        Some((i, layer, elems))
    })
}

/// The estimated energy of one step, from the IR's shapes: every input plane converted.
pub fn estimate(step: &Step) -> Ledger {
    let hw = &step.hardware;
    let mut l = Ledger::default();
    for m in &step.mvms {
        match m.target {
            Some(Target::Imc) => {
                let c = text::max_conversions(m) as f64;
                imc_mvm(&mut l, hw, step, m, [c; 3], m.macs() as f64, stored_bits(m));
            }
            Some(Target::Digital(p)) => digital_mvm(&mut l, hw, step, m, p, m.macs() as f64),
            None => {}
        }
    }
    remainder(&mut l, step);
    l
}

/// The baseline: the same step with every MVM digital at `p` (same remainder).
pub fn baseline(step: &Step, p: Precision) -> Ledger {
    let mut l = Ledger::default();
    for m in &step.mvms {
        digital_mvm(&mut l, &step.hardware, step, m, p, m.macs() as f64);
    }
    remainder(&mut l, step);
    l
}
