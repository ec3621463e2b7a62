use super::*;
use crate::fault::wire::End;
use crate::gateway::{BreakerConfig, EventKind, GatewayConfig};
use proptest::prelude::*;

const MS: Nanos = 1_000_000;

fn lim(request: Nanos, ttft: Option<Nanos>, stall: Option<Nanos>) -> Limits {
    Limits { request, ttft, stall }
}

fn ok200() -> Answer {
    Answer::status(200)
}

/// A stream's wire: preamble at 0, `n` tokens from `first` every `gap`, then `end`.
fn stream(first: Nanos, gap: Nanos, n: u32, end: End) -> Wire {
    Wire {
        head: Some((0, 200)),
        preamble: true,
        first_token: first,
        interval: gap,
        tokens: n,
        end,
    }
}

/// Settles by feeding the watch every chunk and every ping, one by one (what the live
/// proxy does as frames arrive): the reference [`settle`]'s fast-forwards must match.
fn replay(w: &Wire, l: &Limits, stream_req: bool, answer: Answer) -> (Nanos, Outcome, bool) {
    let mut watch = Watch::new(*l, stream_req);
    macro_rules! at {
        ($t:expr) => {{
            let t: Nanos = $t;
            if t > watch.deadline() {
                return (watch.deadline(), watch.expired(), watch.committed());
            }
            t
        }};
    }
    let Some((h, status)) = w.head else {
        if let End::Abort { at } = w.end {
            let t = at!(at);
            return (t, watch.end(false, answer), watch.committed());
        }
        return (watch.deadline(), watch.expired(), watch.committed());
    };
    let h = at!(h);
    watch.head(h, status, stream_req && (200..300).contains(&status));
    if w.preamble {
        watch.chunk(h, Chunk::Data);
    }
    let mut last = h;
    for i in 0..w.tokens {
        last = at!(w.token_at(i));
        watch.chunk(last, Chunk::Data);
    }
    let (t, c) = match w.end {
        End::Silence { pings } => {
            let Some(p) = pings.filter(|_| watch.committed()) else {
                return (watch.deadline(), watch.expired(), watch.committed());
            };
            loop {
                last = at!(last + p);
                watch.chunk(last, Chunk::KeepAlive);
            }
        }
        End::Complete { at } => (at, Some(Chunk::Terminal)),
        End::NoTerminal { at } | End::Malformed { at } => (at, Some(Chunk::Data)),
        End::InBandError { at, .. } => (at, Some(Chunk::Error)),
        End::Abort { at } => (at, None),
    };
    let t = at!(t);
    if watch.committed() {
        if let Some(o) = c.and_then(|c| watch.chunk(t, c)) {
            return (t, o, true);
        }
    }
    (t, watch.end(c.is_some(), answer), watch.committed())
}

