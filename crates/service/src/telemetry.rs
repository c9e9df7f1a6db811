//! What the device endpoints record for `GET /metrics`, through the `metrics` facade (a no-op until the server
//! installs a recorder). Guarantees: every label value is one of a fixed set of static strings -- a check-in
//! `MessageType` the parser accepted, a command report `Status`, or `unparsed` -- so no UDID, certificate,
//! token or other device-chosen text ever becomes a label, and cardinality stays bounded.

use std::time::Duration;

use crate::{ErrorKind, ServiceError};

/// Counter `{message, outcome}`: check-in messages and command reports handled.
pub const CHECKIN_TOTAL: &str = "escrowd_checkin_total";
/// Histogram `{message}`: time from the body in hand to the answer, in seconds.
pub const CHECKIN_DURATION: &str = "escrowd_checkin_duration_seconds";
/// The `message` label of a body that did not parse (no trustworthy type to name).
pub const UNPARSED: &str = "unparsed";

/// The `outcome` label: `success`, `unauthenticated` (the credential or its binding failed), `refused`
/// (well-formed and authenticated, or malformed, but not accepted), or `error` (our fault).
pub fn outcome<T>(result: &Result<T, ServiceError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(e) => match e.kind() {
            ErrorKind::Unauthenticated | ErrorKind::AdminUnauthorized => "unauthenticated",
            ErrorKind::Internal => "error",
            ErrorKind::BadRequest
            | ErrorKind::Refused
            | ErrorKind::TooLarge
            | ErrorKind::Invalid
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Forbidden => "refused",
        },
    }
}

/// Count one device message and its duration. `message` is a check-in `MessageType`, a report `Status`, or
/// [`UNPARSED`].
pub(crate) fn record_device_message<T>(
    message: &'static str,
    result: &Result<T, ServiceError>,
    elapsed: Duration,
) {
    metrics::counter!(CHECKIN_TOTAL, "message" => message, "outcome" => outcome(result))
        .increment(1);
    metrics::histogram!(CHECKIN_DURATION, "message" => message).record(elapsed.as_secs_f64());
}
