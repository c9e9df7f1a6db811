//! Enrollment tokens and enrollment profiles: who may get a profile, and what the profile says.
//!
//! A token is `escrowd_enroll_` + 64 hex digits (256 random bits) and, like an API key, only its SHA-256 is
//! stored. `/enroll?token=…` redeems one use and mints a one-time SCEP challenge (also stored hashed) in one
//! store transaction, then serves a signed profile whose SCEP payload carries that challenge. A group's
//! "static" profile (for admins who distribute it by other means) carries the group's static challenge,
//! generated once and sealed by `vault` (it must go back into every profile, so it cannot be a hash).
//!
//! Guarantees: an unknown, revoked, expired or used-up token is refused with its reason and consumes nothing;
//! without a push certificate nothing is consumed and the refusal says how to upload one; token values and
//! challenges never appear in events, errors, logs or Debug output; creating and revoking a token are audited
//! with the acting API key.

use std::sync::Arc;

use openssl::sha::sha256;
use pki::profile_sign::ProfileSigner;
use protocol::profile::{ALL_ACCESS_RIGHTS, MdmPayload, Profile, ScepPayload};
use store::{EnrollmentToken, Group, Millis, Outcome, ScepChallenge, TokenRefusal};
use vault::Secret;

use crate::apikeys::Actor;
use crate::error::admin;
use crate::secrets::SecretRef;
use crate::{EventKind, MdmService, Scoped, ServiceError};

/// How long a one-time SCEP challenge from `/enroll` stays usable (time to install the downloaded profile).
pub const CHALLENGE_TTL_MS: Millis = 60 * 60 * 1000;
/// Stable PayloadIdentifier prefix: a re-installed profile replaces the previous one.
pub const PROFILE_IDENTIFIER: &str = "io.escrowd.enroll";
/// Key size the SCEP payload asks for.
pub const SCEP_KEY_SIZE: u64 = 2048;
const TOKEN_PREFIX: &str = "escrowd_enroll_";
/// Longest token accepted at `/enroll` (the real ones are 79 characters).
pub const MAX_TOKEN_CHARS: usize = 128;

/// Hex SHA-256 of a token or challenge.
pub fn secret_hash(value: &[u8]) -> String {
    hex::encode(sha256(value))
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("random bytes: {e}")))?;
    Ok(hex::encode(buf))
}

/// What `create_enrollment_token` is asked for.
#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    /// Group id or name.
    pub group: String,
    pub name: String,
    /// None = unlimited.
    pub max_uses: Option<i64>,
    /// Lifetime from now; None = never expires.
    pub expires_in_ms: Option<Millis>,
}

/// Where the profile points devices.
#[derive(Debug, Clone)]
pub struct ProfileUrls {
    /// `https://mdm.example.com` (no trailing slash).
    pub base_url: String,
}

impl MdmService {
    /// Install the profile-signing identity (without it, profiles cannot be served).
    pub fn with_profile_signer(mut self, signer: Arc<ProfileSigner>) -> Self {
        self.profile_signer = Some(signer);
        self
    }

    pub fn profile_signer(&self) -> Option<&Arc<ProfileSigner>> {
        self.profile_signer.as_ref()
    }

    /// Create a token; the token value is returned once and never stored.
    pub async fn create_enrollment_token(
        &self,
        req: &NewEnrollmentToken,
        by: &Actor,
    ) -> Result<(EnrollmentToken, Secret<String>), ServiceError> {
        self.scoped().create_enrollment_token(req, by).await
    }

    pub async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, ServiceError> {
        self.scoped().list_enrollment_tokens().await
    }

    pub async fn revoke_enrollment_token(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        self.scoped().revoke_enrollment_token(id, by).await
    }

    /// `/enroll`: redeem one use of `token` and serve a signed enrollment profile with a fresh one-time
    /// challenge. Refused (nothing consumed) for an unknown, revoked, expired or used-up token, and Conflict
    /// (nothing consumed) when no push certificate is uploaded yet.
    pub async fn enroll_profile(
        &self,
        token: &Secret<String>,
        urls: &ProfileUrls,
        source: &crate::edge::Source,
    ) -> Result<Vec<u8>, ServiceError> {
        self.scoped().enroll_profile(token, urls, source).await
    }

