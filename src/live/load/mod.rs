//! The live load generator: sends a [`crate::traffic`] schedule to any OpenAI- or
//! Anthropic-compatible URL and records what happened.
//!
//! - hyper client, pooled keep-alive connections, TCP_NODELAY;
//! - a concurrency cap: a request that cannot start because the cap is full is counted as
//!   **dropped** (k6's `dropped_iterations`), never silently delayed;
//! - timeouts: whole request, time to first token, and stall (gap between stream events);
//! - latency measured from the **intended** send time (no coordinated omission); the
//!   uncorrected figure and the schedule lag are kept too. The scheduler sleeps until 1 ms
//!   before each send and then yields in a loop, so lag stays well under a millisecond.

pub mod metrics;
mod raw;

use crate::analysis::{Aggregator, SloThresholds};
use crate::provider::Api;
use crate::record::{Outcome, RequestRecord};
use crate::time::{Nanos, NS_PER_MS};
use crate::traffic::{EndpointKind, Mix, RequestShape, Schedule, Source, Users};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How to run the load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Base URL (`http://127.0.0.1:4000`; a trailing `/v1` is accepted).
    pub target: String,
    /// API of kinds that do not say.
    pub api: Api,
    /// Most requests in flight; more are dropped.
    pub concurrency: usize,
    /// Whole-request timeout.
    pub timeout: Nanos,
    /// Time-to-first-token timeout (streams; headers for plain calls count as first byte).
    pub ttft_timeout: Option<Nanos>,
    /// Longest silence between stream events.
    pub stall_timeout: Option<Nanos>,
    /// How long to wait for in-flight requests after the schedule ends.
    pub grace: Nanos,
    /// Time bucket.
    pub bucket: Nanos,
    /// Run seed.
    pub seed: u64,
    /// Goodput thresholds.
    pub slo: SloThresholds,
    /// Counters a progress display reads while the run goes (`run::progress`); the load
    /// client itself draws nothing.
    pub live: Option<Arc<LiveCounters>>,
    /// Sent as `Authorization: Bearer` and `x-api-key`.
    pub api_key: String,
    /// Fault windows for per-phase statistics.
    pub phases: Vec<(String, Nanos, Nanos)>,
    /// Extra headers on every request (e.g. Portkey's `x-portkey-config`).
    pub headers: Vec<(String, String)>,
    /// The run's time zero (default: 20 ms after `run` is called). Scenario runs start the
    /// mocks' fault timelines at the same instant.
    pub t0: Option<Instant>,
    /// Set to `true` to stop scheduling (Ctrl-C); in-flight requests get at most
    /// [`INTERRUPT_GRACE`] more, then count as in flight at the end, and the result is partial.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Base URLs of the gateway's replicas after the first (`target`): with N − 1 of them,
    /// request i goes to replica i mod N (`gateway::replica_of`, as in the simulator).
    pub more_targets: Vec<String>,
    /// Keep every request's id, intended start, end and outcome in
    /// [`LoadResult::ends`] (scenario runs: the attempt figures join them with what the
    /// mocks received; 40 bytes a request).
    pub keep_ends: bool,
    /// Keep, per bucket of intended start, the latency of the requests started in it (the
    /// HTML report's incident view; [`crate::analysis::Aggregator::with_start_latency`]).
    pub start_latency: bool,
    /// Live Prometheus metrics (`--metrics-listen`): counted as requests go, served by the
    /// caller ([`metrics`]).
    pub metrics: Option<Arc<metrics::LoadMetrics>>,
    /// This process's share of the schedule (docs/sharding.md): open loop, the arrivals
    /// whose id it owns, with their single-machine ids; closed loop, the users it owns,
    /// each spawned at its single-machine time, request ids interleaved (`id × N + I`).
    pub shard: crate::traffic::shard::Shard,
}

impl LoadOptions {
    /// Defaults for `target`: cap 1,000, timeout 60 s, grace = timeout, 1 s buckets.
    pub fn new(target: &str, api: Api, seed: u64) -> LoadOptions {
        LoadOptions {
            target: target.to_string(),
            api,
            concurrency: 1000,
            timeout: 60_000 * NS_PER_MS,
            ttft_timeout: None,
            stall_timeout: None,
            grace: 60_000 * NS_PER_MS,
            bucket: 1_000 * NS_PER_MS,
            seed,
            slo: SloThresholds::default(),
            live: None,
            api_key: "sk-chaosgate".into(),
            phases: Vec::new(),
            headers: Vec::new(),
            t0: None,
            stop: None,
            more_targets: Vec::new(),
            keep_ends: false,
            start_latency: false,
            metrics: None,
            shard: crate::traffic::shard::Shard::WHOLE,
        }
    }
}

/// What a run has done so far, updated as it goes, for a progress display.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Requests the schedule started (sent or dropped).
    pub scheduled: AtomicU64,
    /// Finished ok.
    pub ok: AtomicU64,
    /// Finished failed (any class but ok and dropped).
    pub failed: AtomicU64,
    /// Dropped at the concurrency cap.
    pub dropped: AtomicU64,
    /// p99 end-to-end latency so far in µs (0 until known), refreshed every 256 records.
    pub p99_us: AtomicU64,
    /// The run's time zero, once traffic is about to start.
    pub t0: Mutex<Option<std::time::Instant>>,
}

impl LiveCounters {
    /// When traffic started (None before).
    pub fn started(&self) -> Option<std::time::Instant> {
        *self.t0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long requests still open get after a Ctrl-C / SIGTERM before the partial report
/// (so the whole stop takes well under a second).
pub const INTERRUPT_GRACE: Nanos = 500 * NS_PER_MS;

/// Most finished records queued for the aggregator: when it falls behind, senders wait
/// (the scheduler too), so memory never grows with the rate asked for.
const RECORD_QUEUE: usize = 16_384;

/// A plain pooled HTTP/1.1 client with TCP_NODELAY (readiness polls, admin calls).
pub fn plain_client() -> Http {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(conn)
}

/// What a run produced.
#[derive(Debug)]
pub struct LoadResult {
    /// The folded statistics.
    pub aggregator: Aggregator,
    /// The run's scalars: scheduled, in flight at the end, closed by the grace period,
    /// durations, interrupted.
    pub totals: LoadTotals,
    /// Response sizes and failure times, for the Locust CSV files.
    pub csv: crate::report::locust::CsvLog,
    /// With [`LoadOptions::keep_ends`]: every request's end as the attempt figures need it.
    pub ends: Vec<crate::analysis::attempts::ClientEnd>,
}

impl LoadResult {
    /// The report, with its accounting warnings and, when interrupted, marked partial with
    /// the measured duration.
    pub fn report(&self) -> crate::analysis::LoadReport {
        self.totals.report(&self.aggregator)
    }
}

/// A load run's scalars beside its [`Aggregator`] (see [`LoadResult`]): what its report
/// reads besides the statistics, kept in a shard's result file.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadTotals {
    /// Requests the schedule planned (closed loop: started).
    pub scheduled: u64,
    /// Sent but unaccounted for when the run ended (interrupted runs: still open after
    /// [`INTERRUPT_GRACE`]).
    pub in_flight_at_end: u64,
    /// Requests still open after the grace period, counted as timeouts.
    pub closed_by_grace: u64,
    /// The run's length (planned, or measured to an interruption).
    pub duration: Nanos,
    /// The scheduled length.
    pub planned_duration: Nanos,
    /// The grace period after the schedule's end.
    pub grace: Nanos,
    /// Stopped early through [`LoadOptions::stop`].
    pub interrupted: bool,
}

impl LoadTotals {
    /// Adds another shard's scalars: sums, the longest durations, interrupted when either was.
    pub fn add(&mut self, o: &LoadTotals) {
        self.scheduled += o.scheduled;
        self.in_flight_at_end += o.in_flight_at_end;
        self.closed_by_grace += o.closed_by_grace;
        self.duration = self.duration.max(o.duration);
        self.planned_duration = self.planned_duration.max(o.planned_duration);
        self.grace = self.grace.max(o.grace);
        self.interrupted |= o.interrupted;
    }

