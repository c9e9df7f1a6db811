//! Console admin accounts, password sign-in, sessions and backoff (issue 15).
//!
//! Rules: a name is 1-64 characters of ASCII letters, digits, `.`, `_`, `-`, `@`, starting with a letter or
//! digit; a password has at least 12 characters (at most 1024 bytes) and is not the name. Passwords are stored
//! as Argon2id PHC strings with OWASP's parameters (19 MiB, 2 passes, 1 lane). A session token is 32 random
//! bytes (64 hex digits), stored as its SHA-256; a session ends after 30 minutes idle or 12 hours after
//! sign-in, whichever comes first, and a password change or disable ends all of an admin's sessions.
//! Backoff: 5 failed sign-ins for one name, or from one address, within 15 minutes refuse further attempts
//! (even with the right password) until the oldest of those 5 is 15 minutes old. An unknown name is verified
//! against a dummy hash so it costs the same time as a known one. Every sign-in, failure (never the
//! password), lockout and sign-out is an event.

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use openssl::sha::sha256;
use store::{ApiScope, ConsoleAdminAccount, ConsoleSession, EventKind, Millis, NewEvent, Outcome};
use vault::Secret;

use crate::apikeys::{Actor, random};
use crate::{MdmService, ServiceError};

/// A session ends this long after its last request.
pub const IDLE_TIMEOUT_MS: Millis = 30 * 60 * 1000;
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE_TIMEOUT_MS: Millis = 12 * 60 * 60 * 1000;
/// Failed sign-ins are counted over this window.
pub const FAILURE_WINDOW_MS: Millis = 15 * 60 * 1000;
/// This many failures within the window lock a name (or an address) out.
pub const MAX_FAILURES: u32 = 5;
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;
/// `last_seen_at` is written at most this often per session (each write is a store write).
const TOUCH_EVERY_MS: Millis = 60 * 1000;

/// The store roles this component uses.
pub trait ConsoleRoles: store::AdminAccounts + store::Events {}
impl<T: ?Sized + store::AdminAccounts + store::Events> ConsoleRoles for T {}

/// A successful sign-in: the new session's token (for the cookie, shown nowhere else) and CSRF token.
pub struct SignedIn {
    pub token: Secret<String>,
    pub csrf: String,
    pub admin: ConsoleAdminAccount,
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown name, wrong password, or disabled admin: deliberately one answer.
    #[error("wrong name or password")]
    Refused,
    /// Too many failures: try again at `retry_at` (epoch ms).
    #[error("too many failed sign-ins; try again later")]
    LockedOut { retry_at: Millis },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A live session and its admin.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub admin: ConsoleAdminAccount,
    pub session: ConsoleSession,
}

impl LiveSession {
    pub fn actor(&self) -> Actor {
        Actor::console(&self.admin.name, self.admin.role)
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password into an Argon2id PHC string.
pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::encode_b64(&random::<16>()?)
        .map_err(|e| ServiceError::Internal(format!("password salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("password hash: {e}")))
}

/// Whether `password` matches the PHC string `phc` (false for an unreadable hash).
fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no one's password, verified against for unknown names so they take as long as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&hex::encode(random::<16>().unwrap_or([7; 16])))
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA".into())
    })
}

/// Check a console admin's name against the rules.
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid(
            "an admin name is 1-64 characters: letters, digits, '.', '_', '-', '@', starting with a letter or digit"
                .into(),
        ))
    }
}

/// Check a new password against the rules (never quoting it).
pub fn check_password(name: &str, password: &str) -> Result<(), ServiceError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::Invalid(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.eq_ignore_ascii_case(name) {
        return Err(ServiceError::Invalid(
            "the password must not be the admin's name".into(),
        ));
    }
    Ok(())
}

/// Hex SHA-256 of a session token, as the store keys sessions.
pub fn session_hash(token: &str) -> String {
    hex::encode(sha256(token.as_bytes()))
}

fn event(subject: &str, kind: EventKind, outcome: Outcome, detail: String, at: Millis) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        enrollment_id: None,
        kind,
        outcome,
        detail,
        at,
    }
}

fn subject(name: &str) -> String {
    format!("console:{name}")
}

async fn hash_blocking(password: &str) -> Result<String, ServiceError> {
    let password = zeroize::Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ServiceError::Internal(format!("password hash task: {e}")))?
}

