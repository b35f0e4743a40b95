//! Tile-simulator speed as ratios to an f32 GEMM of the same shape, measured in the same run.
//!
//! `cargo bench -p imcc-runtime --bench tile_mvm`
//!
//! - forward: INT4 x INT4, a 784x256 layer (stored 256 x 784), batch 64, bit-serial inputs
//!   (4 planes x 4 weight bits = 16 conversions per output per row-tile), noise on;
//! - backward: FP4 x INT4, the same layer's `Wᵀ·δ` (stored 784 x 256), batch 64, radix-4
//!   exponent planes with two sign passes, noise on.

use imcc_runtime::config::*;
use imcc_runtime::formats::radix4;
use imcc_runtime::sim::{Events, GAMMA, Gains, InputBatch, MIX1, MIX2, StoredMatrix, Tile, kernel};
use ndarray::{Array2, ArrayView2};
use std::hint::black_box;
use std::time::Instant;

fn chip() -> HardwareConfig {
    HardwareConfig {
        rows: 1152,
        cols: 256,
        cores: 16,
        input: InputMode::BitSerial,
        signs: SignMode::TwoPass,
        skip_empty_planes: true,
        adc: AdcConfig { bits: 8, adaptability: Adaptability::Full, zero: AdcZero::Unsigned },
        noise: NoiseConfig {
            sigma_lsb: 0.05,
            scaling: NoiseScaling::PhysicalRows,
            gain_mismatch: 0.0,
            dac_error: 0.0,
            chip_seed: 1,
        },
        energy: ImcEnergy {
            column_eval: 0.35e-12,
            adc_conversion: 0.75e-12,
            shift_add: 0.1e-12,
            array_write_bit: 0.05e-12,
            move_bit: 0.02e-12,
            accounting: EnergyAccounting::Conversions,
        },
        digital: DigitalEnergy {
            node_scale: 0.3,
            int4_add: 0.015e-12,
            int4_mult: 0.05e-12,
            int8_add: 0.03e-12,
            int8_mult: 0.2e-12,
            int32_add: 0.1e-12,
            int32_mult: 3.1e-12,
            fp16_add: 0.4e-12,
            fp16_mult: 1.1e-12,
            fp32_add: 0.9e-12,
            fp32_mult: 3.7e-12,
            sram_read_64b: 10e-12,
            dram_access_64b: 1.3e-9,
            operand_sram_share: 0.5,
            dram_bits_per_weight: 0.0,
        },
        timing: Timing {
            evaluate: 10e-9,
            conversion: 39e-9,
            columns_per_adc: 1,
            dac_settle: 0.0,
            write_bandwidth: 256e9,
            input_bandwidth: 256e9,
            int4_ops: 2e12,
            int8_ops: 1e12,
            fp16_ops: 0.5e12,
            f32_ops: 0.25e12,
            elementwise_ops: 64e9,
        },
    }
}

/// Median wall time of `f` over `reps` runs after a warm-up, in seconds.
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    median(31, || {
        black_box(a.dot(&b));
    })
}

