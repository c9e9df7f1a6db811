//! Accounts on a Mac and the Secure Token rules they follow (§1.2–§1.4): Setup Assistant and later users,
//! passwords, admin rights, granting and removing Secure Tokens. Events that talk to the MDM server (login,
//! escrow, profiles, erase) are in `super::events`.

use super::{AddUser, Arch, Enrollment, Mac, MacError, User, UserKind, password_digest};

impl Mac {
    pub(super) fn check_password(
        &self,
        short_name: &str,
        password: &str,
    ) -> Result<&User, MacError> {
        let user = self.user(short_name)?;
        if super::user_password_matches(user, password) {
            Ok(user)
        } else {
            Err(MacError::BadCredentials(short_name.into()))
        }
    }

    pub(super) fn require_secure_token_os(&self) -> Result<(), MacError> {
        if self.os.has_secure_token() {
            Ok(())
        } else {
            Err(MacError::SecureTokenNotApplicable(self.os))
        }
    }

    pub(super) fn grant(&mut self, short_name: &str, volume_owner: bool) -> Result<(), MacError> {
        let apple_silicon = self.arch == Arch::AppleSilicon;
        let user = self.user_mut(short_name)?;
        user.secure_token = true;
        // §1.4: only Apple silicon has volume owners.
        user.volume_owner = apple_silicon && volume_owner;
        Ok(())
    }

    pub(super) fn insert_user(&mut self, add: &AddUser) -> Result<(), MacError> {
        if self.users.iter().any(|u| u.short_name == add.short_name) {
            return Err(MacError::UserExists(add.short_name.clone()));
        }
        let uid = self.next_uid();
        let guid = super::guid_from(&format!("user:{}:{}:{}", self.udid, add.short_name, uid));
        let password_digest = add.password.as_deref().map(|p| password_digest(&guid, p));
        self.users.push(User {
            short_name: add.short_name.clone(),
            real_name: add.real_name.clone(),
            guid,
            uid,
            admin: add.admin,
            kind: add.kind,
            secure_token: false,
            volume_owner: false,
            secure_token_disabled_tag: add.disable_secure_token,
            plain_text_password_set: add.password.is_some() && add.kind != UserKind::ManagedAdmin,
            password_digest,
            has_logged_in: false,
            logged_in: false,
            token_out_of_sync: false,
            shadow_hash: None,
        });
        Ok(())
    }

    /// Whether `user` would take the first token at this moment through a plain-text password.
    pub(super) fn takes_first_token(&self, user: &User) -> bool {
        // §1.2 rule 4: "true network accounts" never get one; rule 2: the opt-out tag wins.
        self.os.has_secure_token()
            && !self.has_token_holder()
            && user.kind != UserKind::Network
            && !user.secure_token_disabled_tag
    }

    /// Setup Assistant creates the first user (§1.2 rule 1). ADE Macs leave Setup Assistant only after
    /// `DeviceConfigured` (§1.7).
    ///
    /// Scenario S4 (FileWave): with an admin created from a hash (AccountConfiguration), a *standard* primary
    /// account takes no token either, so nobody holds one until the managed admin's first graphical login.
    pub fn setup_assistant_create_user(&mut self, add: AddUser) -> Result<(), MacError> {
        self.awaiting_configuration = false;
        self.insert_user(&add)?;
        let name = add.short_name;
        let hash_admin_exists = self
            .users
            .iter()
            .any(|u| u.kind == UserKind::ManagedAdmin && !u.plain_text_password_set);
        let standard_beside_hash_admin = !add.admin && hash_admin_exists;
        if !standard_beside_hash_admin && self.takes_first_token(self.user(&name)?) {
            // §1.2 rule 1: the Setup Assistant user gets the first token; §1.4: the first holder owns the volume.
            self.grant(&name, true)?;
        }
        Ok(())
    }

