//! Running one MVM on the tile, per chunk of input vectors: every row-tile, plane group and
//! weight bit, converted either through the exact code tables (integer column sums) or
//! sample by sample (non-integer levels, gain mismatch).

use super::adc::{CodeTable, Converter};
use super::cache::TableCache;
use super::convert;
use super::input::{self, Group, Schedule};
use super::kernel::{self, KernelPath};
use super::matrix::Programmed;
use super::{Events, InputBatch, PlaneStats, SimError, noise};
use crate::config::{HardwareConfig, NoiseScaling};
use ndarray::{ArrayViewMut2, Axis};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::Arc;

/// What every chunk of one MVM shares.
pub(super) struct Job<'a, 'x> {
    pub w: &'a Programmed,
    pub x: &'a InputBatch<'x>,
    pub sched: &'a Schedule,
    /// The ADC gain of each input plane.
    pub gain_of: &'a [f64],
    pub hw: &'a HardwareConfig,
    pub path: KernelPath,
    pub seed: u64,
    /// Integer levels and no gain mismatch: convert through the exact code tables.
    pub exact: bool,
    /// Per row-tile `t` and plane group `g` (at `t · groups + g`): its converter and how it
    /// converts, decided once per call.
    pub plans: &'a [GroupPlan],
}

/// How one plane group converts on one row-tile during a call.
pub(super) struct GroupPlan {
    pub conv: Converter,
    /// The integer column sums the group can produce there.
    pub vmin: i64,
    pub vmax: i64,
    /// Through exact code tables (integer sums, a table that fits); otherwise sampled
    /// directly.
    pub exact: bool,
    /// Its complete code table when the tile built one (few stored rows); otherwise tables
    /// are built lazily per worker.
    pub table: Option<Arc<CodeTable>>,
}

/// One worker's state: its lazily built code tables and scratch buffers, reused across
/// chunks and calls.
#[derive(Default)]
pub(super) struct Worker {
    tables: TableCache<CodeTable>,
    buf: Buffers,
    masks: Vec<u64>,
    keys: Vec<u64>,
    rngs: Vec<Xoshiro256PlusPlus>,
}

/// Stored rows of a code table small enough to build completely before a call (in parallel,
/// shared by the workers); larger tables are built row by row as sums occur, per worker.
pub(super) const EAGER_ROWS: u64 = 4096;

impl Worker {
    /// A worker whose lazily built tables are bounded to `bytes`.
    pub fn with_table_budget(bytes: usize) -> Worker {
        Worker { tables: TableCache::with_budget(bytes), ..Default::default() }
    }

    /// Bytes of its cached tables.
    pub fn table_bytes(&self) -> usize {
        self.tables.bytes()
    }
}

/// One worker's scratch buffers, reused across its input vectors.
#[derive(Default)]
struct Buffers {
    counts: Vec<u32>,
    sums: Vec<i64>,
    idx: Vec<u32>,
    acc: Vec<i64>,
    real_sums: Vec<f64>,
    /// The nonzero words of a single-term drive, with their positions.
    driven: Vec<(usize, u64)>,
    convert: convert::Scratch,
}

impl Buffers {
    /// Sizes the per-output buffers for `outputs` outputs.
    fn fit(&mut self, outputs: usize) {
        self.counts.resize(outputs, 0);
        self.sums.resize(outputs, 0);
        self.idx.resize(outputs, 0);
        self.acc.resize(outputs, 0);
        self.real_sums.resize(outputs, 0.0);
    }
}

/// One plane group of one row-tile, as converted.
struct PlaneGroup<'g> {
    t: usize,
    /// The draw number of this group's first conversion within its input vector.
    counter: u64,
    /// The group's plan.
    plan: &'g GroupPlan,
    /// Mask words per drive (the row-tile's rows, not the array's).
    mw: usize,
    g: &'g input::Group,
}

impl Job<'_, '_> {
    /// The converter of plane group `g` on row-tile `t`, and the integer column sums the group
    /// can produce there.
    pub(super) fn converter(&self, t: usize, g: &Group) -> (Converter, i64, i64) {
        let (hw, rows_here) = (self.hw, self.w.rows_in(t));
        let noise_rows = match hw.noise.scaling {
            NoiseScaling::PhysicalRows => hw.rows as f64,
            NoiseScaling::DrivenRows => rows_here as f64,
        };
        let conv = Converter::new(
            hw.adc.bits,
            hw.adc.zero,
            hw.noise.sigma_lsb,
            hw.rows as f64,
            noise_rows,
            g.level_max,
            self.gain_of[g.plane],
        );
        let vmax = (rows_here as f64 * g.level_max) as i64;
        (conv, if g.signed_sum { -vmax } else { 0 }, vmax)
    }

