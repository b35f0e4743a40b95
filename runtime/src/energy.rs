//! Energy of measured events: the simulator's counts for IMC MVMs, MAC counts for digital ones,
//! priced with the hardware block's constants. (Issue 7's full ledger adds the digital
//! remainder and the baselines; this is what training reports as it runs.)

use crate::config::{HardwareConfig, Precision, Target};
use crate::exec::MvmCounts;
use serde::Serialize;

/// Energy by component, in joules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Breakdown {
    /// Array column evaluations.
    pub column_evals: f64,
    /// ADC conversions.
    pub adc: f64,
    /// Near-memory shift-and-add.
    pub shift_add: f64,
    /// Writing arrays (weights, Wᵀ copies, streamed activations).
    pub array_writes: f64,
    /// Moving input bits to the rows.
    pub operand_moves: f64,
    /// Digital MACs.
    pub digital_macs: f64,
    /// SRAM operand reads of digital MACs.
    pub sram: f64,
}

impl Breakdown {
    /// The sum.
    pub fn total(&self) -> f64 {
        self.column_evals
            + self.adc
            + self.shift_add
            + self.array_writes
            + self.operand_moves
            + self.digital_macs
            + self.sram
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &Breakdown) {
        self.column_evals += o.column_evals;
        self.adc += o.adc;
        self.shift_add += o.shift_add;
        self.array_writes += o.array_writes;
        self.operand_moves += o.operand_moves;
        self.digital_macs += o.digital_macs;
        self.sram += o.sram;
    }
}

/// Energy of one digital MAC at `p`, operand reads included, at the chip's node.
pub fn digital_mac(hw: &HardwareConfig, p: Precision) -> (f64, f64) {
    let d = &hw.digital;
    let mac = match p {
        Precision::Int4 => d.int4_mult + d.int4_add,
        Precision::Int8 => d.int8_mult + d.int8_add,
        Precision::Fp16 => d.fp16_mult + d.fp16_add,
        Precision::F32 => d.fp32_mult + d.fp32_add,
    };
    (mac * d.node_scale, d.sram_reads_per_mac * d.sram_read_64b * d.node_scale)
}

/// The energy of an MVM's counted events.
pub fn mvm_energy(hw: &HardwareConfig, target: Target, c: &MvmCounts) -> Breakdown {
    let e = &hw.energy;
    let ev = &c.events;
    let mut b = Breakdown {
        column_evals: ev.column_evals as f64 * e.column_eval,
        adc: ev.conversions as f64 * e.adc_conversion,
        shift_add: ev.shift_adds as f64 * e.shift_add,
        array_writes: ev.bits_written as f64 * e.array_write_bit,
        operand_moves: ev.input_bits as f64 * e.move_bit,
        ..Breakdown::default()
    };
    if let Target::Digital(p) = target {
        let (mac, sram) = digital_mac(hw, p);
        b.digital_macs = c.digital_macs as f64 * mac;
        b.sram = c.digital_macs as f64 * sram;
    }
    b
}