    /// AccountConfiguration (ADE, only while awaiting configuration, §1.7): creates the `AutoSetupAdminAccounts`
    /// admin from its `SALTED-SHA512-PBKDF2` hash (no plain-text password, so no token: §1.2 rule 3) and keeps
    /// the primary-account options for [`Mac::finish_setup_assistant`].
    pub fn account_configuration(
        &mut self,
        config: &protocol::accounts::AccountConfiguration,
    ) -> Result<(), MacError> {
        if self.enrollment != Enrollment::Ade || !self.awaiting_configuration {
            return Err(MacError::NotAwaitingConfiguration);
        }
        if let Some(admin) = &config.admin {
            let mut add = AddUser::new(&admin.short_name, true, UserKind::ManagedAdmin, None);
            add.real_name = admin.full_name.clone();
            self.insert_user(&add)?;
            self.user_mut(&admin.short_name)?.shadow_hash =
                Some(super::ShadowHash::from_wire(&admin.password_hash));
        }
        // Apple: skipping or demoting the primary account each requires AutoSetupAdminAccounts.
        let with_admin = config.admin.is_some();
        self.account_setup = Some(super::AccountSetup {
            skip_primary_account: with_admin && config.skip_primary_setup_account_creation,
            primary_account_regular_user: with_admin
                && config.set_primary_setup_account_as_regular_user,
            managed_local_user: config.managed_local_user_short_name.clone(),
        });
        Ok(())
    }

    /// Setup Assistant goes on after `DeviceConfigured`: the person creates `primary` unless AccountConfiguration
    /// skipped it (then as a standard user when it said so).
    pub fn finish_setup_assistant(&mut self, primary: Option<AddUser>) -> Result<(), MacError> {
        self.device_configured();
        let setup = self.account_setup.take().unwrap_or_default();
        match primary {
            Some(_) if setup.skip_primary_account => Ok(()),
            Some(mut add) => {
                if setup.primary_account_regular_user {
                    add.admin = false;
                }
                self.setup_assistant_create_user(add)
            }
            None => Ok(()),
        }
    }

    /// ADE `AutoSetupAdminAccounts` creates the managed admin from a password hash while the Mac awaits
    /// configuration (§1.7): no plain-text password exists, so no token (§1.2 rule 3).
    pub fn create_managed_admin(
        &mut self,
        short_name: &str,
        password: &str,
    ) -> Result<(), MacError> {
        let mut add = AddUser::new(short_name, true, UserKind::ManagedAdmin, Some(password));
        add.real_name = "Managed Administrator".into();
        self.insert_user(&add)
    }

    /// `sysadminctl -addUser`, `dscl . -create`, `createmobileaccount`, or Users & Groups (with
    /// `authorized_by` naming the token-holding admin who created the user).
    pub fn add_user(&mut self, add: AddUser) -> Result<(), MacError> {
        // Check the authorising admin before creating anything.
        let granter = match &add.authorized_by {
            Some((admin, password)) => {
                let a = self.check_password(admin, password)?;
                if !a.admin {
                    return Err(MacError::NotAnAdmin(admin.clone()));
                }
                Some((a.secure_token, a.volume_owner))
            }
            None => None,
        };
        self.insert_user(&add)?;
        let name = add.short_name.as_str();
        if !self.os.has_secure_token() || add.kind == UserKind::Network || add.disable_secure_token
        {
            return Ok(());
        }
        match granter {
            // §1.3 rows 1–2: a token-holding admin's credentials give the new user a token (and ownership from an
            // owner, §1.4).
            Some((true, owner)) => self.grant(name, owner)?,
            // An admin without a token creates the account, but cannot pass on a token it does not have.
            Some((false, _)) => {}
            None => {
                // §1.2 rule 2: on macOS 11+, the first user whose password is set in plain text gets the first token.
                if self.os.is_11_or_later()
                    && add.password.is_some()
                    && add.kind != UserKind::ManagedAdmin
                    && self.takes_first_token(self.user(name)?)
                {
                    self.grant(name, true)?;
                }
                // §1.3 row 3: otherwise no token without a token holder's credentials.
            }
        }
        Ok(())
    }

