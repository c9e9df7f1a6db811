//! Unauthenticated refusals at the edge (issue 11): device check-in auth failures, agent signature failures,
//! SCEP and `/enroll` refusals, forwarded certificates from untrusted peers. Anyone can send these, so they
//! must not cost a row (and an unbounded detail) per request.
//!
//! Guarantees: a refusal only increments an in-memory tally keyed by (kind, source, hour); the tally is written
//! to the store by [`MdmService::flush_auth_failures`] (every [`FLUSH_INTERVAL`] by the server, before the
//! admin reads the counts, and at shutdown), one row per key, so the store sees at most one write per source
//! and kind per flush whatever the request rate. The tally holds at most [`MAX_PENDING_KEYS`] keys; beyond
//! that new sources are counted under [`OVERFLOW_SOURCE`]. Details are metadata only (never a body, a token or
//! a challenge) and are cut to [`store::MAX_AUTH_FAILURE_DETAIL`] bytes. The store keeps [`RETENTION_MS`] of
//! buckets and at most [`MAX_STORED_ROWS`] rows. IPv6 sources are counted per /64 (one subscriber), so an
//! address-hopping client cannot mint a new source per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use store::{AuthFailureCount, AuthFailureFilter, MAX_AUTH_FAILURE_DETAIL, Millis, cap_text};

use crate::{EventKind, MdmService, Scoped, ServiceError};

/// Counts are kept per hour.
pub const BUCKET_MS: Millis = 3600 * 1000;
/// How long counted buckets are kept.
pub const RETENTION_MS: Millis = 30 * 24 * 3600 * 1000;
/// Most rows the store keeps (the least recently seen go first).
pub const MAX_STORED_ROWS: u32 = 20_000;
/// Most distinct (kind, source, bucket) keys held in memory between flushes.
pub const MAX_PENDING_KEYS: usize = 4096;
/// Where refusals from new sources are counted once the tally is full.
pub const OVERFLOW_SOURCE: &str = "other";
/// How often the server writes the tally to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Who sent a request, as counted: an IPv4 address, an IPv6 /64, or `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source(String);

