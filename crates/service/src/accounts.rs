//! Accounts at zero-touch setup and the MDMOptions escrowd sends (issue 12).
//!
//! * A group may name a managed local admin. When an ADE Mac of that group completes enrollment with
//!   `AwaitingConfiguration` true, escrowd queues `AccountConfiguration` (`AutoSetupAdminAccounts` with a
//!   `SALTED-SHA512-PBKDF2` hash, `ManagedLocalUserShortName`, the primary-account options). The admin's
//!   password is generated per Mac and sealed with the vault
//!   ([`SecretRef::managed_admin_password`](crate::secrets::SecretRef::managed_admin_password)); it is never logged, put in an event or returned by the API.
//! * Every Mac that completes enrollment with `AwaitingConfiguration` true then gets `DeviceConfigured`,
//!   whatever its group and whatever becomes of the AccountConfiguration, or Setup Assistant waits forever.
//! * macOS's rules (`macos-tokens-and-admin-needs.md` §1.2 rule 3, scenario S4): an admin created from a hash
//!   holds no Secure Token until its first graphical login, so a group that also skips the primary account or
//!   makes it standard leaves no token holder and escrows nothing. Setting such a group answers warnings.
//! * MDMOptions: the Mac resets keys a Settings command leaves out, so escrowd always sends the full
//!   *effective* set: `BootstrapTokenAllowed` = the group's escrow switch, `PromptUserToAllowBootstrapToken…`
//!   = the group's prompt setting (no group: escrow on, prompt off), `ActivationLockAllowedWhileSupervised` =
//!   false (escrowd keeps no Activation Lock setting; an admin's typed Settings command can set it, and keys
//!   that command leaves out are filled from the effective set).

use protocol::accounts::{AccountConfiguration, AutoSetupAdmin, PasswordHash};
use protocol::command::{Command, MdmOptions};
use store::{Enrollment, GroupAccountSettings, Outcome, PrimaryAccount};
use vault::Secret;

use crate::apikeys::Actor;
use crate::commands::new_command_uuid;
use crate::error::admin;
use crate::secrets::SecretRef;
use crate::{EventKind, MdmService, Scoped, ServiceError};

/// PBKDF2-HMAC-SHA512 iterations of the `passwordHash` (macOS's own hashes use tens of thousands).
pub const PASSWORD_HASH_ITERATIONS: u32 = 40_000;
/// Length of a generated managed-admin password.
pub const GENERATED_PASSWORD_LEN: usize = 24;
/// Characters of generated passwords: no look-alikes (0/O, 1/l/I), nothing a shell or a keyboard layout
/// trips over.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// An admin's change to a typed `Settings` command: `None` keys are filled from the effective set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdmOptionsChange {
    pub bootstrap_token_allowed: Option<bool>,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    pub activation_lock_allowed_while_supervised: Option<bool>,
}

impl MdmOptionsChange {
    /// The full set: the keys given, the rest from `effective`.
    pub fn over(&self, effective: MdmOptions) -> MdmOptions {
        MdmOptions {
            bootstrap_token_allowed: self
                .bootstrap_token_allowed
                .unwrap_or(effective.bootstrap_token_allowed),
            prompt_user_to_allow_bootstrap_token_for_authentication: self
                .prompt_user_to_allow_bootstrap_token_for_authentication
                .unwrap_or(effective.prompt_user_to_allow_bootstrap_token_for_authentication),
            activation_lock_allowed_while_supervised: self
                .activation_lock_allowed_while_supervised
                .unwrap_or(effective.activation_lock_allowed_while_supervised),
        }
    }
}

/// A group's managed-admin settings as an admin gives them (validated by [`MdmService::admin_set_group_accounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccountsInput {
    pub admin_short_name: String,
    pub admin_full_name: Option<String>,
    pub admin_hidden: bool,
    pub primary_account: PrimaryAccount,
    pub dont_auto_populate_primary_account_info: bool,
    pub lock_primary_account_info: bool,
    pub primary_account_full_name: Option<String>,
    pub primary_account_user_name: Option<String>,
}

