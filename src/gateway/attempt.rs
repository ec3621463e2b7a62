//! How one upstream attempt ends, owned once (pure: times come in as offsets from the
//! attempt's start, nothing here reads a clock).
//!
//! - [`Limits`]: the gateway's per-attempt deadlines (request, TTFT, stall);
//! - [`Watch`]: an attempt as the gateway sees it — head, body chunks, the end or a passed
//!   deadline — settled into a typed [`Outcome`]. The live proxy feeds it what it reads off
//!   the wire; [`settle`] feeds it a verdict's [`Wire`] timeline for the simulator (with
//!   exact fast-forwards over regular token trains and ping trains, tested against
//!   feeding every chunk);
//! - [`Walk`]: one request's way through the planned targets — breaker admission, retries
//!   (budget, Retry-After), fallback — shared by the live proxy and the simulator;
//! - what the gateway's client receives ([`reply_status`], [`client_outcome`]).
//!
//! Provider answers are classified by [`crate::provider::classify`] (status, Retry-After,
//! finality), never by matching message text.

use super::Policy;
use crate::fault::wire::{End, Wire};
use crate::provider::classify::Answer;
use crate::record::Outcome as Seen;
use crate::time::{Nanos, NS_PER_S};

/// How one upstream attempt ended, as the gateway saw it. Provider answers (503, 429…)
/// are data here, not errors; [`super::FailureRules`] decides which of them count as
/// failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete answer: a 2xx (a stream that ended with its terminal event) or the
    /// provider's error answer, classified.
    Answer(Answer),
    /// No complete answer within `request_timeout`.
    Timeout,
    /// A stream's head or first chunk did not come within `ttft_timeout`.
    TtftTimeout,
    /// A stream already passed on to the client went silent longer than `stall_timeout`
    /// (or was still open at `request_timeout`).
    Stall,
    /// Refused, reset, or a body that broke before the answer was passed on.
    Connect,
    /// A stream already passed on ended without its terminal event (cut, or a clean end
    /// without `[DONE]` / `message_stop`).
    StreamCut,
    /// An in-band error event inside a 200 stream.
    StreamError,
}

impl Outcome {
    /// A 2xx answer.
    #[inline]
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Answer(a) if (200..300).contains(&a.status))
    }
}

/// The gateway's deadlines for one attempt, as offsets from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The whole attempt (`request_timeout`).
    pub request: Nanos,
    /// A stream's head and first body chunk (`ttft_timeout`).
    pub ttft: Option<Nanos>,
    /// Longest silence inside a stream already passed on (`stall_timeout`).
    pub stall: Option<Nanos>,
}

/// How much longer than the gateway's `request_timeout` the harness's client waits for a
/// request through the builtin gateway: the gateway's own error answer should reach the
/// client before the client gives up.
pub const CLIENT_GRACE: Nanos = 5 * NS_PER_S;

impl Limits {
    /// The limits of a gateway config.
    pub fn of(cfg: &super::GatewayConfig) -> Limits {
        Limits {
            request: cfg.request_timeout.0,
            ttft: cfg.ttft_timeout.map(|d| d.0),
            stall: cfg.stall_timeout.map(|d| d.0),
        }
    }

    /// By when the head, and for a streamed request the first body chunk, must come.
    #[inline]
    pub fn first_byte(&self, stream: bool) -> Nanos {
        match self.ttft {
            Some(t) if stream => t.min(self.request),
            _ => self.request,
        }
    }

    /// By when the next chunk of a stream already passed on must come, its last chunk
    /// having come at `last`.
    #[inline]
    pub fn next_chunk(&self, last: Nanos) -> Nanos {
        self.stall
            .map_or(self.request, |s| last.saturating_add(s).min(self.request))
    }

    /// The harness client's timeout for a request through this gateway (a request may
    /// take several attempts; past this the client records a timeout).
    pub fn client_timeout(&self) -> Nanos {
        self.request.saturating_add(CLIENT_GRACE)
    }
}

