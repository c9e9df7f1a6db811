//! The actions on a device, posted from the `console/device_actions.html` partial (which the device page and
//! this module's actions page include): refresh inventory, clear the escrowed Bootstrap Token (typed
//! confirmation), Grant Secure Token and Create User Account (agent actions with HPKE-sealed passwords),
//! troubleshoot, install the agent, block / unblock / approve the Mac's identity, cancel an agent action.
//!
//! Each post is answered with a result page (what was queued or changed, or why nothing was) and calls the same
//! service methods as the admin API, as the signed-in admin's actor. Guarantees: read-only admins are refused
//! (403) before anything is read; every post's CSRF token is checked ([`outcome::accept`]); passwords go
//! straight into `Secret`s and are never rendered, logged or put in an error; clearing a token needs the
//! Mac's serial number or UDID typed back.

mod agent;
pub mod outcome;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use service::admin::TypedCommand;
use store::{ActionStatus, AgentAction};

use crate::AppState;
use crate::console::time::{iso_utc as iso, relative};
use crate::console::{ConsoleAdmin, ConsoleRole, render};
use outcome::{Outcome, accept, given, refused, ticked};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/devices/{udid}/actions", get(page))
        .route(
            "/devices/{udid}/actions/refresh-inventory",
            post(refresh_inventory),
        )
        .route("/devices/{udid}/actions/clear-token", post(clear_token))
        .route(
            "/devices/{udid}/actions/grant-secure-token",
            post(agent::grant_secure_token),
        )
        .route(
            "/devices/{udid}/actions/create-user",
            post(agent::create_user),
        )
        .route(
            "/devices/{udid}/actions/troubleshoot",
            post(agent::troubleshoot),
        )
        .route(
            "/devices/{udid}/actions/install-agent",
            post(agent::install_agent),
        )
        .route("/devices/{udid}/actions/block", post(block))
        .route("/devices/{udid}/actions/unblock", post(unblock))
        .route(
            "/devices/{udid}/actions/approve-identity",
            post(approve_identity),
        )
        .route(
            "/devices/{udid}/actions/{action}/cancel",
            post(agent::cancel),
        )
}

const NAV: &str = "devices";

/// The links every result page of a device offers.
fn done<'a>(admin: &'a ConsoleAdmin, udid: &str, title: &str, message: String) -> Outcome<'a> {
    Outcome::done(admin, NAV, title, message)
        .back(format!("/devices/{udid}"), "Back to the device")
        .back(format!("/devices/{udid}/actions"), "The device's actions")
}

