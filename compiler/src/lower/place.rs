//! Placement by cost (`placement = cost(minimize = ...)` in a mapping): the compiler chooses,
//! layer by layer, which of the `auto` MVMs run on IMC and which run digital at their
//! operands' precision, minimizing the modelled step (`imcc-cost`) within the chip's rules (a
//! two-level ADC serves at most two MVMs of a layer, E0500). Explicit targets are kept.
//!
//! The cost model prices each MVM on its own (its energy and time do not depend on where the
//! other MVMs run, and the digital remainder is the same for every choice), so the step's
//! energy and time are sums over MVMs. Two lowerings give every MVM's cost on IMC and digital;
//! minimizing energy or time is then exact layer by layer. The energy-delay product is not a
//! sum: it is minimized by coordinate descent over layers from the best of the fixed policies
//! and of the energy and time optima, so it is never worse than any of them.

use super::{LowerError, pipeline};
use crate::program::{MvmLayerPlan, Network, TrainRun};
use imcc_cost::StepCost;
use imcc_ir::config::{Mvm, Named, Objective, Target};
use imcc_ir::{Pass, Placement, PlacementCost};

/// Energy and time of one choice, per step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cost {
    joules: f64,
    seconds: f64,
}

impl Cost {
    fn add(self, o: Cost) -> Cost {
        Cost { joules: self.joules + o.joules, seconds: self.seconds + o.seconds }
    }

    fn value(self, objective: Objective) -> f64 {
        match objective {
            Objective::Energy => self.joules,
            Objective::Time => self.seconds,
            Objective::Edp => self.joules * self.seconds,
        }
    }
}

/// One layer's candidate: its three targets and their cost.
#[derive(Debug, Clone, Copy)]
struct Option3 {
    targets: [Target; 3],
    cost: Cost,
}

/// The targets of every layer with each free MVM set by `rule(kind, digital precision)`.
fn assign(run: &TrainRun, rule: impl Fn(Mvm, Target) -> Target) -> Vec<[Target; 3]> {
    run.layers
        .iter()
        .map(|l| {
            std::array::from_fn(|k| match l.free[k] {
                Some(p) => rule(Mvm::ALL[k], Target::Digital(p)),
                None => l.targets[k],
            })
        })
        .collect()
}

fn with_targets(run: &TrainRun, targets: &[[Target; 3]]) -> TrainRun {
    let mut r = run.clone();
    for (l, t) in r.layers.iter_mut().zip(targets) {
        l.targets = *t;
    }
    r
}

/// Per layer and MVM kind, the cost of each MVM under `targets`.
fn mvm_costs(net: &Network, run: &TrainRun, targets: &[[Target; 3]]) -> Result<(Vec<[Cost; 3]>, Cost), LowerError> {
    let r = with_targets(run, targets);
    let mut step = super::build::build(net, &r);
    pipeline(&mut step, net, &r, Some(Pass::SchedulePlanes))?;
    let cost = StepCost::of(&step);
    let mut per = vec![[Cost::default(); 3]; run.layers.len()];
    let mut mvm_sum = Cost::default();
    for (m, c) in step.mvms.iter().zip(&cost.mvms) {
        let k = Mvm::ALL.iter().position(|x| *x == m.kind).unwrap_or(0);
        if let Some(i) = run.layers.iter().position(|l| l.layer.0 == m.layer.0) {
            per[i][k] = Cost { joules: c.joules, seconds: c.seconds };
            mvm_sum = mvm_sum.add(per[i][k]);
        }
    }
    let rest = Cost { joules: cost.joules() - mvm_sum.joules, seconds: cost.seconds() - mvm_sum.seconds };
    Ok((per, rest))
}

