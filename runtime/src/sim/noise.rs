//! Seeded randomness of the simulator: per-input-vector noise streams (so results do not
//! depend on evaluation order or threads) and static, per-chip mismatch.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// SplitMix64 finalizer: a bijective mix of 64 bits.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The noise stream of input vector `row` of the MVM seeded `seed`.
pub(crate) fn stream(seed: u64, row: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(seed ^ mix(row.wrapping_add(0x5EED))))
}

/// A standard normal value fixed by `(chip_seed, domain, index)`: static mismatch of one chip.
pub(crate) fn static_normal(chip_seed: u64, domain: u64, index: u64) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(mix(chip_seed)
        ^ mix(domain)
        ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D)));
    StandardNormal.sample(&mut rng)
}
