//! The device actions that go through the Mac's agent: Grant Secure Token, Create User Account and the
//! troubleshooting checks (credentials HPKE-sealed to the agent by the service the moment they arrive; they
//! live here only inside `Secret`s and are never rendered), installing the agent, and cancelling an action.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use service::agent::NewAgentAction;
use vault::Secret;

use super::outcome::{accept, given, ticked};
use super::{Plain, done, failed, now_ms, row};
use crate::AppState;
use crate::console::{ConsoleAdmin, ConsoleRole};

/// The fields of the agent-action dialogs. Passwords are moved into `Secret`s at once; no `Debug`.
#[derive(Deserialize)]
struct AgentForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    full_name: String,
    make_admin: Option<String>,
    #[serde(default)]
    user_password: String,
    #[serde(default)]
    admin: String,
    #[serde(default)]
    admin_password: String,
}

fn secret(v: String) -> Option<Secret<String>> {
    let v = Secret::new(v);
    (!v.expose().is_empty()).then_some(v)
}

/// Queue an agent action of `kind` from the dialog's fields.
async fn agent_action(
    s: &AppState,
    admin: &ConsoleAdmin,
    udid: &str,
    kind: &str,
    f: AgentForm,
) -> Response {
    let new = NewAgentAction {
        kind: kind.to_string(),
        user: given(&f.user),
        admin: given(&f.admin),
        full_name: given(&f.full_name),
        make_admin: ticked(&f.make_admin),
        user_password: secret(f.user_password),
        admin_password: secret(f.admin_password),
    };
    let what = format!("Queueing {kind}");
    match s.mdm.admin_create_action(udid, new, &admin.actor).await {
        Ok(a) => {
            let who = row(&a, now_ms()).who;
            done(
                admin,
                udid,
                "Agent action queued",
                format!(
                    "Queued {} for {who}. The Mac's agent picks it up at its next poll; its status shows on the device's actions page.",
                    a.kind
                ),
            )
            .detail(format!("Action {}", a.id))
            .page()
        }
        Err(e) => failed(admin, udid, &what, &e),
    }
}

async fn agent_post(
    s: AppState,
    admin: ConsoleAdmin,
    udid: String,
    body: Bytes,
    kind: Option<&str>,
) -> Response {
    let f: AgentForm = match accept(&admin, ConsoleRole::Operate, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let kind = match kind {
        Some(k) => k.to_string(),
        None => f.kind.clone(),
    };
    agent_action(&s, &admin, &udid, &kind, f).await
}

pub(super) async fn grant_secure_token(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    agent_post(s, admin, udid, body, Some("grant_secure_token")).await
}

pub(super) async fn create_user(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    agent_post(s, admin, udid, body, Some("create_user")).await
}

/// The checks the Troubleshoot dialog offers (the agent's read-only and re-escrow actions).
const TROUBLESHOOT_KINDS: &[&str] = &[
    "troubleshoot",
    "validate_bootstrap_token",
    "reescrow_bootstrap_token",
];

pub(super) async fn troubleshoot(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    let f: AgentForm = match accept(&admin, ConsoleRole::Operate, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !TROUBLESHOOT_KINDS.contains(&f.kind.as_str()) {
        return done(
            &admin,
            &udid,
            "Troubleshooting",
            format!(
                "Pick one of the offered checks ({}); nothing was queued.",
                TROUBLESHOOT_KINDS.join(", ")
            ),
        )
        .failed(StatusCode::BAD_REQUEST);
    }
    let kind = f.kind.clone();
    agent_action(&s, &admin, &udid, &kind, f).await
}

#[derive(Deserialize)]
struct InstallForm {
    #[serde(default)]
    server_url: String,
    replace: Option<String>,
}

pub(super) async fn install_agent(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(udid): Path<String>,
    body: Bytes,
) -> Response {
    let f: InstallForm = match accept(&admin, ConsoleRole::Operate, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let url = given(&f.server_url).unwrap_or_else(|| s.public_url.clone());
    let replace = ticked(&f.replace);
    match s
        .mdm
        .admin_install_agent(&udid, &url, replace, &admin.actor)
        .await
    {
        Ok(i) => {
            let mut page = done(
                &admin,
                &udid,
                "Agent install queued",
                format!(
                    "Queued the agent's settings profile (command {}). Its one-time registration secret works for {} hours after the Mac installs it.",
                    i.command_uuid,
                    i.secret_ttl_ms / 3_600_000
                ),
            )
            .detail(format!("The agent reaches the server at {url}"));
            if i.revoked_secrets > 0 {
                page = page.detail(format!(
                    "{} earlier unused registration secret(s) no longer work.",
                    i.revoked_secrets
                ));
            }
            if i.replace {
                page = page.detail("This registration may replace the Mac's current agent.");
            }
            page.page()
        }
        Err(e) => failed(&admin, &udid, "Installing the agent", &e),
    }
}

pub(super) async fn cancel(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path((udid, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = accept::<Plain>(&admin, ConsoleRole::Operate, &body) {
        return r;
    }
    match s
        .mdm
        .admin_cancel_action(&udid, &action, &admin.actor)
        .await
    {
        Ok(a) => done(
            &admin,
            &udid,
            "Agent action cancelled",
            format!(
                "The {} action was cancelled; its sealed credentials are deleted.",
                a.kind
            ),
        )
        .page(),
        Err(e) => failed(&admin, &udid, "Cancelling the action", &e),
    }
}
