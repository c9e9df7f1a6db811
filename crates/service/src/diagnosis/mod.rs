//! Automatic diagnosis: per device, what is wrong with its Bootstrap Token and Secure Token chain, with the
//! evidence (facts and their times) and the fix, encoding the seeds' troubleshooting tables and
//! `lessons-from-other-mdms.md`. Guarantees: findings only cite stored facts (never a token); a fact not yet
//! reported is named as missing instead of guessed.
//!
//! This module owns the findings' types, `MdmService::diagnose` and the evidence helpers; the rules live in
//! the submodules by finding family.

mod identity;
mod managed_admin;
mod tokens;

pub use identity::{identity_expiry_findings, identity_findings};
pub use tokens::findings;

use store::EventFilter;

use crate::admin::{MergedUser, merge_users};
use crate::{EventKind, MdmService, Scoped, ServiceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One problem found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable identifier, e.g. `not_escrowed_no_token_holder_logged_in`.
    pub code: &'static str,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
}

impl MdmService {
    /// Diagnose one device. NotFound for an unknown id.
    pub async fn diagnose(&self, id: &str) -> Result<Vec<Finding>, ServiceError> {
        self.scoped().diagnose(id).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait DiagnosisRoles:
    store::Enrollments + store::Inventory + store::Events + store::Admin + store::Renewals
{
}
impl<
    T: ?Sized + store::Enrollments + store::Inventory + store::Events + store::Admin + store::Renewals,
> DiagnosisRoles for T
{
}

impl<S: ?Sized + DiagnosisRoles> Scoped<'_, S> {
    /// Diagnose one device. NotFound for an unknown id.
    pub(crate) async fn diagnose(&self, id: &str) -> Result<Vec<Finding>, ServiceError> {
        let d = self.admin_device(id).await?;
        let users = merge_users(self.store.device_users(id).await?);
        let escrow_attempts = self
            .store
            .events(&EventFilter {
                subject: Some(id.to_string()),
                kind: Some(EventKind::BootstrapEscrowed.to_string()),
                limit: 1,
                ..Default::default()
            })
            .await?;
        let mut out = findings(&d, &users, !escrow_attempts.is_empty());
        let pending = self.store.pending_identities(id).await?;
        out.extend(identity_findings(&d, &pending));
        let renewal = self.outstanding_renewal(id).await?;
        let (window, grace) = self.renewal_settings().map_or(
            (i64::from(crate::renewal::DEFAULT_RENEWAL_DAYS) * DAY_MS, 0),
            |s| (s.renew_before_ms, s.grace_ms),
        );
        out.extend(identity_expiry_findings(
            &d,
            renewal.as_ref(),
            self.now(),
            window,
            grace,
        ));
        out.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Ok(out)
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

fn yes(v: Option<bool>) -> bool {
    v == Some(true)
}

fn name(u: &MergedUser) -> String {
    u.name().to_string()
}

/// Names, each once (users are merged already; this also guards against two rows naming one user).
fn names(us: &[&MergedUser]) -> String {
    let mut seen = Vec::new();
    for u in us {
        let n = name(u);
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen.join(", ")
}

/// A user's Secure Token fact as evidence: `alice (agent, at 1700 ms)`, plus the other source's conflicting
/// word when there is one.
fn token_evidence(u: &MergedUser) -> String {
    match &u.has_secure_token {
        Some(f) => {
            let conflict = f
                .conflict
                .as_ref()
                .map(|c| {
                    format!(
                        "; conflict: {} said {} at {} ms",
                        c.source.as_str(),
                        c.value,
                        c.at
                    )
                })
                .unwrap_or_default();
            format!(
                "{} ({}, at {} ms{conflict})",
                name(u),
                f.source.as_str(),
                f.at
            )
        }
        None => name(u),
    }
}

fn token_evidence_list(us: &[&MergedUser]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for u in us {
        let e = token_evidence(u);
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests;
