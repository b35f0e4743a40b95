//! The training state of an executor, for checkpoints: everything that changes during training,
//! keyed by stable names (parameters, MVMs and values as the IR names them), not by positions,
//! and checked against the step before anything is restored.

use super::policy::Running;
use super::{ExecError, Executor};
use crate::ir::Op;
use ndarray::{Array1, ArrayD};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything that changes during training: enough to resume bit-identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Training steps run.
    pub steps: u64,
    /// Master parameters by name (`fc1.w`), flattened.
    pub params: BTreeMap<String, Vec<f32>>,
    /// Momentum buffers by parameter name.
    pub velocity: BTreeMap<String, Vec<f32>>,
    /// Running ADC statistics per input plane, by MVM name (`fc1.forward`; IMC MVMs only).
    pub adc: BTreeMap<String, Vec<Running>>,
    /// GradScale (incremental mode) by the name of the errors quantized (`fc2.delta.bwd`).
    pub gradscale: BTreeMap<String, f32>,
    /// Batch-norm running mean and variance by the name of the normalized value.
    pub bn_running: BTreeMap<String, (Vec<f32>, Vec<f32>)>,
    /// `(clipped, conversions)` per input plane, by MVM name: the ADC clipping counted so far
    /// (a resumed run goes on counting; older checkpoints have none).
    #[serde(default)]
    pub adc_clips: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Executor {
    /// The name node `i`'s state is kept under: its first output's name.
    fn node_key(&self, i: usize) -> String {
        self.step.nodes[i].outputs.first().map_or_else(|| format!("n{i}"), |v| self.step.value(*v).name.clone())
    }

    /// The node whose state is kept under `key`, if it is a node for which `is` holds.
    fn node_of(&self, key: &str, is: impl Fn(&Op) -> bool) -> Option<usize> {
        (0..self.step.nodes.len()).find(|&i| is(&self.step.nodes[i].op) && self.node_key(i) == key)
    }

    /// The training state, for checkpoints.
    pub fn state(&self) -> TrainState {
        let by_param = |v: &[ArrayD<f32>]| -> BTreeMap<String, Vec<f32>> {
            self.step.params.iter().zip(v).map(|(p, a)| (p.name.clone(), a.iter().copied().collect())).collect()
        };
        TrainState {
            steps: self.steps,
            params: by_param(&self.params),
            velocity: by_param(&self.velocity),
            adc: self
                .step
                .mvms
                .iter()
                .zip(&self.adc)
                .filter(|(m, _)| m.planes.is_some())
                .map(|(m, r)| (m.name.clone(), r.clone()))
                .collect(),
            gradscale: self.gradscale.iter().map(|(&i, &s)| (self.node_key(i), s)).collect(),
            bn_running: self
                .bn_running
                .iter()
                .map(|(&i, (m, v))| (self.node_key(i), (m.to_vec(), v.to_vec())))
                .collect(),
            adc_clips: self
                .step
                .mvms
                .iter()
                .zip(&self.clip_counts)
                .filter(|(_, c)| !c.is_empty())
                .map(|(m, c)| (m.name.clone(), c.clone()))
                .collect(),
        }
    }

    /// Restores a checkpoint taken from an executor of the same step. Everything is checked
    /// against the step before anything changes: a checkpoint of another network, or a damaged
    /// one, is an error, never a panic later.
    pub fn restore(&mut self, s: &TrainState) -> Result<(), ExecError> {
        let (gradscale, bn_running) = self.check_state(s)?;
        for (i, p) in self.step.params.iter().enumerate() {
            let dim = self.params[i].raw_dim();
            let (w, v) = (s.params[&p.name].clone(), s.velocity[&p.name].clone());
            self.params[i] = ArrayD::from_shape_vec(dim.clone(), w).map_err(|e| ExecError::Invalid(e.to_string()))?;
            self.velocity[i] = ArrayD::from_shape_vec(dim, v).map_err(|e| ExecError::Invalid(e.to_string()))?;
        }
        for (m, r) in self.step.mvms.iter().zip(self.adc.iter_mut()) {
            if let Some(saved) = s.adc.get(&m.name) {
                r.clone_from(saved);
            }
        }
        for (m, c) in self.step.mvms.iter().zip(self.clip_counts.iter_mut()) {
            // Counts only: they never change training, so any shape restores.
            c.clone_from(s.adc_clips.get(&m.name).unwrap_or(&Vec::new()));
        }
        self.steps = s.steps;
        self.gradscale = gradscale;
        self.bn_running = bn_running;
        self.prime()?;
        // Programming the restored arrays is not a training event (the interrupted run counted
        // its own programming), and neither was the programming of the initial weights.
        self.take_counts();
        Ok(())
    }

    /// Checks that `s` fits this step ([`Executor::restore`]); returns its node-keyed state
    /// by node index.
    #[allow(clippy::type_complexity)]
    fn check_state(
        &self,
        s: &TrainState,
    ) -> Result<(BTreeMap<usize, f32>, BTreeMap<usize, (Array1<f32>, Array1<f32>)>), ExecError> {
        let bad = |what: String| ExecError::Invalid(format!("the checkpoint {what}"));
        for (what, saved) in [("parameters", &s.params), ("momentum buffers", &s.velocity)] {
            for (i, p) in self.step.params.iter().enumerate() {
                match saved.get(&p.name) {
                    None => return Err(bad(format!("has no `{}` among its {what}: it is of another network", p.name))),
                    Some(v) if v.len() != self.params[i].len() => {
                        return Err(bad(format!("'s `{}` has another shape", p.name)));
                    }
                    Some(_) => {}
                }
            }
            if let Some(k) = saved.keys().find(|k| !self.step.params.iter().any(|p| &p.name == *k)) {
                return Err(bad(format!("has `{k}` among its {what}, which this network does not")));
            }
        }
        if let Some(m) = self.step.mvms.iter().find(|m| m.planes.is_some() && !s.adc.contains_key(&m.name)) {
            return Err(bad(format!("has no ADC statistics for `{}`: it is of another mapping", m.name)));
        }
        for (name, saved) in &s.adc {
            let Some(m) = self.step.mvms.iter().position(|m| &m.name == name) else {
                return Err(bad(format!("has ADC statistics for `{name}`, which this step does not run on IMC")));
            };
            if saved.len() != self.adc[m].len() {
                let now = self.adc[m].len();
                return Err(bad(format!("has ADC statistics for {} planes of `{name}`, which has {now}", saved.len())));
            }
        }
        let mut gradscale = BTreeMap::new();
        for (key, &v) in &s.gradscale {
            let i = self
                .node_of(key, |op| matches!(op, Op::QuantizeErrors { .. }))
                .ok_or_else(|| bad(format!("has a GradScale for `{key}`, which no error quantizer writes")))?;
            gradscale.insert(i, v);
        }
        let mut bn = BTreeMap::new();
        for (key, (mean, var)) in &s.bn_running {
            let i = self
                .node_of(key, |op| matches!(op, Op::BatchNorm { .. }))
                .ok_or_else(|| bad(format!("has batch-norm statistics for `{key}`, which no batch norm writes")))?;
            let channels = match &self.step.nodes[i].op {
                Op::BatchNorm { gamma, .. } => self.params[gamma.index()].len(),
                _ => 0,
            };
            if mean.len() != channels || var.len() != channels {
                return Err(bad(format!(
                    "has batch-norm statistics of lengths {} and {} for {channels} channels",
                    mean.len(),
                    var.len()
                )));
            }
            bn.insert(i, (Array1::from(mean.clone()), Array1::from(var.clone())));
        }
        Ok((gradscale, bn))
    }
}
