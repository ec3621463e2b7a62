//! The reference gateway's HTTP/1.1 server: how its clients' connections are accepted,
//! read and answered. The requests themselves are answered by a [`Service`] (the gateway's
//! routes in [`crate::live::proxy`]).
//!
//! Why not hyper's server and axum's router, as the mocks use: on the gateway they cost as
//! much CPU per request as everything else it does in user space (a 400-slot header array
//! allocated per request, a boxed timer per request, a body channel, the router's boxed
//! services), and the gateway must not become the bottleneck of a load test
//! (docs/performance.md). So, like nginx or Envoy:
//!
//! - **one worker per core**, each a single-threaded tokio runtime on its own thread. The
//!   accept loop hands connections out in turn; a connection stays on its worker, and so do
//!   its upstream connections ([`crate::live::upstream`] keeps one pool per worker): no
//!   task ever wakes on another thread.
//! - **one pass over each request**: the head is parsed with `httparse` into slots on the
//!   stack, header values share the read buffer, a body already read is handed over
//!   without a copy, and the answer (head and body) goes out in one write when it is ready
//!   at once; a streamed answer's frames are written as they come, whatever has arrived
//!   together in one write.
//! - **limits without a timer per request**: each worker ticks once a second (or four
//!   times per shortest limit) and closes what has waited too long — a request head
//!   ([`Limits::head_timeout`], idle keep-alive connections included), a body
//!   ([`Limits::body_timeout`], answered 408) or a client that takes no bytes
//!   ([`Limits::write_timeout`]). The limits hold to within one tick.
//!
//! What the server refuses itself — a head too large or with too many lines, a body too
//! large, late or unreadable, a request that is not HTTP/1.x — it asks the service to word
//! ([`Service::refuse`]), so every error a client sees is in its API's envelope, then it
//! closes the connection (reading what the client still sends for a moment first, so that
//! the answer is not lost to a reset).

use crate::live::http1::{connection_tokens, ends_in_chunked, push_decimal, Decoder, Gather};
use crate::live::net::ServerHandle;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use hyper::body::Body as _;
use std::future::Future;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// A streamed body's data frames up to this size are copied next to their chunk framing
/// and written with whatever else is ready; a larger one is written as it is.
const COPY_FRAME_BYTES: usize = 16 * 1024;
/// Most bytes of ready frames gathered for one write.
const FLUSH_BYTES: usize = 64 * 1024;
/// Connections queued for a worker before the accept loop waits.
const WORKER_QUEUE: usize = 1024;
/// Most workers.
pub const MAX_WORKERS: usize = 256;
/// How long a refused request's connection is still read (and what it sends dropped)
/// before it is closed, so that the answer reaches the client before a reset would.
const LINGER: Duration = Duration::from_secs(1);
/// At most this much is read and dropped while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// How long a stopping worker waits for the requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What a client may send, and how long it may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most header lines in a request head (431 over it).
    pub max_headers: usize,
    /// Largest request head, counted as the target plus every header name and value (431
    /// over it). The raw head read is bounded by twice this.
    pub max_head_bytes: usize,
    /// Largest request body (413 over it).
    pub max_body_bytes: usize,
    /// How long a request head may take, from when the connection starts waiting for it
    /// (so also how long a keep-alive connection may stay idle): closed after it.
    pub head_timeout: Duration,
    /// How long a request body may take once its head has arrived: 408 after it.
    pub body_timeout: Duration,
    /// How long a write to the client may wait for it to take bytes: closed after it.
    pub write_timeout: Duration,
}

/// A request the server refuses before the service sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// More header lines than [`Limits::max_headers`] (the limit).
    TooManyHeaders(usize),
    /// A head over [`Limits::max_head_bytes`]: its size as counted there (`None`: over
    /// the raw bound before it even ended), and the limit.
    HeadTooLarge(Option<usize>, usize),
    /// A body over [`Limits::max_body_bytes`]: its declared length if it had one, and the
    /// limit.
    BodyTooLarge(Option<u64>, usize),
    /// The body did not arrive within this.
    BodyTimedOut(Duration),
    /// The body could not be read (what went wrong).
    BodyUnreadable(String),
    /// Not an HTTP/1.x request the server can read (what is wrong with it).
    Malformed(String),
}

