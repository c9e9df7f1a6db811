//! Findings about who may speak for the Mac: pending identities, an admin's block, and the bound identity
//! certificate's expiry.

use store::DeviceRecord;

use super::{DAY_MS, Finding, Severity};

/// Findings about who may speak for the Mac: pending identities and an admin's block.
pub fn identity_findings(d: &DeviceRecord, pending: &[store::Enrollment]) -> Vec<Finding> {
    let mut out = Vec::new();
    let active: Vec<&store::Enrollment> = pending.iter().filter(|p| p.enabled).collect();
    if !active.is_empty() {
        let id = &d.enrollment.id;
        let mut evidence = vec![format!(
            "bound identity certificate {}",
            d.enrollment
                .cert_fingerprint
                .as_deref()
                .map(crate::checkin::short_fp)
                .unwrap_or("none")
        )];
        for p in &active {
            evidence.push(format!(
                "pending identity {} first seen {} ms, last seen {} ms, own Bootstrap Token escrow and queue only",
                p.cert_fingerprint
                    .as_deref()
                    .map(crate::checkin::short_fp)
                    .unwrap_or("none"),
                p.enrolled_at,
                p.last_seen_at
            ));
        }
        out.push(Finding {
            code: "second_identity_claims_mac",
            severity: Severity::Critical,
            summary: "A second identity claims this Mac — approve only if it was re-enrolled".into(),
            evidence,
            fix: format!(
                "If this Mac was erased or re-enrolled, approve the new identity: `escrowd device approve-identity \
                 {id}` (its old Bootstrap Token is discarded; the new one escrows at the next token-holder login). \
                 If not, someone holds a certificate claiming this Mac: leave it pending (it gets none of the Mac's \
                 secrets and is refused as soon as the Mac checks in), and consider `escrowd device block {id}`."
            ),
        });
    }
    if let Some(at) = d.enrollment.blocked_at {
        out.push(Finding {
            code: "device_blocked",
            severity: Severity::Warning,
            summary:
                "This Mac is blocked: its certificates are refused at check-in and SCEP renewal"
                    .into(),
            evidence: vec![format!("blocked at {at} ms")],
            fix: format!(
                "Unblock it when it is trusted again: `escrowd device unblock {}`.",
                d.enrollment.id
            ),
        });
    }
    out
}

/// Findings about the bound identity certificate's expiry (issue 11, renewal): expired (within the grace period
/// or past it) or expiring within `window_ms` (the automatic renewal window, or 30 days when automatic renewal
/// is off), each saying whether a renewal profile is queued. `renewal` is the outstanding one, if any.
pub fn identity_expiry_findings(
    d: &DeviceRecord,
    renewal: Option<&store::IdentityRenewal>,
    now: i64,
    window_ms: i64,
    grace_ms: i64,
) -> Vec<Finding> {
    let e = &d.enrollment;
    let Some(not_after) = e.cert_not_after else {
        return Vec::new();
    };
    if !e.enabled {
        return Vec::new();
    }
    let id = &e.id;
    let queued = renewal.map(|r| {
        format!(
            "renewal profile {} queued at {} ms; its one-time challenge is valid until {} ms",
            r.command_uuid, r.queued_at, r.challenge_expires_at
        )
    });
    let mut evidence = vec![format!(
        "bound identity certificate {} expires at {not_after} ms",
        e.cert_fingerprint
            .as_deref()
            .map(crate::checkin::short_fp)
            .unwrap_or("none")
    )];
    evidence.extend(queued.clone());
    let renew = format!("`escrowd device renew-identity {id}`");
    if not_after <= now {
        let ago = (now - not_after) / DAY_MS;
        if now - not_after <= grace_ms {
            return vec![Finding {
                code: "identity_expired_in_grace",
                severity: Severity::Critical,
                summary: format!(
                    "This Mac's identity certificate expired {ago} days ago; it may still check in, but only to \
                     receive its renewal profile ({})",
                    if queued.is_some() {
                        "queued"
                    } else {
                        "not queued yet"
                    }
                ),
                evidence,
                fix: format!(
                    "Wake the Mac (`escrowd push {id}`) so it installs its renewal profile within {} days of expiry \
                     ({}).",
                    grace_ms / DAY_MS,
                    if queued.is_some() {
                        "already queued".to_string()
                    } else {
                        format!("escrowd queues one at its next check-in, or now: {renew}")
                    }
                ),
            }];
        }
        return vec![Finding {
            code: "identity_expired",
            severity: Severity::Critical,
            summary: format!(
                "This Mac's identity certificate expired {ago} days ago: it can no longer check in and its \
                 escrowed token cannot be served to it"
            ),
            evidence,
            fix: "Re-enroll the Mac (a new enrollment link or profile); then approve its new identity if it shows \
                  as pending. Keep automatic renewal on (serve --identity-renewal-days) so others renew in time."
                .into(),
        }];
    }
    if not_after - now <= window_ms {
        let days = (not_after - now) / DAY_MS;
        return vec![match queued {
            Some(_) => Finding {
                code: "identity_expiring_renewal_queued",
                severity: Severity::Info,
                summary: format!(
                    "This Mac's identity certificate expires in {days} days; its renewal profile is queued"
                ),
                evidence,
                fix: format!(
                    "Nothing to do: the Mac renews at its next check-in and keeps its token. If it stays offline, \
                     wake it: `escrowd push {id}`."
                ),
            },
            None => Finding {
                code: "identity_expiring_renewal_not_queued",
                severity: Severity::Warning,
                summary: format!(
                    "This Mac's identity certificate expires in {days} days and no renewal is queued"
                ),
                evidence,
                fix: format!(
                    "Renew it now: {renew} (or keep automatic renewal on: serve --identity-renewal-days 30)."
                ),
            },
        }];
    }
    Vec::new()
}
