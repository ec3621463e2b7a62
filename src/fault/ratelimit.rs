//! Stateful rate limits: requests-per-minute and tokens-per-minute buckets.
//!
//! Continuous token buckets, as OpenAI describes its limits: capacity = the per-minute
//! limit, refilled at `limit / 60 s`. A request takes one request and its token estimate
//! (prompt tokens + `max_tokens`, as OpenAI counts it) from both buckets, or is refused
//! with 429 and nothing is taken. Every response carries a [`RateLimitSnapshot`] that is
//! consistent with what remains (`x-ratelimit-remaining-*` falls by one per request and
//! `x-ratelimit-reset-*` is the time until the bucket is full again).

use crate::provider::RateLimitSnapshot;
use crate::time::{Nanos, NS_PER_S};
use serde::{Deserialize, Serialize};

/// Configured limits; either may be absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_min: Option<u64>,
    /// Tokens per minute (prompt + max_tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_min: Option<u64>,
}

impl RateLimit {
    /// Checks parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.requests_per_min == Some(0) || self.tokens_per_min == Some(0) {
            e.push("limits must be > 0 (omit a limit to disable it)".into());
        }
        if self.requests_per_min.is_none() && self.tokens_per_min.is_none() {
            e.push("give requests_per_min and/or tokens_per_min".into());
        }
        e
    }
}

const MINUTE: f64 = 60.0 * NS_PER_S as f64;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    last: Nanos,
}

impl Bucket {
    fn new(capacity: u64, now: Nanos) -> Bucket {
        Bucket {
            capacity: capacity as f64,
            level: capacity as f64,
            last: now,
        }
    }
    fn per_ns(&self) -> f64 {
        self.capacity / MINUTE
    }
    fn refill(&mut self, now: Nanos) {
        if now > self.last {
            self.level = (self.level + (now - self.last) as f64 * self.per_ns()).min(self.capacity);
            self.last = now;
        }
    }
    /// Time until `need` is available (0 if it is).
    fn wait_for(&self, need: f64) -> Nanos {
        let need = need.min(self.capacity);
        if self.level >= need {
            0
        } else {
            ((need - self.level) / self.per_ns()).ceil() as Nanos
        }
    }
    fn until_full(&self) -> Nanos {
        ((self.capacity - self.level) / self.per_ns()).ceil() as Nanos
    }
}

/// The outcome of asking the buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admit {
    /// Taken; the snapshot is after the take.
    Allowed(RateLimitSnapshot),
    /// Refused; retry after the given time; nothing taken.
    Limited(RateLimitSnapshot, Nanos),
}

/// Bucket state of one provider.
#[derive(Clone, Debug, Default)]
pub struct Buckets {
    config: Option<RateLimit>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Buckets {
    /// Applies `limits` (from the baseline or the active phase). A change of limits keeps
    /// the current levels, clamped to the new capacities, so a rate-limit storm that
    /// lowers limits bites at once.
    #[inline]
    pub fn configure(&mut self, limits: Option<RateLimit>, now: Nanos) {
        if self.config == limits {
            return;
        }
        let reshape = |old: Option<Bucket>, cap: Option<u64>| {
            cap.map(|c| match old {
                Some(mut b) => {
                    b.refill(now);
                    Bucket {
                        capacity: c as f64,
                        level: b.level.min(c as f64),
                        last: now,
                    }
                }
                None => Bucket::new(c, now),
            })
        };
        self.requests = reshape(self.requests, limits.and_then(|l| l.requests_per_min));
        self.tokens = reshape(self.tokens, limits.and_then(|l| l.tokens_per_min));
        self.config = limits;
    }

    /// Whether any limit is configured.
    pub fn active(&self) -> bool {
        self.requests.is_some() || self.tokens.is_some()
    }

    fn snapshot(&self) -> RateLimitSnapshot {
        let r = self.requests;
        let t = self.tokens;
        RateLimitSnapshot {
            limit_requests: r.map_or(0, |b| b.capacity as u64),
            remaining_requests: r.map_or(0, |b| b.level.floor() as u64),
            reset_requests: r.map_or(0, |b| b.until_full()),
            limit_tokens: t.map_or(0, |b| b.capacity as u64),
            remaining_tokens: t.map_or(0, |b| b.level.floor() as u64),
            reset_tokens: t.map_or(0, |b| b.until_full()),
        }
    }

    /// Current state without taking anything.
    pub fn peek(&mut self, now: Nanos) -> Option<RateLimitSnapshot> {
        if !self.active() {
            return None;
        }
        for b in [&mut self.requests, &mut self.tokens].into_iter().flatten() {
            b.refill(now);
        }
        Some(self.snapshot())
    }

    /// Takes one request and `tokens` tokens, or refuses.
    #[inline]
    pub fn take(&mut self, now: Nanos, tokens: u64) -> Option<Admit> {
        if !self.active() {
            return None;
        }
        for b in [&mut self.requests, &mut self.tokens].into_iter().flatten() {
            b.refill(now);
        }
        let wait_r = self.requests.map_or(0, |b| b.wait_for(1.0));
        let wait_t = self.tokens.map_or(0, |b| b.wait_for(tokens as f64));
        let wait = wait_r.max(wait_t);
        if wait > 0 {
            return Some(Admit::Limited(self.snapshot(), wait));
        }
        if let Some(b) = &mut self.requests {
            b.level -= 1.0;
        }
        if let Some(b) = &mut self.tokens {
            b.level = (b.level - tokens as f64).max(0.0);
        }
        Some(Admit::Allowed(self.snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_bucket_counts_down_then_refuses_then_refills() {
        let mut b = Buckets::default();
        b.configure(
            Some(RateLimit {
                requests_per_min: Some(3),
                tokens_per_min: None,
            }),
            0,
        );
        for want in [2, 1, 0] {
            match b.take(0, 10).unwrap() {
                Admit::Allowed(s) => assert_eq!(s.remaining_requests, want),
                other => panic!("{other:?}"),
            }
        }
        match b.take(0, 10).unwrap() {
            Admit::Limited(s, wait) => {
                assert_eq!(s.remaining_requests, 0);
                assert_eq!(wait, 20 * NS_PER_S); // one request per 20 s
                assert_eq!(s.reset_requests, 60 * NS_PER_S);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(b.take(20 * NS_PER_S, 10), Some(Admit::Allowed(_))));
    }

    #[test]
    fn tokens_bucket_and_reconfigure_clamps() {
        let mut b = Buckets::default();
        b.configure(
            Some(RateLimit {
                requests_per_min: None,
                tokens_per_min: Some(1000),
            }),
            0,
        );
        assert!(matches!(b.take(0, 600), Some(Admit::Allowed(s)) if s.remaining_tokens == 400));
        assert!(matches!(b.take(0, 600), Some(Admit::Limited(_, w)) if w == 12 * NS_PER_S));
        b.configure(
            Some(RateLimit {
                requests_per_min: None,
                tokens_per_min: Some(100),
            }),
            0,
        );
        assert_eq!(b.peek(0).unwrap().remaining_tokens, 100);
        b.configure(None, 0);
        assert!(b.take(0, 1).is_none());
    }
}
