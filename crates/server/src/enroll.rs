//! `GET /enroll?token=…`: a signed enrollment profile (`application/x-apple-aspen-config`).
//!
//! Status codes: 200 with the profile; 400 for a missing, repeated, over-long or undecodable token parameter
//! (nothing consumed); 403 for an unknown, revoked, expired or used-up token (nothing consumed); 409 when no
//! push certificate is uploaded yet (nothing consumed); 500 for our faults. Answers are plain text and never
//! echo the token.

use axum::extract::{Extension, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::ErrorKind;
use service::enroll::{MAX_TOKEN_CHARS, ProfileUrls};
use vault::Secret;

use crate::AppState;
use crate::listener::PeerAddr;

/// Content type of a configuration profile.
pub const PROFILE_CONTENT_TYPE: &str = "application/x-apple-aspen-config";
/// Longest query string read.
const MAX_QUERY_CHARS: usize = 1024;

pub async fn enroll(
    State(state): State<AppState>,
    addr: Option<Extension<PeerAddr>>,
    RawQuery(query): RawQuery,
) -> Response {
    let token = match token_param(query.as_deref().unwrap_or("")) {
        Ok(t) => t,
        Err(reason) => return plain(StatusCode::BAD_REQUEST, reason),
    };
    let urls = ProfileUrls {
        base_url: state.public_url.clone(),
    };
    match state
        .mdm
        .enroll_profile(&token, &urls, &PeerAddr::source(addr.as_deref()))
        .await
    {
        Ok(profile) => profile_response(profile),
        Err(err) => match err.kind() {
            ErrorKind::Invalid | ErrorKind::BadRequest => {
                plain(StatusCode::BAD_REQUEST, &err.to_string())
            }
            ErrorKind::Conflict => plain(StatusCode::CONFLICT, &err.to_string()),
            ErrorKind::Internal => {
                tracing::error!(error = %err, "serving an enrollment profile failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log",
                )
            }
            _ => plain(StatusCode::FORBIDDEN, &err.to_string()),
        },
    }
}

/// A signed profile as a download.
pub fn profile_response(profile: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, PROFILE_CONTENT_TYPE),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"escrowd-enroll.mobileconfig\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        profile,
    )
        .into_response()
}

fn plain(status: StatusCode, reason: &str) -> Response {
    (status, format!("{reason}\n")).into_response()
}

/// The one `token` parameter of a query string.
fn token_param(query: &str) -> Result<Secret<String>, &'static str> {
    if query.len() > MAX_QUERY_CHARS {
        return Err("query string too long");
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|_| "query string is not valid form encoding")?;
    let mut tokens = pairs.into_iter().filter(|(k, _)| k == "token");
    let Some((_, token)) = tokens.next() else {
        return Err("missing token parameter (use /enroll?token=…)");
    };
    if tokens.next().is_some() {
        return Err("token parameter given more than once");
    }
    if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
        return Err("token parameter is empty or too long");
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("token parameter has characters no token has");
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::token_param;

    #[test]
    fn token_parameter_parsing_refuses_hostile_queries() {
        assert_eq!(
            token_param("token=escrowd_enroll_ab12").unwrap().expose(),
            "escrowd_enroll_ab12"
        );
        assert_eq!(token_param("x=1&token=abc").unwrap().expose(), "abc");
        for bad in [
            "",
            "token=",
            "token=a&token=b",
            "token=%ZZ",
            "token=a%00b",
            "token=a'%20OR%201=1",
            "token=%E2%80%AE",
            &format!("token={}", "a".repeat(200)),
            &format!("token=a&pad={}", "b".repeat(2000)),
        ] {
            assert!(token_param(bad).is_err(), "{bad:?}");
        }
    }
}
