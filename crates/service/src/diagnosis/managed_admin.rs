//! Findings about the ADE managed admin without a Secure Token, and who could grant it one through the
//! agent.

use store::DeviceRecord;

use super::{Finding, Severity, name, names};
use crate::admin::MergedUser;

/// The ADE managed admin (marked by the agent) without a Secure Token. It was created from a password hash
/// during Setup Assistant, so macOS left it out of the first-token rules; it gets a token at its first
/// graphical login (from the escrowed Bootstrap Token, or as the first holder when nobody has one), or from a
/// token-holding admin (`sysadminctl -secureTokenOn`, the agent's `grant_secure_token`). Critical when nothing
/// could grant one later: no Bootstrap Token escrowed and no other holder.
pub(super) fn managed_admin_findings(
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
