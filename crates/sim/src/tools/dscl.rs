//! `dscl` as scripts and the agent use it (§1.8):
//! - `dscl . -read /Users/U [Key…]` (AuthenticationAuthority, GeneratedUID, RealName, UniqueID),
//! - `dscl . -list /Users [UniqueID]` (with the system accounts a real Mac lists too),
//! - `dscl . -read /Groups/admin GroupMembership`, `dscl . -append|-delete /Groups/admin GroupMembership U`,
//! - `dscl . -passwd /Users/U P`, `dscl . -append /Users/U AuthenticationAuthority ";DisabledTags;SecureToken"`,
//! - `dscl <node> -authonly U [P]` (without P it prompts `Password:` and reads the answer, as on a terminal).

use super::{Stdin, ToolOutput, ask, flag_value};
use crate::mac::{Mac, MacError, User};

/// Accounts every Mac lists besides its people (a few of them; enough for a reader to skip UIDs below 501).
const SYSTEM_ACCOUNTS: [(&str, i64); 4] = [
    ("_mbsetupuser", 248),
    ("daemon", 1),
    ("nobody", -2),
    ("root", 0),
];

/// The attributes a user record answers, in the order dscl prints them.
const USER_KEYS: [&str; 4] = [
    "AuthenticationAuthority",
    "GeneratedUID",
    "RealName",
    "UniqueID",
];

pub(super) fn dscl(args: &[String], mac: &mut Mac, stdin: &mut dyn Stdin) -> ToolOutput {
    let not_found = |u: &str| {
        ToolOutput::err(
            format!("<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\nRecord not found: {u}\n"),
            56,
        )
    };
    if let Some(user) = flag_value(args, "-authonly") {
        let given = args
            .iter()
            .skip_while(|a| *a != "-authonly")
            .nth(2)
            .cloned();
        let mut prompts = String::new();
        let password = match given {
            Some(p) => p,
            None => ask(stdin, &mut prompts, "Password:").unwrap_or_default(),
        };
        let mut out = if mac.password_matches(&user, &password) {
            ToolOutput::default()
        } else {
            ToolOutput::err(
                "Authentication for node /Search failed. (-14090, eDSAuthFailed)\n",
                255,
            )
        };
        out.stdout.insert_str(0, &prompts);
        return out;
    }
    let verb = args.get(1).map(String::as_str);
    let path = args.get(2).map(String::as_str).unwrap_or_default();
    if path == "/Groups/admin" {
        return admin_group(verb, &args[3.min(args.len())..], mac);
    }
    let user = path.strip_prefix("/Users/").unwrap_or_default().to_string();
    match verb {
        Some("-list") if path == "/Users" => list_users(args.get(3).map(String::as_str), mac),
        Some("-read") => {
            let Ok(u) = mac.user(&user) else {
                return not_found(&user);
            };
            read_user(u, &args[3..])
        }
        Some("-passwd") => {
            let password = args.get(3).cloned().unwrap_or_default();
            match mac.set_password_plain(&user, &password) {
                Ok(()) => ToolOutput::default(),
                Err(MacError::NoSuchUser(u)) => not_found(&u),
                Err(e) => ToolOutput::err(format!("{e}\n"), 1),
            }
        }
        Some("-append")
            if args.get(3).map(String::as_str) == Some("AuthenticationAuthority")
                && args.get(4).map(String::as_str) == Some(";DisabledTags;SecureToken") =>
        {
            match mac.disable_secure_token_tag(&user) {
                Ok(()) => ToolOutput::default(),
                Err(_) => not_found(&user),
            }
        }
        _ => ToolOutput::usage(
            "dscl",
            "simulated: -read /Users/U, -list /Users [UniqueID], -passwd, -append AuthenticationAuthority, \
             -read|-append|-delete /Groups/admin GroupMembership, -authonly",
        ),
    }
}

