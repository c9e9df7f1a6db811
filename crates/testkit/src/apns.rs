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

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::nid::Nid;
use openssl::x509::X509;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::sync::Notify;

mod certs;

pub use certs::{PushCa, certificate_uid, device_token, token_update};

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

    /// Wait until at least `n` requests have arrived in all (10 s at most); false if they did not.
    pub async fn wait_for_requests(&self, n: u64) -> bool {
        for _ in 0..1000 {
            if self.requests() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Forget recorded pushes and request counts (scripts, violations and connections stay), so a test can
    /// count from here on.
    pub fn clear(&self) {
        self.shared.pushes.lock().unwrap().clear();
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
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
