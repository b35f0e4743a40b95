//! The checked program: what the front end hands to lowering. Every name is resolved, every
//! default filled, every shape inferred; nothing here refers to syntax.

use crate::span::Span;
use imcc_ir::config::{ActivationFormat, ErrorFormat, HardwareConfig, WeightFormat};
pub use imcc_ir::config::{Mvm, Precision, RangePolicy, Target};
use serde::Serialize;

/// A checked compilation unit: the root file with its imports.
#[derive(Debug, Clone, Serialize)]
pub struct Program {
    /// Every `hardware` definition, by name.
    pub hardware: Vec<(String, HardwareConfig)>,
    /// Every `network` definition.
    pub networks: Vec<Network>,
    /// Every `train` block of the root file, in source order.
    pub trains: Vec<TrainRun>,
    /// Every `sweep` block of the root file, in source order.
    pub sweeps: Vec<Sweep>,
}

impl Program {
    /// Every run: the train blocks, then every point of every sweep.
    pub fn all_runs(&self) -> impl Iterator<Item = &TrainRun> {
        self.trains.iter().chain(self.sweeps.iter().flat_map(|s| s.points.iter().map(|p| &p.run)))
    }

    /// The note that names sweep point `run` (`at point 3 of sweep `noise`: seed = 2, ...`),
    /// when `run` is one.
    pub fn point_note(&self, run: &str) -> Option<String> {
        self.sweeps.iter().find_map(|s| {
            let p = s.points.iter().find(|p| p.run.name == run)?;
            let set: Vec<String> = s.axes.iter().zip(&p.values).map(|(k, v)| format!("{k} = {v}")).collect();
            Some(format!("at point {} of sweep `{}`: {}", p.index, s.name, set.join(", ")))
        })
    }
}

/// A checked `sweep` block: a grid of train runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// Its name.
    pub name: String,
    /// The swept parameters, as dotted keys in the order written (`train`, `seed`,
    /// `hardware.noise.sigma_lsb`).
    pub axes: Vec<String>,
    /// Every point, in grid order (the first axis varies slowest).
    pub points: Vec<SweepPoint>,
}

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Its index in the grid.
    pub index: usize,
    /// Each axis's value at this point, as written in the file (one per [`Sweep::axes`]).
    pub values: Vec<String>,
    /// The checked run (named `SWEEP[index]`).
    pub run: TrainRun,
}

/// A network with inferred shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Input shape per sample.
    pub input: Vec<usize>,
    /// Layers in declaration order (a topological order: `from` only names earlier layers).
    pub layers: Vec<Layer>,
}

/// Index of a layer in [`Network::layers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LayerId(pub u32);

/// One layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// Its name.
    pub name: String,
    /// What it computes.
    pub op: LayerOp,
    /// Its inputs; `None` is the network input.
    pub inputs: Vec<Option<LayerId>>,
    /// Shape of its (first) input.
    pub in_shape: Vec<usize>,
    /// Shape of its output.
    pub out_shape: Vec<usize>,
    /// Where it was declared.
    #[serde(skip)]
    pub span: Span,
}

/// A layer operation with its arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LayerOp {
    /// `z = W·a + b`.
    Dense {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// 2-D convolution.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// Max pooling.
    MaxPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// Average pooling.
    AvgPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// `[C, H, W]` to `[C·H·W]`.
    Flatten,
    /// ReLU.
    Relu,
    /// PACT clip.
    Pact {
        /// Initial alpha, if set on the layer.
        alpha: Option<f64>,
    },
    /// Batch normalization.
    BatchNorm {
        /// Momentum.
        momentum: f64,
        /// Epsilon.
        eps: f64,
    },
    /// Elementwise sum.
    Add,
    /// Softmax cross-entropy loss.
    SoftmaxCrossEntropy,
}

impl LayerOp {
    /// Whether the layer has weights, and hence the three training MVMs.
    pub fn has_mvm(&self) -> bool {
        matches!(self, LayerOp::Dense { .. } | LayerOp::Conv2d { .. })
    }
}

/// The resolved plan of one MVM layer in one training run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvmLayerPlan {
    /// The layer.
    pub layer: LayerId,
    /// Weight format.
    pub weights: WeightFormat,
    /// Format of the input activations.
    pub activations: ActivationFormat,
    /// Format of the output errors.
    pub errors: ErrorFormat,
    /// Targets of the forward, backward and weight-gradient MVMs.
    pub targets: [Target; 3],
    /// Per MVM, whether the compiler may choose its target (the mapping says `auto` and its
    /// operands are quantized): then the digital precision it would run at instead of IMC.
    pub free: [Option<Precision>; 3],
    /// ADC range policy.
    pub adc_range: RangePolicy,
}

