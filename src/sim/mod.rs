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

pub mod invariants;
pub mod report;

use crate::analysis::{Aggregator, ProviderSlot, SloThresholds};
use crate::fault::wire::{End, Wire};
use crate::fault::{Endpoint, Plan, Profile, RequestFacts, Verdict};
use crate::gateway::attempt::{self, Limits, Step, Walk};
use crate::gateway::{GatewayConfig, GatewayEvent, Outcome as Ended, Policy};
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
    /// Keep one [`invariants::RequestEnd`] per finished request in [`SimOutput::ends`]
    /// (for the invariant checks; off, it costs one untaken branch per request).
    pub trace_ends: bool,
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
    /// With [`SimInput::trace_ends`]: every finished request's end, sorted by end time then id.
    pub ends: Option<Vec<invariants::RequestEnd>>,
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
/// (128 bytes today: two). Its order of targets lives beside it, in the loop's `orders`.
#[repr(align(64))]
struct Req {
    planned: Planned,
    /// Its way through its order of targets (retries, fallback).
    walk: Walk,
    /// The attempt in flight, settled (`gateway/attempt.rs`): its outcome, how long it
    /// takes, when its first token goes out (valid when `committed` and `tokens > 0`).
    outcome: Ended,
    took: Nanos,
    first_token: Nanos,
    /// Output tokens of its answer (what an ok answer reports).
    tokens: u32,
    /// Its target, and the length of the request's order.
    i: u16,
    targets: u16,
    /// A stream already passed on to the client.
    committed: bool,
    /// Its timeline ends in a malformed chunk.
    malformed: bool,
    /// Closed loop: the user that sent it.
    user: u32,
}

impl Req {
    /// A slot holding `planned`.
    fn new(planned: Planned) -> Req {
        Req {
            planned,
            walk: Walk::new(),
            outcome: Ended::Connect,
            took: 0,
            first_token: 0,
            tokens: 0,
            i: 0,
            targets: 0,
            committed: false,
            malformed: false,
            user: 0,
        }
    }

