//! What a session reports: per-epoch and per-run metrics (the metrics JSON of `imcc train`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One epoch's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Test accuracy, when evaluated.
    pub test_accuracy: Option<f64>,
    /// Training energy so far.
    pub energy_joules: f64,
}

/// A run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// The train block.
    pub name: String,
    /// The mapping policy (or `f32 reference`).
    pub policy: String,
    /// Per epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch.
    pub final_test_accuracy: f64,
    /// Training energy per training sample.
    pub energy_joules_per_sample: f64,
    /// Energy by MVM kind and component, in joules, over the run.
    #[serde(default)]
    pub energy_breakdown: BTreeMap<String, BTreeMap<String, f64>>,
    /// Training samples per second (wall clock, this machine; evaluation and checkpoint writes
    /// excluded).
    #[serde(default)]
    pub samples_per_second: f64,
    /// The ADC gain of each input plane of each IMC MVM in the last training step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub final_adc_gains: BTreeMap<String, Vec<f64>>,
    /// Energy by layer and MVM kind (`remainder` for the digital rest), in joules, over the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub energy_by_layer: BTreeMap<String, BTreeMap<String, f64>>,
    /// How each IMC MVM's ADCs used their range in the last training step, per input plane.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adc_use: Vec<imcc_runtime::exec::AdcUse>,
    /// Modelled chip time of one epoch's training steps, in seconds (the cost model's time of
    /// each step as lowered, `spec/energy.md`; not this machine's).
    #[serde(default)]
    pub chip_seconds_per_epoch: f64,
    /// Peak resident memory of the process so far, in bytes (Linux `VmHWM`; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
