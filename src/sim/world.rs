//! The simulator's world: every provider's fault plan, the gateway policy, the traffic and
//! the event queue, with one handler per event kind. [`World::step`] runs the next event;
//! [`super::run`] steps until the queue is empty and hands back the output.

use super::queue::{Ev, Queue};
use super::{invariants, SimInput, SimOutput, STOP_CHECK_EVERY};
use crate::analysis::attempts::{Attempt, AttemptsAcc, ClientEnd};
use crate::analysis::{Aggregator, ProviderSlot};
use crate::fault::wire::{End, Wire};
use crate::fault::{Endpoint, Plan, RequestFacts, Verdict};
use crate::gateway::attempt::{self, Limits, Step, Walk};
use crate::gateway::{GatewayEvent, Outcome as Ended, Policy};
use crate::provider::classify::{self, Answer};
use crate::provider::Api;
use crate::record::{FaultEvent, Outcome, RequestRecord};
use crate::time::Nanos;
use crate::traffic::users::SIM_MIN_CYCLE;
use crate::traffic::{EndpointKind, Mix, Planned, Schedule, Source, Users};

/// One request in flight, in a reused slot, aligned to a cache line: the slots of
/// requests in flight are touched at random as they complete, so each takes whole lines
/// (128 bytes today: two). Its order of targets lives beside it, in the loop's `orders`.
#[repr(align(64))]
pub(super) struct Req {
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
    /// The gateway replica the client sent it to (`gateway::replica_of`).
    replica: u16,
    /// Attempts it made so far, and whether one got a complete answer (the attempt
    /// figures' join, `analysis/attempts.rs`).
    tries: u32,
    whole: bool,
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
            replica: 0,
            tries: 0,
            whole: false,
        }
    }

    /// The outcome of its last attempt (`None`: it made none).
    fn last(&self) -> Option<&Ended> {
        self.walk.tried().map(|_| &self.outcome)
    }
}

/// A running simulation.
pub(super) struct World {
    // what the run was given, resolved once
    limits: Limits,
    client_timeout: Nanos,
    plans: Vec<Plan>,
    apis: Vec<Api>,
    /// What each target's health probe asks of it (and its chat request, when a completion).
    probes: Vec<(RequestFacts, Option<crate::provider::ChatRequest>)>,
    names: Vec<String>,
    /// The mix: it names the models of requests (a trickled body's length depends on it).
    models: Mix,
    n_targets: usize,
    /// The record index of requests no target took.
    no_provider: usize,
    bucket: Nanos,
    traffic_end: Nanos,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    trace_ends: bool,
    // the state
    /// One independent policy per gateway replica (`[gateway] replicas`).
    policies: Vec<Policy>,
    agg: Aggregator,
    /// The attempt figures (`analysis/attempts.rs`), fed as attempts and requests happen;
    /// provider `i` there is target `i`.
    attempts: AttemptsAcc,
    /// Closed loop: the users (the live load client's code).
    users: Option<Users>,
    /// Open loop or trace: the schedule.
    schedule: Option<Schedule>,
    /// One reusable record per provider (and one without), with its provider's slot in the
    /// aggregator: finishing a request allocates nothing and compares no names.
    records: Vec<(RequestRecord, ProviderSlot, Trace)>,
    q: Queue,
    reqs: Vec<Req>,
    /// Request slot r's order of targets: `orders[r * n .. r * n + reqs[r].targets]`.
    orders: Vec<usize>,
    /// Scratch for the policy's plan.
    plan: Vec<usize>,
    free: Vec<u32>,
    /// The slot holding the next arrival, planned ahead into the slot itself (the schedule
    /// writes straight into it: no planned request is moved around per arrival).
    pending: Option<u32>,
    probe_armed: Vec<bool>,
    arrivals: Vec<Vec<u64>>,
    /// The analysis bucket of the current time, and where it ends.
    slot: usize,
    slot_end: Nanos,
    scheduled: u64,
    steps: u64,
    last: Nanos,
    interrupted: bool,
}