    /// Input vectors `first..` (the rows of `out`): returns the chunk's events and statistics.
    ///
    /// Per row-tile, the drive masks of every vector of the chunk first; then per plane group
    /// every vector, so a group's code table stays in cache across the chunk. Each vector's
    /// draws depend only on its key and draw numbers (and its direct-path stream is consumed
    /// in the same order as vector by vector), so the order does not change any code.
    pub(super) fn chunk(
        &self,
        first: usize,
        mut out: ArrayViewMut2<'_, f64>,
        worker: &mut Worker,
    ) -> Result<(Events, PlaneStats), SimError> {
        let (hw, w) = (self.hw, self.w);
        let (outputs, rows) = (w.outputs, out.nrows());
        let mut ev = Events::default();
        let mut stats = PlaneStats::default();
        stats.reset(self.sched.planes);
        let Worker { tables, buf, masks, keys, rngs } = worker;
        buf.fit(outputs);
        keys.clear();
        keys.extend((0..rows).map(|r| noise::row_key(self.seed, (first + r) as u64)));
        rngs.clear();
        if self.plans.iter().any(|p| !p.exact) {
            rngs.extend(keys.iter().map(|&k| noise::stream(k)));
        }
        let n_groups = self.sched.groups.len();
        let conversions = (outputs * w.bits as usize) as u64;
        for t in 0..w.row_tiles() {
            let rows_here = w.rows_in(t);
            // Masks cover the row-tile's rows only (a short reduction uses few words).
            let mw = rows_here.div_ceil(64).max(1);
            let stride = self.sched.masks * mw;
            masks.resize(rows * stride, 0);
            for (r, m) in masks.chunks_exact_mut(stride).enumerate() {
                self.sched.fill_masks(self.x, first + r, t * w.tile_rows, rows_here, mw, m)?;
            }
            for (gi, g) in self.sched.groups.iter().enumerate() {
                let plan = &self.plans[t * n_groups + gi];
                // Every conversion of a vector has its own draw number; each weight bit's
                // block starts on an even one (a whole 64-bit draw).
                let counter = ((t * n_groups + gi) * w.bits as usize * outputs.next_multiple_of(2)) as u64;
                let pg = PlaneGroup { t, counter, plan, mw, g };
                for (r, mut out_row) in out.axis_iter_mut(Axis(0)).enumerate() {
                    let m = &masks[r * stride..(r + 1) * stride];
                    let driven: u64 = g
                        .terms
                        .iter()
                        .map(|tm| {
                            m[tm.mask * mw..(tm.mask + 1) * mw].iter().map(|x| x.count_ones() as u64).sum::<u64>()
                        })
                        .sum();
                    if driven == 0 && hw.skip_empty_planes {
                        ev.skipped_planes += 1;
                        ev.skipped_conversions += conversions;
                        continue;
                    }
                    ev.conversions += conversions;
                    ev.column_evals += conversions;
                    ev.shift_adds += conversions;
                    ev.input_bits += driven;
                    let out_row = out_row.as_slice_mut().expect("standard layout");
                    if plan.exact {
                        self.exact_group(&pg, m, out_row, keys[r], tables, buf, &mut stats);
                    } else {
                        self.sampled_group(&pg, m, out_row, &mut rngs[r], buf, &mut stats);
                    }
                }
            }
        }
        Ok((ev, stats))
    }

    /// A plane group with integer levels: column sums through the exact code table. Codes
    /// accumulate exactly as integers over the weight bits (the near-memory shift-and-add);
    /// the plane's scale is applied once.
    #[allow(clippy::too_many_arguments)]
    fn exact_group(
        &self,
        pg: &PlaneGroup<'_>,
        masks: &[u64],
        out_row: &mut [f64],
        key: u64,
        tables: &mut TableCache<CodeTable>,
        buf: &mut Buffers,
        stats: &mut PlaneStats,
    ) {
        let (w, g, conv, t, mw) = (self.w, pg.g, pg.plan.conv, pg.t, pg.mw);
        let (outputs, bits, words) = (w.outputs, w.bits as usize, w.words);
        let (vmin, vmax) = (pg.plan.vmin, pg.plan.vmax);
        // The tile's complete table, or this worker's lazily built one.
        let shared = pg.plan.table.as_deref();
        let mut lazy = match shared {
            Some(_) => None,
            None => Some(tables.get(CodeTable::key(&conv, vmin, vmax), || CodeTable::new(conv, vmin, vmax))),
        };
        let mask_of = |tm: &input::Term| &masks[tm.mask * mw..(tm.mask + 1) * mw];
        buf.acc.fill(0);
        let single = g.terms.len() == 1 && g.terms[0].level == 1 && vmin == 0;
        if single {
            buf.driven.clear();
            buf.driven.extend(mask_of(&g.terms[0]).iter().enumerate().filter(|(_, x)| **x != 0).map(|(w, &x)| (w, x)));
        }
        let mut group_moments = convert::Moments::default();
        for m in 0..bits {
            let planes = &w.planes[((t * bits + m) * words) * outputs..((t * bits + m + 1) * words) * outputs];
            if single {
                kernel::sums(self.path, &buf.driven, planes, outputs, &mut buf.idx);
            } else {
                buf.sums.fill(0);
                for tm in &g.terms {
                    buf.counts.fill(0);
                    kernel::accumulate(self.path, mask_of(tm), planes, outputs, &mut buf.counts);
                    for (s, &c) in buf.sums.iter_mut().zip(&buf.counts) {
                        *s += tm.level * c as i64;
                    }
                }
                for (i, &s) in buf.idx.iter_mut().zip(&buf.sums) {
                    *i = (s - vmin) as u32;
                }
            }
            let weight = w.bit_weight_int(m as u32);
            let counter = pg.counter + (m * outputs.next_multiple_of(2)) as u64;
            let (idx, acc, scratch) = (&buf.idx, &mut buf.acc, &mut buf.convert);
            let table = shared.or(lazy.as_deref()).expect("a shared or a lazy table");
            group_moments.merge(&convert::convert_block(self.path, table, idx, weight, acc, key, counter, scratch));
            // Rows the pass met unbuilt: only a lazy table has them.
            match (shared, lazy.as_deref_mut()) {
                (Some(t), _) => {
                    convert::finish_slow(idx, weight, acc, key, counter, scratch, |i, r| t.code_built(i, r))
                }
                (None, Some(t)) => convert::finish_slow(idx, weight, acc, key, counter, scratch, |i, r| t.code(i, r)),
                (None, None) => unreachable!("a shared or a lazy table"),
            }
        }
        // Integer moments merged over the weight bits, recorded once: the same sums.
        stats.record_moments(g.plane, &group_moments, vmin);
        add_scaled(self.path, out_row, &buf.acc, g.weight * conv.lsb);
    }

