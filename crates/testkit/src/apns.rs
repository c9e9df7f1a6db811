//! A local APNs stand-in: HTTP/2 over TLS (ALPN `h2` only) that REQUIRES a client certificate from a given CA,
//! checks each push the way Apple documents it and answers like APNs.
//!
//! Checked per request: `POST /3/device/<64 hex digits>` (else 405 MethodNotAllowed / 404 BadPath / 400
//! BadDeviceToken), `apns-push-type: mdm` (400 InvalidPushType), `apns-topic` present (400 MissingTopic) and
//! equal to the client certificate's UID (400 TopicDisallowed), `apns-priority` 5 or 10 (400 BadPriority),
//! `apns-expiration` a number (400 BadExpirationDate), body not empty (400 PayloadEmpty), at most 4096 bytes
//! (413 PayloadTooLarge) and byte-exactly `{"mdm":"<string>"}` (400 `BadMdmPayload`, a stand-in reason).
//! Every deviation is also kept in [`ApnsStandIn::violations`] so a test can assert there were none.
//!
//! A good push gets 200 with an `apns-id` (the client's, or a new UUID) and is recorded; answers can be
//! scripted per token ([`ApnsStandIn::script`]) to drive retries and errors. It counts TLS connections and the
//! most requests in flight at once, and can hold requests until N are in flight ([`ApnsStandIn::hold_until`])
//! so pacing is proven without timing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use openssl::x509::{X509, X509Name};
use pki::ca::CertificateAuthority;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::sync::Notify;

/// How the stand-in answers one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    BadDeviceToken,
    Unregistered,
    DeviceTokenNotForTopic,
    BadCertificate,
    TopicDisallowed,
    TooManyRequests,
    InternalServerError,
    ServiceUnavailable,
}

impl Answer {
    fn status_reason(self) -> (StatusCode, &'static str) {
        match self {
            Answer::Ok => (StatusCode::OK, ""),
            Answer::BadDeviceToken => (StatusCode::BAD_REQUEST, "BadDeviceToken"),
            Answer::Unregistered => (StatusCode::GONE, "Unregistered"),
            Answer::DeviceTokenNotForTopic => (StatusCode::BAD_REQUEST, "DeviceTokenNotForTopic"),
            Answer::BadCertificate => (StatusCode::FORBIDDEN, "BadCertificate"),
            Answer::TopicDisallowed => (StatusCode::BAD_REQUEST, "TopicDisallowed"),
            Answer::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            Answer::InternalServerError => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
            }
            Answer::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        }
    }
}

/// A push the stand-in accepted (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPush {
    /// The path's token, lowercase hex as sent.
    pub token_hex: String,
    pub topic: String,
    pub priority: Option<String>,
    pub expiration: Option<String>,
    pub body: Vec<u8>,
    pub apns_id: String,
}

#[derive(Default)]
struct Shared {
    scripts: Mutex<HashMap<String, VecDeque<Answer>>>,
    pushes: Mutex<Vec<RecordedPush>>,
    violations: Mutex<Vec<String>>,
    requests: AtomicU64,
    connections: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    hold_until: AtomicUsize,
    changed: Notify,
    delay_ms: AtomicU64,
}

/// A running stand-in on 127.0.0.1. Stops when dropped.
pub struct ApnsStandIn {
    /// `https://127.0.0.1:<port>`, for `ApnsSettings::url`.
    pub url: String,
    /// The stand-in's (self-signed) server certificate, for `ApnsSettings::ca_pem`.
    pub server_ca_pem: Vec<u8>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApnsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApnsStandIn {
    /// Start, accepting only client certificates issued by `client_ca_pem`.
    pub async fn start(client_ca_pem: &[u8]) -> anyhow::Result<ApnsStandIn> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_ca_pem) {
            roots.add(cert?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()?;
        let (cert_pem, key_pem) =
            pki::ca::self_signed_tls_certificate(&["localhost", "127.0.0.1"], 2)?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.expose())?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        Ok(ApnsStandIn {
            url: format!("https://{addr}"),
            server_ca_pem: cert_pem,
            shared,
            task,
        })
    }

    /// Answer the next pushes to `token_hex` with `answers`, in order; afterwards 200 again.
    pub fn script(&self, token_hex: &str, answers: impl IntoIterator<Item = Answer>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .entry(token_hex.to_ascii_lowercase())
            .or_default()
            .extend(answers);
    }

