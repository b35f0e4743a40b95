//! The time model: seconds of one training step per layer, MVM kind and part, counted from the
//! lowered IR's events as Timeloop and CiMLoop count (analytical, not cycle-accurate), priced
//! with the hardware block's `timing` constants. `spec/energy.md` states the rules:
//!
//! - An IMC MVM runs `vectors · planes · passes` plane cycles on every tile; its tiles run in
//!   parallel on separate cores, in `ceil(tiles / cores)` waves when they outnumber the cores.
//!   A plane cycle drives the rows and settles the columns (`evaluate`, plus `dac_settle` for a
//!   multi-level DAC cycle), then converts: `ceil(columns used / columns_per_adc)` conversions
//!   per ADC, one after another. Shift-and-add and the digital sum over row-tiles are pipelined
//!   behind the conversions.
//! - Streaming the inputs overlaps the cycles (double-buffered): an MVM takes the longer of its
//!   cycles and its input bits at `input_bandwidth`.
//! - Array writes (W and Wᵀ after every update, the batch's activations for the weight
//!   gradient) serialize with compute at `write_bandwidth`: an array being written computes
//!   nothing.
//! - Digital MVMs run at their precision's rate, the remainder at `elementwise_ops` (two
//!   operations per element, the multiply-add the energy model prices).
//! - MVMs and the remainder run one after another: a training step is a chain of dependent
//!   operations, and the model overlaps none of them (an upper bound on the step's time).

use crate::energy::{input_bits, remainder_elements, stored_bits};
use imcc_ir::config::{HardwareConfig, InputMode, Precision, Target};
use imcc_ir::{MvmOp, Phase3, PlaneKind, Step};
use serde::Serialize;

/// What a time-ledger entry is spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Plane cycles of an IMC MVM.
    Cycles,
    /// Waiting for streamed inputs beyond the cycles (an input-bound IMC MVM).
    InputBound,
    /// Writing the arrays.
    ArrayWrites,
    /// Digital multiply-accumulates.
    DigitalMacs,
    /// The digital remainder.
    Elementwise,
}

impl Part {
    /// Every part, in report order.
    pub const ALL: [Part; 5] =
        [Part::Cycles, Part::InputBound, Part::ArrayWrites, Part::DigitalMacs, Part::Elementwise];

    /// Its name in reports (`cycles`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Cycles => "cycles",
            Part::InputBound => "input_bound",
            Part::ArrayWrites => "array_writes",
            Part::DigitalMacs => "digital_macs",
            Part::Elementwise => "elementwise",
        }
    }
}

/// One time-ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeRow {
    /// The layer (`step` for nodes of no layer).
    pub layer: String,
    /// The MVM kind, or `remainder`.
    pub mvm: String,
    /// What the time is spent on.
    pub part: Part,
    /// Seconds per training step.
    pub seconds: f64,
}

/// Time of one training step, itemized.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeLedger {
    /// Entries with non-zero time.
    pub rows: Vec<TimeRow>,
}

impl TimeLedger {
    fn add(&mut self, layer: &str, mvm: &str, part: Part, seconds: f64) {
        if seconds > 0.0 {
            self.rows.push(TimeRow { layer: layer.to_string(), mvm: mvm.to_string(), part, seconds });
        }
    }

    /// Seconds per step.
    pub fn total(&self) -> f64 {
        self.rows.iter().fold(0.0, |a, r| a + r.seconds)
    }

    /// Seconds per step of one MVM kind (or `remainder`).
    pub fn kind_total(&self, kind: &str) -> f64 {
        self.rows.iter().filter(|r| r.mvm == kind).fold(0.0, |a, r| a + r.seconds)
    }

    /// Seconds per step of one layer's MVM kind (or `remainder`).
    pub fn entry(&self, layer: &str, kind: &str) -> f64 {
        self.rows.iter().filter(|r| r.layer == layer && r.mvm == kind).fold(0.0, |a, r| a + r.seconds)
    }
}

/// Seconds of one plane cycle on `hw`: drive and settle, then the conversions each ADC makes
/// for `columns` used columns (adjacent from the first; an ADC serves `columns_per_adc`
/// adjacent columns), one after another.
pub fn plane_cycle(hw: &HardwareConfig, kind: &PlaneKind, columns: u32) -> f64 {
    let t = &hw.timing;
    let settle = if *kind == PlaneKind::DacCycles { t.dac_settle } else { 0.0 };
    let per_adc = columns.clamp(1, t.columns_per_adc.max(1));
    t.evaluate + settle + per_adc as f64 * t.conversion
}

/// The chip's peak at 8-b operations, in operations per second (two per MAC): every array full
/// of 8-b weights (8 columns each), 8-b inputs applied bit-serially in 8 plane cycles (two's
/// complement, one pass), as the chips' BPBS scheme runs them.
pub fn peak_ops_8b(hw: &HardwareConfig) -> f64 {
    let macs_per_core = hw.rows as f64 * (hw.cols / 8) as f64;
    let cycle = plane_cycle(hw, &PlaneKind::BitSerial, hw.cols);
    2.0 * macs_per_core * hw.cores as f64 / (8.0 * cycle)
}

/// Plane cycles per input vector and the cycle's seconds, of an IMC MVM.
fn cycles_per_vector(hw: &HardwareConfig, m: &MvmOp) -> Option<(f64, f64)> {
    let (t, p) = (m.tiling.as_ref()?, m.planes.as_ref()?);
    let tiles = (t.row_tiles * t.col_tiles) as u64;
    let waves = tiles.div_ceil(hw.cores.max(1) as u64);
    let columns = (m.outputs as u64 * t.bits as u64).min(hw.cols as u64) as u32;
    Some(((p.planes * p.passes) as f64 * waves as f64, plane_cycle(hw, &p.kind, columns)))
}