impl Refusal {
    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::TooManyHeaders(_) | Refusal::HeadTooLarge(..) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::BodyTooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Refusal::BodyUnreadable(_) | Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooManyHeaders(max) => {
                write!(
                    f,
                    "request has more than {max} header lines; the gateway accepts at most {max}"
                )
            }
            Refusal::HeadTooLarge(Some(n), max) => {
                write!(f, "request head is {n} bytes; the gateway accepts at most {max}")
            }
            Refusal::HeadTooLarge(None, max) => write!(
                f,
                "request head is over {} bytes; the gateway accepts at most {max}",
                2 * max
            ),
            Refusal::BodyTooLarge(Some(n), max) => {
                write!(
                    f,
                    "request body of {n} bytes exceeds the gateway's limit of {max} bytes"
                )
            }
            Refusal::BodyTooLarge(None, max) => write!(f, "request body exceeds the gateway's limit of {max} bytes"),
            Refusal::BodyTimedOut(t) => {
                write!(f, "the request body did not arrive within {} s", t.as_secs_f64())
            }
            Refusal::BodyUnreadable(e) => write!(f, "could not read the request body: {e}"),
            Refusal::Malformed(e) => write!(f, "malformed request: {e}"),
        }
    }
}

/// What answers the requests.
pub trait Service: Send + Sync + 'static {
    /// The answer to a request whose body has arrived whole.
    fn call(&self, req: Request<Bytes>) -> impl Future<Output = Response> + Send + 'static;
    /// The answer to a request the server refuses (`path`: the request's path, as far as
    /// it could be read; empty if not at all).
    fn refuse(&self, path: &str, why: &Refusal) -> Response;
}

/// Serves `svc` on `listener` with `workers` worker threads (at least one, at most
/// [`MAX_WORKERS`]; `set_worker` runs first on each, with its number from 1) until the
/// handle is shut down or dropped.
pub fn spawn<S: Service>(
    listener: TcpListener,
    svc: Arc<S>,
    limits: Limits,
    workers: usize,
    set_worker: fn(usize),
) -> anyhow::Result<ServerHandle> {
    anyhow::ensure!(
        (1..=MAX_WORKERS).contains(&workers),
        "the gateway takes 1 to {MAX_WORKERS} workers, not {workers}"
    );
    let addr = listener.local_addr()?;
    let mut queues = Vec::with_capacity(workers);
    let mut ended = Vec::with_capacity(workers);
    for k in 1..=workers {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start gateway worker {k}: {e}"))?;
        let (tx, rx) = mpsc::channel::<std::net::TcpStream>(WORKER_QUEUE);
        let (done, done_rx) = oneshot::channel::<()>();
        let svc = svc.clone();
        std::thread::Builder::new()
            .name(format!("gateway-worker-{k}"))
            .spawn(move || {
                set_worker(k);
                rt.block_on(worker(rx, svc, limits));
                drop(rt);
                let _ = done.send(());
            })
            .map_err(|e| anyhow::anyhow!("cannot start gateway worker {k}: {e}"))?;
        queues.push(tx);
        ended.push(done_rx);
    }
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut next = 0usize;
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        // EMFILE and friends: back off briefly rather than spin
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let Ok(s) = stream.into_std() else { continue };
            // in turn; a worker whose queue is full holds the accept loop back
            let q = &queues[next % queues.len()];
            next = next.wrapping_add(1);
            if q.send(s).await.is_err() {
                break;
            }
        }
        // the workers finish what is in flight (within STOP_GRACE) and stop
        drop(queues);
        for e in ended {
            let _ = e.await;
        }
    });
    Ok(ServerHandle::new(addr, stop, task))
}

/// A worker's clock in ticks, and whether it is stopping: what its connections read.
#[derive(Debug)]
struct Shared {
    tick: AtomicU64,
    stopping: AtomicBool,
}

/// What a connection is waiting for, with the tick it started waiting at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
enum Phase {
    /// A request head (an idle keep-alive connection included).
    Head = 0,
    /// A request body.
    Body = 1,
    /// The service's answer, or the next piece of a streamed one: no limit of the server's.
    Answer = 2,
    /// The client to take a write.
    Write = 3,
}

/// One connection as its worker's ticker sees it.
#[derive(Debug)]
struct Watch {
    /// `since << 2 | phase`.
    state: AtomicU64,
    /// Set by the ticker when the body's time ran out (the read then ends).
    late: AtomicBool,
    /// A second handle on the connection's socket, to shut it down by; let go when the
    /// connection ends (held longer, it would keep the socket open).
    sock: Mutex<Option<std::net::TcpStream>>,
}

