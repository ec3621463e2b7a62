//! Attempt figures of one run: what the providers received per client request (retry
//! amplification, overall and during the faults), requests the client saw succeed although
//! no provider sent a whole answer (truncated successes), requests past the client's
//! deadline (hangs), health-probe load per provider, and whether the gateway honoured the
//! `Retry-After` of 429s. Definitions: `docs/semantics.md` §13.
//!
//! Inputs are the run's observation streams: client requests ([`ClientEnd`], from
//! `RequestRecord`s), what each provider received ([`Attempt`], from `ArrivalRecord`s) and
//! the ground-truth fault windows. Both drivers fold them through one [`AttemptsAcc`]:
//! the simulator as its events run, the live driver from the client's records and the
//! mocks' arrival logs after the traffic. Attempts must be fed before the record of the
//! request they belong to, and each provider's attempts in time order. Memory: one
//! timestamp per request and per user-traffic attempt, plus the requests still open —
//! except where the fault windows' edges are known in advance ([`AttemptsAcc::with_edges`],
//! the simulator): a time before the last known edge is only counted in the stretch
//! between two edges it falls in, which is all the fault counts need.

use crate::fault::is_complete_answer;
use crate::record::{ArrivalRecord, FaultEvent, Outcome, RequestRecord};
use crate::time::{nanos_to_secs_f64, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One run's attempt figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptStats {
    /// Client requests sent (dropped ones excluded).
    pub user_requests: u64,
    /// User-traffic arrivals at all providers (probes excluded).
    pub provider_attempts: u64,
    /// `provider_attempts / user_requests` (`None` without requests).
    pub amplification: Option<f64>,
    /// Client requests intended inside the user-facing part of any fault window (each
    /// once, however many windows overlap).
    pub fault_user_requests: u64,
    /// User-traffic arrivals at any provider inside those windows.
    pub fault_provider_attempts: u64,
    /// `fault_provider_attempts / fault_user_requests` (`None` without a user-facing fault
    /// window or without requests in it).
    pub amplification_during_fault: Option<f64>,
    /// Client requests matched to at least one provider attempt (by the request marker).
    pub matched_requests: u64,
    /// Most attempts one matched request made (`None` when none was matched).
    pub max_attempts_per_request: Option<u64>,
    /// Matched requests the client saw succeed although no attempt of theirs got a
    /// complete answer from a provider; `None` when requests cannot be matched to attempts
    /// (no user-traffic attempt carried a marker).
    pub truncated_successes: Option<u64>,
    /// Requests past the client's deadline (end − intended ≥ the client timeout), plus
    /// requests still in flight at the end.
    pub hangs: u64,
    /// That client timeout (s).
    pub hang_deadline_s: f64,
    /// Health-probe load per provider.
    pub probes: BTreeMap<String, ProbeLoad>,
    /// Per provider that sent at least one 429 carrying `Retry-After`.
    pub retry_after: BTreeMap<String, RetryAfterStats>,
}

/// The health probes one provider received.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeLoad {
    /// Probes (`/health` and completion probes).
    pub probes: u64,
    /// Probes per second of the run.
    pub per_s: f64,
    /// Probes that were completions (they cost tokens).
    pub completion_probes: u64,
    /// Output tokens the completion probes' answers carried.
    pub probe_output_tokens: u64,
}

/// An attempt reaching a provider this soon after its 429 was already on its way when the
/// 429 went out (no gateway can call it back): it is not the attempt that answers the 429.
pub const IN_FLIGHT_GRACE: Nanos = 100 * crate::time::NS_PER_MS;