/// Seconds of an IMC MVM's cycles and of its input stream (which overlap), per step.
pub fn imc_compute(hw: &HardwareConfig, m: &MvmOp) -> (f64, f64) {
    let (cycles, cycle) = cycles_per_vector(hw, m).unwrap_or((0.0, 0.0));
    (m.vectors as f64 * cycles * cycle, input_bits(m) / hw.timing.input_bandwidth)
}

/// Digital operations per second at precision `p`.
pub fn digital_rate(hw: &HardwareConfig, p: Precision) -> f64 {
    let t = &hw.timing;
    match p {
        Precision::Int4 => t.int4_ops,
        Precision::Int8 => t.int8_ops,
        Precision::Fp16 => t.fp16_ops,
        Precision::F32 => t.f32_ops,
    }
}

fn add_mvm(l: &mut TimeLedger, step: &Step, m: &MvmOp, target: Target) {
    let hw = &step.hardware;
    let (layer, kind) = (&step.layers[m.layer.index()].name, m.kind.key());
    match target {
        Target::Imc => {
            let (cycles, input) = imc_compute(hw, m);
            l.add(layer, kind, Part::Cycles, cycles);
            l.add(layer, kind, Part::InputBound, (input - cycles).max(0.0));
            l.add(layer, kind, Part::ArrayWrites, stored_bits(m) / hw.timing.write_bandwidth);
        }
        Target::Digital(p) => l.add(layer, kind, Part::DigitalMacs, 2.0 * m.macs() as f64 / digital_rate(hw, p)),
    }
}

fn add_remainder(l: &mut TimeLedger, step: &Step, phase: Option<Phase3>) {
    let rate = step.hardware.timing.elementwise_ops;
    for (node, layer, elems) in remainder_elements(step) {
        if phase.is_none_or(|p| step.nodes[node].phase == p) {
            l.add(&layer, "remainder", Part::Elementwise, 2.0 * elems as f64 / rate);
        }
    }
}

/// The modelled time of one training step, from the IR (every input plane cycled).
pub fn estimate(step: &Step) -> TimeLedger {
    let mut l = TimeLedger::default();
    for m in &step.mvms {
        if let Some(t) = m.target {
            add_mvm(&mut l, step, m, t);
        }
    }
    add_remainder(&mut l, step, None);
    l
}

/// The same step with every MVM digital at `p` (same remainder).
pub fn baseline(step: &Step, p: Precision) -> TimeLedger {
    let mut l = TimeLedger::default();
    for m in &step.mvms {
        add_mvm(&mut l, step, m, Target::Digital(p));
    }
    add_remainder(&mut l, step, None);
    l
}

/// The modelled inference throughput of a step's network as mapped (forward MVMs and the
/// forward remainder only, at the step's batch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inference {
    /// Seconds per batch.
    pub seconds_per_batch: f64,
    /// Of which rewriting the tiles that do not fit.
    pub reload_seconds: f64,
    /// Samples per second.
    pub samples_per_second: f64,
    /// Forward tiles that stay on a core.
    pub resident_tiles: u64,
    /// Forward tiles rewritten for every batch.
    pub reloaded_tiles: u64,
}

/// Inference as the chip would run it: the forward tiles are written once and stay, in layer
/// order, while cores last; the rest are rewritten for every batch (their bits at
/// `write_bandwidth`). No Wᵀ copies, no weight-gradient operands, no update.
pub fn inference(step: &Step) -> Inference {
    let hw = &step.hardware;
    let mut l = TimeLedger::default();
    let (mut free, mut resident, mut reloaded, mut reload_bits) = (hw.cores as u64, 0u64, 0u64, 0.0);
    for m in step.mvms.iter().filter(|m| m.kind == imcc_ir::config::Mvm::Forward) {
        let Some(target) = m.target else { continue };
        let layer = &step.layers[m.layer.index()].name;
        match (target, &m.tiling) {
            (Target::Imc, Some(t)) => {
                let (cycles, input) = imc_compute(hw, m);
                l.add(layer, "forward", Part::Cycles, cycles);
                l.add(layer, "forward", Part::InputBound, (input - cycles).max(0.0));
                let tiles = (t.row_tiles * t.col_tiles) as u64;
                let kept = tiles.min(free);
                free -= kept;
                resident += kept;
                reloaded += tiles - kept;
                reload_bits += stored_bits(m) * (tiles - kept) as f64 / tiles as f64;
            }
            (t, _) => add_mvm(&mut l, step, m, t),
        }
    }
    add_remainder(&mut l, step, Some(Phase3::Forward));
    let reload_seconds = reload_bits / hw.timing.write_bandwidth;
    let seconds_per_batch = l.total() + reload_seconds;
    Inference {
        seconds_per_batch,
        reload_seconds,
        samples_per_second: step.batch as f64 / seconds_per_batch,
        resident_tiles: resident,
        reloaded_tiles: reloaded,
    }
}

/// Plane cycles a `bits`-bit input takes on `hw`'s DAC (bit-serial: `bits`) and the cycle
/// saving over binary planes, cycle times included: the model's answer to the 28 nm macro's
/// published 5x throughput over binary inputs.
pub fn dac_saving(hw: &HardwareConfig, bits: u32) -> Option<(u32, f64)> {
    let InputMode::Dac { bits: dac_bits, .. } = &hw.input else { return None };
    let cycles = bits.div_ceil(*dac_bits);
    let binary = bits as f64 * plane_cycle(hw, &PlaneKind::BitSerial, hw.cols);
    Some((cycles, binary / (cycles as f64 * plane_cycle(hw, &PlaneKind::DacCycles, hw.cols))))
}
