//! The virtual-time simulator: the same fault plans, gateway policy and traffic schedule
//! as live runs, driven by a discrete-event loop in integer nanoseconds. No tokio, no
//! sockets, no clock: a 30-minute incident takes milliseconds and the same seed gives the
//! same records, byte for byte.
//!
//! Events are ordered by `(time, sequence)`: ties at equal timestamps go in the order they
//! were scheduled. What the loop models, per request: the gateway plans an order of
//! targets; each attempt asks the target's fault [`Plan`] for a verdict; an error, reset or
//! timeout before the first byte moves on (fallback, retries) as the live gateway does;
//! a stream that fails after its first byte is a client-visible failure. Health probes run
//! fixed-delay per the policy; a hung probe ends at its timeout. Closed-loop users run
//! through [`Users`], the live load client's code: a user's next start is queued when its
//! request finishes (`user_done`), never before 1 ms after its previous start
//! ([`SIM_MIN_CYCLE`]; docs/closed-loop.md).

pub mod report;

use crate::analysis::{Aggregator, ProviderSlot, SloThresholds};
use crate::fault::{Endpoint, Plan, Profile, RequestFacts, Verdict};
use crate::gateway::{Failure, GatewayConfig, GatewayEvent, Policy};
use crate::provider::classify::{self, Answer};
use crate::provider::Api;
use crate::record::{FaultEvent, Outcome, RequestRecord};
use crate::time::Nanos;
use crate::traffic::users::SIM_MIN_CYCLE;
use crate::traffic::{EndpointKind, Mix, Planned, Schedule, Source, Users};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One simulated provider.
#[derive(Clone, Debug)]
pub struct SimProvider {
    /// Name (must match a gateway target's name).
    pub name: String,
    /// Fault profile.
    pub profile: Profile,
    /// Wire format (what its error answers look like, for [`classify::from_verdict`]).
    pub api: Api,
}

