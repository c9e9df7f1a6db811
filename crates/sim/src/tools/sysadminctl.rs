//! `sysadminctl` (§1.8): everything goes to stderr as NSLog lines; failures of token operations still exit 0.
//! A password given as `-` is read from stdin (one line each, in argument order), as the agent does.

use super::{NsLog, Stdin, ToolOutput, flag_value, has_flag};
use crate::mac::{AddUser, Mac, MacError, UserKind};

const NOT_PERMITTED: &str = "Operation is not permitted without secure token unlock.";

pub(super) fn run(
    args: &[String],
    mac: &mut Mac,
    log: &NsLog,
    stdin: &mut dyn Stdin,
) -> ToolOutput {
    let say = |msg: &str| ToolOutput::err(log.line("sysadminctl", msg), 0);
    let mut password = |flag: &str| -> Option<String> {
        match flag_value(args, flag) {
            Some(p) if p == "-" => stdin.read_line(),
            other => other,
        }
    };
    if let Some(user) = flag_value(args, "-secureTokenStatus") {
        // §1.8: by RealName, field 7 ENABLED/DISABLED, on stderr.
        return match mac.user(&user) {
            Ok(u) => say(&format!(
                "Secure token is {} for user {}",
                if u.secure_token {
                    "ENABLED"
                } else {
                    "DISABLED"
                },
                u.real_name
            )),
            // Not documented: our wording.
            Err(_) => ToolOutput::err(log.line("sysadminctl", &format!("Unknown user {user}")), 1),
        };
    }
    for (flag, on) in [("-secureTokenOn", true), ("-secureTokenOff", false)] {
        if let Some(user) = flag_value(args, flag) {
            let pw = password("-password").unwrap_or_default();
            let admin = flag_value(args, "-adminUser").unwrap_or_default();
            let admin_pw = password("-adminPassword").unwrap_or_default();
            let result = if on {
                mac.secure_token_on(&user, &pw, &admin, &admin_pw)
            } else {
                mac.secure_token_off(&user, &pw, &admin, &admin_pw)
            };
            return token_result(result, &say);
        }
    }
    if let Some(user) = flag_value(args, "-resetPasswordFor") {
        let new_pw = password("-newPassword").unwrap_or_default();
        let admin = flag_value(args, "-adminUser");
        let admin_pw = password("-adminPassword");
        let Ok(target) = mac.user(&user) else {
            return ToolOutput::err(log.line("sysadminctl", &format!("Unknown user {user}")), 1);
        };
        if target.secure_token {
            // A token holder's password changes only with its old password or a token admin's credentials.
            let by_admin = match (admin, admin_pw) {
                (Some(a), Some(p)) => {
                    mac.user(&a).is_ok_and(|u| u.secure_token && u.admin)
                        && mac.password_matches(&a, &p)
                }
                _ => false,
            };
            let by_self = password("-oldPassword").is_some_and(|p| mac.password_matches(&user, &p));
            if !by_admin && !by_self {
                // §1.8: printed **and exit 0**.
                return say(NOT_PERMITTED);
            }
        }
        if !target.secure_token
            && let Some(a) = flag_value(args, "-adminUser")
            && !mac.user(&a).is_ok_and(|u| u.admin)
        {
            // Changing another user's password needs an administrator.
            return say(NOT_PERMITTED);
        }
        return match mac.reset_password(&user, &new_pw) {
            Ok(()) => say("- Done"),
            Err(e) => say(&e.to_string()),
        };
    }
    if let Some(user) = flag_value(args, "-addUser") {
        let mut add = AddUser::new(&user, has_flag(args, "-admin"), UserKind::Local, None);
        // Without -fullName, RealName is the short name (§1.8: "…for user createdviacli").
        add.real_name = flag_value(args, "-fullName").unwrap_or_else(|| user.clone());
        add.password = password("-password");
        if let Some(admin) = flag_value(args, "-adminUser") {
            add.authorized_by = Some((admin, password("-adminPassword").unwrap_or_default()));
        }
        return match mac.add_user(add) {
            Ok(()) => ToolOutput::default(),
            Err(e) => ToolOutput::err(log.line("sysadminctl", &e.to_string()), 1),
        };
    }
    ToolOutput::usage(
        "sysadminctl",
        "simulated: -secureTokenStatus, -secureTokenOn, -secureTokenOff, -resetPasswordFor, -addUser",
    )
}

/// §1.8: a line ending in `Done` on success; failures are logged and still exit 0.
fn token_result(result: Result<(), MacError>, say: &dyn Fn(&str) -> ToolOutput) -> ToolOutput {
    match result {
        Ok(()) => say("- Done"),
        Err(MacError::NoTokenHolder) => say("No existing unlock record"),
        Err(MacError::AdminLacksSecureToken(_) | MacError::BadCredentials(_)) => say(NOT_PERMITTED),
        Err(e) => say(&e.to_string()),
    }
}