/// How a gateway treated one provider's 429s carrying `Retry-After`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryAfterStats {
    /// 429s carrying `Retry-After` this provider sent (to user traffic).
    pub with_header: u64,
    /// …followed by a later user-traffic attempt to the same provider.
    pub followed: u64,
    /// Shortest gap between such a 429 and the next attempt to that provider (s).
    pub min_gap_s: Option<f64>,
    /// Smallest (gap − the 429's `Retry-After`) (s); below 0: not honoured.
    pub min_margin_s: Option<f64>,
    /// Next attempts sooner than the `Retry-After` asked.
    pub violations: u64,
}

/// A client request as the attempt figures need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientEnd {
    /// Its id (what its marker carries).
    pub id: u64,
    /// Intended start.
    pub intended: Nanos,
    /// End as the client saw it.
    pub end: Nanos,
    /// The client's outcome was ok.
    pub ok: bool,
    /// Never sent.
    pub dropped: bool,
}

impl ClientEnd {
    /// Of a client record.
    pub fn of(r: &RequestRecord) -> ClientEnd {
        ClientEnd {
            id: r.id,
            intended: r.intended,
            end: r.end,
            ok: r.outcome.is_ok(),
            dropped: r.outcome == Outcome::Dropped,
        }
    }
}

/// One arrival at a provider as the attempt figures need it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Arrival time.
    pub at: Nanos,
    /// A health probe, not user traffic.
    pub probe: bool,
    /// `GET /health` (a probe that is not a completion).
    pub health: bool,
    /// The client request it belongs to, from its marker.
    pub request: Option<u64>,
    /// The provider sent a complete answer ([`is_complete_answer`] of its verdict).
    pub complete: bool,
    /// A 429 carrying `Retry-After`: the wait it asks for.
    pub retry_after: Option<Nanos>,
    /// Output tokens the answer carried.
    pub tokens: u32,
}

impl Attempt {
    /// Of an arrival record.
    pub fn of(a: &ArrivalRecord) -> Attempt {
        Attempt {
            at: a.at,
            probe: a.probe,
            health: a.health,
            request: a.request,
            complete: is_complete_answer(&a.verdict),
            retry_after: a.retry_after.filter(|_| a.verdict == "error:429"),
            tokens: a.tokens,
        }
    }
}

/// A request id hasher: one multiply (ids are dense integers; the map is looked up once
/// per attempt in the simulator's hot loop).
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Clone, Debug, Default)]
struct ProviderAcc {
    name: String,
    probe: ProbeLoad,
    retry_after: RetryAfterStats,
    /// 429s with `Retry-After` not yet followed by an attempt: (arrival, wait).
    pending: Vec<(Nanos, Nanos)>,
    /// The last user-traffic attempt's time (attempts come in time order).
    last: Nanos,
}

/// Folds one run's attempts and client requests into [`AttemptStats`] (see the module
/// docs for the order they must come in).
#[derive(Clone, Debug, Default)]
pub struct AttemptsAcc {
    client_timeout: Nanos,
    providers: Vec<ProviderAcc>,
    user_attempts: u64,
    marked_attempts: u64,
    attempt_times: Times,
    /// Requests with attempts and no client record yet: (attempts, any complete).
    open: HashMap<u64, (u64, bool), std::hash::BuildHasherDefault<IdHasher>>,
    requests: u64,
    intended: Times,
    matched: u64,
    max_attempts: u64,
    truncated: u64,
    hangs: u64,
}

impl AttemptsAcc {
    /// An empty fold for a client that gives up `client_timeout` after a request's
    /// intended start.
    pub fn new(client_timeout: Nanos) -> AttemptsAcc {
        AttemptsAcc {
            client_timeout,
            ..AttemptsAcc::default()
        }
    }

    /// [`AttemptsAcc::new`] for a run whose fault windows, before `known_until`, start and
    /// end only at `edges` (any order): the fault windows handed to
    /// [`AttemptsAcc::finish`] must have no other edge before `known_until` (checked in
    /// debug builds). Times before it are then counted per stretch between edges, not
    /// kept.
    pub fn with_edges(client_timeout: Nanos, edges: &[Nanos], known_until: Nanos) -> AttemptsAcc {
        let times = Times::with_edges(edges, known_until);
        AttemptsAcc {
            client_timeout,
            attempt_times: times.clone(),
            intended: times,
            ..AttemptsAcc::default()
        }
    }

