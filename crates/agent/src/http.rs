//! The agent's blocking HTTP(S) client: `ureq` over rustls (ring, the workspace's one crypto provider). For
//! https it trusts only the `--ca-cert` PEM it is given (the server's certificate or its CA), never the
//! system's or a bundled root list, and verification is never switched off. One request per connection (no
//! pool: the agent sleeps minutes between cycles), no redirects, no proxies, answers capped at
//! [`MAX_RESPONSE`] bytes, and a whole-call timeout ([`Http::timeout`], raised by the caller for long polls).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::client::ClientError;

/// Largest response body the agent reads.
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Where the agent talks to: base URL and, for https, the trusted roots.
#[derive(Clone)]
pub struct Http {
    base: String,
    https: bool,
    agent: ureq::Agent,
    pub timeout: Duration,
}

/// Checks a server URL up front, so a typo is a configuration error rather than a connection failure; true
/// for https.
fn parse_url(url: &str) -> Result<bool, ClientError> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(ClientError::Config(format!(
            "server URL {url:?} must start with https:// or http://"
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            p.parse::<u16>()
                .map_err(|_| ClientError::Config(format!("server URL {url:?} has a bad port")))?;
            h.trim_start_matches('[').trim_end_matches(']')
        }
        _ => authority,
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(ClientError::Config(format!(
            "server URL {url:?} has no usable host"
        )));
    }
    Ok(https)
}

/// The roots of `--ca-cert`: every certificate in the PEM file, at least one.
fn roots(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, ClientError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClientError::Config(format!("reading --ca-cert {}: {e}", path.display())))?;
    let mut roots = Vec::new();
    for cert in certs {
        let cert = cert.map_err(|e| {
            ClientError::Config(format!("--ca-cert {} is not PEM: {e}", path.display()))
        })?;
        // Refuse what rustls would not take as a trust anchor now, not at the first request.
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| ClientError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        roots.push(ureq::tls::Certificate::from_der(&cert).to_owned());
    }
    if roots.is_empty() {
        return Err(ClientError::Config(format!(
            "--ca-cert {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

impl Http {
    /// `ca_cert` (PEM) is required for https: the agent trusts only what it is told to.
    pub fn new(base: &str, ca_cert: Option<&Path>) -> Result<Self, ClientError> {
        let https = parse_url(base)?;
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if https {
            let path = ca_cert.ok_or_else(|| {
                ClientError::Config(
                    "https needs --ca-cert PEM (the server's certificate or its CA, e.g. DATA_DIR/tls.pem)"
                        .into(),
                )
            })?;
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots(path)?)));
        } else {
            // Never used for plain http; an empty trust list rather than a bundled one.
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(Vec::new())));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(format!("escrow-agent/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Http {
            base: base.trim_end_matches('/').to_string(),
            https,
            agent,
            timeout: Duration::from_secs(30),
        })
    }

    /// One HTTP/1.1 request on its own connection. Returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            if v.contains(['\r', '\n']) {
                return Err(ClientError::Protocol(format!(
                    "header {k} has a line break"
                )));
            }
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Protocol(format!("cannot build the request: {e}")))?;
        let req = self
            .agent
            .configure_request(req)
            .timeout_global(Some(self.timeout))
            .build();
        let mut resp = self.agent.run(req).map_err(|e| self.classify(e))?;
        let status = resp.status().as_u16();
        let answer = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE as u64)
            .read_to_vec()
            .map_err(|e| self.classify(e))?;
        Ok((status, answer))
    }

    /// A malformed answer is a protocol error; anything else (refused, timed out, TLS, cut off, too large)
    /// means the server could not be reached properly.
    fn classify(&self, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Protocol(p) => {
                ClientError::Protocol(format!("malformed HTTP response: {p}"))
            }
            ureq::Error::BodyExceedsLimit(_) => self.connect_err("response too large".into()),
            e => {
                let hint = if self.https {
                    " (for a self-signed server certificate pass --ca-cert)"
                } else {
                    ""
                };
                self.connect_err(format!("{e}{hint}"))
            }
        }
    }

    fn connect_err(&self, detail: String) -> ClientError {
        ClientError::Connect {
            url: self.base.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn urls_parse_and_bad_ones_are_refused() {
        assert!(parse_url("https://mdm.example:8443/base/").unwrap());
        assert!(!parse_url("http://127.0.0.1").unwrap());
        assert!(!parse_url("http://[::1]:8080").unwrap());
        for bad in [
            "ftp://x",
            "mdm.example",
            "http://",
            "http://h:port",
            "http://u@h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(Http::new("https://x", None).is_err());
    }

    /// A one-shot server on 127.0.0.1 answering each connection with `raw`.
    fn serve(raw: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(raw);
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn responses_parse_and_hostile_ones_are_refused() {
        let get = |raw: &'static [u8]| {
            Http::new(&serve(raw), None)
                .unwrap()
                .request("GET", "/x", &[], b"")
        };
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra").unwrap(),
            (200, b"{}".to_vec())
        );
        assert_eq!(
            get(b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
                .unwrap(),
            (201, b"{}".to_vec())
        );
        for bad in [
            &b"garbage"[..],
            b"HTTP/1.1 xx\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\nab\r\n",
        ] {
            assert!(get(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
                MAX_RESPONSE + 1,
                "x".repeat(MAX_RESPONSE + 1)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        assert!(get(big).is_err(), "answers are capped");
        assert!(
            Http::new("http://127.0.0.1:9", None)
                .unwrap()
                .request("GET", "/", &[("x", "a\r\nb".into())], b"")
                .is_err(),
            "no header smuggling"
        );
    }
}