/// Everything a simulated run needs.
#[derive(Clone, Debug)]
pub struct SimInput {
    /// Providers, in any order.
    pub providers: Vec<SimProvider>,
    /// The reference gateway's policy (targets named like providers).
    pub gateway: GatewayConfig,
    /// Traffic: open loop, trace, or closed-loop users.
    pub source: Source,
    /// Request mix.
    pub mix: Mix,
    /// Run seed.
    pub seed: u64,
    /// Time bucket of the analysis.
    pub bucket: Nanos,
    /// Latency targets for goodput (`[slo] ttft / tpot / e2e`).
    pub slo: SloThresholds,
    /// Raised to stop early (Ctrl-C): looked at every [`STOP_CHECK_EVERY`] events; the
    /// output then covers the simulated time reached and is marked interrupted.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Events between two looks at [`SimInput::stop`] (a power of two: a mask test per event).
pub const STOP_CHECK_EVERY: u64 = 1 << 16;

/// What a simulated run produced: the same streams as a live run.
#[derive(Debug)]
pub struct SimOutput {
    /// Folded client records.
    pub aggregator: Aggregator,
    /// Gateway events.
    pub events: Vec<GatewayEvent>,
    /// Ground-truth fault windows.
    pub faults: Vec<FaultEvent>,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests scheduled but not finished when the run stopped (only when interrupted).
    pub in_flight_at_end: u64,
    /// Stopped early through [`SimInput::stop`].
    pub interrupted: bool,
    /// Simulated length: the traffic's planned length, or when interrupted the simulated
    /// time reached.
    pub duration: Nanos,
    /// Events processed.
    pub steps: u64,
    /// Per provider, the user-traffic attempts it received in each analysis bucket (what a
    /// live mock's arrival series counts; probes excluded).
    pub arrivals: std::collections::BTreeMap<String, Vec<u64>>,
}

/// A queued event. Requests and probes keep their state in the loop's tables, so an event
/// is 8 bytes.
#[derive(Debug, Clone, Copy)]
enum Ev {
    /// The next scheduled arrival (kept in `next`).
    Arrival,
    /// Closed loop: user `u` starts a request.
    User { u: u32 },
    /// Request slot `r` tries position `k` of its plan, attempt `a` (both kept in the slot).
    Attempt { r: u32 },
    /// Request slot `r`'s attempt in flight ended (its result is kept in the slot).
    Done { r: u32 },
    /// Target `i`'s probe starts.
    ProbeStart { i: u32 },
    /// Target `i`'s probe ended.
    ProbeEnd { i: u32, ok: bool },
}

/// log2 of a wheel slot's length in ns (≈ 16.8 ms: at the article's 155 req/s a slot
/// holds a few completions, so advancing a slot and sorting it are shared among them).
const SLOT_BITS: u32 = 24;
/// Slots on the wheel (a power of two): it spans ≈ 69 s ahead of the current slot.
const SLOTS: usize = 1 << 12;

/// The event queue, ordered by the key `(time, sequence)`: ties at equal times go in the
/// order they were scheduled. A calendar queue (Brown 1988): a wheel
/// of fixed-length time slots covering the next ≈ 69 s, each an unsorted `Vec`, a bitmap
/// of the non-empty ones, and a binary heap for events beyond the wheel (timeouts, probe
/// intervals). The slot being drained is sorted; pushes into it keep it sorted. Pops take
/// the smallest key among the current slot, the wheel and the far heap, so the order is
/// exactly that of one heap holding everything — at O(1) per event instead of a heap's
/// O(log n) unpredictable comparisons.
struct Queue {
    /// Absolute slot number being drained (`time >> SLOT_BITS`).
    cur: u64,
    /// The current slot's events, sorted by key, largest first (pop from the end). `cur`
    /// never passes the slot of the last event popped (a slot is advanced into only when
    /// the side event does not come first), so everything queued in it is here.
    current: Vec<(Key, Ev)>,
    /// Slot `s` (with `cur < s < cur + SLOTS`) lives at `wheel[s % SLOTS]`.
    wheel: Vec<Vec<(Key, Ev)>>,
    /// Bit `s % SLOTS` set ⇔ that wheel slot is non-empty.
    bits: Vec<u64>,
    /// Events at or past `cur + SLOTS` when scheduled.
    far: BinaryHeap<Reverse<(Key, FarEv)>>,
    /// One event kept beside the wheel (the next arrival: there is always exactly one
    /// pending), with its key: it never goes through a slot.
    side: Option<(Key, Ev)>,
    /// The first non-empty wheel slot after `cur` (`Some(None)`: none), when known:
    /// arrivals pass beside the wheel, so a bitmap scan is worth keeping between pops.
    wheel_next: Option<Option<u64>>,
    seq: u64,
}

/// An [`Ev`] in the far heap (ordered by key only: keys are unique).
#[derive(Debug, Clone, Copy)]
struct FarEv(Ev);
impl PartialEq for FarEv {
    fn eq(&self, _: &FarEv) -> bool {
        true
    }
}
impl Eq for FarEv {}
impl PartialOrd for FarEv {
    fn partial_cmp(&self, o: &FarEv) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for FarEv {
    fn cmp(&self, _: &FarEv) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// An event's key: `(time, sequence)`, compared in that order (a queued event with its key
/// takes 24 bytes). Compared as one 128-bit number: a single wide comparison instead of
/// two dependent ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    t: Nanos,
    seq: u64,
}

impl Key {
    #[inline]
    fn packed(self) -> u128 {
        (u128::from(self.t) << 64) | u128::from(self.seq)
    }
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, o: &Key) -> std::cmp::Ordering {
        self.packed().cmp(&o.packed())
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, o: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }

    #[inline]
    fn lt(&self, o: &Key) -> bool {
        self.packed() < o.packed()
    }

    #[inline]
    fn gt(&self, o: &Key) -> bool {
        self.packed() > o.packed()
    }
}

fn slot_of(key: Key) -> u64 {
    key.t >> SLOT_BITS
}

impl Queue {
    fn new() -> Queue {
        Queue {
            cur: 0,
            current: Vec::new(),
            wheel: (0..SLOTS).map(|_| Vec::new()).collect(),
            bits: vec![0; SLOTS / 64],
            far: BinaryHeap::new(),
            side: None,
            wheel_next: Some(None),
            seq: 0,
        }
    }

    /// The key of an event scheduled now for `t`.
    fn key(&mut self, t: Nanos) -> Key {
        let key = Key { t, seq: self.seq };
        self.seq += 1;
        key
    }