    /// The group's static-challenge profile, signed (admin). The group's challenge is generated on first
    /// use and sealed.
    pub async fn group_profile(
        &self,
        group: &str,
        urls: &ProfileUrls,
        by: &Actor,
    ) -> Result<Vec<u8>, ServiceError> {
        self.scoped().group_profile(group, urls, by).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait EnrollRoles: store::Groups + store::Scep + store::Events {}
impl<T: ?Sized + store::Groups + store::Scep + store::Events> EnrollRoles for T {}

impl<S: ?Sized + EnrollRoles> Scoped<'_, S> {
    async fn group_by_id_or_name(&self, group: &str) -> Result<Group, ServiceError> {
        if let Some(g) = self.store.group(group).await? {
            return Ok(g);
        }
        self.store
            .group_by_name(group)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("group {group:?} (by id or name)")))
    }

    /// Create a token; the token value is returned once and never stored.
    pub(crate) async fn create_enrollment_token(
        &self,
        req: &NewEnrollmentToken,
        by: &Actor,
    ) -> Result<(EnrollmentToken, Secret<String>), ServiceError> {
        by.require(store::ApiScope::Admin)?;
        if req.max_uses.is_some_and(|n| n < 1) {
            return Err(ServiceError::Invalid("max_uses must be at least 1".into()));
        }
        if req.expires_in_ms.is_some_and(|ms| ms <= 0) {
            return Err(ServiceError::Invalid(
                "the expiry must be in the future".into(),
            ));
        }
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::Invalid(
                "a token name must be 1-100 characters".into(),
            ));
        }
        let group = self.group_by_id_or_name(&req.group).await?;
        let now = self.now();
        let value = Secret::new(format!("{TOKEN_PREFIX}{}", random_hex(32)?));
        let token = EnrollmentToken {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            token_hash: secret_hash(value.expose().as_bytes()),
            group_id: group.id.clone(),
            max_uses: req.max_uses,
            uses: 0,
            expires_at: req.expires_in_ms.map(|ms| now.saturating_add(ms)),
            created_at: now,
            revoked_at: None,
        };
        let uses = token
            .max_uses
            .map_or("unlimited uses".to_string(), |n| format!("{n} use(s)"));
        let detail = format!(
            "by {}: token {} ({:?}) for group {} ({uses})",
            by.label(),
            token.id,
            token.name,
            group.name
        );
        let event = self.event(
            &token.id,
            None,
            EventKind::EnrollTokenCreated,
            Outcome::Success,
            detail,
        );
        self.store
            .create_enrollment_token(&token, &event)
            .await
            .map_err(admin)?;
        Ok((token, value))
    }

    pub(crate) async fn list_enrollment_tokens(
        &self,
    ) -> Result<Vec<EnrollmentToken>, ServiceError> {
        Ok(self.store.list_enrollment_tokens().await?)
    }

    pub(crate) async fn revoke_enrollment_token(
        &self,
        id: &str,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        by.require(store::ApiScope::Admin)?;
        let now = self.now();
        let detail = format!("by {}: token {id} revoked", by.label());
        let event = self.event(
            id,
            None,
            EventKind::EnrollTokenRevoked,
            Outcome::Success,
            detail,
        );
        self.store
            .revoke_enrollment_token(id, now, &event)
            .await
            .map_err(admin)
    }

    /// `/enroll`: redeem one use of `token` and serve a signed enrollment profile with a fresh one-time
    /// challenge. Refused (nothing consumed) for an unknown, revoked, expired or used-up token, and Conflict
    /// (nothing consumed) when no push certificate is uploaded yet.
    pub(crate) async fn enroll_profile(
        &self,
        token: &Secret<String>,
        urls: &ProfileUrls,
        source: &crate::edge::Source,
    ) -> Result<Vec<u8>, ServiceError> {
        let given = token.expose();
        if given.is_empty() || given.chars().count() > MAX_TOKEN_CHARS {
            self.note_refusal(
                EventKind::EnrollRefused,
                source,
                "the enrollment token is missing or too long",
            );
            return Err(ServiceError::Invalid(
                "the enrollment token is missing or too long".into(),
            ));
        }
        let topic = self.require_topic().await?;
        self.require_signer()?;
        let hash = secret_hash(given.as_bytes());
        let short = &hash[..12];
        let now = self.now();
        let challenge = Secret::new(random_hex(32)?);
        let record = ScepChallenge {
            challenge_hash: secret_hash(challenge.expose().as_bytes()),
            token_id: None,
            group_id: None,
            created_at: now,
            expires_at: now.saturating_add(CHALLENGE_TTL_MS),
            used_at: None,
            device_id: None,
        };
        // The store sets the challenge's token and group, and the event's subject, from the token row.
        let event = self.event(
            "enroll",
            None,
            EventKind::EnrollProfileServed,
            Outcome::Success,
            "one use redeemed; one-time SCEP challenge minted",
        );
        let redeemed = self
            .store
            .redeem_enrollment_token(&hash, now, &record, &event)
            .await?;
        let token_row = match redeemed {
            Ok(t) => t,
            Err(why) => {
                let reason = match why {
                    TokenRefusal::Unknown => "unknown enrollment token",
                    TokenRefusal::Revoked => "this enrollment token was revoked",
                    TokenRefusal::Expired => "this enrollment token has expired",
                    TokenRefusal::UsedUp => "this enrollment token has been used up",
                };
                // Counted per source and hour, not stored per request: anyone can send a token.
                self.note_refusal(
                    EventKind::EnrollRefused,
                    source,
                    &format!("{reason} (token hash {short}…)"),
                );
                return Err(ServiceError::Refused(format!(
                    "{reason}; ask your administrator for a new enrollment link"
                )));
            }
        };
        let group = self
            .store
            .group(&token_row.group_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("the token's group vanished".into()))?;
        self.signed_profile(&group, challenge, &topic, urls)
    }

    /// The group's static-challenge profile, signed (admin). The group's challenge is generated on first
    /// use and sealed.
    pub(crate) async fn group_profile(
        &self,
        group: &str,
        urls: &ProfileUrls,
        by: &Actor,
    ) -> Result<Vec<u8>, ServiceError> {
        by.require(store::ApiScope::Admin)?;
        let group = self.group_by_id_or_name(group).await?;
        let topic = self.require_topic().await?;
        self.require_signer()?;
        let challenge = self.group_challenge(&group.id).await?;
        let profile = self.signed_profile(&group, challenge, &topic, urls)?;
        let detail = format!(
            "by {}: static-challenge enrollment profile for group {}",
            by.label(),
            group.name
        );
        let event = self.event(
            &group.id,
            None,
            EventKind::GroupProfileServed,
            Outcome::Success,
            detail,
        );
        self.store.record_event(&event).await?;
        Ok(profile)
    }

    /// The group's static SCEP challenge, created and sealed the first time.
    async fn group_challenge(&self, group_id: &str) -> Result<Secret<String>, ServiceError> {
        let r = SecretRef::group_challenge(group_id);
        if let Some(challenge) = self.secrets.open_text(&r, "a group challenge").await? {
            return Ok(challenge);
        }
        let challenge = Secret::new(random_hex(32)?);
        self.secrets.put(&r, challenge.expose().as_bytes()).await?;
        Ok(challenge)
    }

    /// The group whose static challenge `given` is, if any (constant-time compare against each group's).
    pub(crate) async fn group_with_static_challenge(
        &self,
        given: &Secret<Vec<u8>>,
    ) -> Result<Option<String>, ServiceError> {
        for g in self.store.list_groups().await? {
            let Some(plain) = self
                .secrets
                .open(&SecretRef::group_challenge(&g.id))
                .await?
            else {
                continue;
            };
            if plain.ct_eq(given) {
                return Ok(Some(g.id));
            }
        }
        Ok(None)
    }

    pub(crate) async fn require_topic(&self) -> Result<String, ServiceError> {
        self.push_topic().await?.ok_or_else(|| {
            ServiceError::Conflict(
                "no push certificate yet: upload the push certificate first: escrowd push-cert upload --cert push.pem --key push.key"
                    .into(),
            )
        })
    }
}

