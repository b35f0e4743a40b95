//! The example files, compiled into the tests (what the property tests mutate).

#![allow(dead_code)] // each test uses what it needs

/// The 16 nm chip the examples import (`hw/cimu16.imc`).
pub const CHIP: &str = include_str!("../../../examples/hw/cimu16.imc");

/// Every example, the networks first.
pub const EXAMPLES: [&str; 7] = [
    include_str!("../../../examples/digits_mlp.imc"),
    include_str!("../../../examples/mnist_mlp.imc"),
    include_str!("../../../examples/mnist_cnn.imc"),
    include_str!("../../../examples/noise_sweep.imc"),
    include_str!("../../../examples/hw/cimu16.imc"),
    include_str!("../../../examples/paper/cifar_cnn.imc"),
    include_str!("../../../examples/paper/resnet50.imc"),
];
