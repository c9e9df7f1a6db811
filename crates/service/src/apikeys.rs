//! Admin API keys. A key is `escrowd_` + 64 hex digits (256 random bits); only its SHA-256 is stored.
//!
//! Why SHA-256 and not argon2: the key is 256 bits from the OS RNG, not a password, so there is nothing to
//! brute-force and a slow hash only costs CPU on every request; an unsalted fast hash also lets the store find
//! the key by an indexed lookup instead of trying every stored hash. Guarantees: the key is returned once,
//! inside a `Secret`, and never logged or stored; a revoked or unknown key authenticates nobody.

use openssl::sha::sha256;
use store::{ApiKey, ApiScope, Outcome};
use vault::Secret;

use crate::{EventKind, MdmService, Scoped, ServiceError};

const PREFIX: &str = "escrowd_";

/// Who is calling the admin API: an authenticated, unrevoked key, or an admin signed in to the console.
/// Audited events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The API key's id; `console` for a console admin, `offline` for the CLI on the database.
    pub key_id: String,
    pub name: String,
    pub scope: ApiScope,
    /// How the actor authenticated.
    pub via: ActorVia,
}

/// How an [`Actor`] authenticated, which decides how events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorVia {
    /// An admin API key (or the offline CLI, which names itself as one).
    ApiKey,
    /// A password sign-in to the web console.
    Console,
}

impl Actor {
    /// How events name the actor: `apikey <name> (<id>)`, or `console <name>` for a console admin.
    pub fn label(&self) -> String {
        match self.via {
            ActorVia::ApiKey => format!("apikey {} ({})", self.name, self.key_id),
            ActorVia::Console => format!("console {}", self.name),
        }
    }

    /// A console admin signed in with a password, with their role as the scope.
    pub fn console(name: &str, role: ApiScope) -> Actor {
        Actor {
            key_id: "console".into(),
            name: name.into(),
            scope: role,
            via: ActorVia::Console,
        }
    }

    /// An actor for offline tools (the CLI acting on the database directly).
    pub fn offline(what: &str) -> Actor {
        Actor {
            key_id: "offline".into(),
            name: what.into(),
            scope: ApiScope::Admin,
            via: ActorVia::ApiKey,
        }
    }

    /// Forbidden unless this actor's scope includes `needed`.
    pub fn require(&self, needed: ApiScope) -> Result<(), ServiceError> {
        if self.scope.allows(needed) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this API key has scope {}; this call needs {}",
                self.scope.as_str(),
                needed.as_str()
            )))
        }
    }
}

/// Hex SHA-256 of a presented key.
pub fn key_hash(key: &str) -> String {
    hex::encode(sha256(key.as_bytes()))
}

impl MdmService {
    /// Make a new key. Returns its metadata and the key itself, to be shown exactly once.
    pub async fn create_api_key(
        &self,
        name: &str,
        scope: ApiScope,
        by: &Actor,
    ) -> Result<(ApiKey, Secret<String>), ServiceError> {
        self.scoped().create_api_key(name, scope, by).await
    }

    /// The actor behind a presented key; Unauthorized for an unknown, malformed or revoked key.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<Actor, ServiceError> {
        self.scoped().authenticate_api_key(presented).await
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, ServiceError> {
        self.scoped().list_api_keys().await
    }

    pub async fn revoke_api_key(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        self.scoped().revoke_api_key(id, by).await
    }
}

/// API keys take only the `Admin` role. The same work is done offline (`escrowd apikey`) through the free
/// functions below, on a store alone; these methods are those functions with the service's clock.
impl<S: ?Sized + store::Admin> Scoped<'_, S> {
    async fn create_api_key(
        &self,
        name: &str,
        scope: ApiScope,
        by: &Actor,
    ) -> Result<(ApiKey, Secret<String>), ServiceError> {
        create_api_key(self.store, self.now(), name, scope, by).await
    }

    async fn authenticate_api_key(&self, presented: &str) -> Result<Actor, ServiceError> {
        authenticate_api_key(self.store, presented).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, ServiceError> {
        Ok(self.store.list_api_keys().await?)
    }

    async fn revoke_api_key(&self, id: &str, by: &Actor) -> Result<(), ServiceError> {
        revoke_api_key(self.store, self.now(), id, by).await
    }
}

/// The actor behind a presented key; Unauthorized for an unknown, malformed or revoked key. API keys take
/// only the `Admin` role.
async fn authenticate_api_key<S: ?Sized + store::Admin>(
    store: &S,
    presented: &str,
) -> Result<Actor, ServiceError> {
    let unauthorized = || ServiceError::Unauthorized("unknown or revoked API key".into());
    if !presented.starts_with(PREFIX) || presented.len() != PREFIX.len() + 64 {
        return Err(unauthorized());
    }
    match store.api_key_by_hash(&key_hash(presented)).await? {
        Some(k) if k.revoked_at.is_none() => Ok(Actor {
            key_id: k.id,
            name: k.name,
            scope: k.scope,
            via: ActorVia::ApiKey,
        }),
        _ => Err(unauthorized()),
    }
}

/// Make a new key directly in a store (the offline `escrowd apikey create`). Returns its metadata and the key
/// itself, to be shown exactly once; the store keeps only the hash, and the creation is audited.
pub async fn create_api_key<S: ?Sized + store::Admin>(
    store: &S,
    now: store::Millis,
    name: &str,
    scope: ApiScope,
    by: &Actor,
) -> Result<(ApiKey, Secret<String>), ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "the key name must be 1-200 printable characters".into(),
        ));
    }
    let key = Secret::new(format!("{PREFIX}{}", hex::encode(random::<32>()?)));
    let record = ApiKey {
        id: hex::encode(random::<8>()?),
        name: name.to_string(),
        scope,
        key_hash: key_hash(key.expose()),
        created_at: now,
        revoked_at: None,
    };
    let event = store::NewEvent {
        subject: format!("apikey:{}", record.id),
        enrollment_id: None,
        kind: EventKind::ApikeyCreated,
        outcome: Outcome::Success,
        detail: format!(
            "{} created key {:?} with scope {}",
            by.label(),
            record.name,
            scope.as_str()
        ),
        at: now,
    };
    store
        .create_api_key(&record, &event)
        .await
        .map_err(crate::error::admin)?;
    Ok((record, key))
}

/// Revoke a key directly in a store (the offline `escrowd apikey revoke`), audited like the API's revoke.
/// NotFound if the key is unknown or already revoked.
pub async fn revoke_api_key<S: ?Sized + store::Admin>(
    store: &S,
    now: store::Millis,
    id: &str,
    by: &Actor,
) -> Result<(), ServiceError> {
    let event = store::NewEvent {
        subject: format!("apikey:{id}"),
        enrollment_id: None,
        kind: EventKind::ApikeyRevoked,
        outcome: Outcome::Success,
        detail: format!("{} revoked key {id}", by.label()),
        at: now,
    };
    store
        .revoke_api_key(id, now, &event)
        .await
        .map_err(crate::error::admin)?;
    Ok(())
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], ServiceError> {
    let mut raw = [0u8; N];
    openssl::rand::rand_bytes(&mut raw)
        .map_err(|e| ServiceError::Internal(format!("random generator failed: {e}")))?;
    Ok(raw)
}
