//! The executor's digital nodes: quantizers, the elementwise and shape ops, their gradients,
//! and the SGD update (the reference semantics the JIT matches bit for bit).

use super::tensor::{Codes, Quant, Tensor};
use super::{ExecError, Executor, nonfinite, ops};
use crate::config::{ActivationFormat, ErrorFormat, GradScaleMode, Phase, WeightFormat};
use crate::formats::{int, radix4};
use crate::ir::{Node, Op, ParamKind, Step};
use ndarray::{Array1, Array2, ArrayD, Axis, Ix2, Ix4, IxDyn};

impl Executor {
    pub(super) fn run_node(&mut self, i: usize, train: bool, lr: f32) -> Result<(), ExecError> {
        let node = self.step.nodes[i].clone();
        let out = |k: usize| node.outputs[k];
        let input = |k: usize| node.inputs[k];
        match &node.op {
            Op::QuantizeWeights { param, format } => {
                let w = self.params[param.index()].clone();
                let t = self.quantize_weights(&w, format, param.index());
                self.set(out(0), t);
            }
            Op::QuantizeActivations { format, alpha } => {
                let x = self.get(input(0))?.matrix();
                // Quantizers would silently turn NaN into a code: stop instead.
                if !x.iter().all(|v| v.is_finite()) {
                    return Err(self.nonfinite_error(i));
                }
                let a = alpha.map(|p| self.params[p.index()][[0]]);
                self.set(out(0), quantize_activations(x, format, a));
            }
            Op::QuantizeErrors { format } => {
                let g = self.get(input(0))?.matrix();
                if !g.iter().all(|v| v.is_finite()) {
                    return Err(self.nonfinite_error(i));
                }
                let (b, w) = self.quantize_errors(i, g, format);
                self.set(out(0), b);
                self.set(out(1), w);
            }
            Op::Mvm(m) => self.mvm_node(*m, &node)?,
            Op::BiasAdd { param } => {
                let mut z = self.get(input(0))?.matrix();
                let b = self.params[param.index()]
                    .view()
                    .into_dimensionality::<ndarray::Ix1>()
                    .map_err(|e| ExecError::Invalid(e.to_string()))?;
                z += &b;
                self.set(out(0), Tensor::f32(z.into_dyn()));
            }
            Op::Relu => {
                let x = &self.get(input(0))?.data;
                self.set(out(0), Tensor::f32(x.mapv(|v| if v > 0.0 { v } else { 0.0 })));
            }
            Op::Pact { alpha } => {
                let a = self.params[alpha.index()][[0]];
                let x = &self.get(input(0))?.data;
                self.set(out(0), Tensor::f32(x.mapv(|v| v.clamp(0.0, a))));
            }
            Op::BatchNorm { .. } => self.batchnorm_node(i, &node, train)?,
            Op::Im2col { .. }
            | Op::Col2im { .. }
            | Op::ToChannelsFirst { .. }
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::Reshape => self.layout_node(i, &node)?,
            Op::Add => {
                let mut y = self.get(input(0))?.data.clone();
                for k in 1..node.inputs.len() {
                    y += &self.get(input(k))?.data;
                }
                self.set(out(0), Tensor::f32(y));
            }
            Op::SoftmaxCrossEntropy => {
                let logits = self.get(input(0))?.matrix();
                let (loss, grad) = ops::softmax_xent(logits.view(), &self.labels);
                if !loss.is_finite() {
                    return Err(ExecError::NonFinite { what: "the loss".into(), step: self.steps });
                }
                self.set(out(0), Tensor::f32(ArrayD::from_elem(IxDyn(&[1]), loss)));
                self.set(out(1), Tensor::f32(grad.into_dyn()));
            }
            Op::Grad(inner) => self.grad(i, inner, &node.inputs, &node.outputs)?,
            Op::AccumulateGrad => {
                let mut y = self.get(input(0))?.data.clone();
                for k in 1..node.inputs.len() {
                    y += &self.get(input(k))?.data;
                }
                self.set(out(0), Tensor::f32(y));
            }
            Op::SgdUpdate { param } => {
                let grad = match node.inputs.first() {
                    Some(v) => self.get(*v)?.data.clone(),
                    None => std::mem::replace(
                        &mut self.grads[param.index()],
                        ArrayD::zeros(self.params[param.index()].raw_dim()),
                    ),
                };
                self.sgd(i, param.index(), grad, lr)?;
            }
            Op::WriteArrays { mvm } => self.write_arrays(*mvm, input(0))?,
        }
        Ok(())
    }

