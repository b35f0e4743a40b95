//! The energy of what the executor ran: the simulator's event counts priced with the cost
//! model's constants. The model itself (the ledger, the estimate from the IR's shapes, the
//! digital baselines) lives in `imcc-cost` and is re-exported here.

pub use imcc_cost::energy::*;

use crate::config::Target;
use crate::ir::Step;
use crate::sim::Events;
use serde::{Deserialize, Serialize};

/// Energy-relevant counts of one MVM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MvmCounts {
    /// Simulator events (IMC).
    pub events: Events,
    /// Digital multiply-accumulates.
    pub digital_macs: u64,
    /// Calls.
    pub calls: u64,
}

/// The measured energy of `steps` training steps from the executor's counts, per step: empty
/// planes the simulator skipped cost nothing, so this equals [`estimate`] when none is skipped.
pub fn measured(step: &Step, counts: &[MvmCounts], steps: u64) -> Ledger {
    let hw = &step.hardware;
    let per = 1.0 / steps.max(1) as f64;
    let mut l = Ledger::default();
    for (m, c) in step.mvms.iter().zip(counts) {
        match m.target {
            Some(Target::Imc) => {
                let ev = &c.events;
                let events = [ev.conversions as f64 * per, ev.column_evals as f64 * per, ev.shift_adds as f64 * per];
                imc_mvm(
                    &mut l,
                    hw,
                    step,
                    m,
                    events,
                    m.macs() as f64 * c.calls as f64 * per,
                    ev.bits_written as f64 * per,
                );
            }
            Some(Target::Digital(p)) => digital_mvm(&mut l, hw, step, m, p, c.digital_macs as f64 * per),
            None => {}
        }
    }
    remainder(&mut l, step);
    l
}
