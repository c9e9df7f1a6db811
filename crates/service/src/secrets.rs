//! One home for secrets at rest. Every value escrowd seals is named by a [`SecretRef`] (whose secret it is and
//! which one, as types, not strings), sealed by `vault` bound to exactly that owner and field, and kept in the
//! store's generic sealed-secret table, which only ever sees the opaque strings.
//!
//! Guarantees: each [`SecretOwner`] and [`SecretField`] maps to the one string stored since the table exists
//! (pinned by a test), so no database needs a migration; a value sealed for one ref never opens for another;
//! plaintext only travels in [`Secret`]s. Outside this module, `service` never builds a `SealContext` itself.

use std::sync::Arc;

use store::{BOOTSTRAP_TOKEN_FIELD, COMMAND_PAYLOAD_FIELD, Millis, SealedSecret, StoreError};
use vault::{SealContext, Sealed, Secret, Vault, VaultError};

use crate::{Clock, ServiceError};

/// Whose secret it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOwner {
    /// escrowd itself (device CA, profile signer, push certificate). Stored as `escrowd`.
    Server,
    /// One enrollment (a Mac's device channel). Stored as the enrollment id.
    Enrollment(String),
    /// A device group (its static SCEP challenge). Stored as `group:<group id>`.
    Group(String),
    /// A queued command carrying a secret, e.g. the agent's InstallProfile. Stored as `command:<uuid>`.
    Command(String),
}

impl SecretOwner {
    /// The owner string the store keeps.
    pub fn to_owner_string(&self) -> String {
        match self {
            SecretOwner::Server => SERVER_OWNER.to_string(),
            SecretOwner::Enrollment(id) => id.clone(),
            SecretOwner::Group(id) => format!("group:{id}"),
            SecretOwner::Command(uuid) => store::command_payload_owner(uuid),
        }
    }
}

/// The owner string of escrowd's own secrets.
const SERVER_OWNER: &str = "escrowd";

/// Which of the owner's secrets it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretField {
    /// An enrollment's escrowed Bootstrap Token.
    BootstrapToken,
    /// The managed-admin password escrowd generated for an enrollment.
    ManagedAdminPassword,
    /// A group's static SCEP challenge.
    GroupChallenge,
    /// The real plist of a command whose stored copy is redacted (agent InstallProfile, account settings).
    CommandPayload,
    DeviceCaKey,
    DeviceCaCert,
    ProfileSignerKey,
    ProfileSignerCert,
    /// The APNs push certificate followed by its private key, sealed together.
    PushIdentity,
}

impl SecretField {
    /// The field string the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretField::BootstrapToken => BOOTSTRAP_TOKEN_FIELD,
            SecretField::ManagedAdminPassword => "managed_admin_password",
            SecretField::GroupChallenge => "scep_challenge",
            SecretField::CommandPayload => COMMAND_PAYLOAD_FIELD,
            SecretField::DeviceCaKey => "device_ca_key",
            SecretField::DeviceCaCert => "device_ca_cert",
            SecretField::ProfileSignerKey => "profile_signing_key",
            SecretField::ProfileSignerCert => "profile_signing_cert",
            SecretField::PushIdentity => "apns_identity",
        }
    }
}

/// One sealed secret: owner and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub owner: SecretOwner,
    pub field: SecretField,
}

impl SecretRef {
    /// One of escrowd's own secrets.
    pub const fn server(field: SecretField) -> SecretRef {
        SecretRef {
            owner: SecretOwner::Server,
            field,
        }
    }

    pub fn bootstrap_token(enrollment_id: &str) -> SecretRef {
        SecretRef {
            owner: SecretOwner::Enrollment(enrollment_id.to_string()),
            field: SecretField::BootstrapToken,
        }
    }

    pub fn managed_admin_password(enrollment_id: &str) -> SecretRef {
        SecretRef {
            owner: SecretOwner::Enrollment(enrollment_id.to_string()),
            field: SecretField::ManagedAdminPassword,
        }
    }

    pub fn group_challenge(group_id: &str) -> SecretRef {
        SecretRef {
            owner: SecretOwner::Group(group_id.to_string()),
            field: SecretField::GroupChallenge,
        }
    }

