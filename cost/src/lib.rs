//! The cost model of imcc: what one training step of a mapped [`imcc_ir::Step`] costs on its
//! chip, in energy ([`energy`]) and time ([`time`]), counted from the IR's events and priced
//! with the hardware block's constants. Analytical, as Timeloop and CiMLoop are: no simulation,
//! so the compiler can price a placement before anything runs (`spec/energy.md`).
//!
//! It depends on the IR alone: the compiler uses it to choose placements by cost, the runtime
//! to price what the simulator counted, the command line to report.

#![warn(missing_docs)]

pub mod energy;
pub mod time;

use imcc_ir::config::{Objective, Target};
use imcc_ir::{MvmOp, Step};
use serde::Serialize;

/// How much of its arrays an IMC MVM uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Utilization {
    /// Rows its row-tiles drive, of the rows they have (`reduction / (row_tiles · rows)`).
    pub rows: f64,
    /// Columns its stored matrix fills, of the column-tiles' columns.
    pub cols: f64,
    /// Cores its tiles occupy at once.
    pub cores: u32,
}

/// The array utilization of an IMC MVM (`None` for a digital one).
pub fn utilization(step: &Step, m: &MvmOp) -> Option<Utilization> {
    let t = m.tiling.as_ref()?;
    let hw = &step.hardware;
    Some(Utilization {
        rows: m.reduction as f64 / (t.row_tiles as f64 * hw.rows as f64),
        cols: (m.outputs as f64 * t.bits as f64) / (t.col_tiles as f64 * hw.cols as f64),
        cores: (t.row_tiles * t.col_tiles).min(hw.cores),
    })
}

/// The modelled cost of one MVM per training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvmCost {
    /// The layer.
    pub layer: String,
    /// The MVM kind (`forward`, `backward`, `weight_grad`).
    pub mvm: String,
    /// Where it runs.
    pub target: Option<Target>,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Joules.
    pub joules: f64,
    /// Seconds.
    pub seconds: f64,
    /// Array use (IMC only).
    pub utilization: Option<Utilization>,
}

impl MvmCost {
    /// Operations per second it achieves (two per MAC).
    pub fn ops_per_second(&self) -> f64 {
        if self.seconds > 0.0 { 2.0 * self.macs as f64 / self.seconds } else { 0.0 }
    }

    /// Operations per joule (TOPS/W is this over 1e12).
    pub fn ops_per_joule(&self) -> f64 {
        if self.joules > 0.0 { 2.0 * self.macs as f64 / self.joules } else { 0.0 }
    }
}

/// The modelled cost of one training step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCost {
    /// Per MVM, in the step's order.
    pub mvms: Vec<MvmCost>,
    /// The energy ledger.
    pub energy: energy::Ledger,
    /// The time ledger.
    pub time: time::TimeLedger,
}

impl StepCost {
    /// The cost of `step` as lowered.
    pub fn of(step: &Step) -> StepCost {
        let (energy, time) = (energy::estimate(step), time::estimate(step));
        let mvms = step
            .mvms
            .iter()
            .map(|m| {
                let (layer, kind) = (step.layers[m.layer.index()].name.clone(), m.kind.key());
                MvmCost {
                    joules: energy
                        .rows
                        .iter()
                        .filter(|r| r.layer == layer && r.mvm == kind)
                        .fold(0.0, |a, r| a + r.joules),
                    seconds: time.entry(&layer, kind),
                    mvm: kind.to_string(),
                    layer,
                    target: m.target,
                    macs: m.macs(),
                    utilization: utilization(step, m),
                }
            })
            .collect();
        StepCost { mvms, energy, time }
    }

    /// Joules per step.
    pub fn joules(&self) -> f64 {
        self.energy.total()
    }

    /// Seconds per step.
    pub fn seconds(&self) -> f64 {
        self.time.total()
    }

    /// The energy-delay product of a step, in joule-seconds.
    pub fn edp(&self) -> f64 {
        self.joules() * self.seconds()
    }

    /// The value `objective` minimizes.
    pub fn objective(&self, objective: Objective) -> f64 {
        match objective {
            Objective::Energy => self.joules(),
            Objective::Time => self.seconds(),
            Objective::Edp => self.edp(),
        }
    }
}
