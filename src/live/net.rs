//! The HTTP/1.1 server loop shared by the mock providers and the reference gateway.
//!
//! Why not `axum::serve`: it leaves TCP_NODELAY off (Nagle plus delayed ACK then add
//! ≈40 ms to every streamed response) and it cannot reset a connection from a handler. Here
//! every accepted socket gets TCP_NODELAY, and each request carries a [`ConnCtx`] with the
//! peer address and a [`ConnCtx::reset`] switch: the connection task then sets SO_LINGER 0
//! and drops the socket, so the client sees a TCP RST — on a fresh or a reused keep-alive
//! connection alike (faults are per request, not per connection: docs/semantics.md §6).

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Per-connection context inserted into every request's extensions.
#[derive(Clone, Debug)]
pub struct ConnCtx {
    /// The client's address.
    pub peer: SocketAddr,
    reset: Arc<Notify>,
}

impl ConnCtx {
    /// Asks the connection task to reset (RST) this connection now.
    pub fn reset(&self) {
        self.reset.notify_one();
    }
}

/// A running server: its address and a way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// A handle on a server listening at `addr` whose accept loop is `task`, stopped
    /// through `stop`.
    pub(crate) fn new(addr: SocketAddr, stop: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) -> ServerHandle {
        ServerHandle { addr, stop, task }
    }

    /// Stops accepting, closes idle connections, waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr`, turning "address in use" and friends into a readable error.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// How long a request's body may take to arrive once its head has (the mock's and the
/// gateway's default): a client that sends its headers and then trickles or never sends
/// the body gets a 408 instead of holding a task forever.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit (the limit, in bytes).
    TooLarge(usize),
    /// Not read whole within the time limit.
    TimedOut(std::time::Duration),
    /// Broken framing, a connection cut mid-body and the like (what went wrong).
    Unreadable(String),
}

/// Reads a whole request body of at most `limit` bytes within `timeout`, telling the
/// length limit from a body that cannot be read (bad chunked framing, a cut connection)
/// and from one that does not arrive in time.
pub async fn read_body<B>(body: B, limit: usize, timeout: std::time::Duration) -> Result<bytes::Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// HTTP/1 parser limits of a server. A request over these never reaches the router: hyper
/// answers it with a bare 431/400 and closes, so a server that wants provider-shaped errors
/// checks its own, lower limits in the router and sets these higher.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParserLimits {
    /// Most header lines hyper parses (hyper's default: 100).
    pub max_headers: Option<usize>,
    /// Largest buffer hyper reads a request head into (hyper's default: about 400 KiB).
    pub max_buf_size: Option<usize>,
}

/// Serves `router` on `listener` until the handle is shut down.
pub fn spawn(listener: TcpListener, router: Router) -> anyhow::Result<ServerHandle> {
    spawn_with(listener, router, ParserLimits::default())
}

/// [`spawn`] with other parser limits.
pub fn spawn_with(listener: TcpListener, router: Router, limits: ParserLimits) -> anyhow::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(_) => {
                        // EMFILE and friends: back off briefly rather than spin.
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            let router = router.clone();
            let stopped = stopped.clone();
            tokio::spawn(serve_connection(stream, peer, router, stopped, limits));
        }
    });
    Ok(ServerHandle { addr, stop, task })
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stopped: watch::Receiver<bool>,
    limits: ParserLimits,
) {
    let _ = stream.set_nodelay(true);
    // A duplicate of the socket's descriptor, kept to set SO_LINGER 0 on a reset.
    let dup = stream.into_std().and_then(|s| {
        let d = s.try_clone();
        tokio::net::TcpStream::from_std(s).map(|s| (s, d))
    });
    let Ok((stream, dup)) = dup else { return };
    let reset = Arc::new(Notify::new());
    let ctx = ConnCtx {
        peer,
        reset: reset.clone(),
    };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ctx.clone());
        let r = router.clone();
        async move { Ok::<_, Infallible>(r.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    if let Some(n) = limits.max_headers {
        builder.max_headers(n);
    }
    if let Some(n) = limits.max_buf_size {
        builder.max_buf_size(n);
    }
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
    {
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = reset.notified() => {
                if let Ok(d) = &dup {
                    let _ = socket2::SockRef::from(d).set_linger(Some(std::time::Duration::ZERO));
                }
                // returning drops the connection: close with linger 0 = RST
            }
            r = stopped.changed() => {
                if r.is_ok() && *stopped.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
                // let in-flight responses finish, but do not wait on hung ones forever
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn.as_mut()).await;
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the gateway to take).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn request_body_that_never_arrives_times_out() {
        // a body that never yields a chunk: the read ends at the time limit
        let body =
            axum::body::Body::from_stream(futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>());
        let r = read_body(body, 1024, Duration::from_millis(50)).await;
        assert_eq!(r, Err(BodyError::TimedOut(Duration::from_millis(50))));
    }

    #[tokio::test]
    async fn unreadable_body_is_not_taken_for_too_large() {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"{")),
            Err(std::io::Error::other("bad chunk size")),
        ];
        let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        match read_body(body, 1024, Duration::from_secs(5)).await {
            Err(BodyError::Unreadable(m)) => assert!(m.contains("bad chunk size"), "{m}"),
            other => panic!("expected Unreadable, got {other:?}"),
        }
        let body = axum::body::Body::from(vec![b'x'; 2000]);
        assert_eq!(
            read_body(body, 1024, Duration::from_secs(5)).await,
            Err(BodyError::TooLarge(1024))
        );
        let body = axum::body::Body::from("{}");
        assert_eq!(
            read_body(body, 1024, Duration::from_secs(5)).await.unwrap().as_ref(),
            b"{}"
        );
    }
}