impl World {
    /// The world at time zero: the first arrival, every user's first start and the first
    /// probes queued.
    ///
    /// # Panics
    /// If a gateway target has no provider of the same name (validated by the scenario).
    pub(super) fn new(input: SimInput) -> World {
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
            start_latency,
        } = input;
        let limits = Limits::of(&gateway);
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
        let plans: Vec<Plan> = targets
            .iter()
            .map(|&p| Plan::for_provider(&providers[p].profile, seed, &providers[p].name))
            .collect();
        let apis: Vec<Api> = targets.iter().map(|&p| providers[p].api).collect();
        let probe_kind = gateway.health_check.as_ref().map(|h| h.probe).unwrap_or_default();
        let probes = apis.iter().map(|&api| probe_request(probe_kind, api)).collect();
        let names: Vec<String> = gateway.targets.iter().map(|t| t.name.clone()).collect();
        let policies: Vec<Policy> = (0..gateway.replicas.max(1))
            .map(|k| Policy::replica(gateway.clone(), seed, k))
            .collect();
        let kinds: Vec<String> = mix.kinds().iter().map(|k| k.name.clone()).collect();
        let phases = crate::analysis::phase_groups(
            providers.iter().map(|p| (p.name.as_str(), &p.profile)),
            seed,
            source.end(),
        );
        let mut agg = Aggregator::new(bucket, kinds, slo)
            .without_bucket_latency()
            .with_phases(phases);
        if start_latency {
            agg = agg.with_start_latency();
        }
        let models = mix.clone();
        let users = match source {
            Source::Closed { .. } => Users::new(&source, mix.clone(), seed).map(|u| u.with_min_cycle(SIM_MIN_CYCLE)),
            _ => None,
        };
        let schedule = Schedule::new(&source, mix, seed);
        let records = names
            .iter()
            .map(|n| Some(n.clone()))
            .chain(std::iter::once(None))
            .map(|provider| {
                let r = RequestRecord {
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
                };
                let slot = agg.provider_slot(r.provider.as_deref());
                (r, slot, trace_ends.then(Vec::new))
            })
            .collect();
        let n = names.len();
        // every fault window edge before the traffic's end, known now (the windows the run
        // ends with, `into_output`, are these cut at a later horizon): the attempt figures
        // count times between edges instead of keeping each
        let traffic_end = source.end();
        let edges: Vec<Nanos> = plans
            .iter()
            .flat_map(|p| p.clone().fault_windows(traffic_end))
            .flat_map(|w| [w.start, w.end])
            .collect();
        let mut attempts = AttemptsAcc::with_edges(limits.client_timeout(), &edges, traffic_end);
        for name in &names {
            attempts.provider(name);
        }
        let mut w = World {
            limits,
            client_timeout: limits.client_timeout(),
            plans,
            apis,
            probes,
            models,
            n_targets: n,
            no_provider: n,
            bucket: bucket.max(1),
            traffic_end: source.end(),
            stop,
            trace_ends,
            agg,
            attempts,
            users,
            schedule,
            records,
            q: Queue::new(),
            reqs: Vec::new(),
            orders: Vec::new(),
            plan: Vec::with_capacity(n),
            free: Vec::new(),
            pending: None,
            probe_armed: vec![false; n * policies.len()],
            arrivals: vec![Vec::new(); n],
            names,
            slot: 0,
            slot_end: 0,
            scheduled: 0,
            steps: 0,
            last: 0,
            interrupted: false,
            policies,
        };
        if let Some(first) = w.schedule.as_mut().and_then(Iterator::next) {
            w.q.push_side(first.at, Ev::Arrival);
            w.reqs.push(Req::new(first));
            w.orders.resize(n, 0);
            w.pending = Some(0);
        }
        // closed loop: every user's first start (the next ones follow each answer, `user_done`)
        for (u, at) in w.users.as_mut().map(Users::spawns).unwrap_or_default() {
            w.q.push(at, Ev::User { u });
        }
        // probe slot p is target p mod n of replica p / n
        for p in 0..w.probe_armed.len() {
            w.arm_probe(p);
        }
        w
    }

    /// Runs the next event, and every event it hands back to run at once; `false` once the
    /// queue is empty or the run was stopped.
    #[inline]
    pub(super) fn step(&mut self) -> bool {
        let Some((t, first)) = self.q.pop() else {
            return false;
        };
        if self.steps & (STOP_CHECK_EVERY - 1) == 0
            && self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            self.interrupted = true;
            return false;
        }
        // The run ends once the traffic is over and no request is in flight (no request
        // can start after that): a live run stops its gateway then, so no probe starts or
        // reports after it (probes would keep the queue alive forever).
        if t > self.traffic_end
            && self.scheduled == self.agg.records
            && matches!(first, Ev::ProbeStart { .. } | Ev::ProbeEnd { .. })
        {
            return true;
        }
        // an event scheduled for now that is provably the next one runs at once (`now`)
        let mut now = Some(first);
        while let Some(ev) = now.take() {
            self.steps += 1;
            self.last = self.last.max(t);
            match ev {
                Ev::Arrival => self.on_arrival(t, &mut now),
                Ev::User { u } => self.on_user(t, u, &mut now),
                Ev::Attempt { r } => self.on_attempt(t, r, &mut now),
                Ev::Done { r } => self.on_done(t, r, &mut now),
                Ev::ProbeStart { i } => self.on_probe_start(t, i),
                Ev::ProbeEnd { i, ok } => self.on_probe_end(t, i, ok),
            }
        }
        true
    }

    /// The next scheduled arrival: plan the one after it into a free slot, then start it.
    #[inline]
    fn on_arrival(&mut self, t: Nanos, now: &mut Option<Ev>) {
        let (Some(r), Some(schedule)) = (self.pending.take(), self.schedule.as_mut()) else {
            return;
        };
        let n = match self.free.pop() {
            Some(n) => n,
            None => {
                self.reqs.push(Req::new(self.reqs[r as usize].planned.clone()));
                self.orders.resize(self.reqs.len() * self.n_targets, 0);
                (self.reqs.len() - 1) as u32
            }
        };
        let slot = &mut self.reqs[n as usize];
        if schedule.next_into(&mut slot.planned) {
            self.q.push_side(slot.planned.at, Ev::Arrival);
            self.pending = Some(n);
        } else {
            self.free.push(n);
        }
        self.start(t, r, now);
    }

    /// Closed loop: user `u` starts its next request, into a free slot.
    #[inline]
    fn on_user(&mut self, t: Nanos, u: u32, now: &mut Option<Ev>) {
        let Some(users) = self.users.as_mut() else { return };
        let r = match self.free.pop() {
            Some(n) => {
                users.start_into(t, &mut self.reqs[n as usize].planned);
                n
            }
            None => {
                self.reqs.push(Req::new(users.start(t)));
                self.orders.resize(self.reqs.len() * self.n_targets, 0);
                (self.reqs.len() - 1) as u32
            }
        };
        self.reqs[r as usize].user = u;
        self.start(t, r, now);
    }

    /// Request slot `r` starts: the gateway plans its order of targets, its first attempt
    /// is due now.
    #[inline]
    fn start(&mut self, t: Nanos, r: u32, now: &mut Option<Ev>) {
        self.scheduled += 1;
        let ru = r as usize;
        // the client's round robin (`[gateway] replicas`; replica 0 when alone)
        let k = crate::gateway::replica_of(self.reqs[ru].planned.id, self.policies.len() as u32);
        self.policies[k].plan_into(t, &mut self.plan);
        let at = ru * self.n_targets;
        self.orders[at..at + self.plan.len()].copy_from_slice(&self.plan);
        let slot = &mut self.reqs[ru];
        // `k` < MAX_REPLICAS
        slot.replica = k as u16;
        slot.walk = Walk::new();
        slot.targets = self.plan.len() as u16;
        slot.tries = 0;
        slot.whole = false;
        self.q.sched(now, t, t, Ev::Attempt { r });
    }

    /// Request slot `r` tries its next target: the target's plan decides, the wire
    /// timeline the mock would play is settled as the live gateway settles what it reads
    /// (gateway/attempt.rs), and the attempt's end is queued.
    #[inline]
    fn on_attempt(&mut self, t: Nanos, r: u32, now: &mut Option<Ev>) {
        let req = &mut self.reqs[r as usize];
        let at = r as usize * self.n_targets;
        let order = &self.orders[at..at + usize::from(req.targets)];
        let i = match req.walk.next(&mut self.policies[usize::from(req.replica)], t, order) {
            Step::Try(i) => i,
            _ => return self.end_given_up(t, r),
        };
        self.count_arrival(t, i);
        let req = &mut self.reqs[r as usize];
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
        let d = self.plans[i].decide(t, &facts, None);
        let api = self.apis[i];
        let (answer, tokens, plain_len) = match &d.verdict {
            // the same types the live gateway builds from the mock's headers and envelope
            Verdict::Error(e) => (
                classify::from_error(api, e.status, e.kind, e.retry_after, e.envelope),
                0,
                0,
            ),
            Verdict::Ok(s) => (
                Answer::status(200),
                s.output_tokens,
                match s.slow_body_bytes_per_s {
                    // a trickled body ends when its last byte goes out
                    Some(_) if shape.endpoint == EndpointKind::Embeddings => crate::provider::embeddings_reply_len(
                        self.models.model_of(shape),
                        shape.inputs.max(1),
                        shape.prompt_tokens,
                    ),
                    Some(_) if !facts.stream => crate::provider::chat_reply_len(
                        api,
                        &crate::provider::mark::Mark::new(&self.names[i]),
                        self.models.model_of(shape),
                        shape.prompt_tokens,
                        s.output_tokens,
                        s.output_tokens == shape.max_tokens,
                    ),
                    _ => 0,
                },
            ),
            _ => (Answer::status(200), 0, 0),
        };
        // what the mock's arrival record says of it (`record::ArrivalRecord`): only a 200
        // answer can be whole, and its label says whether it is; the request's slot keeps
        // the join
        let complete = matches!(d.verdict, Verdict::Ok(_))
            && crate::fault::is_complete_answer(&crate::fault::verdict_label(&d.verdict));
        req.tries += 1;
        req.whole |= complete;
        self.attempts.attempt_joined(
            i,
            &Attempt {
                at: t,
                probe: false,
                health: false,
                request: Some(req.planned.id),
                complete,
                retry_after: match &d.verdict {
                    Verdict::Error(e) if e.status == 429 => answer.retry_after,
                    _ => None,
                },
                tokens: crate::fault::answer_tokens(&d.verdict),
            },
        );
        let wire = Wire::of(&d.verdict, facts.stream, plain_len);
        let s = attempt::settle(&wire, &self.limits, facts.stream, answer);
        req.outcome = s.outcome;
        req.took = s.at;
        req.committed = s.committed;
        req.first_token = s.first_token.unwrap_or(Nanos::MAX);
        req.tokens = tokens;
        req.malformed = matches!(wire.end, End::Malformed { .. });
        // `i` < MAX_TARGETS (the gateway config's limit)
        req.i = i as u16;
        self.q.sched(now, t, t + s.at, Ev::Done { r });
    }

    /// Counts an attempt on target `i` in its arrival series (what a live mock counts).
    #[inline]
    fn count_arrival(&mut self, t: Nanos, i: usize) {
        // events run in time order, so the bucket changes once per bucket length: one
        // division per bucket, not per attempt
        if t >= self.slot_end {
            let k = t / self.bucket;
            self.slot = k as usize;
            self.slot_end = (k + 1).saturating_mul(self.bucket);
        }
        let series = &mut self.arrivals[i];
        if series.len() <= self.slot {
            series.resize(self.slot + 1, 0);
        }
        series[self.slot] += 1;
    }

    /// Request slot `r`'s attempt ended: the walk says what comes next (wait and retry,
    /// the next target, give up, or done).
    #[inline]
    fn on_done(&mut self, t: Nanos, r: u32, now: &mut Option<Ev>) {
        let req = &mut self.reqs[r as usize];
        let i = usize::from(req.i);
        match req.walk.after(
            &mut self.policies[usize::from(req.replica)],
            t,
            i,
            req.outcome,
            req.committed,
            req.took,
        ) {
            Step::Wait(w) => self.q.sched(now, t, t + w, Ev::Attempt { r }),
            Step::Next | Step::Try(_) => self.q.sched(now, t, t, Ev::Attempt { r }),
            Step::GiveUp => self.end_given_up(t, r),
            Step::Done => {
                let o = attempt::client_outcome(req.outcome, req.committed, req.malformed);
                let started = t - req.took;
                let first = (req.committed && req.first_token != Nanos::MAX).then(|| started + req.first_token);
                self.end(t, r, i, o, first);
            }
        }
    }

    /// Request slot `r`'s walk gave up: the gateway answers itself, filed under the last
    /// target tried (whom the answer names), else under no provider.
    fn end_given_up(&mut self, t: Nanos, r: u32) {
        let req = &self.reqs[r as usize];
        let k = req.walk.tried().unwrap_or(self.no_provider);
        let o = Outcome::Http(attempt::reply_status(req.last()));
        self.end(t, r, k, o, None);
    }

    /// Request slot `r` ended at `t` with `outcome`: its record goes under `records[k]`,
    /// its user (closed loop) is told, its slot is free again.
    #[inline]
    fn end(&mut self, t: Nanos, r: u32, k: usize, outcome: Outcome, first_token: Option<Nanos>) {
        let req = &self.reqs[r as usize];
        let ended = finish(
            &mut self.agg,
            &mut self.attempts,
            &mut self.records[k],
            req,
            t,
            outcome,
            first_token,
            self.client_timeout,
        );
        user_done(&mut self.users, &mut self.q, req, ended, t);
        self.free.push(r);
    }

    /// Probe slot `p`'s probe starts (target `p mod n` of replica `p / n`): the target's
    /// plan decides, the answer is settled against the check's timeout, the probe's end is
    /// queued.
    fn on_probe_start(&mut self, t: Nanos, p: u32) {
        let pu = p as usize;
        self.probe_armed[pu] = false;
        let (k, iu) = (pu / self.n_targets, pu % self.n_targets);
        let Some(deadline) = self.policies[k].start_probe(t, iu) else {
            return;
        };
        let (facts, chat) = &self.probes[iu];
        let d = self.plans[iu].decide_probe(t, facts, None);
        self.attempts.attempt(
            iu,
            &Attempt {
                at: t,
                probe: true,
                health: chat.is_none(),
                tokens: if chat.is_some() {
                    crate::fault::answer_tokens(&d.verdict)
                } else {
                    0
                },
                ..Attempt::default()
            },
        );
        // a probe is a plain attempt whose only limit is the check's timeout
        let probe = Limits {
            request: deadline - t,
            ttft: None,
            stall: None,
        };
        let len = match (&d.verdict, chat) {
            (Verdict::Ok(s), Some(c)) if s.slow_body_bytes_per_s.is_some() => crate::provider::chat_reply_len(
                self.apis[iu],
                &crate::provider::mark::Mark::new(&self.names[iu]),
                &c.model,
                c.input_tokens,
                s.output_tokens,
                c.max_tokens == Some(s.output_tokens),
            ),
            _ => 0,
        };
        let s = attempt::settle(&Wire::of(&d.verdict, false, len), &probe, false, Answer::status(200));
        self.q.push(
            t + s.at,
            Ev::ProbeEnd {
                i: p,
                ok: s.outcome.is_ok(),
            },
        );
    }

    /// Probe slot `p`'s probe ended: its replica's policy hears it, the next probe is armed.
    fn on_probe_end(&mut self, t: Nanos, p: u32, ok: bool) {
        let pu = p as usize;
        self.policies[pu / self.n_targets].on_probe(t, pu % self.n_targets, ok);
        self.arm_probe(pu);
    }

    /// Queues probe slot `p`'s next probe (target `p mod n` of replica `p / n`), unless one
    /// is queued or the policy plans none.
    fn arm_probe(&mut self, p: usize) {
        if !self.probe_armed[p] {
            if let Some(n) = self.policies[p / self.n_targets].probe_at(p % self.n_targets) {
                self.q.push(n, Ev::ProbeStart { i: p as u32 });
                self.probe_armed[p] = true;
            }
        }
    }

    /// The run's output: the records folded, the gateway's events, the ground-truth fault
    /// windows.
    pub(super) fn into_output(mut self) -> SimOutput {
        // events keep their timestamps and emission order, so one drain at the end is the
        // same stream as draining after every step
        let mut events: Vec<GatewayEvent> = Vec::new();
        for p in &mut self.policies {
            p.drain_events_into(&mut events);
        }
        // several replicas: one stream in time order (stable: at equal times, replica order)
        if self.policies.len() > 1 {
            events.sort_by_key(|e| e.t_ns);
        }
        // open-ended fault windows end where the live run ends them: at the end of the
        // traffic or of the last answer, whichever is later (live/once.rs), not at the
        // last probe
        let horizon = self.agg.last_end.max(self.traffic_end);
        let faults: Vec<FaultEvent> = self
            .plans
            .iter_mut()
            .zip(&self.names)
            .flat_map(|(p, n)| {
                p.fault_windows(horizon)
                    .into_iter()
                    .map(|w| FaultEvent::of_window(n, w))
                    .collect::<Vec<_>>()
            })
            .collect();
        let faults = crate::record::merge_fault_windows(faults);
        // every scheduled request ends in a record unless the run was stopped
        let in_flight_at_end = self.scheduled.saturating_sub(self.agg.records);
        debug_assert!(
            self.interrupted || in_flight_at_end == 0,
            "a finished simulation accounts for every request"
        );
        debug_assert!(
            self.interrupted || self.users.as_ref().is_none_or(|u| u.schedule().active() == 0),
            "every closed-loop request ended for its user (an `end` without `user_done`)"
        );
        let ends = self
            .trace_ends
            .then(|| invariants::merge_traces(self.records.into_iter().map(|r| r.2)));
        SimOutput {
            aggregator: self.agg,
            attempts: self.attempts,
            events,
            faults,
            scheduled: self.scheduled,
            in_flight_at_end,
            interrupted: self.interrupted,
            duration: if self.interrupted {
                self.last.min(self.traffic_end)
            } else {
                self.traffic_end
            },
            steps: self.steps,
            arrivals: self.names.into_iter().zip(self.arrivals).collect(),
            ends,
        }
    }
}

/// What a health probe of kind `kind` asks of a target on `api`: `GET /health`, or the
/// one-token completion the live gateway sends on the target's API (decided as user
/// traffic is), with its chat request.
fn probe_request(kind: crate::gateway::ProbeKind, api: Api) -> (RequestFacts, Option<crate::provider::ChatRequest>) {
    match kind {
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
    }
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
#[allow(clippy::too_many_arguments)]
fn finish(
    agg: &mut Aggregator,
    attempts: &mut AttemptsAcc,
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
    attempts.request_joined(ClientEnd::of(rec), u64::from(r.tries), r.whole);
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
