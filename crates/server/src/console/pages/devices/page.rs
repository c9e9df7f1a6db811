//! A device's page, `/devices/{udid}?tab=security|users|logs|diagnosis`: a header (name, serial, OS, group,
//! last seen), the actions (the `console/device_actions.html` partial), and one tab's section. Only the open
//! tab's data is read. Built from the API's views (`service::device_view`, the merged users, the device's
//! events, the diagnosis): metadata only, never a token.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use service::ServiceError;
use service::admin::{Fact, MergedUser};
use service::status::DeviceStatus;
use store::{EventFilter, FactSource, Outcome};

use super::{error_page, service_error_page, status_class, unknown_device, yes_no_text};
use crate::AppState;
use crate::console::time::{now_millis, when};
use crate::console::{ConsoleAdmin, render};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DeviceQuery {
    tab: String,
    /// Logs paging: events with ids below this one.
    before: Option<i64>,
}

/// The tabs, in order: (query value, label).
const TABS: [(&str, &str); 4] = [
    ("security", "Security"),
    ("users", "Users"),
    ("logs", "Logs"),
    ("diagnosis", "Diagnosis"),
];

/// Events per Logs page.
const LOG_PAGE: u32 = 100;

struct Tab {
    href: String,
    label: &'static str,
    current: bool,
}

/// One line of the Security panel: a label, its value (HTML when `html`, e.g. a `<time>`), and a note.
struct Line {
    label: &'static str,
    value: String,
    html: bool,
    note: String,
}

/// One fact of a user as a cell: the value, and where and when it was learnt.
struct FactCell {
    value: &'static str,
    /// A "No" that needs attention (no Secure Token, FileVault off for the user).
    bad: bool,
    source: &'static str,
    at: String,
    conflict: String,
}

struct UserRow {
    name: String,
    full_name: String,
    cells: Vec<FactCell>,
}

struct LogRow {
    when: String,
    kind: String,
    outcome: &'static str,
    outcome_class: &'static str,
    detail: String,
}

struct FindingRow {
    severity: &'static str,
    code: &'static str,
    summary: String,
    evidence: Vec<String>,
    fix: String,
}

#[derive(Template)]
#[template(path = "console/device.html")]
struct DevicePage<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    /// The device's UDID (the actions partial uses it).
    udid: &'a str,
    name: String,
    header: Vec<Line>,
    status: &'static str,
    status_class: &'static str,
    tabs: Vec<Tab>,
    tab: &'a str,
    security: Vec<Line>,
    users: Vec<UserRow>,
    logs: Vec<LogRow>,
    older_logs: Option<String>,
    newest_logs: Option<String>,
    findings: Vec<FindingRow>,
}

fn source(s: FactSource) -> &'static str {
    match s {
        FactSource::Mdm => "MDM",
        FactSource::Agent => "agent",
    }
}

fn cell(f: &Option<Fact<bool>>, no_is_bad: bool, now: i64) -> FactCell {
    match f {
        Some(f) => FactCell {
            value: yes_no_text(Some(f.value)),
            bad: no_is_bad && !f.value,
            source: source(f.source),
            at: when(Some(f.at), now),
            conflict: f
                .conflict
                .as_ref()
                .map(|c| {
                    format!(
                        "{} said {} earlier",
                        source(c.source),
                        yes_no_text(Some(c.value))
                    )
                })
                .unwrap_or_default(),
        },
        None => FactCell {
            value: "—",
            bad: false,
            source: "",
            at: String::new(),
            conflict: String::new(),
        },
    }
}

fn user_row(u: &MergedUser, now: i64) -> UserRow {
    UserRow {
        name: u.name().to_string(),
        full_name: u.full_name.clone().unwrap_or_default(),
        cells: [
            (&u.has_secure_token, true),
            (&u.is_admin, false),
            (&u.mobile_account, false),
            (&u.filevault_enabled, true),
            (&u.volume_owner, false),
            (&u.is_logged_in, false),
        ]
        .into_iter()
        .map(|(f, no_is_bad)| cell(f, no_is_bad, now))
        .collect(),
    }
}

