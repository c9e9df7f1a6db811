//! Who is signed in to the console: password sign-in, cookie sessions, CSRF tokens, sign-out.
//!
//! - `GET /signin` shows the form and sets a pre-session CSRF cookie whose value the form repeats (double
//!   submit), so the sign-in form itself cannot be posted from another site; `POST /signin` checks it, the
//!   `Origin` header and the password (`service::console_admins`: backoff, audit), then sets a NEW session
//!   cookie (no fixation) and redirects to `next` (only a same-site path; anything else goes to `/`).
//! - The session cookie: `__Host-escrowd_session` with `Secure` when the request came over TLS; on plain HTTP
//!   (loopback tests, a TLS-terminating proxy in front) `escrowd_session` without `Secure`, since a client may
//!   drop or never send a Secure cookie over http. Always HttpOnly, SameSite=Strict, Path=/; no Max-Age (the
//!   server ends it: 30 minutes idle, 12 hours absolute).
//! - A page GET without a live session is redirected (303) to `/signin?next=<path>`; any other request
//!   without one is 401. Every POST with an `Origin` that is not this server is 403, and pages check the
//!   form's `csrf` field against the session's token with [`ConsoleAdmin::check_csrf`].
//! - `POST /signout` deletes the session server-side and clears the cookie.

use std::net::IpAddr;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use service::console_admins::SignInError;

use crate::AppState;
use crate::console::render;
use crate::listener::PeerAddr;

/// What a signed-in admin may do; matches the API scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsoleRole {
    /// Look at devices, users, events, groups, reports.
    Read,
    /// Read, plus actions on Macs (refresh inventory, Grant Secure Token, create a user, troubleshoot).
    Operate,
    /// Everything: group settings, clearing a token, enrollment tokens.
    Admin,
}

impl ConsoleRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Read => "read",
            ConsoleRole::Operate => "operate",
            ConsoleRole::Admin => "admin",
        }
    }

    fn from_scope(scope: store::ApiScope) -> Self {
        match scope {
            store::ApiScope::Read => ConsoleRole::Read,
            store::ApiScope::Operate => ConsoleRole::Operate,
            store::ApiScope::Admin => ConsoleRole::Admin,
        }
    }
}

/// The signed-in admin of a console request. A handler that takes it runs only for a signed-in admin; without
/// one, a page GET is redirected to the sign-in page and anything else is answered 401.
#[derive(Debug, Clone)]
pub struct ConsoleAdmin {
    /// The admin's name, as events name them (`console <name>` in the audit trail).
    pub name: String,
    pub role: ConsoleRole,
    /// The session's CSRF token; every form carries it in a hidden `csrf` field, and the layout puts it in
    /// `<meta name="csrf-token">` for scripts.
    pub csrf: String,
    /// The actor the service records for this admin's actions (`console <name>`).
    pub actor: service::apikeys::Actor,
}

impl ConsoleAdmin {
    /// Refuse (403) unless the admin's role is at least `role`.
    #[allow(clippy::result_large_err)]
    pub fn require(&self, role: ConsoleRole) -> Result<(), Response> {
        if self.role >= role {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                format!(
                    "your role ({}) cannot do this; it needs {}\n",
                    self.role.as_str(),
                    role.as_str()
                ),
            )
                .into_response())
        }
    }

    /// Refuse (403) a form post whose `csrf` field is not this session's token.
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, presented: &str) -> Result<(), Response> {
        if same_secret(presented, &self.csrf) {
            Ok(())
        } else {
            Err(stale_form())
        }
    }
}

fn stale_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this form is stale or did not come from the console: reload the page and try again\n",
    )
        .into_response()
}

/// Constant-time equality of two non-empty tokens.
fn same_secret(presented: &str, expected: &str) -> bool {
    !expected.is_empty()
        && presented.len() == expected.len()
        && openssl::memcmp::eq(presented.as_bytes(), expected.as_bytes())
}

fn over_tls(parts: &Parts) -> bool {
    parts.extensions.get::<PeerAddr>().is_some_and(|p| p.tls)
}

/// The connection's peer, as the listener records it.
type Peer = Option<Extension<PeerAddr>>;

fn peer_tls(peer: &Peer) -> bool {
    peer.as_ref().is_some_and(|p| p.0.tls)
}

/// The session cookie's name for a request over TLS or not.
pub fn session_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-escrowd_session"
    } else {
        "escrowd_session"
    }
}

fn signin_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-escrowd_signin"
    } else {
        "escrowd_signin"
    }
}

/// A `Set-Cookie` value with the console's attributes; `None` clears the cookie.
fn set_cookie(name: &str, value: Option<&str>, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{name}={v}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("cookie names and hex values are valid header text")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a state-changing request's `Origin` (when present) is this server (the request's own `Host`).
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn cross_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this request came from another site (its Origin is not this server); refused\n",
    )
        .into_response()
}