    /// The report of `agg` with these scalars: its accounting warnings and, when
    /// interrupted, marked partial with the measured duration.
    pub fn report(&self, agg: &Aggregator) -> crate::analysis::LoadReport {
        let mut r = agg.report(self.scheduled, self.in_flight_at_end, self.duration);
        if self.closed_by_grace > 0 {
            r.warnings.push(format!(
                "{} request(s) were still open {:.3} s after the schedule ended (the grace period) and were counted as timeouts",
                self.closed_by_grace,
                crate::time::nanos_to_secs_f64(self.grace)
            ));
        }
        if self.interrupted {
            r.partial = true;
            r.warnings.push(format!(
                "interrupted (Ctrl-C / SIGTERM) after {:.1} s of a planned {:.1} s: this report is partial",
                crate::time::nanos_to_secs_f64(self.duration),
                crate::time::nanos_to_secs_f64(self.planned_duration)
            ));
        }
        r
    }
}

fn stopped(opts: &LoadOptions) -> bool {
    opts.stop.as_ref().is_some_and(|s| *s.borrow())
}

/// Waits until `t`, or until the stop flag is raised (then returns `false`).
async fn wait_or_stop(opts: &LoadOptions, t: Instant) -> bool {
    match &opts.stop {
        None => {
            wait_until(t).await;
            true
        }
        Some(rx) => {
            let mut rx = rx.clone();
            if *rx.borrow() {
                return false;
            }
            tokio::select! {
                _ = wait_until(t) => true,
                _ = rx.wait_for(|v| *v) => false,
            }
        }
    }
}

/// The pooled hyper client type.
pub type Http = Client<HttpConnector, Full<Bytes>>;

struct Shared {
    client: Http,
    /// Each replica's base URL, `host:port` and the base's path (`/openai` of
    /// `http://host/openai`; empty at the root), for dedicated connections, in replica
    /// order: `target` first, then `more_targets`.
    targets: Vec<(String, String, String)>,
    /// `Bearer …`, built once.
    auth: hyper::header::HeaderValue,
    /// The API key, built once.
    key: hyper::header::HeaderValue,
    /// Extra headers, validated once.
    extra: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// The same, as raw `name: value\r\n` lines.
    extra_raw: String,
    opts: LoadOptions,
    t0: Instant,
    tx: mpsc::Sender<(RequestRecord, Vec<Nanos>, bool, u64)>,
    /// Records of requests whose task was cancelled while still open (see [`Open`]).
    abandoned: Mutex<Vec<(RequestRecord, bool)>>,
    sem: Arc<Semaphore>,
    /// Ok / failed / dropped so far (the caller's, when it watches).
    live: Arc<LiveCounters>,
    /// The request mix (the model of each kind).
    mix: Mix,
}

fn since(t0: Instant, t: Instant) -> Nanos {
    u64::try_from(t.saturating_duration_since(t0).as_nanos()).unwrap_or(Nanos::MAX)
}

/// Waits until `t`: tokio's timer (millisecond ticks) to 2 ms before, then a timerfd for
/// the rest ([`fine_sleep`]: microseconds, no spinning); where no timerfd can be made, it
/// yields until `t` as it used to (one core busy at high rates).
pub async fn wait_until(t: Instant) {
    let now = Instant::now();
    if t > now + Duration::from_millis(3) {
        // tokio rounds a deadline up to its next millisecond tick: aim 2 ms early
        tokio::time::sleep_until(t - Duration::from_millis(2)).await;
    }
    let left = t.saturating_duration_since(Instant::now());
    if left > FINE_SPIN && fine_sleep(left).await.is_ok() {
        return;
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
}

/// Below this a wait yields instead of arming a timer (a timerfd costs a few syscalls).
const FINE_SPIN: Duration = Duration::from_micros(20);

type TimerFd = tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>;

thread_local! {
    /// One idle timerfd per worker thread, reused by the next wait (a wait that finds none
    /// makes its own): two syscalls per wait instead of six.
    static IDLE_TIMER: std::cell::RefCell<Option<TimerFd>> = const { std::cell::RefCell::new(None) };
}

fn new_timer() -> std::io::Result<TimerFd> {
    use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    // SAFETY: `fd` is an OwnedFd that the AsyncFd owns from here on and drops (closing it)
    // only with itself; nothing else replaces or closes it.
    Ok(unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? })
}

/// Sleeps `d` on a one-shot monotonic timerfd registered with tokio's reactor: the kernel's
/// high-resolution timer wakes the task, so the last millisecond before a send costs no CPU.
async fn fine_sleep(d: Duration) -> std::io::Result<()> {
    use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags};
    let timer = match IDLE_TIMER.with(|t| t.borrow_mut().take()) {
        Some(t) => t,
        None => new_timer()?,
    };
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    let value = rustix::time::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    };
    timerfd_settime(
        timer.get_ref(),
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value: value,
        },
    )?;
    loop {
        let mut ready = timer.readable().await?;
        let mut expirations = [0u8; 8];
        match ready.try_io(|f| rustix::io::read(f.get_ref(), &mut expirations).map_err(std::io::Error::from)) {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    // expired and read: disarmed and empty, fit for the next wait on this thread (a task
    // cancelled mid-wait drops its timer instead)
    IDLE_TIMER.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_none() {
            *t = Some(timer);
        }
    });
    Ok(())
}

fn prompt(tokens: u32) -> String {
    let mut s = crate::provider::filler_text(tokens.max(1));
    s.truncate(tokens as usize * 4);
    s
}

thread_local! {
    /// Prompt texts already JSON-escaped, by token count (bounded).
    static PROMPTS: std::cell::RefCell<std::collections::HashMap<u32, std::rc::Rc<str>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn prompt_json(tokens: u32) -> std::rc::Rc<str> {
    PROMPTS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(p) = m.get(&tokens) {
            return p.clone();
        }
        let p: std::rc::Rc<str> = serde_json::to_string(&prompt(tokens))
            .unwrap_or_else(|_| "\"\"".into())
            .into();
        if m.len() < 4096 {
            m.insert(tokens, p.clone());
        }
        p
    })
}

/// The JSON-escaped prompt of request `id`: its first characters overwritten by the
/// request marker (`provider::mark::request_marker`), the same length, so the tokens a
/// mock counts do not change; unmarked when the prompt is shorter than its marker.
fn marked_prompt_json(tokens: u32, id: u64) -> std::rc::Rc<str> {
    let text = prompt_json(tokens);
    // the filler is ASCII letters and spaces: its JSON is the text in quotes
    let inner = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
    if inner.contains('\\') {
        return text;
    }
    match crate::provider::mark::mark_prompt(inner, id) {
        Some(m) => format!("\"{m}\"").into(),
        None => text,
    }
}