impl Watch {
    /// Shuts the connection's socket down (`how`), if it is still open.
    fn shutdown(&self, how: std::net::Shutdown) {
        if let Some(s) = self.sock.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = s.shutdown(how);
        }
    }

    fn set(&self, phase: Phase, shared: &Shared) {
        let t = shared.tick.load(Ordering::Relaxed);
        self.state.store(t << 2 | phase as u64, Ordering::Relaxed);
    }

    fn get(&self) -> (Phase, u64) {
        let s = self.state.load(Ordering::Relaxed);
        let phase = match s & 3 {
            0 => Phase::Head,
            1 => Phase::Body,
            2 => Phase::Answer,
            _ => Phase::Write,
        };
        (phase, s >> 2)
    }
}

/// The tick, and each limit in ticks (at least one).
struct Ticks {
    every: Duration,
    head: u64,
    body: u64,
    write: u64,
}

impl Ticks {
    fn of(l: &Limits) -> Ticks {
        let shortest = l.head_timeout.min(l.body_timeout).min(l.write_timeout);
        let every = (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let n = |d: Duration| (d.as_nanos().div_ceil(every.as_nanos()) as u64).max(1);
        Ticks {
            every,
            head: n(l.head_timeout),
            body: n(l.body_timeout),
            write: n(l.write_timeout),
        }
    }
}

/// A worker: takes connections from `rx`, serves each on a task of its own, ticks, and
/// closes connections that waited past a limit. Ends when `rx` closes (the server stops),
/// after the requests in flight (within [`STOP_GRACE`]).
async fn worker<S: Service>(mut rx: mpsc::Receiver<std::net::TcpStream>, svc: Arc<S>, limits: Limits) {
    let shared = Arc::new(Shared {
        tick: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
    });
    let ticks = Ticks::of(&limits);
    let mut ticker = tokio::time::interval(ticks.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // each connection's watch
    let mut conns: Vec<Weak<Watch>> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            s = rx.recv() => {
                let Some(s) = s else { break };
                let Ok(handle) = s.try_clone() else { continue };
                let Ok(s) = TcpStream::from_std(s) else { continue };
                let w = Arc::new(Watch {
                    state: AtomicU64::new(0),
                    late: AtomicBool::new(false),
                    sock: Mutex::new(Some(handle)),
                });
                w.set(Phase::Head, &shared);
                conns.push(Arc::downgrade(&w));
                tasks.spawn(serve(s, svc.clone(), limits, w, shared.clone()));
            }
            _ = ticker.tick() => {
                let now = shared.tick.fetch_add(1, Ordering::Relaxed) + 1;
                sweep(&mut conns, now, &ticks, false);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // stopping: idle connections now, the others after their answer
    shared.stopping.store(true, Ordering::Relaxed);
    let now = shared.tick.load(Ordering::Relaxed);
    sweep(&mut conns, now, &ticks, true);
    let _ = tokio::time::timeout(STOP_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
}

/// Forgets ended connections; shuts down those past a limit (and, when `stopping`, every
/// one waiting for a head).
fn sweep(conns: &mut Vec<Weak<Watch>>, now: u64, ticks: &Ticks, stopping: bool) {
    conns.retain(|w| {
        let Some(w) = w.upgrade() else { return false };
        let (phase, since) = w.get();
        let waited = now.saturating_sub(since);
        match phase {
            Phase::Head if stopping || waited > ticks.head => w.shutdown(std::net::Shutdown::Both),
            Phase::Body if waited > ticks.body => {
                // the read ends; the connection answers 408 and closes
                w.late.store(true, Ordering::Relaxed);
                w.shutdown(std::net::Shutdown::Read);
            }
            Phase::Write if waited > ticks.write => w.shutdown(std::net::Shutdown::Both),
            _ => {}
        }
        true
    });
}

/// Lets go of a connection's second socket handle when the connection ends, however it ends.
struct Release(Arc<Watch>);

impl Drop for Release {
    fn drop(&mut self) {
        drop(self.0.sock.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// A request head, read.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Decoder,
    /// The connection can carry another request after this one.
    keep_alive: bool,
    /// The client waits for a `100 Continue` before it sends the body.
    expects_continue: bool,
}

/// What stopped a connection's reading of a request.
enum Stop {
    /// The connection ended (closed, reset, timed out waiting for a head): nothing to say.
    Gone,
    /// A refusal to answer, then close.
    Refuse(String, Refusal),
}

/// Serves one connection: requests one after the other (pipelined ones too), until the
/// client or a limit closes it.
async fn serve<S: Service>(mut s: TcpStream, svc: Arc<S>, limits: Limits, w: Arc<Watch>, shared: Arc<Shared>) {
    let release = Release(w);
    let w = &release.0;
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        w.set(Phase::Head, &shared);
        let head = match read_head(&mut s, &mut buf, &limits, &shared).await {
            Ok(h) => h,
            Err(Stop::Gone) => return,
            Err(Stop::Refuse(path, why)) => return refuse(&mut s, &mut out, &*svc, &path, &why, w, &shared).await,
        };
        w.set(Phase::Body, &shared);
        let body = match read_body(&mut s, &mut buf, &head, &limits, w).await {
            Ok(b) => b,
            Err(Stop::Gone) => return,
            Err(Stop::Refuse(path, why)) => return refuse(&mut s, &mut out, &*svc, &path, &why, w, &shared).await,
        };
        let Head {
            method,
            uri,
            version,
            headers,
            keep_alive,
            ..
        } = head;
        let head_only = method == Method::HEAD;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        w.set(Phase::Answer, &shared);
        let resp = svc.call(req).await;
        let keep_alive = keep_alive && !shared.stopping.load(Ordering::Relaxed);
        match write_response(&mut s, &mut out, resp, head_only, keep_alive, version, w, &shared).await {
            Ok(true) if !shared.stopping.load(Ordering::Relaxed) => {}
            _ => return,
        }
    }
}

/// Reads the next request head from `s` into `buf` (whatever of a pipelined request is
/// already there first).
async fn read_head(s: &mut TcpStream, buf: &mut BytesMut, limits: &Limits, shared: &Shared) -> Result<Head, Stop> {
    loop {
        if !buf.is_empty() {
            if let Some(h) = parse_head(buf, limits)? {
                return Ok(h);
            }
            if buf.len() >= 2 * limits.max_head_bytes {
                return Err(Stop::Refuse(
                    guess_path(buf),
                    Refusal::HeadTooLarge(None, limits.max_head_bytes),
                ));
            }
        } else if shared.stopping.load(Ordering::Relaxed) {
            return Err(Stop::Gone);
        }
        buf.reserve(READ_SIZE);
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Stop::Gone),
            Ok(_) => {}
        }
    }
}

/// The path of a request line, as far as `buf` holds one (for the envelope of a refusal):
/// its first word that starts with `/` (a broken method may hold a space), or the path of
/// an absolute URL.
fn guess_path(buf: &[u8]) -> String {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let target = line
        .split(|&b| b == b' ')
        .skip(1)
        .find_map(|w| {
            if w.starts_with(b"/") {
                Some(w)
            } else {
                let rest = w.strip_prefix(b"http://").or_else(|| w.strip_prefix(b"https://"))?;
                Some(&rest[rest.iter().position(|&b| b == b'/')?..])
            }
        })
        .unwrap_or(&[]);
    let path = target.split(|&b| b == b'?').next().unwrap_or(&[]);
    String::from_utf8_lossy(&path[..path.len().min(256)]).into_owned()
}

/// Parses a request head off the front of `buf`: `None` until it is whole.
fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Head>, Stop> {
    const SLOTS: usize = 128;
    let max = limits.max_headers.min(SLOTS);
    let mut slots: [MaybeUninit<httparse::Header<'_>>; SLOTS] = [const { MaybeUninit::uninit() }; SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let malformed = |buf: &[u8], why: &str| Stop::Refuse(guess_path(buf), Refusal::Malformed(why.to_string()));
    let n = match req.parse_with_uninit_headers(buf, &mut slots[..max]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Stop::Refuse(
                guess_path(buf),
                Refusal::TooManyHeaders(limits.max_headers),
            ))
        }
        Err(e) => return Err(malformed(buf, &format!("not an HTTP/1.x request head ({e})"))),
    };
    let target = req.path.unwrap_or("");
    let counted = target.len() + req.headers.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>();
    if counted > limits.max_head_bytes {
        return Err(Stop::Refuse(
            guess_path(buf),
            Refusal::HeadTooLarge(Some(counted), limits.max_head_bytes),
        ));
    }
    let Ok(method) = Method::from_bytes(req.method.unwrap_or("").as_bytes()) else {
        return Err(malformed(buf, "the method is not a token"));
    };
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut expects_continue = false;
    let (mut chunked, mut encoded, mut length) = (false, false, None::<u64>);
    let base = buf.as_ptr() as usize;
    let target_at = (target.as_ptr() as usize - base, target.len());
    let mut kept: Vec<(HeaderName, usize, usize)> = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Err(malformed(buf, "a header name is not a token"));
        };
        if name == axum::http::header::TRANSFER_ENCODING {
            if http10 {
                return Err(malformed(buf, "transfer-encoding in HTTP/1.0"));
            }
            encoded = true;
            chunked = ends_in_chunked(h.value);
        } else if name == axum::http::header::CONTENT_LENGTH {
            let n = (!h.value.is_empty() && h.value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(h.value).ok()?.parse::<u64>().ok())
                .flatten();
            match (n, length) {
                (None, _) => return Err(malformed(buf, "content-length is not a number")),
                (Some(n), Some(prev)) if n != prev => return Err(malformed(buf, "two different content-lengths")),
                (Some(n), _) => length = Some(n),
            }
        } else if name == axum::http::header::CONNECTION {
            match connection_tokens(h.value) {
                Some(false) => keep_alive = false,
                Some(true) if http10 => keep_alive = true,
                _ => {}
            }
        } else if name == axum::http::header::EXPECT {
            expects_continue = !http10 && h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        let at = h.value.as_ptr() as usize - base;
        kept.push((name, at, at + h.value.len()));
    }
    let body = if encoded {
        if !chunked {
            return Err(malformed(buf, "transfer-encoding does not end in chunked"));
        }
        // a length next to a coding: the coding wins (RFC 9112 §6.3), and the connection
        // is not trusted with another request
        if length.is_some() {
            keep_alive = false;
        }
        Decoder::chunked()
    } else {
        let n = length.unwrap_or(0);
        if n > limits.max_body_bytes as u64 {
            return Err(Stop::Refuse(
                guess_path(buf),
                Refusal::BodyTooLarge(Some(n), limits.max_body_bytes),
            ));
        }
        Decoder::length(n)
    };
    let head = buf.split_to(n).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target_at.0..target_at.0 + target_at.1)) else {
        return Err(Stop::Refuse(
            String::new(),
            Refusal::Malformed("the request target is not a URI".into()),
        ));
    };
    let mut headers = HeaderMap::with_capacity(kept.len());
    for (name, from, to) in kept {
        match HeaderValue::from_maybe_shared(head.slice(from..to)) {
            Ok(v) => {
                headers.append(name, v);
            }
            Err(_) => {
                return Err(Stop::Refuse(
                    uri.path().to_string(),
                    Refusal::Malformed("a header value is not valid".into()),
                ))
            }
        }
    }
    Ok(Some(Head {
        method,
        uri,
        version: if http10 { Version::HTTP_10 } else { Version::HTTP_11 },
        headers,
        body,
        keep_alive,
        expects_continue,
    }))
}