fn arb_end() -> impl Strategy<Value = End> {
    prop_oneof![
        (0u64..400).prop_map(|at| End::Complete { at }),
        (0u64..400).prop_map(|at| End::NoTerminal { at }),
        (0u64..400).prop_map(|at| End::Malformed { at }),
        (0u64..400).prop_map(|at| End::Abort { at }),
        (0u64..400).prop_map(|at| End::InBandError {
            at,
            kind: crate::provider::ErrorKind::Overloaded
        }),
        (proptest::option::of(1u64..60)).prop_map(|pings| End::Silence { pings }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The simulator's closed form and the live proxy's chunk-by-chunk watch are one
    /// semantics: over random timelines and limits they settle alike.
    #[test]
    fn settle_matches_feeding_every_chunk(
        head in proptest::option::of((0u64..100, prop_oneof![Just(200u16), Just(429u16), Just(503u16)])),
        preamble in any::<bool>(),
        first in 0u64..200, gap in 0u64..80, n in 0u32..12, end in arb_end(),
        request in 1u64..500, ttft in proptest::option::of(1u64..300), stall in proptest::option::of(1u64..100),
        stream_req in any::<bool>(),
    ) {
        let (first, end) = match end {
            // the end comes after the last token, as every wire has it
            End::Complete { at } => (first, End::Complete { at: at.max(first + gap * u64::from(n.saturating_sub(1))) }),
            e => (first, e),
        };
        let last = first + gap * u64::from(n.saturating_sub(1));
        let end = match end {
            End::NoTerminal { at } => End::NoTerminal { at: at.max(last) },
            End::Malformed { at } => End::Malformed { at: at.max(last) },
            End::Abort { at } if head.is_some() => End::Abort { at: at.max(last) },
            End::InBandError { at, kind } => End::InBandError { at: at.max(last), kind },
            e => e,
        };
        let head = head.map(|(h, s)| (if preamble { 0 } else { h }, s));
        let w = Wire { head, preamble: preamble && head.is_some(), first_token: first.max(head.map_or(0, |h| h.0)), interval: gap, tokens: if preamble { n } else { 0 }, end };
        let l = lim(request, ttft, stall);
        let s = settle(&w, &l, stream_req, ok200());
        prop_assert_eq!((s.at, s.outcome, s.committed), replay(&w, &l, stream_req, ok200()), "{:?} {:?}", w, l);
        // the common case's shortcut settles every field as the watched path does
        prop_assert_eq!(s, settle_watched(&w, &l, stream_req, ok200()), "{:?} {:?}", w, l);
    }
}

/// The issue's `no_terminal` case through the gateway: every token is passed on and the
/// stream ends at the last one (580 ms), a stream cut (no `[DONE]`); the client sees the
/// gateway's in-band error then, with its first token at 200 ms.
#[test]
fn no_terminal_settles_at_the_last_token() {
    let w = stream(200 * MS, 20 * MS, 20, End::NoTerminal { at: 580 * MS });
    let s = settle(&w, &lim(60_000 * MS, None, Some(1_000 * MS)), true, ok200());
    assert_eq!((s.at, s.outcome, s.committed), (580 * MS, Outcome::StreamCut, true));
    assert_eq!((s.first_token, w.tokens), (Some(200 * MS), 20));
    assert_eq!(client_outcome(s.outcome, s.committed, false), Seen::StreamError);
}

/// `ttft_timeout` bounds the head and the first chunk (the preamble comes with the head):
/// a hung or silent-headed upstream fails over at it; a slow first *token* after the
/// preamble is the stall timeout's business.
#[test]
fn ttft_timeout_bounds_the_first_byte_and_stall_the_gaps() {
    let l = lim(10_000, Some(1_000), Some(300));
    let hang = Wire::of(&crate::fault::Verdict::Hang, true, 0);
    assert_eq!(settle(&hang, &l, true, ok200()).outcome, Outcome::TtftTimeout);
    assert_eq!(settle(&hang, &l, true, ok200()).at, 1_000);
    assert_eq!(
        settle(&hang, &l, false, ok200()),
        Settled {
            at: 10_000,
            outcome: Outcome::Timeout,
            committed: false,
            first_token: None,
        }
    );
    let silent_head = Wire::of(&crate::fault::Verdict::HeadersThenSilence { after: 10 }, true, 0);
    assert_eq!(settle(&silent_head, &l, true, ok200()).outcome, Outcome::TtftTimeout);
    assert!(!settle(&silent_head, &l, true, ok200()).committed);
    let slow_first = stream(2_000, 10, 5, End::Complete { at: 2_040 });
    let s = settle(&slow_first, &l, true, ok200());
    assert_eq!(
        (s.at, s.outcome, s.committed, s.first_token),
        (300, Outcome::Stall, true, None)
    );
}

/// Keep-alive pings, however frequent, do not keep a stalled stream open: the stall
/// timeout counts from the last content (the reference gateway used to renew it on every
/// ping, so a provider sending only pings held streams until the request timeout — the
/// catalogue's `ping-stall` entry).
#[test]
fn ping_stall_renewed_the_stall_timer() {
    let w = |p| stream(10, 10, 3, End::Silence { pings: Some(p) });
    let l = lim(5_000, None, Some(100));
    for p in [1, 50, 100, 101] {
        let s = settle(&w(p), &l, true, ok200());
        assert_eq!((s.at, s.outcome), (130, Outcome::Stall), "pings every {p}");
    }
}

/// A reset before the head is a connection failure (failover possible); one after the
/// stream was passed on is a cut.
#[test]
fn resets_before_the_head_and_cuts_after_it() {
    let l = lim(1_000, None, None);
    let reset = Wire::of(&crate::fault::Verdict::Reset { after: 7 }, true, 0);
    assert_eq!(settle(&reset, &l, true, ok200()).outcome, Outcome::Connect);
    let cut = stream(10, 10, 3, End::Abort { at: 35 });
    let s = settle(&cut, &l, true, ok200());
    assert_eq!((s.at, s.outcome, s.committed), (35, Outcome::StreamCut, true));
    assert_eq!(client_outcome(s.outcome, s.committed, false), Seen::StreamError);
    let bad = stream(10, 10, 3, End::Malformed { at: 30 });
    let s = settle(&bad, &l, true, ok200());
    assert_eq!(
        (s.outcome, client_outcome(s.outcome, s.committed, true)),
        (Outcome::StreamCut, Seen::MalformedStream)
    );
}

#[test]
fn the_gateway_answers_timeouts_504_broken_connections_502_and_nothing_503() {
    assert_eq!(reply_status(None), 503);
    assert_eq!(reply_status(Some(&Outcome::Timeout)), 504);
    assert_eq!(reply_status(Some(&Outcome::TtftTimeout)), 504);
    assert_eq!(reply_status(Some(&Outcome::Connect)), 502);
    assert_eq!(reply_status(Some(&Outcome::Answer(Answer::status(429)))), 429);
}

fn policy(extra: &str) -> Policy {
    let cfg: GatewayConfig = toml::from_str(&format!(
        "targets = [{{ name = \"a\" }}, {{ name = \"b\" }}, {{ name = \"c\" }}]\n{extra}"
    ))
    .unwrap();
    Policy::new(cfg, 1)
}

/// Drift: after a retry the breaker refused, the simulator moved to the next target even
/// with `fallback_on_failure = false`. The walk gives up instead.
#[test]
fn no_fallback_after_refused_retry() {
    let mut p = policy(
        "fallback_on_failure = false\nretries = { attempts = 2, min_per_s = 100.0 }\nbreaker = { kind = \"consecutive\", failures = 1, base_ejection = \"10s\" }",
    );
    let order = p.plan(0);
    let mut w = Walk::new();
    assert_eq!(w.next(&mut p, 0, &order), Step::Try(0));
    // the failure opens a's breaker; the retry is granted, but its admission is refused
    assert_eq!(w.after(&mut p, 1, 0, Outcome::Timeout, false, 1), Step::Wait(0));
    assert_eq!(w.next(&mut p, 1, &order), Step::GiveUp);
    assert_eq!(w.tried(), Some(0));
    let fallbacks = p
        .drain_events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Fallback { .. }))
        .count();
    assert_eq!(fallbacks, 0);
    // with fallback on, the refused retry moves on to b
    let mut p = policy(
        "retries = { attempts = 2, min_per_s = 100.0 }\nbreaker = { kind = \"consecutive\", failures = 1, base_ejection = \"10s\" }",
    );
    let order = p.plan(0);
    let mut w = Walk::new();
    assert_eq!(w.next(&mut p, 0, &order), Step::Try(0));
    assert_eq!(w.after(&mut p, 1, 0, Outcome::Timeout, false, 1), Step::Wait(0));
    assert_eq!(w.next(&mut p, 1, &order), Step::Try(1));
}