/// The JSON body and path of request `id` asking for `model` (built as text: this is the
/// hot path); its prompt carries the request marker.
fn body_for(shape: &RequestShape, model: &str, id: u64) -> (&'static str, String) {
    let text = marked_prompt_json(shape.prompt_tokens, id);
    let text: &str = &text;
    let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
    match (shape.endpoint, shape.api) {
        (EndpointKind::Embeddings, _) => {
            let inputs = vec![text; shape.inputs.max(1) as usize].join(",");
            ("/v1/embeddings", format!(r#"{{"model":{model},"input":[{inputs}]}}"#))
        }
        (EndpointKind::Chat, Api::OpenAi) => {
            let opts = if shape.stream {
                r#","stream":true,"stream_options":{"include_usage":true}"#
            } else {
                r#","stream":false"#
            };
            (
                "/v1/chat/completions",
                format!(
                    r#"{{"model":{model},"messages":[{{"role":"user","content":{text}}}],"max_tokens":{}{opts}}}"#,
                    shape.max_tokens
                ),
            )
        }
        (EndpointKind::Chat, Api::Anthropic) => (
            "/v1/messages",
            format!(
                r#"{{"model":{model},"max_tokens":{},"messages":[{{"role":"user","content":{text}}}],"stream":{}}}"#,
                shape.max_tokens, shape.stream
            ),
        ),
    }
}

/// Normalises a target URL to a base without a trailing `/` or `/v1`.
pub fn base_url(target: &str) -> Result<String, String> {
    let t = target.trim().trim_end_matches('/');
    let t = t.strip_suffix("/v1").unwrap_or(t);
    let uri: hyper::Uri = t.parse().map_err(|e| format!("invalid --target {target:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "--target {target:?}: only http:// URLs are supported (the harness talks plain HTTP/1.1)"
        ));
    }
    if uri.host().is_none() {
        return Err(format!("--target {target:?} has no host"));
    }
    Ok(t.to_string())
}

/// Just the usage of a response body (other fields are skipped, not built).
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<UsageCounts>,
}

#[derive(Default, serde::Deserialize)]
struct UsageCounts {
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

/// A closed-loop user's own keep-alive connection (reopened after an error), one per
/// gateway replica.
type OwnConn = Option<raw::RawConn>;

/// A response body being read: from hyper's pooled client or a user's raw connection.
enum BodyReader<'a> {
    Hyper(hyper::body::Incoming),
    Raw(&'a mut raw::RawConn),
}

impl BodyReader<'_> {
    /// The next piece of body; `Ok(None)` at its proper end, `Err` when it was cut.
    async fn next(&mut self) -> Result<Option<Bytes>, ()> {
        match self {
            BodyReader::Hyper(b) => loop {
                match b.frame().await {
                    None => return Ok(None),
                    Some(Err(_)) => return Err(()),
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            return Ok(Some(d));
                        }
                    }
                }
            },
            BodyReader::Raw(c) => c.next().await.map_err(|_| ()),
        }
    }

    /// The rest of the body and its whole length, in bounded memory: its first `head` bytes
    /// are kept; past them, with `tail` > 0, only its last `tail` bytes are (the head is
    /// dropped), with `tail` = 0 the head stays. The rest is read and dropped.
    async fn collect_capped(&mut self, head: usize, tail: usize) -> Result<(Kept, u64), ()> {
        let mut kept = Kept {
            bytes: Vec::new(),
            whole: true,
            mark: None,
        };
        let mut total = 0u64;
        while let Some(p) = self.next().await? {
            total += p.len() as u64;
            if kept.whole && kept.bytes.len() + p.len() <= head {
                kept.bytes.extend_from_slice(&p);
                continue;
            }
            if tail == 0 {
                kept.whole = false;
                keep_capped(&mut kept.bytes, &p, head);
                continue;
            }
            if kept.whole {
                // the head did not hold it: from here on only its end is kept (the mark of
                // the provider that answered is read from the head first: ids lead a body)
                kept.whole = false;
                kept.mark = crate::provider::mark::find(&kept.bytes)
                    .or_else(|| crate::provider::mark::find(&p[..p.len().min(MARK_SCAN_BYTES)]));
                let n = kept.bytes.len();
                kept.bytes.drain(..n.saturating_sub(tail));
                kept.bytes.shrink_to(2 * tail);
            }
            keep_tail(&mut kept.bytes, &p, tail);
        }
        if !kept.whole && tail > 0 {
            let n = kept.bytes.len();
            kept.bytes.drain(..n.saturating_sub(tail));
        }
        Ok((kept, total))
    }
}

/// What [`BodyReader::collect_capped`] kept of a body.
struct Kept {
    /// The whole body, or (when `whole` is false) its head or its tail.
    bytes: Vec<u8>,
    /// Whether `bytes` is the whole body.
    whole: bool,
    /// The provider its head marked, read before the head was dropped (only the tail kept).
    mark: Option<String>,
}

/// Most of a non-2xx response body the load client keeps: its length is counted whole
/// (Locust's content size), its bytes past this are read and dropped, so an error reply
/// of any size costs bounded memory.
pub const ERROR_BODY_KEEP_BYTES: usize = 64 * 1024;

/// Most of a plain (non-streamed) 2xx response body the load client keeps whole, to read
/// its `usage` from: a body past it is read to its end and counted whole (Locust's content
/// size), but only its last [`PLAIN_BODY_TAIL_BYTES`] are kept and `usage` is read from
/// them (where OpenAI and Anthropic put it). So an open request's body never takes more
/// than this, whatever size the target answers (the mock alone can send ≈ 107 MB: 128,000
/// tokens × 128 choices); the run limits (`run/limits.rs`, `LIVE_REQUEST_BYTES`) count it.
pub const PLAIN_BODY_KEEP_BYTES: usize = 256 * 1024;

/// The end of a plain 2xx body past [`PLAIN_BODY_KEEP_BYTES`] that is kept to read `usage`.
pub const PLAIN_BODY_TAIL_BYTES: usize = 64 * 1024;

/// How much of a body's start (a large plain body's first piece; a stream's first bytes)
/// is searched for the provider's mark when no header named the provider.
const MARK_SCAN_BYTES: usize = 16 * 1024;

/// Keeps in `kept` the last bytes of what it held followed by `piece`: at most `2 × cap`
/// between calls (trimmed to `cap` when it grows past that).
fn keep_tail(kept: &mut Vec<u8>, piece: &[u8], cap: usize) {
    if piece.len() >= cap {
        kept.clear();
        kept.extend_from_slice(&piece[piece.len() - cap..]);
        return;
    }
    kept.extend_from_slice(piece);
    if kept.len() > 2 * cap {
        let n = kept.len();
        kept.drain(..n - cap);
    }
}

/// The `usage` object of a body of which only the end is at hand: the value after the last
/// `"usage"` key that deserializes as usage (an earlier one is tried when a later is not
/// one, e.g. the word inside a string), read typed by serde_json's streaming deserializer
/// (which stops at the value's end).
fn usage_in_tail(tail: &[u8]) -> Option<UsageCounts> {
    const KEY: &[u8] = b"\"usage\"";
    let mut end = tail.len();
    while let Some(i) = tail[..end].windows(KEY.len()).rposition(|w| w == KEY) {
        end = i;
        let Some(rest) = tail[i + KEY.len()..].trim_ascii_start().strip_prefix(b":") else {
            continue;
        };
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<UsageCounts>();
        if let Some(Ok(u)) = values.next() {
            return Some(u);
        }
    }
    None
}