/// A body chunk, as far as the gateway looks into it (it does not parse JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Content, the preamble, anything but the kinds below: renews the stall deadline.
    Data,
    /// A keep-alive and nothing else (an SSE comment `: ping`, Anthropic's `event: ping`):
    /// passed on, but it renews no deadline — a provider that sends only pings has stalled.
    KeepAlive,
    /// An in-band error event.
    Error,
    /// The terminal event (`[DONE]` / `message_stop`).
    Terminal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the head.
    Head,
    /// A plain body (or an error answer's): held until it ends.
    Plain,
    /// An event stream's head: waiting for its first chunk.
    FirstChunk,
    /// A stream passed on to the client: the first chunk came.
    Committed,
}

/// One attempt as the gateway sees it. Feed it in time order; before each event check
/// [`Watch::deadline`]: an event after it never happens, the attempt ends with
/// [`Watch::expired`] at the deadline.
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    lim: Limits,
    stream: bool,
    phase: Phase,
    last: Nanos,
    terminal: bool,
    status: u16,
}

impl Watch {
    /// An attempt of a request that asked to stream (`stream`) or not.
    pub fn new(lim: Limits, stream: bool) -> Watch {
        Watch {
            lim,
            stream,
            phase: Phase::Head,
            last: 0,
            terminal: false,
            status: 0,
        }
    }

    /// The next deadline.
    #[inline]
    pub fn deadline(&self) -> Nanos {
        match self.phase {
            Phase::Head | Phase::FirstChunk => self.lim.first_byte(self.stream),
            Phase::Plain => self.lim.request,
            Phase::Committed => self.lim.next_chunk(self.last),
        }
    }

    /// What a passed [`Watch::deadline`] means.
    #[inline]
    pub fn expired(&self) -> Outcome {
        match self.phase {
            Phase::Committed => Outcome::Stall,
            Phase::Head | Phase::FirstChunk if self.stream && self.lim.ttft.is_some_and(|t| t < self.lim.request) => {
                Outcome::TtftTimeout
            }
            _ => Outcome::Timeout,
        }
    }

    /// The head came at `at` with `status`; `event_stream` when the body is an event
    /// stream of a 2xx answer (passed on chunk by chunk), else the body is held until it
    /// ends.
    #[inline]
    pub fn head(&mut self, at: Nanos, status: u16, event_stream: bool) {
        self.last = at;
        self.status = status;
        self.phase = if event_stream { Phase::FirstChunk } else { Phase::Plain };
    }

    /// Whether the stream has been passed on to the client (no failover after this).
    #[inline]
    pub fn committed(&self) -> bool {
        self.phase == Phase::Committed
    }

    /// A stream's chunk came at `at`. `Some` when it ends the attempt (an error event).
    #[inline]
    pub fn chunk(&mut self, at: Nanos, c: Chunk) -> Option<Outcome> {
        if matches!(self.phase, Phase::FirstChunk | Phase::Committed) {
            self.phase = Phase::Committed;
            if c != Chunk::KeepAlive {
                self.last = at;
            }
        }
        match c {
            Chunk::Error if self.phase == Phase::Committed => Some(Outcome::StreamError),
            Chunk::Terminal => {
                self.terminal = true;
                None
            }
            _ => None,
        }
    }

    /// The body (or, before the head, the connection) ended: cleanly or not. A held body
    /// that ended cleanly is the `answer` (its classification; when its status is not the
    /// head's, the head's bare status).
    #[inline]
    pub fn end(&self, clean: bool, answer: Answer) -> Outcome {
        let answer = if answer.status == self.status {
            answer
        } else {
            Answer::status(self.status)
        };
        match self.phase {
            Phase::Head | Phase::FirstChunk => Outcome::Connect,
            Phase::Plain if clean => Outcome::Answer(answer),
            Phase::Plain => Outcome::Connect,
            Phase::Committed if clean && self.terminal => Outcome::Answer(answer),
            Phase::Committed => Outcome::StreamCut,
        }
    }

