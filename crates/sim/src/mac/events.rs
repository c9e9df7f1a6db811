//! Events on a Mac and the rules they follow (§1.2–§1.7). Each event changes the model and returns what the
//! Mac would send its MDM server; the caller delivers it and reports the server's answer back
//! ([`Mac::escrow_answered`], [`Mac::bootstrap_token_served`]).

use protocol::command::ObliterationBehavior;

use super::{Arch, BtAuth, Enrollment, Mac, MacError, OsVersion, SimToken, User, UserKind};

/// A check-in the Mac wants to send because of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkin {
    SetBootstrapToken(SimToken),
    /// An empty `SetBootstrapToken`: `profiles remove -type bootstraptoken` (§1.5, inferred).
    ClearBootstrapToken,
    GetBootstrapToken(FetchReason),
    CheckOut,
}

/// Why the Mac asks for its Bootstrap Token (§1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchReason {
    /// A user without a token logs in; they get one from the BT.
    Login(String),
    SoftwareUpdate,
    KextApproval,
    RebuildKernelCache,
    /// EraseDevice's EACS preflight.
    EraseDevice,
    /// `profiles validate -type bootstraptoken`.
    Validate,
}

/// What came back from GetBootstrapToken, judged against the Mac's own token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The server returned this Mac's token and the action went ahead.
    Matched,
    /// Empty data or an error: the action did not happen.
    Empty,
    /// The server returned bytes that are not this Mac's token.
    Mismatch,
}

/// How an EraseDevice ended (§1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseOutcome {
    /// Acknowledged and erased (EACS succeeded, or obliteration was asked for or is the only way).
    Acknowledged,
    /// `Default`: EACS preflight failed, replied Error, then erased anyway by obliteration.
    ErrorThenObliterated,
    /// `DoNotObliterate`: EACS preflight failed, replied Error, nothing erased.
    ErrorNotErased,
}

impl Mac {
    /// Graphical login at the login window (§1.2 rules 3–4, §1.3, §1.5 trigger a, §1.6).
    pub fn login(&mut self, short_name: &str, password: &str) -> Result<Option<Checkin>, MacError> {
        let user = self.check_password(short_name, password)?.clone();
        {
            let u = self.user_mut(short_name)?;
            u.logged_in = true;
            u.has_logged_in = true;
            // The login window has the password in plain text (how the managed admin finally gets one, rule 3).
            u.plain_text_password_set = true;
        }
        if !self.os.has_secure_token() {
            return Ok(None);
        }
        if !user.secure_token {
            if self.first_token_at_login(&user) {
                // §1.2 rule 4 (10.13–10.14 first login; 10.15 first mobile account), rule 3 (managed admin at its
                // first GUI login), rule 2 (11+: the login sets the first plain-text password).
                self.grant(short_name, true)?;
            } else if self.escrowed && self.fetches_bt_at_login(&user) {
                // §1.3 rows 6–7, §1.6: the Mac asks the server for its BT to give this user a token.
                return Ok(Some(Checkin::GetBootstrapToken(FetchReason::Login(
                    short_name.into(),
                ))));
            } else {
                // S5 step 1: macOS asks for a token admin's credentials; the user bypasses; no token.
                return Ok(None);
            }
        }
        // §1.5 trigger (a): a token holder logs in and nothing is escrowed yet.
        Ok(self.escrow_if_possible())
    }

    fn first_token_at_login(&self, user: &User) -> bool {
        if !self.takes_first_token(user) {
            return false;
        }
        if self.os.supports_bootstrap_token() {
            // 10.15+: local and mobile accounts and the managed admin (§1.2 rules 3–4).
            true
        } else {
            // 10.13–10.14: the first *local* account to log in (§1.2 rule 4; mobile accounts are a 10.15 addition).
            matches!(user.kind, UserKind::Local | UserKind::ManagedAdmin)
        }
    }

    fn fetches_bt_at_login(&self, user: &User) -> bool {
        if user.secure_token_disabled_tag || !self.os.supports_bootstrap_token() {
            return false;
        }
        match user.kind {
            UserKind::Network => false,
            // §1.3 row 6: macOS 11+, any local or mobile user.
            UserKind::Local => self.os.is_11_or_later(),
            // §1.3 row 7: on 10.15 only mobile accounts and the managed admin.
            UserKind::Mobile | UserKind::ManagedAdmin => true,
        }
    }

    /// SetBootstrapToken with the local BT (generating it first) when §1.5's preconditions hold.
    fn escrow_if_possible(&mut self) -> Option<Checkin> {
        if self.escrowed || self.can_escrow().is_err() {
            return None;
        }
        Some(Checkin::SetBootstrapToken(self.local_bootstrap_token()))
    }

    fn local_bootstrap_token(&mut self) -> SimToken {
        match &self.bootstrap_token {
            Some(t) => t.clone(),
            None => {
                let t = self.generate_bootstrap_token();
                self.bootstrap_token = Some(t.clone());
                t
            }
        }
    }

    /// The user logs out.
    pub fn logout(&mut self, short_name: &str) -> Result<(), MacError> {
        self.user_mut(short_name)?.logged_in = false;
        Ok(())
    }

    /// The server's answer to SetBootstrapToken: a 200 makes the Mac believe it is escrowed (§1.5).
    pub fn escrow_answered(&mut self, token: &SimToken, accepted: bool) {
        if accepted {
            self.escrowed = true;
            self.server_copy = Some(token.clone());
        }
    }