    /// Schedules `ev` at `t` beside the wheel (at most one such event at a time). It is
    /// ordered with the rest exactly as if pushed.
    fn push_side(&mut self, t: Nanos, ev: Ev) {
        debug_assert!(self.side.is_none(), "one side event at a time");
        let key = self.key(t);
        debug_assert!(slot_of(key) >= self.cur, "events are scheduled at or after now");
        self.side = Some((key, ev));
    }

    fn push(&mut self, t: Nanos, ev: Ev) {
        let key = self.key(t);
        let s = slot_of(key);
        debug_assert!(s >= self.cur, "events are scheduled at or after now");
        if s <= self.cur {
            // keys only grow, so this usually lands at the front (the largest end is 0)
            let at = self.current.partition_point(|e| e.0 > key);
            self.current.insert(at, (key, ev));
        } else if s - self.cur < SLOTS as u64 {
            let w = (s % SLOTS as u64) as usize;
            self.wheel[w].push((key, ev));
            self.bits[w / 64] |= 1 << (w % 64);
            if let Some(n) = self.wheel_next {
                self.wheel_next = Some(Some(n.map_or(s, |n| n.min(s))));
            }
        } else {
            self.far.push(Reverse((key, FarEv(ev))));
        }
    }

    /// The first non-empty wheel slot after `cur`, as an absolute slot number.
    fn next_on_wheel(&self) -> Option<u64> {
        let start = ((self.cur + 1) % SLOTS as u64) as usize;
        let words = SLOTS / 64;
        // the first word masked from `start`, then whole words around the wheel
        let (w0, b0) = (start / 64, start % 64);
        let first = self.bits[w0] & (!0u64 << b0);
        let found = if first != 0 {
            Some(w0 * 64 + first.trailing_zeros() as usize)
        } else {
            (1..=words).find_map(|k| {
                let w = (w0 + k) % words;
                let mut x = self.bits[w];
                if k == words {
                    x &= !(!0u64 << b0); // back at the first word: only the bits before `start`
                }
                (x != 0).then(|| w * 64 + x.trailing_zeros() as usize)
            })
        }?;
        let ahead = (found + SLOTS - start) % SLOTS;
        Some(self.cur + 1 + ahead as u64)
    }

    /// Whether no queued event is due at or before `t` (the current time): besides the
    /// side event, only `current` can hold one (every queued event up to its slot is in
    /// it), and its smallest key is last.
    fn nothing_due_by(&self, t: Nanos) -> bool {
        self.current.last().is_none_or(|e| e.0.t > t) && self.side.is_none_or(|e| e.0.t > t)
    }

    /// The earliest event and its time.
    #[inline]
    fn pop(&mut self) -> Option<(Nanos, Ev)> {
        if self.current.is_empty() {
            self.advance();
        }
        // `current` now holds the earliest queued events, if any; the side event may
        // come before them
        match (self.current.last(), self.side) {
            (Some(&(k, ev)), side) => {
                if let Some((sk, sev)) = side.filter(|s| s.0 < k) {
                    self.side = None;
                    return Some((sk.t, sev));
                }
                self.current.pop();
                Some((k.t, ev))
            }
            (None, side) => {
                self.side = None;
                side.map(|(k, ev)| (k.t, ev))
            }
        }
    }

