//! Network checks: layer operations and arguments, inputs (`from`), and shape inference.

use super::Defs;
use super::values::{Typer, Value};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::program::{Layer, LayerId, LayerOp, Network};
use crate::schema::{self, Kind};
use crate::syntax::ast::{self, Stmt};
use std::collections::BTreeMap;

/// Checks every network; `None` for a network with errors (so trains using it are not checked
/// against a half-built network).
pub fn check_all(defs: &Defs<'_>, diags: &mut Diagnostics) -> BTreeMap<usize, Option<Network>> {
    let mut out = BTreeMap::new();
    for (i, d) in defs.list.iter().enumerate() {
        if d.kind == Kind::Network {
            let errors_before = diags.as_slice().iter().filter(|d| d.is_error()).count();
            let net = check_network(d.block, defs.params[i].try_get("input"), diags);
            let clean = diags.as_slice().iter().filter(|d| d.is_error()).count() == errors_before;
            out.insert(i, net.filter(|_| clean));
        }
    }
    out
}

fn check_network(block: &ast::Block, input: Option<&Value>, diags: &mut Diagnostics) -> Option<Network> {
    let input: Option<Vec<usize>> = match input {
        Some(Value::Ints(v)) => Some(v.iter().map(|&x| x as usize).collect()),
        _ => None, // missing or invalid: already reported
    };
    let mut layers: Vec<Layer> = Vec::new();
    // Output shape per layer; `None` after an error, so one mistake does not cascade.
    let mut shapes: Vec<Option<Vec<usize>>> = Vec::new();
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let all_names: Vec<&str> = block
        .body
        .iter()
        .filter_map(|s| match s {
            Stmt::Layer(l) => Some(l.name.name.as_str()),
            _ => None,
        })
        .collect();
    let mut loss: Option<&ast::LayerDecl> = None;
    let errors_before = diags.as_slice().iter().filter(|d| d.is_error()).count();

    for stmt in &block.body {
        let Stmt::Layer(decl) = stmt else { continue };
        if let Some(&first) = by_name.get(decl.name.name.as_str()) {
            diags.push(
                Diagnostic::new(Code::DuplicateLayer, format!("layer `{}` is declared twice", decl.name.name))
                    .primary(decl.name.span, "declared again here")
                    .secondary(layers[first].span, "first declared here"),
            );
            continue;
        }
        if let Some(l) = loss {
            diags.push(
                Diagnostic::new(Code::LossPlacement, format!("layer `{}` follows the loss", decl.name.name))
                    .primary(decl.span, "nothing may follow the loss")
                    .secondary(l.span, "the loss is declared here"),
            );
        }
        let Some(spec) = schema::layer(&decl.op.name) else {
            diags.push(
                Diagnostic::new(Code::UnknownLayerOp, format!("unknown layer operation `{}`", decl.op.name))
                    .primary(decl.op.span, "not a layer operation")
                    .did_you_mean(&decl.op.name, schema::LAYERS.iter().map(|l| l.op))
                    .note(format!(
                        "the operations are: {}",
                        schema::LAYERS.iter().map(|l| l.op).collect::<Vec<_>>().join(", ")
                    )),
            );
            by_name.insert(&decl.name.name, layers.len());
            layers.push(placeholder(decl));
            shapes.push(None);
            continue;
        };
        let args = Typer { diags }.args(spec.args, &decl.args, decl.span, &format!("`{}`", spec.op));
        let args = match args {
            Ok(a) => Some(a),
            Err(d) => {
                diags.push(d);
                None
            }
        };

        let (inputs, mut in_shapes) = layer_inputs(decl, &layers, &shapes, &by_name, &all_names, &input, diags);
        if !input_count_ok(spec.op, decl, diags) {
            in_shapes = vec![None];
        }

        let inferred = args.and_then(|args| infer(spec.op, &args, &in_shapes, decl, diags));
        let (op, out) = match inferred {
            Some((op, out)) => (Some(op), Some(out)),
            None => (None, None),
        };
        if spec.op == "softmax_cross_entropy" {
            loss = Some(decl);
        }
        by_name.insert(&decl.name.name, layers.len());
        let in_shape = in_shapes.first().cloned().flatten().unwrap_or_default();
        let out_shape = out.clone().unwrap_or_default();
        layers.push(Layer {
            name: decl.name.name.clone(),
            op: op.unwrap_or(LayerOp::Relu),
            inputs,
            in_shape,
            out_shape,
            span: decl.span,
        });
        shapes.push(out);
    }

    if loss.is_none() {
        diags.push(
            Diagnostic::new(Code::LossPlacement, format!("network `{}` has no loss", block.name.name))
                .primary(block.name.span, "no loss layer")
                .help("end the network with `loss: softmax_cross_entropy;`"),
        );
        return None;
    }

    if diags.as_slice().iter().filter(|d| d.is_error()).count() > errors_before {
        return None; // shapes are partial; unused-layer warnings would be noise
    }
    report_unused(&layers, diags);
    Some(Network { name: block.name.name.clone(), input: input.unwrap_or_default(), layers })
}

