//! The one HTTP client of the tests and benchmarks: `reqwest`, plain HTTP/1.1 to the in-process server (as a
//! Mac behind a TLS-terminating proxy would reach it), no proxies, no redirects. reqwest is built with rustls
//! but without a crypto provider of its own, so even a plain-HTTP client is handed a ring config (the
//! workspace's one provider) with no trusted roots: it never makes a TLS connection.

use std::sync::Arc;

use crate::device::Reply;

pub use reqwest::{Client, Method, RequestBuilder};

/// A plain-HTTP client; cheap to clone (clones share one connection pool).
pub fn client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    tls_client(tls)
}

/// The same client over HTTPS with the caller's TLS configuration (its trusted roots, and a client
/// certificate when a test presents one to the TLS listener).
pub fn tls_client(tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .expect("an HTTP client builds")
}

/// Send `req` and read the whole answer.
pub async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await?.to_vec();
    Ok(Reply { status, body })
}
