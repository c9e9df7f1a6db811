//! The APNs push certificate: `PUT /api/v1/push-certificate` (PEM pair or PKCS#12) and `GET` (what it says,
//! never the key). An upload is checked by `service` (key matches, in date, MDM topic) and by building the
//! APNs client from it (rustls accepts the pair) before anything is stored; then the new provider replaces
//! the old one at once, without a restart. Bad uploads get 400 and change nothing.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use apitypes as t;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use base64::Engine;
use service::apikeys::Actor;
use service::push::Pusher;
use service::push_cert::{PushCertificateInfo, PushCertificateUpload, PushUploadError};
use store::ApiScope;
use vault::Secret;

use super::devices::bad_json;
use super::views::ok;
use super::{Api, error, service_error};
use crate::AppState;
use crate::apns::{ApnsClient, warn_if_expiring};

pub(super) fn routes(api: Api) -> Api {
    api.route(
        "GET",
        "/api/v1/push-certificate",
        "The APNs push certificate: topic (its UID), subject, serial, fingerprint, not_after (unix ms), days_left, warning (expiring or expired). 404 with guidance when none was uploaded. Never the key.",
        Some(ApiScope::Read),
        get(show),
    )
    .answer::<t::PushCertificate>(200)
    .route(
        "PUT",
        "/api/v1/push-certificate",
        "Upload (replace) the APNs push certificate: {certificate_pem, private_key_pem} or {pkcs12_base64, password}. Checked (key matches, in date, topic com.apple.mgmt.… from the subject UID, usable for TLS) before it is stored; 400 and nothing changes otherwise. Takes effect at once. Answer as GET. Audited.",
        Some(ApiScope::Admin),
        put(upload),
    )
    .body::<t::PushCertificateUpload>()
    .answer::<t::PushCertificate>(200)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn view(info: &PushCertificateInfo) -> t::PushCertificate {
    let now = now_millis();
    t::PushCertificate {
        topic: info.topic.clone(),
        subject: info.subject.clone(),
        serial: info.serial_hex.clone(),
        fingerprint: info.fingerprint.clone(),
        not_after: info.not_after,
        days_left: info.days_left(now),
        warning: info.expiry_warning(now),
    }
}

async fn show(State(s): State<AppState>) -> Response {
    match s.mdm.push_certificate().await {
        Ok(Some(info)) => ok(&view(&info)),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no push certificate uploaded: get an MDM push certificate at https://identity.apple.com and upload it \
with `escrowd push-cert upload --cert push.pem --key push.key` (or --pkcs12 push.p12)",
        ),
        Err(e) => service_error(e),
    }
}

async fn upload(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Result<Json<t::PushCertificateUpload>, JsonRejection>,
) -> Response {
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let upload = match b.into_form() {
        Some(t::PushCertificateForm::Pem(pem)) => PushCertificateUpload::Pem {
            cert_pem: pem.certificate_pem.into_bytes(),
            key_pem: Secret::new(pem.private_key_pem.into_inner().into_bytes()),
        },
        Some(t::PushCertificateForm::Pkcs12(p12)) => {
            let der = match base64::engine::general_purpose::STANDARD
                .decode(p12.pkcs12_base64.expose().trim())
            {
                Ok(d) => d,
                Err(_) => return error(StatusCode::BAD_REQUEST, "pkcs12_base64 is not base64"),
            };
            PushCertificateUpload::Pkcs12 {
                der,
                password: Secret::new(p12.password.map(|p| p.into_inner()).unwrap_or_default()),
            }
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "send either {certificate_pem, private_key_pem} or {pkcs12_base64, password}",
            );
        }
    };
    let connect = |cert_pem: &[u8], key_pem: &Secret<Vec<u8>>| {
        ApnsClient::new((*s.apns).clone(), cert_pem, key_pem)
            .map(|client| Arc::new(client) as Arc<dyn Pusher>)
            .map_err(|e| format!("{e:#}"))
    };
    match s
        .mdm
        .upload_push_certificate(upload, &actor.label(), connect)
        .await
    {
        Ok(info) => {
            warn_if_expiring(&info);
            ok(&view(&info))
        }
        Err(PushUploadError::Service(e)) => service_error(e),
        Err(PushUploadError::Unusable(message)) => error(StatusCode::BAD_REQUEST, message),
    }
}