/// A layer's inputs and their shapes: the previous layer (or the network input), or its
/// `from` list; unknown names are reported (their shapes unknown).
fn layer_inputs(
    decl: &ast::LayerDecl,
    layers: &[Layer],
    shapes: &[Option<Vec<usize>>],
    by_name: &BTreeMap<&str, usize>,
    all_names: &[&str],
    input: &Option<Vec<usize>>,
    diags: &mut Diagnostics,
) -> (Vec<Option<LayerId>>, Vec<Option<Vec<usize>>>) {
    let mut inputs: Vec<Option<LayerId>> = Vec::new();
    let mut in_shapes: Vec<Option<Vec<usize>>> = Vec::new();
    if decl.from.is_empty() {
        match layers.len() {
            0 => {
                inputs.push(None);
                in_shapes.push(input.clone());
            }
            n => {
                inputs.push(Some(LayerId(n as u32 - 1)));
                in_shapes.push(shapes[n - 1].clone());
            }
        }
    } else {
        for f in &decl.from {
            if f.name == "input" && !by_name.contains_key("input") {
                inputs.push(None);
                in_shapes.push(input.clone());
                continue;
            }
            match by_name.get(f.name.as_str()) {
                Some(&j) => {
                    inputs.push(Some(LayerId(j as u32)));
                    in_shapes.push(shapes[j].clone());
                }
                None => {
                    let mut d = Diagnostic::new(Code::UnknownLayer, format!("no earlier layer named `{}`", f.name))
                        .primary(f.span, "unknown layer");
                    if all_names.contains(&f.name.as_str()) {
                        d = d.note("`from` may only name layers declared before this one (networks are acyclic)");
                    } else {
                        d = d.did_you_mean(&f.name, by_name.keys().copied().chain(["input"]));
                    }
                    diags.push(d);
                    in_shapes.push(None);
                }
            }
        }
    }
    (inputs, in_shapes)
}

/// `add` takes two or more inputs, every other layer exactly one (E0409).
fn input_count_ok(op: &str, decl: &ast::LayerDecl, diags: &mut Diagnostics) -> bool {
    let n_inputs = decl.from.len().max(1);
    let is_add = op == "add";
    if (is_add && n_inputs < 2) || (!is_add && n_inputs != 1) {
        let msg = if is_add {
            "`add` needs two or more inputs".to_string()
        } else {
            format!("`{op}` takes exactly one input, found {n_inputs}")
        };
        diags.push(
            Diagnostic::new(Code::InputCount, msg)
                .primary(decl.span, "wrong number of inputs")
                .maybe_help(is_add.then(|| format!("name the inputs: `{}: add from a, b;`", decl.name.name))),
        );
        return false;
    }
    true
}

