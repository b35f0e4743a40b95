//! The lowering passes, as one typed list.

use serde::Serialize;
use std::fmt;

/// The lowering passes, in pipeline order: the one list that the pipeline runs, the verifier
/// consults (which fields must be set after which pass) and `imcc lower --after` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Layers to nodes, values and the three MVMs of each weighted layer.
    Build,
    /// Operand formats from the quantization policy.
    Formats,
    /// Each MVM's target from the mapping policy.
    Partition,
    /// Row- and column-tiles of every IMC MVM.
    Tile,
    /// Tiles onto cores.
    AllocateCores,
    /// Input planes and sign passes.
    SchedulePlanes,
    /// ADC range policies and starting gains.
    AssignAdc,
    /// Fusion groups of the digital remainder.
    Fuse,
}

impl Pass {
    /// Every pass, in order.
    pub const ALL: [Pass; 8] = [
        Pass::Build,
        Pass::Formats,
        Pass::Partition,
        Pass::Tile,
        Pass::AllocateCores,
        Pass::SchedulePlanes,
        Pass::AssignAdc,
        Pass::Fuse,
    ];

    /// The pass's name (`allocate_cores`).
    pub fn name(self) -> &'static str {
        match self {
            Pass::Build => "build",
            Pass::Formats => "formats",
            Pass::Partition => "partition",
            Pass::Tile => "tile",
            Pass::AllocateCores => "allocate_cores",
            Pass::SchedulePlanes => "schedule_planes",
            Pass::AssignAdc => "assign_adc",
            Pass::Fuse => "fuse",
        }
    }

    /// The pass named `name`.
    pub fn parse(name: &str) -> Option<Pass> {
        Pass::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