/// Who decides where the `auto` MVMs run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Placement {
    /// The fixed rule: IMC, except the `two_level_digital` MVM under a two-level ADC.
    Fixed,
    /// The compiler, minimizing the modelled step.
    Cost(imcc_ir::config::Objective),
}

/// The chip's rules and the mapping's choices that placement works within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlacementPlan {
    /// Who decides.
    pub placement: Placement,
    /// At most this many of a layer's MVMs on IMC (the ADC's range settings, up to 3).
    pub max_imc: usize,
    /// The MVM the fixed two-level rule keeps digital.
    pub two_level_digital: Mvm,
    /// Warn (W0006) when an IMC MVM drives less than this share of the rows.
    pub min_row_share: f64,
}

/// A data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DataSet {
    /// The 8x8 digits, with this share held out.
    Digits {
        /// Test share.
        test_fraction: f64,
        /// Directory.
        dir: String,
    },
    /// MNIST from this directory.
    Mnist {
        /// Directory.
        dir: String,
    },
    /// Any idx pair.
    Idx {
        /// Directory.
        dir: String,
        /// Classes.
        classes: usize,
    },
    /// CIFAR-10's binary version from this directory.
    Cifar10 {
        /// Directory.
        dir: String,
    },
}

impl DataSet {
    /// The directory it is read from.
    pub fn dir(&self) -> &str {
        match self {
            DataSet::Digits { dir, .. }
            | DataSet::Mnist { dir }
            | DataSet::Idx { dir, .. }
            | DataSet::Cifar10 { dir } => dir,
        }
    }

    /// The same data set read from `dir`.
    pub fn with_dir(mut self, new: String) -> DataSet {
        match &mut self {
            DataSet::Digits { dir, .. }
            | DataSet::Mnist { dir }
            | DataSet::Idx { dir, .. }
            | DataSet::Cifar10 { dir } => *dir = new,
        }
        self
    }

    /// Whether the directory is the schema's default (`data/digits`, `data/mnist`).
    pub fn is_default_dir(&self) -> bool {
        match self {
            DataSet::Digits { dir, .. } => dir == "data/digits",
            DataSet::Mnist { dir } => dir == "data/mnist",
            DataSet::Cifar10 { dir } => dir == "data/cifar10",
            DataSet::Idx { .. } => false,
        }
    }

    /// The files the directory must hold, each raw or with `.gz` appended.
    pub fn files(&self) -> &'static [&'static str] {
        use imcc_ir::data_files as f;
        match self {
            DataSet::Digits { .. } => &[f::DIGITS],
            DataSet::Mnist { .. } | DataSet::Idx { .. } => &f::IDX,
            DataSet::Cifar10 { .. } => &f::CIFAR10,
        }
    }

    /// Pixels per sample and number of classes, where known before reading the data.
    pub fn shape(&self) -> Option<(usize, usize)> {
        match self {
            DataSet::Digits { .. } => Some((64, 10)),
            DataSet::Mnist { .. } => Some((784, 10)),
            DataSet::Cifar10 { .. } => Some((3072, 10)),
            DataSet::Idx { .. } => None,
        }
    }
}

/// The optimizer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// The learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Schedule {
    /// Fixed.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between steps.
        every: u64,
        /// Factor.
        gamma: f64,
    },
    /// Cosine decay to `min_lr`.
    Cosine {
        /// Final rate.
        min_lr: f64,
    },
}

/// A checked `train` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainRun {
    /// Its name.
    pub name: String,
    /// The network (by name in [`Program::networks`]).
    pub network: String,
    /// The quant policy's name (`None`: all defaults).
    pub quant: Option<String>,
    /// The mapping policy's name (`None`: all defaults).
    pub mapping: Option<String>,
    /// The hardware's name (`None`: all defaults).
    pub hardware_name: Option<String>,
    /// The chip.
    pub hardware: HardwareConfig,
    /// Per MVM layer: formats and targets.
    pub layers: Vec<MvmLayerPlan>,
    /// How targets are placed.
    pub placement: PlacementPlan,
    /// Accumulation precision of MVM outputs.
    pub accumulate: Precision,
    /// Data set.
    pub data: DataSet,
    /// Epochs.
    pub epochs: u64,
    /// Mini-batch size.
    pub batch: usize,
    /// Optimizer.
    pub optimizer: Sgd,
    /// Schedule.
    pub schedule: Schedule,
    /// Seed.
    pub seed: u64,
    /// Evaluation cadence in epochs.
    pub eval_every: u64,
    /// Whether this is the f32 reference run.
    pub reference: bool,
    /// At most this many training samples per epoch (`None`: all of them).
    pub limit: Option<usize>,
}