    /// The index of provider `name` (registered on first use; every registered provider
    /// is reported in [`AttemptStats::probes`]).
    pub fn provider(&mut self, name: &str) -> usize {
        match self.providers.iter().position(|p| p.name == name) {
            Some(i) => i,
            None => {
                self.providers.push(ProviderAcc {
                    name: name.to_string(),
                    ..ProviderAcc::default()
                });
                self.providers.len() - 1
            }
        }
    }

    /// Provider `p` ([`AttemptsAcc::provider`]) received `a`.
    ///
    /// # Panics
    /// If `p` was not registered.
    #[inline]
    pub fn attempt(&mut self, p: usize, a: &Attempt) {
        self.attempt_joined(p, a);
        if let (false, Some(id)) = (a.probe, a.request) {
            let e = self.open.entry(id).or_default();
            e.0 += 1;
            e.1 |= a.complete;
        }
    }

    /// [`AttemptsAcc::attempt`] for a caller that joins attempts to their request itself
    /// and hands the join to [`AttemptsAcc::request_joined`] (the simulator keeps it in
    /// the request's slot: no lookup per attempt).
    #[inline]
    pub fn attempt_joined(&mut self, p: usize, a: &Attempt) {
        let prov = &mut self.providers[p];
        if a.probe {
            prov.probe.probes += 1;
            if !a.health {
                prov.probe.completion_probes += 1;
                prov.probe.probe_output_tokens += u64::from(a.tokens);
            }
            return;
        }
        debug_assert!(a.at >= prov.last, "a provider's attempts come in time order");
        prov.last = a.at;
        let r = &mut prov.retry_after;
        prov.pending.retain(|&(at, wait)| {
            let gap = a.at.saturating_sub(at);
            if gap < IN_FLIGHT_GRACE.min(wait) {
                // sent before the 429 could have reached the gateway: the next one counts
                return true;
            }
            r.followed += 1;
            let g = nanos_to_secs_f64(gap);
            let margin = g - nanos_to_secs_f64(wait);
            r.min_gap_s = Some(r.min_gap_s.map_or(g, |m| m.min(g)));
            r.min_margin_s = Some(r.min_margin_s.map_or(margin, |m| m.min(margin)));
            if gap < wait {
                r.violations += 1;
            }
            false
        });
        if let Some(wait) = a.retry_after {
            prov.retry_after.with_header += 1;
            prov.pending.push((a.at, wait));
        }
        self.user_attempts += 1;
        self.attempt_times.add(a.at);
        if a.request.is_some() {
            self.marked_attempts += 1;
        }
    }

    /// Every arrival of a run, in any order (sorted by time here, stably).
    pub fn arrivals(&mut self, arrivals: &[ArrivalRecord]) {
        let mut order: Vec<usize> = (0..arrivals.len()).collect();
        order.sort_by_key(|&i| arrivals[i].at);
        for i in order {
            let a = &arrivals[i];
            let p = self.provider(&a.provider);
            self.attempt(p, &Attempt::of(a));
        }
    }

    /// A client request ended (after every attempt of it was fed).
    #[inline]
    pub fn request(&mut self, r: ClientEnd) {
        let (n, complete) = self.open.remove(&r.id).unwrap_or((0, false));
        self.request_joined(r, n, complete);
    }

    /// A client request ended that made `attempts` marked attempts, `complete` when one
    /// of them got a complete answer (the join [`AttemptsAcc::attempt_joined`]'s caller
    /// kept).
    #[inline]
    pub fn request_joined(&mut self, r: ClientEnd, attempts: u64, complete: bool) {
        if r.dropped {
            return;
        }
        self.requests += 1;
        self.intended.add(r.intended);
        if r.end.saturating_sub(r.intended) >= self.client_timeout {
            self.hangs += 1;
        }
        if attempts > 0 {
            self.matched += 1;
            self.max_attempts = self.max_attempts.max(attempts);
            if r.ok && !complete {
                self.truncated += 1;
            }
        }
    }

