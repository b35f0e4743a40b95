//! ARCHITECTURE.md's structural invariants, checked against the source tree: the crate graph
//! (from the manifests), libraries that never print, a compiler that does no I/O outside its
//! loader, and file sizes.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The names in a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(manifest)).expect("manifest");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
        } else if inside && let Some((name, _)) = line.split_once('=') {
            out.push(name.trim().trim_end_matches(".workspace").to_string());
        }
    }
    out
}

fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), &mut out);
    out
}

/// A file's text before its `#[cfg(test)]` module (tests may do anything).
fn non_test_source(p: &Path) -> String {
    let text = std::fs::read_to_string(p).expect("source");
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[test]
fn the_crate_graph_is_as_drawn() {
    let ir = dependencies("ir/Cargo.toml");
    assert_eq!(ir, ["serde"], "the IR crate is the contract: it depends on nothing of imcc");
    let cost = dependencies("cost/Cargo.toml");
    assert_eq!(cost, ["imcc-ir", "serde"], "the cost model reads the IR and nothing else");
    let compiler = dependencies("compiler/Cargo.toml");
    assert!(compiler.contains(&"imcc-ir".to_string()));
    for forbidden in ["imcc-runtime", "imcc-driver", "cranelift-codegen", "cranelift-jit", "ndarray"] {
        assert!(!compiler.iter().any(|d| d == forbidden), "the compiler depends on {forbidden}");
    }
    let runtime = dependencies("runtime/Cargo.toml");
    for forbidden in ["imcc-compiler", "imcc-driver", "logos", "chumsky", "ariadne"] {
        assert!(!runtime.iter().any(|d| d == forbidden), "the runtime depends on {forbidden}");
    }
    let driver = dependencies("driver/Cargo.toml");
    for forbidden in ["clap", "indicatif", "ariadne"] {
        assert!(!driver.iter().any(|d| d == forbidden), "the driver depends on {forbidden}");
    }
}

#[test]
fn libraries_never_print() {
    for dir in ["ir/src", "cost/src", "compiler/src", "runtime/src", "driver/src"] {
        for f in rust_files(dir) {
            if f.ends_with("tests.rs") {
                continue;
            }
            let src = non_test_source(&f);
            for mac in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
                assert!(!src.contains(mac), "{} uses {mac}: libraries return data", f.display());
            }
        }
    }
}

#[test]
fn the_compiler_reads_files_only_in_its_loader() {
    for f in rust_files("compiler/src") {
        if f.ends_with("loader.rs") {
            continue;
        }
        assert!(!non_test_source(&f).contains("std::fs"), "{} does I/O outside the loader", f.display());
    }
}

#[test]
fn no_source_file_grows_past_600_lines_but_the_schema_tables() {
    for dir in ["ir/src", "compiler/src", "runtime/src", "driver/src", "src"] {
        for f in rust_files(dir) {
            let lines = std::fs::read_to_string(&f).expect("source").lines().count();
            let data = f.ends_with("schema.rs") || f.ends_with("tests.rs");
            assert!(data || lines <= 600, "{} has {lines} lines", f.display());
        }
    }
}

#[test]
fn inside_the_runtime_only_the_executor_knows_the_executor() {
    // The executor uses the JIT, the simulator and the energy ledger; none of them uses it.
    for dir in ["runtime/src/jit", "runtime/src/sim", "runtime/src/formats"] {
        for f in rust_files(dir) {
            assert!(!non_test_source(&f).contains("crate::exec"), "{} depends on the executor", f.display());
        }
    }
    for f in ["runtime/src/energy.rs", "runtime/src/data.rs"] {
        assert!(!non_test_source(&root().join(f)).contains("crate::exec"), "{f} depends on the executor");
    }
}
