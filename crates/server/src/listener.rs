//! The accept loop: plain HTTP or TLS, HTTP/1.1 and HTTP/2, with the TLS client certificate and the peer
//! address handed to handlers as request extensions, and graceful shutdown.
//!
//! Guarantees (see [`Limits`]): at most `max_connections` connections are open (one more is answered 503 on
//! plain HTTP, or closed, at once); a connection that does not finish a request header within
//! `header_read_timeout` of its first byte (or of connecting) is closed, and so is one that sits idle (no
//! request in flight, nothing sent or received) for `idle_timeout`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

/// The DER client certificate from the TLS handshake, if the device presented one.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Option<Vec<u8>>);

/// The TCP peer of the connection a request came on (the proxy, behind one), and whether it came over TLS.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl PeerAddr {
    /// Who a refusal is counted against (`service::edge`); `unknown` without a peer (a request that did not
    /// come through the listener).
    pub fn source(peer: Option<&PeerAddr>) -> service::edge::Source {
        service::edge::Source::from_ip(peer.map(|p| p.addr.ip()))
    }
}

/// Limits on what a client may hold: how long it may take to send a request's header, how long a
/// connection may sit idle between requests, how many connections may be open at once, and how many requests
/// with a large body (over [`LARGE_BODY_BYTES`]) may be read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// From the first byte of a request (or from connecting) to the end of its header.
    pub header_read_timeout: Duration,
    /// With no request in flight and nothing sent or received.
    pub idle_timeout: Duration,
    /// Open connections; one more is answered 503 (plain HTTP) or closed (TLS) right away.
    pub max_connections: usize,
    /// Requests with a large body read at once; one more gets 503 with Retry-After.
    pub max_large_body_parses: usize,
}

/// A body over this many bytes (or of unknown length) counts as large.
pub const LARGE_BODY_BYTES: u64 = 256 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_large_body_parses: 16,
        }
    }
}

/// What a connection has been doing, for its timeouts. Times are milliseconds since it was accepted.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
    /// When the current request's header started to arrive (or the connection opened); NONE between
    /// requests and while one is being served.
    head_since_ms: AtomicU64,
    /// Wakes the watchdog when a request starts or ends, or a header starts to arrive.
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since_ms
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since_ms.store(NONE, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// Why the connection should be closed now, if it should; else when to look again.
    fn check(&self, limits: &Limits) -> Result<Instant, &'static str> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let now = self.now_ms();
        let at = |t: u64| self.start + Duration::from_millis(t);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Handlers bound their own work; look again when the request ends (or in a while).
            return Ok(at(now.saturating_add(ms(limits.idle_timeout))));
        }
        match self.head_since_ms.load(Ordering::Acquire) {
            NONE => {
                let due = self
                    .last_ms
                    .load(Ordering::Relaxed)
                    .saturating_add(ms(limits.idle_timeout));
                if now >= due {
                    Err("idle timeout")
                } else {
                    Ok(at(due))
                }
            }
            since => {
                let due = since.saturating_add(ms(limits.header_read_timeout));
                if now >= due {
                    Err("header read timeout")
                } else {
                    Ok(at(due))
                }
            }
        }
    }
}

/// The TCP stream, noting reads and writes for the connection's timeouts.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            self.activity.read(buf.filled().len() - before);
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.activity.wrote(*n);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            self.activity.wrote(*n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a plain-HTTP client over `max_connections` is told before the connection is closed.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 21\r\n\r\ntoo many connections\n";

/// Serve `router` on `listener` until `shutdown` turns true, then let open connections finish (up to 10 s).
/// Connections are held to `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: --max-connections reached");
            if acceptor.is_none() {
                // Best effort and never waiting: the answer fits any socket buffer.
                let _ = stream.try_write(OVER_CAPACITY);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let activity = Arc::new(Activity::new());
            let io = Watched {
                inner: stream,
                activity: activity.clone(),
            };
            match acceptor {
                None => {
                    let addr = PeerAddr {
                        addr: peer,
                        tls: false,
                    };
                    let svc = with_peer(router, PeerCertificate(None), addr, activity.clone());
                    run(TokioIo::new(io), svc, &activity, &limits, shutdown, peer).await;
                }
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    let addr = PeerAddr {
                        addr: peer,
                        tls: true,
                    };
                    let svc = with_peer(router, PeerCertificate(cert), addr, activity.clone());
                    run(TokioIo::new(tls), svc, &activity, &limits, shutdown, peer).await;
                }
            }
        });
    }
    drop(listener);
    // Every open connection holds a slot until it ends; they were all asked to finish.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

/// Serve one connection until it ends, its header or idle timeout passes (then it is dropped, which closes
/// it), or the server shuts down (then it is asked to finish gracefully).
async fn run<I, S>(
    io: I,
    svc: S,
    activity: &Activity,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, svc)
        .into_owned();
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        let next_check = match activity.check(limits) {
            Ok(at) => at,
            Err(why) => {
                tracing::debug!(%peer, why, "closing connection");
                return;
            }
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(next_check.into()) => {}
            _ = activity.changed.notified() => {}
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Ends a request's "in flight" when dropped (finished, failed or cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

fn with_peer(
    router: Router,
    peer: PeerCertificate,
    addr: PeerAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req.extensions_mut().insert(addr);
        activity.request_started();
        let in_flight = InFlight(activity.clone());
        let response = router.clone().oneshot(req);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    })
}

/// Bind a listener, with a message that says what to do when the port is taken: `flag` is the option that
/// chooses this address (`--listen` or `--admin-listen`).
pub async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} ({flag}): {e} (is another escrowd running? choose another port with {flag})")
    })
}
