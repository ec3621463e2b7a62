//! Time as the pure core sees it: integer nanoseconds since run start.
//!
//! The core never reads a clock (see `docs/architecture.md`, "What each folder may import"): drivers pass
//! `now: Nanos` in. [`Dur`] is the serde form used in profiles and scenarios: a
//! humantime string such as `"250ms"`, `"1m30s"` or `"4m"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Nanoseconds since the start of a run (or a duration in nanoseconds).
pub type Nanos = u64;

/// Nanoseconds per microsecond.
pub const NS_PER_US: Nanos = 1_000;
/// Nanoseconds per millisecond.
pub const NS_PER_MS: Nanos = 1_000_000;
/// Nanoseconds per second.
pub const NS_PER_S: Nanos = 1_000_000_000;

/// 2^52: from here on, f64 values are integers.
const TWO_POW_52: f64 = 4_503_599_627_370_496.0;

/// Converts seconds (may be fractional) to nanoseconds, rounded half away from zero,
/// saturating (+∞ and beyond `Nanos::MAX` give `Nanos::MAX`) and clamping at 0 (negative
/// values and NaN give 0).
pub fn secs_f64_to_nanos(s: f64) -> Nanos {
    round_to_nanos(s * NS_PER_S as f64)
}

/// `x.round() as Nanos` (half away from zero; negative and NaN give 0, too large gives
/// `Nanos::MAX`), without the libm call `round` is on baseline x86-64 for the usual
/// non-negative values below 2^52: `t` is `x` truncated and `x - t` is exact (Sterbenz),
/// so `t + (x - t ≥ 0.5)` is the same integer (branch-free: the fraction is as good as
/// random). Converted through `i64`, exact in that range: one instruction each way on
/// x86-64, where `u64` ⇄ `f64` conversions take several.
#[inline]
pub fn round_to_nanos(x: f64) -> Nanos {
    if (0.0..TWO_POW_52).contains(&x) {
        let t = x as i64;
        (t + i64::from(x - t as f64 >= 0.5)) as Nanos
    } else {
        x.round() as Nanos
    }
}

/// Converts nanoseconds to fractional seconds.
pub fn nanos_to_secs_f64(n: Nanos) -> f64 {
    n as f64 / NS_PER_S as f64
}

/// A duration written as a humantime string in config files (`"250ms"`, `"1m30s"`).
///
/// Bare numbers are rejected on purpose: `timeout = 30` could mean seconds or
/// milliseconds, and guessing silently is the kind of bug this tool exists to expose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Nanos);

impl Dur {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Dur {
        Dur(ms * NS_PER_MS)
    }
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Dur {
        Dur(s * NS_PER_S)
    }
    /// The value in nanoseconds.
    pub const fn nanos(self) -> Nanos {
        self.0
    }
    /// The value as fractional seconds.
    pub fn secs_f64(self) -> f64 {
        nanos_to_secs_f64(self.0)
    }
    /// As a `std::time::Duration` (for drivers).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        if t == "0" {
            return Ok(Dur(0));
        }
        humantime::parse_duration(t)
            .map_err(|e| format!("invalid duration {s:?}: {e} (write e.g. \"250ms\", \"5s\", \"1m30s\")"))
            .and_then(|d| {
                u64::try_from(d.as_nanos())
                    .map(Dur)
                    .map_err(|_| format!("duration {s:?} is too large"))
            })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.to_std()))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"5s\" or \"1m30s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(0))
                } else {
                    Err(E::custom(format!(
                        "bare number {v} is ambiguous: write a duration with a unit, e.g. \"{v}s\" or \"{v}ms\""
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "bare number {v} is ambiguous: write a duration with a unit, e.g. \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rounding without libm is `f64::round`'s, wherever it applies.
    fn rounds_like_f64_round(s: f64) {
        let ns = s * NS_PER_S as f64;
        if s.is_finite() && s > 0.0 && ns < Nanos::MAX as f64 {
            assert_eq!(secs_f64_to_nanos(s), ns.round() as Nanos, "{s:e}");
        }
    }

    #[test]
    fn secs_to_nanos_rounds_half_away_from_zero() {
        for s in [
            0.5e-9,
            f64::from_bits(0.5e-9f64.to_bits() - 1),
            1.5e-9,
            2.5e-9,
            1e-12,
            0.4,
            1.0,
            4_503_599.627_370_496,
            4_503_599.627_370_497,
            9e9,
            18e9,
        ] {
            rounds_like_f64_round(s);
        }
        // halves and their neighbours in ns, across magnitudes
        for k in 0..53 {
            let base = (1u64 << k) as f64 + 0.5;
            for ns in [
                base,
                f64::from_bits(base.to_bits() - 1),
                f64::from_bits(base.to_bits() + 1),
            ] {
                rounds_like_f64_round(ns / NS_PER_S as f64);
            }
        }
    }

    /// `round_to_nanos` is `x.round() as Nanos` for every f64, signs, NaN and infinities
    /// included.
    #[test]
    fn round_to_nanos_is_round_as_nanos() {
        for x in [
            -1.5,
            -0.5,
            -0.0,
            0.0,
            0.49999999999999994,
            0.5,
            2.5,
            TWO_POW_52 - 0.5,
            TWO_POW_52,
            1.9e19,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(round_to_nanos(x), x.round() as Nanos, "{x:e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_to_nanos_matches_round(bits in proptest::num::u64::ANY) {
            let x = f64::from_bits(bits);
            proptest::prop_assert_eq!(round_to_nanos(x), x.round() as Nanos, "{:e}", x);
        }

        #[test]
        fn secs_to_nanos_matches_round(bits in 0u64..0x7ff0_0000_0000_0000) {
            rounds_like_f64_round(f64::from_bits(bits));
        }

        #[test]
        fn secs_to_nanos_matches_round_in_seconds(s in 0.0f64..1e6) {
            rounds_like_f64_round(s);
        }
    }

    #[test]
    fn parses_humantime_and_rejects_bare_numbers() {
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur(250 * NS_PER_MS));
        assert_eq!("1m30s".parse::<Dur>().unwrap(), Dur(90 * NS_PER_S));
        assert!("abc".parse::<Dur>().is_err());
        #[derive(Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            d: Dur,
        }
        let e = toml::from_str::<T>("d = 30").unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        let ok: T = toml::from_str("d = \"2s\"").unwrap();
        assert_eq!(ok.d, Dur::from_secs(2));
    }

    #[test]
    fn secs_conversion_saturates() {
        assert_eq!(secs_f64_to_nanos(-1.0), 0);
        assert_eq!(secs_f64_to_nanos(f64::NAN), 0);
        assert_eq!(secs_f64_to_nanos(1.5), 1_500_000_000);
        assert_eq!(secs_f64_to_nanos(f64::INFINITY), Nanos::MAX);
    }
}