    pub fn command_payload(uuid: &str) -> SecretRef {
        SecretRef {
            owner: SecretOwner::Command(uuid.to_string()),
            field: SecretField::CommandPayload,
        }
    }

    /// The (owner, field) strings the store keeps.
    pub fn to_strings(&self) -> (String, &'static str) {
        (self.owner.to_owner_string(), self.field.as_str())
    }
}

/// Seals and opens secrets by [`SecretRef`], and reads and writes them in the store. Cheap to clone.
///
/// Store roles: Secrets (the generic sealed-secret rows) only.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn store::Secrets>,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
}

impl Secrets {
    /// `store` may be the whole store (`Arc<dyn Store>` upcasts); only its secrets role is kept.
    pub fn new(
        store: Arc<dyn store::Secrets>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
    ) -> Secrets {
        Secrets {
            store,
            vault,
            clock,
        }
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The store's secrets role this component reads and writes.
    pub fn store(&self) -> &Arc<dyn store::Secrets> {
        &self.store
    }

    /// Seal `plaintext` for `r` as the row the store keeps, without writing it: for writes that must share a
    /// transaction with other rows (a Bootstrap Token and its metadata, a command and its payload).
    pub fn seal(
        &self,
        r: &SecretRef,
        plaintext: &[u8],
        updated_at: Millis,
    ) -> Result<SealedSecret, VaultError> {
        let (owner, field) = r.to_strings();
        let Sealed { key_id, blob } = self.vault.seal(
            SealContext {
                owner: &owner,
                field,
            },
            plaintext,
        )?;
        Ok(SealedSecret {
            owner,
            field: field.to_string(),
            key_id,
            blob,
            updated_at,
        })
    }

    /// Open a blob that was sealed for `r`.
    pub fn open_blob(&self, r: &SecretRef, blob: &[u8]) -> Result<Secret<Vec<u8>>, VaultError> {
        let (owner, field) = r.to_strings();
        self.vault.open(
            SealContext {
                owner: &owner,
                field,
            },
            blob,
        )
    }

    /// Seal `plaintext` for `r` and store it, replacing what was there. Returns what was stored.
    pub async fn put(&self, r: &SecretRef, plaintext: &[u8]) -> Result<SealedSecret, ServiceError> {
        let sealed = self.seal(r, plaintext, self.clock.now_millis())?;
        self.store.put_sealed_secret(&sealed).await?;
        Ok(sealed)
    }

    /// The stored row for `r`, if any (still sealed).
    pub async fn get(&self, r: &SecretRef) -> Result<Option<SealedSecret>, StoreError> {
        let (owner, field) = r.to_strings();
        self.store.sealed_secret(&owner, field).await
    }

    /// Read `r` from the store and open it; None when nothing is stored.
    pub async fn open(&self, r: &SecretRef) -> Result<Option<Secret<Vec<u8>>>, ServiceError> {
        match self.get(r).await? {
            Some(sealed) => Ok(Some(self.open_blob(r, &sealed.blob)?)),
            None => Ok(None),
        }
    }

    /// Like [`Secrets::open`] for a secret that is text; `what` names it when it is not UTF-8.
    pub async fn open_text(
        &self,
        r: &SecretRef,
        what: &str,
    ) -> Result<Option<Secret<String>>, ServiceError> {
        let Some(plain) = self.open(r).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(plain.expose().clone())
            .map_err(|_| ServiceError::Internal(format!("{what} is not UTF-8")))?;
        Ok(Some(Secret::new(text)))
    }

    /// An enrollment's Bootstrap Token sealed as the store's token record wants it (owner = enrollment id).
    pub fn seal_token(
        &self,
        enrollment_id: &str,
        token: &[u8],
        updated_at: Millis,
    ) -> Result<SealedSecret, VaultError> {
        self.seal(
            &SecretRef::bootstrap_token(enrollment_id),
            token,
            updated_at,
        )
    }

    /// Open an enrollment's sealed Bootstrap Token.
    pub fn open_token(
        &self,
        enrollment_id: &str,
        blob: &[u8],
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        self.open_blob(&SecretRef::bootstrap_token(enrollment_id), blob)
    }
}

/// Key rotation: re-wrap a stored row under `vault`'s active key, bound to the owner and field it is stored
/// under (whatever they are: rotation must move every row, even one this version has no ref for).
/// Ok(None) when it already is under the active key.
pub fn rewrap_stored(vault: &Vault, row: &SealedSecret) -> Result<Option<Sealed>, VaultError> {
    vault.rewrap(
        SealContext {
            owner: &row.owner,
            field: &row.field,
        },
        &row.blob,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database holds these exact strings; changing one orphans every secret stored under it.
    #[test]
    fn every_ref_maps_to_the_strings_stored_today() {
        let cases = [
            (SecretRef::bootstrap_token("E1"), "E1", "bootstrap_token"),
            (
                SecretRef::managed_admin_password("E1"),
                "E1",
                "managed_admin_password",
            ),
            (
                SecretRef::group_challenge("g7"),
                "group:g7",
                "scep_challenge",
            ),
            (
                SecretRef::command_payload("C-1"),
                "command:C-1",
                "command_payload",
            ),
            (
                SecretRef::server(SecretField::DeviceCaKey),
                "escrowd",
                "device_ca_key",
            ),
            (
                SecretRef::server(SecretField::DeviceCaCert),
                "escrowd",
                "device_ca_cert",
            ),
            (
                SecretRef::server(SecretField::ProfileSignerKey),
                "escrowd",
                "profile_signing_key",
            ),
            (
                SecretRef::server(SecretField::ProfileSignerCert),
                "escrowd",
                "profile_signing_cert",
            ),
            (
                SecretRef::server(SecretField::PushIdentity),
                "escrowd",
                "apns_identity",
            ),
        ];
        for (r, owner, field) in cases {
            assert_eq!(r.to_strings(), (owner.to_string(), field), "{r:?}");
        }
        assert_eq!(SecretOwner::Server.to_owner_string(), "escrowd");
    }

    async fn secrets() -> (tempfile::TempDir, Arc<dyn store::Store>, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let vault = Arc::new(Vault::from_keyring(vault::Keyring::ephemeral()));
        let s = Secrets::new(store.clone(), vault, Arc::new(crate::SystemClock));
        (dir, store, s)
    }

    #[tokio::test]
    async fn a_secret_sealed_for_one_ref_opens_for_that_ref_only() {
        let (_dir, _store, s) = secrets().await;
        let sealed = s
            .seal(&SecretRef::group_challenge("g1"), b"hunter2", 1)
            .unwrap();
        assert_eq!(
            (sealed.owner.as_str(), sealed.field.as_str()),
            ("group:g1", "scep_challenge")
        );
        let opened = s
            .open_blob(&SecretRef::group_challenge("g1"), &sealed.blob)
            .unwrap();
        assert_eq!(opened.expose(), b"hunter2");
        for other in [
            SecretRef::group_challenge("g2"),
            SecretRef::server(SecretField::GroupChallenge),
            SecretRef::bootstrap_token("g1"),
        ] {
            assert!(s.open_blob(&other, &sealed.blob).is_err(), "{other:?}");
        }
        let token = s.seal_token("E1", b"tok", 2).unwrap();
        assert_eq!(s.open_token("E1", &token.blob).unwrap().expose(), b"tok");
        assert!(s.open_token("E2", &token.blob).is_err());
    }

    #[tokio::test]
    async fn put_then_open_round_trips_through_the_store() {
        let (_dir, store, s) = secrets().await;
        let r = SecretRef::server(SecretField::DeviceCaKey);
        assert!(s.open(&r).await.unwrap().is_none());
        s.put(&r, b"PEM").await.unwrap();
        assert_eq!(s.open(&r).await.unwrap().unwrap().expose(), b"PEM");
        let row = store
            .sealed_secret("escrowd", "device_ca_key")
            .await
            .unwrap()
            .unwrap();
        assert!(!row.blob.windows(3).any(|w| w == b"PEM"));
        assert!(rewrap_stored(s.vault(), &row).unwrap().is_none());
        assert_eq!(
            s.open_text(&r, "the CA key")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            "PEM"
        );
    }
}
