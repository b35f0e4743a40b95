//! Data sets: idx files (raw or gzip; MNIST, Fashion-MNIST or any idx pair) and the 8x8 digits
//! CSV, normalized to [0, 1], with seeded shuffling. A missing, truncated or corrupt file is a
//! [`DataError`] naming the file and the problem.

use imcc_ir::data_files as files;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A data set problem, with the file it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    /// The file (or directory).
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for DataError {}

fn err(path: &Path, message: impl Into<String>) -> DataError {
    DataError { path: path.to_path_buf(), message: message.into() }
}

/// Training and test samples, pixels normalized to [0, 1].
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Training inputs, one sample per row.
    pub train_x: Array2<f32>,
    /// Training labels.
    pub train_y: Vec<u8>,
    /// Test inputs.
    pub test_x: Array2<f32>,
    /// Test labels.
    pub test_y: Vec<u8>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Pixels per sample.
    pub fn features(&self) -> usize {
        self.train_x.ncols()
    }

    /// A 64-bit fingerprint of the samples, their labels and how they are split into training
    /// and test sets, in order. A checkpoint records it so that a resume cannot silently train
    /// on other data, or on a re-split that moves former training samples into the test set.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a over 64-bit words (stable across platforms and releases, unlike `std`'s
        // hasher), in four interleaved lanes so the multiplications do not wait on each other.
        fn feed(h: &mut u64, word: u64) {
            *h ^= word;
            *h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        let mut lanes = [0xCBF2_9CE4_8422_2325u64, 1, 2, 3];
        for (x, y) in [(&self.train_x, &self.train_y), (&self.test_x, &self.test_y)] {
            feed(&mut lanes[0], x.nrows() as u64);
            feed(&mut lanes[1], x.ncols() as u64);
            let x = x.as_standard_layout();
            let values = x.as_slice().expect("standard layout is contiguous");
            let mut quads = values.chunks_exact(4);
            for q in &mut quads {
                for (lane, v) in lanes.iter_mut().zip(q) {
                    feed(lane, v.to_bits() as u64);
                }
            }
            for v in quads.remainder() {
                feed(&mut lanes[0], v.to_bits() as u64);
            }
            for &l in y {
                feed(&mut lanes[2], l as u64);
            }
        }
        let mut h = lanes[0];
        for &l in &lanes[1..] {
            feed(&mut h, l);
        }
        feed(&mut h, self.classes as u64);
        h
    }
}