fn failed(admin: &ConsoleAdmin, udid: &str, what: &str, e: &service::ServiceError) -> Response {
    refused(
        admin,
        NAV,
        what,
        e,
        (format!("/devices/{udid}"), "Back to the device".into()),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One agent action as the actions page lists it (never a credential: only names and status).
struct ActionRow {
    id: String,
    kind: String,
    who: String,
    status: &'static str,
    reason: Option<String>,
    created_by: String,
    created_iso: String,
    created_ago: String,
    open: bool,
}

fn row(a: &AgentAction, now: i64) -> ActionRow {
    let params: serde_json::Value = serde_json::from_str(&a.params).unwrap_or_default();
    let name = |k: &str| params.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let who = match (name("user"), name("admin")) {
        (Some(u), Some(a)) => format!("{u} (by {a})"),
        (Some(u), None) => u,
        (None, Some(a)) => format!("by {a}"),
        (None, None) => "—".into(),
    };
    ActionRow {
        id: a.id.clone(),
        kind: a.kind.clone(),
        who,
        status: a.status.as_str(),
        reason: a.reason.clone(),
        created_by: a.created_by.clone(),
        created_iso: iso(a.created_at),
        created_ago: relative(a.created_at, now),
        open: matches!(a.status, ActionStatus::Queued | ActionStatus::Delivered),
    }
}

/// The actions page of a device: the actions partial and the agent actions queued for it.
#[derive(Template)]
#[template(path = "console/device_actions_page.html")]
struct ActionsPage<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    udid: &'a str,
    label: String,
    serial: Option<String>,
    agent: Option<String>,
    rows: Vec<ActionRow>,
    can_cancel: bool,
    /// When an admin blocked the Mac (relative), if it is blocked.
    blocked: Option<String>,
    pending: Vec<PendingRow>,
}

/// A certificate that claimed this Mac without proof, for the admin to approve or leave.
struct PendingRow {
    fingerprint: String,
    short: String,
    first_seen: String,
    last_seen: String,
    active: bool,
}

fn pending_row(p: &service::identity::PendingIdentity, now: i64) -> PendingRow {
    PendingRow {
        fingerprint: p.fingerprint.clone(),
        short: p.fingerprint.chars().take(16).collect(),
        first_seen: relative(p.first_seen_at, now),
        last_seen: relative(p.last_seen_at, now),
        active: p.active,
    }
}

async fn page(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
) -> Response {
    let back = || ("/devices".to_string(), "All devices".to_string());
    let d = match s.mdm.admin_device(&udid).await {
        Ok(d) => d,
        Err(e) => return refused(&admin, NAV, "Opening the device", &e, back()),
    };
    let actions = match s.mdm.admin_actions(&udid, 50).await {
        Ok(a) => a,
        Err(e) => return refused(&admin, NAV, "Listing its actions", &e, back()),
    };
    let agent = match s.mdm.admin_agent(&udid).await {
        Ok(a) => a,
        Err(e) => return refused(&admin, NAV, "Reading its agent", &e, back()),
    };
    let pending = match s.mdm.admin_pending_identities(&udid).await {
        Ok(p) => p,
        Err(e) => return refused(&admin, NAV, "Reading its pending identities", &e, back()),
    };
    let now = now_ms();
    let e = &d.enrollment;
    render(&ActionsPage {
        admin: &admin,
        nav: NAV,
        udid: &udid,
        label: e
            .device_name
            .clone()
            .or_else(|| e.serial_number.clone())
            .unwrap_or_else(|| udid.clone()),
        serial: e.serial_number.clone(),
        agent: agent.map(|a| relative(a.registered_at, now)),
        rows: actions.iter().map(|a| row(a, now)).collect(),
        can_cancel: admin.role >= ConsoleRole::Operate,
        blocked: e.blocked_at.map(|at| relative(at, now)),
        pending: pending.iter().map(|p| pending_row(p, now)).collect(),
    })
}

/// A form whose only field is the CSRF token.
#[derive(Deserialize)]
struct Plain {}

async fn refresh_inventory(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = accept::<Plain>(&admin, ConsoleRole::Operate, &body) {
        return r;
    }
    let ids = [udid.clone()];
    let mut queued = Vec::new();
    for (name, cmd) in [
        ("DeviceInformation", TypedCommand::DeviceInformation),
        ("SecurityInfo", TypedCommand::SecurityInfo),
        ("UserList", TypedCommand::UserList),
    ] {
        match s.mdm.admin_enqueue(&ids, &cmd, false, &admin.actor).await {
            Ok(uuid) => queued.push(format!("{name} (command {uuid})")),
            Err(e) => return failed(&admin, &udid, "Refreshing the inventory", &e),
        }
    }
    let push = match s.mdm.admin_push(&ids, &admin.actor).await {
        Ok(r) => match r.first().and_then(|r| r.error.clone()) {
            None => "The Mac was pushed to check in now.".to_string(),
            Some(e) => format!("The push failed ({e}); the Mac gets them at its next check-in."),
        },
        Err(e) => format!("The push failed ({e}); the Mac gets them at its next check-in."),
    };
    let mut page = done(
        &admin,
        &udid,
        "Inventory refresh queued",
        format!("Queued {} commands. {push}", queued.len()),
    );
    for q in queued {
        page = page.detail(q);
    }
    page.page()
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// Whether `typed` names the Mac: its serial number or its UDID (spaces around and letter case ignored).
async fn confirms(s: &AppState, udid: &str, typed: &str) -> Result<bool, service::ServiceError> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Ok(false);
    }
    let d = s.mdm.admin_device(udid).await?;
    let serial = d.enrollment.serial_number.as_deref().unwrap_or("");
    Ok(typed.eq_ignore_ascii_case(udid)
        || (!serial.is_empty() && typed.eq_ignore_ascii_case(serial)))
}

