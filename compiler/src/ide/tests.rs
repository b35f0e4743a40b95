use super::Analysis;
use super::complete::CompletionKind;
use crate::loader::MemLoader;
use crate::span::FileId;
use std::path::Path;

const HW: &str = "// The test chip.\n// Two lines of comment.\nhardware chip {\n    noise { sigma_lsb = 0.1; }\n}\n";

const MAIN: &str = r#"import "hw/chip.imc";

network net {
    input = [64];
    fc1: dense(16);
    act: relu;
    fc2: dense(10) from act;
    loss: softmax_cross_entropy;
}

quant q {
    layer fc1 { weights = f32; }
}

// expect: W0006
train t {
    network = net;
    quant = q;
    hardware = chip;
    data = digits;
    epochs = 1;
}
"#;

fn analysis(main: &str) -> Analysis {
    let loader = MemLoader::default().with("/p/main.imc", main).with("/p/hw/chip.imc", HW);
    Analysis::new(crate::compile(Path::new("/p/main.imc"), "main.imc", main, &loader))
}

fn at(text: &str, needle: &str, nth: usize) -> usize {
    text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no {needle}")).0
}

#[test]
fn hover_explains_parameters_from_the_schema() {
    let a = analysis(MAIN);
    let h = a.hover(FileId(0), at(MAIN, "epochs", 0) + 2).expect("hover");
    assert_eq!(&MAIN[h.span.range()], "epochs");
    assert!(h.markdown.contains("Training epochs"), "{}", h.markdown);
    assert!(h.markdown.contains("default: `1`"), "{}", h.markdown);
    assert!(h.markdown.contains("an integer in 1..=1000000"), "{}", h.markdown);
    let hw = FileId(1);
    let h = a.hover(hw, at(HW, "sigma_lsb", 0)).expect("hover in an imported file");
    assert!(h.markdown.contains("units: `lsb` (optional)"), "{}", h.markdown);
}

#[test]
fn hover_on_a_block_name_says_where_it_comes_from() {
    let a = analysis(MAIN);
    let h = a.hover(FileId(0), at(MAIN, "chip", 1)).expect("hover");
    assert!(h.markdown.contains("**hardware chip**"), "{}", h.markdown);
    assert!(h.markdown.contains("Defined in `hw/chip.imc`, line 3"), "{}", h.markdown);
    assert!(h.markdown.contains("The test chip.\nTwo lines of comment."), "{}", h.markdown);
}

#[test]
fn hover_on_a_layer_gives_its_inferred_shape() {
    let a = analysis(MAIN);
    assert!(a.comp.program.is_some(), "{:?}", a.comp.diagnostics);
    let h = a.hover(FileId(0), at(MAIN, "fc2", 0)).expect("hover");
    assert!(h.markdown.contains("Input `[16]` → output `[10]`"), "{}", h.markdown);
    assert!(h.markdown.contains("170 parameters"), "{}", h.markdown);
    // The same layer named by a quant policy's section.
    let h = a.hover(FileId(0), at(MAIN, "fc1", 1)).expect("hover on a section label");
    assert!(h.markdown.contains("Input `[64]` → output `[16]`"), "{}", h.markdown);
}

#[test]
fn hover_on_a_code_explains_it() {
    let a = analysis(MAIN);
    let h = a.hover(FileId(0), at(MAIN, "W0006", 0) + 1).expect("hover");
    assert!(h.markdown.starts_with("**W0006**"), "{}", h.markdown);
}

#[test]
fn a_file_with_errors_still_hovers_and_completes() {
    let broken = MAIN.replace("epochs = 1;", "epochs = ;\n    bat");
    let a = analysis(&broken);
    assert!(a.comp.program.is_none());
    let h = a.hover(FileId(0), at(&broken, "data", 0)).expect("hover");
    assert!(h.markdown.contains("The data set"), "{}", h.markdown);
    let c = a.complete(FileId(0), at(&broken, "bat", 0) + 3);
    assert_eq!(&broken[c.range.clone()], "bat");
    let batch = c.items.iter().find(|i| i.label == "batch").expect("batch is offered");
    assert_eq!(batch.insert, "batch = ");
    // The layer hover says why it has no shape.
    let h = a.hover(FileId(0), at(&broken, "fc2", 0)).expect("hover");
    assert!(h.markdown.contains("once the file checks"), "{}", h.markdown);
}

#[test]
fn completion_offers_names_of_the_right_kind() {
    let text = MAIN.replace("quant = q;", "quant = ;");
    let a = analysis(&text);
    let c = a.complete(FileId(0), at(&text, "quant = ", 0) + 8);
    let labels: Vec<&str> = c.items.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(labels, ["q"]);
    let c = a.complete(FileId(0), at(&text, "hardware = ", 0) + 11);
    assert_eq!(c.items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>(), ["chip"]);
    assert!(c.items.iter().all(|i| i.kind == CompletionKind::Definition(Some(crate::schema::Kind::Hardware))));
}

#[test]
fn completion_of_sections_constructors_and_units() {
    let text = "hardware h {\n    \n    energy { adc_conversion = 1 p }\n}\nquant q { weights = ; }\n";
    let a = analysis(text);
    let keys = a.complete(FileId(0), at(text, "\n    \n", 0) + 5);
    for want in ["array", "adc", "noise", "energy", "timing"] {
        assert!(keys.items.iter().any(|i| i.label == want), "{want} missing");
    }
    let units = a.complete(FileId(0), at(text, "1 p", 0) + 3);
    let labels: Vec<&str> = units.items.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(labels, ["fJ", "pJ", "nJ", "uJ", "mJ", "J"]);
    let ctors = a.complete(FileId(0), at(text, "weights = ", 0) + 10);
    assert!(ctors.items.iter().any(|i| i.label == "int4_sawb" && i.kind == CompletionKind::Constructor));
}

#[test]
fn definition_and_references_go_through_imports() {
    let a = analysis(MAIN);
    let defs = a.definitions(FileId(0), at(MAIN, "chip", 1) + 1);
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].file, FileId(1));
    assert_eq!(defs[0].start as usize, at(HW, "chip", 1));
    let refs = a.references(FileId(1), at(HW, "chip", 1), true);
    assert_eq!(refs.len(), 2, "{refs:?}");
    let import = a.definitions(FileId(0), 10);
    assert_eq!(import.len(), 1);
    assert_eq!(import[0].file, FileId(1), "the import string leads to the file");
    let layer = a.references(FileId(0), at(MAIN, "act", 0), false);
    assert_eq!(layer.iter().map(|s| &MAIN[s.range()]).collect::<Vec<_>>(), ["act"]);
}

#[test]
fn outline_lists_blocks_and_layers() {
    let a = analysis(MAIN);
    let o = a.outline(FileId(0));
    let names: Vec<&str> = o.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["hw/chip.imc", "net", "q", "t"]);
    let layers: Vec<&str> = o[1].children.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(layers, ["input", "fc1", "act", "fc2", "loss"]);
}