async fn verify_blocking(password: &str, phc: &str) -> Result<bool, ServiceError> {
    let password = zeroize::Zeroizing::new(password.to_string());
    let phc = phc.to_string();
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(|e| ServiceError::Internal(format!("password check task: {e}")))
}

/// Create an admin directly in a store (the offline `escrowd admin create`, and the service). Audited.
pub async fn create_admin<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    name: &str,
    role: ApiScope,
    password: &str,
    by: &Actor,
) -> Result<ConsoleAdminAccount, ServiceError> {
    check_name(name)?;
    check_password(name, password)?;
    let account = ConsoleAdminAccount {
        name: name.into(),
        role,
        password_hash: hash_blocking(password).await?,
        created_at: now,
        updated_at: now,
        disabled_at: None,
    };
    let ev = event(
        &subject(name),
        EventKind::ConsoleAdminCreated,
        Outcome::Success,
        format!(
            "{} created console admin {name:?} with role {}",
            by.label(),
            role.as_str()
        ),
        now,
    );
    store
        .create_console_admin(&account, &ev)
        .await
        .map_err(crate::error::admin)?;
    Ok(account)
}

/// Set an admin's password (ends their sessions). Audited; NotFound for an unknown name.
pub async fn set_password<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    name: &str,
    password: &str,
    by: &Actor,
) -> Result<(), ServiceError> {
    check_password(name, password)?;
    let phc = hash_blocking(password).await?;
    let ev = event(
        &subject(name),
        EventKind::ConsoleAdminPasswordSet,
        Outcome::Success,
        format!(
            "{} set the password of console admin {name:?}; their sessions ended",
            by.label()
        ),
        now,
    );
    store
        .set_console_admin_password(name, &phc, now, &ev)
        .await
        .map_err(crate::error::admin)
}

/// Disable an admin (ends their sessions). Audited; NotFound if unknown or already disabled.
pub async fn disable<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    name: &str,
    by: &Actor,
) -> Result<(), ServiceError> {
    let ev = event(
        &subject(name),
        EventKind::ConsoleAdminDisabled,
        Outcome::Success,
        format!(
            "{} disabled console admin {name:?}; their sessions ended",
            by.label()
        ),
        now,
    );
    store
        .disable_console_admin(name, now, &ev)
        .await
        .map_err(crate::error::admin)
}

/// When a key (`name:…` / `addr:…`) may try again, if it is locked out at `now`.
async fn locked_until<S: ?Sized + ConsoleRoles>(
    store: &S,
    key: &str,
    now: Millis,
) -> Result<Option<Millis>, ServiceError> {
    let recent = store
        .signin_failures(key, now - FAILURE_WINDOW_MS, MAX_FAILURES)
        .await?;
    Ok(match recent.last() {
        Some(oldest) if recent.len() >= MAX_FAILURES as usize => Some(oldest + FAILURE_WINDOW_MS),
        _ => None,
    })
}