/// The settings and what escrowd warns about them.
#[derive(Debug, Clone)]
pub struct GroupAccounts {
    pub settings: Option<GroupAccountSettings>,
    pub warnings: Vec<String>,
}

/// macOS short names: 1–31 characters of letters, digits, `_`, `.`, `-`, starting with a letter or `_`.
fn check_short_name(what: &str, name: &str) -> Result<String, ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 31
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok {
        return Err(ServiceError::Invalid(format!(
            "{what} {name:?} is not a macOS short name: 1-31 letters, digits, '_', '.' or '-', starting with a letter or '_'"
        )));
    }
    if matches!(name, "root" | "daemon" | "nobody" | "admin" | "wheel") {
        return Err(ServiceError::Invalid(format!(
            "{what} {name:?} is reserved by macOS"
        )));
    }
    Ok(name.to_string())
}

fn check_full_name(what: &str, name: &str) -> Result<String, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "{what} must be 1-255 printable characters"
        )));
    }
    Ok(name.to_string())
}

/// What is wrong with a group configured this way, in an admin's words (empty: nothing).
pub fn account_settings_warnings(s: &GroupAccountSettings) -> Vec<String> {
    let mut out = Vec::new();
    let admin = &s.admin_short_name;
    let (what, until) = match s.primary_account {
        PrimaryAccount::Admin => return out,
        PrimaryAccount::Standard => (
            "makes Setup Assistant's primary account a standard user",
            "someone logs in graphically (the first to do so takes the first token, even a standard user)",
        ),
        PrimaryAccount::Skip => (
            "skips Setup Assistant's primary account",
            "the managed admin logs in graphically",
        ),
    };
    out.push(format!(
        "no Secure Token holder after setup: this group {what}, and the managed admin '{admin}' is created \
         from a password hash, which holds no Secure Token until its first graphical login (macOS). Nothing \
         can escrow a Bootstrap Token until {until} (scenario S4). Have '{admin}' log in at the login window \
         once, or keep the primary account an administrator."
    ));
    out
}

/// A random password of [`GENERATED_PASSWORD_LEN`] characters (rejection sampling: no modulo bias).
fn generate_password() -> Result<Secret<String>, ServiceError> {
    let limit = 256 - (256 % PASSWORD_ALPHABET.len());
    let mut out = String::with_capacity(GENERATED_PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_PASSWORD_LEN {
        openssl::rand::rand_bytes(&mut buf)
            .map_err(|e| ServiceError::Internal(format!("random bytes: {e}")))?;
        for b in buf {
            if (b as usize) < limit && out.len() < GENERATED_PASSWORD_LEN {
                out.push(PASSWORD_ALPHABET[b as usize % PASSWORD_ALPHABET.len()] as char);
            }
        }
        zeroize::Zeroize::zeroize(&mut buf);
    }
    Ok(Secret::new(out))
}

/// The `SALTED-SHA512-PBKDF2` hash of `password` with a fresh 32-byte salt, as macOS stores it.
pub fn password_hash(password: &str, iterations: u32) -> Result<PasswordHash, ServiceError> {
    let mut salt = vec![0u8; 32];
    openssl::rand::rand_bytes(&mut salt)
        .map_err(|e| ServiceError::Internal(format!("random bytes: {e}")))?;
    let mut entropy = vec![0u8; 128];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &salt, iterations, &mut entropy);
    Ok(PasswordHash {
        entropy,
        salt,
        iterations,
    })
}

impl MdmService {
    /// The MDMOptions escrowd stands for on this Mac (see the module docs for where each key comes from).
    pub async fn effective_mdm_options(
        &self,
        device: &Enrollment,
    ) -> Result<MdmOptions, ServiceError> {
        self.scoped().effective_mdm_options(device).await
    }