    /// The figures, with the run's merged fault windows, its length and the requests
    /// still in flight at its end.
    pub fn finish(&self, faults: &[FaultEvent], duration: Nanos, in_flight_at_end: u64) -> AttemptStats {
        let windows = user_windows(faults);
        let inside = |t: Nanos| {
            // the last window starting at or before t
            let i = windows.partition_point(|w| w.0 <= t);
            i > 0 && t < windows[i - 1].1
        };
        debug_assert!(
            windows
                .iter()
                .flat_map(|w| [w.0, w.1])
                .all(|e| self.intended.known_edge(e) && self.attempt_times.known_edge(e)),
            "every fault window edge before the end of the known edges is a known edge"
        );
        let fault_user_requests = self.intended.count(&inside);
        let fault_provider_attempts = self.attempt_times.count(&inside);
        let ratio = |a: u64, r: u64| (r > 0).then(|| a as f64 / r as f64);
        let secs = nanos_to_secs_f64(duration);
        AttemptStats {
            user_requests: self.requests,
            provider_attempts: self.user_attempts,
            amplification: ratio(self.user_attempts, self.requests),
            fault_user_requests,
            fault_provider_attempts,
            amplification_during_fault: if windows.is_empty() {
                None
            } else {
                ratio(fault_provider_attempts, fault_user_requests)
            },
            matched_requests: self.matched,
            max_attempts_per_request: (self.matched > 0).then_some(self.max_attempts),
            truncated_successes: (self.user_attempts == 0 || self.marked_attempts > 0).then_some(self.truncated),
            hangs: self.hangs + in_flight_at_end,
            hang_deadline_s: nanos_to_secs_f64(self.client_timeout),
            probes: self
                .providers
                .iter()
                .map(|p| {
                    let mut l = p.probe.clone();
                    l.per_s = if secs > 0.0 { l.probes as f64 / secs } else { 0.0 };
                    (p.name.clone(), l)
                })
                .collect(),
            retry_after: self
                .providers
                .iter()
                .filter(|p| p.retry_after.with_header > 0)
                .map(|p| (p.name.clone(), p.retry_after.clone()))
                .collect(),
        }
    }
}

/// Timestamps, for counting those inside the fault windows: kept one by one from
/// `exact_from` on; before it, counted per stretch between two consecutive `edges`.
#[derive(Clone, Debug, Default)]
struct Times {
    /// Sorted, distinct, all below `exact_from`.
    edges: Vec<Nanos>,
    /// `counts[k]`: times in `[edges[k - 1], edges[k])` (`edges[-1]` = 0, `edges[len]` =
    /// `exact_from`).
    counts: Vec<u64>,
    exact_from: Nanos,
    exact: Vec<Nanos>,
}

impl Times {
    fn with_edges(edges: &[Nanos], known_until: Nanos) -> Times {
        let mut e: Vec<Nanos> = edges.iter().copied().filter(|&x| x > 0 && x < known_until).collect();
        e.sort_unstable();
        e.dedup();
        Times {
            counts: vec![0; e.len() + 1],
            edges: e,
            exact_from: known_until,
            exact: Vec::new(),
        }
    }

    #[inline]
    fn add(&mut self, t: Nanos) {
        if t >= self.exact_from {
            self.exact.push(t);
        } else {
            let k = self.edges.partition_point(|&e| e <= t);
            self.counts[k] += 1;
        }
    }

    /// Whether `e` can be a window edge: one of the edges, or at or past `exact_from`.
    fn known_edge(&self, e: Nanos) -> bool {
        e == 0 || e >= self.exact_from || self.edges.binary_search(&e).is_ok()
    }