    /// An MVM node: borrows its operands out of the value table instead of copying them (the
    /// stored operand is a whole weight matrix), and puts them back whatever happens.
    fn mvm_node(&mut self, m: crate::ir::MvmId, node: &Node) -> Result<(), ExecError> {
        let (si, xi) = (node.inputs[0], node.inputs[1]);
        self.get(si)?;
        self.get(xi)?;
        let s = self.vals[si.index()].take().expect("checked above");
        let x = self.vals[xi.index()].take().unwrap_or_else(|| s.clone()); // same value twice
        let y = self.mvm(m, &s, &x);
        if xi != si {
            self.vals[xi.index()] = Some(x);
        }
        self.vals[si.index()] = Some(s);
        self.set(node.outputs[0], y?);
        Ok(())
    }

    /// Layout and window nodes: im2col/col2im, channels-first, pooling, reshape.
    fn layout_node(&mut self, i: usize, node: &Node) -> Result<(), ExecError> {
        let out = |k: usize| node.outputs[k];
        let input = |k: usize| node.inputs[k];
        match &node.op {
            Op::Im2col { kernel, stride, padding } => {
                let x = self
                    .get(input(0))?
                    .data
                    .clone()
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(out(0), Tensor::f32(ops::im2col(x.view(), *kernel, *stride, *padding).into_dyn()));
            }
            Op::Col2im { kernel, stride, padding } => {
                let cols = self.get(input(0))?.matrix();
                let shape = &self.step.value(out(0)).shape;
                let b = cols.nrows()
                    / (crate::ir::conv_out_size(shape[2], *kernel, *stride, *padding)
                        * crate::ir::conv_out_size(shape[3], *kernel, *stride, *padding));
                let img = ops::col2im(cols.view(), (b, shape[1], shape[2], shape[3]), *kernel, *stride, *padding);
                self.set(out(0), Tensor::f32(img.into_dyn()));
            }
            Op::ToChannelsFirst { h, w } => {
                let z = self.get(input(0))?.matrix();
                self.set(out(0), Tensor::f32(ops::to_channels_first(z.view(), *h, *w).into_dyn()));
            }
            Op::MaxPool { kernel, stride, padding } => {
                let x = self.feature_map(input(0))?;
                let (y, arg) = ops::maxpool(x.view(), *kernel, *stride, *padding);
                self.pool_arg.insert(i, arg);
                self.set(out(0), Tensor::f32(y.into_dyn()));
            }
            Op::AvgPool { kernel, stride, padding } => {
                let x = self.feature_map(input(0))?;
                self.set(out(0), Tensor::f32(ops::avgpool(x.view(), *kernel, *stride, *padding).into_dyn()));
            }
            Op::Reshape => {
                let x = &self.get(input(0))?.data;
                let shape: Vec<usize> =
                    std::iter::once(x.shape()[0]).chain(self.step.value(out(0)).shape[1..].iter().copied()).collect();
                let y = x.to_shape(IxDyn(&shape)).map_err(|e| ExecError::Invalid(e.to_string()))?.to_owned();
                self.set(out(0), Tensor::f32(y));
            }
            _ => return Err(ExecError::Invalid(format!("{} is no layout op", node.op.name()))),
        }
        Ok(())
    }

    /// Batch-norm: batch statistics (and the running ones updated) in training, the running
    /// statistics in evaluation.
    fn batchnorm_node(&mut self, i: usize, node: &Node, train: bool) -> Result<(), ExecError> {
        let Op::BatchNorm { gamma, beta, momentum, eps } = &node.op else {
            return Err(ExecError::Invalid(format!("{} is no batch norm", node.op.name())));
        };
        let (out, input) = (|k: usize| node.outputs[k], |k: usize| node.inputs[k]);
        let x = self.get(input(0))?.data.clone();
        let cols = ops::channels_as_columns(&x);
        let (g, b) = (
            self.params[gamma.index()].iter().copied().collect::<Vec<_>>(),
            self.params[beta.index()].iter().copied().collect::<Vec<_>>(),
        );
        let y = if train {
            let (y, cache, mean, var) = ops::batchnorm(cols.view(), &g, &b, *eps as f32);
            let m = *momentum as f32;
            let e = self.bn_running.entry(i).or_insert_with(|| (Array1::zeros(mean.len()), Array1::ones(var.len())));
            e.0 = &e.0 * (1.0 - m) + &mean * m;
            e.1 = &e.1 * (1.0 - m) + &var * m;
            self.bn_cache.insert(i, cache);
            y
        } else {
            let (mean, var) =
                self.bn_running.get(&i).cloned().unwrap_or_else(|| (Array1::zeros(g.len()), Array1::ones(g.len())));
            let mut y = cols.clone();
            for (j, mut c) in y.axis_iter_mut(Axis(1)).enumerate() {
                let is = 1.0 / (var[j] + *eps as f32).sqrt();
                c.mapv_inplace(|v| (v - mean[j]) * is * g[j] + b[j]);
            }
            y
        };
        self.set(out(0), Tensor::f32(from_columns(y, x.shape())));
        Ok(())
    }

