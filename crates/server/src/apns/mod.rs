//! The APNs provider: wakes Macs over HTTP/2 with the MDM push certificate as TLS client certificate.
//!
//! One multiplexed HTTP/2 connection is opened on first use and reused by every push (reopened when APNs
//! closes it); at most `concurrency` requests are in flight at once across all callers (a fair semaphore, so a
//! bulk push to a fleet is paced instead of fired at once). Each push is `POST /3/device/<hex token>` with
//! `apns-push-type: mdm`, `apns-topic`, `apns-priority: 10`, `apns-expiration` and the body exactly
//! `{"mdm":"<PushMagic>"}`. 429, 500, 503, timeouts and connection errors are retried with exponential
//! backoff up to `max_attempts`; any other answer is final. APNs' `{"reason": …}` is surfaced per device
//! (`PushResult::apns_reason`), and the service marks tokens APNs refuses.
//!
//! Guarantees: the server certificate is verified (system roots, or the CA given with `--apns-ca`); the push
//! certificate's key is only handed to rustls, never logged or put in an error; a hostile APNs answer (huge
//! body, odd reason text) cannot inflate memory or inject text into results.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use service::MdmService;
use service::push::{PushResult, PushTarget, Pusher};
use service::push_cert::PushCertificateInfo;
use tokio::sync::{Mutex, Semaphore};
use vault::Secret;

/// Apple's production APNs endpoint (MDM push certificates from the portal are production-only).
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Largest APNs answer body read; APNs error bodies are tiny JSON objects.
const MAX_ANSWER_BODY: usize = 4096;
/// Where CA bundles live on common systems (after `SSL_CERT_FILE`).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// How to reach APNs and how hard to push.
#[derive(Debug, Clone)]
pub struct ApnsSettings {
    /// `https://host[:port]`, no path.
    pub url: String,
    /// Most requests in flight at once (all callers together).
    pub concurrency: usize,
    /// Attempts per push (first try included) for retryable failures.
    pub max_attempts: u32,
    /// Backoff after the first failed attempt; doubles each time up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// `apns-expiration`: APNs keeps an undeliverable push this long.
    pub expiration: Duration,
    /// Per request (connect included).
    pub request_timeout: Duration,
    /// Trust only these CA certificates (PEM) for the APNs server; None = the system's CA bundle.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for ApnsSettings {
    fn default() -> Self {
        ApnsSettings {
            url: PRODUCTION_URL.to_string(),
            concurrency: 64,
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            expiration: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }
}

/// The HTTP/2 APNs client. Cheap to share (`Arc`); see the module docs.
pub struct ApnsClient {
    settings: ApnsSettings,
    base: String,
    server_name: ServerName<'static>,
    address: String,
    tls: Arc<rustls::ClientConfig>,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
    limit: Semaphore,
    connections: AtomicU64,
}

impl std::fmt::Debug for ApnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsClient")
            .field("url", &self.base)
            .field("concurrency", &self.settings.concurrency)
            .finish_non_exhaustive()
    }
}