/// `-list /Users` prints names; `-list /Users UniqueID` prints `name  uid` columns, sorted by name.
fn list_users(attribute: Option<&str>, mac: &Mac) -> ToolOutput {
    let mut rows: Vec<(String, i64)> = SYSTEM_ACCOUNTS
        .iter()
        .map(|(n, uid)| (n.to_string(), *uid))
        .chain(mac.users.iter().map(|u| (u.short_name.clone(), u.uid)))
        .collect();
    rows.sort();
    match attribute {
        None => ToolOutput::out(
            rows.iter()
                .map(|(n, _)| format!("{n}\n"))
                .collect::<String>(),
        ),
        Some("UniqueID") => ToolOutput::out(
            rows.iter()
                .map(|(n, uid)| format!("{n:<24} {uid}\n"))
                .collect::<String>(),
        ),
        Some(other) => ToolOutput::usage(
            "dscl",
            &format!("-list /Users {other}: only UniqueID is simulated"),
        ),
    }
}

/// The requested keys of a user record (all of [`USER_KEYS`] when none is named). An unknown key prints
/// `No such key: K`, as dscl does.
fn read_user(u: &User, keys: &[String]) -> ToolOutput {
    let wanted = |k: &str| keys.is_empty() || keys.iter().any(|w| w == k);
    let mut out = String::new();
    for key in USER_KEYS.iter().copied().filter(|k| wanted(k)) {
        match key {
            "AuthenticationAuthority" => {
                out.push_str(
                    "AuthenticationAuthority: ;ShadowHash;HASHLIST:<SALTED-SHA512-PBKDF2,SRP-RFC5054-4096-SHA512-PBKDF2>",
                );
                if u.secure_token {
                    out.push_str(" ;SecureToken;");
                }
                if u.secure_token_disabled_tag {
                    out.push_str(" ;DisabledTags;SecureToken");
                }
                out.push('\n');
            }
            "GeneratedUID" => out.push_str(&format!("GeneratedUID: {}\n", u.guid)),
            // dscl wraps values containing spaces onto the next line.
            "RealName" if u.real_name.contains(' ') => {
                out.push_str(&format!("RealName:\n {}\n", u.real_name))
            }
            "RealName" => out.push_str(&format!("RealName: {}\n", u.real_name)),
            _ => out.push_str(&format!("UniqueID: {}\n", u.uid)),
        }
    }
    let mut result = ToolOutput::out(out);
    for k in keys.iter().filter(|k| !USER_KEYS.contains(&k.as_str())) {
        result.stderr.push_str(&format!("No such key: {k}\n"));
    }
    result
}

/// The admin group: `-read /Groups/admin GroupMembership`, `-append|-delete /Groups/admin GroupMembership U`.
fn admin_group(verb: Option<&str>, rest: &[String], mac: &mut Mac) -> ToolOutput {
    if rest.first().map(String::as_str) != Some("GroupMembership") {
        return ToolOutput::usage("dscl", "/Groups/admin: only GroupMembership is simulated");
    }
    match (verb, rest.get(1)) {
        (Some("-read"), None) => {
            let members: Vec<&str> = std::iter::once("root")
                .chain(
                    mac.users
                        .iter()
                        .filter(|u| u.admin)
                        .map(|u| u.short_name.as_str()),
                )
                .collect();
            ToolOutput::out(format!("GroupMembership: {}\n", members.join(" ")))
        }
        (Some(v @ ("-append" | "-delete")), Some(user)) => {
            match mac.set_admin(user, v == "-append") {
                Ok(()) => ToolOutput::default(),
                Err(_) => ToolOutput::err(
                    format!(
                        "<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\nRecord not found: {user}\n"
                    ),
                    56,
                ),
            }
        }
        _ => ToolOutput::usage(
            "dscl",
            "use -read /Groups/admin GroupMembership or -append|-delete /Groups/admin GroupMembership USER",
        ),
    }
}
