//! Retries with a budget, per-status rules, and Retry-After honoured up to a cap.
//!
//! Why a budget and not just "max retries": when a provider fails hard, every request
//! retrying N times multiplies the load on whatever is still up by N+1 — the retry storm
//! that turns a partial outage into a full one. A budget (linkerd's design) lets retries
//! add at most `budget_ratio` of the request rate, plus `min_per_s` so a quiet service can
//! still retry. Quota-style 429s (`insufficient_quota`, `x-should-retry: false`, an
//! Anthropic spend-cap 429 without `retry-after`; `docs/semantics.md` §5) are never retried:
//! waiting does not refill a spent quota. The driver marks them `retryable = false`.
//!
//! Retry-After is honoured up to `retry_after_cap`: a shorter one is waited for; a longer
//! one means "not soon", so the request does not retry on that target (it may still fall
//! back to another) — the OpenAI SDKs likewise honour `retry-after` only when ≤ 60 s.

use super::Outcome;
use crate::time::{Dur, Nanos, NS_PER_S};
use serde::{Deserialize, Serialize};

fn d_statuses() -> Vec<u16> {
    vec![429, 500, 502, 503, 504, 529]
}
fn d_ratio() -> f64 {
    0.2
}
fn d_min() -> f64 {
    10.0
}
fn d_cap() -> Dur {
    Dur::from_secs(5)
}

/// `gateway.retries`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Most retries per request on the same target (default 0: none).
    #[serde(default)]
    pub attempts: u32,
    /// Statuses worth retrying.
    #[serde(default = "d_statuses")]
    pub on_status: Vec<u16>,
    /// Also retry timeouts and connection failures (default true).
    #[serde(default = "d_true")]
    pub on_connect_error: bool,
    /// Retries may add this share of the request rate (default 0.2).
    #[serde(default = "d_ratio")]
    pub budget_ratio: f64,
    /// …plus this many retries per second regardless (default 10).
    #[serde(default = "d_min")]
    pub min_per_s: f64,
    /// Longest Retry-After honoured; longer ones are not waited for (default 5s).
    #[serde(default = "d_cap")]
    pub retry_after_cap: Dur,
}

fn d_true() -> bool {
    true
}

impl RetryConfig {
    /// Problems, each at its key in `[retries]`.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let mut v = Vec::new();
        for (k, x) in [("budget_ratio", self.budget_ratio), ("min_per_s", self.min_per_s)] {
            if !(x.is_finite() && x >= 0.0) {
                v.push((
                    crate::diag::Path::root().key(k),
                    format!("must be a number ≥ 0, got {x}"),
                ));
            }
        }
        v
    }
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            attempts: 0,
            on_status: d_statuses(),
            on_connect_error: true,
            budget_ratio: d_ratio(),
            min_per_s: d_min(),
            retry_after_cap: d_cap(),
        }
    }
}

/// A token bucket of retries: requests deposit `budget_ratio`, a retry withdraws 1; the
/// bucket also refills at `min_per_s` and holds at most one second's worth.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    cfg: RetryConfig,
    tokens: f64,
    last: Nanos,
    /// The most the bucket holds (from `cfg`, computed once: every request deposits).
    cap: f64,
}

impl RetryBudget {
    /// A full-at-minimum budget.
    pub fn new(cfg: RetryConfig) -> RetryBudget {
        let tokens = cfg.min_per_s;
        let cap = cfg.min_per_s.max(1.0) + 1000.0 * cfg.budget_ratio;
        RetryBudget {
            cfg,
            tokens,
            last: 0,
            cap,
        }
    }

    /// The config.
    pub fn config(&self) -> &RetryConfig {
        &self.cfg
    }

    #[inline]
    fn refill(&mut self, now: Nanos) {
        if now > self.last {
            let dt = (now - self.last) as f64 / NS_PER_S as f64;
            self.tokens = (self.tokens + dt * self.cfg.min_per_s).min(self.cap);
            self.last = now;
        }
    }

