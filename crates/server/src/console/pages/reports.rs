//! Reports: links to the CSV exports (served here on console paths with the session's sign-in, streamed page
//! by page exactly as the API's `GET /api/v1/reports/{name}`) and the fleet summary, each count linked to the
//! device list it counts.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use service::reports::Report;

use super::dashboard::{SummaryRow, summary_rows};
use super::devices::{error_page, service_error_page};
use crate::AppState;
use crate::console::time::{now_millis, when};
use crate::console::{ConsoleAdmin, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports/{file}", get(csv))
}

struct ReportLink {
    name: &'static str,
    title: &'static str,
    about: &'static str,
}

/// The exports, as `Report::parse` names them.
const REPORTS: [ReportLink; 4] = [
    ReportLink {
        name: "without-bootstrap-token",
        title: "Macs without a Bootstrap Token",
        about: "supported Macs with nothing escrowed (Not configured)",
    },
    ReportLink {
        name: "cannot-authorize",
        title: "Apple silicon Macs whose token cannot authorize",
        about: "the token is not allowed for authentication, so it cannot authorize updates",
    },
    ReportLink {
        name: "users-without-secure-token",
        title: "Users without a Secure Token",
        about: "one row per user, by the newest word on the token",
    },
    ReportLink {
        name: "no-volume-owner",
        title: "Macs with no volume owner",
        about: "from the agent's facts; Macs without the agent are not listed",
    },
];

#[derive(Template)]
#[template(path = "console/reports.html")]
struct Reports<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    reports: &'a [ReportLink],
    summary: Vec<SummaryRow>,
    counted: String,
}

async fn page(admin: ConsoleAdmin, State(s): State<AppState>) -> Response {
    let now = now_millis();
    match s.mdm.fleet_summary().await {
        Ok(summary) => render(&Reports {
            admin: &admin,
            nav: "reports",
            reports: &REPORTS,
            summary: summary_rows(&summary),
            counted: when(Some(now), now),
        }),
        Err(e) => service_error_page(&admin, e),
    }
}

async fn csv(admin: ConsoleAdmin, State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(report) = file.strip_suffix(".csv").and_then(Report::parse) else {
        return error_page(
            &admin,
            StatusCode::NOT_FOUND,
            "No such report",
            "The exports are listed on the Reports page.",
        );
    };
    match crate::api::reports::csv_stream(&s.mdm, report).await {
        Ok(mut r) => {
            let disposition = format!("attachment; filename=\"{file}\"");
            if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
                r.headers_mut()
                    .insert(axum::http::header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => service_error_page(&admin, e),
    }
}
