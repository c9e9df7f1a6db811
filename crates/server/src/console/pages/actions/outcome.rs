//! What a console form post answers: a result page that says what happened (or why nothing did) with links
//! back, the checks every post passes first (role, then CSRF token, then the form itself), and the mapping of
//! service errors to statuses. Shared by the device actions and the group pages.
//!
//! Guarantees: a post is acted on only after [`accept`] passed; a form that cannot be read is refused without
//! echoing any of it (it may hold a password); an internal error is logged and shown only as "see the server
//! log".

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use service::{ErrorKind, ServiceError};

use crate::console::{ConsoleAdmin, ConsoleRole, render};

/// A value shown on a result page once and never again (an enrollment link).
pub struct OnceValue {
    pub label: String,
    pub value: String,
}

/// The page a form post answers with.
#[derive(Template)]
#[template(path = "console/action_result.html")]
pub struct Outcome<'a> {
    pub admin: &'a ConsoleAdmin,
    pub nav: &'static str,
    pub title: String,
    /// `ok` or `bad`: the message's class.
    pub tone: &'static str,
    pub message: String,
    pub details: Vec<String>,
    pub once: Option<OnceValue>,
    /// Links back: (href, label).
    pub back: Vec<(String, String)>,
}

impl<'a> Outcome<'a> {
    pub fn done(admin: &'a ConsoleAdmin, nav: &'static str, title: &str, message: String) -> Self {
        Outcome {
            admin,
            nav,
            title: title.to_string(),
            tone: "ok",
            message,
            details: Vec::new(),
            once: None,
            back: Vec::new(),
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.details.push(d.into());
        self
    }

    pub fn back(mut self, href: impl Into<String>, label: impl Into<String>) -> Self {
        self.back.push((href.into(), label.into()));
        self
    }

    /// Answer 200 with the page.
    pub fn page(self) -> Response {
        render(&self)
    }

    /// Answer `status` with the page, marked as a failure.
    pub fn failed(mut self, status: StatusCode) -> Response {
        self.tone = "bad";
        (status, render(&self)).into_response()
    }
}

/// The status and the message a service error is shown with; internal details stay in the log.
pub fn service_failure(err: &ServiceError) -> (StatusCode, String) {
    if matches!(err.kind(), ErrorKind::Internal) {
        tracing::error!(error = %err, "console action failed");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log".into(),
        );
    }
    (crate::api::status_of(err.kind()), err.to_string())
}

/// A failure page for a service error: "`what` failed: `<reason>`", nothing changed.
pub fn refused(
    admin: &ConsoleAdmin,
    nav: &'static str,
    what: &str,
    err: &ServiceError,
    back: (String, String),
) -> Response {
    let (status, reason) = service_failure(err);
    Outcome::done(admin, nav, what, format!("{what} failed: {reason}"))
        .back(back.0, back.1)
        .failed(status)
}

#[derive(Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// The checks before any post is acted on: the admin's role (403), the CSRF token (403), then the form
/// (400, without repeating any of it).
#[allow(clippy::result_large_err)]
pub fn accept<T: DeserializeOwned>(
    admin: &ConsoleAdmin,
    role: ConsoleRole,
    body: &[u8],
) -> Result<T, Response> {
    admin.require(role)?;
    let presented: CsrfField = serde_urlencoded::from_bytes(body).unwrap_or_default();
    admin.check_csrf(&presented.csrf)?;
    serde_urlencoded::from_bytes(body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "the form could not be read (send it from the console page); nothing was changed\n",
        )
            .into_response()
    })
}

/// A form text field: trimmed, None when empty.
pub fn given(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A checkbox: ticked when the form sent `on` (or `true`).
pub fn ticked(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("on" | "true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_absent_and_only_on_ticks_a_box() {
        assert_eq!(given("  "), None);
        assert_eq!(given(" ada "), Some("ada".into()));
        assert!(ticked(&Some("on".into())));
        assert!(!ticked(&None));
        assert!(!ticked(&Some("off".into())));
    }
}
