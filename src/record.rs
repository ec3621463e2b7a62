//! The four observation streams, identical in live and simulated runs
//! (`docs/architecture.md`, "Observations"). All times are ns since run start.

use crate::time::Nanos;
use serde::{Deserialize, Serialize};

/// How a request ended, from the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "status")]
pub enum Outcome {
    /// 2xx and, for streams, a terminal event.
    Ok,
    /// A non-2xx HTTP status.
    Http(u16),
    /// The request timeout (or TTFT / stall timeout) fired.
    Timeout,
    /// Could not connect.
    ConnectError,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// A 200 stream that ended without its terminal event.
    StreamCut,
    /// An error event inside a 200 stream.
    StreamError,
    /// A stream chunk that was not valid JSON / SSE.
    MalformedStream,
    /// Never sent: the concurrency cap was full (k6's dropped_iterations).
    Dropped,
}

impl Outcome {
    /// Whether this counts as a success.
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
    /// A stable key for tables and JSON (`ok`, `http_502`, `timeout`, …).
    pub fn key(self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Http(s) => format!("http_{s}"),
            Outcome::Timeout => "timeout".into(),
            Outcome::ConnectError => "connect_error".into(),
            Outcome::Reset => "reset".into(),
            Outcome::StreamCut => "stream_cut".into(),
            Outcome::StreamError => "stream_error".into(),
            Outcome::MalformedStream => "malformed_stream".into(),
            Outcome::Dropped => "dropped".into(),
        }
    }
}

/// One client request (`RequestRecord`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Index in the schedule.
    pub id: u64,
    /// Index of the request kind in the traffic mix.
    pub kind: u32,
    /// When the schedule meant to send it (latency is measured from here).
    pub intended: Nanos,
    /// When it was actually sent (`None` if dropped).
    pub sent: Option<Nanos>,
    /// First response byte (status line).
    pub first_byte: Option<Nanos>,
    /// First content token (streams).
    pub first_token: Option<Nanos>,
    /// End (last byte, error or timeout).
    pub end: Nanos,
    /// Outcome class.
    pub outcome: Outcome,
    /// Output tokens (from usage when present, else counted).
    pub output_tokens: u32,
    /// Prompt tokens the request carried (as planned by the traffic schedule).
    #[serde(default)]
    pub input_tokens: u32,
    /// Provider that served it, when the response says so.
    pub provider: Option<String>,
    /// Streamed.
    pub stream: bool,
}

/// One request as a mock provider saw it (`ArrivalRecord`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArrivalRecord {
    /// Provider name.
    pub provider: String,
    /// Arrival time.
    pub at: Nanos,
    /// A health probe rather than user traffic.
    pub probe: bool,
    /// What the fault plan decided (`ok`, `error:502`, `hang`, `stream:cut`, …:
    /// [`crate::fault::verdict_label`]; a complete answer is what
    /// [`crate::fault::is_complete_answer`] says).
    pub verdict: String,
    /// A `GET /health` probe (a probe that is not a completion).
    #[serde(default)]
    pub health: bool,
    /// The client request this attempt belongs to (its `RequestRecord::id`), read from
    /// the request marker (`docs/semantics.md` §13); `None` for probes and for requests
    /// that carried no marker.
    #[serde(default)]
    pub request: Option<u64>,
    /// On a 429 that carries it: the wait its headers ask for (ns).
    #[serde(default)]
    pub retry_after: Option<Nanos>,
    /// Output tokens the answer carried ([`crate::fault::answer_tokens`]); 0 for errors
    /// and `/health`.
    #[serde(default)]
    pub tokens: u32,
}

/// Ground truth: a fault phase of one provider was on during `[start, end)` (`FaultEvent`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Provider name.
    pub provider: String,
    /// Phase name.
    pub phase: String,
    /// Onset.
    pub start: Nanos,
    /// End (exclusive).
    pub end: Nanos,
    /// End of the last phase in this window that applies to user requests; `None` when
    /// every phase applies to health probes only. Failback is measured from here: a
    /// provider whose completions have recovered while its health endpoint stays broken
    /// is a provider the gateway should use again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_end: Option<Nanos>,
}

impl FaultEvent {
    /// The ground truth of one phase window of `provider`.
    pub fn of_window(provider: &str, w: crate::fault::FaultWindow) -> FaultEvent {
        FaultEvent {
            provider: provider.to_string(),
            phase: w.phase,
            start: w.start,
            end: w.end,
            user_end: w.completions.then_some(w.end),
        }
    }
}

/// Ground-truth windows with overlapping or touching windows of the same provider merged
/// into one (phase names joined with `+`): one incident whose completions fail while its
/// health probes hang is one fault, not two. Sorted by (provider, start).
pub fn merge_fault_windows(mut v: Vec<FaultEvent>) -> Vec<FaultEvent> {
    v.sort_by(|a, b| (&a.provider, a.start, a.end, &a.phase).cmp(&(&b.provider, b.start, b.end, &b.phase)));
    let mut out: Vec<FaultEvent> = Vec::with_capacity(v.len());
    for f in v {
        match out.last_mut() {
            Some(l) if l.provider == f.provider && f.start <= l.end => {
                l.end = l.end.max(f.end);
                l.user_end = l.user_end.max(f.user_end);
                if !l.phase.split('+').any(|p| p == f.phase) {
                    l.phase = format!("{}+{}", l.phase, f.phase);
                }
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_of_one_provider_merge() {
        let f = |p: &str, ph: &str, s: u64, e: u64| FaultEvent {
            provider: p.into(),
            phase: ph.into(),
            start: s,
            end: e,
            user_end: Some(e),
        };
        let m = merge_fault_windows(vec![
            f("a", "probes", 10, 50),
            f("a", "outage", 10, 50),
            f("b", "x", 0, 5),
            f("a", "late", 60, 70),
        ]);
        assert_eq!(
            m,
            vec![
                f("a", "outage+probes", 10, 50),
                f("a", "late", 60, 70),
                f("b", "x", 0, 5)
            ]
        );
    }
}