/// Reads a request's body whole (within the limits): what is in `buf` first, without a
/// copy when it is all there.
async fn read_body(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    head: &Head,
    limits: &Limits,
    w: &Watch,
) -> Result<Bytes, Stop> {
    let mut dec = head.body;
    let path = || head.uri.path().to_string();
    let mut body = Gather::default();
    let mut asked = false;
    loop {
        match dec.decode(buf) {
            Ok(Some(d)) => {
                if body.len() + d.len() > limits.max_body_bytes {
                    return Err(Stop::Refuse(path(), Refusal::BodyTooLarge(None, limits.max_body_bytes)));
                }
                body.push(d);
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(Stop::Refuse(path(), Refusal::BodyUnreadable(e.to_string()))),
        }
        if dec.is_done() {
            return Ok(body.finish());
        }
        if head.expects_continue
            && !std::mem::replace(&mut asked, true)
            && buf.is_empty()
            && s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return Err(Stop::Gone);
        }
        buf.reserve(READ_SIZE);
        match s.read_buf(buf).await {
            Ok(0) if w.late.load(Ordering::Relaxed) => {
                return Err(Stop::Refuse(path(), Refusal::BodyTimedOut(limits.body_timeout)))
            }
            Ok(0) => {
                return Err(Stop::Refuse(
                    path(),
                    Refusal::BodyUnreadable("the connection closed before the body ended".into()),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Stop::Refuse(path(), Refusal::BodyUnreadable(e.to_string()))),
        }
    }
}

/// Answers a refused request, then closes: the write side first, then what the client
/// still sends is read and dropped for a moment, so the answer is not lost to a reset.
async fn refuse<S: Service>(
    s: &mut TcpStream,
    out: &mut Vec<u8>,
    svc: &S,
    path: &str,
    why: &Refusal,
    w: &Watch,
    shared: &Shared,
) {
    let resp = svc.refuse(path, why);
    if write_response(s, out, resp, false, false, Version::HTTP_11, w, shared)
        .await
        .is_err()
    {
        return;
    }
    let _ = s.shutdown().await;
    let mut sink = vec![0u8; READ_SIZE];
    let mut dropped = 0usize;
    let _ = tokio::time::timeout(LINGER, async {
        while dropped < LINGER_BYTES {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
}

/// The cached `date` header of this thread (an HTTP-date, renewed each second).
fn date() -> HeaderValue {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, HeaderValue)> =
            const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            d.1 = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
            d.0 = secs;
        }
        d.1.clone()
    })
}

/// What the next step of a streamed answer is.
enum Next {
    /// A frame (or the end, or an error).
    Frame(Option<Result<hyper::body::Frame<Bytes>, axum::Error>>),
    /// None is ready yet, and there is output to write first.
    Flush,
}

/// Writes `resp` (its body too, unless `head_only`): `Ok(true)` when the connection can
/// carry another request.
#[allow(clippy::too_many_arguments)]
async fn write_response(
    s: &mut TcpStream,
    out: &mut Vec<u8>,
    resp: Response,
    head_only: bool,
    keep_alive: bool,
    version: Version,
    w: &Watch,
    shared: &Shared,
) -> std::io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let status = parts.status;
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    // a stream of unknown length: chunked, or until close for an HTTP/1.0 client
    let chunked = length.is_none() && version != Version::HTTP_10 && !no_body;
    let keep_alive = keep_alive && (length.is_some() || chunked || no_body);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (k, v) in parts.headers.iter() {
        if matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "keep-alive"
        ) {
            continue;
        }
        dated |= k == axum::http::header::DATE;
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Some(n) if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, usize::try_from(n).unwrap_or(usize::MAX));
            out.extend_from_slice(b"\r\n");
        }
        _ if chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        drop(body);
        w.set(Phase::Write, shared);
        s.write_all(out).await?;
        return Ok(keep_alive);
    }
    let mut sent: u64 = 0;
    loop {
        let next = std::future::poll_fn(|cx| match std::pin::Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(Next::Frame(f)),
            Poll::Pending if !out.is_empty() => Poll::Ready(Next::Flush),
            Poll::Pending => Poll::Pending,
        })
        .await;
        let frame = match next {
            Next::Flush => {
                w.set(Phase::Write, shared);
                s.write_all(out).await?;
                out.clear();
                w.set(Phase::Answer, shared);
                continue;
            }
            Next::Frame(f) => f,
        };
        match frame {
            None => break,
            Some(Err(_)) => {
                // the upstream broke mid-body: what came is passed on, then the connection
                // is closed without the body's end, so the client sees it cut short
                w.set(Phase::Write, shared);
                s.write_all(out).await?;
                return Ok(false);
            }
            Some(Ok(f)) => {
                let Ok(data) = f.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                sent += data.len() as u64;
                if chunked {
                    push_hex(out, data.len());
                    out.extend_from_slice(b"\r\n");
                }
                if data.len() <= COPY_FRAME_BYTES {
                    out.extend_from_slice(&data);
                } else {
                    w.set(Phase::Write, shared);
                    s.write_all(out).await?;
                    out.clear();
                    s.write_all(&data).await?;
                }
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= FLUSH_BYTES {
                    // frames that keep coming ready are written as they pile up, not held
                    // until the body pauses (which a fast upstream may never do)
                    w.set(Phase::Write, shared);
                    s.write_all(out).await?;
                    out.clear();
                    w.set(Phase::Answer, shared);
                }
            }
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    w.set(Phase::Write, shared);
    s.write_all(out).await?;
    out.clear();
    if length.is_some_and(|n| n != sent) {
        // a body shorter or longer than it said: the connection cannot be trusted
        return Ok(false);
    }
    Ok(keep_alive)
}

