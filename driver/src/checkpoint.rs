//! Checkpoints: one file per run and variant in the checkpoint directory, written atomically
//! after every epoch, recording what the run was trained with so that a resume that differs is
//! refused with the differences named; and the directory lock that keeps two processes apart.

use crate::{EpochMetrics, Error};
use imcc_runtime::exec::TrainState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The current checkpoint format.
pub const FORMAT: &str = "imcc-checkpoint-2";

/// A checkpoint: the executor's state, where the run is, and what it was trained with.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT`].
    pub format: String,
    /// The train block.
    pub train: String,
    /// What the run was trained with ([`RunRecord`]).
    pub run: RunRecord,
    /// Epochs finished.
    pub epochs_done: u64,
    /// Training samples seen.
    pub samples: u64,
    /// Training energy so far, in joules.
    pub energy: f64,
    /// Energy by MVM kind and component.
    pub breakdown: BTreeMap<String, BTreeMap<String, f64>>,
    /// Energy by layer and MVM kind (`remainder` for the digital rest).
    #[serde(default)]
    pub by_layer: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per-epoch metrics so far.
    pub metrics: Vec<EpochMetrics>,
    /// The executor's state.
    pub state: TrainState,
}

/// What a run was trained with, by readable name (`seed`, `batch`, …) with its value as text.
pub type RunRecord = BTreeMap<String, String>;

/// Entries of a [`RunRecord`] that a resume may never change: the checkpoint's weights were
/// trained on exactly this data split, and the seed decides the split and every noise stream.
pub const FIXED: &[&str] = &["seed", "data"];

/// The checkpoint file of run `name` in `dir` (the f32 reference has its own).
pub fn path(dir: &Path, name: &str, reference: bool) -> PathBuf {
    dir.join(if reference { format!("{name}.f32.ckpt.json") } else { format!("{name}.ckpt.json") })
}

/// Reads the checkpoint at `path`, refusing anything that is not a regular file holding a
/// checkpoint of `name` in the current format.
pub fn load(path: &Path, name: &str) -> Result<Checkpoint, Error> {
    load_text(path, name).map_err(Error::Checkpoint)
}

fn load_text(path: &Path, name: &str) -> Result<Checkpoint, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file, so not a checkpoint"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    #[derive(Deserialize)]
    struct Header {
        format: String,
        train: String,
    }
    let h: Header = serde_json::from_str(&text).map_err(|e| format!("{shown}: not a checkpoint: {e}"))?;
    if h.format != FORMAT {
        return Err(format!("{shown}: format `{}`, this imcc reads `{FORMAT}`", h.format));
    }
    if h.train != name {
        return Err(format!("{shown}: a checkpoint of `{}`, not of `{name}`", h.train));
    }
    serde_json::from_str(&text).map_err(|e| format!("{shown}: not a checkpoint: {e}"))
}

/// Compares the record a checkpoint was trained with against this run's. Entries in [`FIXED`]
/// must match; the others may differ only when `accept_changes` says so.
pub fn check_resume(path: &Path, saved: &RunRecord, now: &RunRecord, accept_changes: bool) -> Result<(), Error> {
    compare(path, saved, now, accept_changes).map_err(Error::Checkpoint)
}

fn compare(path: &Path, saved: &RunRecord, now: &RunRecord, accept_changes: bool) -> Result<(), String> {
    let keys: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    let none = "(not recorded)".to_string();
    let diffs: Vec<(&String, &String, &String)> = keys
        .into_iter()
        .filter_map(|k| {
            let (a, b) = (saved.get(k).unwrap_or(&none), now.get(k).unwrap_or(&none));
            (a != b).then_some((k, a, b))
        })
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = diffs.iter().map(|(k, a, b)| format!("  {k}: {a} in the checkpoint, {b} now")).collect();
    let fixed = diffs.iter().any(|(k, _, _)| FIXED.contains(&k.as_str()));
    let how = if fixed {
        "the seed and the data cannot change on resume (start a new run in another directory)"
    } else if accept_changes {
        return Ok(());
    } else {
        "pass --accept-changes to continue with the new settings on purpose"
    };
    Err(format!("{}: this run differs from the checkpoint's:\n{}\n{how}", path.display(), list.join("\n")))
}

/// An exclusive lock on a checkpoint directory, held while this process trains into it.
pub struct DirLock {
    _file: std::fs::File,
}

/// Creates `dir` when needed and locks it; another process holding it is an error.
pub fn lock_dir(dir: &Path) -> Result<DirLock, Error> {
    lock(dir).map_err(Error::Checkpoint)
}

fn lock(dir: &Path) -> Result<DirLock, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = dir.join(".imcc.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("{} is in use by another imcc process (it holds {})", dir.display(), p.display()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> RunRecord {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn differences_are_named_and_only_some_can_be_accepted() {
        let p = Path::new("c.ckpt.json");
        let saved = record(&[("seed", "5"), ("batch", "32")]);
        assert!(check_resume(p, &saved, &saved, false).is_ok());
        let batch = record(&[("seed", "5"), ("batch", "64")]);
        let e = check_resume(p, &saved, &batch, false).expect_err("batch changed").to_string();
        assert!(e.contains("batch: 32 in the checkpoint, 64 now") && e.contains("--accept-changes"), "{e}");
        assert!(check_resume(p, &saved, &batch, true).is_ok());
        let seed = record(&[("seed", "6"), ("batch", "32")]);
        let e = check_resume(p, &saved, &seed, true).expect_err("seed changed").to_string();
        assert!(e.contains("seed: 5 in the checkpoint, 6 now") && e.contains("cannot change"), "{e}");
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused() {
        let d = std::env::temp_dir().join(format!("imcc-lock-{}", std::process::id()));
        let first = lock_dir(&d).expect("locks");
        let e = lock_dir(&d).err().expect("already locked").to_string();
        assert!(e.contains("in use by another imcc process"), "{e}");
        drop(first);
        lock_dir(&d).expect("free again");
    }
}
