//! `fdesetup list` and `diskutil apfs listcryptousers /` (§1.8).

use super::{ToolOutput, has_flag};
use crate::mac::{Arch, CryptoUserKind, Mac};

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