/// Drift: the simulator's `fallback` event named the target just before the next one in
/// the order, even when that one was skipped (its breaker refused) and never tried.
#[test]
fn fallback_event_names_last_tried_target() {
    let mut p = policy("breaker = { kind = \"consecutive\", failures = 1, base_ejection = \"10s\" }");
    let order = p.plan(0);
    let mut w = Walk::new();
    assert_eq!(w.next(&mut p, 0, &order), Step::Try(0));
    // b fails on its own request first, so its breaker is open when a's request reaches it
    assert!(p.on_outcome(0, 1, Outcome::Connect, 1));
    assert_eq!(w.after(&mut p, 2, 0, Outcome::Connect, false, 2), Step::Next);
    assert_eq!(w.next(&mut p, 2, &order), Step::Try(2));
    let ev: Vec<_> = p
        .drain_events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Fallback { to } => Some((e.target, to)),
            _ => None,
        })
        .collect();
    assert_eq!(ev, vec![("a".to_string(), "c".to_string())]);
    let _ = BreakerConfig::Consecutive {
        failures: 1,
        base_ejection: crate::time::Dur(1),
        max_ejection: crate::time::Dur(1),
    };
}

/// A final answer (quota) and an answer outside the failure statuses stand; a committed
/// stream's failure is never retried.
#[test]
fn final_answers_and_committed_streams_are_done() {
    let mut p = policy("retries = { attempts = 2, min_per_s = 100.0 }");
    let order = p.plan(0);
    let mut w = Walk::new();
    w.next(&mut p, 0, &order);
    let quota = Answer {
        status: 429,
        retry_after: None,
        final_: Some(crate::provider::classify::Final::Quota),
    };
    assert_eq!(w.after(&mut p, 1, 0, Outcome::Answer(quota), false, 1), Step::Done);
    assert_eq!(
        w.after(&mut p, 1, 0, Outcome::Answer(Answer::status(400)), false, 1),
        Step::Done
    );
    assert_eq!(w.after(&mut p, 1, 0, Outcome::StreamCut, true, 1), Step::Done);
}
