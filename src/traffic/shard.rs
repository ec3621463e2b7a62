//! Shards: one run's work split across N workers so that the union of their parts is
//! exactly the work one machine would have done with the same seed (docs/sharding.md).
//!
//! One rule owns the split: work item `k` (an open-loop arrival's id, a closed-loop
//! user's index, a simulator run's position in matrix order) belongs to shard `k mod N`.
//! Every shard computes the whole single-machine plan from the seed and keeps its items, so
//! no shard needs to know what the others drew. Indices are 0-based, as Kubernetes'
//! Indexed Job numbers its pods (`JOB_COMPLETION_INDEX`).

use std::fmt;
use std::str::FromStr;

/// The most shards one run may be split into.
pub const MAX_SHARDS: u32 = 1024;

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 0-based, below `count`.
    pub index: u32,
    /// How many shards share the work, 1..=[`MAX_SHARDS`].
    pub count: u32,
}

impl Shard {
    /// The whole work: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if count > MAX_SHARDS {
            return Err(format!("{count} shards: at most {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count}: indices are 0-based, from 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether work item `k` is this shard's: `k mod count == index`.
    #[inline]
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// How many of the items `0..n` this shard owns.
    pub fn share_of(&self, n: u64) -> u64 {
        let (c, i) = (u64::from(self.count), u64::from(self.index));
        n / c + u64::from(n % c > i)
    }

    /// Whether this is the whole work (one shard).
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

/// The open-loop or trace arrivals shard `s` sends: those of the whole single-machine
/// `schedule` whose id it owns, with their ids, times and shapes unchanged.
pub fn arrivals(schedule: impl Iterator<Item = super::Planned>, s: Shard) -> impl Iterator<Item = super::Planned> {
    schedule.filter(move |p| s.owns(p.id))
}

/// The closed-loop users shard `s` runs: of the whole single-machine spawn plan
/// (`(user, spawn time)`), those it owns, at their single-machine spawn times.
pub fn users(spawns: Vec<(u32, crate::time::Nanos)>, s: Shard) -> Vec<(u32, crate::time::Nanos)> {
    spawns.into_iter().filter(|(u, _)| s.owns(u64::from(*u))).collect()
}

/// A closed-loop request's id across shards: shard `s`'s `local`-th start is
/// `local × N + I`, so no two shards' requests share an id (the request marker, the mocks'
/// per-request records). A closed loop's starts depend on its answers, so these are not
/// the single-machine ids.
pub fn user_request_id(local: u64, s: Shard) -> u64 {
    local
        .saturating_mul(u64::from(s.count))
        .saturating_add(u64::from(s.index))
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/3`, `2/3`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected I/N, e.g. 0/3 (0-based index / count)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the index {i:?} is not a whole number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the count {n:?} is not a whole number"))?;
        Shard::new(index, count).map_err(|e| format!("{s:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(" 0 / 1 ".parse::<Shard>(), Ok(Shard::WHOLE));
        for (bad, why) in [
            ("3/3", "0-based"),
            ("1/0", "at least 1"),
            ("0/5000", "at most 1024"),
            ("a/3", "not a whole number"),
            ("-1/3", "not a whole number"),
            ("2", "expected I/N"),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    use crate::provider::Api;
    use crate::traffic::{Mix, Planned, Schedule, Source, TrafficConfig};

    /// Every shard's (id, intended time, shape) together are exactly the single-machine
    /// schedule: open loop with stages and gamma arrivals, and a trace.
    #[test]
    fn the_union_of_shards_is_the_whole_schedule() {
        let base = std::path::Path::new(".");
        let c: TrafficConfig = toml::from_str(
            "start_rate = 5.0\narrival = \"gamma\"\nburstiness = 0.4\n\
             [[stages]]\nduration = \"20s\"\ntarget = 60.0\n[[stages]]\nduration = \"10s\"\ntarget = 10.0\n\
             [[kind]]\nname = \"chat\"\nweight = 3.0\nstream = true\nmax_tokens = { min = 10, max = 90 }\n\
             [[kind]]\nname = \"emb\"\nendpoint = \"embeddings\"\n",
        )
        .unwrap();
        let mix = Mix::new(c.load_kinds(base).unwrap(), Api::OpenAi).unwrap();
        let trace = crate::traffic::trace::Trace::parse(
            &(0..200)
                .map(|i| {
                    format!(
                        "{{\"offset_ms\": {}, \"kind\": \"{}\"}}\n",
                        i * 13 % 997,
                        ["chat", "emb"][i % 2]
                    )
                })
                .collect::<String>(),
            "t.jsonl",
        )
        .unwrap();
        let open = c.source(base).unwrap();
        assert!(matches!(open, Source::Open(..)));
        for src in [open, Source::Trace(trace, 2.0)] {
            let whole: Vec<Planned> = Schedule::new(&src, mix.clone(), 42).unwrap().collect();
            assert!(whole.len() > 150, "{}", whole.len());
            for count in [1u32, 3, 4] {
                let mut union: Vec<Planned> = Vec::new();
                for index in 0..count {
                    let s = Shard::new(index, count).unwrap();
                    let part: Vec<Planned> = arrivals(Schedule::new(&src, mix.clone(), 42).unwrap(), s).collect();
                    assert_eq!(part.len() as u64, s.share_of(whole.len() as u64));
                    union.extend(part);
                }
                union.sort_by_key(|p| p.id);
                assert_eq!(union, whole, "{count} shards");
            }
        }
    }

    #[test]
    fn closed_loop_shards_split_the_users_and_never_share_an_id() {
        let spawns: Vec<(u32, crate::time::Nanos)> = (0..10).map(|u| (u, u64::from(u) * 500)).collect();
        let parts: Vec<_> = (0..3)
            .map(|i| users(spawns.clone(), Shard::new(i, 3).unwrap()))
            .collect();
        assert_eq!(parts[1], [(1, 500), (4, 2000), (7, 3500)]);
        let mut all: Vec<_> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, spawns);
        let ids: std::collections::BTreeSet<u64> = (0..3)
            .flat_map(|i| (0..50).map(move |k| user_request_id(k, Shard::new(i, 3).unwrap())))
            .collect();
        assert_eq!(ids.len(), 150);
        assert_eq!(user_request_id(7, Shard::WHOLE), 7);
    }

    #[test]
    fn the_shards_partition_the_items_exactly() {
        for count in [1u32, 2, 3, 7] {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for k in 0..100u64 {
                assert_eq!(
                    shards.iter().filter(|s| s.owns(k)).count(),
                    1,
                    "item {k} of {count} shards"
                );
            }
            for n in [0u64, 1, 5, 99, 100] {
                let total: u64 = shards.iter().map(|s| s.share_of(n)).sum();
                assert_eq!(total, n);
                for s in &shards {
                    assert_eq!(
                        s.share_of(n),
                        (0..n).filter(|k| s.owns(*k)).count() as u64,
                        "{s} of {n}"
                    );
                }
            }
        }
    }
}
