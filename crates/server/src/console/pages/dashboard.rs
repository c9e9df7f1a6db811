//! The fleet dashboard at `/`: the Bootstrap Token status counts as SOTI names them (NA / Not configured /
//! Configured), the numbers that need an admin's attention (each a link to the filtered device list), a small
//! server-rendered SVG chart of token events per day, and the recent failures.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use service::reports::FleetSummary;
use store::{EventFilter, Outcome};

use super::devices::{device_href, service_error_page};
use crate::AppState;
use crate::console::time::{day_utc, now_millis, when};
use crate::console::{ConsoleAdmin, render};

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

/// One counted number of the fleet summary, and the device list it links to (None: no list shows it).
pub(super) struct SummaryRow {
    pub label: &'static str,
    pub count: u64,
    pub href: Option<&'static str>,
}

/// The fleet summary as rows, each linked to the device list filtered to exactly the Macs it counts.
pub(super) fn summary_rows(s: &FleetSummary) -> Vec<SummaryRow> {
    let row = |label, count, href| SummaryRow { label, count, href };
    vec![
        row("Enrolled Macs", s.devices, Some("/devices")),
        row(
            "Bootstrap Token: Configured",
            s.escrowed,
            Some("/devices?status=escrowed"),
        ),
        row(
            "Bootstrap Token: Not configured",
            s.not_escrowed,
            Some("/devices?status=not_escrowed"),
        ),
        row(
            "Bootstrap Token: NA",
            s.not_supported,
            Some("/devices?status=not_supported"),
        ),
        row(
            "Escrowed but never verified",
            s.escrowed_unverified,
            Some("/devices?verified=false"),
        ),
        row(
            "Apple silicon Macs",
            s.apple_silicon,
            Some("/devices?apple_silicon=true"),
        ),
        row(
            "Apple silicon Macs whose token cannot authorize updates",
            s.apple_silicon_cannot_authorize,
            Some("/devices?cannot_authorize=true"),
        ),
        row(
            "Macs with users without a Secure Token",
            s.devices_with_users_without_secure_token,
            Some("/devices?users_without_secure_token=true"),
        ),
        row(
            "Users without a Secure Token",
            s.users_without_secure_token,
            None,
        ),
        row(
            "Identities expiring within 30 days",
            s.identities_expiring,
            Some("/devices?identity_expiring=true"),
        ),
        row(
            "Macs without inventory yet",
            s.devices_without_inventory,
            None,
        ),
    ]
}

/// A recent failure, as the dashboard lists it.
struct FailureRow {
    when: String,
    kind: String,
    subject: String,
    /// The device's page (Logs tab) when the subject is a device.
    href: Option<String>,
    detail: String,
}

/// One bar of the chart, its geometry computed here (the SVG uses presentation attributes only).
struct Bar {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
    /// A presentation attribute (the CSP forbids inline style).
    fill: &'static str,
    title: String,
}

/// An axis label under the chart.
struct Tick {
    x: i64,
    text: String,
}

struct Chart {
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    max: u64,
    /// Some series were cut at the read cap: the bars are lower bounds.
    capped: bool,
    days: Vec<DayCounts>,
}

struct DayCounts {
    day: String,
    escrowed: u64,
    failed: u64,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    cards: Vec<SummaryRow>,
    failures: Vec<FailureRow>,
    chart: Chart,
}

const DAY_MS: i64 = 86_400_000;
const CHART_DAYS: i64 = 14;
/// At most this many events per series are read for the chart (pages of 1000).
const CHART_EVENT_CAP: usize = 5_000;

