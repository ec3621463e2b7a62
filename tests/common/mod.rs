//! Test helpers: start mocks on 127.0.0.1:0 and talk raw HTTP/1.1 to them, so tests see
//! exactly what went over the wire (resets, cut chunked bodies, timing of each chunk).
#![allow(dead_code)]

use chaosgate::fault::Profile;
use chaosgate::live::mock::{self, MockConfig, MockState};
use chaosgate::live::net::ServerHandle;
use chaosgate::provider::Api;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts a mock with the given profile TOML.
pub async fn start(api: Api, profile_toml: &str, seed: u64) -> (ServerHandle, Arc<MockState>) {
    let profile = Profile::from_toml(profile_toml, "test.toml").expect("profile");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    mock::spawn(MockConfig::new("test", api, profile, seed), listener)
        .await
        .unwrap()
}

/// What came back.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
    /// Each body chunk with its arrival time since the request was written.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// Time to the status line.
    pub ttfb: Duration,
    /// The body ended properly (content-length reached or final 0-chunk).
    pub complete: bool,
    /// The read failed with a connection reset.
    pub reset: bool,
    /// The read timed out.
    pub timed_out: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// SSE `data:` payloads in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    }
    /// SSE `event:` names in order.
    pub fn sse_events(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
            .collect()
    }
}

/// Reads more into the buffer, or returns the reply as it stands (EOF, reset, timeout).
macro_rules! fill_or_return {
    ($self:ident, $deadline:ident, $r:ident) => {
        match $self.fill($deadline).await {
            Ok(0) => return $r,
            Ok(_) => {}
            Err(e) => {
                mark(&mut $r, e);
                return $r;
            }
        }
    };
}

/// A raw HTTP/1.1 connection (keep-alive).
pub struct Conn {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: std::net::SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn { s, buf: Vec::new() }
    }

    /// Sends one request and reads the reply, giving up after `limit`.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        limit: Duration,
    ) -> Reply {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            req.push_str("content-type: application/json\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let t0 = Instant::now();
        self.s.write_all(req.as_bytes()).await.unwrap();
        self.s.write_all(body).await.unwrap();
        let mut r = Reply::default();
        let deadline = t0 + limit;
        // status line + headers
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            fill_or_return!(self, deadline, r)
        };
        r.ttfb = t0.elapsed();
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        r.status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                r.headers.push((k.trim().to_lowercase(), v.trim().to_string()));
            }
        }
        let chunked = r.header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let len: Option<usize> = r.header("content-length").and_then(|v| v.parse().ok());
        if !chunked {
            // each read of a content-length body is one chunk (a trickle shows as many)
            let n = len.unwrap_or(0);
            let mut seen = self.buf.len().min(n);
            if seen > 0 {
                r.chunks.push((t0.elapsed(), self.buf[..seen].to_vec()));
            }
            while self.buf.len() < n {
                fill_or_return!(self, deadline, r);
                let now = self.buf.len().min(n);
                if now > seen {
                    r.chunks.push((t0.elapsed(), self.buf[seen..now].to_vec()));
                    seen = now;
                }
            }
            r.body = self.buf.drain(..n).collect();
            r.complete = true;
            return r;
        }
        loop {
            // chunk size line
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                fill_or_return!(self, deadline, r)
            };
            let size_line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
            while self.buf.len() < line_end + 2 + size + 2 {
                fill_or_return!(self, deadline, r)
            }
            let data: Vec<u8> = self.buf[line_end + 2..line_end + 2 + size].to_vec();
            self.buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                r.complete = true;
                return r;
            }
            r.chunks.push((t0.elapsed(), data.clone()));
            r.body.extend_from_slice(&data);
        }
    }

    async fn fill(&mut self, deadline: Instant) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16384];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.s.read(&mut tmp)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout")),
        }
    }
}

fn mark(r: &mut Reply, e: std::io::Error) {
    match e.kind() {
        std::io::ErrorKind::TimedOut => r.timed_out = true,
        std::io::ErrorKind::ConnectionReset => r.reset = true,
        _ => {}
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// One request on a fresh connection.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    Conn::open(addr)
        .await
        .send(method, path, headers, body.as_bytes(), Duration::from_secs(10))
        .await
}

pub fn openai_chat(stream: bool, max_tokens: u32) -> String {
    let mut v = serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hello there, how are you?"}],
        "max_tokens": max_tokens,
        "stream": stream,
    });
    if stream {
        v["stream_options"] = serde_json::json!({"include_usage": true});
    }
    v.to_string()
}

pub fn anthropic_msg(stream: bool, max_tokens: u32) -> String {
    serde_json::json!({
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
    })
    .to_string()
}