/// `next` if it is a path on this site (`/…`, not `//…` nor `/\…`, no control characters), else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
        if !is_read && !origin_ok(&parts.headers) {
            return Err(cross_origin());
        }
        let tls = over_tls(parts);
        let live = match cookie(&parts.headers, session_cookie_name(tls)) {
            Some(token) => state.mdm.console_session(token).await.map_err(|e| {
                tracing::error!(error = %e, "console session lookup failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "session lookup failed\n").into_response()
            })?,
            None => None,
        };
        let Some(live) = live else {
            if is_read {
                let path = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let next: String = form_urlencoded_byte_serialize(&path);
                return Err(Redirect::to(&format!("/signin?next={next}")).into_response());
            }
            return Err((StatusCode::UNAUTHORIZED, "sign in first\n").into_response());
        };
        Ok(ConsoleAdmin {
            name: live.admin.name.clone(),
            role: ConsoleRole::from_scope(live.admin.role),
            csrf: live.session.csrf.clone(),
            actor: live.actor(),
        })
    }
}

fn form_urlencoded_byte_serialize(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|t| t.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

#[derive(askama::Template)]
#[template(path = "console/signin.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    name: &'a str,
    message: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The sign-in form with a fresh pre-session CSRF token (also set as a cookie), answered with `status`.
fn signin_form(
    tls: bool,
    status: StatusCode,
    next: &str,
    name: &str,
    message: Option<String>,
) -> Response {
    let mut raw = [0u8; 32];
    let csrf = match openssl::rand::rand_bytes(&mut raw).map(|()| hex::encode(raw)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "random generator failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut resp = render(&SignInPage {
        csrf: &csrf,
        next,
        name,
        message,
    });
    *resp.status_mut() = status;
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(signin_cookie_name(tls), Some(&csrf), tls),
    );
    resp
}

async fn signin_page(peer: Peer, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    signin_form(peer_tls(&peer), StatusCode::OK, &next, "", None)
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    /// Zeroed when the form is dropped (no `Debug`, never echoed back to the page).
    password: Option<apitypes::SecretString>,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

async fn signin_post(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !origin_ok(&headers) {
        return cross_origin();
    }
    let tls = peer_tls(&peer);
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            "the sign-in form could not be read\n",
        )
            .into_response();
    };
    let expected = cookie(&headers, signin_cookie_name(tls)).unwrap_or("");
    if !same_secret(&form.csrf, expected) {
        return stale_form();
    }
    let next = safe_next(form.next.as_deref());
    let from: Option<IpAddr> = peer.as_ref().map(|p| p.0.addr.ip());
    let name = form.name.trim();
    let password = form.password.as_ref().map_or("", |p| p.expose());
    match state.mdm.console_sign_in(name, password, from).await {
        Ok(signed_in) => {
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(
                    session_cookie_name(tls),
                    Some(signed_in.token.expose()),
                    tls,
                ),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(signin_cookie_name(tls), None, tls),
            );
            resp
        }
        Err(SignInError::Refused) => signin_form(
            tls,
            StatusCode::UNAUTHORIZED,
            &next,
            name,
            Some("Wrong name or password.".into()),
        ),
        Err(SignInError::LockedOut { retry_at }) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let wait_s = ((retry_at - now).max(0) + 999) / 1000;
            let secs = (retry_at / 1000).rem_euclid(86_400);
            let minutes = (wait_s + 59) / 60;
            let message = format!(
                "Too many failed sign-ins. Try again after {:02}:{:02}:{:02} UTC (in about {} minute{}).",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                minutes,
                if minutes == 1 { "" } else { "s" }
            );
            let mut resp = signin_form(
                tls,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                name,
                Some(message),
            );
            if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(SignInError::Service(e)) => {
            tracing::error!(error = %e, "console sign-in failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "sign-in failed; see the server log\n",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    admin: ConsoleAdmin,
    body: Bytes,
) -> Response {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    if let Err(refused) = admin.check_csrf(&form.csrf) {
        return refused;
    }
    let tls = peer_tls(&peer);
    if let Some(token) = cookie(&headers, session_cookie_name(tls))
        && let Err(e) = state.mdm.console_sign_out(token).await
    {
        tracing::error!(error = %e, "console sign-out failed");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sign-out failed; see the server log\n",
        )
            .into_response();
    }
    let mut resp = Redirect::to("/signin").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(session_cookie_name(tls), None, tls),
    );
    resp
}

/// `GET/POST /signin`, `POST /signout`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin_page).post(signin_post))
        .route("/signout", axum::routing::post(signout))
}