async fn home(admin: ConsoleAdmin, State(s): State<AppState>) -> Response {
    let now = now_millis();
    let summary = match s.mdm.fleet_summary().await {
        Ok(v) => v,
        Err(e) => return service_error_page(&admin, e),
    };
    let failures = match s
        .mdm
        .admin_events(EventFilter {
            outcome: Some(Outcome::Failure),
            since: Some(now - 7 * DAY_MS),
            limit: 10,
            ..Default::default()
        })
        .await
    {
        Ok(v) => v,
        Err(e) => return service_error_page(&admin, e),
    };
    let failures = failures
        .into_iter()
        .map(|e| FailureRow {
            when: when(Some(e.at), now),
            href: e
                .enrollment_id
                .as_ref()
                .map(|id| format!("{}?tab=logs", device_href(id))),
            kind: e.kind,
            subject: e.subject,
            detail: e.detail,
        })
        .collect();
    let chart = match chart(&s, now).await {
        Ok(c) => c,
        Err(e) => return service_error_page(&admin, e),
    };
    render(&Dashboard {
        admin: &admin,
        nav: "dashboard",
        cards: summary_rows(&summary),
        failures,
        chart,
    })
}

/// Events of `kind` (with `outcome`) in the chart's window, counted per UTC day (index 0 = oldest day).
async fn per_day(
    s: &AppState,
    kind: &str,
    outcome: Outcome,
    start: i64,
) -> Result<(Vec<u64>, bool), service::ServiceError> {
    let mut counts = vec![0u64; CHART_DAYS as usize];
    let mut read = 0usize;
    let mut before_id = None;
    loop {
        let page = s
            .mdm
            .admin_events(EventFilter {
                kind: Some(kind.to_string()),
                outcome: Some(outcome),
                since: Some(start),
                before_id,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        read += page.len();
        for e in &page {
            let i = (e.at - start).div_euclid(DAY_MS);
            if let Some(c) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                *c += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 && read < CHART_EVENT_CAP => before_id = Some(last.id),
            Some(_) if page.len() == 1000 => return Ok((counts, true)),
            _ => return Ok((counts, false)),
        }
    }
}

/// Bootstrap Tokens escrowed and token requests that failed, per day over the last two weeks.
async fn chart(s: &AppState, now: i64) -> Result<Chart, service::ServiceError> {
    let start = (now.div_euclid(DAY_MS) - (CHART_DAYS - 1)) * DAY_MS;
    let (mut escrowed, c1) =
        per_day(s, "bootstrap_token.escrowed", Outcome::Success, start).await?;
    let (replaced, c2) = per_day(s, "bootstrap_token.replaced", Outcome::Success, start).await?;
    for (a, b) in escrowed.iter_mut().zip(&replaced) {
        *a += b;
    }
    let (failed, c3) = per_day(s, "bootstrap_token.requested", Outcome::Failure, start).await?;
    let max = escrowed
        .iter()
        .chain(&failed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    // 14 groups of two bars in a 560 x 160 drawing (140 for bars, 20 for the axis labels).
    let (group_w, bar_w, plot_h) = (40i64, 16i64, 140i64);
    let mut bars = Vec::new();
    let mut ticks = Vec::new();
    let mut days = Vec::new();
    for i in 0..CHART_DAYS as usize {
        let day = day_utc(start + i as i64 * DAY_MS);
        let x0 = i as i64 * group_w + 4;
        for (k, (count, fill, what)) in [
            (escrowed[i], "#1b7f3b", "tokens escrowed"),
            (failed[i], "#b3261e", "token requests failed"),
        ]
        .into_iter()
        .enumerate()
        {
            let height = (count as i64 * plot_h) / max as i64;
            bars.push(Bar {
                x: x0 + k as i64 * bar_w,
                y: plot_h - height,
                width: bar_w - 2,
                height,
                fill,
                title: format!("{day}: {count} {what}"),
            });
        }
        if i % 2 == 0 {
            ticks.push(Tick {
                x: x0,
                text: day[5..].to_string(),
            });
        }
        days.push(DayCounts {
            day,
            escrowed: escrowed[i],
            failed: failed[i],
        });
    }
    Ok(Chart {
        bars,
        ticks,
        max,
        capped: c1 || c2 || c3,
        days,
    })
}
