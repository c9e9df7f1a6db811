//! The device list (`/devices`: search, filters, sort, pages) and a device's page (`/devices/{udid}`, in
//! tabs: Security, Users, Logs, Diagnosis), plus the console's error page. The list asks the store for one
//! page at a time through the same paged, filtered query as `GET /api/v1/devices` (keyset paging on the
//! UDID), so it never reads the fleet whole.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use service::ServiceError;
use service::status::BootstrapStatus;
use store::{DeviceFilter, Group};

use crate::AppState;
use crate::console::time::{now_millis, when};
use crate::console::{ConsoleAdmin, render};

mod page;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{udid}", get(page::device))
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    title: &'a str,
    message: &'a str,
}

/// An error page with `status`, inside the layout.
pub(crate) fn error_page(
    admin: &ConsoleAdmin,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let mut r = render(&ErrorPage {
        admin,
        nav: "",
        title,
        message,
    });
    *r.status_mut() = status;
    r
}

/// A service error as a page: NotFound is a 404, bad input a 400, the rest a 500 that says only that (the
/// error itself is logged; it may name internals).
pub(crate) fn service_error_page(admin: &ConsoleAdmin, e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound(m) => error_page(admin, StatusCode::NOT_FOUND, "Not found", &m),
        ServiceError::Invalid(m) => error_page(admin, StatusCode::BAD_REQUEST, "Bad request", &m),
        e => {
            tracing::error!(error = %e, "console page failed");
            error_page(
                admin,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be read; see the server log.",
            )
        }
    }
}

/// `/devices/{udid}` with the UDID percent-encoded as a path segment.
pub(crate) fn device_href(udid: &str) -> String {
    let mut out = String::from("/devices/");
    for b in udid.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The list's query string as the GET form sends it: every field text, empty when unset, so a submitted form
/// with blank fields is the unfiltered list.
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub(super) struct ListQuery {
    #[serde(skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    apple_silicon: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    verified: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    cannot_authorize: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    users_without_secure_token: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    identity_expiring: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    checked_out: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    sort: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    after: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    limit: String,
}

/// Rows per page unless `limit` says otherwise (at most 500).
const PAGE: u32 = 50;

fn yes_no(field: &str, v: &str) -> Result<Option<bool>, String> {
    match v {
        "" | "any" => Ok(None),
        "true" | "yes" => Ok(Some(true)),
        "false" | "no" => Ok(Some(false)),
        _ => Err(format!("{field} must be yes or no, not {v:?}")),
    }
}

impl ListQuery {
    /// The store filter this query asks for, or what is wrong with it.
    fn filter(&self, now: i64) -> Result<DeviceFilter, String> {
        let limit = match self.limit.as_str() {
            "" => PAGE,
            l => match l.parse::<u32>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => return Err(format!("limit must be 1 to 500, not {l:?}")),
            },
        };
        let descending = match self.sort.as_str() {
            "" | "udid" => false,
            "-udid" => true,
            s => return Err(format!("sort must be udid or -udid, not {s:?}")),
        };
        let expiring = yes_no("identity_expiring", &self.identity_expiring)?;
        let mut f = DeviceFilter {
            search: Some(self.q.trim().to_string()).filter(|q| !q.is_empty()),
            group_id: Some(self.group.clone()).filter(|g| !g.is_empty()),
            apple_silicon: yes_no("apple_silicon", &self.apple_silicon)?,
            verified: yes_no("verified", &self.verified)?,
            cannot_authorize: yes_no("cannot_authorize", &self.cannot_authorize)?,
            users_without_secure_token: yes_no(
                "users_without_secure_token",
                &self.users_without_secure_token,
            )?,
            identity_expires_before: (expiring == Some(true))
                .then_some(now + service::reports::IDENTITY_EXPIRING_MS),
            include_checked_out: yes_no("checked_out", &self.checked_out)? == Some(true),
            descending,
            after_id: Some(self.after.clone()).filter(|a| !a.is_empty()),
            limit,
            ..Default::default()
        };
        if expiring == Some(false) {
            return Err("identity_expiring can only be yes".into());
        }
        if f.search.as_ref().is_some_and(|q| q.len() > 200) {
            return Err("the search is longer than 200 characters".into());
        }
        match self.status.as_str() {
            "" => {}
            s => BootstrapStatus::parse(s)
                .ok_or_else(|| {
                    format!("status must be escrowed, not_escrowed or not_supported, not {s:?}")
                })?
                .restrict(&mut f),
        }
        Ok(f)
    }

    /// `/devices?…` with these filters, and `after` / `sort` replaced.
    fn link(&self, after: Option<&str>, sort: Option<&str>) -> String {
        let mut q = self.clone();
        q.after = after.unwrap_or_default().to_string();
        if let Some(sort) = sort {
            q.sort = sort.to_string();
        }
        match serde_urlencoded::to_string(&q) {
            Ok(s) if !s.is_empty() => format!("/devices?{s}"),
            _ => "/devices".to_string(),
        }
    }

    /// The active filters in words, for the page's heading.
    fn described(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.q.trim().is_empty() {
            out.push(format!("matching “{}”", self.q.trim()));
        }
        if let Some(s) = BootstrapStatus::parse(&self.status) {
            out.push(format!("Bootstrap Token {}", s.label()));
        }
        for (v, yes, no) in [
            (&self.apple_silicon, "Apple silicon", "Intel"),
            (&self.verified, "token verified", "token never verified"),
            (
                &self.cannot_authorize,
                "token cannot authorize",
                "token can authorize",
            ),
            (
                &self.users_without_secure_token,
                "users without a Secure Token",
                "every user has a Secure Token",
            ),
            (
                &self.identity_expiring,
                "identity expiring within 30 days",
                "",
            ),
            (&self.checked_out, "including checked-out Macs", ""),
        ] {
            match yes_no("", v) {
                Ok(Some(true)) => out.push(yes.to_string()),
                Ok(Some(false)) if !no.is_empty() => out.push(no.to_string()),
                _ => {}
            }
        }
        if !self.group.is_empty() {
            out.push(format!("group {}", self.group));
        }
        out
    }
}

