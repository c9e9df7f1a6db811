//! `GET|POST /scep`: the SCEP endpoint (RFC 8894). `operation=GetCACert`, `GetCACaps`, or `PKIOperation`
//! (GET with a base64 `message`, or POST with the DER message as the body).
//!
//! Status codes: 200 for every answer SCEP defines (a refused request is a 200 CertRep FAILURE with failInfo,
//! as clients expect); 400 with a short plain-text reason for an unknown operation or a message that cannot be
//! read at all; 403 when SCEP is not configured; 413 for an oversized body.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use service::{ErrorKind, ServiceError};

use crate::AppState;
use crate::listener::PeerAddr;

/// Body cap on `POST /scep`.
pub const MAX_SCEP_BODY: usize = pki::scep::MAX_MESSAGE_BYTES;

pub async fn scep(
    State(state): State<AppState>,
    method: Method,
    addr: Option<Extension<PeerAddr>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match query.get("operation").map(String::as_str) {
        Some("GetCACert") => match state.mdm.scep_ca_cert() {
            Ok(der) => {
                ([(header::CONTENT_TYPE, "application/x-x509-ca-cert")], der).into_response()
            }
            Err(err) => error_response(&err),
        },
        Some("GetCACaps") => (
            [(header::CONTENT_TYPE, "text/plain")],
            state.mdm.scep_ca_caps(),
        )
            .into_response(),
        Some("PKIOperation") => {
            let message = if method == Method::POST {
                body.to_vec()
            } else {
                match query.get("message").map(|m| decode_get_message(m)) {
                    Some(Ok(der)) => der,
                    Some(Err(reason)) => return bad_request(&reason),
                    None => return bad_request("PKIOperation needs a message parameter"),
                }
            };
            match state
                .mdm
                .scep_pki_operation(&message, &PeerAddr::source(addr.as_deref()))
                .await
            {
                Ok(reply) => {
                    ([(header::CONTENT_TYPE, "application/x-pki-message")], reply).into_response()
                }
                Err(err) => error_response(&err),
            }
        }
        Some(_) => bad_request("unknown operation; use GetCACert, GetCACaps or PKIOperation"),
        None => bad_request("missing operation parameter"),
    }
}

/// A GET message: base64, possibly with '+' turned into ' ' by form decoding and with line breaks.
fn decode_get_message(value: &str) -> Result<Vec<u8>, String> {
    if value.len() > MAX_SCEP_BODY * 4 / 3 + 16 {
        return Err("message parameter too long".into());
    }
    let cleaned: String = value
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|_| "message parameter is not base64".to_string())
}

fn bad_request(reason: &str) -> Response {
    tracing::info!(%reason, "SCEP request refused");
    (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
}

fn error_response(err: &ServiceError) -> Response {
    match err.kind() {
        ErrorKind::BadRequest | ErrorKind::Invalid => bad_request(&err.to_string()),
        ErrorKind::TooLarge => {
            (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n").into_response()
        }
        ErrorKind::Unauthenticated
        | ErrorKind::Refused
        | ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::AdminUnauthorized
        | ErrorKind::Forbidden => {
            tracing::warn!(reason = %err, "SCEP refused");
            (StatusCode::FORBIDDEN, format!("{err}\n")).into_response()
        }
        ErrorKind::Internal => {
            tracing::error!(error = %err, "SCEP failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode_get_message;

    #[test]
    fn get_messages_tolerate_form_decoded_plus_and_line_breaks() {
        assert_eq!(decode_get_message("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_get_message(" /8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_get_message("+/\r\n8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_get_message("not base64!").is_err());
        assert!(decode_get_message(&"A".repeat(200_000)).is_err());
    }
}
