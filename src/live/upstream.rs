//! The reference gateway's HTTP/1.1 client to its upstreams: a pool of keep-alive
//! connections per target, each request written in one `write`, the response head parsed
//! with `httparse`, the body decoded (content-length, chunked, or until close) in the
//! task that reads it.
//!
//! Why not hyper's pooled client: it runs every upstream connection on a task of its own
//! and hands the body over through a channel that holds one frame, so each SSE frame of a
//! stream costs a wake-up of two tasks and a write of its own to the client. Here a body
//! read returns everything that has already arrived, decoded into one piece ([`Body::next`]
//! never waits for more once it has something): a stream still passes through as soon as
//! each frame arrives, and frames that arrived together go out together.
//!
//! Limits: a response head of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] lines (hyper's
//! client defaults), chunk-size lines of at most 4 KiB, at most [`MAX_IDLE_PER_TARGET`] idle
//! connections per target and gateway worker, each idle at most [`IDLE_TIMEOUT`]. Anything malformed is an
//! error (the caller counts it as a broken connection), and the connection is not reused.

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, StatusCode};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head (hyper's client default).
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// Most header lines in a response head (hyper's client default).
pub const MAX_HEADERS: usize = 100;
/// Most idle keep-alive connections kept per target and worker.
pub const MAX_IDLE_PER_TARGET: usize = 1024;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest request body copied into the request head's buffer (larger ones are written
/// after the head, not copied).
const INLINE_BODY_BYTES: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

use crate::live::http1::{bad, connection_tokens, cut, ends_in_chunked, push_decimal, Decoder};

/// One upstream: where to connect, what to send as `host`, the base URL's path.
#[derive(Debug)]
struct Target {
    /// `host:port` to connect to.
    addr: String,
    /// The `host` header.
    host: String,
    /// The base URL's path, without a trailing `/` (often empty).
    prefix: String,
    /// Idle connections, one pool per worker ([`set_worker`]; pool 0 for any other
    /// thread): a connection is registered with the runtime of the worker that opened it,
    /// and used on another its every read would wake a task across threads.
    idle: Vec<Mutex<Vec<(Conn, Instant)>>>,
}

thread_local! {
    /// This thread's pool: its gateway worker's number, 0 on other threads.
    static POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as gateway worker `k` (from 1): its upstream connections go to pool `k`.
pub fn set_worker(k: usize) {
    POOL.with(|p| p.set(k));
}

/// The gateway's upstream client: one pool per target.
#[derive(Debug)]
pub struct Client {
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// A response head and its body.
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// The end-to-end headers, one value per name (the last one sent, in the place of the
    /// first), as the gateway passes them on: not the framing and hop-by-hop ones
    /// (`content-length`, `transfer-encoding`, `connection`, `keep-alive`), which this
    /// client reads itself. Values share the head's buffer (no copy).
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
}

/// A response body being read. Dropped before its end, its connection is closed; read to
/// its end, the connection goes back to the pool (unless the upstream said `close`).
#[derive(Debug)]
pub struct Body {
    conn: Option<Conn>,
    dec: Decoder,
    keep_alive: bool,
    pool: Arc<Client>,
    target: usize,
}

impl Client {
    /// A client for these base URLs (`http://host[:port][/path]`, as
    /// [`crate::live::load::base_url`] checked them).
    /// `workers`: how many gateway workers use it (each gets its own pools).
    pub fn new(bases: &[String], workers: usize) -> anyhow::Result<Client> {
        let targets = bases
            .iter()
            .map(|b| {
                let uri: hyper::Uri = b.parse().map_err(|e| anyhow::anyhow!("upstream {b:?}: {e}"))?;
                if uri.scheme_str() != Some("http") {
                    anyhow::bail!("upstream {b:?}: only http:// URLs are supported");
                }
                let auth = uri
                    .authority()
                    .ok_or_else(|| anyhow::anyhow!("upstream {b:?} has no host"))?;
                let host = auth.as_str().rsplit('@').next().unwrap_or(auth.as_str()).to_string();
                let addr = match auth.port_u16() {
                    Some(_) => host.clone(),
                    None => format!("{}:80", auth.host()),
                };
                Ok(Target {
                    addr,
                    host,
                    prefix: uri.path().trim_end_matches('/').to_string(),
                    idle: (0..=workers).map(|_| Mutex::new(Vec::new())).collect(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Client { targets })
    }

    /// An idle connection to target `i` that the upstream has not closed, if one is kept.
    fn idle(&self, i: usize) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let (mut c, since) = self.pool(i).lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if now.saturating_duration_since(since) > IDLE_TIMEOUT {
                continue;
            }
            // closed by the upstream (EOF), reset, or unexpected bytes: not reusable
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.buf.clear();
                    return Some(c);
                }
                _ => continue,
            }
        }
    }

    /// Target `i`'s idle connections of this thread's worker.
    fn pool(&self, i: usize) -> &Mutex<Vec<(Conn, Instant)>> {
        let pools = &self.targets[i].idle;
        &pools[POOL.with(|p| p.get()).min(pools.len() - 1)]
    }

    fn put_back(&self, i: usize, c: Conn) {
        let mut idle = self.pool(i).lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_PER_TARGET {
            idle.push((c, Instant::now()));
        }
    }

    /// POSTs `body` to target `i`'s base URL + `path`, with `headers` (those `forward`
    /// keeps; `host`, framing and hop-by-hop headers are the client's own), and reads the
    /// response head. Cancel-safe: dropped, it closes its connection.
    pub async fn post(
        self: &Arc<Self>,
        i: usize,
        path: &str,
        headers: &HeaderMap,
        forward: impl Fn(&HeaderName) -> bool,
        body: &[u8],
    ) -> io::Result<Response> {
        let t = &self.targets[i];
        // a small body goes in the same buffer (one write); a large one is written after it
        let inline = body.len() <= INLINE_BODY_BYTES;
        let mut req = Vec::with_capacity(256 + if inline { body.len() } else { 0 });
        req.extend_from_slice(b"POST ");
        req.extend_from_slice(t.prefix.as_bytes());
        req.extend_from_slice(path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        req.extend_from_slice(t.host.as_bytes());
        req.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            if forward(k) {
                req.extend_from_slice(k.as_str().as_bytes());
                req.extend_from_slice(b": ");
                req.extend_from_slice(v.as_bytes());
                req.extend_from_slice(b"\r\n");
            }
        }
        req.extend_from_slice(b"content-length: ");
        push_decimal(&mut req, body.len());
        req.extend_from_slice(b"\r\n\r\n");
        if inline {
            req.extend_from_slice(body);
        }
        let mut c = match self.idle(i) {
            Some(c) => c,
            None => {
                let stream = TcpStream::connect(t.addr.as_str()).await?;
                stream.set_nodelay(true)?;
                Conn {
                    stream,
                    buf: BytesMut::with_capacity(READ_SIZE),
                }
            }
        };
        c.stream.write_all(&req).await?;
        if !inline {
            c.stream.write_all(body).await?;
        }
        let (status, headers, state, keep_alive) = read_head(&mut c).await?;
        Ok(Response {
            status,
            headers,
            body: Body {
                conn: Some(c),
                dec: state,
                keep_alive,
                pool: self.clone(),
                target: i,
            },
        })
    }
}

/// Header names the mocks and providers send that are not standard ones: taken from here
/// rather than allocated per response.
const KNOWN_NAMES: [&str; 6] = [
    "x-chaosgate-provider",
    "x-request-id",
    "request-id",
    "openai-processing-ms",
    "openai-version",
    "anthropic-organization-id",
];

fn header_name(raw: &str) -> io::Result<HeaderName> {
    if let Some(k) = KNOWN_NAMES.iter().find(|k| k.eq_ignore_ascii_case(raw)) {
        return Ok(HeaderName::from_static(k));
    }
    HeaderName::from_bytes(raw.as_bytes()).map_err(|_| bad("bad header name"))
}

/// What a response head says about its body and connection.
struct Framing {
    length: Option<u64>,
    chunked: bool,
    encoded: bool,
    keep_alive: bool,
}

/// Reads a response head (skipping 1xx interim answers): status, headers, how the body is
/// framed, whether the connection may be reused.
async fn read_head(c: &mut Conn) -> io::Result<(StatusCode, HeaderMap, Decoder, bool)> {
    loop {
        let parsed = {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match resp
                .parse(&c.buf)
                .map_err(|e| bad(&format!("bad response head: {e}")))?
            {
                httparse::Status::Complete(n) => {
                    let code = resp.code.unwrap_or(0);
                    let status = StatusCode::from_u16(code).map_err(|_| bad("bad status"))?;
                    let mut f = Framing {
                        length: None,
                        chunked: false,
                        encoded: false,
                        keep_alive: resp.version == Some(1),
                    };
                    let base = c.buf.as_ptr() as usize;
                    let mut kept: Vec<(HeaderName, usize, usize)> = Vec::with_capacity(resp.headers.len());
                    for h in resp.headers.iter() {
                        let name = header_name(h.name)?;
                        if name == hyper::header::CONTENT_LENGTH {
                            let l = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<u64>().ok())
                                .ok_or_else(|| bad("bad content-length"))?;
                            if f.length.is_some_and(|x| x != l) {
                                return Err(bad("conflicting content-length"));
                            }
                            f.length = Some(l);
                        } else if name == hyper::header::TRANSFER_ENCODING {
                            f.encoded = true;
                            f.chunked = ends_in_chunked(h.value);
                        } else if name == hyper::header::CONNECTION {
                            match connection_tokens(h.value) {
                                Some(false) => f.keep_alive = false,
                                Some(true) if resp.version == Some(0) => f.keep_alive = true,
                                _ => {}
                            }
                        } else if name != "keep-alive" {
                            let at = h.value.as_ptr() as usize - base;
                            kept.push((name, at, at + h.value.len()));
                        }
                    }
                    Some((n, status, kept, f))
                }
                httparse::Status::Partial => None,
            }
        };
        match parsed {
            Some((n, status, kept, f)) => {
                let head = c.buf.split_to(n).freeze();
                if status.is_informational() {
                    if status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(bad("unexpected 101 Switching Protocols"));
                    }
                    continue;
                }
                let mut headers = HeaderMap::with_capacity(kept.len());
                for (name, from, to) in kept {
                    let v =
                        HeaderValue::from_maybe_shared(head.slice(from..to)).map_err(|_| bad("bad header value"))?;
                    headers.insert(name, v);
                }
                let keep_alive = f.keep_alive;
                let (state, keep_alive) = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                    (Decoder::done(), keep_alive)
                } else if f.chunked {
                    (Decoder::chunked(), keep_alive)
                } else if f.encoded {
                    (Decoder::until_close(), false)
                } else if let Some(l) = f.length {
                    (Decoder::length(l), keep_alive)
                } else {
                    (Decoder::until_close(), false)
                };
                return Ok((status, headers, state, keep_alive));
            }
            None => {
                if c.buf.len() >= MAX_HEAD_BYTES {
                    return Err(bad("response head too large"));
                }
                if fill(c).await? == 0 {
                    return Err(cut("connection closed before the response head"));
                }
            }
        }
    }
}