    /// Accepted pushes, in arrival order.
    pub fn pushes(&self) -> Vec<RecordedPush> {
        self.shared.pushes.lock().unwrap().clone()
    }

    /// Deviations from what APNs expects, in arrival order (empty for a well-behaved provider).
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }

    /// Requests received (any answer).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TLS connections completed.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Hold every request until `n` are in flight at once (then let all through, and stop holding); a
    /// safety valve lets them through after 10 s and records a violation. 0 turns holding off.
    pub fn hold_until(&self, n: usize) {
        self.shared.hold_until.store(n, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }

    /// Answer every request only after this delay (simulates network latency).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let (_, conn) = tls.get_ref();
            if conn.alpn_protocol() != Some(b"h2") {
                shared
                    .violations
                    .lock()
                    .unwrap()
                    .push("a client connected without negotiating h2".into());
                return;
            }
            let uid = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| X509::from_der(c.as_ref()).ok())
                .and_then(|c| {
                    c.subject_name()
                        .entries_by_nid(Nid::USERID)
                        .next()
                        .and_then(|e| e.data().to_string().ok())
                });
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let uid = uid.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(handle(req, &shared, uid.as_deref()).await)
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    uid: Option<&str>,
) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(shared);
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    shared.changed.notify_waiters();
    hold(shared).await;
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match check(req, uid).await {
        Err((status, reason, why)) => {
            shared.violations.lock().unwrap().push(why);
            error(status, reason)
        }
        Ok(push) => {
            let scripted = shared
                .scripts
                .lock()
                .unwrap()
                .get_mut(&push.token_hex)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Answer::Ok);
            let (status, reason) = scripted.status_reason();
            if scripted != Answer::Ok {
                return error(status, reason);
            }
            let id = push.apns_id.clone();
            shared.pushes.lock().unwrap().push(push);
            Response::builder()
                .status(StatusCode::OK)
                .header("apns-id", id)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
    }
}

/// Wait while holding is on and fewer than the asked number are in flight.
async fn hold(shared: &Shared) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let target = shared.hold_until.load(Ordering::SeqCst);
        if target == 0 {
            return;
        }
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.in_flight.load(Ordering::SeqCst) >= target {
            shared.hold_until.store(0, Ordering::SeqCst);
            shared.changed.notify_waiters();
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            shared.hold_until.store(0, Ordering::SeqCst);
            shared.violations.lock().unwrap().push(format!(
                "held requests never reached {target} in flight (at most {})",
                shared.max_in_flight.load(Ordering::SeqCst)
            ));
            shared.changed.notify_waiters();
            return;
        }
    }
}

fn error(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({ "reason": reason });
    if status == StatusCode::GONE {
        body["timestamp"] = serde_json::json!(1_700_000_000_000_u64);
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("apns-id", uuid::Uuid::new_v4().to_string().to_uppercase())
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

type Refusal = (StatusCode, &'static str, String);

async fn check(req: Request<Incoming>, uid: Option<&str>) -> Result<RecordedPush, Refusal> {
    let (parts, body) = req.into_parts();
    if parts.method != http::Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("method {}", parts.method),
        ));
    }
    let Some(token_hex) = parts.uri.path().strip_prefix("/3/device/") else {
        return Err((
            StatusCode::NOT_FOUND,
            "BadPath",
            format!("path {}", parts.uri.path()),
        ));
    };
    if token_hex.len() != 64
        || !token_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "BadDeviceToken",
            format!("token {token_hex:?} is not 64 lowercase hex digits"),
        ));
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default())
    };
    if header("apns-push-type").as_deref() != Some("mdm") {
        return Err((
            StatusCode::BAD_REQUEST,
            "InvalidPushType",
            format!("apns-push-type {:?}", header("apns-push-type")),
        ));
    }
    let Some(topic) = header("apns-topic") else {
        return Err((
            StatusCode::BAD_REQUEST,
            "MissingTopic",
            "no apns-topic".into(),
        ));
    };
    if Some(topic.as_str()) != uid {
        return Err((
            StatusCode::BAD_REQUEST,
            "TopicDisallowed",
            format!("apns-topic {topic:?} is not the certificate's UID {uid:?}"),
        ));
    }
    let priority = header("apns-priority");
    if priority.as_deref().is_some_and(|p| p != "5" && p != "10") {
        return Err((
            StatusCode::BAD_REQUEST,
            "BadPriority",
            format!("apns-priority {priority:?}"),
        ));
    }
    let expiration = header("apns-expiration");
    if expiration
        .as_deref()
        .is_some_and(|e| e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "BadExpirationDate",
            format!("apns-expiration {expiration:?}"),
        ));
    }
    let body = match Limited::new(body, 4096).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "body over 4096 bytes".into(),
            ));
        }
    };
    if body.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "PayloadEmpty", "empty body".into()));
    }
    let exact = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
        .ok()
        .filter(|m| m.len() == 1 && m.get("mdm").is_some_and(serde_json::Value::is_string))
        .is_some_and(|m| serde_json::to_vec(&m).ok().as_deref() == Some(&body[..]));
    if !exact {
        return Err((
            StatusCode::BAD_REQUEST,
            "BadMdmPayload",
            format!(
                "body {:?} is not exactly {{\"mdm\":\"<PushMagic>\"}}",
                String::from_utf8_lossy(&body)
            ),
        ));
    }
    let apns_id =
        header("apns-id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase());
    Ok(RecordedPush {
        token_hex: token_hex.to_string(),
        topic,
        priority,
        expiration,
        body,
        apns_id,
    })
}

