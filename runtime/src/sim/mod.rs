//! The IMC tile simulator: MVMs of any size on arrays of `rows x cols`, bit-true to the BPBS
//! (bit-parallel weights, bit-serial inputs) scheme of DOMAIN.md §4, with per-conversion ADC,
//! noise, and event counts for the energy model.
//!
//! `y = W·x` for a stored `outputs x reduction` matrix `W` is computed per row-tile `t`, input
//! plane or DAC cycle `i` and weight bit `m` as
//! `y_j = Σ_t Σ_i Σ_m s_i·w_i · s_m·2^m · ADC(Σ_{k∈t} x_k^(i) w_jk^(m) + n)`:
//! shift-and-add and the sum over row-tiles are digital. Column-tiles only decide placement
//! (and which physical column's mismatch applies); they do not change the arithmetic.
//!
//! The backward MVM `Wᵀ·δ` runs on a stored `Wᵀ` copy and the weight-gradient MVM `δ·aᵀ` on
//! the batch's activations stored `N_in x batch`, with each output neuron's errors streamed as
//! an input vector: both are this same MVM with another stored matrix and input kind.

mod adc;
mod bits;
mod cache;
mod convert;
mod events;
mod input;
pub mod kernel;
mod matrix;
mod noise;

pub(crate) use noise::finalize;
/// The SplitMix64 constants of the noise streams (the speed benchmark times the same
/// arithmetic).
pub use noise::{GAMMA, MIX1, MIX2};
pub mod ops;
mod run;

pub use events::Events;
pub use input::InputBatch;
pub use matrix::{Programmed, StoredMatrix};

use crate::config::{Adaptability, AdcZero, HardwareConfig};
use adc::CodeTable;
use cache::TableCache;
use input::Schedule;
use kernel::KernelPath;
use ndarray::Array2;
use ndarray::Axis;
use rayon::prelude::*;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A rejected parameter or operand. The simulator never panics on bad input.
#[derive(Debug, Clone, PartialEq)]
pub enum SimError {
    /// A hardware or ADC parameter is out of range.
    BadParameter(String),
    /// An operand does not fit its declared format or shape.
    BadOperand(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::BadParameter(m) => write!(f, "bad simulator parameter: {m}"),
            SimError::BadOperand(m) => write!(f, "bad MVM operand: {m}"),
        }
    }
}

impl std::error::Error for SimError {}

/// ADC range gains for one MVM: one for every plane, or one per input plane (bit, exponent or
/// DAC cycle; both sign passes of a plane share its gain).
#[derive(Debug, Clone, PartialEq)]
pub enum Gains {
    /// The same gain for every plane.
    Uniform(f64),
    /// A gain per plane, `Tile::planes(input)` of them.
    PerPlane(Vec<f64>),
}

/// Statistics of the noiseless column sums of one MVM call, per input plane: what an ADC range
/// policy needs (counts in unit counts; DAC planes in level units).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlaneStats {
    /// Conversions per plane.
    pub count: Vec<u64>,
    /// Sum of column sums per plane.
    pub sum: Vec<f64>,
    /// Sum of squared column sums per plane.
    pub sum_sq: Vec<f64>,
    /// Largest column sum magnitude per plane.
    pub max: Vec<f64>,
    /// Conversions per plane whose noiseless sum lies beyond the ADC range (beyond the
    /// outermost codes' bins): clipped by the range, not by noise.
    pub clipped: Vec<u64>,
}

impl PlaneStats {
    fn reset(&mut self, planes: usize) {
        *self = PlaneStats {
            count: vec![0; planes],
            sum: vec![0.0; planes],
            sum_sq: vec![0.0; planes],
            max: vec![0.0; planes],
            clipped: vec![0; planes],
        };
    }