/// Warns about outputs no layer reads (other than the loss): they do not influence training.
fn report_unused(layers: &[Layer], diags: &mut Diagnostics) {
    let mut consumed = vec![false; layers.len()];
    for l in layers {
        for i in l.inputs.iter().flatten() {
            consumed[i.0 as usize] = true;
        }
    }
    for (i, l) in layers.iter().enumerate() {
        if !consumed[i] && !matches!(l.op, LayerOp::SoftmaxCrossEntropy) {
            diags.push(
                Diagnostic::new(Code::UnusedLayer, format!("the output of layer `{}` is never used", l.name))
                    .primary(l.span, "no layer reads this")
                    .help("read it with `from`, or remove the layer"),
            );
        }
    }
}

fn placeholder(decl: &ast::LayerDecl) -> Layer {
    Layer {
        name: decl.name.name.clone(),
        op: LayerOp::Relu,
        inputs: Vec::new(),
        in_shape: Vec::new(),
        out_shape: Vec::new(),
        span: decl.span,
    }
}

fn int(args: &BTreeMap<&str, Value>, key: &str) -> Option<usize> {
    args.get(key).and_then(Value::as_int).map(|v| v as usize)
}

fn shape_str(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
}

/// A layer's operation and output shape from its arguments and input shapes; shape errors are
/// reported at the layer.
fn infer(
    op: &str,
    args: &BTreeMap<&str, Value>,
    in_shapes: &[Option<Vec<usize>>],
    decl: &ast::LayerDecl,
    diags: &mut Diagnostics,
) -> Option<(LayerOp, Vec<usize>)> {
    let x = in_shapes.first()?.clone()?;
    let flag = |k: &str| matches!(args.get(k), Some(Value::Bool(true)));
    match op {
        "dense" => infer_dense(x, args, flag("bias"), decl, diags),
        "conv2d" => {
            let (c, h, w) = spatial(op, &x, decl, diags)?;
            let (k, s, p) = (int(args, "kernel")?, int(args, "stride")?, int(args, "padding")?);
            let ho = window(decl, diags, h, k, s, p)?;
            let wo = window(decl, diags, w, k, s, p)?;
            let out = int(args, "out")?;
            let op = LayerOp::Conv2d {
                in_channels: c,
                out_channels: out,
                kernel: k,
                stride: s,
                padding: p,
                bias: flag("bias"),
            };
            Some((op, vec![out, ho, wo]))
        }
        "maxpool" | "avgpool" => infer_pool(op, &x, args, decl, diags),
        "flatten" => {
            if x.len() == 1 {
                diags.push(
                    Diagnostic::new(Code::FlattenRank, format!("`flatten` of an already flat input {}", shape_str(&x)))
                        .primary(decl.span, format!("input is {}", shape_str(&x)))
                        .help("remove this layer"),
                );
                return None;
            }
            Some((LayerOp::Flatten, vec![x.iter().product()]))
        }
        "relu" => Some((LayerOp::Relu, x)),
        "pact" => Some((LayerOp::Pact { alpha: args.get("alpha").and_then(Value::as_real) }, x)),
        "batchnorm" => {
            let momentum = args.get("momentum").and_then(Value::as_real)?;
            let eps = args.get("eps").and_then(Value::as_real)?;
            Some((LayerOp::BatchNorm { momentum, eps }, x))
        }
        "add" => infer_add(x, in_shapes, decl, diags),
        "softmax_cross_entropy" => {
            if x.len() != 1 {
                diags.push(
                    Diagnostic::new(
                        Code::NeedsFlatInput,
                        format!("the loss needs a flat input, found {}", shape_str(&x)),
                    )
                    .primary(decl.span, format!("input is {}", shape_str(&x)))
                    .help("insert `flatten` and a `dense` layer before the loss"),
                );
                return None;
            }
            Some((LayerOp::SoftmaxCrossEntropy, x))
        }
        _ => None,
    }
}

/// The `[C, H, W]` of a spatial layer's input (E0404 otherwise).
fn spatial(op: &str, x: &[usize], decl: &ast::LayerDecl, diags: &mut Diagnostics) -> Option<(usize, usize, usize)> {
    if let [c, h, w] = x[..] {
        return Some((c, h, w));
    }
    diags.push(
        Diagnostic::new(Code::NeedsImageInput, format!("`{op}` needs a `[C, H, W]` input, found {}", shape_str(x)))
            .primary(decl.span, format!("input is {}", shape_str(x)))
            .help("declare the network input as `[C, H, W]`, e.g. `input = [1, 28, 28];`, and keep spatial layers before `flatten`"),
    );
    None
}

