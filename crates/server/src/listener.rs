//! The accept loop: plain HTTP or TLS, HTTP/1.1 and HTTP/2, with the TLS client certificate handed to
//! handlers as a request extension, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::watch;
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

/// Serve `router` on `listener` until `shutdown` turns true, then let open connections finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let svc = with_peer(
                        router,
                        PeerCertificate(None),
                        PeerAddr {
                            addr: peer,
                            tls: false,
                        },
                    );
                    let conn = Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
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
                    let svc = with_peer(
                        router,
                        PeerCertificate(cert),
                        PeerAddr {
                            addr: peer,
                            tls: true,
                        },
                    );
                    let conn = Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

fn with_peer(
    router: Router,
    peer: PeerCertificate,
    addr: PeerAddr,
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
        router.clone().oneshot(req)
    })
}

/// Bind a listener, with a message that says what to do when the port is taken.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (is another escrowd running? choose another port with --listen)")
    })
}