async fn fill(c: &mut Conn) -> io::Result<usize> {
    c.buf.reserve(READ_SIZE);
    c.stream.read_buf(&mut c.buf).await
}

impl Drop for Body {
    fn drop(&mut self) {
        // read to its end (the caller saw the last piece): the connection can be reused
        if self.dec.is_done() {
            self.release();
        }
    }
}

impl Body {
    /// Whether the body is over (every byte of it returned).
    pub fn is_end_stream(&self) -> bool {
        self.dec.is_done()
    }

    /// The next piece of the body: everything that has already arrived, decoded (reading
    /// the socket only when nothing has); `None` at its end; an error when it breaks (cut
    /// short, malformed framing). After an error or the end, `None`.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            let decoded = match self.conn.as_mut() {
                Some(c) => self.dec.decode(&mut c.buf),
                None => Ok(None),
            };
            match decoded {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => {}
                Err(e) => {
                    self.fail();
                    return Some(Err(e));
                }
            }
            if self.dec.is_done() {
                self.release();
                return None;
            }
            let c = self.conn.as_mut()?;
            match fill(c).await {
                Ok(0) if self.dec.is_until_close() => {
                    self.dec.finish();
                    self.conn = None;
                    return None;
                }
                Ok(0) => {
                    self.fail();
                    return Some(Err(cut("upstream body cut short")));
                }
                Ok(_) => {}
                Err(e) => {
                    self.fail();
                    return Some(Err(e));
                }
            }
        }
    }

    fn fail(&mut self) {
        self.conn = None;
        self.dec.finish();
        self.keep_alive = false;
    }

    /// At the end: the connection back to the pool when it can carry another request.
    fn release(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.keep_alive && c.buf.is_empty() {
                self.pool.put_back(self.target, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `replies` one per request on one connection, each written in pieces of
    /// `piece` bytes; returns the base URL.
    async fn serve(replies: Vec<&'static [u8]>, piece: usize) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            for r in replies {
                let mut b = vec![0u8; 65536];
                let mut got = Vec::new();
                // the request's head and its (content-length) body
                loop {
                    let n = s.read(&mut b).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&b[..n]);
                    if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..p]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if got.len() >= p + 4 + len {
                            break;
                        }
                    }
                }
                for p in r.chunks(piece) {
                    s.write_all(p).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        format!("http://{addr}")
    }

    async fn whole(b: &mut Body) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = b.next().await {
            out.extend_from_slice(&p?);
        }
        Ok(out)
    }

    fn client(base: &str) -> Arc<Client> {
        Arc::new(Client::new(&[base.to_string()], 1).unwrap())
    }

    #[tokio::test]
    async fn chunked_and_length_bodies_decode_whatever_the_pieces_and_the_connection_is_reused() {
        for piece in [1, 3, 7, 4096] {
            let base = serve(
                vec![
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nretry-after: 2\r\n\r\nbusy",
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                ],
                piece,
            )
            .await;
            let c = client(&base);
            let h = HeaderMap::new();
            let mut r = c.post(0, "/v1/chat/completions", &h, |_| true, b"{}").await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.headers["content-type"], "text/event-stream");
            // framing headers are the client's own, not passed on
            assert!(r.headers.get("transfer-encoding").is_none());
            assert_eq!(whole(&mut r.body).await.unwrap(), b"hello world");
            assert!(r.body.is_end_stream());
            assert_eq!(c.pool(0).lock().unwrap().len(), 1, "piece {piece}");
            let mut r = c.post(0, "/v1/chat/completions", &h, |_| true, b"{}").await.unwrap();
            assert_eq!(r.status, 503);
            assert_eq!(r.headers["retry-after"], "2");
            assert_eq!(whole(&mut r.body).await.unwrap(), b"busy");
            let mut r = c.post(0, "/x", &h, |_| true, b"").await.unwrap();
            assert_eq!(r.status, 204);
            assert!(r.body.next().await.is_none());
        }
    }

    #[tokio::test]
    async fn a_repeated_header_keeps_its_last_value_in_its_first_place() {
        let base = serve(
            vec![b"HTTP/1.1 200 OK\r\nx-a: 1\r\nX-Request-Id: r\r\nconnection: keep-alive\r\nx-a: 2\r\nkeep-alive: timeout=5\r\ncontent-length: 0\r\n\r\n"],
            4096,
        )
        .await;
        let c = client(&base);
        let r = c.post(0, "/", &HeaderMap::new(), |_| true, b"{}").await.unwrap();
        let got: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("x-a".to_string(), "2".to_string()),
                ("x-request-id".into(), "r".into())
            ]
        );
    }

    #[tokio::test]
    async fn frames_that_arrived_together_come_out_as_one_piece() {
        let base = serve(
            vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"],
            4096,
        )
        .await;
        let c = client(&base);
        let mut r = c.post(0, "/", &HeaderMap::new(), |_| true, b"{}").await.unwrap();
        // the whole reply was written at once; once it has all arrived, both chunks are
        // in hand (in the head's read or the next one) and come out as one piece
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let first = r.body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"abcdef");
        assert!(r.body.next().await.is_none());
    }

    #[tokio::test]
    async fn cut_and_malformed_bodies_are_errors_and_their_connections_are_not_kept() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        ] {
            let base = serve(vec![reply], 4096).await;
            let c = client(&base);
            let mut r = c.post(0, "/", &HeaderMap::new(), |_| true, b"{}").await.unwrap();
            assert!(whole(&mut r.body).await.is_err(), "{}", String::from_utf8_lossy(reply));
            assert!(r.body.next().await.is_none());
            assert!(c.pool(0).lock().unwrap().is_empty());
        }
        // no head at all
        let base = serve(vec![b""], 4096).await;
        assert!(client(&base)
            .post(0, "/", &HeaderMap::new(), |_| true, b"{}")
            .await
            .is_err());
        // a body until close ends cleanly at EOF, its connection not kept
        let base = serve(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil close"], 4096).await;
        let c = client(&base);
        let mut r = c.post(0, "/", &HeaderMap::new(), |_| true, b"{}").await.unwrap();
        assert_eq!(whole(&mut r.body).await.unwrap(), b"until close");
        assert!(c.pool(0).lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_large_body_arrives_whole_after_its_head() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let body = vec![b'x'; 3 * INLINE_BODY_BYTES + 7];
        let want = body.len();
        let got = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = vec![0u8; 65536];
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
                if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    if got.len() - (p + 4) >= want {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        return (String::from_utf8_lossy(&got[..p]).to_string(), got.len() - (p + 4));
                    }
                }
            }
        });
        let c = Arc::new(Client::new(&[format!("http://{addr}")], 1).unwrap());
        let r = c.post(0, "/v1/x", &HeaderMap::new(), |_| true, &body).await.unwrap();
        assert_eq!(r.status, 200);
        let (head, n) = got.await.unwrap();
        assert!(head.ends_with(&format!("content-length: {want}")), "{head}");
        assert_eq!(n, want);
    }

    #[tokio::test]
    async fn request_carries_the_base_path_host_forwarded_headers_and_length() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let got = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let c = Arc::new(Client::new(&[format!("http://{addr}/openai")], 1).unwrap());
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer k"));
        h.insert("x-drop", HeaderValue::from_static("1"));
        let r = c
            .post(0, "/v1/chat/completions", &h, |k| k != "x-drop", b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let req = got.await.unwrap();
        assert_eq!(
            req,
            format!("POST /openai/v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer k\r\ncontent-length: 7\r\n\r\n{{\"a\":1}}")
        );
    }
}