/// Appends `n` in hexadecimal (a chunk size).
fn push_hex(out: &mut Vec<u8>, n: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut k = tmp.len();
    let mut n = n;
    loop {
        k -= 1;
        tmp[k] = DIGITS[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[k..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes bodies; streams; breaks mid-stream.
    struct Echo;

    impl Service for Echo {
        #[allow(clippy::manual_async_fn)] // the trait's future is 'static: it borrows nothing
        fn call(&self, req: Request<Bytes>) -> impl Future<Output = Response> + Send + 'static {
            async move {
                match req.uri().path() {
                    "/stream" => {
                        let parts = futures_util::stream::iter(
                            ["a", "bb", "ccc"].map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
                        );
                        Body::from_stream(parts).into_response()
                    }
                    "/endless" => {
                        // frames always ready, counted as they are taken
                        let taken = TAKEN.get_or_init(|| AtomicU64::new(0));
                        let parts = futures_util::stream::iter(0..ENDLESS_FRAMES).map(move |_| {
                            taken.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 8192]))
                        });
                        Body::from_stream(parts).into_response()
                    }
                    "/broken" => {
                        let parts = futures_util::stream::iter([
                            Ok(Bytes::from_static(b"partial")),
                            Err(std::io::Error::other("upstream broke")),
                        ]);
                        Body::from_stream(parts).into_response()
                    }
                    p => format!("{} {p} {}", req.method(), String::from_utf8_lossy(req.body())).into_response(),
                }
            }
        }

        fn refuse(&self, path: &str, why: &Refusal) -> Response {
            (why.status(), format!("refused {path}: {why}")).into_response()
        }
    }

    fn limits() -> Limits {
        Limits {
            max_headers: 10,
            max_head_bytes: 1024,
            max_body_bytes: 64,
            head_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_secs(5),
        }
    }

    async fn server() -> ServerHandle {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        spawn(l, Arc::new(Echo), limits(), 2, |_| {}).unwrap()
    }

    /// Sends `raw` on a new connection; everything the server says until it closes (or 5 s).
    async fn exchange(h: &ServerHandle, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    fn bodies(text: &str) -> Vec<&str> {
        text.split("HTTP/1.1 ")
            .skip(1)
            .map(|r| r.split("\r\n\r\n").nth(1).unwrap_or(""))
            .collect()
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
        let h = server().await;
        let got = exchange(
            &h,
            b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nonePOST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\nGET /c HTTP/1.1\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(bodies(&got), ["POST /a one", "POST /b two", "GET /c "], "{got}");
        assert_eq!(got.matches("content-length: ").count(), 3, "{got}");
        assert!(got.contains("connection: close\r\n"), "{got}");
        assert!(got.contains("\r\ndate: "), "{got}");
        h.shutdown().await;
    }

    #[tokio::test]
    async fn a_stream_is_chunked_and_a_broken_one_ends_without_its_last_chunk() {
        let h = server().await;
        let got = exchange(&h, b"GET /stream HTTP/1.1\r\nconnection: close\r\n\r\n").await;
        assert!(got.contains("transfer-encoding: chunked\r\n"), "{got}");
        assert!(
            got.ends_with("\r\n\r\n1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n"),
            "{got:?}"
        );
        let got = exchange(&h, b"GET /broken HTTP/1.1\r\n\r\n").await;
        assert!(got.ends_with("\r\n\r\n7\r\npartial\r\n"), "{got:?}");
        // HTTP/1.0 has no chunks: the body ends when the connection does
        let got = exchange(&h, b"GET /stream HTTP/1.0\r\n\r\n").await;
        assert!(!got.contains("chunked") && got.ends_with("\r\n\r\nabbccc"), "{got:?}");
        h.shutdown().await;
    }

    #[tokio::test]
    async fn head_answers_without_a_body_and_expect_continue_is_answered() {
        let h = server().await;
        let got = exchange(&h, b"HEAD /x HTTP/1.1\r\nconnection: close\r\n\r\n").await;
        assert!(
            got.contains("content-length: 8\r\n") && got.ends_with("\r\n\r\n"),
            "{got:?}"
        );
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(b"POST /e HTTP/1.1\r\ncontent-length: 2\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"ok").await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(String::from_utf8_lossy(&rest).ends_with("POST /e ok"), "{rest:?}");
        h.shutdown().await;
    }

    #[tokio::test]
    async fn what_the_server_refuses_reaches_the_client_in_the_services_words() {
        let h = server().await;
        let many: String = (0..11).map(|i| format!("x-h{i}: 1\r\n")).collect();
        let got = exchange(
            &h,
            format!("POST /v1/messages HTTP/1.1\r\n{many}content-length: 2\r\n\r\nok").as_bytes(),
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
        assert!(
            got.ends_with(
                "refused /v1/messages: request has more than 10 header lines; the gateway accepts at most 10"
            ),
            "{got}"
        );
        let got = exchange(&h, format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1100)).as_bytes()).await;
        assert!(
            got.starts_with("HTTP/1.1 431 ") && got.contains("request head is 1101 bytes"),
            "{got}"
        );
        let got = exchange(&h, b"POST /big HTTP/1.1\r\ncontent-length: 65\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 413 ") && got.contains("refused /big: request body of 65 bytes"),
            "{got}"
        );
        let chunked = format!(
            "POST /big HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n41\r\n{}\r\n",
            "a".repeat(65)
        );
        let got = exchange(&h, chunked.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
        let got = exchange(&h, b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{\"model\"").await;
        assert!(
            got.starts_with("HTTP/1.1 400 ") && got.contains("bad chunk size"),
            "{got}"
        );
        let got = exchange(&h, b"PO ST /v1/messages HTTP/1.1\r\n\r\n").await;
        assert!(
            got.starts_with("HTTP/1.1 400 ") && got.contains("refused /v1/messages: malformed"),
            "{got}"
        );
        let got = exchange(
            &h,
            b"POST /c HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        )
        .await;
        assert!(got.contains("two different content-lengths"), "{got}");
        h.shutdown().await;
    }

    #[tokio::test]
    async fn a_late_body_gets_408_and_an_idle_connection_is_closed_after_the_head_timeout() {
        let h = server().await;
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(b"POST /slow HTTP/1.1\r\ncontent-length: 5\r\n\r\nab")
            .await
            .unwrap();
        let mut got = Vec::new();
        let t0 = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.starts_with("HTTP/1.1 408 ") && got.contains("within 0.3 s"),
            "{got}"
        );
        assert!(t0.elapsed() >= Duration::from_millis(300), "{:?}", t0.elapsed());
        // idle, and a head that never ends: both closed
        for raw in [&b""[..], b"GET / HTTP/1.1\r\nx-a: "] {
            let mut s = TcpStream::connect(h.addr).await.unwrap();
            s.write_all(raw).await.unwrap();
            let mut got = Vec::new();
            let t0 = tokio::time::Instant::now();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert!(got.is_empty() && t0.elapsed() >= Duration::from_millis(300));
        }
        h.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_ends_its_workers() {
        let h = server().await;
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(b"GET /a HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("GET /a "));
        let addr = h.addr;
        tokio::time::timeout(Duration::from_secs(5), h.shutdown())
            .await
            .expect("shutdown ends");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[tokio::test]
    async fn a_closed_connection_is_closed_at_once_not_at_the_next_tick() {
        // the regression: the ticker's second handle on each socket was let go only at its
        // next sweep, so a `connection: close` answer's EOF waited up to a tick (1 s)
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slow = Limits {
            head_timeout: Duration::from_secs(3600),
            body_timeout: Duration::from_secs(3600),
            write_timeout: Duration::from_secs(3600),
            ..limits()
        };
        assert_eq!(Ticks::of(&slow).every, Duration::from_secs(1));
        let h = spawn(l, Arc::new(Echo), slow, 1, |_| {}).unwrap();
        // past the ticker's first tick (at once): its next is a second away
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = tokio::time::Instant::now();
        let got = exchange(&h, b"GET /a HTTP/1.1\r\nconnection: close\r\n\r\n").await;
        assert!(got.ends_with("GET /a "), "{got}");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "EOF after {:?}",
            t0.elapsed()
        );
        h.shutdown().await;
    }

    /// Frames of `/endless`, 8 KiB each (64 MiB in all), and how many were taken.
    const ENDLESS_FRAMES: u64 = 8192;
    static TAKEN: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();

    #[tokio::test]
    async fn ready_frames_are_written_as_they_pile_up_not_held_for_a_client_that_does_not_read() {
        // the regression: frames that were always ready were gathered for one write until
        // the body paused, so a fast upstream's whole body sat in the server's memory
        let h = server().await;
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(b"GET /endless HTTP/1.1\r\n\r\n").await.unwrap();
        // the client reads nothing: the server may take only what the sockets hold
        tokio::time::sleep(Duration::from_millis(500)).await;
        let taken = TAKEN.get().map_or(0, |t| t.load(Ordering::Relaxed));
        assert!(taken > 0, "the stream was not started");
        assert!(
            taken < ENDLESS_FRAMES / 2,
            "{taken} of {ENDLESS_FRAMES} frames ({} MiB) taken while the client read nothing",
            (taken * 8192) >> 20
        );
        drop(s);
        h.shutdown().await;
    }

    #[test]
    fn chunk_sizes_are_hexadecimal() {
        for (n, hex) in [
            (0, "0"),
            (7, "7"),
            (255, "ff"),
            (4096, "1000"),
            (usize::MAX, "ffffffffffffffff"),
        ] {
            let mut v = Vec::new();
            push_hex(&mut v, n);
            assert_eq!(v, hex.as_bytes());
        }
    }
}
