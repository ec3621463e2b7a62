//! Labelled, seeded random streams.
//!
//! Every component draws from its own stream derived from `(run seed, label)`, so adding a
//! component (or a phase, or a provider) never shifts another component's draws
//! (`docs/architecture.md`, "Determinism"). The generator is ChaCha8, pinned in `Cargo.toml`.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator every stream uses.
pub type Stream = ChaCha8Rng;

/// FNV-1a 64 over the label: stable across platforms, Rust versions and runs
/// (unlike `std::hash`, whose output is not guaranteed).
pub fn fnv1a(label: &str) -> u64 {
    let mut h = Fnv1a::new();
    h.update(label.as_bytes());
    h.finish()
}

/// [`fnv1a`] fed piece by piece (also as a [`std::fmt::Write`], so a long description is
/// hashed as it is formatted, never held whole): the hash of the concatenation.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// Nothing hashed yet.
    pub const fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `bytes` after what came before.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a::new()
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.update(s.as_bytes());
        Ok(())
    }
}

/// splitmix64 step: a good 64-bit mixer for expanding seeds.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit child seed for `(seed, label)`; use it to derive further streams.
pub fn child_seed(seed: u64, label: &str) -> u64 {
    let mut s = seed ^ fnv1a(label).rotate_left(17);
    splitmix64(&mut s);
    splitmix64(&mut s)
}

/// The stream for `(seed, label)`, e.g. `stream(seed, "fault/primary")`.
pub fn stream(seed: u64, label: &str) -> Stream {
    let mut s = child_seed(seed, label);
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_seed_and_label_same_stream_other_label_other_stream() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "a"), |r, _: u64| Some(r.random()))
            .collect();
        let a2: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "a"), |r, _: u64| Some(r.random()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "b"), |r, _: u64| Some(r.random()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(8, "a"), |r, _: u64| Some(r.random()))
            .collect();
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    /// First draw of `stream(42, "fault/primary")` with the pinned rand/rand_chacha.
    const PINNED: u64 = 16_977_324_772_275_155_896;

    #[test]
    fn streams_are_pinned() {
        // Guards the determinism promise across dependency updates: if this changes,
        // every recorded seed in users' CI reproduces something else.
        let mut r = stream(42, "fault/primary");
        let v: u64 = r.random();
        assert_eq!(
            v, PINNED,
            "stream(42, \"fault/primary\") changed: recorded seeds no longer reproduce"
        );
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