    /// Fast-forward over `n` data chunks at `first + k · interval`: `Err((when, outcome))`
    /// if a deadline passes first. The same as feeding each chunk in turn.
    #[inline]
    pub fn train(&mut self, first: Nanos, interval: Nanos, n: u32) -> Result<(), (Nanos, Outcome)> {
        if n == 0 {
            return Ok(());
        }
        self.step(first)?;
        self.chunk(first, Chunk::Data);
        if n == 1 {
            return Ok(());
        }
        // every gap is `interval`: one too long stalls at the first of them
        let second = first.saturating_add(interval);
        self.step(second)?;
        let last = first.saturating_add(interval.saturating_mul(u64::from(n - 1)));
        if last > self.lim.request {
            return Err((self.lim.request, self.expired()));
        }
        self.chunk(last, Chunk::Data);
        Ok(())
    }

    /// After the last chunk, nothing but keep-alive pings (or nothing): when and how the
    /// attempt ends. Pings renew no deadline, so this is the deadline as it stands — the
    /// same as feeding each ping in turn.
    pub fn silence(&self) -> (Nanos, Outcome) {
        (self.deadline(), self.expired())
    }

    /// `Err` at the deadline when `at` comes after it.
    #[inline]
    fn step(&self, at: Nanos) -> Result<(), (Nanos, Outcome)> {
        let d = self.deadline();
        if at > d {
            Err((d, self.expired()))
        } else {
            Ok(())
        }
    }
}

/// An attempt settled: when it ended (from its start), how, and what had reached the
/// client by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    /// When the attempt ended.
    pub at: Nanos,
    /// How.
    pub outcome: Outcome,
    /// A stream had been passed on to the client: no retry or failover.
    pub committed: bool,
    /// When the first content token went out, if one did before the end.
    pub first_token: Option<Nanos>,
}

/// Settles a verdict's timeline against the gateway's limits, for a request that asked to
/// stream (`stream`) or not; `answer` is the classification of the answer its head carries
/// (used when its status is the head's: otherwise the head's bare status stands).
#[inline]
pub fn settle(w: &Wire, lim: &Limits, stream: bool, answer: Answer) -> Settled {
    settle_complete(w, lim, stream, answer).unwrap_or_else(|| settle_watched(w, lim, stream, answer))
}

/// The common case in a few comparisons: an answer that completes within every limit (a
/// held body, or a 2xx stream with its preamble). `None` for anything else. Exactly what
/// [`settle_watched`] gives for these timelines (`settle_matches_feeding_every_chunk`
/// checks `settle`, this path included, against feeding every chunk).
#[inline]
fn settle_complete(w: &Wire, lim: &Limits, stream: bool, answer: Answer) -> Option<Settled> {
    let (Some((h, status)), End::Complete { at }) = (w.head, w.end) else {
        return None;
    };
    if h > lim.first_byte(stream) {
        return None;
    }
    if !(stream && (200..300).contains(&status)) {
        // a held body
        if at > lim.request {
            return None;
        }
        let answer = if answer.status == status {
            answer
        } else {
            Answer::status(status)
        };
        return Some(Settled {
            at,
            outcome: Outcome::Answer(answer),
            committed: false,
            first_token: None,
        });
    }
    if !w.preamble {
        return None;
    }
    let mut last = h;
    if w.tokens > 0 {
        let spaced = w.tokens == 1 || lim.stall.is_none_or(|s| w.interval <= s);
        let end_of_train = w.last_token_at();
        if w.first_token > lim.next_chunk(h) || !spaced || end_of_train > lim.request {
            return None;
        }
        last = end_of_train;
    }
    if at > lim.next_chunk(last) {
        return None;
    }
    let answer = if answer.status == status {
        answer
    } else {
        Answer::status(status)
    };
    Some(Settled {
        at,
        outcome: Outcome::Answer(answer),
        committed: true,
        first_token: (w.tokens > 0).then_some(w.first_token),
    })
}

