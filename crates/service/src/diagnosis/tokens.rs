//! The Bootstrap Token and Secure Token chain rules, separated from the store so each can be tested on plain
//! values.

use store::DeviceRecord;

use super::managed_admin::managed_admin_findings;
use super::{Finding, Severity, token_evidence_list, yes};
use crate::admin::MergedUser;
use crate::status::{BootstrapStatus, DeviceStatus};

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
