//! Resilience metrics of one fault on one provider: detection, failed requests, failback.
//!
//! Inputs are a [`Series`] — client requests per bucket (by intended start) and what each
//! provider received per bucket (user traffic; probes excluded) — the fault's ground-truth
//! window and the gateway's events. Definitions (all times from fault onset):
//! - **detection, gateway view**: the first `ejected` or `breaker_opened` event for the
//!   provider at or after onset (when the gateway reports events);
//! - **detection, traffic view**: the start of the first run of buckets, at least `hold`
//!   long, in which the provider's share of the user requests the providers received
//!   stays below `share_threshold` × its pre-fault share; buckets without traffic extend a
//!   run; the pre-fault share is measured over the `baseline` before onset;
//! - **detection, client view**: the start of the first run of buckets, at least `hold`
//!   long, in which the client failure rate is at most the SLO's error budget ε;
//! - **failed requests**: failures intended during the fault, split at the (traffic-view)
//!   detection time into before and after; plus the run's total;
//! - **failback**: fault end → the first bucket in which the provider's share is back to at
//!   least half its pre-fault share (none for a fault that lasts to the end of the run,
//!   [`Series::horizon`]). The end is that of the last phase in the window that
//!   applies to user requests (`FaultEvent::user_end`): when completions recover but a
//!   health-only phase goes on (a broken `/health` in front of a working provider), the
//!   gateway should use the provider again from then on, and failback says when it did.

use super::share::share;
pub use super::share::Series;
use crate::gateway::{EventKind, GatewayEvent};
use crate::record::FaultEvent;
use crate::time::{nanos_to_secs_f64, Dur, Nanos};
use serde::{Deserialize, Serialize};

fn d_share() -> f64 {
    0.1
}
fn d_hold() -> Dur {
    Dur::from_secs(1)
}
fn d_baseline() -> Dur {
    Dur::from_secs(60)
}

/// `[detection]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    /// Share of the pre-fault share below which the provider counts as drained (0.1).
    #[serde(default = "d_share")]
    pub share_threshold: f64,
    /// How long it must stay there (1 s).
    #[serde(default = "d_hold")]
    pub hold: Dur,
    /// Pre-fault window for the reference share (60 s, or the run so far).
    #[serde(default = "d_baseline")]
    pub baseline: Dur,
}

impl Default for DetectionConfig {
    fn default() -> DetectionConfig {
        DetectionConfig {
            share_threshold: d_share(),
            hold: d_hold(),
            baseline: d_baseline(),
        }
    }
}

/// The metrics of one fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// Provider.
    pub provider: String,
    /// Phase.
    pub phase: String,
    /// Onset, s since run start.
    pub onset_s: f64,
    /// End, s since run start.
    pub end_s: f64,
    /// Gateway view (s after onset).
    pub detection_gateway_s: Option<f64>,
    /// Traffic view (s after onset).
    pub detection_traffic_s: Option<f64>,
    /// Client view (s after onset).
    pub detection_client_s: Option<f64>,
    /// Failed requests intended during the fault.
    pub failed_during: u64,
    /// …of which before the traffic-view detection.
    pub failed_before_detection: u64,
    /// …and after it.
    pub failed_after_detection: u64,
    /// End of the user-facing part of the fault (s since run start), when it differs from
    /// `end_s`: a health-only phase outlasted the phases that fail user requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_fault_end_s: Option<f64>,
    /// User-facing fault end → traffic share back to half of pre-fault (s).
    pub failback_s: Option<f64>,
    /// Pre-fault traffic share of the provider.
    pub pre_fault_share: f64,
}