    /// A request arrived: deposit.
    #[inline]
    pub fn on_request(&mut self, now: Nanos) {
        self.refill(now);
        self.tokens = (self.tokens + self.cfg.budget_ratio).min(self.cap);
    }

    /// Should attempt `attempt` (1 = first retry) follow this failure? `Some(wait)` if yes.
    pub fn retry(&mut self, now: Nanos, attempt: u32, f: &Outcome) -> Option<Nanos> {
        if attempt > self.cfg.attempts {
            return None;
        }
        let wait = match f {
            Outcome::Answer(a) => {
                if !a.retryable() || !self.cfg.on_status.contains(&a.status) {
                    return None;
                }
                match a.retry_after {
                    Some(ra) if ra > self.cfg.retry_after_cap.0 => return None,
                    Some(ra) => ra,
                    None => 0,
                }
            }
            // timeouts, resets (stream failures are never retried: they reached the client)
            _ => {
                if !self.cfg.on_connect_error {
                    return None;
                }
                0
            }
        };
        self.refill(now);
        if self.tokens < 1.0 {
            return None;
        }
        self.tokens -= 1.0;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::classify::Answer;

    #[test]
    fn rules_and_budget() {
        let mut b = RetryBudget::new(RetryConfig {
            attempts: 2,
            min_per_s: 0.0,
            budget_ratio: 0.5,
            ..RetryConfig::default()
        });
        let s = |status, retryable| {
            Outcome::Answer(Answer {
                status,
                retry_after: None,
                final_: if retryable {
                    None
                } else {
                    Some(crate::provider::classify::Final::Quota)
                },
            })
        };
        // empty bucket: no retry until requests deposit
        assert_eq!(b.retry(0, 1, &s(503, true)), None);
        b.on_request(0);
        b.on_request(0);
        assert_eq!(b.retry(0, 1, &s(503, true)), Some(0));
        assert_eq!(b.retry(0, 3, &s(503, true)), None, "over attempts");
        b.on_request(0);
        b.on_request(0);
        assert_eq!(b.retry(0, 1, &s(429, false)), None, "quota 429 is never retried");
        assert_eq!(b.retry(0, 1, &s(400, true)), None, "400 is not in on_status");
        let ra = Outcome::Answer(Answer {
            status: 429,
            retry_after: Some(2 * NS_PER_S),
            final_: None,
        });
        assert_eq!(b.retry(0, 1, &ra), Some(2 * NS_PER_S));
        let long = Outcome::Answer(Answer {
            status: 429,
            retry_after: Some(60 * NS_PER_S),
            final_: None,
        });
        assert_eq!(b.retry(0, 1, &long), None, "Retry-After over the cap");
    }

    #[test]
    fn connect_errors_and_the_default_of_no_retries() {
        let mut none = RetryBudget::new(RetryConfig::default());
        none.on_request(0);
        assert_eq!(none.retry(0, 1, &Outcome::Connect), None, "attempts default to 0");
        let mut b = RetryBudget::new(RetryConfig {
            attempts: 1,
            on_connect_error: false,
            ..RetryConfig::default()
        });
        assert_eq!(b.retry(0, 1, &Outcome::Connect), None);
        b.cfg.on_connect_error = true;
        assert_eq!(b.retry(0, 1, &Outcome::Connect), Some(0));
    }

    #[test]
    fn the_budget_bounds_retries_to_a_share_of_requests() {
        // 1,000 requests in one second at ratio 0.1 and no floor: about 100 retries.
        let mut b = RetryBudget::new(RetryConfig {
            attempts: 3,
            budget_ratio: 0.1,
            min_per_s: 0.0,
            ..RetryConfig::default()
        });
        let s503 = Outcome::Answer(Answer {
            status: 503,
            retry_after: None,
            final_: None,
        });
        let mut granted = 0;
        for k in 0..1000u64 {
            b.on_request(k * 1_000_000);
            for a in 1..=3 {
                if b.retry(k * 1_000_000, a, &s503).is_some() {
                    granted += 1;
                }
            }
        }
        assert!((99..=101).contains(&granted), "{granted}");
    }
}
