//! Reports: fleet summary (JSON) and CSV exports streamed page by page.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use service::reports::Report;
use store::ApiScope;

use super::schema::{described, string};
use super::{Api, Body as BodyDoc, error, service_error};
use crate::AppState;

pub(super) fn routes(api: Api) -> Api {
    let read = Some(ApiScope::Read);
    api.route("GET", "/api/v1/reports/summary", "Fleet summary: devices by Bootstrap Token status, unverified tokens, Apple silicon Macs where the token cannot authorize, users without a Secure Token.", read, get(summary))
        .answer::<apitypes::Summary>(200)
        .route("GET", "/api/v1/reports/{name}", "CSV export, streamed: without-bootstrap-token, cannot-authorize, users-without-secure-token, no-volume-owner.", read, get(csv))
        .response(200, BodyDoc::Media("text/csv", described(string(), "CSV with a header row, streamed")))
}

async fn summary(State(s): State<AppState>) -> Response {
    match s.mdm.fleet_summary().await {
        Ok(r) => super::views::ok(&apitypes::Summary {
            devices: r.devices,
            bootstrap_token: apitypes::TokenCounts {
                escrowed: r.escrowed,
                not_escrowed: r.not_escrowed,
                not_supported: r.not_supported,
                escrowed_unverified: r.escrowed_unverified,
            },
            apple_silicon: r.apple_silicon,
            apple_silicon_cannot_authorize: r.apple_silicon_cannot_authorize,
            devices_with_users_without_secure_token: r.devices_with_users_without_secure_token,
            users_without_secure_token: r.users_without_secure_token,
            devices_without_inventory: r.devices_without_inventory,
        }),
        Err(e) => service_error(e),
    }
}

async fn csv(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let name = name.strip_suffix(".csv").unwrap_or(&name).to_string();
    let Some(report) = Report::parse(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no report {name:?}: use without-bootstrap-token, cannot-authorize, users-without-secure-token or no-volume-owner"
            ),
        );
    };
    match csv_stream(&s.mdm, report).await {
        Ok(r) => r,
        Err(e) => service_error(e),
    }
}

/// A CSV report as a streamed `text/csv` answer, read page by page (the API's and the console's exports). The
/// first page is read before answering, so an error is still a clean status code (the caller's error answer).
pub(crate) async fn csv_stream(
    mdm: &service::MdmService,
    report: Report,
) -> Result<Response, service::ServiceError> {
    let (first, mut next) = mdm.report_page(report, None).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    let mdm = mdm.clone();
    tokio::spawn(async move {
        if tx
            .send(Ok(format!("{}{first}", report.header())))
            .await
            .is_err()
        {
            return;
        }
        while let Some(after) = next.take() {
            match mdm.report_page(report, Some(after)).await {
                Ok((chunk, n)) => {
                    next = n;
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "report export failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other("report failed"))).await;
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}
