//! Files that survive a kill, a full disk and a concurrent writer: results and checkpoints are
//! written to a fresh temporary file beside their destination, synced, and renamed over it, so
//! the destination always holds either the previous complete file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of one process.
static TEMP_SERIAL: AtomicU64 = AtomicU64::new(0);

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let serial = TEMP_SERIAL.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{serial}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes` atomically (see the module doc). On failure `path` is untouched
/// and the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temp_beside(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot replace {}: {e}", path.display()));
    }
    // The rename itself is durable once the directory is synced (best effort: not every
    // platform can open a directory).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks, before any work is done, that [`write_atomic`] can later write `path`: its directory
/// exists and takes new files, and `path` is not a directory or another non-regular file.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
    {
        let what = if m.is_dir() { "a directory" } else { "not a regular file" };
        return Err(format!("cannot write {shown}: it is {what}"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("cannot write {shown}: the directory {} does not exist", dir.display()));
    }
    let probe = temp_beside(path);
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("cannot write {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("imcc-durable-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let d = scratch("replace");
        let p = d.join("m.json");
        write_atomic(&p, b"one").expect("writes");
        write_atomic(&p, b"two").expect("writes");
        assert_eq!(std::fs::read(&p).expect("reads"), b"two");
        assert_eq!(std::fs::read_dir(&d).expect("lists").count(), 1);
    }

    #[test]
    fn bad_destinations_are_named_before_any_work() {
        let d = scratch("bad");
        let e = check_writable(&d.join("missing").join("m.json")).expect_err("missing directory");
        assert!(e.contains("does not exist"), "{e}");
        let e = check_writable(&d).expect_err("a directory");
        assert!(e.contains("is a directory"), "{e}");
        check_writable(&d.join("m.json")).expect("a new file in an existing directory");
        assert_eq!(std::fs::read_dir(&d).expect("lists").count(), 0, "the probe is removed");
    }
}