    /// The outcome of its last attempt (`None`: it made none).
    fn last(&self) -> Option<&Ended> {
        self.walk.tried().map(|_| &self.outcome)
    }
}

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
        trace_ends,
    } = input;
    let mut interrupted = false;
    let limits = Limits::of(&gateway);
    let client_timeout = limits.client_timeout();
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
    // what each target's health probe asks of it: `GET /health`, or the one-token
    // completion the live gateway sends on the target's API (decided as user traffic is),
    // with the model it names
    let probe_kind = gateway.health_check.as_ref().map(|h| h.probe).unwrap_or_default();
    let probes: Vec<(RequestFacts, Option<crate::provider::ChatRequest>)> = apis
        .iter()
        .map(|&api| match probe_kind {
            crate::gateway::ProbeKind::Health => (RequestFacts::health(), None),
            crate::gateway::ProbeKind::Completion => {
                let (_, body) = crate::gateway::ProbeKind::completion_request(api);
                let c = match api {
                    Api::OpenAi => crate::provider::openai::parse_chat(body),
                    Api::Anthropic => crate::provider::anthropic::parse_messages(body),
                }
                .expect("the completion probe is a valid request");
                (RequestFacts::chat(&c), Some(c))
            }
        })
        .collect();
    let names: Vec<String> = gateway.targets.iter().map(|t| t.name.clone()).collect();
    let mut policy = Policy::new(gateway, seed);
    let kinds: Vec<String> = mix.kinds().iter().map(|k| k.name.clone()).collect();
    let mut agg = Aggregator::new(bucket, kinds, slo).without_bucket_latency();
    // the mix's models name the requests (the length of a trickled body depends on it)
    let models = mix.clone();
    // closed loop: the users (the live load client's code), else the open-loop or trace schedule
    let mut users = match source {
        Source::Closed { .. } => Users::new(&source, mix.clone(), seed).map(|u| u.with_min_cycle(SIM_MIN_CYCLE)),
        _ => None,
    };
    let mut schedule = Schedule::new(&source, mix, seed);
    // One reusable record per provider (and one without), with its provider's slot in the
    // aggregator: finishing a request allocates nothing and compares no names.
    let mut records: Vec<(RequestRecord, ProviderSlot, Trace)> = names
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
            let trace = trace_ends.then(Vec::new);
            (r, slot, trace)
        })
        .collect();
    let no_provider = names.len();
    let mut q = Queue::new();
    let mut reqs: Vec<Req> = Vec::new();
    // request slot r's order of targets: `orders[r * n .. r * n + reqs[r].targets]`
    let n_targets = names.len();
    let mut orders: Vec<usize> = Vec::new();
    let mut plan: Vec<usize> = Vec::with_capacity(n_targets);
    let mut free: Vec<u32> = Vec::new();
    // The slot holding the next arrival, planned ahead into the slot itself (the schedule
    // writes straight into it: no planned request is moved around per arrival).
    let mut pending: Option<u32> = None;
    if let Some(first) = schedule.as_mut().and_then(Iterator::next) {
        q.push_side(first.at, Ev::Arrival);
        reqs.push(Req::new(first));
        orders.resize(n_targets, 0);
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
        // The run ends once the traffic is over and no request is in flight (no request
        // can start after that): a live run stops its gateway then, so no probe starts or
        // reports after it (probes would keep the queue alive forever).
        if t > traffic_end && scheduled == agg.records && matches!(first, Ev::ProbeStart { .. } | Ev::ProbeEnd { .. }) {
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
                                reqs.push(Req::new(users.start(t)));
                                orders.resize(reqs.len() * n_targets, 0);
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
                                reqs.push(Req::new(reqs[r as usize].planned.clone()));
                                orders.resize(reqs.len() * n_targets, 0);
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
                    policy.plan_into(t, &mut plan);
                    orders[r * n_targets..r * n_targets + plan.len()].copy_from_slice(&plan);
                    let slot = &mut reqs[r];
                    slot.walk = Walk::new();
                    slot.targets = plan.len() as u16;
                    sched(&mut q, &mut now, t, t, Ev::Attempt { r: r as u32 });
                }
                Ev::Attempt { r } => {
                    let req = &mut reqs[r as usize];
                    let at = r as usize * n_targets;
                    let order = &orders[at..at + usize::from(req.targets)];
                    let i = match req.walk.next(&mut policy, t, order) {
                        Step::Try(i) => i,
                        _ => {
                            let (k, o) = gave_up(req, no_provider);
                            let ended = finish(&mut agg, &mut records[k], req, t, o, None, client_timeout);
                            user_done(&mut users, &mut q, req, ended, t);
                            free.push(r);
                            continue;
                        }
                    };
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
                    // the wire timeline the mock would play, settled as the live gateway
                    // settles what it reads (gateway/attempt.rs)
                    let (answer, tokens, plain_len) = match &d.verdict {
                        // the same types the live gateway builds from the mock's headers
                        // and envelope for this verdict
                        Verdict::Error(e) => (classify::from_verdict(apis[i], e), 0, 0),
                        Verdict::Ok(s) => (
                            Answer::status(200),
                            s.output_tokens,
                            match s.slow_body_bytes_per_s {
                                // a trickled body ends when its last byte goes out
                                Some(_) if shape.endpoint == EndpointKind::Embeddings => {
                                    crate::provider::embeddings_reply_len(
                                        models.model_of(shape),
                                        shape.inputs.max(1),
                                        shape.prompt_tokens,
                                    )
                                }
                                Some(_) if !facts.stream => crate::provider::chat_reply_len(
                                    apis[i],
                                    models.model_of(shape),
                                    shape.prompt_tokens,
                                    s.output_tokens,
                                    s.output_tokens == shape.max_tokens,
                                ),
                                _ => 0,
                            },
                        ),
                        _ => (Answer::status(200), 0, 0),
                    };
                    let wire = Wire::of(&d.verdict, facts.stream, plain_len);
                    let s = attempt::settle(&wire, &limits, facts.stream, answer);
                    req.outcome = s.outcome;
                    req.took = s.at;
                    req.committed = s.committed;
                    req.first_token = s.first_token.unwrap_or(Nanos::MAX);
                    req.tokens = tokens;
                    req.malformed = matches!(wire.end, End::Malformed { .. });
                    // `i` < MAX_TARGETS (the gateway config's limit)
                    req.i = i as u16;
                    sched(&mut q, &mut now, t, t + s.at, Ev::Done { r });
                }
                Ev::Done { r } => {
                    let req = &mut reqs[r as usize];
                    let i = usize::from(req.i);
                    match req.walk.after(&mut policy, t, i, req.outcome, req.committed, req.took) {
                        Step::Wait(w) => sched(&mut q, &mut now, t, t + w, Ev::Attempt { r }),
                        Step::Next | Step::Try(_) => sched(&mut q, &mut now, t, t, Ev::Attempt { r }),
                        Step::GiveUp => {
                            let (k, o) = gave_up(req, no_provider);
                            let ended = finish(&mut agg, &mut records[k], req, t, o, None, client_timeout);
                            user_done(&mut users, &mut q, req, ended, t);
                            free.push(r);
                        }
                        Step::Done => {
                            let o = attempt::client_outcome(req.outcome, req.committed, req.malformed);
                            let started = t - req.took;
                            let first =
                                (req.committed && req.first_token != Nanos::MAX).then(|| started + req.first_token);
                            let ended = finish(&mut agg, &mut records[i], req, t, o, first, client_timeout);
                            user_done(&mut users, &mut q, req, ended, t);
                            free.push(r);
                        }
                    }
                }
                Ev::ProbeStart { i } => {
                    let iu = i as usize;
                    probe_armed[iu] = false;
                    let Some(deadline) = policy.start_probe(t, iu) else {
                        continue;
                    };
                    let (facts, chat) = &probes[iu];
                    let d = plans[iu].decide_probe(t, facts, None);
                    // a probe is a plain attempt whose only limit is the check's timeout
                    let probe = Limits {
                        request: deadline - t,
                        ttft: None,
                        stall: None,
                    };
                    let len = match (&d.verdict, chat) {
                        (Verdict::Ok(s), Some(c)) if s.slow_body_bytes_per_s.is_some() => {
                            crate::provider::chat_reply_len(
                                apis[iu],
                                &c.model,
                                c.input_tokens,
                                s.output_tokens,
                                c.max_tokens == Some(s.output_tokens),
                            )
                        }
                        _ => 0,
                    };
                    let s = attempt::settle(&Wire::of(&d.verdict, false, len), &probe, false, Answer::status(200));
                    let (end, ok) = (t + s.at, s.outcome.is_ok());
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
    // open-ended fault windows end where the live run ends them: at the end of the
    // traffic or of the last answer, whichever is later (run/live.rs), not at the last
    // probe
    let horizon = agg.last_end.max(traffic_end);
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
    let ends = trace_ends.then(|| invariants::merge_traces(records.into_iter().map(|r| r.2)));
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
        ends,
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

/// When `req`'s walk gave up, the gateway answers itself: the record to file it under
/// (the last target tried, whom the answer names, else none) and the status the client
/// sees (`attempt::reply_status` of the last attempt).
fn gave_up(req: &Req, no_provider: usize) -> (usize, Outcome) {
    let k = req.walk.tried().unwrap_or(no_provider);
    (k, Outcome::Http(attempt::reply_status(req.last())))
}

/// Closed loop: request `r`, of user `r.user`, ended for its client at `ended` (found
/// out at `now`, the same unless the client gave up first) — queue that user's next start
/// (`Users::on_complete`: think time, pacing; none once the run's length is reached), no
/// earlier than now. Open loop and trace: nothing. Called once wherever a request is
/// finished.
#[inline]
fn user_done(users: &mut Option<Users>, q: &mut Queue, r: &Req, ended: Nanos, now: Nanos) {
    if let Some(us) = users {
        if let Some(next) = us.on_complete(ended, r.user) {
            q.push(next.max(now), Ev::User { u: r.user });
        }
    }
}

/// Folds request `r`, ended at `end` as its client saw it (`outcome`; the first token at
/// `first_token` when one reached it), into `agg` through `rec` (a reused record whose
/// `provider` is already set, and that provider's slot). Past the client's own timeout
/// (`client_timeout` after the intended start) the client has given up: a timeout then.
fn finish(
    agg: &mut Aggregator,
    (rec, slot, trace): &mut (RequestRecord, ProviderSlot, Trace),
    r: &Req,
    end: Nanos,
    outcome: Outcome,
    first_token: Option<Nanos>,
    client_timeout: Nanos,
) -> Nanos {
    let p = &r.planned;
    let give_up = p.at.saturating_add(client_timeout);
    let (end, outcome) = if end > give_up {
        (give_up, Outcome::Timeout)
    } else {
        (end, outcome)
    };
    let first_token = first_token.filter(|&f| f <= end);
    rec.id = p.id;
    rec.kind = p.shape.kind;
    rec.intended = p.at;
    rec.sent = Some(p.at);
    // a stream's head reaches the client with its first chunk; anything else whole at the end
    rec.first_byte = Some(if r.committed && first_token.is_some() {
        end.saturating_sub(r.took)
    } else {
        end
    });
    rec.first_token = first_token;
    rec.end = end;
    rec.outcome = outcome;
    rec.output_tokens = if outcome.is_ok() { r.tokens } else { 0 };
    rec.input_tokens = p.shape.prompt_tokens;
    rec.stream = p.shape.stream;
    agg.add_at(rec, &[], p.shape.endpoint == EndpointKind::Embeddings, *slot);
    if let Some(ends) = trace {
        ends.push(invariants::RequestEnd::of(
            rec,
            r.walk.retries(),
            r.walk.position() as u32,
            usize::from(r.targets),
        ));
    }
    end
}

/// The ends of one target's requests (the last: of requests no target took), when traced.
type Trace = Option<Vec<invariants::RequestEnd>>;

#[cfg(test)]
mod tests;
