//! Automatic diagnosis: per device, what is wrong with its Bootstrap Token and Secure Token chain, with the
//! evidence (facts and their times) and the fix, encoding the seeds' troubleshooting tables and
//! `lessons-from-other-mdms.md`. Guarantees: findings only cite stored facts (never a token); a fact not yet
//! reported is named as missing instead of guessed.

use store::{DeviceRecord, EventFilter};

use crate::admin::{MergedUser, merge_users};
use crate::status::{BootstrapStatus, DeviceStatus};
use crate::{EventKind, MdmService, ServiceError};

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

const DAY_MS: i64 = 24 * 3600 * 1000;

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

/// The rules, separated from the store so each can be tested on plain values.
pub fn findings(d: &DeviceRecord, users: &[MergedUser], ever_escrowed: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let dev = d.inventory.as_ref().and_then(|i| i.device.as_ref());
    let sec = d.inventory.as_ref().and_then(|i| i.security.as_ref());
    let os = dev.and_then(|f| f.os_version_num);
    let os_text = dev
        .and_then(|f| f.os_version.clone())
        .or_else(|| d.enrollment.os_version.clone())
        .unwrap_or_else(|| "unknown".into());
    let holders: Vec<&MergedUser> = users
        .iter()
        .filter(|u| u.has_secure_token.as_ref().is_some_and(|f| f.value))
        .collect();
    let lacking: Vec<&MergedUser> = users
        .iter()
        .filter(|u| u.has_secure_token.as_ref().is_some_and(|f| !f.value))
        .collect();

    if os.is_some_and(|n| n < 101_500) {
        out.push(Finding {
            code: "os_too_old",
            severity: Severity::Warning,
            summary: format!("macOS {os_text} cannot escrow a Bootstrap Token"),
            evidence: vec![format!("DeviceInformation OSVersion = {os_text}")],
            fix: "Upgrade to macOS 11 or later (10.15 only escrows when enrolled through Automated Device \
                  Enrollment)."
                .into(),
        });
    } else if os.is_some_and(|n| n < 110_000) && sec.and_then(|s| s.enrolled_via_dep) == Some(false)
    {
        out.push(Finding {
            code: "macos_10_15_not_ade",
            severity: Severity::Warning,
            summary: "macOS 10.15 escrows a Bootstrap Token only when enrolled through ADE".into(),
            evidence: vec![
                format!("OSVersion = {os_text}"),
                "SecurityInfo ManagementStatus.EnrolledViaDEP = false".into(),
            ],
            fix: "Upgrade to macOS 11+ (user-approved enrollments escrow there), or re-enroll through \
                  Automated Device Enrollment."
                .into(),
        });
    }

    let escrow_off = d.group_escrow_enabled == Some(false);
    if escrow_off {
        let group = d.group_name.as_deref().unwrap_or("(unnamed)");
        let mut evidence = vec![format!(
            "group {group}: Bootstrap Token escrow is switched off, so a SetBootstrapToken is refused and \
             GetBootstrapToken is answered empty"
        )];
        evidence.push(match &d.token {
            Some(t) => format!(
                "a token escrowed at {} ms was kept when escrow was switched off; it is not served",
                t.escrowed_at
            ),
            None => "no Bootstrap Token is escrowed".into(),
        });
        let group_id = d.enrollment.group_id.as_deref().unwrap_or("GROUP_ID");
        out.push(Finding {
            code: "escrow_off_for_group",
            severity: Severity::Info,
            summary: d
                .status_reason()
                .unwrap_or_else(|| format!("escrow is off for group {group}")),
            evidence,
            fix: format!(
                "If this Mac should escrow, switch escrow on for its group (`escrowd groups escrow {group_id} \
                 true`) or move it to a group that escrows; then a token holder's next login escrows the token."
            ),
        });
    }

    if d.status() == BootstrapStatus::NotEscrowed {
        if !users.is_empty() && holders.is_empty() {
            out.push(Finding {
                code: "chain_of_trust_broken",
                severity: Severity::Critical,
                summary: "No user holds a Secure Token and no Bootstrap Token is escrowed".into(),
                evidence: vec![format!(
                    "{} user(s), none with HasSecureToken = true: {}",
                    users.len(),
                    token_evidence_list(&lacking)
                )],
                fix: "No one can grant a Secure Token on this Mac. Use the FileVault recovery key (or erase and \
                      re-provision) to get a first token holder, then have that user log in so macOS escrows the \
                      Bootstrap Token."
                    .into(),
            });
        } else if escrow_off {
            // Nothing to escrow into while the group's switch is off: escrow_off_for_group says so.
        } else if !holders.is_empty() {
            let mut evidence = vec![format!(
                "Secure Token holders: {}",
                token_evidence_list(&holders)
            )];
            let logged_in: Vec<&MergedUser> = holders
                .iter()
                .copied()
                .filter(|u| u.is_logged_in.as_ref().is_some_and(|f| f.value))
                .collect();
            evidence.push(if ever_escrowed {
                "a token was escrowed before and has since been removed".into()
            } else {
                "no SetBootstrapToken has ever been received".into()
            });
            out.push(Finding {
                code: "not_escrowed",
                severity: Severity::Warning,
                summary: "No Bootstrap Token is escrowed although a Secure Token holder exists".into(),
                evidence,
                fix: if logged_in.is_empty() {
                    "Have a Secure Token holder log in (macOS escrows the token at a token holder's login), or \
                     run `sudo profiles install -type bootstraptoken` as a token holder. If it still does not \
                     arrive, check the enrollment profile advertises ServerCapabilities \
                     com.apple.mdm.bootstraptoken (re-enroll to change it)."
                        .into()
                } else {
                    "A token holder is logged in, yet nothing was escrowed: the enrollment profile probably does \
                     not advertise com.apple.mdm.bootstraptoken (re-enroll with it), or run `sudo profiles \
                     install -type bootstraptoken` as that user."
                        .into()
                },
            });
        } else {
            out.push(Finding {
                code: "not_escrowed_unknown_users",
                severity: Severity::Info,
                summary: "No Bootstrap Token is escrowed and the device's users are not known yet"
                    .into(),
                evidence: vec!["no UserList result stored".into()],
                fix: "Queue UserList and SecurityInfo to see who holds a Secure Token.".into(),
            });
        }
        if lacking
            .iter()
            .any(|u| !yes(u.mobile_account.as_ref().map(|f| f.value)))
            && !holders.is_empty()
        {
            out.push(Finding {
                code: "admin_created_without_secure_token",
                severity: Severity::Warning,
                summary: "Local accounts without a Secure Token: an account auto-created during enrollment, or a \
                          user created by an admin who had no token"
                    .into(),
                evidence: vec![format!(
                    "HasSecureToken = false: {}",
                    token_evidence_list(&lacking)
                )],
                fix: "Grant them a token as a token holder: `sysadminctl -secureTokenOn USER -password - \
                      -adminUser HOLDER -adminPassword -`."
                    .into(),
            });
        }
    }

    if yes(dev.and_then(|f| f.is_apple_silicon))
        && let Some(auth) = sec.and_then(|s| s.bt_allowed_for_authentication.as_deref())
        && auth != "allowed"
    {
        out.push(Finding {
            code: "apple_silicon_token_cannot_authorize",
            severity: Severity::Warning,
            summary: "On this Apple silicon Mac the escrowed token may not authorize updates, kernel extensions \
                      or erase"
                .into(),
            evidence: vec![format!("SecurityInfo BootstrapTokenAllowedForAuthentication = {auth:?}")],
            fix: "Software updates, kext approval and EraseDevice will prompt for a volume owner. Allow it in \
                  recoveryOS (Startup Security Utility) or re-enroll with PromptUserToAllowBootstrapTokenFor\
                  Authentication."
                .into(),
        });
    }

    if yes(sec.and_then(|s| s.filevault_enabled)) && !lacking.is_empty() {
        out.push(Finding {
            code: "filevault_users_without_secure_token",
            severity: Severity::Warning,
            summary: "FileVault is on and some users lack a Secure Token: they are missing at the login window"
                .into(),
            evidence: vec![
                "SecurityInfo FDE_Enabled = true".into(),
                format!("HasSecureToken = false: {}", token_evidence_list(&lacking)),
            ],
            fix: "Grant each a Secure Token as a token holder (`sysadminctl -secureTokenOn`), which also adds \
                  them to FileVault."
                .into(),
        });
    }

    out.extend(managed_admin_findings(d, users, &holders));

    if let Some(t) = &d.token
        && !t.verified
    {
        out.push(Finding {
            code: "escrowed_never_verified",
            severity: Severity::Info,
            summary: "A token is escrowed but the Mac has not fetched it back since".into(),
            evidence: vec![format!("escrowed at {} ms, verified = false", t.escrowed_at)],
            fix: "Run `sudo profiles validate -type bootstraptoken` on the Mac: a successful validation is \
                  recorded as verified."
                .into(),
        });
    }
    out
}

