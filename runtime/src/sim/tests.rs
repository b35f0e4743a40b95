//! Simulator tests: bit-exactness without noise or ADC loss for every input mode and shape,
//! ADC rounding and clipping as the range narrows, determinism, event counts, bad input.

use super::*;
use crate::config::*;
use crate::formats::radix4;
use ndarray::Array2;
use proptest::prelude::*;

pub(crate) fn hw(rows: u32, cols: u32, adc_bits: u32) -> HardwareConfig {
    HardwareConfig {
        rows,
        cols,
        cores: 16,
        input: InputMode::BitSerial,
        signs: SignMode::TwoPass,
        skip_empty_planes: true,
        adc: AdcConfig { bits: adc_bits, adaptability: Adaptability::Full, zero: AdcZero::Unsigned },
        noise: NoiseConfig {
            sigma_lsb: 0.0,
            scaling: NoiseScaling::PhysicalRows,
            gain_mismatch: 0.0,
            dac_error: 0.0,
            chip_seed: 1,
        },
        energy: ImcEnergy {
            column_eval: 0.0,
            adc_conversion: 0.0,
            shift_add: 0.0,
            array_write_bit: 0.0,
            move_bit: 0.0,
            accounting: EnergyAccounting::Conversions,
        },
        digital: DigitalEnergy {
            node_scale: 1.0,
            int4_add: 0.0,
            int4_mult: 0.0,
            int8_add: 0.0,
            int8_mult: 0.0,
            int32_add: 0.0,
            int32_mult: 0.0,
            fp16_add: 0.0,
            fp16_mult: 0.0,
            fp32_add: 0.0,
            fp32_mult: 0.0,
            sram_read_64b: 0.0,
            dram_access_64b: 0.0,
            operand_sram_share: 0.0,
            dram_bits_per_weight: 0.0,
        },
        timing: Timing {
            evaluate: 1.0,
            conversion: 1.0,
            columns_per_adc: 1,
            dac_settle: 0.0,
            write_bandwidth: 1.0,
            input_bandwidth: 1.0,
            int4_ops: 1.0,
            int8_ops: 1.0,
            fp16_ops: 1.0,
            f32_ops: 1.0,
            elementwise_ops: 1.0,
        },
    }
}

/// A generator that needs no external crate: xorshift.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    IntUnsigned,
    IntSignedTwoPass,
    IntSignedDrive,
    IntDac,
    R4TwoPass,
    R4SignedDrive,
    R4Dac,
}

const MODES: [Mode; 7] = [
    Mode::IntUnsigned,
    Mode::IntSignedTwoPass,
    Mode::IntSignedDrive,
    Mode::IntDac,
    Mode::R4TwoPass,
    Mode::R4SignedDrive,
    Mode::R4Dac,
];