    /// How many times `inside` holds for: a stretch between edges is inside or outside as
    /// a whole (no window edge falls within it), so its start decides.
    fn count(&self, inside: &dyn Fn(Nanos) -> bool) -> u64 {
        let stretches: u64 = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(k, &n)| n > 0 && inside(if k == 0 { 0 } else { self.edges[k - 1] }))
            .map(|(_, &n)| n)
            .sum();
        stretches + self.exact.iter().filter(|&&t| inside(t)).count() as u64
    }
}

/// The union of the windows' user-facing parts, `[start, user_end)` of each window that
/// has one, as sorted disjoint intervals.
fn user_windows(faults: &[FaultEvent]) -> Vec<(Nanos, Nanos)> {
    let mut v: Vec<(Nanos, Nanos)> = faults
        .iter()
        .filter_map(|f| f.user_end.map(|e| (f.start, e.min(f.end))))
        .filter(|(s, e)| s < e)
        .collect();
    v.sort_unstable();
    let mut out: Vec<(Nanos, Nanos)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// One run's attempt figures from its records: client requests, provider arrivals (any
/// order), merged fault windows, the client's timeout, the run's length and the requests
/// in flight at its end.
pub fn attempt_stats(
    requests: &[RequestRecord],
    arrivals: &[ArrivalRecord],
    faults: &[FaultEvent],
    client_timeout: Nanos,
    duration: Nanos,
    in_flight_at_end: u64,
) -> AttemptStats {
    let mut acc = AttemptsAcc::new(client_timeout);
    acc.arrivals(arrivals);
    for r in requests {
        acc.request(ClientEnd::of(r));
    }
    acc.finish(faults, duration, in_flight_at_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NS_PER_MS, NS_PER_S};

    const S: Nanos = NS_PER_S;

    fn req(id: u64, intended: Nanos, end: Nanos, outcome: Outcome) -> RequestRecord {
        RequestRecord {
            id,
            kind: 0,
            intended,
            sent: (outcome != Outcome::Dropped).then_some(intended),
            first_byte: None,
            first_token: None,
            end,
            outcome,
            output_tokens: 0,
            input_tokens: 0,
            provider: None,
            stream: true,
        }
    }

    fn arr(provider: &str, at: Nanos, request: Option<u64>, verdict: &str) -> ArrivalRecord {
        ArrivalRecord {
            provider: provider.into(),
            at,
            probe: false,
            verdict: verdict.into(),
            health: false,
            request,
            retry_after: None,
            tokens: 0,
        }
    }

    fn fault(provider: &str, start: Nanos, end: Nanos, user_end: Option<Nanos>) -> FaultEvent {
        FaultEvent {
            provider: provider.into(),
            phase: "p".into(),
            start,
            end,
            user_end,
        }
    }

    const T: Nanos = 30 * S;

    #[test]
    fn amplification_counts_every_attempt_of_every_request() {
        // request 0: 3 attempts (502, 502, ok); request 1: 1 attempt; request 2: dropped
        let reqs = [
            req(0, 0, S, Outcome::Ok),
            req(1, S, 2 * S, Outcome::Ok),
            req(2, 2 * S, 2 * S, Outcome::Dropped),
        ];
        let arrs = [
            arr("a", 0, Some(0), "error:502"),
            arr("a", 100 * NS_PER_MS, Some(0), "error:502"),
            arr("b", 200 * NS_PER_MS, Some(0), "ok"),
            arr("b", S, Some(1), "ok"),
        ];
        let s = attempt_stats(&reqs, &arrs, &[], T, 10 * S, 0);
        assert_eq!(
            (s.user_requests, s.provider_attempts),
            (2, 4),
            "the dropped request is not counted"
        );
        assert_eq!(s.amplification, Some(2.0));
        assert_eq!((s.matched_requests, s.max_attempts_per_request), (2, Some(3)));
        assert_eq!(s.truncated_successes, Some(0));
        assert_eq!(s.amplification_during_fault, None, "no fault window");
        assert_eq!((s.fault_user_requests, s.fault_provider_attempts), (0, 0));
        assert_eq!(attempt_stats(&[], &[], &[], T, S, 0).amplification, None);
    }

    #[test]
    fn overlapping_fault_windows_count_each_request_once() {
        // a: [10, 30) s, b: [20, 40) s → the union [10, 40); c: probes only, [50, 60) s
        let faults = [
            fault("a", 10 * S, 30 * S, Some(30 * S)),
            fault("b", 20 * S, 40 * S, Some(40 * S)),
            fault("c", 50 * S, 60 * S, None),
        ];
        let reqs: Vec<_> = [5, 15, 25, 35, 45, 55]
            .iter()
            .enumerate()
            .map(|(i, &t)| req(i as u64, t * S, t * S + S, Outcome::Ok))
            .collect();
        // attempts at 9.999 s (outside), 10 s (inside), 25 s twice (inside), 39.999 s
        // (inside), 40 s (outside: ends are exclusive), 55 s (a probe-only window: outside)
        let arrs = [
            arr("a", 9_999 * NS_PER_MS, None, "ok"),
            arr("a", 10 * S, None, "error:502"),
            arr("a", 25 * S, None, "error:502"),
            arr("b", 25 * S, None, "ok"),
            arr("b", 39_999 * NS_PER_MS, None, "ok"),
            arr("b", 40 * S, None, "ok"),
            arr("c", 55 * S, None, "ok"),
        ];
        let s = attempt_stats(&reqs, &arrs, &faults, T, 60 * S, 0);
        assert_eq!(s.fault_user_requests, 3, "15, 25 and 35 s, each once");
        assert_eq!(s.fault_provider_attempts, 4);
        assert_eq!(s.amplification_during_fault, Some(4.0 / 3.0));
        assert_eq!(s.amplification, Some(7.0 / 6.0));
        assert_eq!(s.truncated_successes, None, "no attempt carried a marker: cannot match");
        assert_eq!((s.matched_requests, s.max_attempts_per_request), (0, None));
        let only_probes = attempt_stats(&reqs, &arrs, &faults[2..], T, 60 * S, 0);
        assert_eq!(only_probes.amplification_during_fault, None, "no user-facing window");
    }

    #[test]
    fn a_truncated_success_is_an_ok_request_without_a_complete_answer() {
        let reqs = [
            req(0, 0, S, Outcome::Ok),        // its only attempt was cut: truncated
            req(1, 0, S, Outcome::Ok),        // 502 then ok: fine
            req(2, 0, S, Outcome::StreamCut), // cut and the client saw it: not a success
            req(3, 0, S, Outcome::Ok),        // no stream terminal: truncated
            req(4, 0, S, Outcome::Ok),        // a slow body is whole
        ];
        let arrs = [
            arr("a", 0, Some(0), "stream:cut"),
            arr("a", 0, Some(1), "error:502"),
            arr("b", 0, Some(1), "ok"),
            arr("a", 0, Some(2), "stream:cut"),
            arr("a", 0, Some(3), "stream:no_terminal"),
            arr("a", 0, Some(4), "ok:slow_body"),
        ];
        let s = attempt_stats(&reqs, &arrs, &[], T, 10 * S, 0);
        assert_eq!(s.truncated_successes, Some(2));
        assert_eq!(s.matched_requests, 5);
    }

    #[test]
    fn hangs_are_requests_past_the_client_timeout_and_those_in_flight() {
        let t = 10 * S;
        let reqs = [
            req(0, S, S + t, Outcome::Timeout),        // exactly the deadline: a hang
            req(1, S, S + t - 1, Outcome::Http(504)),  // 1 ns short: not
            req(2, 2 * S, 2 * S + t + S, Outcome::Ok), // past it (a lagging client)
            req(3, 0, 0, Outcome::Dropped),
        ];
        let s = attempt_stats(&reqs, &[], &[], t, 20 * S, 2);
        assert_eq!(s.hangs, 2 + 2, "two past the deadline, two in flight at the end");
        assert_eq!(s.hang_deadline_s, 10.0);
    }

    #[test]
    fn retry_after_violated_and_honoured() {
        let ra = |mut a: ArrivalRecord, wait: Nanos| {
            a.retry_after = Some(wait);
            a
        };
        let mut probe = arr("p", 1_500 * NS_PER_MS, None, "ok");
        probe.probe = true;
        probe.health = true;
        let arrs = [
            // p: a 429 asking 2 s at 1 s, the next attempt 1 s later: a violation by 1 s (a
            // probe in between is not an attempt of user traffic)
            ra(arr("p", S, Some(0), "error:429"), 2 * S),
            probe,
            arr("p", 2 * S, Some(1), "ok"),
            // q: a 429 asking 1 s at 0, the next attempt 1.5 s later: honoured by 0.5 s; a
            // second one at 5 s that nothing follows
            ra(arr("q", 0, Some(2), "error:429"), S),
            arr("q", 1_500 * NS_PER_MS, Some(2), "ok"),
            ra(arr("q", 5 * S, Some(3), "error:429"), S),
            // r: a 503 with a wait is not a 429: not counted
            ra(arr("r", 0, Some(4), "error:503"), S),
            arr("r", 1, Some(4), "ok"),
        ];
        let s = attempt_stats(&[], &arrs, &[], T, 10 * S, 0);
        let p = &s.retry_after["p"];
        assert_eq!((p.with_header, p.followed, p.violations), (1, 1, 1));
        assert_eq!((p.min_gap_s, p.min_margin_s), (Some(1.0), Some(-1.0)));
        let q = &s.retry_after["q"];
        assert_eq!((q.with_header, q.followed, q.violations), (2, 1, 0));
        assert_eq!((q.min_gap_s, q.min_margin_s), (Some(1.5), Some(0.5)));
        assert!(!s.retry_after.contains_key("r"));
        assert_eq!(s.provider_attempts, 7);
    }

    /// An attempt reaching the provider within `IN_FLIGHT_GRACE` of its 429 was already on
    /// its way (live, a gateway that honours Retry-After across requests was failed for it);
    /// the next one is the attempt the 429 is judged by.
    #[test]
    fn retry_after_in_flight_attempt_counted_as_a_violation() {
        let mut limited = arr("p", S, Some(0), "error:429");
        limited.retry_after = Some(2 * S);
        let arrs = [
            limited,
            arr("p", S + 3 * NS_PER_MS, Some(1), "error:429"),
            arr("p", 3 * S + 10 * NS_PER_MS, Some(2), "ok"),
        ];
        let s = attempt_stats(&[], &arrs, &[], T, 10 * S, 0);
        let p = &s.retry_after["p"];
        assert_eq!((p.with_header, p.followed, p.violations), (1, 1, 0));
        assert_eq!(p.min_gap_s, Some(2.01));
    }

    #[test]
    fn probe_load_per_provider() {
        let mut arrs = Vec::new();
        for i in 0..5 {
            let mut a = arr("a", i * S, None, "ok");
            a.probe = true;
            a.health = true;
            arrs.push(a);
        }
        for i in 0..2 {
            let mut a = arr("b", i * S, None, "ok");
            a.probe = true;
            a.tokens = 1;
            arrs.push(a);
        }
        let mut failed = arr("b", 3 * S, None, "error:500");
        failed.probe = true;
        arrs.push(failed);
        arrs.push(arr("b", 4 * S, Some(0), "ok"));
        let s = attempt_stats(&[req(0, 4 * S, 5 * S, Outcome::Ok)], &arrs, &[], T, 10 * S, 0);
        assert_eq!(
            s.probes["a"],
            ProbeLoad {
                probes: 5,
                per_s: 0.5,
                completion_probes: 0,
                probe_output_tokens: 0
            }
        );
        assert_eq!(
            s.probes["b"],
            ProbeLoad {
                probes: 3,
                per_s: 0.3,
                completion_probes: 3,
                probe_output_tokens: 2
            }
        );
        assert_eq!(
            (s.provider_attempts, s.amplification),
            (1, Some(1.0)),
            "probes are not attempts"
        );
    }

    #[test]
    fn the_fold_in_order_equals_the_records_in_any_order() {
        let reqs = [req(0, 0, S, Outcome::Ok), req(1, S, 2 * S, Outcome::Ok)];
        let arrs = [
            arr("b", S, Some(1), "ok"),
            arr("a", 0, Some(0), "stream:cut"),
            arr("a", 500 * NS_PER_MS, Some(0), "ok"),
        ];
        let mut acc = AttemptsAcc::new(T);
        let a = acc.provider("a");
        let b = acc.provider("b");
        acc.attempt(a, &Attempt::of(&arrs[1]));
        acc.attempt(a, &Attempt::of(&arrs[2]));
        acc.request(ClientEnd::of(&reqs[0]));
        acc.attempt(b, &Attempt::of(&arrs[0]));
        acc.request(ClientEnd::of(&reqs[1]));
        let want = attempt_stats(&reqs, &arrs, &[], T, 2 * S, 0);
        assert_eq!(acc.finish(&[], 2 * S, 0), want);
        // the simulator's way: it counts each request's attempts itself
        let mut joined = AttemptsAcc::new(T);
        let (a, b) = (joined.provider("a"), joined.provider("b"));
        joined.attempt_joined(a, &Attempt::of(&arrs[1]));
        joined.attempt_joined(a, &Attempt::of(&arrs[2]));
        joined.request_joined(ClientEnd::of(&reqs[0]), 2, true);
        joined.attempt_joined(b, &Attempt::of(&arrs[0]));
        joined.request_joined(ClientEnd::of(&reqs[1]), 1, true);
        assert_eq!(joined.finish(&[], 2 * S, 0), want);
    }

    #[test]
    fn counting_between_known_edges_equals_keeping_every_time() {
        // windows with edges at 10, 30, 20, 40 s (and one past the known stretch, 50 s on)
        let faults = [
            fault("a", 10 * S, 30 * S, Some(30 * S)),
            fault("b", 20 * S, 40 * S, Some(40 * S)),
            fault("b", 50 * S, 70 * S, Some(70 * S)),
        ];
        let times: Vec<Nanos> = (0..700)
            .map(|i| i * S / 10)
            .chain([10 * S - 1, 40 * S, 55 * S])
            .collect();
        let reqs: Vec<_> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| req(i as u64, t, t + 1, Outcome::Ok))
            .collect();
        let arrs: Vec<_> = times.iter().map(|&t| arr("a", t, None, "ok")).collect();
        let want = attempt_stats(&reqs, &arrs, &faults, T, 70 * S, 0);
        // [10, 40) s: 300 of the 0.1 s steps; [50, 70) s: 200; 55 s once more
        assert_eq!((want.fault_user_requests, want.fault_provider_attempts), (501, 501));
        let mut acc = AttemptsAcc::with_edges(T, &[40 * S, 10 * S, 30 * S, 20 * S, 20 * S, 0], 45 * S);
        let mut sorted = arrs.clone();
        sorted.sort_by_key(|a| a.at);
        acc.arrivals(&sorted);
        for r in &reqs {
            acc.request(ClientEnd::of(r));
        }
        assert_eq!(acc.finish(&faults, 70 * S, 0), want);
    }
}