/// Appends to `kept` what of `piece` fits under `cap` bytes.
fn keep_capped(kept: &mut Vec<u8>, piece: &[u8], cap: usize) {
    let room = cap.saturating_sub(kept.len());
    kept.extend_from_slice(&piece[..piece.len().min(room)]);
}

/// Why a send failed.
enum SendError {
    /// Could not connect.
    Connect,
    /// The connection failed mid-request.
    Io,
}

/// A send's result as an outcome class: timeout, connect error or reset.
fn outcome_of<T>(r: Result<Result<T, SendError>, tokio::time::error::Elapsed>) -> Result<T, Outcome> {
    match r {
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(SendError::Connect)) => Err(Outcome::ConnectError),
        Ok(Err(SendError::Io)) => Err(Outcome::Reset),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Sends on the user's raw connection (reconnecting when needed); returns status and provider.
async fn send_raw(
    sh: &Shared,
    replica: usize,
    slot: &mut OwnConn,
    path: &str,
    body: &[u8],
) -> Result<raw::Head, SendError> {
    let (_, authority, prefix) = &sh.targets[replica];
    if slot.as_ref().is_none_or(|c| !c.reusable()) {
        *slot = Some(raw::RawConn::connect(authority).await.map_err(|_| SendError::Connect)?);
    }
    let conn = slot.as_mut().ok_or(SendError::Connect)?;
    let head = format!(
        "POST {prefix}{path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nauthorization: {}\r\nx-api-key: {}\r\nanthropic-version: 2023-06-01\r\n{}content-length: {}\r\n\r\n",
        authority,
        sh.auth.to_str().unwrap_or(""),
        sh.key.to_str().unwrap_or(""),
        sh.extra_raw,
        body.len()
    );
    match conn.send(head.as_bytes(), body).await {
        Ok(h) => Ok(h),
        Err(_) => {
            *slot = None;
            Err(SendError::Io)
        }
    }
}

/// Sends through hyper's pooled client.
async fn send_pooled(
    sh: &Shared,
    replica: usize,
    path: &str,
    body: String,
) -> Result<hyper::Response<hyper::body::Incoming>, SendError> {
    let mut b = hyper::Request::post(format!("{}{}", sh.targets[replica].0, path))
        .header("content-type", "application/json")
        .header("authorization", sh.auth.clone())
        .header("x-api-key", sh.key.clone())
        .header("anthropic-version", "2023-06-01");
    for (k, v) in &sh.extra {
        b = b.header(k, v);
    }
    let req = b.body(Full::new(Bytes::from(body))).map_err(|_| SendError::Connect)?;
    sh.client.request(req).await.map_err(|e| {
        if e.is_connect() {
            SendError::Connect
        } else {
            SendError::Io
        }
    })
}

/// Sends one request and classifies what came back: the record, the gaps between tokens
/// and the response body bytes received (Locust's content size).
async fn execute(
    sh: &Shared,
    own: Option<&mut OwnConn>,
    id: u64,
    intended: Instant,
    shape: &RequestShape,
) -> (RequestRecord, Vec<Nanos>, u64) {
    let sent_at = Instant::now();
    let deadline = sent_at + Duration::from_nanos(sh.opts.timeout);
    let (path, body) = body_for(shape, sh.mix.model_of(shape), id);
    let mut rec = sent_record(sh, id, intended, sent_at, shape, Outcome::Ok);
    let mut itl = Vec::new();
    let header_deadline = match sh.opts.ttft_timeout {
        Some(t) => deadline.min(sent_at + Duration::from_nanos(t)),
        None => deadline,
    };
    // the client's round robin over the gateway's replicas (the simulator's rule)
    let replica = crate::gateway::replica_of(id, sh.targets.len() as u32);
    let (status, mut reader) = match send_for_head(sh, own, replica, path, body, header_deadline, &mut rec).await {
        Ok(head) => head,
        Err(o) => {
            fail(sh, &mut rec, o);
            return (rec, itl, 0);
        }
    };
    rec.first_byte = Some(since(sh.t0, Instant::now()));
    let content = if !(200..300).contains(&status) {
        let content = read_error_body(&mut reader, deadline, &mut rec).await;
        fail(sh, &mut rec, Outcome::Http(status));
        content
    } else if !shape.stream {
        read_plain_body(sh, &mut reader, deadline, &mut rec).await
    } else {
        read_stream(sh, &mut reader, shape, sent_at, deadline, &mut rec, &mut itl).await
    };
    (rec, itl, content)
}

/// The record of a request sent at `sent_at`, before anything came back.
fn sent_record(
    sh: &Shared,
    id: u64,
    intended: Instant,
    sent_at: Instant,
    shape: &RequestShape,
    outcome: Outcome,
) -> RequestRecord {
    RequestRecord {
        id,
        kind: shape.kind,
        intended: since(sh.t0, intended),
        sent: Some(since(sh.t0, sent_at)),
        first_byte: None,
        first_token: None,
        end: 0,
        outcome,
        output_tokens: 0,
        input_tokens: shape.prompt_tokens,
        provider: None,
        stream: shape.stream,
    }
}

/// The request ends now, with outcome `o`.
fn fail(sh: &Shared, rec: &mut RequestRecord, o: Outcome) {
    rec.outcome = o;
    rec.end = since(sh.t0, Instant::now());
}

/// Sends the request (on the user's own connection, else through the pool) and waits for
/// the response head until `deadline`: its status and a reader of its body, the provider
/// that answered in `rec`; else the outcome it failed with.
async fn send_for_head<'a>(
    sh: &Shared,
    own: Option<&'a mut OwnConn>,
    replica: usize,
    path: &str,
    body: String,
    deadline: Instant,
    rec: &mut RequestRecord,
) -> Result<(u16, BodyReader<'a>), Outcome> {
    match own {
        Some(slot) => {
            match outcome_of(
                tokio::time::timeout_at(deadline, send_raw(sh, replica, slot, path, body.as_bytes())).await,
            ) {
                Err(o) => {
                    if o == Outcome::Timeout {
                        *slot = None; // the answer may still come: never reuse this connection
                    }
                    Err(o)
                }
                Ok(head) => {
                    rec.provider = head.provider;
                    match slot.as_mut() {
                        Some(c) => Ok((head.status, BodyReader::Raw(c))),
                        None => Err(Outcome::Reset),
                    }
                }
            }
        }
        None => {
            let resp = outcome_of(tokio::time::timeout_at(deadline, send_pooled(sh, replica, path, body)).await)?;
            rec.provider = crate::provider::mark::HEADERS
                .iter()
                .find_map(|h| crate::provider::mark::from_header(resp.headers().get(*h)?.as_bytes()));
            Ok((resp.status().as_u16(), BodyReader::Hyper(resp.into_body())))
        }
    }
}