    /// Moves the next non-empty slot (of the wheel or the far heap) into the empty
    /// `current`, sorted, and makes it the current slot — unless the side event comes
    /// before it (or nothing is queued): then `current` stays empty.
    fn advance(&mut self) {
        let wheel = match self.wheel_next {
            Some(w) => w,
            None => {
                let w = self.next_on_wheel();
                self.wheel_next = Some(w);
                w
            }
        };
        let far = self.far.peek().map(|Reverse((k, _))| slot_of(*k));
        let next = match (wheel, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some((k, _)) = self.side {
            if next.is_none_or(|n| slot_of(k) < n) {
                // the side event comes first, alone in its slot: that slot is current
                // (`max` only for clarity: `cur` never passes the time popped last)
                self.cur = self.cur.max(slot_of(k));
                return;
            }
        }
        let Some(next) = next else { return };
        self.cur = next;
        if wheel == Some(next) {
            let w = (next % SLOTS as u64) as usize;
            self.bits[w / 64] &= !(1 << (w % 64));
            std::mem::swap(&mut self.current, &mut self.wheel[w]);
            self.wheel_next = None;
        }
        while let Some(Reverse((k, _))) = self.far.peek() {
            if slot_of(*k) != next {
                break;
            }
            if let Some(Reverse((k, FarEv(ev)))) = self.far.pop() {
                self.current.push((k, ev));
            }
        }
        if self.current.len() > 1 {
            self.current.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        }
    }
}

/// One request in flight, in a reused slot, aligned to a cache line: the slots of
/// requests in flight are touched at random as they complete, so each takes whole lines
/// (128 bytes today: two).
#[repr(align(64))]
struct Req {
    planned: Planned,
    /// The gateway's order of targets (the buffer is reused by the slot's next request).
    order: Vec<usize>,
    first_token: Option<Nanos>,
    tokens: u32,
    /// Position in `order` and attempt number of the next or current attempt.
    k: u32,
    a: u32,
    /// The attempt in flight: target, success, status, start, `OUT_*`.
    i: u32,
    ok: bool,
    code: u16,
    /// The attempt's error answer as the live gateway would classify it (`OUT_STATUS`).
    answer: Answer,
    started: Nanos,
    out: u8,
    /// Closed loop: the user that sent it.
    user: u32,
}

impl Req {
    /// A slot holding `planned`, with room for `targets` in its order.
    fn new(planned: Planned, targets: usize) -> Req {
        Req {
            planned,
            order: Vec::with_capacity(targets),
            first_token: None,
            tokens: 0,
            k: 0,
            a: 0,
            i: 0,
            ok: false,
            code: 0,
            answer: Answer::status(0),
            started: 0,
            out: OUT_STATUS,
            user: 0,
        }
    }
}

const OUT_STATUS: u8 = 0;
const OUT_TIMEOUT: u8 = 1;
const OUT_RESET: u8 = 2;
const OUT_CUT: u8 = 3;
const OUT_STREAM_ERROR: u8 = 4;
const OUT_MALFORMED: u8 = 5;
/// A stream that stalled after its first byte: the gateway ends it with an in-band error.
const OUT_STALL: u8 = 6;

/// Runs the simulation to the end of the traffic (plus in-flight work).
///
/// # Panics
/// If a gateway target has no provider of the same name (validated by the scenario).
pub fn run(input: SimInput) -> SimOutput {
    let SimInput {
        providers,
        gateway,
        source,
        mix,
        seed,
        bucket,
        slo,
        stop,
    } = input;
    let mut interrupted = false;
    let timeout = gateway.request_timeout.0;
    // streams: the first chunk must come within ttft_timeout (failover stays possible until
    // then); after it, a silence longer than stall_timeout ends the stream (as the live
    // gateway does, gateway/server.rs)
    let ttft_limit = gateway.ttft_timeout.map_or(timeout, |d| d.0.min(timeout));
    let stall_limit = gateway.stall_timeout.map(|d| d.0);
    let fallback = gateway.fallback_on_failure;
    let targets: Vec<usize> = gateway
        .targets
        .iter()
        .map(|t| {
            providers
                .iter()
                .position(|p| p.name == t.name)
                .expect("every target has a provider")
        })
        .collect();
    let mut plans: Vec<Plan> = targets
        .iter()
        .map(|&p| Plan::new(&providers[p].profile, seed, &format!("provider/{}", providers[p].name)))
        .collect();
    let apis: Vec<Api> = targets.iter().map(|&p| providers[p].api).collect();
    let names: Vec<String> = gateway.targets.iter().map(|t| t.name.clone()).collect();
    let mut policy = Policy::new(gateway, seed);
    let kinds: Vec<String> = mix.kinds().iter().map(|k| k.name.clone()).collect();
    let mut agg = Aggregator::new(bucket, kinds, slo).without_bucket_latency();
    // closed loop: the users (the live load client's code), else the open-loop or trace schedule
    let mut users = match source {
        Source::Closed { .. } => Users::new(&source, mix.clone(), seed).map(|u| u.with_min_cycle(SIM_MIN_CYCLE)),
        _ => None,
    };
    let mut schedule = Schedule::new(&source, mix, seed);
    // One reusable record per provider (and one without), with its provider's slot in the
    // aggregator: finishing a request allocates nothing and compares no names.
    let mut records: Vec<(RequestRecord, ProviderSlot)> = names
        .iter()
        .map(|n| Some(n.clone()))
        .chain(std::iter::once(None))
        .map(|provider| RequestRecord {
            id: 0,
            kind: 0,
            intended: 0,
            sent: None,
            first_byte: None,
            first_token: None,
            end: 0,
            outcome: Outcome::Ok,
            output_tokens: 0,
            input_tokens: 0,
            provider,
            stream: false,
        })
        .map(|r| {
            let slot = agg.provider_slot(r.provider.as_deref());
            (r, slot)
        })
        .collect();
    let no_provider = names.len();
    let mut q = Queue::new();
    let mut reqs: Vec<Req> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    // The slot holding the next arrival, planned ahead into the slot itself (the schedule
    // writes straight into it: no planned request is moved around per arrival).
    let mut pending: Option<u32> = None;
    if let Some(first) = schedule.as_mut().and_then(Iterator::next) {
        q.push_side(first.at, Ev::Arrival);
        reqs.push(Req::new(first, names.len()));
        pending = Some(0);
    }
    // closed loop: every user's first start (the next ones follow each answer, `user_done`)
    for (u, at) in users.as_mut().map(Users::spawns).unwrap_or_default() {
        q.push(at, Ev::User { u });
    }
    let mut probe_armed = vec![false; names.len()];
    let mut arrivals: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
    let bucket = bucket.max(1);
    // the analysis bucket of the current time, and where it ends
    let (mut slot, mut slot_end) = (0usize, 0);
    let mut events = Vec::new();
    let mut scheduled = 0u64;
    let mut steps = 0u64;
    let mut last = 0;
    let traffic_end = match &source {
        Source::Open(c, _, _) => crate::time::secs_f64_to_nanos(c.duration_s()),
        Source::Trace(t, s) => t.duration(*s),
        Source::Closed { duration, .. } => *duration,
    };
    // arm the first probes
    for (i, armed) in probe_armed.iter_mut().enumerate() {
        if let Some(t) = policy.probe_at(i) {
            q.push(t, Ev::ProbeStart { i: i as u32 });
            *armed = true;
        }
    }
    while let Some((t, first)) = q.pop() {
        if steps & (STOP_CHECK_EVERY - 1) == 0
            && stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            interrupted = true;
            break;
        }
        // probes keep the queue alive forever: stop once traffic is over and nothing else is
        if t > traffic_end.saturating_add(timeout) && matches!(first, Ev::ProbeStart { .. }) {
            continue;
        }
        // an event scheduled for now that is provably the next one runs at once (`now`)
        let mut now = Some(first);
        while let Some(ev) = now.take() {
            steps += 1;
            last = last.max(t);
            match ev {
                Ev::Arrival | Ev::User { .. } => {
                    let r = if let Ev::User { u } = ev {
                        // closed loop: user `u` starts its next request, into a free slot
                        let Some(users) = users.as_mut() else { continue };
                        let r = match free.pop() {
                            Some(n) => {
                                users.start_into(t, &mut reqs[n as usize].planned);
                                n
                            }
                            None => {
                                reqs.push(Req::new(users.start(t), names.len()));
                                (reqs.len() - 1) as u32
                            }
                        };
                        reqs[r as usize].user = u;
                        r
                    } else {
                        let (Some(r), Some(schedule)) = (pending.take(), schedule.as_mut()) else {
                            continue;
                        };
                        // plan the arrival after this one into a free slot
                        let n = match free.pop() {
                            Some(n) => n,
                            None => {
                                reqs.push(Req::new(reqs[r as usize].planned.clone(), names.len()));
                                (reqs.len() - 1) as u32
                            }
                        };
                        let slot = &mut reqs[n as usize];
                        if schedule.next_into(&mut slot.planned) {
                            q.push_side(slot.planned.at, Ev::Arrival);
                            pending = Some(n);
                        } else {
                            free.push(n);
                        }
                        r
                    };
                    scheduled += 1;
                    let r = r as usize;
                    let slot = &mut reqs[r];
                    slot.first_token = None;
                    slot.tokens = 0;
                    slot.k = 0;
                    slot.a = 0;
                    policy.plan_into(t, &mut reqs[r].order);
                    if reqs[r].order.is_empty() {
                        finish(&mut agg, &mut records[no_provider], &reqs[r], t, Outcome::Http(503));
                        user_done(&mut users, &mut q, &reqs[r], t);
                        free.push(r as u32);
                    } else {
                        sched(&mut q, &mut now, t, t, Ev::Attempt { r: r as u32 });
                    }
                }
                Ev::Attempt { r } => {
                    let ru = r as usize;
                    let req = &mut reqs[ru];
                    let (k, a) = (req.k as usize, req.a);
                    let i = req.order[k];
                    if !policy.admit(t, i) {
                        if k + 1 < req.order.len() {
                            req.k += 1;
                            req.a = 0;
                            sched(&mut q, &mut now, t, t, Ev::Attempt { r });
                        } else {
                            finish(&mut agg, &mut records[no_provider], req, t, Outcome::Http(503));
                            user_done(&mut users, &mut q, req, t);
                            free.push(r);
                        }
                        continue;
                    }
                    if k > 0 && a == 0 {
                        let prev = req.order[k - 1];
                        policy.on_fallback(t, prev, i);
                    }
                    // events run in time order, so the bucket changes once per bucket
                    // length: one division per bucket, not per attempt
                    if t >= slot_end {
                        let k = t / bucket;
                        slot = k as usize;
                        slot_end = (k + 1).saturating_mul(bucket);
                    }
                    let series = &mut arrivals[i];
                    if series.len() <= slot {
                        series.resize(slot + 1, 0);
                    }
                    series[slot] += 1;
                    let shape = &req.planned.shape;
                    let facts = RequestFacts {
                        endpoint: if shape.endpoint == EndpointKind::Embeddings {
                            Endpoint::Embeddings
                        } else {
                            Endpoint::Chat
                        },
                        stream: shape.stream,
                        input_tokens: shape.prompt_tokens,
                        max_tokens: Some(shape.max_tokens),
                    };
                    let d = plans[i].decide(t, &facts, None);
                    let (dt, ok, code, out) = match d.verdict {
                        // no first chunk in time: a timeout before the first byte
                        Verdict::Ok(s)
                            if facts.stream
                                && s.first > ttft_limit
                                && s.stream_fault.as_ref().is_none_or(|f| f.after_tokens > 0) =>
                        {
                            (ttft_limit, false, 0, OUT_TIMEOUT)
                        }
                        Verdict::Ok(s) => match s.stream_fault {
                            None => {
                                if facts.stream {
                                    req.first_token = Some(t + s.first);
                                }
                                req.tokens = s.output_tokens;
                                (
                                    s.service_time(facts.stream).min(timeout),
                                    s.service_time(facts.stream) <= timeout,
                                    200,
                                    OUT_STATUS,
                                )
                            }
                            Some(f) => {
                                let at = s.first + s.token_interval * u64::from(f.after_tokens.saturating_sub(1));
                                req.first_token = (f.after_tokens > 0).then_some(t + s.first);
                                req.tokens = f.after_tokens;
                                use crate::fault::StreamKind as K;
                                let stall_end = |ping_every: Option<Nanos>| match stall_limit {
                                    // pings reset the gateway's silence timer
                                    Some(st) if ping_every.is_none_or(|p| p > st) => at.saturating_add(st).min(timeout),
                                    _ => timeout,
                                };
                                let (dt, out) = match f.kind {
                                    K::Error => (at.min(timeout), OUT_STREAM_ERROR),
                                    K::Malformed => (at.min(timeout), OUT_MALFORMED),
                                    K::NoTerminal | K::Cut => (at.min(timeout), OUT_CUT),
                                    // stalled before the first chunk: a timeout, failover possible
                                    K::PingStall | K::SilentStall if f.after_tokens == 0 => (ttft_limit, OUT_TIMEOUT),
                                    K::PingStall => (stall_end(Some(f.ping_every)), OUT_STALL),
                                    K::SilentStall => (stall_end(None), OUT_STALL),
                                };
                                (dt, false, 200, out)
                            }
                        },
                        Verdict::Error(e) => {
                            // the same types the live gateway builds from the mock's headers
                            // and envelope for this verdict
                            req.answer = classify::from_verdict(apis[i], &e);
                            (
                                e.after.min(timeout),
                                false,
                                e.status,
                                if e.after > timeout { OUT_TIMEOUT } else { OUT_STATUS },
                            )
                        }
                        Verdict::Reset { after } => (
                            after.min(timeout),
                            false,
                            0,
                            if after > timeout { OUT_TIMEOUT } else { OUT_RESET },
                        ),
                        Verdict::Hang | Verdict::HeadersThenSilence { .. } if facts.stream => {
                            (ttft_limit, false, 0, OUT_TIMEOUT)
                        }
                        Verdict::Hang | Verdict::HeadersThenSilence { .. } => (timeout, false, 0, OUT_TIMEOUT),
                    };
                    req.i = i as u32;
                    req.ok = ok;
                    req.code = code;
                    req.started = t;
                    req.out = out;
                    sched(&mut q, &mut now, t, t + dt, Ev::Done { r });
                }
                Ev::Done { r } => {
                    let req = &mut reqs[r as usize];
                    let (k, a, i, ok, code, out) = (req.k as usize, req.a, req.i as usize, req.ok, req.code, req.out);
                    let duration = t - req.started;
                    let counts = match out {
                        OUT_TIMEOUT | OUT_RESET | OUT_STALL => policy.config().failure.timeout,
                        OUT_CUT => policy.config().failure.stream_cut,
                        OUT_STREAM_ERROR | OUT_MALFORMED => policy.config().failure.stream_error,
                        _ => !ok && policy.is_failure_status(code),
                    };
                    policy.on_result(t, i, counts, duration);
                    let rec = &mut records[i];
                    if ok {
                        finish(&mut agg, rec, req, t, Outcome::Ok);
                        user_done(&mut users, &mut q, req, t);
                        free.push(r);
                        continue;
                    }
                    let stream_failure = matches!(out, OUT_CUT | OUT_STREAM_ERROR | OUT_MALFORMED | OUT_STALL);
                    if stream_failure {
                        // the first byte already reached the client: no failover
                        let o = match out {
                            // the reference gateway ends a cut or stalled stream with an
                            // in-band error event, never a clean-looking end
                            OUT_CUT | OUT_STREAM_ERROR | OUT_STALL => Outcome::StreamError,
                            _ => Outcome::MalformedStream,
                        };
                        finish(&mut agg, rec, req, t, o);
                        user_done(&mut users, &mut q, req, t);
                        free.push(r);
                        continue;
                    }
                    // only an error verdict sets `answer` (its status is 400–599, never the 0 or
                    // 200 of the other verdicts)
                    let answer = if req.answer.status == code {
                        req.answer
                    } else {
                        Answer::status(code)
                    };
                    let failure = if out == OUT_STATUS {
                        Failure::Status(answer)
                    } else {
                        Failure::Connect
                    };
                    let is_failure = out != OUT_STATUS || policy.is_failure_status(code);
                    // a final answer (quota, spend cap, `x-should-retry: false`) is passed on
                    // as it is: no retry, no failover (as the live gateway does)
                    let final_answer = out == OUT_STATUS && !answer.retryable();
                    if is_failure && !final_answer {
                        if let Some(w) = policy.retry(t, i, a + 1, failure) {
                            req.a = a + 1;
                            sched(&mut q, &mut now, t, t + w, Ev::Attempt { r });
                            continue;
                        }
                        if fallback && k + 1 < req.order.len() {
                            req.k += 1;
                            req.a = 0;
                            sched(&mut q, &mut now, t, t, Ev::Attempt { r });
                            continue;
                        }
                    }
                    let o = match out {
                        OUT_TIMEOUT => Outcome::Timeout,
                        OUT_RESET => Outcome::Reset,
                        _ => Outcome::Http(code),
                    };
                    finish(&mut agg, rec, req, t, o);
                    user_done(&mut users, &mut q, req, t);
                    free.push(r);
                }
                Ev::ProbeStart { i } => {
                    let iu = i as usize;
                    probe_armed[iu] = false;
                    let Some(deadline) = policy.start_probe(t, iu) else {
                        continue;
                    };
                    let d = plans[iu].decide(t, &RequestFacts::health(), None);
                    let (end, ok) = match d.verdict {
                        Verdict::Ok(s) => (t + s.first, true),
                        Verdict::Error(e) => (t + e.after, false),
                        Verdict::Reset { after } => (t + after, false),
                        Verdict::Hang | Verdict::HeadersThenSilence { .. } => (deadline, false),
                    };
                    let (end, ok) = if end > deadline { (deadline, false) } else { (end, ok) };
                    q.push(end, Ev::ProbeEnd { i, ok });
                }
                Ev::ProbeEnd { i, ok } => {
                    let iu = i as usize;
                    policy.on_probe(t, iu, ok);
                    if !probe_armed[iu] {
                        if let Some(n) = policy.probe_at(iu) {
                            q.push(n, Ev::ProbeStart { i });
                            probe_armed[iu] = true;
                        }
                    }
                }
            }
        }
    }
    // events keep their timestamps and emission order, so one drain at the end is the same
    // stream as draining after every step
    policy.drain_events_into(&mut events);
    let horizon = last.max(traffic_end);
    let faults: Vec<FaultEvent> = plans
        .iter_mut()
        .zip(&names)
        .flat_map(|(p, n)| {
            p.fault_windows(horizon)
                .into_iter()
                .map(|w| FaultEvent::of_window(n, w))
                .collect::<Vec<_>>()
        })
        .collect();
    let faults = crate::record::merge_fault_windows(faults);
    // every scheduled request ends in a record unless the run was stopped
    let in_flight_at_end = scheduled.saturating_sub(agg.records);
    debug_assert!(
        interrupted || in_flight_at_end == 0,
        "a finished simulation accounts for every request"
    );
    debug_assert!(
        interrupted || users.as_ref().is_none_or(|u| u.schedule().active() == 0),
        "every closed-loop request ended for its user (a `finish` without `user_done`)"
    );
    SimOutput {
        aggregator: agg,
        events,
        faults,
        scheduled,
        in_flight_at_end,
        interrupted,
        duration: if interrupted {
            last.min(traffic_end)
        } else {
            traffic_end
        },
        steps,
        arrivals: names.into_iter().zip(arrivals).collect(),
    }
}

/// Schedules `ev` at `at`, or hands it back in `now` to run at once when it is provably
/// the very next event: due now (`at == t`), nothing else handed back yet, and nothing
/// queued at or before `t` (everything queued has a smaller sequence number, so a queued
/// event at `t` would have to go first). Same order as queueing it, without the queue.
fn sched(q: &mut Queue, now: &mut Option<Ev>, t: Nanos, at: Nanos, ev: Ev) {
    if at == t && now.is_none() && q.nothing_due_by(t) {
        *now = Some(ev);
    } else {
        q.push(at, ev);
    }
}

/// Closed loop: request `r`, of user `r.user`, ended at `t` — queue that user's next start
/// (`Users::on_complete`: think time, pacing; none once the run's length is reached). Open
/// loop and trace: nothing. Called once wherever a request is finished.
#[inline]
fn user_done(users: &mut Option<Users>, q: &mut Queue, r: &Req, t: Nanos) {
    if let Some(us) = users {
        if let Some(next) = us.on_complete(t, r.user) {
            q.push(next, Ev::User { u: r.user });
        }
    }
}

/// Folds request `r`, ended at `end`, into `agg` through `rec` (a reused record whose
/// `provider` is already set, and that provider's slot).
fn finish(
    agg: &mut Aggregator,
    (rec, slot): &mut (RequestRecord, ProviderSlot),
    r: &Req,
    end: Nanos,
    outcome: Outcome,
) {
    let p = &r.planned;
    rec.id = p.id;
    rec.kind = p.shape.kind;
    rec.intended = p.at;
    rec.sent = Some(p.at);
    rec.first_byte = Some(end.min(r.first_token.unwrap_or(end)));
    rec.first_token = if outcome.is_ok() || matches!(outcome, Outcome::StreamCut | Outcome::StreamError) {
        r.first_token
    } else {
        None
    };
    rec.end = end;
    rec.outcome = outcome;
    rec.output_tokens = if outcome.is_ok() { r.tokens } else { 0 };
    rec.input_tokens = p.shape.prompt_tokens;
    rec.stream = p.shape.stream;
    agg.add_at(rec, &[], p.shape.endpoint == EndpointKind::Embeddings, *slot);
}

#[cfg(test)]
mod tests;