    /// A plane group with non-integer levels or gain mismatch: each conversion sampled directly.
    fn sampled_group(
        &self,
        pg: &PlaneGroup<'_>,
        masks: &[u64],
        out_row: &mut [f64],
        rng: &mut Xoshiro256PlusPlus,
        buf: &mut Buffers,
        stats: &mut PlaneStats,
    ) {
        let (w, g, conv, t, mw) = (self.w, pg.g, pg.plan.conv, pg.t, pg.mw);
        let (outputs, bits, words) = (w.outputs, w.bits as usize, w.words);
        let plane_scale = g.weight * conv.lsb;
        for m in 0..bits {
            let planes = &w.planes[((t * bits + m) * words) * outputs..((t * bits + m + 1) * words) * outputs];
            buf.real_sums.fill(0.0);
            for tm in &g.terms {
                buf.counts.fill(0);
                let mask = &masks[tm.mask * mw..(tm.mask + 1) * mw];
                kernel::accumulate(self.path, mask, planes, outputs, &mut buf.counts);
                for (s, &c) in buf.real_sums.iter_mut().zip(&buf.counts) {
                    *s += tm.level_actual * c as f64;
                }
            }
            let gains = if w.gain.is_empty() {
                None
            } else {
                Some(&w.gain[(t * bits + m) * outputs..(t * bits + m + 1) * outputs])
            };
            let scale = plane_scale * w.bit_weight(m as u32);
            stats.record_reals(g.plane, &buf.real_sums);
            for (j, (o, &v)) in out_row.iter_mut().zip(&buf.real_sums).enumerate() {
                let v = gains.map_or(v, |gs| v * gs[j] as f64);
                // The sum the ADC sees (gain mismatch included) decides whether the range clips.
                stats.clipped[g.plane] += u64::from(conv.clips(v));
                *o += scale * conv.sample_direct(v, rng) as f64;
            }
        }
    }
}

/// `out[j] += scale · acc[j]`, multiplied and added separately (no fused multiply-add, so
/// every path rounds alike). The accumulators are far below 2⁵¹ (16-bit codes times the weight
/// bits), where `a as f64`, AVX-512DQ's conversion and the magic-number conversion of the
/// portable path are all exact.
fn add_scaled(path: KernelPath, out: &mut [f64], acc: &[i64], scale: f64) {
    let n = out.len().min(acc.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if convert::avx512_usable(path) {
        // SAFETY: AVX-512F and DQ were checked on this CPU.
        done = unsafe { add_scaled_avx512(&mut out[..n], &acc[..n], scale) };
    }
    let _ = path;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 2⁵² + 2⁵¹
    for (o, &a) in out[done..n].iter_mut().zip(&acc[done..n]) {
        debug_assert!(a.unsigned_abs() < 1 << 51);
        let exact = f64::from_bits(a.wrapping_add(MAGIC.to_bits() as i64) as u64) - MAGIC;
        *o += scale * exact;
    }
}

/// [`add_scaled`] eight at a time; returns how many it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn add_scaled_avx512(out: &mut [f64], acc: &[i64], scale: f64) -> usize {
    use std::arch::x86_64::*;
    let full = out.len() / 8 * 8;
    let sv = _mm512_set1_pd(scale);
    for j in (0..full).step_by(8) {
        // SAFETY: `j + 8 <= full <= len` of both (same length).
        unsafe {
            let a = _mm512_cvtepi64_pd(_mm512_loadu_si512(acc.as_ptr().add(j).cast()));
            let o = out.as_mut_ptr().add(j);
            _mm512_storeu_pd(o, _mm512_add_pd(_mm512_loadu_pd(o), _mm512_mul_pd(sv, a)));
        }
    }
    full
}