/// Reads a non-2xx body to its end (keeping at most [`ERROR_BODY_KEEP_BYTES`]); its size,
/// or 0 when it could not be read whole by `deadline`. A request no header attributed is
/// attributed to the provider the kept body marks, if any (an error message's mark
/// survives the gateways that rebuild errors).
async fn read_error_body(reader: &mut BodyReader<'_>, deadline: Instant, rec: &mut RequestRecord) -> u64 {
    match tokio::time::timeout_at(deadline, reader.collect_capped(ERROR_BODY_KEEP_BYTES, 0)).await {
        Ok(Ok((kept, total))) => {
            if rec.provider.is_none() {
                rec.provider = crate::provider::mark::find(&kept.bytes);
            }
            total
        }
        _ => 0,
    }
}

/// Reads a plain 2xx body by `deadline` and takes its output tokens from its `usage`
/// (a body that is not JSON: malformed); ends `rec`, returns the body's size.
async fn read_plain_body(sh: &Shared, reader: &mut BodyReader<'_>, deadline: Instant, rec: &mut RequestRecord) -> u64 {
    let mut content = 0;
    match tokio::time::timeout_at(
        deadline,
        reader.collect_capped(PLAIN_BODY_KEEP_BYTES, PLAIN_BODY_TAIL_BYTES),
    )
    .await
    {
        Err(_) => rec.outcome = Outcome::Timeout,
        Ok(Err(_)) => rec.outcome = Outcome::Reset,
        Ok(Ok((kept, total))) => {
            content = total;
            if rec.provider.is_none() {
                rec.provider = kept.mark.clone().or_else(|| crate::provider::mark::find(&kept.bytes));
            }
            match usage_of(&kept) {
                Some(u) => rec.output_tokens = u.completion_tokens.or(u.output_tokens).unwrap_or(0),
                None => rec.outcome = Outcome::MalformedStream,
            }
        }
    }
    rec.end = since(sh.t0, Instant::now());
    content
}

/// The usage of a plain body: from the whole body when it was kept whole (`None`: not
/// JSON), else from its end (none found: as a body without usage).
fn usage_of(kept: &Kept) -> Option<UsageCounts> {
    if kept.whole {
        match serde_json::from_slice::<UsageOnly>(&kept.bytes) {
            Ok(v) => Some(v.usage.unwrap_or_default()),
            Err(_) => None,
        }
    } else {
        // too large to keep whole: its usage from its end, else none (as a body
        // without usage)
        Some(usage_in_tail(&kept.bytes).unwrap_or_default())
    }
}

/// Reads a stream's events until its terminal event, an error, a cut or a timeout (the
/// whole `deadline`, the time to first token, the stall between tokens): the times of
/// the first token and between tokens, the output tokens; ends `rec`, returns the bytes
/// read.
async fn read_stream(
    sh: &Shared,
    reader: &mut BodyReader<'_>,
    shape: &RequestShape,
    sent_at: Instant,
    deadline: Instant,
    rec: &mut RequestRecord,
    itl: &mut Vec<Nanos>,
) -> u64 {
    let t0 = sh.t0;
    let mut content = 0u64;
    let mut parser = crate::provider::sse::Parser::new(shape.api);
    let mut events = Vec::new();
    let mut last_token: Option<Instant> = None;
    let mut counted = 0u32;
    // without a header naming the provider, its mark is read from the stream's start: the
    // bytes up to and including the first content token (at most MARK_SCAN_BYTES)
    let mut head: Option<Vec<u8>> = rec.provider.is_none().then(Vec::new);
    loop {
        let wait = match (last_token, sh.opts.ttft_timeout, sh.opts.stall_timeout) {
            (None, Some(t), _) => deadline.min(sent_at + Duration::from_nanos(t)),
            (Some(_), _, Some(s)) => deadline.min(Instant::now() + Duration::from_nanos(s)),
            _ => deadline,
        };
        let data = match tokio::time::timeout_at(wait, reader.next()).await {
            Err(_) => {
                rec.outcome = Outcome::Timeout;
                break;
            }
            // the end of the HTTP body, clean or cut: ok only after the terminal event
            Ok(Ok(None)) | Ok(Err(())) => {
                rec.outcome = if parser.terminal {
                    Outcome::Ok
                } else {
                    Outcome::StreamCut
                };
                break;
            }
            Ok(Ok(Some(d))) => d,
        };
        content += data.len() as u64;
        // one piece per read (the raw client joins the chunks that came together): one instant
        let now = Instant::now();
        if let Some(h) = head.as_mut() {
            h.extend_from_slice(&data[..data.len().min(MARK_SCAN_BYTES - h.len())]);
            rec.provider = crate::provider::mark::find(h);
            if rec.provider.is_some() || h.len() >= MARK_SCAN_BYTES || last_token.is_some() {
                head = None;
            }
        }
        parser.push_into(&data, &mut events);
        for &ev in &events {
            match ev {
                crate::provider::sse::Event::Token => {
                    counted += 1;
                    match last_token {
                        None => rec.first_token = Some(since(t0, now)),
                        Some(prev) => itl.push(since(prev, now)),
                    }
                    last_token = Some(now);
                }
                crate::provider::sse::Event::Usage(n) => rec.output_tokens = n,
                crate::provider::sse::Event::Error => rec.outcome = Outcome::StreamError,
                crate::provider::sse::Event::Malformed => rec.outcome = Outcome::MalformedStream,
                crate::provider::sse::Event::Terminal
                | crate::provider::sse::Event::Ping
                | crate::provider::sse::Event::Other => {}
            }
        }
        if rec.outcome != Outcome::Ok || parser.terminal {
            break;
        }
    }
    if rec.output_tokens == 0 {
        rec.output_tokens = counted;
    }
    rec.end = since(t0, Instant::now());
    if parser.terminal {
        // the request ended at its terminal event; what follows is the body's own end
        content += drain_rest(reader, deadline).await;
    }
    content
}

/// Longest wait, after a stream's terminal event, for the rest of its HTTP body.
const DRAIN_WAIT: Duration = Duration::from_millis(100);
/// Most bytes read after a stream's terminal event.
const DRAIN_BYTES: u64 = 64 * 1024;

/// After the terminal event: reads what is left of the body (the chunked terminator,
/// normally in the same packet) so that its keep-alive connection carries the next
/// request, as wrk's and hyper's would. A body that does not end within [`DRAIN_WAIT`] or
/// [`DRAIN_BYTES`] is dropped with its connection. Returns the bytes read.
async fn drain_rest(reader: &mut BodyReader<'_>, deadline: Instant) -> u64 {
    let until = deadline.min(Instant::now() + DRAIN_WAIT);
    let mut n = 0u64;
    while n <= DRAIN_BYTES {
        match tokio::time::timeout_at(until, reader.next()).await {
            Ok(Ok(Some(d))) => n += d.len() as u64,
            _ => break,
        }
    }
    n
}

async fn record_and_send(sh: &Shared, rec: RequestRecord, itl: Vec<Nanos>, embeddings: bool, content: u64) {
    match rec.outcome {
        Outcome::Ok => sh.live.ok.fetch_add(1, Ordering::Relaxed),
        Outcome::Dropped => sh.live.dropped.fetch_add(1, Ordering::Relaxed),
        _ => sh.live.failed.fetch_add(1, Ordering::Relaxed),
    };
    if let Some(m) = &sh.opts.metrics {
        m.ended(&rec, target_of(&sh.targets, rec.id));
    }
    let _ = sh.tx.send((rec, itl, embeddings, content)).await;
}