    /// The server's answer to an empty SetBootstrapToken.
    pub fn clear_answered(&mut self, accepted: bool) {
        if accepted {
            self.server_copy = None;
        }
    }

    /// The server's answer to GetBootstrapToken (`None`: an error status; `Some(empty)`: no token held).
    pub fn bootstrap_token_served(
        &mut self,
        reason: &FetchReason,
        served: Option<&[u8]>,
    ) -> Served {
        let outcome = match (served, &self.bootstrap_token) {
            (None, _) => Served::Empty,
            (Some([]), _) => Served::Empty,
            (Some(b), Some(mine)) if mine.bytes() == b => Served::Matched,
            (Some(_), _) => Served::Mismatch,
        };
        if outcome == Served::Matched
            && let FetchReason::Login(name) = reason
        {
            // §1.3 row 6, §1.4: a token from the BT at login comes with volume ownership.
            let _ = self.grant(name, true);
        }
        outcome
    }

    /// `profiles install -type bootstraptoken -user A -password P` (§1.5 trigger b: A must hold a token).
    pub fn profiles_install(&mut self, admin: &str, password: &str) -> Result<Checkin, MacError> {
        let a = self.check_password(admin, password)?;
        if !a.admin {
            return Err(MacError::NotAnAdmin(admin.into()));
        }
        if !a.secure_token {
            return Err(MacError::AdminLacksSecureToken(admin.into()));
        }
        self.can_escrow()?;
        Ok(Checkin::SetBootstrapToken(self.local_bootstrap_token()))
    }

    /// `profiles remove -type bootstraptoken`: deletes the BT on the Mac and on the server (§1.5).
    pub fn profiles_remove(&mut self) -> Result<Checkin, MacError> {
        self.can_escrow()?;
        self.bootstrap_token = None;
        self.escrowed = false;
        Ok(Checkin::ClearBootstrapToken)
    }

    /// `profiles validate -type bootstraptoken -user U -password P`: really fetches the token (§1.5, §1.6).
    pub fn profiles_validate(&self, user: &str, password: &str) -> Result<Checkin, MacError> {
        self.check_password(user, password)?;
        self.can_escrow()?;
        Ok(Checkin::GetBootstrapToken(FetchReason::Validate))
    }

    /// `profiles status -type bootstraptoken`: (supported on server, escrowed as the Mac believes) (§1.5:
    /// "status will lie to you").
    pub fn profiles_status(&self) -> (bool, bool) {
        (self.can_escrow().is_ok(), self.escrowed)
    }

    /// An MDM-authorised action needing volume-owner authorisation: software update, kext approval,
    /// RebuildKernelCache (§1.4, §1.6). Intel has no owner gate; Apple silicon fetches the BT when BT
    /// authentication is allowed, otherwise a person must type an owner's credentials.
    pub fn owner_authorized_action(
        &self,
        reason: FetchReason,
    ) -> Result<Option<Checkin>, MacError> {
        if self.arch == Arch::Intel {
            return Ok(None);
        }
        if self.escrowed && self.bt_auth == BtAuth::Allowed {
            Ok(Some(Checkin::GetBootstrapToken(reason)))
        } else {
            Err(MacError::OwnerAuthorizationRequired)
        }
    }

    /// EraseDevice, first half: on Apple silicon (macOS 12+) the EACS preflight fetches the BT (§1.6).
    pub fn erase_preflight(&self) -> Option<Checkin> {
        let eacs = self.arch == Arch::AppleSilicon && self.os >= OsVersion::new(12, 0, 0);
        (eacs && self.escrowed && self.bt_auth == BtAuth::Allowed)
            .then_some(Checkin::GetBootstrapToken(FetchReason::EraseDevice))
    }

    /// EraseDevice, second half: `eacs_ok` says whether the preflight's fetch matched (§1.6, A4).
    pub fn finish_erase(
        &mut self,
        eacs_ok: bool,
        behavior: Option<ObliterationBehavior>,
    ) -> EraseOutcome {
        let eacs = self.arch == Arch::AppleSilicon && self.os >= OsVersion::new(12, 0, 0);
        let outcome = if !eacs || eacs_ok {
            EraseOutcome::Acknowledged
        } else {
            match behavior.unwrap_or(ObliterationBehavior::Default) {
                ObliterationBehavior::Default => EraseOutcome::ErrorThenObliterated,
                ObliterationBehavior::DoNotObliterate => EraseOutcome::ErrorNotErased,
                ObliterationBehavior::ObliterateWithWarning | ObliterationBehavior::Always => {
                    EraseOutcome::Acknowledged
                }
            }
        };
        if outcome != EraseOutcome::ErrorNotErased {
            self.erase();
        }
        outcome
    }

    /// Erase all content: back to Setup Assistant, unenrolled, no users, no BT.
    pub fn erase(&mut self) {
        self.users.clear();
        self.bootstrap_token = None;
        self.escrowed = false;
        self.personal_recovery_key = false;
        self.enrollment = Enrollment::None;
        self.awaiting_configuration = false;
        self.erase_count += 1;
    }

    /// The MDM profile is removed: the Mac checks out; its local BT stays, but nothing is escrowed any more.
    pub fn remove_mdm_profile(&mut self) -> Checkin {
        self.enrollment = Enrollment::None;
        self.escrowed = false;
        self.bt_capability = false;
        Checkin::CheckOut
    }

    /// `DeviceConfigured`: the ADE Mac leaves the awaiting-configuration state (§1.7).
    pub fn device_configured(&mut self) {
        self.awaiting_configuration = false;
    }
}
