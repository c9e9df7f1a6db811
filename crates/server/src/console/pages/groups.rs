//! Groups: the list, a group's page with its **Enable Bootstrap Token** switch (escrow on/off, keeping or
//! deleting the tokens already escrowed) and its settings, its enrollment links (created here and shown once,
//! then only their metadata), its signed enrollment profile, and creating a group.
//!
//! Everyone signed in sees the groups and their settings; changes, enrollment links and the profile (it holds
//! the group's SCEP challenge) are for admins, as in the admin API. Every post passes
//! [`outcome::accept`](super::actions::outcome::accept) (role, CSRF, form) and calls the same service methods
//! as the API, audited under the signed-in admin's actor. Guarantees: an enrollment token is rendered only on
//! the answer to the post that created it.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use service::admin::{GroupChange, OnEscrowDisabled};
use service::enroll::{NewEnrollmentToken, ProfileUrls};
use store::{EnrollmentToken, Group};

use super::actions::outcome::{OnceValue, Outcome, accept, given, refused, ticked};
use crate::AppState;
use crate::console::time::{iso_utc as iso, relative};
use crate::console::{ConsoleAdmin, ConsoleRole, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/groups", get(list).post(create))
        .route("/groups/{id}", get(one))
        .route("/groups/{id}/escrow", post(escrow))
        .route("/groups/{id}/settings", post(settings))
        .route("/groups/{id}/enrollment-tokens", post(create_token))
        .route(
            "/groups/{id}/enrollment-tokens/{token}/revoke",
            post(revoke_token),
        )
        .route("/groups/{id}/profile", get(profile))
}

const NAV: &str = "groups";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A group as the pages show it.
struct GroupRow {
    id: String,
    name: String,
    escrow: bool,
    prompt: bool,
    updated_iso: String,
    updated_ago: String,
}

fn group_row(g: &Group, now: i64) -> GroupRow {
    GroupRow {
        id: g.id.clone(),
        name: g.name.clone(),
        escrow: g.bootstrap_escrow_enabled,
        prompt: g.prompt_user_to_allow_bootstrap_token_for_authentication,
        updated_iso: iso(g.updated_at),
        updated_ago: relative(g.updated_at, now),
    }
}

fn group_links(id: &str) -> (String, String) {
    (format!("/groups/{id}"), "Back to the group".into())
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct GroupsPage<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    groups: Vec<GroupRow>,
}

async fn list(State(s): State<AppState>, admin: ConsoleAdmin) -> Response {
    let groups = match s.mdm.store().list_groups().await {
        Ok(g) => g,
        Err(e) => {
            return refused(
                &admin,
                NAV,
                "Listing the groups",
                &e.into(),
                ("/".into(), "Dashboard".into()),
            );
        }
    };
    let now = now_ms();
    render(&GroupsPage {
        admin: &admin,
        nav: NAV,
        groups: groups.iter().map(|g| group_row(g, now)).collect(),
    })
}

/// An enrollment link's metadata (never the token).
struct TokenRow {
    id: String,
    name: String,
    uses: String,
    expires: String,
    state: &'static str,
}

fn token_row(t: &EnrollmentToken, now: i64) -> TokenRow {
    let state = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else if t.max_uses.is_some_and(|m| t.uses >= m) {
        "used up"
    } else {
        "active"
    };
    TokenRow {
        id: t.id.clone(),
        name: t.name.clone(),
        uses: match t.max_uses {
            Some(m) => format!("{} of {m}", t.uses),
            None => format!("{} (no limit)", t.uses),
        },
        expires: t.expires_at.map_or_else(
            || "never".into(),
            |at| format!("{} ({})", relative(at, now), iso(at)),
        ),
        state,
    }
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage<'a> {
    admin: &'a ConsoleAdmin,
    nav: &'static str,
    group: GroupRow,
    tokens: Vec<TokenRow>,
}