/// [`settle`] by feeding a [`Watch`] the timeline's head, preamble, token train and end.
fn settle_watched(w: &Wire, lim: &Limits, stream: bool, answer: Answer) -> Settled {
    let mut watch = Watch::new(*lim, stream);
    let done = |watch: &Watch, (at, outcome): (Nanos, Outcome)| {
        let first_token = (watch.committed() && w.tokens > 0 && w.first_token <= at).then_some(w.first_token);
        Settled {
            at,
            outcome,
            committed: watch.committed(),
            first_token,
        }
    };
    let Some((h, status)) = w.head else {
        return match w.end {
            End::Abort { at } if at <= watch.deadline() => done(&watch, (at, watch.end(false, answer))),
            _ => done(&watch, (watch.deadline(), watch.expired())),
        };
    };
    if let Err(e) = watch.step(h) {
        return done(&watch, e);
    }
    // a 2xx answer to a streamed request comes as an event stream; anything else is held
    // whole. A stream's preamble comes with its head: it is passed on at once.
    watch.head(h, status, stream && (200..300).contains(&status));
    if w.preamble {
        watch.chunk(h, Chunk::Data);
    }
    if let Err(e) = watch.train(w.first_token, w.interval, w.tokens) {
        return done(&watch, e);
    }
    let (at, chunk) = match w.end {
        End::Silence { .. } => return done(&watch, watch.silence()),
        End::Complete { at } => (at, Some(Chunk::Terminal)),
        End::NoTerminal { at } | End::Malformed { at } => (at, Some(Chunk::Data)),
        End::InBandError { at, .. } => (at, Some(Chunk::Error)),
        End::Abort { at } => (at, None),
    };
    if let Err(e) = watch.step(at) {
        return done(&watch, e);
    }
    if watch.committed() {
        if let Some(c) = chunk {
            if let Some(o) = watch.chunk(at, c) {
                return done(&watch, (at, o));
            }
        }
    }
    done(&watch, (at, watch.end(chunk.is_some(), answer)))
}

/// The status of the gateway's own error answer when a request's last attempt ended with
/// `last` and nothing was passed on (`None`: no target was available). A provider's
/// answer is passed on with its status; a timeout is 504, a broken connection 502.
pub fn reply_status(last: Option<&Outcome>) -> u16 {
    match last {
        None => 503,
        Some(Outcome::Answer(a)) => a.status,
        Some(Outcome::Timeout | Outcome::TtftTimeout) => 504,
        Some(_) => 502,
    }
}

/// What the client of the reference gateway records when a request's walk ended with the
/// attempt that ended with `outcome` passed on ([`Step::Done`]): a success; a provider's answer with its status;
/// or a stream that broke after it was passed on — the gateway ends it with an in-band
/// error event, unless a malformed chunk (`malformed`: the upstream's timeline ends in one)
/// reached the client first.
pub fn client_outcome(outcome: Outcome, committed: bool, malformed: bool) -> Seen {
    match outcome {
        o if o.is_ok() => Seen::Ok,
        Outcome::StreamCut if committed && malformed => Seen::MalformedStream,
        _ if committed => Seen::StreamError,
        o => Seen::Http(reply_status(Some(&o))),
    }
}

/// What a client talking to the provider directly (no gateway: `profile-stats`, the
/// load generator against a mock) records for a request settled as `s` against its own
/// timeout: a broken stream as it broke (`malformed`: the timeline ends in a malformed
/// chunk), a dropped connection as a reset, every deadline as a timeout.
pub fn direct_outcome(s: &Settled, malformed: bool) -> Seen {
    match s.outcome {
        o if o.is_ok() => Seen::Ok,
        Outcome::Answer(a) => Seen::Http(a.status),
        Outcome::Timeout | Outcome::TtftTimeout | Outcome::Stall => Seen::Timeout,
        Outcome::Connect => Seen::Reset,
        Outcome::StreamCut if malformed => Seen::MalformedStream,
        Outcome::StreamCut => Seen::StreamCut,
        Outcome::StreamError => Seen::StreamError,
    }
}