/// Every allowed assignment of one layer's free MVMs, most IMC first.
fn options(l: &MvmLayerPlan, max_imc: usize, imc: &[Cost; 3], dig: &[Cost; 3]) -> Vec<Option3> {
    let mut out = Vec::new();
    for mask in (0u8..8).rev() {
        let targets: [Target; 3] = std::array::from_fn(|k| match l.free[k] {
            Some(p) if mask & (1 << k) == 0 => Target::Digital(p),
            Some(_) => Target::Imc,
            None => l.targets[k],
        });
        let redundant = (0..3).any(|k| l.free[k].is_none() && mask & (1 << k) == 0);
        let on_imc = targets.iter().filter(|t| **t == Target::Imc).count();
        if redundant || on_imc > max_imc {
            continue;
        }
        let cost = (0..3).fold(Cost::default(), |c, k| c.add(if targets[k] == Target::Imc { imc[k] } else { dig[k] }));
        out.push(Option3 { targets, cost });
    }
    out
}

/// The assignment that minimizes `objective`, and the record of how it compares.
pub(super) fn choose(net: &Network, run: &TrainRun, objective: Objective) -> Result<(TrainRun, Placement), LowerError> {
    let plan = run.placement;
    let all_imc = assign(run, |_, _| Target::Imc);
    let all_digital = assign(run, |_, d| d);
    let two_level = assign(run, |k, d| if k == plan.two_level_digital { d } else { Target::Imc });
    let (imc, rest) = mvm_costs(net, run, &all_imc)?;
    let (dig, _) = mvm_costs(net, run, &all_digital)?;
    let opts: Vec<Vec<Option3>> =
        run.layers.iter().enumerate().map(|(i, l)| options(l, plan.max_imc, &imc[i], &dig[i])).collect();
    let total = |pick: &[usize]| pick.iter().zip(&opts).fold(rest, |c, (&j, o)| c.add(o[j].cost));
    // A fixed policy as option indices (None when the chip's rules forbid it).
    let indices = |targets: &[[Target; 3]]| -> Option<Vec<usize>> {
        targets.iter().zip(&opts).map(|(t, o)| o.iter().position(|x| x.targets == *t)).collect()
    };
    let fixed =
        [("full", indices(&all_imc)), ("two_level", indices(&two_level)), ("all_digital", indices(&all_digital))];
    let per_layer_best = |obj: Objective| -> Vec<usize> {
        opts.iter()
            .map(|o| {
                (0..o.len()).fold(0, |best, j| if o[j].cost.value(obj) < o[best].cost.value(obj) { j } else { best })
            })
            .collect()
    };
    let mut starts: Vec<Vec<usize>> = fixed.iter().filter_map(|(_, f)| f.clone()).collect();
    starts.push(per_layer_best(Objective::Energy));
    starts.push(per_layer_best(Objective::Time));
    let mut pick = starts.iter().fold(starts[0].clone(), |best, s| {
        if total(s).value(objective) < total(&best).value(objective) { s.clone() } else { best }
    });
    // Coordinate descent: exact in one sweep for energy and time (sums over layers), a local
    // optimum no worse than every start for the energy-delay product.
    for _ in 0..16 {
        let mut changed = false;
        for i in 0..opts.len() {
            for j in 0..opts[i].len() {
                let mut trial = pick.clone();
                trial[i] = j;
                if total(&trial).value(objective) < total(&pick).value(objective) * (1.0 - 1e-12) {
                    pick = trial;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let chosen: Vec<[Target; 3]> = pick.iter().zip(&opts).map(|(&j, o)| o[j].targets).collect();
    let record = |policy: &str, p: Option<&Vec<usize>>, targets: &[[Target; 3]]| {
        // A forbidden policy is still priced, from its MVMs' costs, for comparison.
        let c = match p {
            Some(p) => total(p),
            None => targets.iter().enumerate().fold(rest, |c, (i, t)| {
                (0..3).fold(c, |c, k| c.add(if t[k] == Target::Imc { imc[i][k] } else { dig[i][k] }))
            }),
        };
        PlacementCost {
            policy: policy.to_string(),
            allowed: p.is_some(),
            joules: c.joules,
            mvm_joules: c.joules - rest.joules,
            seconds: c.seconds,
        }
    };
    let mut compared = vec![record("chosen", Some(&pick), &chosen)];
    for ((name, f), targets) in fixed.iter().zip([&all_imc, &two_level, &all_digital]) {
        compared.push(record(name, f.as_ref(), targets));
    }
    Ok((with_targets(run, &chosen), Placement { objective, compared }))
}

/// The targets `step` runs as a `mapping` block of the language, to paste: every MVM layer's
/// targets written out, `placement = fixed`, extending the run's own mapping (so its ADC
/// ranges and other settings stay).
pub fn mapping_source(step: &imcc_ir::Step, run: &TrainRun) -> String {
    use std::fmt::Write;
    let ident: String = run.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let mut o = String::new();
    let cost = StepCost::of(step);
    let _ = writeln!(
        o,
        "// The MVM targets of train `{}`{}: {:.4e} J and {:.4e} s per step (modelled).",
        run.name,
        step.placement
            .as_ref()
            .map_or(String::new(), |p| format!(", placed by cost minimizing {}", p.objective.name())),
        cost.joules(),
        cost.seconds()
    );
    let extends = run.mapping.as_ref().map_or(String::new(), |m| format!(" extends {m}"));
    let _ = writeln!(o, "mapping {ident}_placed{extends} {{\n    placement = fixed;");
    for (li, layer) in step.layers.iter().enumerate() {
        let mut items = Vec::new();
        for kind in Mvm::ALL {
            if let Some(m) = step.mvms.iter().find(|m| m.layer.index() == li && m.kind == kind) {
                let t = match m.target {
                    Some(Target::Imc) => "imc".to_string(),
                    Some(Target::Digital(p)) => format!("digital({})", p.name()),
                    None => continue,
                };
                items.push(format!("{} = {t};", kind.key()));
            }
        }
        if !items.is_empty() {
            let _ = writeln!(o, "    layer {} {{ {} }}", layer.name, items.join(" "));
        }
    }
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MemLoader;
    use crate::program::{Placement as How, Program};
    use std::path::Path;

    fn program(src: &str) -> Program {
        let chip = include_str!("../../../examples/hw/cimu16.imc");
        let comp =
            crate::compile(Path::new("main.imc"), "main.imc", src, &MemLoader::default().with("hw/cimu16.imc", chip));
        assert!(!comp.has_errors(), "{:?}", comp.diagnostics);
        comp.program.expect("checked")
    }

    /// The modelled cost of `run` with every layer's targets as given.
    fn priced(p: &Program, run: &TrainRun, targets: &[[Target; 3]]) -> StepCost {
        let net = p.networks.iter().find(|n| n.name == run.network).expect("network");
        let r = with_targets(run, targets);
        let mut step = crate::lower::build::build(net, &r);
        pipeline(&mut step, net, &r, None).expect("lowers");
        StepCost::of(&step)
    }

    /// Every assignment of the free MVMs the chip allows, by brute force.
    fn every_assignment(run: &TrainRun) -> Vec<Vec<[Target; 3]>> {
        let mut all = vec![Vec::new()];
        for l in &run.layers {
            let mut next = Vec::new();
            for prefix in &all {
                for mask in 0u8..8 {
                    let t: [Target; 3] = std::array::from_fn(|k| match l.free[k] {
                        Some(_) if mask & (1 << k) != 0 => Target::Imc,
                        Some(p) => Target::Digital(p),
                        None => l.targets[k],
                    });
                    let redundant = (0..3).any(|k| l.free[k].is_none() && mask & (1 << k) != 0);
                    if !redundant && t.iter().filter(|x| **x == Target::Imc).count() <= run.placement.max_imc {
                        let mut v: Vec<[Target; 3]> = prefix.clone();
                        v.push(t);
                        next.push(v);
                    }
                }
            }
            all = next;
        }
        all
    }

    fn with_objective(src: &str, objective: &str, chip: &str) -> String {
        format!(
            "{src}\nmapping chosen {{ placement = cost(minimize = {objective}); }}\ntrain chosen_run extends full {{ mapping = chosen; hardware = {chip}; }}\n"
        )
    }

    #[test]
    fn energy_and_time_are_the_brute_force_optima_and_edp_beats_every_fixed_policy() {
        let base = include_str!("../../../examples/digits_mlp.imc");
        for chip in ["cimu16", "cimu16_two_level"] {
            for objective in [Objective::Energy, Objective::Time, Objective::Edp] {
                let p = program(&with_objective(base, objective.name(), chip));
                let run = p.trains.iter().find(|r| r.name == "chosen_run").expect("run");
                assert_eq!(run.placement.placement, How::Cost(objective));
                let step = crate::lower::lower(&p, run, None).expect("lowers");
                let record = step.placement.clone().expect("a placement record");
                let chosen = StepCost::of(&step);
                // The record prices what was lowered.
                let rel = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-30);
                assert!(rel(record.compared[0].joules, chosen.joules()), "{record:?}");
                assert!(rel(record.compared[0].seconds, chosen.seconds()), "{record:?}");
                // The chip's rules hold.
                for li in 0..step.layers.len() {
                    let on_imc =
                        step.mvms.iter().filter(|m| m.layer.index() == li && m.target == Some(Target::Imc)).count();
                    assert!(on_imc <= run.placement.max_imc, "{chip}: layer {li} has {on_imc} on IMC");
                }
                let all = every_assignment(run);
                assert!(all.len() >= 8, "{}", all.len());
                let best = all.iter().map(|t| priced(&p, run, t).objective(objective)).fold(f64::INFINITY, f64::min);
                let got = chosen.objective(objective);
                match objective {
                    Objective::Energy | Objective::Time => {
                        assert!(rel(got, best), "{chip} {objective:?}: chose {got}, brute force {best}")
                    }
                    Objective::Edp => assert!(got >= best * (1.0 - 1e-9)),
                }
                for fixed in record.compared.iter().skip(1).filter(|c| c.allowed) {
                    let v = match objective {
                        Objective::Energy => fixed.joules,
                        Objective::Time => fixed.seconds,
                        Objective::Edp => fixed.joules * fixed.seconds,
                    };
                    assert!(got <= v * (1.0 + 1e-12), "{chip} {objective:?}: {got} > {} {v}", fixed.policy);
                }
            }
        }
    }

    #[test]
    fn explicit_targets_are_kept_and_the_pasted_mapping_lowers_to_the_same_targets() {
        let base = include_str!("../../../examples/mnist_mlp.imc");
        let src = format!(
            "{base}\nmapping keep extends by_cost {{ layer fc2 {{ weight_grad = imc; }} }}\ntrain keep_run extends full {{ mapping = keep; }}\n"
        );
        let p = program(&src);
        let run = p.trains.iter().find(|r| r.name == "keep_run").expect("run");
        let step = crate::lower::lower(&p, run, None).expect("lowers");
        let wg = step.mvms.iter().find(|m| m.name == "fc2.weight_grad").expect("fc2.weight_grad");
        assert_eq!(wg.target, Some(Target::Imc), "the explicit target is kept");
        // Paste the printed mapping into the file: the same targets, chosen by nobody.
        let pasted = format!(
            "{src}\n{}\ntrain pasted extends full {{ mapping = keep_run_placed; }}\n",
            mapping_source(&step, run)
        );
        let p2 = program(&pasted);
        let run2 = p2.trains.iter().find(|r| r.name == "pasted").expect("pasted");
        assert_eq!(run2.placement.placement, How::Fixed);
        let step2 = crate::lower::lower(&p2, run2, None).expect("lowers");
        let targets = |s: &imcc_ir::Step| s.mvms.iter().map(|m| (m.name.clone(), m.target)).collect::<Vec<_>>();
        assert_eq!(targets(&step), targets(&step2));
        assert!(step2.placement.is_none());
    }
}