    /// Records one block of integer sums `v = i + vmin` from the moments of their indices `i`,
    /// in exact integers (the same values as summing `v` directly): `Σv = Σi + n·vmin`,
    /// `Σv² = Σi² + 2·vmin·Σi + n·vmin²`.
    fn record_moments(&mut self, plane: usize, m: &convert::Moments, vmin: i64) {
        let n = m.count as i64;
        let (si, qi) = (m.sum as i64, m.sum_sq as i64);
        let s = si + n * vmin;
        let q = qi + 2 * vmin * si + n * vmin * vmin;
        let max = if n == 0 { 0 } else { (m.lo as i64 + vmin).abs().max((m.hi as i64 + vmin).abs()) };
        self.count[plane] += m.count;
        self.clipped[plane] += m.clipped;
        self.sum[plane] += s as f64;
        self.sum_sq[plane] += q as f64;
        self.max[plane] = self.max[plane].max(max as f64);
    }

    fn merge(&mut self, o: &PlaneStats) {
        for p in 0..self.count.len().min(o.count.len()) {
            self.count[p] += o.count[p];
            self.sum[p] += o.sum[p];
            self.sum_sq[p] += o.sum_sq[p];
            self.max[p] = self.max[p].max(o.max[p]);
            self.clipped[p] += o.clipped[p];
        }
    }

    fn record_reals(&mut self, plane: usize, v: &[f64]) {
        self.count[plane] += v.len() as u64;
        for &x in v {
            self.sum[plane] += x;
            self.sum_sq[plane] += x * x;
            self.max[plane] = self.max[plane].max(x.abs());
        }
    }
}

/// A chip's arrays, with cached ADC code tables.
pub struct Tile {
    hw: HardwareConfig,
    path: KernelPath,
    /// Complete ADC code tables, shared by the workers, bounded in bytes.
    complete: Mutex<TableCache<Arc<CodeTable>>>,
    /// Stored rows up to which a table is built completely before a call.
    eager_rows: u64,
    /// Per worker thread: lazily built ADC code tables (those too large to build completely),
    /// bounded in bytes, and scratch buffers.
    tables: Vec<Mutex<run::Worker>>,
}

/// Input vectors per parallel task (fixed, so results do not depend on the thread count).
const ROW_CHUNK: usize = 8;

/// Conversions (at most) below which an MVM runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;

impl fmt::Debug for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tile").field("hw", &self.hw).field("path", &self.path).finish()
    }
}

