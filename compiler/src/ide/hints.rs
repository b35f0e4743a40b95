//! Inlay hints: each layer's inferred output shape after its declaration, from the checked
//! program (none while the file has errors: a stale shape would mislead).

use super::Analysis;
use crate::span::FileId;
use crate::syntax::ast::{Item, Stmt};

/// A hint: text to show at a byte offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// Where (after the layer's `;`).
    pub offset: usize,
    /// What (`→ [128]`).
    pub label: String,
    /// More, on hover (the input shape).
    pub tooltip: String,
}

/// The shape hints of `file` within bytes `range`.
pub fn shapes(a: &Analysis, file: FileId, range: std::ops::Range<usize>) -> Vec<Hint> {
    let (Some(program), Some(ast)) = (&a.comp.program, a.syntax(file)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &ast.items {
        let Item::Block(b) = item else { continue };
        let Some(net) = program.networks.iter().find(|n| n.name == b.name.name && b.kind.name == "network") else {
            continue;
        };
        for s in &b.body {
            let Stmt::Layer(decl) = s else { continue };
            let at = decl.span.end as usize;
            if !range.contains(&at) && range.end != at {
                continue;
            }
            if let Some(layer) = net.layers.iter().find(|l| l.name == decl.name.name) {
                out.push(Hint {
                    offset: at,
                    label: format!("→ {:?}", layer.out_shape),
                    tooltip: format!("`{}`: input {:?}, output {:?}", layer.name, layer.in_shape, layer.out_shape),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MemLoader;
    use std::path::Path;

    #[test]
    fn every_layer_gets_its_output_shape_after_its_declaration() {
        let src = "network n { input = [1, 8, 8]; c: conv2d(4, kernel = 3, padding = 1); p: maxpool(2); f: flatten; \
                   d: dense(10); l: softmax_cross_entropy; }\ntrain t { network = n; data = idx(\"d\"); }";
        let a = Analysis::new(crate::compile(Path::new("/m.imc"), "m.imc", src, &MemLoader::default()));
        assert!(a.comp.program.is_some(), "{:?}", a.comp.diagnostics);
        let hints = shapes(&a, FileId(0), 0..src.len());
        let labels: Vec<&str> = hints.iter().map(|h| h.label.as_str()).collect();
        assert_eq!(labels, ["→ [4, 8, 8]", "→ [4, 4, 4]", "→ [64]", "→ [10]", "→ [10]"]);
        assert_eq!(&src[hints[0].offset - 1..hints[0].offset], ";", "after the statement");
        assert!(shapes(&a, FileId(0), 0..10).is_empty(), "only in the range asked for");
    }
}