fn not_confirmed(admin: &ConsoleAdmin, udid: &str, what: &str) -> Response {
    done(
        admin,
        udid,
        what,
        "What you typed is not this Mac's serial number or UDID; nothing was changed.".into(),
    )
    .failed(StatusCode::BAD_REQUEST)
}

async fn clear_token(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    let f: ConfirmForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    const WHAT: &str = "Clearing the Bootstrap Token";
    match confirms(&s, &udid, &f.confirm).await {
        Ok(true) => {}
        Ok(false) => return not_confirmed(&admin, &udid, WHAT),
        Err(e) => return failed(&admin, &udid, WHAT, &e),
    }
    match s.mdm.admin_clear_token(&udid, &admin.actor).await {
        Ok(true) => done(
            &admin,
            &udid,
            "Bootstrap Token cleared",
            "The escrowed Bootstrap Token was deleted. The Mac escrows a new one when a Secure Token holder logs in."
                .into(),
        )
        .page(),
        Ok(false) => done(
            &admin,
            &udid,
            "No Bootstrap Token to clear",
            "No token was escrowed for this Mac; nothing changed.".into(),
        )
        .page(),
        Err(e) => failed(&admin, &udid, WHAT, &e),
    }
}

#[derive(Deserialize)]
struct BlockForm {
    clear_token: Option<String>,
    #[serde(default)]
    confirm: String,
}

async fn block(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    let f: BlockForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    const WHAT: &str = "Blocking the Mac";
    let clear = ticked(&f.clear_token);
    if clear {
        match confirms(&s, &udid, &f.confirm).await {
            Ok(true) => {}
            Ok(false) => return not_confirmed(&admin, &udid, WHAT),
            Err(e) => return failed(&admin, &udid, WHAT, &e),
        }
    }
    match s.mdm.admin_block_device(&udid, clear, &admin.actor).await {
        Ok(cleared) => done(
            &admin,
            &udid,
            "Mac blocked",
            format!(
                "Its certificates are refused at check-in and renewal until you unblock it. {}",
                if cleared {
                    "Its escrowed Bootstrap Token was deleted."
                } else {
                    "Its escrowed Bootstrap Token, if any, stays sealed."
                }
            ),
        )
        .page(),
        Err(e) => failed(&admin, &udid, WHAT, &e),
    }
}

async fn unblock(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = accept::<Plain>(&admin, ConsoleRole::Admin, &body) {
        return r;
    }
    match s.mdm.admin_unblock_device(&udid, &admin.actor).await {
        Ok(()) => done(
            &admin,
            &udid,
            "Mac unblocked",
            "Its certificates are accepted again.".into(),
        )
        .page(),
        Err(e) => failed(&admin, &udid, "Unblocking the Mac", &e),
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(default)]
    fingerprint: String,
}

async fn approve_identity(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    let f: ApproveForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let fingerprint = given(&f.fingerprint);
    match s
        .mdm
        .admin_approve_identity(&udid, fingerprint.as_deref(), &admin.actor)
        .await
    {
        Ok(fp) => done(
            &admin,
            &udid,
            "Identity approved",
            format!("The certificate {fp} now speaks for this Mac; its old Bootstrap Token was discarded."),
        )
        .page(),
        Err(e) => failed(&admin, &udid, "Approving the identity", &e),
    }
}