/// Runs one exactness case: a random matrix and inputs, an ADC with LSB = 1 that cannot clip.
#[allow(clippy::too_many_arguments)]
fn exact_case(
    mode: Mode,
    rows: u32,
    outputs: usize,
    red: usize,
    n: usize,
    wbits: u32,
    wsigned: bool,
    seed: u64,
) -> Result<(), String> {
    let mut g = Gen(seed | 1);
    let mut h = hw(rows, 64, 20);
    let (lo, hi) = if wsigned { (-(1i64 << (wbits - 1)), (1i64 << (wbits - 1)) - 1) } else { (0, (1i64 << wbits) - 1) };
    let w = Array2::from_shape_fn((outputs, red), |_| g.range(lo, hi) as i32);
    let mut level_max = 1.0;
    match mode {
        Mode::IntSignedDrive | Mode::R4SignedDrive => {
            h.signs = SignMode::Signed;
            h.adc.zero = AdcZero::Signed;
        }
        Mode::IntDac => {
            h.input = InputMode::Dac { bits: 3, levels: vec![1.0, 4.0, 16.0] };
            level_max = 7.0;
        }
        Mode::R4Dac => {
            h.input = InputMode::Dac { bits: 5, levels: vec![1.0, 4.0, 16.0] };
            level_max = 21.0;
        }
        _ => {}
    }
    let xi = Array2::from_shape_fn((n, red), |_| match mode {
        Mode::IntUnsigned | Mode::IntDac => g.range(0, 15) as i32,
        _ => g.range(-15, 15) as i32,
    });
    let xr = Array2::from_shape_fn((n, red), |_| g.range(-8, 8) as i8);
    let is_r4 = matches!(mode, Mode::R4TwoPass | Mode::R4SignedDrive | Mode::R4Dac);
    let input = if is_r4 {
        InputBatch::Radix4 { codes: xr.view(), levels: 8 }
    } else {
        InputBatch::Int { codes: xi.view(), bits: 4, signed: !matches!(mode, Mode::IntUnsigned | Mode::IntDac) }
    };
    let mut tile = Tile::new(&h).map_err(|e| e.to_string())?;
    let mut ev = Events::default();
    let p = tile
        .program(&StoredMatrix { codes: w.view(), bits: wbits, signed: wsigned }, 0, &mut ev)
        .map_err(|e| e.to_string())?;
    // LSB = 1 count: FS = rows·level_max/G = cmax.
    let cmax =
        if h.adc.zero == AdcZero::Unsigned { (1u64 << h.adc.bits) - 1 } else { (1u64 << (h.adc.bits - 1)) - 1 } as f64;
    let gain = rows as f64 * level_max / cmax;
    let y = tile.mvm(&p, &input, &Gains::Uniform(gain), seed, &mut ev).map_err(|e| e.to_string())?;
    for b in 0..n {
        for j in 0..outputs {
            let expect: f64 = (0..red)
                .map(|k| {
                    let xv = if is_r4 { radix4::value_of(xr[[b, k]], Phase::Even) as f64 } else { xi[[b, k]] as f64 };
                    w[[j, k]] as f64 * xv
                })
                .sum();
            if (y[[b, j]] - expect).abs() > 1e-9 * expect.abs().max(1.0) {
                return Err(format!("{mode:?}: y[{b},{j}] = {} but exact is {expect}", y[[b, j]]));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn noiseless_unclipped_mvm_is_exact(
        mode in 0..MODES.len(),
        rows in 1u32..70,
        outputs in 1usize..20,
        red in 1usize..150,
        n in 1usize..4,
        wbits in 1u32..6,
        wsigned in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let wbits = if wsigned { wbits.max(2) } else { wbits };
        prop_assert_eq!(exact_case(MODES[mode], rows, outputs, red, n, wbits, wsigned, seed), Ok(()));
    }
}

#[test]
fn every_mode_exact_on_a_multi_tile_shape() {
    for mode in MODES {
        exact_case(mode, 64, 33, 300, 3, 4, true, 42).expect("exact");
        exact_case(mode, 64, 7, 130, 2, 4, false, 7).expect("exact");
    }
}

fn layer_error(gain: f64, sigma: f64) -> (f64, f64) {
    // INT4 x INT4 on 255-row arrays with an 8-bit ADC: at G = 1 one LSB is one count.
    let mut h = hw(255, 256, 8);
    h.noise.sigma_lsb = sigma;
    let mut g = Gen(99);
    let w = Array2::from_shape_fn((32, 255), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((8, 255), |_| g.range(0, 15) as i32);
    let mut tile = Tile::new(&h).unwrap();
    let mut ev = Events::default();
    let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
    let y = tile
        .mvm(&p, &InputBatch::Int { codes: x.view(), bits: 4, signed: false }, &Gains::Uniform(gain), 5, &mut ev)
        .unwrap();
    let exact = x.dot(&w.t()).mapv(|v| v as f64);
    let err = (&y - &exact).mapv(f64::abs).mean().unwrap();
    (err, exact.mapv(f64::abs).mean().unwrap())
}

#[test]
fn rounding_then_clipping_errors_appear_as_the_range_narrows() {
    // G = 1: LSB = 1 count and FS = 255 counts: exact. G = 1.3: the LSB is no longer a whole
    // number of counts, so conversions round; column sums (bits of 255 rows, mostly < 150) still
    // fit FS = 196. G = 8: FS = 32 counts, and most sums clip.
    let (exact, scale) = layer_error(1.0, 0.0);
    let (rounding, _) = layer_error(1.3, 0.0);
    let (clipping, _) = layer_error(8.0, 0.0);
    assert_eq!(exact, 0.0);
    assert!(rounding > 0.0, "rounding appears");
    assert!(rounding < 0.1 * scale, "rounding is small: {rounding} of {scale}");
    assert!(clipping > 10.0 * rounding && clipping > 0.3 * scale, "clipping dominates: {clipping} vs {rounding}");
}

#[test]
fn noise_is_seeded_and_grows_with_sigma() {
    let (quiet, _) = layer_error(1.0, 0.0);
    let (noisy, _) = layer_error(1.0, 0.5);
    assert!(noisy > quiet);
    assert_eq!(layer_error(1.0, 0.5), layer_error(1.0, 0.5), "same seed, same result");
}

#[test]
fn kernels_and_noise_paths_are_bit_identical() {
    let mut h = hw(128, 64, 8);
    h.noise.sigma_lsb = 0.3;
    let mut g = Gen(3);
    let w = Array2::from_shape_fn((20, 300), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((4, 300), |_| g.range(-8, 8) as i8);
    let run = |path: kernel::KernelPath| {
        let mut tile = Tile::new(&h).unwrap().with_kernel(path);
        let mut ev = Events::default();
        let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
        tile.mvm(&p, &InputBatch::Radix4 { codes: x.view(), levels: 8 }, &Gains::Uniform(2.0), 11, &mut ev).unwrap()
    };
    let best = kernel::detect();
    let portable = run(kernel::KernelPath::Portable);
    assert_eq!(portable, run(best));
    if best == kernel::KernelPath::Avx512 {
        assert_eq!(portable, run(kernel::KernelPath::Avx2));
    }
}

#[test]
fn complete_shared_tables_and_lazy_worker_tables_give_the_same_codes() {
    // Noisy and adaptive enough that many sums and several tables are used, on both paths.
    let mut h = hw(256, 64, 8);
    h.noise.sigma_lsb = 0.4;
    let mut g = Gen(21);
    let w = Array2::from_shape_fn((40, 500), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((19, 500), |_| g.range(0, 15) as i32);
    let e = Array2::from_shape_fn((19, 500), |_| g.range(-8, 8) as i8);
    let run = |eager: u64| {
        let mut tile = Tile::new(&h).unwrap().with_complete_tables_up_to(eager);
        let mut ev = Events::default();
        let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
        let mut out = Vec::new();
        for (call, gain) in [1.0, 3.5, 9.0].into_iter().enumerate() {
            let a = InputBatch::Int { codes: x.view(), bits: 4, signed: false };
            out.push(tile.mvm(&p, &a, &Gains::Uniform(gain), call as u64, &mut ev).unwrap());
            let b = InputBatch::Radix4 { codes: e.view(), levels: 8 };
            out.push(tile.mvm(&p, &b, &Gains::Uniform(gain), 10 + call as u64, &mut ev).unwrap());
        }
        (out, ev)
    };
    assert_eq!(run(0), run(u64::MAX));
}

#[test]
fn event_counts_follow_the_shape() {
    // 300 inputs on 128-row arrays: 3 row-tiles. INT4 unsigned inputs: 4 planes, 4 weight bits.
    let h = hw(128, 64, 8);
    let mut g = Gen(5);
    let w = Array2::from_shape_fn((10, 300), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((2, 300), |_| g.range(1, 15) as i32 | 0b1111);
    let mut tile = Tile::new(&h).unwrap();
    let mut ev = Events::default();
    let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
    assert_eq!(ev.bits_written, 10 * 300 * 4);
    assert_eq!(p.row_tiles(), 3);
    assert_eq!(p.col_tiles(64), 1);
    tile.mvm(&p, &InputBatch::Int { codes: x.view(), bits: 4, signed: false }, &Gains::Uniform(1.0), 0, &mut ev)
        .unwrap();
    // Every input is 15: every plane is full, nothing skipped.
    assert_eq!(ev.conversions, 2 * 3 * 4 * 10 * 4);
    assert_eq!(ev.skipped_planes, 0);
    assert_eq!(ev.column_evals, ev.conversions);
    assert_eq!(ev.shift_adds, ev.conversions);
    assert_eq!(ev.input_bits, 2 * 300 * 4);
}

#[test]
fn empty_exponent_planes_are_skipped_and_counted() {
    let h = hw(64, 64, 8);
    let w = Array2::from_elem((5, 64), 3i32);
    // Every element has exponent 0 and positive sign: 1 of 16 (plane, sign) groups is used.
    let x = Array2::from_elem((1, 64), 1i8);
    let mut tile = Tile::new(&h).unwrap();
    let mut ev = Events::default();
    let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
    let y = tile.mvm(&p, &InputBatch::Radix4 { codes: x.view(), levels: 8 }, &Gains::Uniform(1.0), 0, &mut ev).unwrap();
    assert_eq!(ev.conversions, 5 * 4);
    assert_eq!(ev.skipped_planes, 15);
    assert_eq!(ev.skipped_conversions, 15 * 5 * 4);
    // 64 rows · 3 = 192 counts, LSB = 64/255: rounding only.
    assert!((y[[0, 0]] - 192.0).abs() <= 64.0 / 255.0 * 7.0);
    let mut h2 = h.clone();
    h2.skip_empty_planes = false;
    let mut tile2 = Tile::new(&h2).unwrap();
    let mut ev2 = Events::default();
    let p2 = tile2.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev2).unwrap();
    tile2.mvm(&p2, &InputBatch::Radix4 { codes: x.view(), levels: 8 }, &Gains::Uniform(1.0), 0, &mut ev2).unwrap();
    assert_eq!(ev2.conversions, 16 * 5 * 4);
    assert_eq!(ev2.skipped_planes, 0);
}

#[test]
fn mismatch_and_dac_error_perturb_results_reproducibly() {
    let mut h = hw(64, 32, 12);
    h.noise.gain_mismatch = 0.05;
    let mut g = Gen(8);
    let w = Array2::from_shape_fn((6, 64), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((2, 64), |_| g.range(0, 15) as i32);
    let run = |h: &HardwareConfig| {
        let mut tile = Tile::new(h).unwrap();
        let mut ev = Events::default();
        let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 3, &mut ev).unwrap();
        tile.mvm(&p, &InputBatch::Int { codes: x.view(), bits: 4, signed: false }, &Gains::Uniform(0.25), 1, &mut ev)
            .unwrap()
    };
    let exact = x.dot(&w.t()).mapv(|v| v as f64);
    let a = run(&h);
    assert_eq!(a, run(&h));
    assert!((&a - &exact).mapv(f64::abs).sum() > 1.0, "mismatch changes results");
    let mut d = hw(64, 32, 12);
    d.input = InputMode::Dac { bits: 4, levels: vec![1.0, 4.0] };
    d.noise.dac_error = 0.05;
    let b = run(&d);
    assert!((&b - &exact).mapv(f64::abs).sum() > 1.0, "DAC error changes results");
}

#[test]
fn bad_parameters_and_operands_are_errors() {
    let mut h = hw(0, 64, 8);
    assert!(matches!(Tile::new(&h), Err(SimError::BadParameter(_))));
    h.rows = 64;
    h.adc.bits = 0;
    assert!(Tile::new(&h).is_err());
    h.adc.bits = 25;
    assert!(Tile::new(&h).is_err());
    h.adc.bits = 8;
    h.noise.sigma_lsb = -1.0;
    assert!(Tile::new(&h).is_err());
    h.noise.sigma_lsb = 0.0;
    h.adc.adaptability = Adaptability::Gains(vec![1.0, 8.0]);
    let mut tile = Tile::new(&h).unwrap();
    let mut ev = Events::default();
    let w = Array2::from_elem((2, 10), 9i32);
    assert!(matches!(
        tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev),
        Err(SimError::BadOperand(_))
    ));
    let w = Array2::from_elem((2, 10), 3i32);
    let p = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
    let x = Array2::from_elem((1, 10), 1i32);
    let input = InputBatch::Int { codes: x.view(), bits: 4, signed: false };
    assert!(tile.mvm(&p, &input, &Gains::Uniform(4.0), 0, &mut ev).is_err(), "4 is not an available gain");
    assert!(tile.mvm(&p, &input, &Gains::Uniform(8.0), 0, &mut ev).is_ok());
    let short = Array2::from_elem((1, 9), 1i32);
    assert!(
        tile.mvm(
            &p,
            &InputBatch::Int { codes: short.view(), bits: 4, signed: false },
            &Gains::Uniform(1.0),
            0,
            &mut ev
        )
        .is_err()
    );
    let neg = Array2::from_elem((1, 10), -1i32);
    assert!(
        tile.mvm(&p, &InputBatch::Int { codes: neg.view(), bits: 4, signed: false }, &Gains::Uniform(1.0), 0, &mut ev)
            .is_err()
    );
}

#[test]
fn code_tables_stay_within_their_budget_and_eviction_changes_nothing() {
    // Adaptive ranges give a new gain (a new code table) at every call: memory must not grow
    // with the number of calls, and evicting tables must not change any result.
    let mut h = hw(256, 64, 8);
    h.noise.sigma_lsb = 0.2;
    let mut g = Gen(9);
    let w = Array2::from_shape_fn((16, 200), |_| g.range(-7, 7) as i32);
    let x = Array2::from_shape_fn((8, 200), |_| g.range(0, 15) as i32);
    let budget = 64 << 10;
    let mut small = Tile::new(&h).unwrap().with_table_budget(budget);
    let mut large = Tile::new(&h).unwrap();
    let mut ev = Events::default();
    let p = small.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 0, &mut ev).unwrap();
    let input = InputBatch::Int { codes: x.view(), bits: 4, signed: false };
    let mut peak = 0;
    for call in 0..200u64 {
        let gains = Gains::Uniform(1.0 + call as f64 * 0.013);
        let a = small.mvm(&p, &input, &gains, call, &mut ev).unwrap();
        let b = large.mvm(&p, &input, &gains, call, &mut ev).unwrap();
        assert_eq!(a, b, "call {call}: eviction changed a result");
        peak = peak.max(small.cached_table_bytes());
    }
    // One table over the budget at most (the one in use is never evicted).
    let workers = rayon::current_num_threads().max(1);
    assert!(peak <= workers * (budget + (40 << 10)), "tables grew to {peak} bytes");
    assert!(large.cached_table_bytes() > 4 * budget, "the test must exceed the budget to mean anything");
}