impl Source {
    pub fn from_ip(ip: Option<IpAddr>) -> Source {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Source(v4.to_string()),
            Some(IpAddr::V6(v6)) => {
                let net = u128::from(v6) & (u128::MAX << 64);
                Source(format!("{}/64", std::net::Ipv6Addr::from(net)))
            }
            None => Source::unknown(),
        }
    }

    pub fn unknown() -> Source {
        Source("unknown".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
struct Pending {
    count: i64,
    first_at: Millis,
    last_at: Millis,
    detail: String,
}

/// The in-memory tally between flushes.
#[derive(Debug, Default)]
pub struct AuthFailureTally {
    pending: Mutex<HashMap<(String, String, Millis), Pending>>,
}

impl AuthFailureTally {
    /// Count one refusal. Returns true when it is the first of its key since the last flush (worth a log line).
    fn add(&self, kind: EventKind, source: &Source, at: Millis, detail: &str) -> bool {
        let bucket = at - at.rem_euclid(BUCKET_MS);
        let detail = cap_text(detail, MAX_AUTH_FAILURE_DETAIL);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = (
            kind.as_str().to_string(),
            source.as_str().to_string(),
            bucket,
        );
        if !pending.contains_key(&key) && pending.len() >= MAX_PENDING_KEYS {
            key.1 = OVERFLOW_SOURCE.to_string();
        }
        match pending.get_mut(&key) {
            Some(p) => {
                p.count += 1;
                p.last_at = p.last_at.max(at);
                p.detail.clear();
                p.detail.push_str(detail);
                false
            }
            None => {
                pending.insert(
                    key,
                    Pending {
                        count: 1,
                        first_at: at,
                        last_at: at,
                        detail: detail.to_string(),
                    },
                );
                true
            }
        }
    }

    fn take(&self) -> Vec<AuthFailureCount> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .drain()
            .map(|((kind, source, bucket), p)| AuthFailureCount {
                kind,
                source,
                bucket,
                count: p.count,
                first_at: p.first_at,
                last_at: p.last_at,
                detail: p.detail,
            })
            .collect()
    }

    /// Put counts back after a failed write (merged with what arrived meanwhile).
    fn restore(&self, counts: Vec<AuthFailureCount>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in counts {
            let entry = pending
                .entry((c.kind, c.source, c.bucket))
                .or_insert(Pending {
                    count: 0,
                    first_at: c.first_at,
                    last_at: c.last_at,
                    detail: c.detail,
                });
            entry.count += c.count;
            entry.first_at = entry.first_at.min(c.first_at);
            entry.last_at = entry.last_at.max(c.last_at);
        }
    }
}

impl MdmService {
    /// Count one refusal of an unauthenticated request, under its event kind; never writes the store
    /// itself. `detail` must be metadata only; it is capped here.
    pub fn note_refusal(&self, kind: EventKind, source: &Source, detail: &str) {
        self.scoped().note_refusal(kind, source, detail)
    }

    /// Write the tally to the store (one row per key), then prune old and excess rows. Returns how many keys
    /// were written. On a store error the counts are kept for the next flush.
    pub async fn flush_auth_failures(&self) -> Result<usize, ServiceError> {
        self.scoped().flush_auth_failures().await
    }

    /// Counted refusals for the admin, newest bucket first (what is still in memory is flushed first).
    pub async fn admin_auth_failures(
        &self,
        filter: &AuthFailureFilter,
    ) -> Result<Vec<AuthFailureCount>, ServiceError> {
        self.scoped().admin_auth_failures(filter).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait EdgeRoles: store::Edge {}
impl<T: ?Sized + store::Edge> EdgeRoles for T {}

impl<S: ?Sized> Scoped<'_, S> {
    /// Count one refusal of an unauthenticated request, under its event kind; never writes the store
    /// itself. `detail` must be metadata only; it is capped here.
    pub(crate) fn note_refusal(&self, kind: EventKind, source: &Source, detail: &str) {
        let detail = cap_text(detail, MAX_AUTH_FAILURE_DETAIL);
        if self.auth_failures.add(kind, source, self.now(), detail) {
            tracing::warn!(kind = kind.as_str(), source = %source.as_str(), reason = %detail, "unauthenticated request refused (further ones from this source are counted, see GET /api/v1/auth-failures)");
        } else {
            tracing::debug!(kind = kind.as_str(), source = %source.as_str(), reason = %detail, "unauthenticated request refused");
        }
    }
}

impl<S: ?Sized + EdgeRoles> Scoped<'_, S> {
    /// Write the tally to the store (one row per key), then prune old and excess rows. Returns how many keys
    /// were written. On a store error the counts are kept for the next flush.
    pub(crate) async fn flush_auth_failures(&self) -> Result<usize, ServiceError> {
        let counts = self.auth_failures.take();
        let now = self.now();
        match self
            .store
            .add_auth_failures(&counts, now.saturating_sub(RETENTION_MS), MAX_STORED_ROWS)
            .await
        {
            Ok(()) => Ok(counts.len()),
            Err(e) => {
                self.auth_failures.restore(counts);
                Err(e.into())
            }
        }
    }

    /// Counted refusals for the admin, newest bucket first (what is still in memory is flushed first).
    pub(crate) async fn admin_auth_failures(
        &self,
        filter: &AuthFailureFilter,
    ) -> Result<Vec<AuthFailureCount>, ServiceError> {
        self.flush_auth_failures().await?;
        Ok(self.store.auth_failures(filter).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(Source::from_ip(ip("203.0.113.7")).as_str(), "203.0.113.7");
        assert_eq!(
            Source::from_ip(ip("::ffff:203.0.113.7")).as_str(),
            "203.0.113.7"
        );
        assert_eq!(
            Source::from_ip(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            Source::from_ip(ip("2001:db8:1:2::1"))
        );
        assert_eq!(
            Source::from_ip(ip("2001:db8:1:2::1")).as_str(),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            Source::from_ip(ip("2001:db8:1:3::1")),
            Source::from_ip(ip("2001:db8:1:2::1"))
        );
        assert_eq!(Source::from_ip(None).as_str(), "unknown");
    }

    #[test]
    fn the_tally_counts_per_key_and_caps_details_and_keys() {
        let tally = AuthFailureTally::default();
        let a = Source::from_ip(ip("192.0.2.1"));
        assert!(tally.add(EventKind::ScepRefused, &a, 10, "first"));
        assert!(!tally.add(EventKind::ScepRefused, &a, 20, &"x".repeat(10_000)));
        assert!(tally.add(EventKind::ScepRefused, &a, BUCKET_MS + 5, "next hour"));
        assert!(tally.add(EventKind::AuthFailed, &a, 30, "other kind"));
        let mut counts = tally.take();
        counts.sort_by_key(|c| (c.kind.clone(), c.bucket));
        assert_eq!(counts.len(), 3);
        assert_eq!(
            (counts[1].count, counts[1].first_at, counts[1].last_at),
            (2, 10, 20)
        );
        assert_eq!(counts[1].detail.len(), MAX_AUTH_FAILURE_DETAIL);
        assert_eq!(counts[2].bucket, BUCKET_MS);
        assert!(tally.take().is_empty(), "taking empties the tally");

        for i in 0..MAX_PENDING_KEYS + 50 {
            let s = Source(format!("s{i}"));
            tally.add(EventKind::EnrollRefused, &s, 1, "junk");
        }
        let counts = tally.take();
        assert_eq!(counts.len(), MAX_PENDING_KEYS + 1);
        let other = counts.iter().find(|c| c.source == OVERFLOW_SOURCE).unwrap();
        assert_eq!(other.count, 50);
    }

    #[test]
    fn restored_counts_merge_with_new_ones() {
        let tally = AuthFailureTally::default();
        let a = Source::from_ip(ip("192.0.2.1"));
        tally.add(EventKind::ScepRefused, &a, 10, "one");
        let taken = tally.take();
        tally.add(EventKind::ScepRefused, &a, 20, "two");
        tally.restore(taken);
        let counts = tally.take();
        assert_eq!(counts.len(), 1);
        assert_eq!(
            (counts[0].count, counts[0].first_at, counts[0].last_at),
            (2, 10, 20)
        );
        assert_eq!(counts[0].detail, "two");
    }
}
