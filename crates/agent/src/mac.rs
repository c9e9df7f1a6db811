//! The Mac as the agent sees it: one typed method per fact, each a fresh run of an Apple tool.

use vault::Secret;

use crate::parse::{self, ParseError, diskutil, dscl, fdesetup, profiles, sysadminctl};
use crate::tools::{Answer, Reply, Tool, ToolError, Tools};

#[derive(Debug, thiserror::Error)]
pub enum MacError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("the startup volume is not APFS, so it has no Secure Tokens or Bootstrap Token")]
    NotApfs,
    #[error("`{tool}` printed more than the {cap}-byte cap; its output was not trusted")]
    TooMuchOutput { tool: &'static str, cap: usize },
    #[error("`{tool}` failed (exit {code:?}): {detail:?}")]
    Failed {
        tool: &'static str,
        code: Option<i32>,
        detail: String,
    },
}

/// A macOS version such as 10.15.7 or 14.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct OsVersion {
    pub major: u32,
    pub minor: u32,
}

impl OsVersion {
    pub const SECURE_TOKEN: OsVersion = OsVersion {
        major: 10,
        minor: 13,
    };
    pub const BOOTSTRAP_TOKEN: OsVersion = OsVersion {
        major: 10,
        minor: 15,
    };

    pub fn parse(text: &str) -> Option<OsVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
        Some(OsVersion { major, minor })
    }
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

pub struct Mac {
    pub tools: Tools,
}

fn failed(tool: Tool, out: &crate::tools::Output) -> MacError {
    MacError::Failed {
        tool: tool.name(),
        code: out.code,
        detail: parse::quote(out.combined().trim()),
    }
}

impl Mac {
    pub fn new(tools: Tools) -> Self {
        Self { tools }
    }

    /// Runs a tool; output past the cap is refused rather than parsed half-read.
    fn run(&self, tool: Tool, args: &[&str]) -> Result<crate::tools::Output, MacError> {
        let out = self.tools.run(tool, args)?;
        if out.truncated {
            return Err(MacError::TooMuchOutput {
                tool: tool.name(),
                cap: self.tools.output_cap,
            });
        }
        Ok(out)
    }

    /// `sysadminctl -secureTokenStatus <user>`; stdout and stderr read together.
    pub fn secure_token_status(
        &self,
        user: &str,
    ) -> Result<sysadminctl::SecureTokenStatus, MacError> {
        let out = self.run(Tool::Sysadminctl, &["-secureTokenStatus", user])?;
        Ok(sysadminctl::parse_secure_token_status(&out.combined())?)
    }

    pub fn filevault_users(&self) -> Result<Vec<fdesetup::FileVaultUser>, MacError> {
        let out = self.run(Tool::Fdesetup, &["list"])?;
        if !out.success() {
            return Err(failed(Tool::Fdesetup, &out));
        }
        Ok(fdesetup::parse_list(&out.stdout)?)
    }

    pub fn crypto_users(&self) -> Result<diskutil::CryptoUsers, MacError> {
        let out = self.run(Tool::Diskutil, &["apfs", "listcryptousers", "/"])?;
        if diskutil::says_not_apfs(&out.combined()) {
            return Err(MacError::NotApfs);
        }
        if !out.success() {
            return Err(failed(Tool::Diskutil, &out));
        }
        Ok(diskutil::parse_listcryptousers(&out.stdout)?)
    }

    pub fn bootstrap_token_status(&self) -> Result<profiles::BootstrapTokenStatus, MacError> {
        let out = self.run(Tool::Profiles, &["status", "-type", "bootstraptoken"])?;
        Ok(profiles::parse_status(&out.combined())?)
    }

    /// `(short name, UID)` of every local user record.
    pub fn user_list(&self) -> Result<Vec<(String, i64)>, MacError> {
        let out = self.run(Tool::Dscl, &[".", "-list", "/Users", "UniqueID"])?;
        Ok(dscl::parse_user_list(&out.stdout)?)
    }

    /// The user's record, or `None` when no such user exists.
    pub fn user(&self, name: &str) -> Result<Option<dscl::UserRecord>, MacError> {
        let path = format!("/Users/{name}");
        let mut args = vec![".", "-read", path.as_str()];
        args.extend(dscl::USER_KEYS);
        let out = self.run(Tool::Dscl, &args)?;
        match dscl::parse_user(name, &out.combined()) {
            Ok(user) => Ok(Some(user)),
            Err(ParseError::ToolError { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn admins(&self) -> Result<Vec<String>, MacError> {
        let out = self.run(
            Tool::Dscl,
            &[".", "-read", "/Groups/admin", "GroupMembership"],
        )?;
        Ok(dscl::parse_group_membership(&out.combined())?)
    }

    /// Adds or removes a user from the admin group (the Factorial transfer's promotion and demotion).
    pub fn set_admin(&self, user: &str, admin: bool) -> Result<(), MacError> {
        let verb = if admin { "-append" } else { "-delete" };
        let out = self.run(
            Tool::Dscl,
            &[".", verb, "/Groups/admin", "GroupMembership", user],
        )?;
        if !out.success() {
            return Err(failed(Tool::Dscl, &out));
        }
        Ok(())
    }

    /// `dscl . -authonly <user>`, the password typed at its prompt on a pty. `Ok(false)`: wrong password.
    pub fn authenticate(&self, user: &str, password: &Secret<String>) -> Result<bool, MacError> {
        let answers = [Answer {
            prompt: "password:",
            reply: Reply::Secret(password),
        }];
        let out = self
            .tools
            .run_in_pty(Tool::Dscl, &[".", "-authonly", user], &answers)?;
        Ok(out.success()
            && !out.stdout.contains("DS Error")
            && !out.stdout.contains("eDSAuthFailed"))
    }

    /// The macOS version, or `None` when `sw_vers` is missing or says something unexpected.
    pub fn os_version(&self) -> Option<OsVersion> {
        let out = self.run(Tool::SwVers, &["-productVersion"]).ok()?;
        OsVersion::parse(&out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_versions_parse_and_order() {
        assert_eq!(
            OsVersion::parse("10.12.6\n"),
            Some(OsVersion {
                major: 10,
                minor: 12
            })
        );
        assert_eq!(
            OsVersion::parse("14"),
            Some(OsVersion {
                major: 14,
                minor: 0
            })
        );
        assert!(OsVersion::parse("10.12.6").unwrap() < OsVersion::SECURE_TOKEN);
        assert!(OsVersion::parse("15.1").unwrap() > OsVersion::BOOTSTRAP_TOKEN);
        assert_eq!(OsVersion::parse("banana"), None);
        assert_eq!(OsVersion::parse(""), None);
        assert_eq!(OsVersion::parse("10.x"), None);
    }
}