/// The ADE managed admin (marked by the agent) without a Secure Token. It was created from a password hash
/// during Setup Assistant, so macOS left it out of the first-token rules; it gets a token at its first
/// graphical login (from the escrowed Bootstrap Token, or as the first holder when nobody has one), or from a
/// token-holding admin (`sysadminctl -secureTokenOn`, the agent's `grant_secure_token`). Critical when nothing
/// could grant one later: no Bootstrap Token escrowed and no other holder.
fn managed_admin_findings(
    d: &DeviceRecord,
    users: &[MergedUser],
    holders: &[&MergedUser],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in users {
        let (Some(mark), Some(token)) = (&m.managed_admin, &m.has_secure_token) else {
            continue;
        };
        if !mark.value || token.value {
            continue;
        }
        let who = name(m);
        let others: Vec<&MergedUser> = holders
            .iter()
            .copied()
            .filter(|h| h.user_key != m.user_key)
            .collect();
        // Only a token-holding *admin* can grant (sysadminctl refuses a standard holder with not_admin); a
        // standard holder can still pass its token on through the transfer action (promote, grant, demote).
        let granter = others
            .iter()
            .find(|h| h.is_admin.as_ref().is_some_and(|f| f.value))
            .map(|h| Granter::Admin(name(h)))
            .or_else(|| others.first().map(|h| Granter::Holder(name(h))));
        let mut evidence = vec![
            format!(
                "{who} is the ADE managed admin (source {}, observed at {} ms)",
                mark.source.as_str(),
                mark.at
            ),
            format!(
                "HasSecureToken = false for {who} (source {}, observed at {} ms)",
                token.source.as_str(),
                token.at
            ),
            match &d.token {
                Some(t) => format!("Bootstrap Token escrowed at {} ms", t.escrowed_at),
                None => "no Bootstrap Token is escrowed".into(),
            },
        ];
        evidence.push(if others.is_empty() {
            "no other user holds a Secure Token".into()
        } else {
            format!("other Secure Token holders: {}", names(&others))
        });
        let udid = &d.enrollment.id;
        let grant = |g: &Granter| match g {
            Granter::Admin(admin) => format!(
                "ESCROWD_USER_PASSWORD=… ESCROWD_ADMIN_PASSWORD=… escrowd action create {udid} \
                 grant_secure_token --user {who} --admin {admin}"
            ),
            Granter::Holder(holder) => format!(
                "ESCROWD_USER_PASSWORD=… ESCROWD_ADMIN_PASSWORD=… escrowd action create {udid} \
                 transfer_secure_token --user {who} --admin {holder}"
            ),
        };
        let with = |g: &Granter| match g {
            Granter::Admin(a) => format!("with {a} as the token-holding admin"),
            Granter::Holder(h) => format!(
                "with the transfer action: {h} holds a token but is not known to be an admin, so the agent \
                 promotes {h}, grants and demotes it again (ESCROWD_ADMIN_PASSWORD is {h}'s password)"
            ),
        };
        let (severity, fix) = match (&d.token, &granter) {
            (Some(_), Some(g)) => (
                Severity::Warning,
                format!(
                    "Log in as {who} once at the login window (a graphical login, not ssh): macOS fetches the \
                     escrowed Bootstrap Token and grants {who} a Secure Token. Or grant it now through the \
                     agent, {}: `{}`.",
                    with(g),
                    grant(g)
                ),
            ),
            (Some(_), None) => (
                Severity::Warning,
                format!(
                    "Log in as {who} once at the login window (a graphical login, not ssh): macOS fetches the \
                     escrowed Bootstrap Token and grants {who} a Secure Token."
                ),
            ),
            (None, Some(g)) => (
                Severity::Warning,
                format!(
                    "Grant it through the agent, {}: `{}`. Or have {} log in so macOS escrows the Bootstrap \
                     Token, then log in as {who} once at the login window.",
                    with(g),
                    grant(g),
                    g.name()
                ),
            ),
            (None, None) => (
                Severity::Critical,
                format!(
                    "Nothing on this Mac can grant a Secure Token later. Log in as {who} once at the login \
                     window (a graphical login, not ssh) now: with no token holder, its first graphical login \
                     makes it the first holder and macOS then escrows the Bootstrap Token. If {who} has logged \
                     in graphically before, on macOS 11+ setting its password in plain text (`sudo dscl . \
                     -passwd /Users/{who}`) while nobody holds a token makes it the first holder instead."
                ),
            ),
        };
        out.push(Finding {
            code: "managed_admin_lacks_secure_token",
            severity,
            summary: format!("The management admin {who} has no Secure Token"),
            evidence,
            fix,
        });
    }
    out
}

/// Who can give the managed admin a Secure Token through the agent.
enum Granter {
    /// A token holder known to be an admin: `grant_secure_token`.
    Admin(String),
    /// A token holder not known to be an admin: `transfer_secure_token`.
    Holder(String),
}

impl Granter {
    fn name(&self) -> &str {
        match self {
            Granter::Admin(n) | Granter::Holder(n) => n,
        }
    }
}

#[cfg(test)]
#[path = "diagnosis_tests.rs"]
mod tests;
