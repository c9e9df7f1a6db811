//! Running what the server asks: [`perform`] one polled action (passwords redacted from anything reported),
//! and one [`cycle`] of `escrow-agent run` (poll, perform and report each action, then report inventory).

use protocol::action_kind::ActionKind;
use protocol::agent_profile::{self, ActionResultRequest, AgentActionWire};
use serde::Deserialize;
use vault::Secret;

use super::{AgentClient, ClientError};
use crate::actions::{self, ActionError, ActionOutcome, Credentials};
use crate::inventory;
use crate::mac::Mac;
use crate::tools::redact;
use crate::troubleshoot;

/// Largest output reported for one action.
const MAX_OUTPUT: usize = 16 * 1024;

#[derive(Deserialize)]
struct Params {
    user: Option<String>,
    admin: Option<String>,
    full_name: Option<String>,
    #[serde(default)]
    make_admin: bool,
}

/// Runs one polled action and says what to report. Reasons are `code: message` with the stable codes of
/// [`ActionError::code`] (or `bad_action`, `credentials`, `unsupported`); output has every password redacted.
pub fn perform(client: &AgentClient, mac: &Mac, action: &AgentActionWire) -> ActionResultRequest {
    let fail = |code: &str, message: String| ActionResultRequest {
        succeeded: false,
        reason: Some(format!("{code}: {message}")),
        ..Default::default()
    };
    let params: Params = match serde_json::from_value(action.params.clone()) {
        Ok(p) => p,
        Err(e) => return fail("bad_action", format!("params: {e}")),
    };
    let creds = match client.open_credentials(action) {
        Ok(c) => c,
        Err(e) => return fail("credentials", e.to_string()),
    };
    let kind = ActionKind::parse(&action.kind);
    if kind == Some(ActionKind::Troubleshoot) {
        let admin = match (&params.admin, creds.admin_password) {
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                password,
            }),
            _ => None,
        };
        let commands = troubleshoot::run(mac, admin.as_ref());
        let problems = troubleshoot::problems(&commands);
        return ActionResultRequest {
            succeeded: problems.is_empty(),
            reason: (!problems.is_empty())
                .then(|| format!("problems_found: {}", problems.join("; "))),
            output: None,
            commands,
        };
    }
    let need = |name: &Option<String>, pw: &Option<Secret<String>>, what: &str| match (name, pw) {
        (Some(n), Some(p)) => Ok(Credentials {
            user: n.clone(),
            password: Secret::new(p.expose().clone()),
        }),
        _ => Err(format!("{} needs {what} and its password", action.kind)),
    };
    let user = || need(&params.user, &creds.user_password, "user");
    let admin = || need(&params.admin, &creds.admin_password, "admin");
    let result: Result<Result<ActionOutcome, ActionError>, String> = (|| {
        let Some(kind) = kind else {
            return Err(format!(
                "this agent does not know action kind {:?}",
                action.kind
            ));
        };
        Ok(match kind {
            ActionKind::GrantSecureToken => actions::grant_secure_token(mac, &user()?, &admin()?),
            ActionKind::CreateUser => actions::create_user(
                mac,
                &user()?,
                params
                    .full_name
                    .as_deref()
                    .ok_or("create_user needs full_name")?,
                params.make_admin,
                &admin()?,
            ),
            ActionKind::SecureTokenOff => actions::secure_token_off(mac, &user()?, &admin()?),
            // "admin" is the current holder, "user" the one who gets the token.
            ActionKind::TransferSecureToken => {
                actions::transfer_secure_token(mac, &admin()?, &user()?)
            }
            ActionKind::ValidateBootstrapToken => actions::validate_bootstrap_token(mac, &admin()?),
            ActionKind::RemoveBootstrapToken => actions::remove_bootstrap_token(mac, &admin()?),
            ActionKind::ReescrowBootstrapToken => actions::escrow_bootstrap_token(mac, &admin()?),
            // "user_password" is the new password.
            ActionKind::ResetPassword => actions::reset_password(mac, &user()?, &admin()?),
            // Performed above (it needs no user and reports commands, not an outcome).
            ActionKind::Troubleshoot => return Err("troubleshoot is performed on its own".into()),
        })
    })();
    let secrets: Vec<&Secret<String>> = [&creds.user_password, &creds.admin_password]
        .into_iter()
        .flatten()
        .collect();
    match result {
        Err(msg) => {
            let code = if msg.contains("does not know") {
                "unsupported"
            } else {
                "bad_action"
            };
            fail(code, redact(&msg, &secrets))
        }
        Ok(Ok(outcome)) => ActionResultRequest {
            succeeded: true,
            output: Some(
                agent_profile::cut(
                    &redact(
                        &serde_json::to_string(&outcome).unwrap_or_default(),
                        &secrets,
                    ),
                    MAX_OUTPUT,
                )
                .to_string(),
            ),
            ..Default::default()
        },
        Ok(Err(e)) => fail(e.code(), redact(&e.to_string(), &secrets)),
    }
}

/// One cycle of `escrow-agent run`: poll, perform each action and report it, then report inventory.
pub struct CycleReport {
    pub actions: Vec<(String, String, ActionResultRequest)>,
    pub inventory_users: Option<usize>,
    pub errors: Vec<String>,
}

pub fn cycle(
    client: &AgentClient,
    mac: &Mac,
    managed_admin: Option<&str>,
) -> Result<CycleReport, ClientError> {
    let mut report = CycleReport {
        actions: Vec::new(),
        inventory_users: None,
        errors: Vec::new(),
    };
    for action in client.poll()? {
        let result = perform(client, mac, &action);
        if let Err(e) = client.post_result(&action.id, &result) {
            report.errors.push(format!("action {}: {e}", action.id));
        }
        report.actions.push((action.id, action.kind, result));
    }
    let inv = inventory::collect(mac, managed_admin);
    match client.post_inventory(&inv) {
        Ok(n) => report.inventory_users = Some(n),
        Err(e) => report.errors.push(format!("inventory: {e}")),
    }
    Ok(report)
}