/// Output size of a window of `k` with stride `s` and padding `p` over `size` (E0401 when
/// it would be empty).
fn window(decl: &ast::LayerDecl, diags: &mut Diagnostics, size: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    let padded = size + 2 * p;
    if padded < k {
        diags.push(
            Diagnostic::new(Code::EmptyOutput, format!("the output of `{}` would be empty", decl.name.name))
                .primary(decl.span, format!("({size} + 2*{p} - {k}) / {s} + 1 <= 0"))
                .note(format!("a {k}x{k} window does not fit a {size}x{size} input with padding {p}")),
        );
        return None;
    }
    Some((padded - k) / s + 1)
}

fn infer_dense(
    x: Vec<usize>,
    args: &BTreeMap<&str, Value>,
    bias: bool,
    decl: &ast::LayerDecl,
    diags: &mut Diagnostics,
) -> Option<(LayerOp, Vec<usize>)> {
    if x.len() != 1 {
        diags.push(
            Diagnostic::new(Code::NeedsFlatInput, format!("`dense` needs a flat input, found {}", shape_str(&x)))
                .primary(decl.span, format!("input is {}", shape_str(&x)))
                .help("insert `flatten` before this layer"),
        );
        return None;
    }
    let outputs = int(args, "out")?;
    if let Some(declared) = int(args, "in")
        && declared != x[0]
    {
        diags.push(
            Diagnostic::new(
                Code::DenseInputMismatch,
                format!("`{}` declares {declared} inputs but receives {}", decl.name.name, x[0]),
            )
            .primary(decl.span, format!("receives {} features", x[0]))
            .help(format!("write `in = {}`, or leave `in` out to infer it", x[0])),
        );
        return None;
    }
    Some((LayerOp::Dense { inputs: x[0], outputs, bias }, vec![outputs]))
}

fn infer_pool(
    op: &str,
    x: &[usize],
    args: &BTreeMap<&str, Value>,
    decl: &ast::LayerDecl,
    diags: &mut Diagnostics,
) -> Option<(LayerOp, Vec<usize>)> {
    let (c, h, w) = spatial(op, x, decl, diags)?;
    let k = int(args, "kernel")?;
    let s = int(args, "stride").unwrap_or(k);
    let p = int(args, "padding")?;
    if p >= k {
        diags.push(
            Diagnostic::new(Code::ValueOutOfRange, format!("`{op}` padding {p} is not smaller than its kernel {k}"))
                .primary(decl.span, "some windows would hold only padding")
                .help(format!("use `padding` below {k}")),
        );
        return None;
    }
    let ho = window(decl, diags, h, k, s, p)?;
    let wo = window(decl, diags, w, k, s, p)?;
    let op = if op == "maxpool" {
        LayerOp::MaxPool { kernel: k, stride: s, padding: p }
    } else {
        LayerOp::AvgPool { kernel: k, stride: s, padding: p }
    };
    Some((op, vec![c, ho, wo]))
}

fn infer_add(
    x: Vec<usize>,
    in_shapes: &[Option<Vec<usize>>],
    decl: &ast::LayerDecl,
    diags: &mut Diagnostics,
) -> Option<(LayerOp, Vec<usize>)> {
    for (i, other) in in_shapes.iter().enumerate().skip(1) {
        let other = other.as_ref()?;
        if *other != x {
            diags.push(
                Diagnostic::new(Code::AddShapeMismatch, format!("`add` of {} and {}", shape_str(&x), shape_str(other)))
                    .primary(decl.from[i].span, format!("this input is {}", shape_str(other)))
                    .secondary(decl.from[0].span, format!("the first input is {}", shape_str(&x))),
            );
            return None;
        }
    }
    Some((LayerOp::Add, x))
}