async fn one(State(s): State<AppState>, admin: ConsoleAdmin, Path(id): Path<String>) -> Response {
    let back = || ("/groups".to_string(), "All groups".to_string());
    let g = match s.mdm.admin_group(&id).await {
        Ok(g) => g,
        Err(e) => return refused(&admin, NAV, "Opening the group", &e, back()),
    };
    let now = now_ms();
    // Enrollment links are admin-only, as in the API.
    let tokens = if admin.role >= ConsoleRole::Admin {
        match s.mdm.list_enrollment_tokens().await {
            Ok(t) => t
                .iter()
                .filter(|t| t.group_id == g.id)
                .map(|t| token_row(t, now))
                .collect(),
            Err(e) => return refused(&admin, NAV, "Listing enrollment links", &e, back()),
        }
    } else {
        Vec::new()
    };
    render(&GroupPage {
        admin: &admin,
        nav: NAV,
        group: group_row(&g, now),
        tokens,
    })
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    bootstrap_escrow_enabled: Option<String>,
    prompt: Option<String>,
}

async fn create(State(s): State<AppState>, admin: ConsoleAdmin, body: Bytes) -> Response {
    let f: CreateForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match s
        .mdm
        .admin_create_group(
            &f.name,
            ticked(&f.bootstrap_escrow_enabled),
            ticked(&f.prompt),
            &admin.actor,
        )
        .await
    {
        Ok(g) => Outcome::done(
            &admin,
            NAV,
            "Group created",
            format!(
                "Created the group {} with Bootstrap Token escrow {}.",
                g.name,
                if g.bootstrap_escrow_enabled {
                    "on"
                } else {
                    "off"
                }
            ),
        )
        .back(format!("/groups/{}", g.id), "Open the group")
        .back("/groups", "All groups")
        .page(),
        Err(e) => refused(
            &admin,
            NAV,
            "Creating the group",
            &e,
            ("/groups".into(), "All groups".into()),
        ),
    }
}

#[derive(Deserialize)]
struct EscrowForm {
    #[serde(default)]
    enabled: String,
    on_escrow_disabled: Option<String>,
}

