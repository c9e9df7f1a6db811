//! A small HTTP(S) client for the admin API over `reqwest`: HTTP/1.1, no proxies, no redirects, rustls (ring,
//! the server's own provider) for `https://` with the system-independent roots given by `--ca-cert` (the
//! server's data-dir `tls.pem` for its self-signed certificate). Verification is never switched off.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use zeroize::Zeroizing;

/// A request body holding passwords: handed to the HTTP stack without a copy of ours (a `Bytes` that owns
/// the zeroizing buffer) and wiped when the last reference to it drops. What the HTTP stack and rustls copy
/// into their own buffers on the way out is beyond our reach.
pub struct SecretBody {
    bytes: Zeroizing<Vec<u8>>,
}

impl SecretBody {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBody { bytes }
    }

    /// The body as `Bytes` owning the zeroizing buffer (no copy).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self.bytes)
    }
}

/// Where the server is and how to prove who we are.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the escrowd server's admin listener (`escrowd serve --admin-listen`, not the Macs'
    /// --listen address).
    #[arg(long, env = "ESCROWD_SERVER", default_value = "https://127.0.0.1:8444")]
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
        let mut resp = self.request("GET", path, Bytes::new()).await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refusal(&collect(resp).await?));
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .context("the server's answer broke off before its end")?
        {
            sink(&chunk)?;
        }
        Ok(())
    }

    /// One request with a body (plain bytes or a [`SecretBody`]'s).
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<reqwest::Response> {
        let Some(key) = &self.api_key else {
            bail!(
                "no API key: pass --api-key or set ESCROWD_API_KEY (make one with `escrowd apikey create --scope read`)"
            );
        };
        let tls = if self.server.starts_with("https://") {
            true
        } else if self.server.starts_with("http://") {
            false
        } else {
            bail!(
                "--server must start with https:// or http://, got {:?}",
                self.server
            );
        };
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        // reqwest has no crypto provider of its own: it always gets this config (for plain http it trusts
        // nothing and is never used).
        let roots = if tls {
            self.roots()?
        } else {
            rustls::RootCertStore::empty()
        };
        let config = rustls::ClientConfig::builder_with_provider(server::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .tls_backend_preconfigured(config);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("{method:?} is not an HTTP method"))?;
        client
            .build()
            .context("cannot set up the HTTP client")?
            .request(method, url)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreached(e))
    }

    /// Why the server could not be reached, and what to do about it.
    fn unreached(&self, e: reqwest::Error) -> anyhow::Error {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.downcast_ref::<rustls::Error>().is_some() {
                return anyhow::Error::new(e).context(format!(
                    "TLS to {} failed: for the server's self-signed certificate pass --ca-cert DATA_DIR/tls.pem",
                    self.server
                ));
            }
            source = s.source();
        }
        if e.is_connect() {
            return anyhow::Error::new(e).context(format!(
                "cannot reach {}: is `escrowd serve` running there?",
                self.server
            ));
        }
        anyhow::Error::new(e).context(format!("request to {} failed", self.server))
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
        let body = SecretBody::new(body).into_bytes();
        let a = collect(self.request(method, path, body).await?).await?;
        if !(200..300).contains(&a.status) {
            return Err(refusal(&a));
        }
        Ok(a)
    }
}

/// The whole answer body.
async fn collect(resp: reqwest::Response) -> anyhow::Result<Answer> {
    let status = resp.status().as_u16();
    let body = resp.bytes().await?.to_vec();
    Ok(Answer { status, body })
}

/// A non-2xx answer as an error: the server's message and what to do for 401/403.
fn refusal(a: &Answer) -> anyhow::Error {
    let msg = serde_json::from_slice::<apitypes::ErrorAnswer>(&a.body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&a.body).into_owned());
    let hint = match a.status {
        401 => " (check --api-key / ESCROWD_API_KEY)",
        403 => " (this key's scope is too small: make one with a larger --scope)",
        _ => "",
    };
    anyhow::anyhow!("server answered {}: {msg}{hint}", a.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_body_hands_out_its_bytes_without_a_copy() {
        let buf = Zeroizing::new(b"{\"pw\":\"x\"}".to_vec());
        let at = buf.as_ptr();
        let bytes = SecretBody::new(buf).into_bytes();
        assert_eq!(&bytes[..], b"{\"pw\":\"x\"}");
        assert_eq!(
            bytes.as_ptr(),
            at,
            "the zeroizing buffer itself, not a copy"
        );
    }
}