fn text(label: &'static str, value: impl Into<String>, note: impl Into<String>) -> Line {
    Line {
        label,
        value: value.into(),
        html: false,
        note: note.into(),
    }
}

fn time(label: &'static str, at: Option<i64>, now: i64, note: impl Into<String>) -> Line {
    Line {
        label,
        value: when(at, now),
        html: true,
        note: note.into(),
    }
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

pub(super) async fn device(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path(udid): Path<String>,
    q: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_page(
            &admin,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "the page's query could not be read (tab is one of security, users, logs, diagnosis; before a number)",
        );
    };
    let tab = match q.tab.as_str() {
        "" => "security",
        t if TABS.iter().any(|(v, _)| *v == t) => t,
        t => {
            return error_page(
                &admin,
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!("there is no tab {t:?}: security, users, logs or diagnosis"),
            );
        }
    };
    let d = match s.mdm.admin_device(&udid).await {
        Ok(d) => d,
        Err(ServiceError::NotFound(_)) => return unknown_device(&admin, &udid),
        Err(e) => return service_error_page(&admin, e),
    };
    let now = now_millis();
    let v = service::device_view::device_view(&d);
    let status = d.status();
    let href = super::device_href(&udid);
    let mut page = DevicePage {
        admin: &admin,
        nav: "devices",
        udid: &udid,
        name: v.device_name.clone().unwrap_or_else(|| udid.clone()),
        header: vec![
            text("UDID", udid.clone(), ""),
            text("Serial number", or_dash(v.serial_number.clone()), ""),
            text(
                "Model",
                or_dash(v.model_name.clone().or(v.model.clone())),
                "",
            ),
            text(
                "macOS",
                or_dash(v.os_version.clone()),
                v.build_version.clone().unwrap_or_default(),
            ),
            text(
                "Group",
                or_dash(
                    v.group
                        .as_ref()
                        .map(|g| g.name.clone().unwrap_or(g.id.clone())),
                ),
                "",
            ),
            time("Last seen", Some(v.last_seen_at), now, ""),
            time(
                "Enrolled",
                Some(v.enrolled_at),
                now,
                if v.enrolled { "" } else { "checked out" },
            ),
        ],
        status: status.label(),
        status_class: status_class(status),
        tabs: TABS
            .iter()
            .map(|(value, label)| Tab {
                href: format!("{href}?tab={value}"),
                label,
                current: *value == tab,
            })
            .collect(),
        tab,
        security: Vec::new(),
        users: Vec::new(),
        logs: Vec::new(),
        older_logs: None,
        newest_logs: None,
        findings: Vec::new(),
    };
    let loaded = match tab {
        "security" => security(&s, &udid, &v, status.label(), now)
            .await
            .map(|l| page.security = l),
        "users" => s
            .mdm
            .admin_device_users(&udid)
            .await
            .map(|u| page.users = u.iter().map(|u| user_row(u, now)).collect()),
        "logs" => s
            .mdm
            .admin_device_events(
                &udid,
                EventFilter {
                    before_id: q.before,
                    limit: LOG_PAGE,
                    ..Default::default()
                },
            )
            .await
            .map(|events| {
                if events.len() as u32 == LOG_PAGE {
                    page.older_logs = events
                        .last()
                        .map(|e| format!("{href}?tab=logs&before={}", e.id));
                }
                if q.before.is_some() {
                    page.newest_logs = Some(format!("{href}?tab=logs"));
                }
                page.logs = events
                    .into_iter()
                    .map(|e| {
                        let (outcome, outcome_class) = match e.outcome {
                            Outcome::Success => ("success", "out-ok"),
                            Outcome::Failure => ("failure", "out-bad"),
                            Outcome::Refused => ("refused", "out-bad"),
                        };
                        LogRow {
                            when: when(Some(e.at), now),
                            kind: e.kind,
                            outcome,
                            outcome_class,
                            detail: e.detail,
                        }
                    })
                    .collect();
            }),
        _ => s.mdm.diagnose(&udid).await.map(|f| {
            page.findings = f
                .into_iter()
                .map(|f| FindingRow {
                    severity: f.severity.as_str(),
                    code: f.code,
                    summary: f.summary,
                    evidence: f.evidence,
                    fix: f.fix,
                })
                .collect()
        }),
    };
    if let Err(e) = loaded {
        return service_error_page(&admin, e);
    }
    render(&page)
}