async fn escrow(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f: EscrowForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    const WHAT: &str = "Switching Bootstrap Token escrow";
    let bad = |message: &str| {
        Outcome::done(
            &admin,
            NAV,
            WHAT,
            format!("{message}; nothing was changed."),
        )
        .back(group_links(&id).0, group_links(&id).1)
        .failed(StatusCode::BAD_REQUEST)
    };
    let enabled = match f.enabled.as_str() {
        "on" => true,
        "off" => false,
        _ => return bad("Say on or off"),
    };
    let on_escrow_disabled = match f.on_escrow_disabled.as_deref() {
        None | Some("keep") => OnEscrowDisabled::Keep,
        Some("clear") => OnEscrowDisabled::Clear,
        Some(_) => return bad("Choose to keep or to delete the escrowed tokens"),
    };
    let change = GroupChange {
        bootstrap_escrow_enabled: Some(enabled),
        on_escrow_disabled,
        ..Default::default()
    };
    match s.mdm.admin_update_group(&id, &change, &admin.actor).await {
        Ok(u) => {
            let message = if enabled {
                format!(
                    "Bootstrap Token escrow is on for {}: its Macs may escrow their token.",
                    u.group.name
                )
            } else {
                format!(
                    "Bootstrap Token escrow is off for {}: its Macs are refused when they try to escrow a token.",
                    u.group.name
                )
            };
            let mut page = Outcome::done(&admin, NAV, "Escrow switched", message);
            if !enabled {
                page = page.detail(match on_escrow_disabled {
                    OnEscrowDisabled::Keep => "Tokens already escrowed were kept.".to_string(),
                    OnEscrowDisabled::Clear => {
                        format!("{} escrowed token(s) were deleted.", u.tokens_cleared)
                    }
                });
            }
            let (href, label) = group_links(&id);
            page.back(href, label).page()
        }
        Err(e) => refused(&admin, NAV, WHAT, &e, group_links(&id)),
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    name: String,
    prompt: Option<String>,
}

async fn settings(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f: SettingsForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let change = GroupChange {
        name: given(&f.name),
        prompt_user_to_allow_bootstrap_token_for_authentication: Some(ticked(&f.prompt)),
        ..Default::default()
    };
    match s.mdm.admin_update_group(&id, &change, &admin.actor).await {
        Ok(u) => {
            let g = &u.group;
            let (href, label) = group_links(&id);
            Outcome::done(
                &admin,
                NAV,
                "Settings saved",
                format!(
                    "{}: the user is {}asked to allow the Bootstrap Token for authentication.",
                    g.name,
                    if g.prompt_user_to_allow_bootstrap_token_for_authentication {
                        ""
                    } else {
                        "not "
                    }
                ),
            )
            .back(href, label)
            .page()
        }
        Err(e) => refused(&admin, NAV, "Saving the settings", &e, group_links(&id)),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    expires_in_days: String,
}

/// An optional whole number field: None when empty, Err when not a number.
fn number(v: &str) -> Result<Option<i64>, ()> {
    given(v)
        .map(|v| v.parse::<i64>().map_err(|_| ()))
        .transpose()
}

async fn create_token(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f: TokenForm = match accept(&admin, ConsoleRole::Admin, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    const WHAT: &str = "Creating an enrollment link";
    let (Ok(max_uses), Ok(days)) = (number(&f.max_uses), number(&f.expires_in_days)) else {
        let (href, label) = group_links(&id);
        return Outcome::done(
            &admin,
            NAV,
            WHAT,
            "Uses and days must be whole numbers (or empty); nothing was created.".into(),
        )
        .back(href, label)
        .failed(StatusCode::BAD_REQUEST);
    };
    let group = match s.mdm.admin_group(&id).await {
        Ok(g) => g,
        Err(e) => return refused(&admin, NAV, WHAT, &e, group_links(&id)),
    };
    let req = NewEnrollmentToken {
        group: group.id.clone(),
        name: given(&f.name).unwrap_or_else(|| format!("link for {}", group.name)),
        max_uses,
        expires_in_ms: days.map(|d| d.saturating_mul(86_400_000)),
    };
    match s.mdm.create_enrollment_token(&req, &admin.actor).await {
        Ok((t, token)) => {
            let link = format!(
                "{}/enroll?token={}",
                s.public_url.trim_end_matches('/'),
                token.expose()
            );
            let row = token_row(&t, now_ms());
            let mut page = Outcome::done(
                &admin,
                NAV,
                "Enrollment link created",
                format!(
                    "The link {} enrolls Macs into {}. Uses: {}; expires: {}.",
                    t.name, group.name, row.uses, row.expires
                ),
            );
            page.once = Some(OnceValue {
                label: "Enrollment link".into(),
                value: link,
            });
            let (href, label) = group_links(&id);
            page.back(href, label).page()
        }
        Err(e) => refused(&admin, NAV, WHAT, &e, group_links(&id)),
    }
}

#[derive(Deserialize)]
struct Plain {}

async fn revoke_token(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path((id, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = accept::<Plain>(&admin, ConsoleRole::Admin, &body) {
        return r;
    }
    // Only a link of this group is revoked from this group's page.
    let belongs = match s.mdm.list_enrollment_tokens().await {
        Ok(all) => all.iter().any(|t| t.id == token && t.group_id == id),
        Err(e) => return refused(&admin, NAV, "Revoking the link", &e, group_links(&id)),
    };
    let (href, label) = group_links(&id);
    if !belongs {
        return Outcome::done(
            &admin,
            NAV,
            "Revoking the link",
            "This group has no such enrollment link; nothing was changed.".into(),
        )
        .back(href, label)
        .failed(StatusCode::NOT_FOUND);
    }
    match s.mdm.revoke_enrollment_token(&token, &admin.actor).await {
        Ok(()) => Outcome::done(
            &admin,
            NAV,
            "Enrollment link revoked",
            "The link no longer enrolls Macs.".into(),
        )
        .back(href, label)
        .page(),
        Err(e) => refused(&admin, NAV, "Revoking the link", &e, group_links(&id)),
    }
}

/// The group's signed enrollment profile (admin: it carries the group's SCEP challenge). Audited.
async fn profile(
    State(s): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin.require(ConsoleRole::Admin) {
        return r;
    }
    let urls = ProfileUrls {
        base_url: s.public_url.clone(),
    };
    match s.mdm.group_profile(&id, &urls, &admin.actor).await {
        Ok(p) => crate::enroll::profile_response(p),
        Err(e) => refused(&admin, NAV, "Downloading the profile", &e, group_links(&id)),
    }
}
