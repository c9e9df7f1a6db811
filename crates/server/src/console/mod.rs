//! The web console (issue 15): server-rendered HTML for Mac admins, from askama templates compiled into the
//! binary (`crates/server/templates/console/`) and assets embedded with `include_bytes!`
//! (`crates/server/assets/console/`). No Node build, nothing to install.
//!
//! Layout of this module:
//! - [`session`]: who is signed in ([`ConsoleAdmin`], an axum extractor), roles, CSRF tokens, sign-in and
//!   sign-out;
//! - [`pages`]: the pages themselves (dashboard, devices, device, groups, reports) and their form posts;
//! - this file: the router, the security headers every console answer carries, the embedded assets and the
//!   [`render`] helper.
//!
//! Rules for every page: no secret (token, password, registration secret, API key) is ever rendered; every
//! form post carries the session's CSRF token and is checked with [`ConsoleAdmin::check_csrf`]; the
//! Content-Security-Policy forbids inline script and style.

pub mod pages;
pub mod session;
pub mod time;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

pub use session::{ConsoleAdmin, ConsoleRole};

use crate::AppState;

/// The console's Content-Security-Policy: only this origin's scripts, styles and images; no inline script or
/// style, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (pages, sign-in, assets), each answer with the console's security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(session::router())
        .merge(pages::router())
        .route("/assets/console.css", get(css))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Render a template into an HTML answer; a template error is a 500 that says only that (it is logged).
pub fn render<T: askama::Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log\n",
            )
                .into_response()
        }
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// The console's style sheet, embedded.
const CONSOLE_CSS: &[u8] = include_bytes!("../../assets/console/console.css");

/// An embedded asset; cached for an hour (assets change only with the binary).
pub fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Security headers on every console answer: the CSP, no sniffing, no framing, no referrer to other sites
/// (`same-origin`: with `no-referrer` Chromium sends `Origin: null` on the console's own form posts, which the
/// sign-in's Origin check refuses); pages are not cached (they show a fleet's state and the signed-in admin's CSRF token).
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