impl Tile {
    /// Validates the hardware parameters.
    pub fn new(hw: &HardwareConfig) -> Result<Tile, SimError> {
        let bad = |m: String| Err(SimError::BadParameter(m));
        if hw.rows == 0 || hw.cols == 0 {
            return bad(format!("array must have rows and columns, not {} x {}", hw.rows, hw.cols));
        }
        if hw.cores == 0 {
            return bad("the chip needs at least one core".into());
        }
        if hw.adc.bits == 0 || hw.adc.bits > 24 {
            return bad(format!("ADC bits must be 1..=24, not {}", hw.adc.bits));
        }
        if hw.adc.bits < 2 && hw.adc.zero != AdcZero::Unsigned {
            return bad("a signed ADC needs at least 2 bits".into());
        }
        for (name, v) in [
            ("noise sigma", hw.noise.sigma_lsb),
            ("gain mismatch", hw.noise.gain_mismatch),
            ("DAC error", hw.noise.dac_error),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} must be finite and >= 0, not {v}"));
            }
        }
        if let Adaptability::Gains(g) = &hw.adc.adaptability
            && (g.is_empty() || g.iter().any(|x| !(*x > 0.0 && x.is_finite())))
        {
            return bad(format!("ADC gains must be a non-empty list of positive numbers, not {g:?}"));
        }
        let workers = rayon::current_num_threads().max(1);
        Ok(Tile {
            hw: hw.clone(),
            path: kernel::detect(),
            complete: Mutex::new(TableCache::default()),
            eager_rows: run::EAGER_ROWS,
            tables: (0..workers).map(|_| Mutex::new(run::Worker::default())).collect(),
        })
    }

    /// Bounds the complete ADC code tables the tile keeps, and the lazily built ones each
    /// worker keeps, to `bytes` each (default 16 MiB). Tables are rebuilt when needed again,
    /// so results never depend on the budget.
    pub fn with_table_budget(mut self, bytes: usize) -> Tile {
        self.complete = Mutex::new(TableCache::with_budget(bytes));
        for t in &mut self.tables {
            *t = Mutex::new(run::Worker::with_table_budget(bytes));
        }
        self
    }

    /// Builds code tables completely before a call only when they store at most `rows` rows
    /// (default 4,096; 0: every table lazily, per worker). For differential tests: results are
    /// identical either way.
    pub fn with_complete_tables_up_to(mut self, rows: u64) -> Tile {
        self.eager_rows = rows;
        self
    }

    /// Forces a popcount kernel (for differential tests and benchmarks); results are identical.
    pub fn with_kernel(mut self, path: KernelPath) -> Tile {
        self.path = path;
        self
    }

    /// Bytes of ADC code tables cached now, over all workers (bounded: memory stays flat
    /// however many steps a run takes).
    pub fn cached_table_bytes(&self) -> usize {
        let lazy: usize = self.tables.iter().map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).table_bytes()).sum();
        lazy + self.complete.lock().unwrap_or_else(|e| e.into_inner()).bytes()
    }

    /// The hardware.
    pub fn hardware(&self) -> &HardwareConfig {
        &self.hw
    }

    /// Writes `m` into arrays. `placement` identifies where (which arrays) it goes, which fixes
    /// the static column mismatch it sees. Counts the bits written.
    pub fn program(&self, m: &StoredMatrix<'_>, placement: u64, ev: &mut Events) -> Result<Programmed, SimError> {
        let mut p = matrix::pack(m, self.hw.rows as usize)?;
        ev.bits_written += (m.codes.len() as u64) * m.bits as u64;
        if self.hw.noise.gain_mismatch > 0.0 {
            let (bits, cols, outputs) = (p.bits as usize, self.hw.cols as u64, p.outputs);
            let col_tiles = p.col_tiles(cols as usize) as u64;
            p.gain = vec![1.0; p.row_tiles() * bits * outputs];
            for t in 0..p.row_tiles() {
                for m in 0..bits {
                    for j in 0..outputs {
                        let column = (j * bits + m) as u64;
                        let array = noise::mix(placement) ^ (t as u64 * col_tiles + column / cols);
                        let eps = noise::static_normal(self.hw.noise.chip_seed, array, column % cols);
                        p.gain[(t * bits + m) * outputs + j] = (1.0 + self.hw.noise.gain_mismatch * eps) as f32;
                    }
                }
            }
        }
        Ok(p)
    }

    /// The native full scale (unit counts at gain 1: `rows · level_max`) of each input plane an
    /// input of this kind uses on this chip.
    pub fn plane_full_scales(&self, x: &InputBatch<'_>) -> Result<Vec<f64>, SimError> {
        let sched = Schedule::new(&self.hw, x)?;
        let mut fs = vec![0.0; sched.planes];
        for g in &sched.groups {
            fs[g.plane] = self.hw.rows as f64 * g.level_max;
        }
        Ok(fs)
    }

    /// Number of input planes (gains) an input of this kind uses on this chip.
    pub fn planes(&self, x: &InputBatch<'_>) -> Result<usize, SimError> {
        Ok(Schedule::new(&self.hw, x)?.planes)
    }

    /// How every row-tile and plane group of `job` converts: its converter, exact tables or
    /// direct sampling, and its complete code table when it gets one (few stored rows: from
    /// the shared cache, or built now, once for all workers).
    fn plan_groups(&self, job: &run::Job<'_, '_>) -> Vec<run::GroupPlan> {
        let groups = job.sched.groups.len();
        let mut cache = self.complete.lock().unwrap_or_else(|e| e.into_inner());
        (0..job.w.row_tiles() * groups)
            .map(|tg| {
                let (conv, vmin, vmax) = job.converter(tg / groups, &job.sched.groups[tg % groups]);
                let rows = if job.exact { CodeTable::stored_rows(&conv, vmin, vmax) } else { None };
                let exact = rows.is_some();
                let table = rows.is_some_and(|r| r <= self.eager_rows).then(|| {
                    let key = CodeTable::key(&conv, vmin, vmax);
                    Arc::clone(cache.get(key, || Arc::new(CodeTable::complete(conv, vmin, vmax))))
                });
                run::GroupPlan { conv, vmin, vmax, exact, table }
            })
            .collect()
    }

    fn check_gain(&self, g: f64) -> Result<(), SimError> {
        if !(g > 0.0 && g.is_finite()) {
            return Err(SimError::BadParameter(format!("ADC gain must be positive, not {g}")));
        }
        if let Adaptability::Gains(list) = &self.hw.adc.adaptability
            && !list.iter().any(|x| (x - g).abs() <= 1e-9 * g.max(1.0))
        {
            return Err(SimError::BadParameter(format!("ADC gain {g} is not one of the chip's gains {list:?}")));
        }
        Ok(())
    }

    /// `y = W·x` for every input vector (row of `x`): returns `n x outputs`, in the units of the
    /// codes (integer products; radix-4 inputs as `±4^-k`). `seed` fixes the conversion noise;
    /// each input vector has its own stream, so results do not depend on evaluation order.
    pub fn mvm(
        &mut self,
        w: &Programmed,
        x: &InputBatch<'_>,
        gains: &Gains,
        seed: u64,
        ev: &mut Events,
    ) -> Result<Array2<f64>, SimError> {
        self.mvm_with_stats(w, x, gains, seed, ev, &mut PlaneStats::default())
    }

    /// [`Tile::mvm`], also recording statistics of the noiseless column sums per plane (for
    /// ADC range policies).
    pub fn mvm_with_stats(
        &mut self,
        w: &Programmed,
        x: &InputBatch<'_>,
        gains: &Gains,
        seed: u64,
        ev: &mut Events,
        stats: &mut PlaneStats,
    ) -> Result<Array2<f64>, SimError> {
        let (n, red) = x.dim();
        if red != w.reduction {
            return Err(SimError::BadOperand(format!(
                "input length {red} does not match the stored matrix's {}",
                w.reduction
            )));
        }
        if w.tile_rows != self.hw.rows as usize {
            return Err(SimError::BadOperand("matrix was programmed for another array size".into()));
        }
        let sched = Schedule::new(&self.hw, x)?;
        let gain_of: Vec<f64> = match gains {
            Gains::Uniform(g) => vec![*g; sched.planes],
            Gains::PerPlane(v) if v.len() == sched.planes => v.clone(),
            Gains::PerPlane(v) => {
                return Err(SimError::BadParameter(format!("{} gains given for {} planes", v.len(), sched.planes)));
            }
        };
        for &g in &gain_of {
            self.check_gain(g)?;
        }
        let mut job = run::Job {
            w,
            x,
            sched: &sched,
            gain_of: &gain_of,
            hw: &self.hw,
            path: self.path,
            seed,
            exact: sched.exact_levels && w.gain.is_empty(),
            plans: &[],
        };
        let plans = self.plan_groups(&job);
        job.plans = &plans;
        let mut out = Array2::<f64>::zeros((n, w.outputs));
        let caches = &self.tables;
        // Input vectors are independent (each has its own noise stream), so fixed chunks of
        // them run in parallel; events and statistics are merged in chunk order, so the result
        // does not depend on the number of threads. Tables too large to build completely are
        // built lazily, per worker thread (their contents are a pure function of the key).
        let run_chunk = |(ci, chunk)| {
            let slot = rayon::current_thread_index().unwrap_or(0) % caches.len();
            let mut guard = caches[slot].lock().unwrap_or_else(|e| e.into_inner());
            job.chunk(ci * ROW_CHUNK, chunk, &mut guard)
        };
        // A small MVM runs on the calling thread: waking the pool would cost more than it
        // saves. The chunks and their merge order are the same either way.
        let work = n * w.row_tiles() * sched.groups.len() * w.bits as usize * w.outputs;
        let chunks = out.axis_chunks_iter_mut(Axis(0), ROW_CHUNK);
        let chunk_results: Vec<Result<(Events, PlaneStats), SimError>> = if work < PARALLEL_WORK {
            chunks.into_iter().enumerate().map(run_chunk).collect()
        } else {
            chunks.into_par_iter().enumerate().map(run_chunk).collect()
        };
        stats.reset(sched.planes);
        for res in chunk_results {
            let (e, st) = res?;
            *ev += e;
            stats.merge(&st);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