/// A request that is open until [`Open::close`]: when its task is cancelled first (the
/// grace period ran out, or Ctrl-C), dropping it files the request under
/// [`Shared::abandoned`] as a timeout ending now, so no request leaves the accounting.
struct Open<'a> {
    sh: &'a Shared,
    rec: Option<(RequestRecord, bool)>,
}

impl<'a> Open<'a> {
    fn new(sh: &'a Shared, id: u64, intended: Instant, shape: &RequestShape) -> Open<'a> {
        let rec = sent_record(sh, id, intended, Instant::now(), shape, Outcome::Timeout);
        Open {
            sh,
            rec: Some((rec, shape.endpoint == EndpointKind::Embeddings)),
        }
    }

    /// The request was counted.
    fn close(mut self) {
        self.rec = None;
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if let Some((mut rec, emb)) = self.rec.take() {
            rec.end = since(self.sh.t0, Instant::now()).max(rec.sent.unwrap_or(0));
            self.sh
                .abandoned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((rec, emb));
        }
    }
}

/// Sends one request and counts it, accounted for even if cancelled midway.
async fn request(sh: &Shared, own: Option<&mut OwnConn>, id: u64, intended: Instant, shape: &RequestShape) -> Nanos {
    let open = Open::new(sh, id, intended, shape);
    let _in_flight = sh.opts.metrics.as_deref().map(metrics::LoadMetrics::sent);
    let (rec, itl, content) = execute(sh, own, id, intended, shape).await;
    let ended = rec.end;
    // from here the record is on its way (cancelled while the aggregator's queue is full,
    // it is lost and shows as in flight at the end: unaccounted, never miscounted)
    open.close();
    record_and_send(sh, rec, itl, shape.endpoint == EndpointKind::Embeddings, content).await;
    ended
}

async fn dropped(sh: &Shared, id: u64, intended: Instant, shape: &RequestShape) {
    let t = since(sh.t0, intended);
    let rec = RequestRecord {
        id,
        kind: shape.kind,
        intended: t,
        sent: None,
        first_byte: None,
        first_token: None,
        end: t,
        outcome: Outcome::Dropped,
        output_tokens: 0,
        input_tokens: shape.prompt_tokens,
        provider: None,
        stream: shape.stream,
    };
    record_and_send(sh, rec, Vec::new(), shape.endpoint == EndpointKind::Embeddings, 0).await;
}

/// Runs the load to the end and returns the statistics.
pub async fn run(source: Source, mix: Mix, opts: LoadOptions) -> anyhow::Result<LoadResult> {
    let kinds: Vec<String> = mix.kinds().iter().map(|k| k.name.clone()).collect();
    let (tx, rx) = mpsc::channel(RECORD_QUEUE);
    let sh = Arc::new(Shared::new(&opts, &mix, tx)?);
    let t0 = sh.t0;
    let counters = sh.live.clone();
    if let Some(m) = &opts.metrics {
        m.run_started();
    }
    *counters.t0.lock().unwrap_or_else(|e| e.into_inner()) = Some(t0.into_std());
    let agg_task = spawn_aggregator(&opts, kinds, rx, counters.clone());
    let mut tasks: JoinSet<()> = JoinSet::new();
    let scheduled = Arc::new(AtomicU64::new(0));
    let planned_duration = match &source {
        Source::Closed { duration, .. } => {
            start_users(&source, mix, &sh, &mut tasks, &scheduled)?;
            *duration
        }
        src => send_schedule(src, mix, &sh, &mut tasks, &scheduled).await?,
    };
    let (interrupted, duration) = wait_for_open(&mut tasks, &opts, t0, planned_duration).await;
    let scheduled = scheduled.load(Ordering::Relaxed);
    let abandoned = std::mem::take(&mut *sh.abandoned.lock().unwrap_or_else(|e| e.into_inner()));
    let targets = sh.targets.clone();
    drop(sh);
    let (mut aggregator, mut csv, mut ends) = agg_task.await?;
    // still open when the waiting ended: a normal end gave them the grace period, so they
    // count as timeouts; after a stop they were not given their timeout and stay in flight
    let mut closed_by_grace = 0;
    if !interrupted {
        debug_assert!(abandoned.iter().all(|(r, _)| r.outcome == Outcome::Timeout));
        for (rec, emb) in &abandoned {
            aggregator.add(rec, &[], *emb);
            csv.add(rec, 0);
            if let Some(m) = &opts.metrics {
                m.ended(rec, target_of(&targets, rec.id));
            }
            if opts.keep_ends {
                ends.push(crate::analysis::attempts::ClientEnd::of(rec));
            }
        }
        closed_by_grace = abandoned.len() as u64;
    }
    let in_flight_at_end = scheduled.saturating_sub(aggregator.records);
    Ok(LoadResult {
        aggregator,
        csv,
        ends,
        totals: LoadTotals {
            scheduled,
            in_flight_at_end,
            closed_by_grace,
            duration,
            planned_duration,
            grace: opts.grace,
            interrupted,
        },
    })
}

/// The base URL of the replica request `id` goes to (the client's round robin over
/// [`Shared::targets`]).
fn target_of(targets: &[(String, String, String)], id: u64) -> &str {
    let i = crate::gateway::replica_of(id, targets.len() as u32);
    targets.get(i).map_or("", |(b, ..)| b.as_str())
}

impl Shared {
    /// The client, the target and the headers every request carries, validated once; the
    /// run's time zero.
    fn new(
        opts: &LoadOptions,
        mix: &Mix,
        tx: mpsc::Sender<(RequestRecord, Vec<Nanos>, bool, u64)>,
    ) -> anyhow::Result<Shared> {
        let mut targets = Vec::new();
        for t in std::iter::once(&opts.target).chain(&opts.more_targets) {
            let base = base_url(t).map_err(anyhow::Error::msg)?;
            let uri: hyper::Uri = base.parse()?;
            let authority = format!("{}:{}", uri.host().unwrap_or("127.0.0.1"), uri.port_u16().unwrap_or(80));
            let prefix = uri.path().trim_end_matches('/').to_string();
            targets.push((base, authority, prefix));
        }
        let auth = hyper::header::HeaderValue::from_str(&format!("Bearer {}", opts.api_key))
            .map_err(|_| anyhow::anyhow!("--api-key must be printable ASCII"))?;
        let key = hyper::header::HeaderValue::from_str(&opts.api_key)
            .map_err(|_| anyhow::anyhow!("--api-key must be printable ASCII"))?;
        let mut extra = Vec::new();
        let mut extra_raw = String::new();
        for (k, v) in &opts.headers {
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| anyhow::anyhow!("request header name {k:?} is not a valid HTTP header name"))?;
            let value = hyper::header::HeaderValue::from_str(v)
                .map_err(|_| anyhow::anyhow!("request header {k}: value must be printable ASCII on one line"))?;
            extra_raw.push_str(&format!("{k}: {v}\r\n"));
            extra.push((name, value));
        }
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let client: Http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(conn);
        let t0 = opts.t0.unwrap_or_else(|| Instant::now() + Duration::from_millis(20));
        Ok(Shared {
            client,
            targets,
            auth,
            key,
            extra,
            extra_raw,
            opts: opts.clone(),
            t0,
            tx,
            abandoned: Mutex::new(Vec::new()),
            sem: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            live: opts.live.clone().unwrap_or_default(),
            mix: mix.clone(),
        })
    }
}