/// What a request's walk does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Attempt target `i` now.
    Try(usize),
    /// Wait this long, then ask [`Walk::next`] again (a retry of the same target).
    Wait(Nanos),
    /// The answer stands: pass it on (a success, a committed stream, an answer that is not
    /// a failure, a final answer).
    Done,
    /// Move on: ask [`Walk::next`] now (the next target).
    Next,
    /// No attempt is left: answer the client with [`reply_status`] of the last attempt's
    /// outcome (none when [`Walk::tried`] is `None`).
    GiveUp,
}

/// One request's way through its planned order of targets.
///
/// - a target whose breaker refuses is skipped (no attempt, no event);
/// - a failed attempt that the rules send on ([`Walk::after`]) is retried on the same
///   target while the retry budget allows (after any Retry-After), else the walk moves to
///   the next target when `fallback_on_failure`, else gives up;
/// - a retry the breaker refuses after its wait ends the target like an exhausted retry;
/// - a `fallback` event names the last target actually tried and the next one tried.
///
/// Eight bytes: the simulator keeps one per request in flight.
#[derive(Clone, Copy, Debug, Default)]
pub struct Walk {
    /// Position in the order.
    k: u16,
    /// Retries made on the current target.
    attempt: u16,
    /// The last target tried, plus one (0: none yet).
    tried: u16,
    /// A retry of the current target is due.
    retrying: bool,
}

/// Most targets a walk can hold (the gateway config refuses more).
pub const MAX_TARGETS: usize = 1_000;

impl Walk {
    /// A new request's walk.
    pub fn new() -> Walk {
        Walk::default()
    }

    /// The last target tried (`None`: none was): the one a gateway error names.
    pub fn tried(&self) -> Option<usize> {
        self.tried.checked_sub(1).map(usize::from)
    }

    /// The position in the order of the target being tried (or next to try).
    pub fn position(&self) -> usize {
        usize::from(self.k)
    }

    /// Retries made on the current target.
    pub fn retries(&self) -> u32 {
        u32::from(self.attempt)
    }

    /// The next attempt at `now`: [`Step::Try`] or [`Step::GiveUp`].
    #[inline]
    pub fn next(&mut self, policy: &mut Policy, now: Nanos, order: &[usize]) -> Step {
        if self.retrying {
            self.retrying = false;
            let i = order[usize::from(self.k)];
            if policy.admit(now, i) {
                return Step::Try(i);
            }
            if !policy.config().fallback_on_failure {
                return Step::GiveUp;
            }
            self.k += 1;
        }
        while let Some(&i) = order.get(usize::from(self.k)) {
            if policy.admit(now, i) {
                if let Some(prev) = self.tried.checked_sub(1) {
                    policy.on_fallback(now, usize::from(prev), i);
                }
                // `i` < MAX_TARGETS (the config's limit), so it fits
                self.tried = u16::try_from(i + 1).unwrap_or(u16::MAX);
                self.attempt = 0;
                return Step::Try(i);
            }
            self.k += 1;
        }
        Step::GiveUp
    }

    /// The attempt on target `i` that began `duration` ago ended at `now` with `outcome`
    /// (`committed`: a stream already passed on to the client): the policy learns of it;
    /// then [`Step::Done`], [`Step::Wait`] (retry), [`Step::Next`] (the next target) or
    /// [`Step::GiveUp`].
    #[inline]
    pub fn after(
        &mut self,
        policy: &mut Policy,
        now: Nanos,
        i: usize,
        outcome: Outcome,
        committed: bool,
        duration: Nanos,
    ) -> Step {
        policy.on_outcome(now, i, outcome, duration);
        let moves_on = !committed
            && match outcome {
                Outcome::Answer(a) => policy.is_failure_status(a.status) && a.retryable(),
                _ => true,
            };
        if !moves_on {
            return Step::Done;
        }
        let next = self.attempt.saturating_add(1);
        if let Some(w) = policy.retry(now, i, u32::from(next), &outcome) {
            self.attempt = next;
            self.retrying = true;
            return Step::Wait(w);
        }
        if !policy.config().fallback_on_failure {
            return Step::GiveUp;
        }
        self.k += 1;
        Step::Next
    }
}

#[cfg(test)]
mod tests;
