//! `fdesetup list`, `diskutil apfs listcryptousers /` and the `dscl` calls scripts use (§1.8).

use super::{ToolOutput, flag_value, has_flag};
use crate::mac::{Arch, CryptoUserKind, Mac, MacError};

/// §1.8: `shortname,GUID` per FileVault user; `-extended` gives the ESCROW/UUID/TYPE/USER table.
pub(super) fn fdesetup(args: &[String], mac: &Mac) -> ToolOutput {
    if args.first().map(String::as_str) != Some("list") {
        return ToolOutput::usage("fdesetup", "only `fdesetup list [-extended]` is simulated");
    }
    if !mac.filevault {
        // Not documented: FileVault off lists nothing.
        return ToolOutput::default();
    }
    if !has_flag(args, "-extended") {
        let lines: String = mac
            .filevault_users()
            .iter()
            .map(|u| format!("{},{}\n", u.short_name, u.guid))
            .collect();
        return ToolOutput::out(lines);
    }
    let mut out = format!("ESCROW  UUID{}TYPE USER\n", " ".repeat(52));
    for c in mac.crypto_users() {
        let (kind, user) = match c.kind {
            CryptoUserKind::LocalOpenDirectoryUser => {
                let name = mac
                    .users
                    .iter()
                    .find(|u| u.guid == c.uuid)
                    .map(|u| u.short_name.clone())
                    .unwrap_or_default();
                ("OS User", Some(name))
            }
            CryptoUserKind::PersonalRecoveryUser => ("Personal Recovery Record", None),
            CryptoUserKind::BootstrapTokenExternalKey => ("Bootstrap Token", None),
        };
        // §1.8 sample: TYPE right-aligned in the 37 columns after the UUID, then the user.
        out.push_str(&format!("{:8}{}{kind:>37}", "", c.uuid));
        if let Some(u) = user {
            out.push(' ');
            out.push_str(&u);
        }
        out.push('\n');
    }
    ToolOutput::out(out)
}

/// §1.8: the tree of crypto users; Apple silicon adds `Volume Owner:` lines.
pub(super) fn diskutil(args: &[String], mac: &Mac) -> ToolOutput {
    let verb = args.get(1).map(String::as_str);
    let known = matches!(verb, Some("listcryptousers" | "listUsers" | "listkeys"));
    if args.first().map(String::as_str) != Some("apfs") || !known {
        return ToolOutput::usage(
            "diskutil",
            "only `diskutil apfs listcryptousers /` is simulated",
        );
    }
    let disk = match mac.arch {
        Arch::Intel => "disk1s5",
        Arch::AppleSilicon => "disk3s5",
    };
    let users = mac.crypto_users();
    let mut out = format!("Cryptographic users for {disk} ({} found)\n", users.len());
    let last = users.len().saturating_sub(1);
    for (i, c) in users.iter().enumerate() {
        let bar = if i == last { " " } else { "|" };
        out.push_str("|\n");
        out.push_str(&format!("+-- {}\n", c.uuid));
        out.push_str(&format!("{bar}   Type: {}\n", c.kind.diskutil_name()));
        if mac.arch == Arch::AppleSilicon {
            let owner = if c.volume_owner { "Yes" } else { "No" };
            out.push_str(&format!("{bar}   Volume Owner: {owner}\n"));
        }
    }
    ToolOutput::out(out)
}

/// `dscl . -read /Users/U [AuthenticationAuthority|RealName]`, `dscl . -passwd /Users/U P`,
/// `dscl . -append /Users/U AuthenticationAuthority ";DisabledTags;SecureToken"`, `dscl . -list /Users`,
/// `dscl /Search -authonly U P`.
pub(super) fn dscl(args: &[String], mac: &mut Mac) -> ToolOutput {
    let user_of = |path: Option<&String>| {
        path.and_then(|p| p.strip_prefix("/Users/"))
            .unwrap_or_default()
            .to_string()
    };
    let not_found = |u: &str| {
        ToolOutput::err(
            format!("<dscl_cmd> DS Error: -14136 (eDSRecordNotFound)\nRecord not found: {u}\n"),
            56,
        )
    };
    if let Some(user) = flag_value(args, "-authonly") {
        let password = args
            .iter()
            .skip_while(|a| *a != "-authonly")
            .nth(2)
            .cloned()
            .unwrap_or_default();
        return if mac.password_matches(&user, &password) {
            ToolOutput::default()
        } else {
            ToolOutput::err(
                "Authentication for node /Search failed. (-14090, eDSAuthFailed)\n",
                255,
            )
        };
    }
    let verb = args.get(1).map(String::as_str);
    let user = user_of(args.get(2));
    match verb {
        Some("-list") => {
            let names: String = mac
                .users
                .iter()
                .map(|u| format!("{}\n", u.short_name))
                .collect();
            ToolOutput::out(names)
        }
        Some("-read") => {
            let Ok(u) = mac.user(&user) else {
                return not_found(&user);
            };
            let key = args.get(3).map(String::as_str);
            let mut out = String::new();
            if key.is_none() || key == Some("AuthenticationAuthority") {
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
            if key.is_none() || key == Some("RealName") {
                // dscl wraps values containing spaces onto the next line.
                if u.real_name.contains(' ') {
                    out.push_str(&format!("RealName:\n {}\n", u.real_name));
                } else {
                    out.push_str(&format!("RealName: {}\n", u.real_name));
                }
            }
            ToolOutput::out(out)
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
            "simulated: -read, -list /Users, -passwd, -append AuthenticationAuthority, -authonly",
        ),
    }
}