/// The task folding finished records into the statistics and the CSV log, publishing the
/// p99 latency for a progress display every 256 records; it ends when every sender is gone.
fn spawn_aggregator(
    opts: &LoadOptions,
    kinds: Vec<String>,
    mut rx: mpsc::Receiver<(RequestRecord, Vec<Nanos>, bool, u64)>,
    live: Arc<LiveCounters>,
) -> tokio::task::JoinHandle<(
    Aggregator,
    crate::report::locust::CsvLog,
    Vec<crate::analysis::attempts::ClientEnd>,
)> {
    let mut csv = crate::report::locust::CsvLog::new(kinds.clone());
    let mut agg = Aggregator::new(opts.bucket, kinds, opts.slo).with_phases(opts.phases.clone());
    if opts.start_latency {
        agg = agg.with_start_latency();
    }
    let keep_ends = opts.keep_ends;
    tokio::spawn(async move {
        let mut agg = agg;
        let mut ends = Vec::new();
        let mut n = 0u64;
        while let Some((rec, itl, emb, content)) = rx.recv().await {
            agg.add(&rec, &itl, emb);
            csv.add(&rec, content);
            if keep_ends {
                ends.push(crate::analysis::attempts::ClientEnd::of(&rec));
            }
            n += 1;
            if n % 256 == 0 {
                let us = (agg.latency_quantile_ms(0.99) * 1e3).max(0.0) as u64;
                live.p99_us.store(us, Ordering::Relaxed);
            }
        }
        (agg, csv, ends)
    })
}

/// Closed loop: one task per user, each sending its next request when its last one ended
/// (and its think time passed), on its own keep-alive connection, until the users' plan
/// or a stop ends it.
fn start_users(
    source: &Source,
    mix: Mix,
    sh: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    scheduled: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    // the same users, ids and shapes the simulator plans (`traffic::Users`)
    let users = Users::new(source, mix, sh.opts.seed).ok_or_else(|| anyhow::anyhow!("no users"))?;
    let users = Arc::new(Mutex::new(users));
    let spawns = users.lock().unwrap_or_else(|e| e.into_inner()).spawns();
    let shard = sh.opts.shard;
    for (u, start) in crate::traffic::shard::users(spawns, shard) {
        let (sh, users, scheduled) = (sh.clone(), users.clone(), scheduled.clone());
        tasks.spawn(async move {
            let mut at = start;
            // one keep-alive connection per gateway replica
            let mut conns: Vec<OwnConn> = (0..sh.targets.len()).map(|_| None).collect();
            loop {
                let intended = sh.t0 + Duration::from_nanos(at);
                if !wait_or_stop(&sh.opts, intended).await {
                    break;
                }
                let mut p = users.lock().unwrap_or_else(|e| e.into_inner()).start(at);
                // distinct ids across shards (each numbers its own starts from 0)
                p.id = crate::traffic::shard::user_request_id(p.id, shard);
                scheduled.fetch_add(1, Ordering::Relaxed);
                sh.live.scheduled.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &sh.opts.metrics {
                    m.scheduled();
                }
                let conn = &mut conns[crate::gateway::replica_of(p.id, sh.targets.len() as u32)];
                let ended = request(&sh, Some(conn), p.id, intended, &p.shape).await;
                let next = users.lock().unwrap_or_else(|e| e.into_inner()).on_complete(ended, u);
                match next {
                    Some(n) => at = n,
                    None => break,
                }
            }
        });
    }
    Ok(())
}

/// Open loop (a rate curve or a trace): sends each request at its intended time in a task
/// of its own, or counts it dropped when the concurrency cap is full, until the schedule
/// or a stop ends it. Returns the schedule's length.
async fn send_schedule(
    src: &Source,
    mix: Mix,
    sh: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    scheduled: &AtomicU64,
) -> anyhow::Result<Nanos> {
    let schedule = Schedule::new(src, mix, sh.opts.seed).ok_or_else(|| anyhow::anyhow!("no schedule"))?;
    let duration = match src {
        Source::Open(curve, _, _) => crate::time::secs_f64_to_nanos(curve.duration_s()),
        Source::Trace(t, speed) => t
            .rows
            .last()
            .map_or(0, |(o, _)| crate::time::secs_f64_to_nanos(*o as f64 / 1e9 / speed)),
        Source::Closed { .. } => 0,
    };
    let shard = sh.opts.shard;
    // every shard draws the whole single-machine schedule and keeps its arrivals, their
    // ids unchanged (`traffic::shard`)
    for (n, p) in crate::traffic::shard::arrivals(schedule, shard).enumerate() {
        let intended = sh.t0 + Duration::from_nanos(p.at);
        if !wait_or_stop(&sh.opts, intended).await {
            break;
        }
        // behind schedule, `wait_or_stop` returns at once: let the other tasks
        // (the signal handler, the aggregator) run now and then
        if n % 256 == 255 {
            tokio::task::yield_now().await;
        }
        scheduled.fetch_add(1, Ordering::Relaxed);
        sh.live.scheduled.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &sh.opts.metrics {
            m.scheduled();
        }
        while tasks.try_join_next().is_some() {}
        match sh.sem.clone().try_acquire_owned() {
            Ok(permit) => {
                let sh = sh.clone();
                tasks.spawn(async move {
                    request(&sh, None, p.id, intended, &p.shape).await;
                    drop(permit);
                });
            }
            Err(_) => dropped(sh, p.id, intended, &p.shape).await,
        }
    }
    Ok(duration)
}