/// Sign an admin in: check backoff, verify the password (an unknown name against a dummy hash), and on
/// success start a new session (a new token every time: no fixation).
pub async fn sign_in<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    name: &str,
    password: &str,
    from: Option<IpAddr>,
) -> Result<SignedIn, SignInError> {
    let name_key = format!("name:{name}");
    let addr_key = from.map(|a| format!("addr:{a}"));
    let mut keys = vec![name_key.clone()];
    keys.extend(addr_key.clone());
    let mut retry_at = None;
    for key in &keys {
        if let Some(at) = locked_until(store, key, now).await? {
            retry_at = retry_at.max(Some(at));
        }
    }
    let from_text = from.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
    if let Some(retry_at) = retry_at {
        return Err(SignInError::LockedOut { retry_at });
    }
    let account = store
        .console_admin(name)
        .await
        .map_err(ServiceError::from)?;
    let phc = account
        .as_ref()
        .map_or(dummy_hash(), |a| a.password_hash.as_str());
    let matches = verify_blocking(password, phc).await?;
    let account = match account {
        Some(a) if matches && a.disabled_at.is_none() => a,
        other => {
            let why = match other {
                None => "unknown admin name",
                Some(a) if a.disabled_at.is_some() => "admin is disabled",
                Some(_) => "wrong password",
            };
            let shown = if name.len() > 64 {
                &name[..name.floor_char_boundary(64)]
            } else {
                name
            };
            let ev = event(
                &subject(shown),
                EventKind::ConsoleSignInFailed,
                Outcome::Failure,
                format!("console sign-in as {shown:?} from {from_text} refused: {why}"),
                now,
            );
            store
                .record_signin_failure(&keys, now, now - FAILURE_WINDOW_MS, &ev)
                .await
                .map_err(ServiceError::from)?;
            for key in &keys {
                if let Some(until) = locked_until(store, key, now).await? {
                    let (what, who) = key.split_once(':').unwrap_or(("", key));
                    let what = if what == "name" {
                        "admin name"
                    } else {
                        "address"
                    };
                    let ev = event(
                        &subject(shown),
                        EventKind::ConsoleLockout,
                        Outcome::Failure,
                        format!(
                            "{MAX_FAILURES} failed console sign-ins within 15 minutes for {what} {who:?}: \
                             further attempts refused until {until} (epoch ms)"
                        ),
                        now,
                    );
                    store.record_event(&ev).await.map_err(ServiceError::from)?;
                }
            }
            return Err(SignInError::Refused);
        }
    };
    store
        .clear_signin_failures(&name_key)
        .await
        .map_err(ServiceError::from)?;
    let token = Secret::new(hex::encode(random::<32>()?));
    let csrf = hex::encode(random::<32>()?);
    let session = ConsoleSession {
        token_hash: session_hash(token.expose()),
        admin_name: account.name.clone(),
        csrf: csrf.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + ABSOLUTE_TIMEOUT_MS,
    };
    let ev = event(
        &subject(&account.name),
        EventKind::ConsoleSignIn,
        Outcome::Success,
        format!(
            "console admin {:?} (role {}) signed in from {from_text}",
            account.name,
            account.role.as_str()
        ),
        now,
    );
    store
        .create_console_session(&session, &ev)
        .await
        .map_err(ServiceError::from)?;
    Ok(SignedIn {
        token,
        csrf,
        admin: account,
    })
}

/// The live session behind a presented token: None if unknown, idle too long, past its absolute expiry, or
/// its admin is disabled. Notes the request (at most once a minute).
pub async fn session<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    token: &str,
) -> Result<Option<LiveSession>, ServiceError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = session_hash(token);
    let Some(session) = store.console_session(&hash).await? else {
        return Ok(None);
    };
    if now >= session.expires_at || now >= session.last_seen_at + IDLE_TIMEOUT_MS {
        return Ok(None);
    }
    let Some(admin) = store.console_admin(&session.admin_name).await? else {
        return Ok(None);
    };
    if admin.disabled_at.is_some() {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        store.touch_console_session(&hash, now).await?;
    }
    Ok(Some(LiveSession { admin, session }))
}

/// Sign out: delete the session server-side (audited if it existed).
pub async fn sign_out<S: ?Sized + ConsoleRoles>(
    store: &S,
    now: Millis,
    token: &str,
) -> Result<(), ServiceError> {
    let hash = session_hash(token);
    let Some(session) = store.console_session(&hash).await? else {
        return Ok(());
    };
    let ev = event(
        &subject(&session.admin_name),
        EventKind::ConsoleSignOut,
        Outcome::Success,
        format!("console admin {:?} signed out", session.admin_name),
        now,
    );
    store.delete_console_session(&hash, &ev).await?;
    Ok(())
}

impl MdmService {
    pub async fn create_console_admin(
        &self,
        name: &str,
        role: ApiScope,
        password: &str,
        by: &Actor,
    ) -> Result<ConsoleAdminAccount, ServiceError> {
        create_admin(&*self.store, self.scoped().now(), name, role, password, by).await
    }

    pub async fn list_console_admins(&self) -> Result<Vec<ConsoleAdminAccount>, ServiceError> {
        Ok(self.store.list_console_admins().await?)
    }

    pub async fn set_console_admin_password(
        &self,
        name: &str,
        password: &str,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        set_password(&*self.store, self.scoped().now(), name, password, by).await
    }

    pub async fn disable_console_admin(&self, name: &str, by: &Actor) -> Result<(), ServiceError> {
        disable(&*self.store, self.scoped().now(), name, by).await
    }

    pub async fn console_sign_in(
        &self,
        name: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<SignedIn, SignInError> {
        sign_in(&*self.store, self.scoped().now(), name, password, from).await
    }

    pub async fn console_session(&self, token: &str) -> Result<Option<LiveSession>, ServiceError> {
        session(&*self.store, self.scoped().now(), token).await
    }

    pub async fn console_sign_out(&self, token: &str) -> Result<(), ServiceError> {
        sign_out(&*self.store, self.scoped().now(), token).await
    }
}