fn main() {
    let mut s = 7u64;
    let (batch, n_in, n_out) = (64usize, 784usize, 256usize);
    let w = Array2::from_shape_fn((n_out, n_in), |_| (lcg(&mut s) % 15) as i32 - 7);
    let x = Array2::from_shape_fn((batch, n_in), |_| (lcg(&mut s) % 16) as i32);
    // Errors: a realistic radix-4 spread, GradScale'd, quantized on the even grid.
    let d = Array2::from_shape_fn((batch, n_out), |_| {
        let u = (lcg(&mut s) % 1_000_000) as f32 / 1e6;
        let sign = if lcg(&mut s).is_multiple_of(2) { 1.0 } else { -1.0 };
        sign * u.powi(3)
    });
    let sc = radix4::gradscale(radix4::max_abs(&d));
    let mut dcodes = Array2::<i8>::zeros(d.dim());
    radix4::encode(&d, 8, Phase::Even, sc, &mut dcodes);
    let wt = w.t().as_standard_layout().to_owned();

    let hw = chip();
    println!("tile simulator vs f32 GEMM of the same shape (median of 31 runs; the GEMM on one thread)");
    println!("popcount kernel: {:?}", kernel::detect());
    let cases = [(kernel::detect(), 1usize), (kernel::detect(), 2), (kernel::KernelPath::Portable, 1)];
    for (path, threads) in cases {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| {
        let mut tile = Tile::new(&hw).expect("chip").with_kernel(path);
        let mut ev = Events::default();
        let fwd = tile.program(&StoredMatrix { codes: w.view(), bits: 4, signed: true }, 1, &mut ev).expect("program");
        let bwd = tile.program(&StoredMatrix { codes: wt.view(), bits: 4, signed: true }, 2, &mut ev).expect("program");
        let xin = InputBatch::Int { codes: x.view(), bits: 4, signed: false };
        let din = InputBatch::Radix4 { codes: dcodes.view(), levels: 8 };
        let mut seed = 0u64;
        let mut ev_f = Events::default();
        let t_fwd = median(31, || {
            seed += 1;
            ev_f = Events::default();
            black_box(tile.mvm(&fwd, &xin, &Gains::Uniform(2.0), seed, &mut ev_f).expect("mvm"));
        });
        let mut ev_b = Events::default();
        let t_bwd = median(31, || {
            seed += 1;
            ev_b = Events::default();
            black_box(tile.mvm(&bwd, &din, &Gains::Uniform(2.0), seed, &mut ev_b).expect("mvm"));
        });
        let xf = x.mapv(|v| v as f32);
        let wtf = wt.mapv(|v| v as f32);
        let g_fwd = gemm(xf.view(), wtf.view());
        let df = d.clone();
        let wf = w.mapv(|v| v as f32);
        let g_bwd = gemm(df.view(), wf.view());
        println!("\n[{path:?} kernel, simulator on {threads} thread{}]", if threads == 1 { "" } else { "s" });
        println!(
            "forward  INT4xINT4 784x256 b64: sim {:.3} ms, f32 GEMM {:.3} ms, ratio {:.2}x ({} conversions, {:.1} ns each)",
            t_fwd * 1e3,
            g_fwd * 1e3,
            t_fwd / g_fwd,
            ev_f.conversions,
            t_fwd * 1e9 / ev_f.conversions as f64
        );
        println!(
            "backward FP4xINT4 784x256 b64: sim {:.3} ms, f32 GEMM {:.3} ms, ratio {:.2}x ({} conversions, {:.1} ns each, {} planes skipped)",
            t_bwd * 1e3,
            g_bwd * 1e3,
            t_bwd / g_bwd,
            ev_b.conversions,
            t_bwd * 1e9 / ev_b.conversions as f64,
            ev_b.skipped_planes
        );
        });
    }
    if let Some(ns) = conversion_floor() {
        println!(
            "\nthis CPU's floor for a conversion (one thread): {ns:.2} ns: the irreducible work of the \
             AVX-512 kernel per conversion (half a SplitMix64 finalizer, an eighth of a 64-bit \
             gather from an L1-resident table, the code's select and accumulate), timed alone"
        );
    }
}

/// Nanoseconds per conversion of a loop that does only what no conversion kernel can avoid:
/// sixteen counter-based draws (three 64-bit multiplies per eight lanes), two eight-lane 64-bit
/// gathers from a 32 KiB table at the drawn indices, and a masked select-and-add per lane. `None`
/// without AVX-512.
fn conversion_floor() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
        let table: Vec<u64> = (0..4096u64).map(|i| i.wrapping_mul(GAMMA)).collect();
        let n = 1usize << 22;
        // SAFETY: the features were detected above.
        let t = median(31, || {
            black_box(unsafe { floor_loop(&table, n) });
        });
        return Some(t * 1e9 / n as f64);
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn floor_loop(table: &[u64], n: usize) -> u64 {
    use std::arch::x86_64::*;
    let (m1, m2) = (_mm512_set1_epi64(MIX1 as i64), _mm512_set1_epi64(MIX2 as i64));
    let step = _mm512_set1_epi64(GAMMA.wrapping_mul(8) as i64);
    let mask = _mm512_set1_epi32(4095);
    let mut z = _mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1);
    let mut acc = _mm512_setzero_si512();
    for _ in 0..n / 16 {
        let mut r = _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z));
        r = _mm512_mullo_epi64(r, m1);
        r = _mm512_xor_si512(r, _mm512_srli_epi64::<27>(r));
        r = _mm512_mullo_epi64(r, m2);
        r = _mm512_xor_si512(r, _mm512_srli_epi64::<31>(r));
        z = _mm512_add_epi64(z, step);
        let at = _mm512_and_si512(r, mask);
        // SAFETY: every index is below 4096, the table's length.
        let (lo, hi) = unsafe {
            (
                _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(at), table.as_ptr().cast()),
                _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(at), table.as_ptr().cast()),
            )
        };
        let keep = _mm512_cmplt_epu64_mask(r, lo);
        acc = _mm512_mask_add_epi64(acc, keep, acc, hi);
    }
    let mut out = [0u64; 8];
    // SAFETY: `out` holds eight lanes.
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), acc) };
    out.iter().fold(0, |a, &b| a ^ b)
}