    /// `dscl . -passwd /Users/U P`: a plain-text password (§1.2 rule 2 on macOS 11+).
    pub fn set_password_plain(&mut self, short_name: &str, password: &str) -> Result<(), MacError> {
        let user = self.user_mut(short_name)?;
        user.password_digest = Some(password_digest(&user.guid, password));
        user.plain_text_password_set = true;
        let first = self.os.is_11_or_later() && self.takes_first_token(self.user(short_name)?);
        if first {
            self.grant(short_name, true)?;
        }
        Ok(())
    }

    /// `sysadminctl -resetPasswordFor U -newPassword P` authorised by the user's old password or a
    /// token-holding admin (the caller checks that): the Secure Token is re-wrapped with the new password, so
    /// token and FileVault unlock follow it (in sync, §1.3 last row is the opposite). A user without a token
    /// just gets the new password (on macOS 11+, maybe the first token: §1.2 rule 2).
    pub fn reset_password(&mut self, short_name: &str, password: &str) -> Result<(), MacError> {
        self.set_password_plain(short_name, password)?;
        let user = self.user_mut(short_name)?;
        user.shadow_hash = None;
        if user.secure_token {
            user.token_out_of_sync = false;
        }
        Ok(())
    }

    /// A LAPS tool or `SetAutoAdminPassword` replaces the password with a hash: a holder's token goes out of
    /// sync while its status still says ENABLED (§1.3 last row).
    pub fn set_password_hash(&mut self, short_name: &str, password: &str) -> Result<(), MacError> {
        let user = self.user_mut(short_name)?;
        user.password_digest = Some(password_digest(&user.guid, password));
        if user.secure_token {
            user.token_out_of_sync = true;
        }
        Ok(())
    }

    /// `dscl . -append|-delete /Groups/admin GroupMembership U`: admin rights change; tokens do not.
    pub fn set_admin(&mut self, short_name: &str, admin: bool) -> Result<(), MacError> {
        self.user_mut(short_name)?.admin = admin;
        Ok(())
    }

    /// Append `;DisabledTags;SecureToken` to the user's `AuthenticationAuthority` (§1.2 rule 2).
    pub fn disable_secure_token_tag(&mut self, short_name: &str) -> Result<(), MacError> {
        self.user_mut(short_name)?.secure_token_disabled_tag = true;
        Ok(())
    }

    /// `sysadminctl -secureTokenOn U -password P -adminUser A -adminPassword Q` (§1.3 rows 4–5).
    ///
    /// Divergence: Apple's text says A is an admin; scenario S7 (Hexnode) grants with a standard user's
    /// credentials, so the model requires A to hold a token, not to be an admin.
    pub fn secure_token_on(
        &mut self,
        short_name: &str,
        password: &str,
        admin: &str,
        admin_password: &str,
    ) -> Result<(), MacError> {
        self.require_secure_token_os()?;
        // §1.3 row 5: with no token holder, nothing can grant one.
        if !self.has_token_holder() {
            return Err(MacError::NoTokenHolder);
        }
        let user = self.check_password(short_name, password)?;
        if user.kind == UserKind::Network {
            return Err(MacError::NetworkAccount(short_name.into()));
        }
        let granter = self.check_password(admin, admin_password)?;
        if !granter.secure_token {
            return Err(MacError::AdminLacksSecureToken(admin.into()));
        }
        let owner = granter.volume_owner;
        self.grant(short_name, owner)
    }

    /// `sysadminctl -secureTokenOff`; authorised like `-secureTokenOn`.
    pub fn secure_token_off(
        &mut self,
        short_name: &str,
        password: &str,
        admin: &str,
        admin_password: &str,
    ) -> Result<(), MacError> {
        self.require_secure_token_os()?;
        self.check_password(short_name, password)?;
        let granter = self.check_password(admin, admin_password)?;
        if !granter.secure_token {
            return Err(MacError::AdminLacksSecureToken(admin.into()));
        }
        let user = self.user_mut(short_name)?;
        user.secure_token = false;
        user.volume_owner = false;
        Ok(())
    }
}