/// The Security panel: the Bootstrap Token as SOTI shows it and everything that decides what it can do.
async fn security(
    s: &AppState,
    udid: &str,
    v: &apitypes::Device,
    status: &'static str,
    now: i64,
) -> Result<Vec<Line>, ServiceError> {
    let expiry = s.mdm.identity_expiry(udid).await?;
    let mark = s.mdm.push_mark(udid).await?;
    let t = &v.bootstrap_token;
    let flag = |b: Option<bool>| yes_no_text(b).to_string();
    Ok(vec![
        text(
            "Bootstrap Token",
            status,
            t.reason.clone().unwrap_or_default(),
        ),
        text(
            "Verified",
            flag(t.verified),
            match t.verified {
                Some(false) => "escrowed, but no Get has released it yet",
                Some(true) => "released to the Mac at least once",
                None => "",
            },
        ),
        time("Escrowed", t.escrowed_at, now, ""),
        time("Last requested", t.last_requested_at, now, ""),
        text("Apple silicon", flag(v.apple_silicon), ""),
        text(
            "Token allowed for authentication",
            or_dash(v.bootstrap_token_allowed_for_authentication.clone()),
            "Apple silicon: whether the token can authorize updates",
        ),
        text(
            "Token required for software update",
            flag(v.bootstrap_token_required_for_software_update),
            "",
        ),
        text(
            "Token required for kernel extension approval",
            flag(v.bootstrap_token_required_for_kernel_extension_approval),
            "",
        ),
        text("EACS preflight", or_dash(v.eacs_preflight.clone()), ""),
        text("FileVault", flag(v.filevault_enabled), ""),
        text(
            "Enrollment",
            match v.enrollment_type {
                apitypes::EnrollmentType::UserEnrollment => "User Enrollment",
                apitypes::EnrollmentType::AutomatedDeviceEnrollment => {
                    "Automated Device Enrollment"
                }
                apitypes::EnrollmentType::UserApproved => "user-approved device enrollment",
                apitypes::EnrollmentType::Device => "device enrollment",
                apitypes::EnrollmentType::Unknown => "not known yet (no SecurityInfo answer)",
            },
            match v.supervised {
                Some(true) => "supervised",
                Some(false) => "not supervised",
                None => "",
            },
        ),
        time(
            "Identity expires",
            expiry.expires_at,
            now,
            match (&expiry.renewal, v.identity.blocked_at) {
                (_, Some(_)) => "blocked".to_string(),
                (Some(r), None) => format!(
                    "renewal queued {}",
                    crate::console::time::relative(r.queued_at, now)
                ),
                (None, None) if v.identity.pending_identity => {
                    "a new identity waits for approval".to_string()
                }
                _ => String::new(),
            },
        ),
        text(
            "Push",
            if mark.is_some() {
                "refused by APNs"
            } else if v.enrolled {
                "ok"
            } else {
                "checked out"
            },
            mark.map(|m| format!("{} {}", m.reason, crate::console::time::relative(m.at, now)))
                .unwrap_or_default(),
        ),
        time(
            "DeviceInformation",
            v.inventory_at.device_information,
            now,
            "last inventory answer",
        ),
        time(
            "SecurityInfo",
            v.inventory_at.security_info,
            now,
            "last security answer",
        ),
    ])
}