    /// The managed-admin password escrowd generated for this Mac, unsealed (for the LAPS feature to come and
    /// for tests; no API or CLI answers it).
    pub async fn managed_admin_password(
        &self,
        device_id: &str,
    ) -> Result<Option<Secret<String>>, ServiceError> {
        self.scoped().managed_admin_password(device_id).await
    }

    /// A group's managed-admin settings and their warnings.
    pub async fn admin_group_accounts(
        &self,
        group_id: &str,
    ) -> Result<GroupAccounts, ServiceError> {
        self.scoped().admin_group_accounts(group_id).await
    }

    /// Set (Some) or remove (None) a group's managed admin. Validated before anything changes; audited. The
    /// answer carries the warnings (S4) so the API and CLI can show them.
    pub async fn admin_set_group_accounts(
        &self,
        group_id: &str,
        input: Option<&GroupAccountsInput>,
        by: &Actor,
    ) -> Result<GroupAccounts, ServiceError> {
        self.scoped()
            .admin_set_group_accounts(group_id, input, by)
            .await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait AccountRoles:
    store::Groups + store::Secrets + store::Events + store::Commands
{
}
impl<T: ?Sized + store::Groups + store::Secrets + store::Events + store::Commands> AccountRoles
    for T
{
}

impl<S: ?Sized + AccountRoles> Scoped<'_, S> {
    /// Setup Assistant is waiting (`AwaitingConfiguration` true at enrollment): queue AccountConfiguration
    /// when the Mac's group names a managed admin, then DeviceConfigured in any case. A failure to build the
    /// AccountConfiguration is an event and does not hold back DeviceConfigured. Returns how many commands
    /// were queued.
    pub(crate) async fn queue_setup_commands(
        &self,
        device: &Enrollment,
    ) -> Result<usize, ServiceError> {
        let ids = [device.id.clone()];
        let mut queued = 0;
        let settings = match device.group_id.as_deref() {
            Some(g) => self.store.group_account_settings(g).await?,
            None => None,
        };
        if let Some(settings) = settings {
            match self.account_configuration(device, &settings).await {
                // carries_secret: true once sealed payloads land (the passwordHash is derived from a secret).
                Ok(command) => {
                    self.enqueue(&ids, &command).await?;
                    queued += 1;
                    let warnings = account_settings_warnings(&settings);
                    let detail = format!(
                        "AccountConfiguration queued: managed admin '{}', primary account {}{}",
                        settings.admin_short_name,
                        settings.primary_account.as_str(),
                        if warnings.is_empty() {
                            String::new()
                        } else {
                            "; no Secure Token holder until the managed admin logs in graphically (S4)"
                                .into()
                        }
                    );
                    let event = self.event(
                        &device.id,
                        Some(&device.id),
                        EventKind::AccountConfigurationQueued,
                        Outcome::Success,
                        detail,
                    );
                    self.store.record_event(&event).await?;
                }
                Err(err) => {
                    let event = self.event(
                        &device.id,
                        Some(&device.id),
                        EventKind::AccountConfigurationFailed,
                        Outcome::Failure,
                        format!("AccountConfiguration not queued: {err}"),
                    );
                    self.store.record_event(&event).await?;
                }
            }
        }
        self.enqueue(&ids, &Command::device_configured(new_command_uuid()))
            .await?;
        Ok(queued + 1)
    }

    /// Generate and seal this Mac's managed-admin password, and build the command from its hash.
    async fn account_configuration(
        &self,
        device: &Enrollment,
        s: &GroupAccountSettings,
    ) -> Result<Command, ServiceError> {
        let password = generate_password()?;
        let r = SecretRef::managed_admin_password(&device.id);
        let sealed = self
            .secrets
            .seal(&r, password.expose().as_bytes(), self.now())?;
        let hash = {
            let password = password.clone();
            tokio::task::spawn_blocking(move || {
                password_hash(password.expose(), PASSWORD_HASH_ITERATIONS)
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("password hash task: {e}")))??
        };
        self.store.put_sealed_secret(&sealed).await?;
        let config = AccountConfiguration {
            admin: Some(AutoSetupAdmin {
                short_name: s.admin_short_name.clone(),
                full_name: s.admin_full_name.clone(),
                password_hash: hash,
                hidden: s.admin_hidden,
            }),
            skip_primary_setup_account_creation: s.primary_account == PrimaryAccount::Skip,
            set_primary_setup_account_as_regular_user: s.primary_account
                == PrimaryAccount::Standard,
            dont_auto_populate_primary_account_info: s.dont_auto_populate_primary_account_info,
            lock_primary_account_info: s.lock_primary_account_info,
            primary_account_full_name: s.primary_account_full_name.clone(),
            primary_account_user_name: s.primary_account_user_name.clone(),
            managed_local_user_short_name: Some(s.admin_short_name.clone()),
        };
        Ok(config.command(new_command_uuid())?)
    }

    /// The managed-admin password escrowd generated for this Mac, unsealed (for the LAPS feature to come and
    /// for tests; no API or CLI answers it).
    pub(crate) async fn managed_admin_password(
        &self,
        device_id: &str,
    ) -> Result<Option<Secret<String>>, ServiceError> {
        self.secrets
            .open_text(
                &SecretRef::managed_admin_password(device_id),
                "a managed-admin password",
            )
            .await
    }

    /// A group's managed-admin settings and their warnings.
    pub(crate) async fn admin_group_accounts(
        &self,
        group_id: &str,
    ) -> Result<GroupAccounts, ServiceError> {
        self.admin_group(group_id).await?;
        let settings = self.store.group_account_settings(group_id).await?;
        let warnings = settings
            .as_ref()
            .map(account_settings_warnings)
            .unwrap_or_default();
        Ok(GroupAccounts { settings, warnings })
    }

    /// Set (Some) or remove (None) a group's managed admin. Validated before anything changes; audited. The
    /// answer carries the warnings (S4) so the API and CLI can show them.
    pub(crate) async fn admin_set_group_accounts(
        &self,
        group_id: &str,
        input: Option<&GroupAccountsInput>,
        by: &Actor,
    ) -> Result<GroupAccounts, ServiceError> {
        let group = self.admin_group(group_id).await?;
        let subject = format!("group:{group_id}");
        let Some(input) = input else {
            let event = self.event(
                &subject,
                None,
                EventKind::GroupAccountsUpdated,
                Outcome::Success,
                format!(
                    "{} removed the managed admin of group {:?}",
                    by.label(),
                    group.name
                ),
            );
            self.store
                .delete_group_account_settings(group_id, &event)
                .await
                .map_err(admin)?;
            return Ok(GroupAccounts {
                settings: None,
                warnings: Vec::new(),
            });
        };
        let short = check_short_name("the managed admin's short name", &input.admin_short_name)?;
        let full = match &input.admin_full_name {
            Some(f) => check_full_name("the managed admin's full name", f)?,
            None => short.clone(),
        };
        let primary_user_name = input
            .primary_account_user_name
            .as_deref()
            .map(|n| check_short_name("primary_account_user_name", n))
            .transpose()?;
        if primary_user_name.as_deref() == Some(short.as_str()) {
            return Err(ServiceError::Invalid(format!(
                "the primary account cannot be named like the managed admin ({short:?})"
            )));
        }
        let primary_full_name = input
            .primary_account_full_name
            .as_deref()
            .map(|n| check_full_name("primary_account_full_name", n))
            .transpose()?;
        let settings = GroupAccountSettings {
            group_id: group_id.to_string(),
            admin_short_name: short,
            admin_full_name: full,
            admin_hidden: input.admin_hidden,
            primary_account: input.primary_account,
            dont_auto_populate_primary_account_info: input.dont_auto_populate_primary_account_info,
            lock_primary_account_info: input.lock_primary_account_info,
            primary_account_full_name: primary_full_name,
            primary_account_user_name: primary_user_name,
            updated_at: self.now(),
        };
        let warnings = account_settings_warnings(&settings);
        let event = self.event(
            &subject,
            None,
            EventKind::GroupAccountsUpdated,
            Outcome::Success,
            format!(
                "{} set the managed admin of group {:?}: '{}', primary account {}{}",
                by.label(),
                group.name,
                settings.admin_short_name,
                settings.primary_account.as_str(),
                if warnings.is_empty() {
                    ""
                } else {
                    " (warned: no Secure Token holder after setup, S4)"
                }
            ),
        );
        self.store
            .put_group_account_settings(&settings, &event)
            .await
            .map_err(admin)?;
        Ok(GroupAccounts {
            settings: Some(settings),
            warnings,
        })
    }
}

impl<S: ?Sized + store::Groups> Scoped<'_, S> {
    /// The MDMOptions escrowd stands for on this Mac (see the module docs for where each key comes from).
    pub(crate) async fn effective_mdm_options(
        &self,
        device: &Enrollment,
    ) -> Result<MdmOptions, ServiceError> {
        let group = match device.group_id.as_deref() {
            Some(g) => self.store.group(g).await?,
            None => None,
        };
        Ok(MdmOptions {
            bootstrap_token_allowed: group.as_ref().is_none_or(|g| g.bootstrap_escrow_enabled),
            prompt_user_to_allow_bootstrap_token_for_authentication: group
                .as_ref()
                .is_some_and(|g| g.prompt_user_to_allow_bootstrap_token_for_authentication),
            activation_lock_allowed_while_supervised: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pbkdf2_hmac_sha512_of_the_password_with_its_salt() {
        let h = password_hash("pw", 1000).unwrap();
        assert_eq!(
            (h.entropy.len(), h.salt.len(), h.iterations),
            (128, 32, 1000)
        );
        // Differential check against OpenSSL's PKCS5_PBKDF2_HMAC.
        let mut expected = vec![0u8; 128];
        openssl::pkcs5::pbkdf2_hmac(
            b"pw",
            &h.salt,
            1000,
            openssl::hash::MessageDigest::sha512(),
            &mut expected,
        )
        .unwrap();
        assert_eq!(h.entropy, expected);
        assert_ne!(
            password_hash("pw", 1000).unwrap().salt,
            h.salt,
            "fresh salt"
        );
    }

    #[test]
    fn generated_passwords_are_long_from_the_alphabet_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.expose().len(), GENERATED_PASSWORD_LEN);
        assert!(a.expose().bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn skipping_or_demoting_the_primary_account_warns_and_an_admin_primary_does_not() {
        let s = |p| GroupAccountSettings {
            group_id: "g".into(),
            admin_short_name: "mgmt".into(),
            admin_full_name: "M".into(),
            admin_hidden: false,
            primary_account: p,
            dont_auto_populate_primary_account_info: false,
            lock_primary_account_info: false,
            primary_account_full_name: None,
            primary_account_user_name: None,
            updated_at: 0,
        };
        assert!(account_settings_warnings(&s(PrimaryAccount::Admin)).is_empty());
        for p in [PrimaryAccount::Skip, PrimaryAccount::Standard] {
            let w = account_settings_warnings(&s(p));
            assert_eq!(w.len(), 1);
            assert!(w[0].contains("no Secure Token holder") && w[0].contains("mgmt"));
        }
    }

    #[test]
    fn short_names_follow_macos_rules() {
        for ok in ["mgmt", "_admin", "it.admin", "a-b_c9"] {
            assert!(check_short_name("n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "9lives",
            "-x",
            "has space",
            "root",
            "é",
            &"a".repeat(32),
        ] {
            assert!(check_short_name("n", bad).is_err(), "{bad}");
        }
    }
}