/// One attempt's outcome.
enum Attempt {
    /// Final, with its `crate::metrics::PUSH_TOTAL` outcome.
    Done(PushResult, &'static str),
    /// Worth another attempt: (message, APNs reason if any).
    Retry(String, Option<String>),
}

impl ApnsClient {
    /// A client for `settings` authenticating with the push certificate `cert_pem` (chain allowed) and its key.
    /// Fails (without echoing the key) on a bad URL, unusable certificate/key or missing CA bundle.
    pub fn new(
        settings: ApnsSettings,
        cert_pem: &[u8],
        key_pem: &Secret<Vec<u8>>,
    ) -> anyhow::Result<ApnsClient> {
        let (base, host, port) = parse_url(&settings.url)?;
        if settings.concurrency == 0 || settings.max_attempts == 0 {
            bail!("push concurrency and attempts must be at least 1");
        }
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| anyhow::anyhow!("the APNs URL's host {host:?} is not a valid name"))?;
        let mut roots = rustls::RootCertStore::empty();
        let (bundle, from) = match &settings.ca_pem {
            Some(pem) => (pem.clone(), "--apns-ca".to_string()),
            None => system_bundle()?,
        };
        for cert in CertificateDer::pem_slice_iter(&bundle) {
            let cert = cert.map_err(|e| anyhow::anyhow!("CA bundle {from}: {e}"))?;
            // A system bundle may hold a certificate webpki cannot use; skip it rather than fail.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            bail!("CA bundle {from} holds no usable CA certificate for verifying APNs");
        }
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| anyhow::anyhow!("the push certificate is not readable PEM"))?;
        if certs.is_empty() {
            bail!("the push certificate PEM holds no certificate");
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.expose()).map_err(|_| {
            anyhow::anyhow!("the push certificate's private key is not readable PEM")
        })?;
        let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| anyhow::anyhow!("the push certificate cannot be used for TLS: {e}"))?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ApnsClient {
            limit: Semaphore::new(settings.concurrency),
            settings,
            base,
            server_name,
            address: format!("{host}:{port}"),
            tls: Arc::new(tls),
            conn: Mutex::new(None),
            connections: AtomicU64::new(0),
        })
    }

    /// How many connections this client has opened (1 while APNs keeps the first one open).
    pub fn connections_opened(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The shared HTTP/2 sender, connecting if there is none or APNs closed it.
    async fn sender(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let mut cached = self.conn.lock().await;
        if let Some(s) = cached.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        *cached = None;
        let tcp = tokio::net::TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("cannot connect to APNs at {}", self.address))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .with_context(|| format!("TLS with APNs at {} failed", self.address))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("APNs at {} did not agree to HTTP/2", self.address);
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(tls))
            .await
            .context("HTTP/2 handshake with APNs failed")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "APNs connection ended");
            }
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(address = %self.address, "APNs connection opened");
        *cached = Some(sender.clone());
        Ok(sender)
    }

    /// Forget the cached connection (after a transport failure) so the next attempt opens a new one.
    async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    fn request(&self, target: &PushTarget) -> Result<Request<Full<Bytes>>, String> {
        if target.token.is_empty() || target.token.len() > 100 {
            return Err("the device's push token is empty or too long".into());
        }
        let topic = HeaderValue::from_str(&target.topic)
            .map_err(|_| "the enrollment's push topic is not a valid header value".to_string())?;
        let body = serde_json::to_vec(&serde_json::json!({ "mdm": target.push_magic }))
            .map_err(|_| "the push magic cannot be encoded".to_string())?;
        let uri: Uri = format!("{}/3/device/{}", self.base, hex(&target.token))
            .parse()
            .map_err(|_| "the APNs request URI is invalid".to_string())?;
        let expiration = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.settings.expiration)
            .as_secs();
        Request::post(uri)
            .header("apns-push-type", "mdm")
            .header("apns-topic", topic)
            .header("apns-priority", "10")
            .header("apns-expiration", expiration.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "the APNs request cannot be built".to_string())
    }

    async fn attempt(&self, target: &PushTarget) -> Attempt {
        let request = match self.request(target) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Done(
                    PushResult::failed(target.enrollment_id.clone(), e),
                    "failed",
                );
            }
        };
        let _permit = match self.limit.acquire().await {
            Ok(p) => p,
            Err(_) => {
                return Attempt::Done(
                    PushResult::failed(
                        target.enrollment_id.clone(),
                        "the push provider is shutting down",
                    ),
                    "failed",
                );
            }
        };
        let exchange = async {
            let mut sender = self.sender().await?;
            sender.ready().await.context("the APNs connection closed")?;
            let answer = sender
                .send_request(request)
                .await
                .context("the APNs request failed")?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            anyhow::Ok((parts, body))
        };
        let (parts, body) =
            match tokio::time::timeout(self.settings.request_timeout, exchange).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    self.reset().await;
                    return Attempt::Retry(format!("{e:#}"), None);
                }
                Err(_) => {
                    self.reset().await;
                    return Attempt::Retry(
                        format!(
                            "APNs did not answer within {} s",
                            self.settings.request_timeout.as_secs()
                        ),
                        None,
                    );
                }
            };
        let status = parts.status;
        if status == StatusCode::OK {
            let id = parts
                .headers
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 64)
                .map(str::to_string);
            return Attempt::Done(PushResult::sent(target.enrollment_id.clone(), id), "sent");
        }
        let reason = apns_reason(&body);
        let message = format!(
            "APNs answered {} {}",
            status.as_u16(),
            reason.as_deref().unwrap_or("(no readable reason)")
        );
        if matches!(status.as_u16(), 429 | 500 | 503) {
            return Attempt::Retry(message, reason);
        }
        Attempt::Done(
            PushResult {
                enrollment_id: target.enrollment_id.clone(),
                id: None,
                error: Some(message),
                apns_reason: reason,
            },
            "rejected",
        )
    }

    /// One push with retries, counted by its final outcome (`crate::metrics::PUSH_TOTAL`): `sent`,
    /// `rejected` (APNs refused it for good), `gave_up` (retries used up) or `failed` (never reached APNs).
    async fn push_one(&self, target: &PushTarget) -> PushResult {
        let mut backoff = self.settings.initial_backoff;
        let mut attempt = 1;
        loop {
            match self.attempt(target).await {
                Attempt::Done(result, outcome) => {
                    crate::metrics::push(outcome);
                    return result;
                }
                Attempt::Retry(message, reason) if attempt >= self.settings.max_attempts => {
                    crate::metrics::push("gave_up");
                    return PushResult {
                        enrollment_id: target.enrollment_id.clone(),
                        id: None,
                        error: Some(format!("{message} (gave up after {attempt} attempts)")),
                        apns_reason: reason,
                    };
                }
                Attempt::Retry(message, _) => {
                    crate::metrics::push_retry();
                    tracing::debug!(enrollment = %target.enrollment_id, attempt, %message, "push failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Pusher for ApnsClient {
    async fn push(&self, targets: &[PushTarget]) -> Vec<PushResult> {
        futures_util::future::join_all(targets.iter().map(|t| self.push_one(t))).await
    }
}

/// Lowercase hex of a device token.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// APNs' `reason` from an error body, only if it looks like one (letters, at most 64).
fn apns_reason(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        reason: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let ok = !parsed.reason.is_empty()
        && parsed.reason.len() <= 64
        && parsed.reason.bytes().all(|b| b.is_ascii_alphabetic());
    ok.then_some(parsed.reason)
}

/// (base `https://host:port`, host, port) from an APNs URL; only `https://host[:port][/]`.
fn parse_url(url: &str) -> anyhow::Result<(String, String, u16)> {
    let bad = || {
        anyhow::anyhow!(
            "the APNs URL must look like https://api.push.apple.com or https://host:port, got {url:?}"
        )
    };
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") || !matches!(uri.path(), "" | "/") || uri.query().is_some()
    {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(bad());
    }
    let port = authority.port_u16().unwrap_or(443);
    Ok((format!("https://{authority}"), host, port))
}

/// The system CA bundle: `SSL_CERT_FILE`, else the first of the usual paths.
fn system_bundle() -> anyhow::Result<(Vec<u8>, String)> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(p) = std::env::var_os("SSL_CERT_FILE") {
        candidates.push(p.to_string_lossy().into_owned());
    }
    candidates.extend(SYSTEM_BUNDLES.iter().map(|s| s.to_string()));
    for path in &candidates {
        if let Ok(pem) = std::fs::read(path) {
            return Ok((pem, path.clone()));
        }
    }
    bail!(
        "no system CA bundle found (tried {}) to verify APNs: install ca-certificates, set SSL_CERT_FILE or \
pass --apns-ca",
        candidates.join(", ")
    )
}

/// Build the APNs provider from the stored push certificate and install it in `mdm` (replacing any previous
/// one). Logs a warning when the certificate expires soon. Returns the certificate's description, or None
/// (and removes the provider) when no push certificate is stored.
pub async fn install(
    mdm: &MdmService,
    settings: &ApnsSettings,
) -> anyhow::Result<Option<PushCertificateInfo>> {
    let Some(identity) = mdm.push_identity().await? else {
        mdm.set_pusher(None);
        return Ok(None);
    };
    let client = ApnsClient::new(settings.clone(), &identity.cert_pem, &identity.key_pem)?;
    mdm.set_pusher(Some(Arc::new(client)));
    warn_if_expiring(&identity.info);
    tracing::info!(topic = %identity.info.topic, url = %settings.url, "APNs push provider ready");
    Ok(Some(identity.info))
}

/// Log the certificate's expiry warning, if it has one.
pub fn warn_if_expiring(info: &PushCertificateInfo) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    if let Some(warning) = info.expiry_warning(now) {
        tracing::warn!(topic = %info.topic, "{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse_url("https://api.push.apple.com").unwrap(),
            (
                "https://api.push.apple.com".into(),
                "api.push.apple.com".into(),
                443
            )
        );
        assert_eq!(
            parse_url("https://127.0.0.1:2197/").unwrap(),
            ("https://127.0.0.1:2197".into(), "127.0.0.1".into(), 2197)
        );
        for bad in [
            "http://api.push.apple.com",
            "api.push.apple.com",
            "https://api.push.apple.com/3/device",
            "https://user:pw@api.push.apple.com",
            "https://api.push.apple.com?x=1",
            "",
        ] {
            let err = parse_url(bad).unwrap_err().to_string();
            assert!(err.contains("APNs URL"), "{bad}: {err}");
            assert!(!err.contains("pw@") || bad.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn only_plain_reasons_are_taken_from_error_bodies() {
        assert_eq!(
            apns_reason(br#"{"reason":"Unregistered","timestamp":1700000000000}"#).as_deref(),
            Some("Unregistered")
        );
        assert_eq!(
            apns_reason(br#"{"reason":"BadDeviceToken"}"#).as_deref(),
            Some("BadDeviceToken")
        );
        for hostile in [
            &br#"{"reason":"Bad\nDeviceToken"}"#[..],
            br#"{"reason":""}"#,
            br#"{"reason":42}"#,
            br#"not json"#,
            b"",
        ] {
            assert_eq!(
                apns_reason(hostile),
                None,
                "{}",
                String::from_utf8_lossy(hostile)
            );
        }
        let long = format!(r#"{{"reason":"{}"}}"#, "A".repeat(65));
        assert_eq!(apns_reason(long.as_bytes()), None);
    }

    #[test]
    fn tokens_are_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0xff, 0x10]), "00abff10");
    }

    #[test]
    fn a_bad_key_or_certificate_is_refused_without_echoing_the_key() {
        let ca = pki::ca::CertificateAuthority::generate("test").unwrap();
        let ca_pem = ca.cert_pem().unwrap();
        let settings = ApnsSettings {
            ca_pem: Some(ca_pem.clone()),
            ..Default::default()
        };
        let key = Secret::new(
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n".to_vec(),
        );
        let err = ApnsClient::new(settings.clone(), &ca_pem, &key)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let err = ApnsClient::new(settings.clone(), b"nope", &ca.key_pem().unwrap()).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        let err = ApnsClient::new(
            ApnsSettings {
                concurrency: 0,
                ..settings
            },
            &ca_pem,
            &ca.key_pem().unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