/// A CA standing in for Apple's push certificate issuer, and the push certificates it issues.
pub struct PushCa {
    ca: CertificateAuthority,
}

impl PushCa {
    pub fn generate() -> anyhow::Result<PushCa> {
        Ok(PushCa {
            ca: CertificateAuthority::generate("Test Application Integration CA")?,
        })
    }

    /// The CA certificate (PEM), for [`ApnsStandIn::start`].
    pub fn cert_pem(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.ca.cert_pem()?)
    }

    /// An RSA-2048 MDM push certificate with subject UID `topic` (as Apple issues them: EKU clientAuth),
    /// valid from `from_days` to `to_days` relative to now; returns (certificate PEM, PKCS#8 key PEM).
    pub fn issue(
        &self,
        topic: &str,
        from_days: i64,
        to_days: i64,
    ) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let ca_key = PKey::private_key_from_pem(self.ca.key_pem()?.expose())?;
        let mut name = X509Name::builder()?;
        name.append_entry_by_nid(Nid::USERID, topic)?;
        // Apple's CN is `APSP:<uuid>` (the topic's last part); a CN is at most 64 characters.
        let cn: String = format!("APSP:{}", topic.rsplit('.').next().unwrap_or(topic))
            .chars()
            .take(64)
            .collect();
        name.append_entry_by_nid(Nid::COMMONNAME, &cn)?;
        let name = name.build();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(self.ca.certificate().subject_name())?;
        b.set_pubkey(&key)?;
        let not_before = Asn1Time::from_unix(now + from_days * 86_400)?;
        b.set_not_before(&not_before)?;
        let not_after = Asn1Time::from_unix(now + to_days * 86_400)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
    }
}

/// A TokenUpdate with its own 32-byte push token and PushMagic (so pushes can be told apart).
pub fn token_update(udid: &str, topic: &str, token: &[u8], push_magic: &str) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("MessageType".into(), "TokenUpdate".into());
    d.insert("UDID".into(), udid.into());
    d.insert("Topic".into(), topic.into());
    d.insert("PushMagic".into(), push_magic.into());
    d.insert("Token".into(), plist::Value::Data(token.to_vec()));
    crate::messages::to_xml(d)
}

/// A 32-byte device token derived from `n`, and its lowercase hex.
pub fn device_token(n: u32) -> (Vec<u8>, String) {
    let mut t = [0u8; 32];
    t[..4].copy_from_slice(&n.to_be_bytes());
    t[4..]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i as u8).wrapping_mul(37) ^ 0x5a);
    let hex = t.iter().map(|b| format!("{b:02x}")).collect();
    (t.to_vec(), hex)
}

/// Read a push certificate (PEM) back, e.g. to check what a test uploaded.
pub fn certificate_uid(cert_pem: &[u8]) -> anyhow::Result<String> {
    let cert = X509::from_pem(cert_pem)?;
    cert.subject_name()
        .entries_by_nid(Nid::USERID)
        .next()
        .context("no UID")?
        .data()
        .to_string()
        .map(|s| s.to_string())
        .context("UID not text")
}