    pub(super) fn quantize_weights(&mut self, w: &ArrayD<f32>, format: &WeightFormat, p: usize) -> Tensor {
        let w2 = w.view().into_dimensionality::<Ix2>().expect("weights are matrices").to_owned();
        match format {
            WeightFormat::Int4Sawb { c1, c2 } => {
                let alpha = int::sawb_alpha(&w2, *c1, *c2);
                self.sawb_alpha[p] = alpha;
                let mut codes = Array2::<i8>::zeros(w2.dim());
                int::sawb_codes(&w2, alpha, &mut codes);
                let step = alpha / 7.0;
                let data = codes.mapv(|c| step * c as f32);
                Tensor {
                    data: data.into_dyn(),
                    quant: Some(Quant {
                        codes: Codes::Int { codes: codes.mapv(i32::from), bits: 3, signed: true },
                        scale: step,
                    }),
                }
            }
            WeightFormat::Int8 => int8_tensor(w2),
            WeightFormat::F32 => Tensor::f32(w.clone()),
        }
    }

    pub(super) fn quantize_errors(&mut self, node: usize, g: Array2<f32>, format: &ErrorFormat) -> (Tensor, Tensor) {
        match format {
            ErrorFormat::Radix4(cfg) => {
                let m = radix4::max_abs(&g);
                let s = match cfg.gradscale {
                    GradScaleMode::Current => radix4::gradscale(m),
                    GradScaleMode::Off => 1.0,
                    GradScaleMode::Incremental => {
                        let prev = self.gradscale.get(&node).copied().unwrap_or_else(|| radix4::gradscale(m));
                        let s = radix4::gradscale_incremental(m, prev);
                        self.gradscale.insert(node, s);
                        s
                    }
                };
                let one = |phase: Phase| {
                    let mut codes = Array2::<i8>::zeros(g.dim());
                    radix4::encode(&g, cfg.levels, phase, s, &mut codes);
                    let mut data = g.clone();
                    radix4::quantize_scaled(&g, cfg.levels, phase, s, &mut data);
                    let scale = if phase == Phase::Odd { 2.0 } else { 1.0 } / s;
                    Tensor {
                        data: data.into_dyn(),
                        quant: Some(Quant { codes: Codes::Radix4 { codes, levels: cfg.levels }, scale }),
                    }
                };
                let wg_phase = if cfg.tpr { cfg.weight_grad } else { cfg.backward };
                (one(cfg.backward), one(wg_phase))
            }
            ErrorFormat::Int8 => {
                let t = int8_tensor(g);
                (t.clone(), t)
            }
            ErrorFormat::F32 => {
                let t = Tensor::f32(g.into_dyn());
                (t.clone(), t)
            }
        }
    }

