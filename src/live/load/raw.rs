//! A minimal HTTP/1.1 client connection for closed-loop users: one request at a time on
//! one keep-alive socket, the request written in a single `write`, the response head parsed
//! with `httparse`, the body read as content-length or chunked. It does what wrk does and
//! no more, so the generator's own CPU cost stays small next to the system under test.
//! Open-loop runs use hyper's pooled client.

use crate::live::http1::{bad, cut, Decoder};
use crate::provider::mark;
use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The parts of a response head the load client needs.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// The provider a response header names ([`mark::HEADERS`]), if one does.
    pub provider: Option<String>,
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read and not yet consumed: pieces are split off its front without copying.
    buf: BytesMut,
    /// The body being read (the decoder the reference gateway's client and server use).
    body: Decoder,
    keep_alive: bool,
}

impl RawConn {
    /// Connects with TCP_NODELAY.
    pub async fn connect(authority: &str) -> io::Result<RawConn> {
        let stream = TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::with_capacity(16384),
            body: Decoder::done(),
            keep_alive: true,
        })
    }

    /// Whether another request may follow on this connection.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.body.is_done()
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16384);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Sends one request (`head` ends with the blank line) and reads the response head.
    pub async fn send(&mut self, head: &[u8], body: &[u8]) -> io::Result<Head> {
        let mut out = Vec::with_capacity(head.len() + body.len());
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        self.stream.write_all(&out).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf).map_err(|e| bad(&e.to_string()))? {
                httparse::Status::Complete(n) => {
                    let status = resp.code.unwrap_or(0);
                    let mut provider = None;
                    let mut provider_rank = usize::MAX;
                    let mut length = None;
                    let mut chunked = false;
                    self.keep_alive = true;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<u64>().ok());
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            self.keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                        } else if let Some(r) = mark::header_rank(h.name) {
                            if r < provider_rank {
                                if let Some(p) = mark::from_header(h.value) {
                                    (provider, provider_rank) = (Some(p), r);
                                }
                            }
                        }
                    }
                    let _ = self.buf.split_to(n);
                    self.body = if chunked {
                        Decoder::chunked()
                    } else if let Some(l) = length {
                        Decoder::length(l)
                    } else {
                        self.keep_alive = false;
                        Decoder::until_close()
                    };
                    return Ok(Head { status, provider });
                }
                httparse::Status::Partial => {
                    if self.buf.len() > 64 * 1024 {
                        return Err(bad("response head larger than 64 KiB"));
                    }
                    if self.fill().await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed before the response head",
                        ));
                    }
                }
            }
        }
    }

    /// The body decoded from what has arrived (every chunk that came in one read, as one
    /// piece), `None` at its proper end. An EOF before that is an `UnexpectedEof` error (a
    /// cut body).
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(piece) = self.body.decode(&mut self.buf)? {
                return Ok(Some(piece));
            }
            if self.body.is_done() {
                return Ok(None);
            }
            if self.fill().await? == 0 {
                if self.body.is_until_close() {
                    self.body.finish();
                    return Ok(None);
                }
                return Err(cut("body cut short"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve_once(reply: &'static [u8]) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b).await;
            for piece in reply.chunks(7) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        addr
    }

    async fn body(c: &mut RawConn) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = c.next().await? {
            out.extend_from_slice(&p);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn chunked_length_and_cut() {
        let a = serve_once(b"HTTP/1.1 200 OK\r\nx-chaosgate-provider: p\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").await;
        let mut c = RawConn::connect(&a).await.unwrap();
        let h = c.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", b"").await.unwrap();
        assert_eq!((h.status, h.provider.as_deref()), (200, Some("p")));
        assert_eq!(body(&mut c).await.unwrap(), b"hello world");
        assert!(c.reusable());
        let a = serve_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy").await;
        let mut c = RawConn::connect(&a).await.unwrap();
        assert_eq!(c.send(b"GET / HTTP/1.1\r\n\r\n", b"").await.unwrap().status, 503);
        assert_eq!(body(&mut c).await.unwrap(), b"busy");
        let a = serve_once(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel").await;
        let mut c = RawConn::connect(&a).await.unwrap();
        c.send(b"GET / HTTP/1.1\r\n\r\n", b"").await.unwrap();
        assert_eq!(body(&mut c).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(!c.reusable());
    }

    /// Chunks that arrived in one read come out as one piece; the body's end, sent later,
    /// is read after them.
    #[tokio::test]
    async fn chunks_that_arrived_together_come_out_as_one_piece() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap().to_string();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n1\r\nf\r\n")
                .await
                .unwrap();
            let _ = wait.await; // the end only when the client has taken the three
            s.write_all(b"0\r\n\r\n").await.unwrap();
        });
        let mut c = RawConn::connect(&a).await.unwrap();
        c.send(b"GET / HTTP/1.1\r\n\r\n", b"").await.unwrap();
        let first = c.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"abcdef");
        assert!(!c.reusable());
        go.send(()).unwrap();
        assert!(c.next().await.unwrap().is_none());
        assert!(c.reusable());
    }

    #[tokio::test]
    async fn provider_from_our_header_before_litellms_copy() {
        let heads: [(&[u8], Option<&str>); 4] = [
            (b"llm_provider-x-chaosgate-provider: q\r\n", Some("q")),
            (
                b"llm_provider-x-chaosgate-provider: q\r\nX-Chaosgate-Provider: p\r\n",
                Some("p"),
            ),
            (
                b"x-chaosgate-provider: p\r\nllm_provider-x-chaosgate-provider: q\r\n",
                Some("p"),
            ),
            (
                b"x-chaosgate-provider: \r\nllm_provider-x-chaosgate-provider: q\r\n",
                Some("q"),
            ),
        ];
        for (h, want) in heads {
            let resp: &'static [u8] = [b"HTTP/1.1 200 OK\r\n" as &[u8], h, b"content-length: 2\r\n\r\nok"]
                .concat()
                .leak();
            let a = serve_once(resp).await;
            let mut c = RawConn::connect(&a).await.unwrap();
            let got = c.send(b"GET / HTTP/1.1\r\n\r\n", b"").await.unwrap();
            assert_eq!(got.provider.as_deref(), want, "{}", String::from_utf8_lossy(h));
        }
    }
}