/// A device as a row of the list.
struct DeviceRow {
    udid: String,
    href: String,
    name: String,
    serial: String,
    os: String,
    status: &'static str,
    status_class: &'static str,
    reason: String,
    verified: &'static str,
    silicon: &'static str,
    users_without: u64,
    group: String,
    last_seen: String,
}

/// A choice of a `<select>`, with whether it is the current one.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn choices(current: &str, options: &[(&str, &str)]) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
            selected: *value == current,
        })
        .collect()
}

fn yes_no_choices(current: &str, yes: &str, no: &str) -> Vec<Choice> {
    choices(current, &[("", "Any"), ("true", yes), ("false", no)])
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DeviceList<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    q: &'a ListQuery,
    described: Vec<String>,
    statuses: Vec<Choice>,
    groups: Vec<Choice>,
    silicon: Vec<Choice>,
    verified: Vec<Choice>,
    cannot_authorize: Vec<Choice>,
    without_st: Vec<Choice>,
    rows: Vec<DeviceRow>,
    descending: bool,
    sort_link: String,
    first_link: Option<String>,
    next_link: Option<String>,
}

pub(crate) fn status_class(s: BootstrapStatus) -> &'static str {
    match s {
        BootstrapStatus::Escrowed => "st-ok",
        BootstrapStatus::NotEscrowed => "st-bad",
        BootstrapStatus::NotSupported => "st-na",
    }
}

pub(crate) fn yes_no_text(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "Yes",
        Some(false) => "No",
        None => "—",
    }
}

async fn list(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_page(
            &admin,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "the device list's query could not be read",
        );
    };
    let now = now_millis();
    let f = match q.filter(now) {
        Ok(f) => f,
        Err(m) => return error_page(&admin, StatusCode::BAD_REQUEST, "Bad request", &m),
    };
    // One row more than the page shows: whether a next page exists, without an empty last page.
    let shown = f.limit as usize;
    let mut devices = match s
        .mdm
        .admin_devices(&DeviceFilter {
            limit: f.limit + 1,
            ..f.clone()
        })
        .await
    {
        Ok(d) => d,
        Err(e) => return service_error_page(&admin, e),
    };
    let more = devices.len() > shown;
    devices.truncate(shown);
    let groups: Vec<Group> = match s.mdm.store().list_groups().await {
        Ok(g) => g,
        Err(e) => return service_error_page(&admin, e.into()),
    };
    let next = more
        .then(|| devices.last().map(|d| d.enrollment.id.clone()))
        .flatten();
    let rows = devices
        .iter()
        .map(|d| {
            let v = service::device_view::device_view(d);
            let status = service::status::DeviceStatus::status(d);
            DeviceRow {
                href: device_href(&v.id),
                name: v.device_name.unwrap_or_default(),
                serial: v.serial_number.unwrap_or_default(),
                os: v.os_version.unwrap_or_default(),
                status: status.label(),
                status_class: status_class(status),
                reason: v.bootstrap_token.reason.unwrap_or_default(),
                verified: yes_no_text(v.bootstrap_token.verified),
                silicon: yes_no_text(v.apple_silicon),
                users_without: v.users_without_secure_token,
                group: v.group.map(|g| g.name.unwrap_or(g.id)).unwrap_or_default(),
                last_seen: when(Some(v.last_seen_at), now),
                udid: v.id,
            }
        })
        .collect();
    let mut group_choices = vec![Choice {
        value: String::new(),
        label: "Any".into(),
        selected: q.group.is_empty(),
    }];
    group_choices.extend(groups.iter().map(|g| Choice {
        value: g.id.clone(),
        label: g.name.clone(),
        selected: g.id == q.group,
    }));
    render(&DeviceList {
        admin: &admin,
        nav: "devices",
        described: q.described(),
        statuses: choices(
            &q.status,
            &[
                ("", "Any"),
                ("escrowed", "Configured"),
                ("not_escrowed", "Not configured"),
                ("not_supported", "NA"),
            ],
        ),
        groups: group_choices,
        silicon: yes_no_choices(&q.apple_silicon, "Apple silicon", "Intel"),
        verified: yes_no_choices(&q.verified, "Verified", "Never verified"),
        cannot_authorize: yes_no_choices(&q.cannot_authorize, "Cannot authorize", "Can authorize"),
        without_st: yes_no_choices(
            &q.users_without_secure_token,
            "Some user lacks one",
            "None lacks one",
        ),
        rows,
        descending: f.descending,
        sort_link: q.link(None, Some(if f.descending { "udid" } else { "-udid" })),
        first_link: (!q.after.is_empty()).then(|| q.link(None, None)),
        next_link: next.map(|id| q.link(Some(&id), None)),
        q: &q,
    })
}

/// A 404 page for an unknown device.
pub(crate) fn unknown_device(admin: &ConsoleAdmin, udid: &str) -> Response {
    error_page(
        admin,
        StatusCode::NOT_FOUND,
        "No such device",
        &format!("No enrolled Mac has the UDID {udid}."),
    )
    .into_response()
}
