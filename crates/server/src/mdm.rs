//! MDM endpoints: `PUT /mdm/checkin`, `PUT /mdm/connect`, and `PUT /mdm` (dispatch on Content-Type).
//!
//! The edge's only jobs: cap the body, collect the device credential (Mdm-Signature, TLS client certificate,
//! or — only when configured — a trusted proxy header), call the service, map its answer to HTTP. Verifying
//! the credential and everything after it is the service's (`service::checkin`: identity layer, dispatch,
//! handlers); the verifier was configured once when the service was built. A device
//! never gets a 401: identity failures are 400, with the reason in the server log, not in the response.

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::checkin::DeviceCredential;
use service::{CheckinReply, ConnectReply, ErrorKind, ServiceError};

use crate::AppState;
use crate::listener::{PeerAddr, PeerCertificate};

pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Checkin,
    Connect,
}

pub async fn checkin(
    state: State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    addr: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    device_request(Channel::Checkin, state, peer, addr, headers, body).await
}

pub async fn connect(
    state: State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    addr: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    device_request(Channel::Connect, state, peer, addr, headers, body).await
}

/// Collect the credential, hand the exact body to the service, and map the answer: 200 with an empty body or
/// with an XML plist, or the error's status.
async fn device_request(
    channel: Channel,
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    addr: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let addr = addr.map(|Extension(a)| a);
    let what = match channel {
        Channel::Checkin => "check-in",
        Channel::Connect => "command report",
    };
    let forwarded = match forwarded_certificate(&state, addr, &headers) {
        Ok(f) => f,
        Err(err) => return error_response("forwarded certificate", &err),
    };
    let credential = credential(&headers, peer.as_ref().map(|p| &p.0), forwarded.as_deref());
    let source = PeerAddr::source(addr.as_ref());
    let reply = match channel {
        Channel::Checkin => state
            .mdm
            .checkin(credential, &body, &source)
            .await
            .map(|r| match r {
                CheckinReply::Empty => None,
                CheckinReply::Plist(xml) => Some(xml),
            }),
        Channel::Connect => state
            .mdm
            .connect(credential, &body, &source)
            .await
            .map(|r| match r {
                ConnectReply::Idle => None,
                ConnectReply::Command(xml) => Some(xml),
            }),
    };
    match reply {
        Ok(None) => StatusCode::OK.into_response(),
        Ok(Some(xml)) => ([(header::CONTENT_TYPE, "application/xml")], xml).into_response(),
        Err(err) => error_response(what, &err),
    }
}

/// One URL for both channels, as Apple allows: the check-in content type goes to check-in, anything else to
/// the command channel (NanoMDM's rule).
pub async fn dispatch(
    state: State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    addr: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_checkin = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().starts_with(CHECKIN_CONTENT_TYPE));
    if is_checkin {
        checkin(state, peer, addr, headers, body).await
    } else {
        connect(state, peer, addr, headers, body).await
    }
}

fn credential<'a>(
    headers: &'a HeaderMap,
    peer: Option<&'a PeerCertificate>,
    forwarded: Option<&'a [u8]>,
) -> DeviceCredential<'a> {
    if let Some(sig) = headers.get("mdm-signature") {
        return DeviceCredential::MdmSignature(sig.as_bytes());
    }
    if let Some(PeerCertificate(Some(der))) = peer {
        return DeviceCredential::TlsCertificate(der);
    }
    if let Some(der) = forwarded {
        return DeviceCredential::ForwardedCertificate(der);
    }
    DeviceCredential::None
}

/// The certificate a trusted proxy forwarded, when the admin configured a header for it and the request came
/// from a `--trusted-proxy` peer (on the TLS listener only with `--trusted-cert-header-on-tls`). From anyone
/// else the header is ignored, as if absent, and counted.
fn forwarded_certificate(
    state: &AppState,
    addr: Option<PeerAddr>,
    headers: &HeaderMap,
) -> Result<Option<Vec<u8>>, ServiceError> {
    let Some(name) = state.trusted_cert_header.as_deref() else {
        return Ok(None);
    };
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    if !forwarded_header_allowed(state, addr) {
        note_untrusted_forwarded_header(state, addr);
        return Ok(None);
    }
    let parsed = value
        .to_str()
        .map_err(|_| pki::IdentityError::ForwardedHeader("header is not ASCII".into()))
        .and_then(pki::forwarded::parse_forwarded_cert);
    Ok(Some(parsed?))
}

/// Whether a forwarded-certificate header from this peer may be believed.
fn forwarded_header_allowed(state: &AppState, addr: Option<PeerAddr>) -> bool {
    match addr {
        Some(a) if a.tls && !state.trusted_cert_header_on_tls => false,
        Some(a) => crate::proxy::is_trusted(&state.trusted_proxies, a.addr.ip()),
        None => false,
    }
}

/// Counted per source and hour (`service::edge`), logged once per source between flushes.
fn note_untrusted_forwarded_header(state: &AppState, addr: Option<PeerAddr>) {
    let why = match addr {
        Some(a) if a.tls && !state.trusted_cert_header_on_tls => {
            "forwarded certificate header on the TLS listener ignored (no --trusted-cert-header-on-tls)"
        }
        _ => "forwarded certificate header from a peer that is not a --trusted-proxy ignored",
    };
    state.mdm.note_refusal(
        service::EventKind::ForwardedCertUntrusted,
        &PeerAddr::source(addr.as_ref()),
        why,
    );
}

fn error_response(what: &str, err: &ServiceError) -> Response {
    match err.kind() {
        ErrorKind::BadRequest => {
            tracing::info!(reason = %err, "{what} refused: bad request");
            (StatusCode::BAD_REQUEST, "Bad Request\n").into_response()
        }
        ErrorKind::Unauthenticated
        | ErrorKind::Refused
        | ErrorKind::Invalid
        | ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::AdminUnauthorized
        | ErrorKind::Forbidden => {
            tracing::warn!(reason = %err, "{what} refused");
            (StatusCode::BAD_REQUEST, "Bad Request\n").into_response()
        }
        ErrorKind::TooLarge => {
            tracing::info!(reason = %err, "{what} refused: too large");
            (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n").into_response()
        }
        ErrorKind::Internal => {
            tracing::error!(error = %err, "{what} failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response()
        }
    }
}