/// Lets in-flight requests finish, up to the grace period after the schedule's end (after
/// a stop, before or during the wait: up to [`INTERRUPT_GRACE`]), then cancels the rest.
/// Returns whether the run was interrupted and its duration (the planned one, or the time
/// to the stop).
async fn wait_for_open(tasks: &mut JoinSet<()>, opts: &LoadOptions, t0: Instant, planned: Nanos) -> (bool, Nanos) {
    let mut interrupted = stopped(opts);
    let mut duration = planned;
    let mut end = if interrupted {
        duration = since(t0, Instant::now()).min(planned);
        Instant::now() + Duration::from_nanos(opts.grace.min(INTERRUPT_GRACE))
    } else {
        t0 + Duration::from_nanos(duration) + Duration::from_nanos(opts.grace)
    };
    let mut stop_rx = opts.stop.clone();
    while !tasks.is_empty() {
        let stop = async {
            match stop_rx.as_mut() {
                Some(rx) if !interrupted => {
                    let _ = rx.wait_for(|v| *v).await;
                }
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = tokio::time::timeout_at(end, tasks.join_next()) => match r {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            },
            // Ctrl-C while waiting for the last answers: stop soon, the report is partial
            _ = stop => {
                interrupted = true;
                end = end.min(Instant::now() + Duration::from_nanos(opts.grace.min(INTERRUPT_GRACE)));
            }
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    (interrupted, duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_until_never_returns_early_and_reuses_its_timer() {
        // short waits (the timerfd alone), long ones (tokio's timer first), concurrent ones
        // (a second timer on the same thread), and one already due
        for micros in [0u64, 30, 300, 1_500, 4_000] {
            let t = Instant::now() + Duration::from_micros(micros);
            let (a, b) = tokio::join!(wait_until(t), wait_until(t + Duration::from_micros(200)));
            let _ = (a, b);
            assert!(
                Instant::now() >= t + Duration::from_micros(200),
                "woke early ({micros} µs)"
            );
        }
        assert!(fine_sleep(Duration::from_micros(100)).await.is_ok());
        assert!(
            IDLE_TIMER.with(|t| t.borrow().is_some()),
            "a finished wait leaves its timer for the next"
        );
    }

    #[test]
    fn non_2xx_body_of_any_size_is_kept_to_64_kib() {
        // the defect: an error reply's body was collected whole, however large
        let mut kept = Vec::new();
        let piece = vec![b'x'; 10_000];
        for _ in 0..1_000 {
            keep_capped(&mut kept, &piece, ERROR_BODY_KEEP_BYTES);
        }
        assert_eq!(kept.len(), ERROR_BODY_KEEP_BYTES);
        let mut small = Vec::new();
        keep_capped(&mut small, b"{\"error\":1}", ERROR_BODY_KEEP_BYTES);
        assert_eq!(small, b"{\"error\":1}");
    }

    #[test]
    fn plain_2xx_body_of_any_size_is_kept_to_its_head_or_tail() {
        // the defect: a plain 2xx body was collected whole, however large
        let mut kept = Vec::new();
        let mut all = Vec::new();
        for i in 0..1_000u32 {
            let piece: Vec<u8> = (0..(7_000 + i % 13)).map(|k| (k % 251) as u8).collect();
            keep_tail(&mut kept, &piece, PLAIN_BODY_TAIL_BYTES);
            all.extend_from_slice(&piece);
            assert!(kept.len() <= 2 * PLAIN_BODY_TAIL_BYTES);
            assert!(all.ends_with(&kept));
        }
        keep_tail(&mut kept, &vec![7u8; 3 * PLAIN_BODY_TAIL_BYTES], PLAIN_BODY_TAIL_BYTES);
        assert_eq!(kept, vec![7u8; PLAIN_BODY_TAIL_BYTES]);
    }

    #[test]
    fn usage_is_read_typed_from_the_tail_of_a_large_body() {
        let u = |t: &[u8]| usage_in_tail(t).map(|u| (u.completion_tokens, u.output_tokens));
        // OpenAI: usage at the end, the head (and the opening brace) cut away
        let t = br#"xxxx"}}],"usage":{"prompt_tokens":5,"completion_tokens":123,"total_tokens":128}}"#;
        assert_eq!(u(t), Some((Some(123), None)));
        // Anthropic, with whitespace; the word inside a string after the real key is skipped
        let t = br#"x"}],"usage" : {"input_tokens":3,"output_tokens":77},"note":"say \"usage\": 9"}"#;
        assert_eq!(u(t), Some((None, Some(77))));
        // a later "usage" key that is not usage falls back to the earlier real one
        let t = br#""usage":{"completion_tokens":4},"meta":{"usage":"text"}}"#;
        assert_eq!(u(t), Some((Some(4), None)));
        // cut inside the usage object, or none at all: no usage
        assert_eq!(u(br#"xx","usage":{"completion_tokens":4"#), None);
        assert_eq!(u(b"xxxxxxxx"), None);
        // a count past u32 is not taken as a number of tokens
        assert_eq!(u(br#""usage":{"completion_tokens":99999999999}}"#), None);
    }

    #[test]
    fn usage_of_a_whole_body_or_of_the_tail_of_a_large_one() {
        let of = |bytes: &[u8], whole: bool| {
            usage_of(&Kept {
                bytes: bytes.to_vec(),
                whole,
                mark: None,
            })
            .map(|u| (u.completion_tokens, u.output_tokens))
        };
        assert_eq!(of(br#"{"usage":{"completion_tokens":9}}"#, true), Some((Some(9), None)));
        // JSON without usage: no tokens, not malformed; not JSON: malformed
        assert_eq!(of(br#"{"id":"x"}"#, true), Some((None, None)));
        assert_eq!(of(b"<html>", true), None);
        // only the end at hand: its usage, else none (never malformed)
        assert_eq!(
            of(br#"x"}],"usage":{"output_tokens":5}}"#, false),
            Some((None, Some(5)))
        );
        assert_eq!(of(b"xxxx", false), Some((None, None)));
    }

    use crate::traffic::{KindSpec, Mix};

    #[test]
    fn the_request_marker_keeps_the_tokens_the_mock_counts() {
        let mix = Mix::new(vec![KindSpec::chat("a", true)], Api::OpenAi).unwrap();
        let mut rng = crate::rng::stream(1, "t");
        for api in [Api::OpenAi, Api::Anthropic] {
            for tokens in [1, 2, 3, 4, 5, 50, 1000] {
                for id in [0, 7, 123_456_789, u64::MAX] {
                    let mut shape = mix.shape(0, &mut rng);
                    shape.api = api;
                    shape.prompt_tokens = tokens;
                    let (_, body) = body_for(&shape, "m", id);
                    let counted = match api {
                        Api::OpenAi => {
                            crate::provider::openai::parse_chat(body.as_bytes())
                                .unwrap()
                                .input_tokens
                        }
                        Api::Anthropic => {
                            crate::provider::anthropic::parse_messages(body.as_bytes())
                                .unwrap()
                                .input_tokens
                        }
                    };
                    let unmarked = crate::provider::estimate_tokens(prompt(tokens).chars().count()).max(1);
                    assert_eq!(counted, unmarked, "{api:?}, {tokens} tokens, request {id}");
                    let fits = prompt(tokens).len() >= crate::provider::mark::request_marker(id).len();
                    let found = crate::provider::mark::find_request(body.as_bytes());
                    assert_eq!(found, fits.then_some(id), "{body}");
                }
            }
        }
    }

    #[test]
    fn bodies_are_valid_json_the_mocks_accept() {
        let mut kinds = vec![KindSpec::chat("a", true), KindSpec::chat("b", false)];
        kinds.push(KindSpec {
            endpoint: EndpointKind::Embeddings,
            inputs: 3,
            ..KindSpec::chat("e", false)
        });
        for api in [Api::OpenAi, Api::Anthropic] {
            let mix = Mix::new(kinds.clone(), api).unwrap();
            let mut rng = crate::rng::stream(1, "t");
            for i in 0..3 {
                let mut shape = mix.shape(i, &mut rng);
                shape.model = Some(std::sync::Arc::from("we\"ird\\model"));
                let (path, body) = body_for(&shape, mix.model_of(&shape), i as u64);
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["model"], "we\"ird\\model");
                match path {
                    "/v1/embeddings" => assert!(
                        crate::provider::openai::parse_embeddings(body.as_bytes())
                            .unwrap()
                            .inputs
                            == 3
                    ),
                    "/v1/chat/completions" => assert_eq!(
                        crate::provider::openai::parse_chat(body.as_bytes()).unwrap().stream,
                        shape.stream
                    ),
                    _ => assert_eq!(
                        crate::provider::anthropic::parse_messages(body.as_bytes())
                            .unwrap()
                            .stream,
                        shape.stream
                    ),
                }
            }
        }
        assert_eq!(base_url("http://127.0.0.1:4000/v1/").unwrap(), "http://127.0.0.1:4000");
        assert!(base_url("https://x").unwrap_err().contains("only http"));
        assert!(base_url("not a url").is_err());
    }
}