/// Reads a file, un-gzipping when it is gzip (by magic bytes).
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| {
        err(path, if e.kind() == std::io::ErrorKind::NotFound { "no such file".to_string() } else { e.to_string() })
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // Multi-member: concatenated gzip files are one valid stream (`cat a.gz b.gz`); bytes
        // after the last member that are not another member are an error, not ignored.
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| err(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// An idx file: its dimensions and its unsigned-byte payload.
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 4 {
        return Err(err(path, format!("truncated: {} bytes, no idx header", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(path, "not an idx file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(err(path, format!("idx element type 0x{:02x} is not unsigned bytes (0x08)", bytes[2])));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(err(path, format!("idx rank {rank} is not 1..=4")));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(err(path, "truncated idx header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let n: usize =
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err(path, "idx dimensions overflow"))?;
    let payload = &bytes[header..];
    if payload.len() < n {
        return Err(err(path, format!("truncated: the header promises {n} values, the file holds {}", payload.len())));
    }
    if payload.len() > n {
        return Err(err(path, format!("{} bytes after the last value", payload.len() - n)));
    }
    Ok((dims, payload.to_vec()))
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(err(&dir.join(stem), "no such file, raw or .gz"))
}

fn idx_pair(dir: &Path, images: &str, labels: &str, classes: usize) -> Result<(Array2<f32>, Vec<u8>), DataError> {
    let (ip, lp) = (find(dir, images)?, find(dir, labels)?);
    let (idims, pixels) = read_idx(&ip)?;
    let (ldims, labels) = read_idx(&lp)?;
    if ldims.len() != 1 {
        return Err(err(&lp, format!("labels must be rank 1, found rank {}", ldims.len())));
    }
    if idims[0] != ldims[0] {
        return Err(err(&ip, format!("{} images but {} labels in {}", idims[0], ldims[0], lp.display())));
    }
    if let Some(bad) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(err(&lp, format!("label {} of sample {bad} is not below the {classes} classes", labels[bad])));
    }
    let features: usize = idims[1..].iter().product();
    let x = Array2::from_shape_vec((idims[0], features), pixels).map_err(|e| err(&ip, e.to_string()))?;
    Ok((x.mapv(|p| p as f32 / 255.0), labels))
}

/// MNIST-style idx data in `dir`: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or `.gz`.
pub fn load_idx_dir(dir: &Path, classes: usize) -> Result<Dataset, DataError> {
    let (train_x, train_y) = idx_pair(dir, files::IDX_TRAIN_IMAGES, files::IDX_TRAIN_LABELS, classes)?;
    let (test_x, test_y) = idx_pair(dir, files::IDX_TEST_IMAGES, files::IDX_TEST_LABELS, classes)?;
    for (what, n, labels) in
        [("training", train_y.len(), files::IDX_TRAIN_LABELS), ("test", test_y.len(), files::IDX_TEST_LABELS)]
    {
        if n == 0 {
            return Err(err(&dir.join(labels), format!("no {what} samples")));
        }
    }
    if train_x.ncols() != test_x.ncols() {
        return Err(err(
            dir,
            format!("training images have {} pixels, test images {}", train_x.ncols(), test_x.ncols()),
        ));
    }
    Ok(Dataset { train_x, train_y, test_x, test_y, classes })
}

/// Bytes of one CIFAR-10 record: a label and a 3x32x32 image (channels first, rows in order).
const CIFAR_RECORD: usize = 1 + 3 * 32 * 32;

/// The records of one CIFAR-10 batch file (raw or gzip): pixels scaled to [0, 1] and labels.
fn cifar_batch(dir: &Path, name: &str) -> Result<(Vec<f32>, Vec<u8>), DataError> {
    let path = find(dir, name)?;
    let bytes = read_maybe_gz(&path)?;
    if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
        return Err(err(
            &path,
            format!(
                "{} bytes is not a whole number of {CIFAR_RECORD}-byte records (a label and 3x32x32 pixels)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD;
    let mut pixels = Vec::with_capacity(n * (CIFAR_RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (r, rec) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(err(&path, format!("record {r}: label {} is not one of the 10 classes", rec[0])));
        }
        labels.push(rec[0]);
        pixels.extend(rec[1..].iter().map(|&p| p as f32 / 255.0));
    }
    Ok((pixels, labels))
}

/// CIFAR-10's binary version in `dir`: `data_batch_1.bin` .. `data_batch_5.bin` for training,
/// `test_batch.bin` for testing, each raw or `.gz`; samples are `[3, 32, 32]` (3,072 values).
pub fn load_cifar10_dir(dir: &Path) -> Result<Dataset, DataError> {
    let (mut train_px, mut train_y) = (Vec::new(), Vec::new());
    for name in files::CIFAR10_TRAIN {
        let (px, y) = cifar_batch(dir, name)?;
        train_px.extend(px);
        train_y.extend(y);
    }
    let (test_px, test_y) = cifar_batch(dir, files::CIFAR10_TEST)?;
    let features = CIFAR_RECORD - 1;
    let shape = |px: Vec<f32>, n: usize| Array2::from_shape_vec((n, features), px).map_err(|e| err(dir, e.to_string()));
    Ok(Dataset {
        train_x: shape(train_px, train_y.len())?,
        train_y,
        test_x: shape(test_px, test_y.len())?,
        test_y,
        classes: 10,
    })
}

/// Training samples of a CIFAR-10 directory, from its batch files' sizes (`None` when one
/// cannot be read; gzip files are not inflated for this).
pub fn cifar10_train_count(dir: &Path) -> Option<usize> {
    files::CIFAR10_TRAIN.iter().try_fold(0, |n, name| {
        let meta = std::fs::metadata(dir.join(name)).ok()?;
        Some(n + meta.len() as usize / CIFAR_RECORD)
    })
}

/// Training samples of an idx directory, from the header of its training labels (`None` when
/// the file cannot be read).
pub fn idx_train_count(dir: &Path) -> Option<usize> {
    let p = find(dir, files::IDX_TRAIN_LABELS).ok()?;
    read_idx(&p).ok().map(|(dims, _)| dims[0])
}

/// Samples in the digits CSV (1,797 in the UCI set) that remain for training after holding out
/// `test_fraction`, as [`load_digits`] splits them.
pub fn digits_train_count(total: usize, test_fraction: f64) -> usize {
    let n_test = ((total as f64 * test_fraction).round() as usize).clamp(1, total.max(2) - 1);
    total.saturating_sub(n_test)
}

/// The 8x8 digits (`digits.csv.gz` or `digits.csv` in `dir`: 64 values 0..16 and a label per
/// line), split by a shuffle seeded with `seed`, `test_fraction` held out.
pub fn load_digits(dir: &Path, test_fraction: f64, seed: u64) -> Result<Dataset, DataError> {
    let path = find(dir, files::DIGITS)?;
    let bytes = read_maybe_gz(&path)?;
    let text = String::from_utf8(bytes).map_err(|_| err(&path, "not UTF-8 text"))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 65 {
            return Err(err(
                &path,
                format!("line {}: {} fields, expected 64 pixels and a label", ln + 1, fields.len()),
            ));
        }
        for (i, f) in fields.iter().enumerate() {
            let v: u8 = f
                .parse()
                .map_err(|_| err(&path, format!("line {}, field {}: `{f}` is not a number 0..=16", ln + 1, i + 1)))?;
            if i < 64 {
                if v > 16 {
                    return Err(err(&path, format!("line {}, field {}: pixel {v} exceeds 16", ln + 1, i + 1)));
                }
                pixels.push(v as f32 / 16.0);
            } else if v > 9 {
                return Err(err(&path, format!("line {}: label {v} is not a digit", ln + 1)));
            } else {
                labels.push(v);
            }
        }
    }
    let n = labels.len();
    if n < 2 {
        return Err(err(&path, format!("{n} samples: at least 2 are needed, to hold one out for testing")));
    }
    let x = Array2::from_shape_vec((n, 64), pixels).map_err(|e| err(&path, e.to_string()))?;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xD161_7500));
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1);
    let (test_idx, train_idx) = order.split_at(n_test);
    let pick = |idx: &[usize]| (x.select(Axis(0), idx), idx.iter().map(|&i| labels[i]).collect::<Vec<_>>());
    let (test_x, test_y) = pick(test_idx);
    let (train_x, train_y) = pick(train_idx);
    Ok(Dataset { train_x, train_y, test_x, test_y, classes: 10 })
}

/// A seeded permutation of `n` samples for epoch `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_mul(crate::sim::GAMMA) ^ epoch));
    order
}

/// Rows `idx` of `x`.
pub fn gather(x: ArrayView2<'_, f32>, idx: &[usize]) -> Array2<f32> {
    x.select(Axis(0), idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("imcc-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn idx_round_trip_and_errors_name_the_problem() {
        let mut good = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        good.extend([0, 64, 128, 255, 1, 2, 3, 4]);
        let (dims, data) = read_idx(&tmp("good", &good)).unwrap();
        assert_eq!(dims, vec![2, 2, 2]);
        assert_eq!(data.len(), 8);
        let e = read_idx(&tmp("short", &good[..14])).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let e = read_idx(&tmp("cut", &good[..20])).unwrap_err();
        assert!(e.message.contains("promises 8 values"), "{e}");
        let e = read_idx(&tmp("magic", &[1, 2, 3, 4, 5])).unwrap_err();
        assert!(e.message.contains("magic"), "{e}");
        let e = read_idx(&tmp("gz", &[0x1f, 0x8b, 1, 2, 3])).unwrap_err();
        assert!(e.message.contains("corrupt gzip"), "{e}");
        let e = read_idx(Path::new("/no/such/idx")).unwrap_err();
        assert!(e.message.contains("no such file"), "{e}");
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn multi_member_gzip_is_one_stream_and_trailing_garbage_an_error() {
        let mut good = vec![0, 0, 8, 1, 0, 0, 0, 4];
        good.extend([1, 2, 3, 4]);
        let mut two = gz(&good[..6]);
        two.extend(gz(&good[6..]));
        assert_eq!(read_idx(&tmp("two.gz", &two)).unwrap(), (vec![4], vec![1, 2, 3, 4]));
        let mut junk = gz(&good);
        junk.extend(b"junk");
        let e = read_idx(&tmp("junk.gz", &junk)).unwrap_err();
        assert!(e.message.contains("corrupt gzip"), "{e}");
    }

    #[test]
    fn idx_sets_without_training_or_test_samples_are_errors() {
        let dir = std::env::temp_dir().join(format!("imcc-data-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = |n: u8| [vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 1, 0, 0, 0, 1], vec![7; n as usize]].concat();
        let labels = |n: u8| [vec![0, 0, 8, 1, 0, 0, 0, n], vec![1; n as usize]].concat();
        for (train, test, says) in [(0, 2, "no training samples"), (2, 0, "no test samples")] {
            std::fs::write(dir.join("train-images-idx3-ubyte"), images(train)).unwrap();
            std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(train)).unwrap();
            std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(test)).unwrap();
            std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(test)).unwrap();
            let e = load_idx_dir(&dir, 10).unwrap_err();
            assert!(e.message.contains(says), "{e}");
        }
    }

    #[test]
    fn a_single_digits_sample_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("imcc-data-one-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = vec!["1"; 65].join(",");
        std::fs::write(dir.join("digits.csv"), format!("{line}\n")).unwrap();
        let e = load_digits(&dir, 0.2, 1).unwrap_err();
        assert!(e.message.contains("1 samples: at least 2"), "{e}");
        assert_eq!(digits_train_count(0, 0.2), 0);
        assert_eq!(digits_train_count(1, 0.2), 0);
    }

    #[test]
    fn the_fingerprint_sees_every_sample_label_and_the_split() {
        let x = Array2::from_shape_fn((3, 3), |(i, j)| (i * 3 + j) as f32);
        let d = Dataset {
            train_x: x.clone(),
            train_y: vec![1, 2, 3],
            test_x: x.clone(),
            test_y: vec![4, 5, 6],
            classes: 10,
        };
        let base = d.fingerprint();
        assert_eq!(base, d.clone().fingerprint());
        let mut last = d.clone();
        last.train_x[[2, 2]] = 9.5; // the ninth value: in the remainder after the 4-lane quads
        let mut label = d.clone();
        label.test_y[2] = 7;
        let mut split = d.clone();
        std::mem::swap(&mut split.train_y, &mut split.test_y);
        for other in [last, label, split] {
            assert_ne!(other.fingerprint(), base);
        }
    }

    #[test]
    fn cifar10_batches_load_channels_first_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("imcc-data-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = |label: u8, px: u8| {
            let mut r = vec![label];
            r.extend((0..3072).map(|k| if k < 1024 { px } else { 0 })); // red plane only
            r
        };
        for (k, name) in files::CIFAR10_TRAIN.iter().enumerate() {
            std::fs::write(dir.join(name), [record(k as u8, 255), record(9, 0)].concat()).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(3, 51)).unwrap();
        let d = load_cifar10_dir(&dir).unwrap();
        assert_eq!((d.train_x.dim(), d.test_x.dim()), ((10, 3072), (1, 3072)));
        assert_eq!(d.train_y, vec![0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
        assert_eq!((d.train_x[[0, 0]], d.train_x[[0, 1024]], d.test_x[[0, 1023]]), (1.0, 0.0, 0.2));
        assert_eq!(cifar10_train_count(&dir), Some(10));
        std::fs::write(dir.join("test_batch.bin"), &record(3, 1)[..100]).unwrap();
        let e = load_cifar10_dir(&dir).unwrap_err();
        assert!(e.path.ends_with("test_batch.bin") && e.message.contains("100 bytes"), "{e}");
        std::fs::write(dir.join("test_batch.bin"), record(10, 1)).unwrap();
        let e = load_cifar10_dir(&dir).unwrap_err();
        assert!(e.message.contains("label 10"), "{e}");
        std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
        let e = load_cifar10_dir(&dir).unwrap_err();
        assert!(e.message.contains("no such file"), "{e}");
    }

    #[test]
    fn digits_csv_errors() {
        let dir = tmp("digits.csv", b"1,2,3\n").parent().unwrap().to_path_buf();
        let e = load_digits(&dir, 0.2, 1).unwrap_err();
        assert!(e.message.contains("line 1: 3 fields"), "{e}");
    }
}
