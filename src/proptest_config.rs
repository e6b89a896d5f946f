//! The case budget and seed of the crate's property tests (`proptests` modules).
//!
//! CI runs every property with a fixed number of cases and a fixed seed, so a failure there
//! replays anywhere, and without failure persistence, so no run writes files into `src/`.
//! To fuzz longer by hand: `PROPTEST_CASES=100000 cargo test --release --lib proptests`;
//! `PROPTEST_RNG_SEED=N` picks another seed.

use proptest::test_runner::{Config, RngSeed};

/// The seed used unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x7067_666c_6970;

/// A config running `cases` cases (or `PROPTEST_CASES`) from the fixed seed (or
/// `PROPTEST_RNG_SEED`), printing a failing case instead of persisting it.
pub fn config(cases: u32) -> Config {
    // `Config::default()` has already read the PROPTEST_* variables.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config.failure_persistence = None;
    config
}
