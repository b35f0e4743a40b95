//! Seeded randomness of the simulator: per-input-vector noise streams (so results do not
//! depend on evaluation order or threads) and static, per-chip mismatch.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The first multiplier of the SplitMix64 finalizer.
pub const MIX1: u64 = 0xBF58_476D_1CE4_E5B9;
/// The second multiplier of the SplitMix64 finalizer.
pub const MIX2: u64 = 0x94D0_49BB_1331_11EB;

/// The SplitMix64 finalizer: a bijective mix of 64 bits.
#[inline(always)]
pub(crate) fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(MIX1);
    z = (z ^ (z >> 27)).wrapping_mul(MIX2);
    z ^ (z >> 31)
}

/// One SplitMix64 step: `γ` added, then the finalizer.
#[inline(always)]
pub(crate) fn mix(z: u64) -> u64 {
    finalize(z.wrapping_add(GAMMA))
}

/// The increment of SplitMix64 (the golden ratio in 64 bits).
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The noise key of input vector `row` of the MVM seeded `seed`.
pub(crate) fn row_key(seed: u64, row: u64) -> u64 {
    mix(seed ^ mix(row.wrapping_add(0x5EED)))
}

/// The sequential noise stream of a row key (the direct path's normal draws).
pub(crate) fn stream(key: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(key)
}

/// Uniform 32-bit draw number `counter` of the stream keyed `key`: half of the SplitMix64
/// output at position `counter / 2`, `mix(key + ⌊counter/2⌋·γ)` (the low half for even
/// counters). Counter-based, so any conversion's draw is computed on its own, in any order and
/// many at once (the conversion kernels vectorize exactly this).
#[inline(always)]
pub(crate) fn draw32(key: u64, counter: u64) -> u32 {
    (mix(key.wrapping_add((counter >> 1).wrapping_mul(GAMMA))) >> (32 * (counter & 1))) as u32
}

/// A standard normal value fixed by `(chip_seed, domain, index)`: static mismatch of one chip.
pub(crate) fn static_normal(chip_seed: u64, domain: u64, index: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(mix(chip_seed)
        ^ mix(domain)
        ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D)));
    StandardNormal.sample(&mut rng)
}
