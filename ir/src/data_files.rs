//! The files of each data-set format, by name: the checker looks for them before a run (a
//! missing one is warning W0005), the runtime reads them. Each may also be gzip-compressed,
//! with `.gz` appended.

/// The 8x8 digits: 64 values and a label per line.
pub const DIGITS: &str = "digits.csv";

/// MNIST-style idx training images.
pub const IDX_TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// MNIST-style idx training labels.
pub const IDX_TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// MNIST-style idx test images.
pub const IDX_TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// MNIST-style idx test labels.
pub const IDX_TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// Every file of an idx directory (MNIST, Fashion-MNIST, ...).
pub const IDX: [&str; 4] = [IDX_TRAIN_IMAGES, IDX_TRAIN_LABELS, IDX_TEST_IMAGES, IDX_TEST_LABELS];

/// CIFAR-10's binary training batches, in order.
pub const CIFAR10_TRAIN: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// CIFAR-10's binary test batch.
pub const CIFAR10_TEST: &str = "test_batch.bin";
/// Every file of a CIFAR-10 directory.
pub const CIFAR10: [&str; 6] =
    [CIFAR10_TRAIN[0], CIFAR10_TRAIN[1], CIFAR10_TRAIN[2], CIFAR10_TRAIN[3], CIFAR10_TRAIN[4], CIFAR10_TEST];