/// Analyses one fault window `[onset, end)` of `provider`.
pub fn analyze(
    series: &Series,
    fault: &FaultEvent,
    events: &[GatewayEvent],
    cfg: &DetectionConfig,
    error_budget: f64,
) -> FaultReport {
    let (provider, phase, onset, end) = (fault.provider.as_str(), fault.phase.as_str(), fault.start, fault.end);
    let b = series.bucket.max(1);
    let n = series
        .arrivals
        .values()
        .map(Vec::len)
        .chain(std::iter::once(series.requests.len()))
        .max()
        .unwrap_or(0);
    let idx = |t: Nanos| ((t / b) as usize).min(n);
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let empty = Vec::new();
    let own = series.arrivals.get(provider).unwrap_or(&empty);
    // (provider's traffic, all providers' traffic, client failures, client requests)
    let counts = |i: usize| {
        let mine = at(own, i);
        let all: u64 = series.arrivals.values().map(|v| at(v, i)).sum();
        let (sent, failed) = series.requests.get(i).copied().unwrap_or((0, 0));
        (mine, all, failed, sent)
    };
    let (p0, p1) = (idx(onset.saturating_sub(cfg.baseline.0)), idx(onset));
    let (mine, all) = (p0..p1).map(counts).fold((0, 0), |(m, a), (x, y, _, _)| (m + x, a + y));
    let pre = share(mine, all).unwrap_or(0.0);
    let hold = (cfg.hold.0.div_ceil(b)).max(1) as usize;
    let first_run = |from: usize, pred: &dyn Fn(u64, u64, u64, u64) -> Option<bool>| -> Option<usize> {
        let mut start = None;
        let mut len = 0;
        for i in from..n {
            let (m, a, f, t) = counts(i);
            match pred(m, a, f, t) {
                Some(true) => {
                    start.get_or_insert(i);
                    len += 1;
                    if len >= hold {
                        return start;
                    }
                }
                None => {
                    if start.is_some() {
                        len += 1;
                        if len >= hold {
                            return start;
                        }
                    }
                }
                Some(false) => {
                    start = None;
                    len = 0;
                }
            }
        }
        None
    };
    let from = idx(onset);
    let secs_after = |i: usize| nanos_to_secs_f64((i as u64 * b).saturating_sub(onset));
    let drained = |m: u64, a: u64, _f: u64, _t: u64| share(m, a).map(|x| x < cfg.share_threshold * pre);
    let traffic = if pre > 0.0 { first_run(from, &drained) } else { None };
    let healthy = |_m: u64, _a: u64, f: u64, t: u64| {
        if t == 0 {
            None
        } else {
            Some((f as f64 / t as f64) <= error_budget)
        }
    };
    let client = first_run(from, &healthy);
    let gateway = events
        .iter()
        .filter(|e| e.target == provider && e.t_ns >= onset)
        .find(|e| {
            matches!(
                e.kind,
                EventKind::Ejected | EventKind::BreakerOpened { .. } | EventKind::RateLimited { .. }
            )
        })
        .map(|e| nanos_to_secs_f64(e.t_ns - onset));
    let det_idx = traffic.unwrap_or(idx(end));
    let (mut before, mut after) = (0, 0);
    for i in from..idx(end).min(n) {
        let f = counts(i).2;
        if i < det_idx {
            before += f;
        } else {
            after += f;
        }
    }
    let back_from = fault.user_end.unwrap_or(end);
    // a fault that lasted to the end of the run never ended: no failback, whatever share
    // the provider has in the last bucket
    let ended = back_from < series.horizon;
    let failback = (idx(back_from)..if ended { n } else { 0 })
        .find(|&i| {
            let (m, a, _, _) = counts(i);
            pre > 0.0 && share(m, a).is_some_and(|x| x >= 0.5 * pre)
        })
        .map(|i| nanos_to_secs_f64((i as u64 * b).saturating_sub(back_from)));
    FaultReport {
        provider: provider.to_string(),
        phase: phase.to_string(),
        onset_s: nanos_to_secs_f64(onset),
        end_s: nanos_to_secs_f64(end),
        user_fault_end_s: (back_from != end).then(|| nanos_to_secs_f64(back_from)),
        detection_gateway_s: gateway,
        detection_traffic_s: traffic.map(secs_after),
        detection_client_s: client.map(secs_after),
        failed_during: before + after,
        failed_before_detection: before,
        failed_after_detection: after,
        failback_s: failback,
        pre_fault_share: pre,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Aggregator, SloThresholds};
    use crate::record::{Outcome, RequestRecord};
    use crate::time::{NS_PER_MS, NS_PER_S};

    /// 100 req/s for 60 s split evenly; primary fails from 20 s; the gateway moves traffic
    /// off it at 25 s; primary recovers at 40 s and gets traffic back from 45 s.
    fn scenario() -> Aggregator {
        let mut a = Aggregator::new(100 * NS_PER_MS, vec!["chat".into()], SloThresholds::default());
        for k in 0..6000u64 {
            let t = k * 10 * NS_PER_MS;
            let s = t / NS_PER_S;
            let to_primary = k % 2 == 0 && !(25..45).contains(&s);
            let (provider, outcome) = if to_primary {
                (
                    "primary",
                    if (20..40).contains(&s) {
                        Outcome::Http(502)
                    } else {
                        Outcome::Ok
                    },
                )
            } else {
                ("fallback", Outcome::Ok)
            };
            let rec = RequestRecord {
                id: k,
                kind: 0,
                intended: t,
                sent: Some(t),
                first_byte: Some(t + NS_PER_MS),
                first_token: None,
                end: t + 5 * NS_PER_MS,
                outcome,
                output_tokens: 1,
                input_tokens: 10,
                provider: Some(provider.into()),
                stream: false,
            };
            a.add(&rec, &[], false);
        }
        a
    }

    #[test]
    fn detection_failed_and_failback_by_hand() {
        let a = scenario();
        let ev = vec![GatewayEvent {
            t_ns: 24_900 * NS_PER_MS,
            target: "primary".into(),
            kind: EventKind::Ejected,
            replica: None,
        }];
        let f = FaultEvent {
            provider: "primary".into(),
            phase: "outage".into(),
            start: 20 * NS_PER_S,
            end: 40 * NS_PER_S,
            user_end: Some(40 * NS_PER_S),
        };
        let r = analyze(
            &Series::from_aggregator(&a),
            &f,
            &ev,
            &DetectionConfig::default(),
            0.001,
        );
        assert!((r.pre_fault_share - 0.5).abs() < 1e-9);
        assert!((r.detection_gateway_s.unwrap() - 4.9).abs() < 1e-9);
        assert!((r.detection_traffic_s.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
        // client failures stop when traffic moves: same 5 s
        assert!((r.detection_client_s.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
        // 5 s × 50 req/s to the failing primary
        assert_eq!(
            (r.failed_during, r.failed_before_detection, r.failed_after_detection),
            (250, 250, 0)
        );
        assert!((r.failback_s.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
    }

    /// Completions recover at 40 s but a health-only phase runs on to 55 s (a broken
    /// `/health` in front of a working provider): failback counts from 40 s, when the
    /// provider could serve again — 5 s here, as in the plain case — and the report says
    /// where the user-facing fault ended. Without any user-facing phase it counts from the
    /// window's end, and the primary (back at 45 s) is already back at 55 s: 0 s.
    #[test]
    fn failback_counts_from_the_end_of_the_user_facing_phases() {
        let a = scenario();
        let s = Series::from_aggregator(&a);
        let mut f = FaultEvent {
            provider: "primary".into(),
            phase: "outage+health-broken".into(),
            start: 20 * NS_PER_S,
            end: 55 * NS_PER_S,
            user_end: Some(40 * NS_PER_S),
        };
        let r = analyze(&s, &f, &[], &DetectionConfig::default(), 0.001);
        assert!((r.failback_s.unwrap() - 5.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.user_fault_end_s, Some(40.0));
        assert_eq!(r.end_s, 55.0);
        f.user_end = None;
        let r = analyze(&s, &f, &[], &DetectionConfig::default(), 0.001);
        assert_eq!(r.failback_s, Some(0.0), "{r:?}");
        assert_eq!(r.user_fault_end_s, None);
        // merging keeps the latest user-facing end
        let w = |ph: &str, s: u64, e: u64, u: Option<u64>| FaultEvent {
            provider: "p".into(),
            phase: ph.into(),
            start: s,
            end: e,
            user_end: u,
        };
        let m = crate::record::merge_fault_windows(vec![w("outage", 20, 40, Some(40)), w("health", 20, 55, None)]);
        assert_eq!(m, vec![w("outage+health", 20, 55, Some(40))]);
    }

    /// A gateway that tries the failing primary first and then falls back: every request
    /// is *served* by the fallback, but the primary still *receives* them all. The traffic
    /// view counts what providers received, so it sees no detection until the gateway stops
    /// sending (here at 30 s, when arrivals stop).
    #[test]
    fn traffic_share_counts_what_providers_received() {
        let a = scenario();
        let mut s = Series::from_aggregator(&a);
        let n = s.requests.len();
        let b = s.bucket;
        // the primary receives every request until 30 s, none after; the fallback the rest
        let primary: Vec<u64> = (0..n)
            .map(|i| if (i as u64 * b) < 30 * NS_PER_S { 10 } else { 0 })
            .collect();
        let fallback: Vec<u64> = primary.iter().map(|&p| 10 - p).collect();
        s = s.with_arrivals([("primary".to_string(), primary), ("fallback".to_string(), fallback)].into());
        let f = FaultEvent {
            provider: "primary".into(),
            phase: "outage".into(),
            start: 20 * NS_PER_S,
            end: 40 * NS_PER_S,
            user_end: Some(40 * NS_PER_S),
        };
        let r = analyze(&s, &f, &[], &DetectionConfig::default(), 0.001);
        assert!((r.pre_fault_share - 1.0).abs() < 1e-9);
        assert!((r.detection_traffic_s.unwrap() - 10.0).abs() < 1e-9, "{r:?}");
        // served-by alone would have said 5 s (the aggregator's own split)
        let served = analyze(
            &Series::from_aggregator(&a),
            &f,
            &[],
            &DetectionConfig::default(),
            0.001,
        );
        assert!((served.detection_traffic_s.unwrap() - 5.0).abs() < 1e-9);
    }

    /// A series of 100 ms buckets over `n` buckets: the primary gets 1 request in the
    /// buckets `primary` says, the fallback one in every other.
    fn two_providers(n: usize, primary: impl Fn(usize) -> bool) -> Series {
        let p: Vec<u64> = (0..n).map(|i| u64::from(primary(i))).collect();
        let f: Vec<u64> = p.iter().map(|&x| 1 - x).collect();
        Series {
            bucket: 100 * NS_PER_MS,
            requests: vec![(1, 0); n],
            arrivals: [("primary".to_string(), p), ("fallback".to_string(), f)].into(),
            horizon: Nanos::MAX,
        }
    }

    /// An open-ended phase lasts to the end of the run (its window is cut at the run's
    /// horizon, 7.95 s here, inside the last bucket): it never ended, so there is no
    /// failback, whatever share the provider has in that last bucket. Found by the
    /// differential test, seeds 1139 and 1358: live's horizon (its last answer) fell in a
    /// bucket where a closed-loop user had started a request, and it said 0 s; the
    /// simulator's in a bucket without one, and it said none.
    #[test]
    fn fault_lasting_to_the_end_of_the_run_has_no_failback() {
        // the primary's share stays at 0.5 and it has the last bucket to itself
        let s = two_providers(80, |i| i % 2 == 0 || i == 79);
        let f = FaultEvent {
            provider: "primary".into(),
            phase: "rate-limited".into(),
            start: 2 * NS_PER_S,
            end: 7_950 * NS_PER_MS,
            user_end: Some(7_950 * NS_PER_MS),
        };
        // the run's end is known: the window lasted to it
        let r = analyze(
            &s.clone().with_horizon(7_950 * NS_PER_MS),
            &f,
            &[],
            &DetectionConfig::default(),
            0.001,
        );
        assert_eq!(r.failback_s, None, "{r:?}");
        // a window that ended before the run did (here in its last bucket) has one
        let r = analyze(
            &s.with_horizon(8 * NS_PER_S),
            &f,
            &[],
            &DetectionConfig::default(),
            0.001,
        );
        assert_eq!(r.failback_s, Some(0.0), "{r:?}");
    }

    #[test]
    fn undetected_fault_counts_everything_as_before_detection() {
        let a = scenario();
        // a fault window on the fallback that never drains it
        let f = FaultEvent {
            provider: "fallback".into(),
            phase: "x".into(),
            start: 10 * NS_PER_S,
            end: 15 * NS_PER_S,
            user_end: Some(15 * NS_PER_S),
        };
        let r = analyze(
            &Series::from_aggregator(&a),
            &f,
            &[],
            &DetectionConfig::default(),
            0.001,
        );
        assert_eq!(r.detection_traffic_s, None);
        assert_eq!(r.detection_gateway_s, None);
        assert_eq!(r.failed_during, 0);
    }
}