    pub(super) fn grad(
        &mut self,
        i: usize,
        op: &Op,
        inputs: &[crate::ir::ValueId],
        outputs: &[crate::ir::ValueId],
    ) -> Result<(), ExecError> {
        let g_id = *inputs.last().ok_or_else(|| ExecError::Invalid("a gradient node without inputs".into()))?;
        let g = self.get(g_id)?.data.clone();
        match op {
            Op::QuantizeActivations { format, alpha } => {
                let x = self.get(inputs[0])?.data.clone();
                let g = g.into_shape_with_order(x.raw_dim()).map_err(|e| ExecError::Invalid(e.to_string()))?;
                let gx = match (format, alpha) {
                    (ActivationFormat::Int4Pact { .. }, Some(p)) => self.pact_grad(*p, &x, &g),
                    (ActivationFormat::Int4Pact { alpha: a, .. }, None) => {
                        let a = *a as f32;
                        ndarray::Zip::from(&x)
                            .and(&g)
                            .map_collect(|&xv, &gv| if (0.0..a).contains(&xv) { gv } else { 0.0 })
                    }
                    _ => g,
                };
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::Relu => {
                let x = &self.get(inputs[0])?.data;
                let gx = ndarray::Zip::from(x).and(&g).map_collect(|&xv, &gv| if xv > 0.0 { gv } else { 0.0 });
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::Pact { alpha } => {
                let x = self.get(inputs[0])?.data.clone();
                let gx = self.pact_grad(*alpha, &x, &g);
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::BiasAdd { param } => {
                let g2 = g.into_dimensionality::<Ix2>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                // Column sums from 0, rows in order (the order the JIT keeps).
                let mut sum = Array1::<f32>::zeros(g2.ncols());
                for row in g2.rows() {
                    sum += &row;
                }
                self.grads[param.index()] += &sum.into_dyn();
            }
            Op::ToChannelsFirst { .. } => {
                let g4 = g.into_dimensionality::<Ix4>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(outputs[0], Tensor::f32(ops::to_rows(g4.view()).into_dyn()));
            }
            Op::MaxPool { .. } => {
                let x = &self.get(inputs[0])?.data;
                let s = x.shape();
                let arg = self.pool_arg.get(&self.forward_index(i)).cloned().unwrap_or_default();
                let gx = ops::maxpool_grad(
                    (s[0], s[1], s[2], s[3]),
                    &arg,
                    g.as_slice().unwrap_or(&g.iter().copied().collect::<Vec<_>>()),
                );
                self.set(outputs[0], Tensor::f32(gx.into_dyn()));
            }
            Op::AvgPool { kernel, stride, padding } => {
                let s = self.get(inputs[0])?.data.shape().to_vec();
                let g4 = g.into_dimensionality::<Ix4>().map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.set(
                    outputs[0],
                    Tensor::f32(
                        ops::avgpool_grad((s[0], s[1], s[2], s[3]), g4.view(), *kernel, *stride, *padding).into_dyn(),
                    ),
                );
            }
            Op::Reshape => {
                let shape = self.get(inputs[0])?.data.shape().to_vec();
                let gx = g.to_shape(IxDyn(&shape)).map_err(|e| ExecError::Invalid(e.to_string()))?.to_owned();
                self.set(outputs[0], Tensor::f32(gx));
            }
            Op::BatchNorm { gamma, beta, .. } => {
                let x_shape = self.get(inputs[0])?.data.shape().to_vec();
                let gcols = ops::channels_as_columns(&g);
                let fwd = self.forward_index(i);
                let cache = self
                    .bn_cache
                    .get(&fwd)
                    .ok_or_else(|| ExecError::Invalid("batch-norm backward without forward".into()))?;
                let gam: Vec<f32> = self.params[gamma.index()].iter().copied().collect();
                let (dx, dg, db) = ops::batchnorm_grad(gcols.view(), cache, &gam);
                let (gd, bd) = (self.grads[gamma.index()].raw_dim(), self.grads[beta.index()].raw_dim());
                let dg = ArrayD::from_shape_vec(gd, dg).map_err(|e| ExecError::Invalid(e.to_string()))?;
                let db = ArrayD::from_shape_vec(bd, db).map_err(|e| ExecError::Invalid(e.to_string()))?;
                self.grads[gamma.index()] += &dg;
                self.grads[beta.index()] += &db;
                self.set(outputs[0], Tensor::f32(from_columns(dx, &x_shape)));
            }
            Op::Add => {
                for &o in outputs {
                    self.set(o, Tensor::f32(g.clone()));
                }
            }
            other => return Err(ExecError::Invalid(format!("no backward for {other:?}"))),
        }
        Ok(())
    }

    /// PACT's straight-through gradients: `g` inside `[0, alpha)`, and the alpha gradient
    /// (summed over `x >= alpha`) accumulated into the parameter's gradient.
    pub(super) fn pact_grad(&mut self, alpha: crate::ir::ParamId, x: &ArrayD<f32>, g: &ArrayD<f32>) -> ArrayD<f32> {
        let a = self.params[alpha.index()][[0]];
        let mut ga = 0.0f32;
        let gx = ndarray::Zip::from(x).and(g).map_collect(|&xv, &gv| {
            if xv >= a {
                ga += gv;
            }
            if (0.0..a).contains(&xv) { gv } else { 0.0 }
        });
        self.grads[alpha.index()][[0]] += ga;
        gx
    }

    pub(super) fn sgd(&mut self, node: usize, p: usize, grad: ArrayD<f32>, lr: f32) -> Result<(), ExecError> {
        let kind = self.step.params[p].kind;
        let mut g =
            grad.into_shape_with_order(self.params[p].raw_dim()).map_err(|e| ExecError::Invalid(e.to_string()))?;
        if nonfinite(&g) {
            return Err(self.nonfinite_error(node));
        }
        let w = &self.params[p];
        match kind {
            ParamKind::Weight => {
                // SAWB's straight-through estimator passes the gradient inside the clip only.
                let a = self.sawb_alpha[p];
                if a > 0.0 {
                    ndarray::Zip::from(&mut g).and(w).for_each(|gv, &wv| {
                        if wv.abs() > a {
                            *gv = 0.0;
                        }
                    });
                }
                g.zip_mut_with(w, |gv, &wv| *gv += self.hyper.weight_decay * wv);
            }
            ParamKind::PactAlpha => {
                let decay = self.step.pact_decay(crate::ir::ParamId(p as u32)) as f32;
                g.zip_mut_with(w, |gv, &wv| *gv += decay * wv);
            }
            _ => {}
        }
        let (mu, nesterov) = (self.hyper.momentum, self.hyper.nesterov);
        let v = &mut self.velocity[p];
        ndarray::Zip::from(&mut *v).and(&g).for_each(|vv, &gv| *vv = mu * *vv + gv);
        let w = &mut self.params[p];
        ndarray::Zip::from(w).and(&*v).and(&g).for_each(|wv, &vv, &gv| {
            let upd = if nesterov { gv + mu * vv } else { vv };
            *wv -= lr * upd;
        });
        if kind == ParamKind::PactAlpha {
            self.params[p].mapv_inplace(|a| a.max(1e-3)); // a clip range must stay positive
        }
        Ok(())
    }
}

pub(super) fn int8_tensor(x: Array2<f32>) -> Tensor {
    let mut data = x.clone();
    let step = int::int8(&x, &mut data);
    // The same codes `int::int8` dequantized: round(x·127/max).
    let m = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let codes = if m > 0.0 && m.is_finite() { x.mapv(|v| int::int8_code(v, m)) } else { Array2::zeros(x.dim()) };
    Tensor {
        data: data.into_dyn(),
        quant: Some(Quant { codes: Codes::Int { codes, bits: 7, signed: true }, scale: step }),
    }
}

pub(super) fn quantize_activations(x: Array2<f32>, format: &ActivationFormat, learned: Option<f32>) -> Tensor {
    match format {
        ActivationFormat::Int4Pact { alpha, .. } => {
            let a = learned.unwrap_or(*alpha as f32);
            let codes = x.mapv(|v| int::pact_code(v, a) as i32);
            let step = a / 15.0;
            let data = codes.mapv(|c| c as f32 * step);
            Tensor {
                data: data.into_dyn(),
                quant: Some(Quant { codes: Codes::Int { codes, bits: 4, signed: false }, scale: step }),
            }
        }
        ActivationFormat::Int8 => int8_tensor(x),
        ActivationFormat::F32 => Tensor::f32(x.into_dyn()),
    }
}

pub(super) fn from_columns(y: Array2<f32>, shape: &[usize]) -> ArrayD<f32> {
    if shape.len() == 4 { ops::to_channels_first(y.view(), shape[2], shape[3]).into_dyn() } else { y.into_dyn() }
}

pub(super) fn round_fp16(v: f32) -> f32 {
    // Round to the nearest FP16 value (ties to even), saturating to the largest finite value.
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let a = v.abs().min(65504.0);
    let e = a.log2().floor().max(-14.0);
    let ulp = 2f32.powf(e - 10.0);
    ((a / ulp).round_ties_even() * ulp).copysign(v)
}

pub(super) fn pact_alpha0(step: &Step, p: usize) -> f64 {
    for n in &step.nodes {
        if let Op::QuantizeActivations { format: ActivationFormat::Int4Pact { alpha, .. }, alpha: Some(q) } = &n.op
            && q.index() == p
        {
            return *alpha;
        }
    }
    6.0
}
