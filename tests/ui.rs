//! UI tests, as rustc's: every `tests/ui/*.imc` is a wrong program whose first line names the
//! diagnostic it must produce (`// expect: E0206`); the rendered output of `imcc check` is
//! snapshotted, so any change to a diagnostic shows up as a reviewed snapshot diff.

use imcc_compiler::codes::Code;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn expected_code(src: &str) -> String {
    src.lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect: "))
        .unwrap_or_else(|| panic!("a UI test starts with `// expect: CODE`"))
        .trim()
        .to_string()
}

#[test]
fn ui() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("ui/*.imc", |path| {
        let rel = path.strip_prefix(root).expect("inside the package");
        let src = std::fs::read_to_string(path).expect("readable");
        let code = expected_code(&src);
        let out = Command::new(env!("CARGO_BIN_EXE_imcc"))
            .args(["check", "--color", "never"])
            .arg(rel)
            .current_dir(root)
            .output()
            .expect("imcc runs");
        let status = out.status.code().expect("exited");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stderr.contains(&format!("[{code}]")), "{} must report {code}:\n{stderr}", rel.display());
        let is_error = code.starts_with('E');
        assert_eq!(status, if is_error { 1 } else { 0 }, "{}: exit status\n{stderr}", rel.display());
        insta::assert_snapshot!(format!("exit status: {status}\n{stdout}{stderr}"));
    });
}

#[test]
fn every_diagnostic_code_has_a_ui_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("tests/ui exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "imc") {
            covered.insert(expected_code(&std::fs::read_to_string(&path).expect("readable")));
        }
    }
    let missing: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).filter(|c| !covered.contains(*c)).collect();
    assert!(missing.is_empty(), "codes without a UI test: {missing:?}");
    assert!(covered.len() >= 40);
}
