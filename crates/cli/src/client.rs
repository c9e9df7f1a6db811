//! A small HTTP(S) client for the admin API: one request per connection, rustls (ring) for `https://` with
//! the system-independent roots given by `--ca-cert` (the server's data-dir `tls.pem` for its self-signed
//! certificate). Verification is never switched off.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Buf, Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use zeroize::Zeroizing;

/// A request body holding passwords: handed to hyper as is (no copy of ours) and wiped when hyper drops it.
/// What hyper and rustls copy into their own buffers on the way out is beyond our reach.
pub struct SecretBody {
    bytes: Zeroizing<Vec<u8>>,
    sent: usize,
}

impl SecretBody {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBody { bytes, sent: 0 }
    }
}

impl Buf for SecretBody {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining(), "advance past the end of the body");
        self.sent += cnt;
    }
}

/// Where the server is and how to prove who we are.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the escrowd server.
    #[arg(long, env = "ESCROWD_SERVER", default_value = "https://127.0.0.1:8443")]
    pub server: String,
    /// API key (make one with `escrowd apikey create`). Prefer the environment variable over the flag.
    #[arg(long, env = "ESCROWD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Trust this CA / certificate (PEM) for https, e.g. the server's DATA_DIR/tls.pem.
    #[arg(long, env = "ESCROWD_CA_CERT", value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the server's answer is not JSON")
    }
}

impl ServerArgs {
    /// One request; the whole answer body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        collect(
            self.request(method, path, Bytes::from(body.unwrap_or_default()))
                .await?,
        )
        .await
    }

    /// GET `path` and hand each piece of the answer body to `sink` as it arrives, so a large export never
    /// sits in memory. A non-2xx answer is an error carrying the server's message (nothing reaches `sink`).
    pub async fn stream(
        &self,
        path: &str,
        mut sink: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let resp = self.request("GET", path, Bytes::new()).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if !(200..300).contains(&status) {
            let body = body.collect().await?.to_bytes().to_vec();
            return Err(refusal(&Answer { status, body }));
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the server's answer broke off before its end")?;
            if let Some(data) = frame.data_ref() {
                sink(data)?;
            }
        }
        Ok(())
    }

    /// One request with a body of any buffer type (plain bytes or a [`SecretBody`]).
    async fn request<D>(
        &self,
        method: &str,
        path: &str,
        body: D,
    ) -> anyhow::Result<http::Response<Incoming>>
    where
        D: Buf + Send + 'static,
    {
        let Some(key) = &self.api_key else {
            bail!(
                "no API key: pass --api-key or set ESCROWD_API_KEY (make one with `escrowd apikey create --scope read`)"
            );
        };
        let (tls, rest) = if let Some(r) = self.server.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = self.server.strip_prefix("http://") {
            (false, r)
        } else {
            bail!(
                "--server must start with https:// or http://, got {:?}",
                self.server
            );
        };
        let authority = rest.trim_end_matches('/');
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .with_context(|| {
                format!(
                    "cannot reach {}: is `escrowd serve` running there?",
                    self.server
                )
            })?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let resp = if tls {
            let config = rustls::ClientConfig::builder_with_provider(server::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(self.roots()?)
                .with_no_client_auth();
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("{host:?} is not a valid server name"))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .with_context(|| {
                    format!(
                        "TLS to {} failed: for the server's self-signed certificate pass --ca-cert DATA_DIR/tls.pem",
                        self.server
                    )
                })?;
            send(TokioIo::new(stream), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        Ok(resp)
    }

    fn roots(&self) -> anyhow::Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        let Some(path) = &self.ca_cert else {
            bail!(
                "https needs --ca-cert PEM (the server's DATA_DIR/tls.pem for its self-signed certificate)"
            );
        };
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading --ca-cert {}", path.display()))?
        {
            roots.add(cert.with_context(|| format!("--ca-cert {} is not PEM", path.display()))?)?;
        }
        Ok(roots)
    }

    /// Call and turn a non-2xx answer into an error carrying the server's message.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let a = self
            .call(method, path, body.map(|b| b.to_string().into_bytes()))
            .await?;
        if !(200..300).contains(&a.status) {
            return Err(refusal(&a));
        }
        Ok(a)
    }

    /// [`ServerArgs::ok`] for a JSON body that holds passwords: sent from the zeroizing buffer it was
    /// serialized into, wiped afterwards.
    pub async fn ok_secret(
        &self,
        method: &str,
        path: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let a = collect(self.request(method, path, SecretBody::new(body)).await?).await?;
        if !(200..300).contains(&a.status) {
            return Err(refusal(&a));
        }
        Ok(a)
    }
}

/// The whole answer body.
async fn collect(resp: http::Response<Incoming>) -> anyhow::Result<Answer> {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok(Answer { status, body })
}

/// A non-2xx answer as an error: the server's message and what to do for 401/403.
fn refusal(a: &Answer) -> anyhow::Error {
    let msg = a
        .json()
        .ok()
        .and_then(|j| j["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&a.body).into_owned());
    let hint = match a.status {
        401 => " (check --api-key / ESCROWD_API_KEY)",
        403 => " (this key's scope is too small: make one with a larger --scope)",
        _ => "",
    };
    anyhow::anyhow!("server answered {}: {msg}{hint}", a.status)
}

async fn send<I, D>(io: I, req: http::Request<Full<D>>) -> anyhow::Result<http::Response<Incoming>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    D: Buf + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    Ok(sender.send_request(req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_body_hands_out_its_bytes_in_order_and_once() {
        let mut body = SecretBody::new(Zeroizing::new(b"{\"pw\":\"x\"}".to_vec()));
        assert_eq!(body.remaining(), 10);
        assert_eq!(body.chunk(), b"{\"pw\":\"x\"}");
        body.advance(6);
        assert_eq!(body.chunk(), b"\"x\"}");
        body.advance(4);
        assert_eq!((body.remaining(), body.chunk()), (0, &b""[..]));
    }
}