impl<S: ?Sized> Scoped<'_, S> {
    pub(crate) fn require_signer(&self) -> Result<&Arc<ProfileSigner>, ServiceError> {
        self.profile_signer.as_ref().ok_or_else(|| {
            ServiceError::Internal("no profile-signing certificate is configured".into())
        })
    }

    /// The enrollment profile for `group` with `challenge`, signed. Every identity key (top-level and payload
    /// PayloadIdentifiers, Topic, ServerURL, CheckInURL, AccessRights, SignMessage, ServerCapabilities) depends
    /// only on the server's settings, so a renewal profile built here updates the installed one in place
    /// (Apple refuses an update that changes them); only PayloadUUIDs and the challenge differ.
    pub(crate) fn signed_profile(
        &self,
        group: &Group,
        challenge: Secret<String>,
        topic: &str,
        urls: &ProfileUrls,
    ) -> Result<Vec<u8>, ServiceError> {
        let base = urls.base_url.trim_end_matches('/');
        let new_uuid = || uuid::Uuid::new_v4().to_string().to_uppercase();
        let scep_uuid = new_uuid();
        let scep = ScepPayload {
            identifier: format!("{PROFILE_IDENTIFIER}.scep"),
            uuid: scep_uuid.clone(),
            url: format!("{base}/scep"),
            challenge,
            name: "escrowd".into(),
            subject: vec![
                ("O".into(), "escrowd".into()),
                ("CN".into(), "escrowd device identity".into()),
            ],
            key_size: SCEP_KEY_SIZE,
        };
        let mdm = MdmPayload {
            identifier: format!("{PROFILE_IDENTIFIER}.mdm"),
            uuid: new_uuid(),
            server_url: format!("{base}/mdm/connect"),
            checkin_url: format!("{base}/mdm/checkin"),
            topic: topic.to_string(),
            identity_certificate_uuid: scep_uuid,
            bootstrap_token: group.bootstrap_escrow_enabled,
            prompt_user_to_allow_bootstrap_token_for_authentication: group
                .prompt_user_to_allow_bootstrap_token_for_authentication,
            access_rights: ALL_ACCESS_RIGHTS,
        };
        let profile = Profile {
            identifier: PROFILE_IDENTIFIER.into(),
            uuid: new_uuid(),
            display_name: format!("escrowd enrollment ({})", group.name),
            organization: "escrowd".into(),
            description: "Enrolls this Mac in escrowd device management.".into(),
            payloads: vec![scep.into_payload(), mdm.into_payload()],
        };
        let xml = Secret::new(profile.to_xml()?);
        Ok(self.require_signer()?.sign(xml.expose())?)
    }
}
