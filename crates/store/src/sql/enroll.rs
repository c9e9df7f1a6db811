//! Enrollment tokens, one-time SCEP challenges and issued certificates. Guarantees: a token use is consumed
//! and its challenge stored in one transaction, and only when the token is valid at that moment (one
//! conditional UPDATE decides, so concurrent redeemers never exceed `max_uses`); a challenge is consumed at
//! most once (one conditional UPDATE decides); a certificate binds to one device, first Authenticate wins.

use super::Db;

use super::{Backend, SqlStore, events, query, query_as, query_scalar};
use crate::{
    EnrollmentToken, IssuedCertificate, IssuedProof, Millis, NewEvent, Result, Scep, ScepChallenge,
    StoreError, TokenRefusal,
};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    token_hash: String,
    group_id: String,
    max_uses: Option<i64>,
    uses: i64,
    expires_at: Option<i64>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for EnrollmentToken {
    fn from(r: TokenRow) -> Self {
        EnrollmentToken {
            id: r.id,
            name: r.name,
            token_hash: r.token_hash,
            group_id: r.group_id,
            max_uses: r.max_uses,
            uses: r.uses,
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

macro_rules! select_tokens {
    () => {
        "SELECT id, name, token_hash, group_id, max_uses, uses, expires_at, created_at, revoked_at \
         FROM enrollment_tokens"
    };
}

pub(super) async fn create_token<DB: Backend>(
    pool: &Db<DB>,
    t: &EnrollmentToken,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let group: Option<String> = query_scalar::<DB, _>("SELECT id FROM device_groups WHERE id = $1")
        .bind(&t.group_id)
        .fetch_optional(&mut *tx)
        .await?;
    if group.is_none() {
        return Err(StoreError::NotFound(format!("group {}", t.group_id)));
    }
    query::<DB>(
        "INSERT INTO enrollment_tokens \
         (id, name, token_hash, group_id, max_uses, uses, expires_at, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.token_hash)
    .bind(&t.group_id)
    .bind(t.max_uses)
    .bind(t.uses)
    .bind(t.expires_at)
    .bind(t.created_at)
    .bind(t.revoked_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("enrollment token id {:?} or hash exists", t.id))
        }
        other => other,
    })?;
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn token<DB: Backend>(pool: &Db<DB>, id: &str) -> Result<Option<EnrollmentToken>> {
    let row: Option<TokenRow> = query_as::<DB, _>(concat!(select_tokens!(), " WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

pub(super) async fn list_tokens<DB: Backend>(pool: &Db<DB>) -> Result<Vec<EnrollmentToken>> {
    let rows: Vec<TokenRow> =
        query_as::<DB, _>(concat!(select_tokens!(), " ORDER BY created_at, id"))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(super) async fn revoke_token<DB: Backend>(
    pool: &Db<DB>,
    id: &str,
    at: Millis,
    event: &NewEvent,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE enrollment_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "active enrollment token {id}"
        )));
    }
    events::insert::<DB>(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn redeem_token<DB: Backend>(
    pool: &Db<DB>,
    token_hash: &str,
    at: Millis,
    challenge: &ScepChallenge,
    event: &NewEvent,
) -> Result<std::result::Result<EnrollmentToken, TokenRefusal>> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE enrollment_tokens SET uses = uses + 1 \
         WHERE token_hash = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2) \
         AND (max_uses IS NULL OR uses < max_uses)",
    )
    .bind(token_hash)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let row: Option<TokenRow> =
        query_as::<DB, _>(concat!(select_tokens!(), " WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(row) = row else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    let token = EnrollmentToken::from(row);
    if done.rows_affected() == 0 {
        // Dropping the transaction rolls it back: nothing consumed.
        let why = if token.revoked_at.is_some() {
            TokenRefusal::Revoked
        } else if token.expires_at.is_some_and(|e| e <= at) {
            TokenRefusal::Expired
        } else {
            TokenRefusal::UsedUp
        };
        return Ok(Err(why));
    }
    let challenge = ScepChallenge {
        token_id: Some(token.id.clone()),
        group_id: Some(token.group_id.clone()),
        ..challenge.clone()
    };
    insert_challenge::<DB>(&mut tx, &challenge).await?;
    let event = NewEvent {
        subject: token.id.clone(),
        ..event.clone()
    };
    events::insert::<DB>(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Ok(token))
}

/// Stores a challenge minted outside `/enroll` (identity renewal: `device_id` set).
pub(super) async fn put_challenge<DB: Backend>(pool: &Db<DB>, c: &ScepChallenge) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    insert_challenge::<DB>(&mut tx, c).await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_challenge<DB: Backend>(tx: &mut DB::Connection, c: &ScepChallenge) -> Result<()> {
    query::<DB>(
        "INSERT INTO scep_challenges \
         (challenge_hash, token_id, group_id, created_at, expires_at, used_at, device_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.challenge_hash)
    .bind(&c.token_id)
    .bind(&c.group_id)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(c.used_at)
    .bind(&c.device_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    challenge_hash: String,
    token_id: Option<String>,
    group_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    device_id: Option<String>,
}

pub(super) async fn consume_challenge<DB: Backend>(
    pool: &Db<DB>,
    challenge_hash: &str,
    at: Millis,
) -> Result<Option<ScepChallenge>> {
    let mut tx = pool.begin_write().await?;
    let done = query::<DB>(
        "UPDATE scep_challenges SET used_at = $1 \
         WHERE challenge_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(at)
    .bind(challenge_hash)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let r: ChallengeRow = query_as::<DB, _>(
        "SELECT challenge_hash, token_id, group_id, created_at, expires_at, used_at, device_id \
         FROM scep_challenges WHERE challenge_hash = $1",
    )
    .bind(challenge_hash)
    .fetch_one(&mut *tx)
    .await?;
    // Forget challenges that expired long ago (a day past expiry), so the table stays small.
    query::<DB>("DELETE FROM scep_challenges WHERE expires_at < $1")
        .bind(at.saturating_sub(24 * 3600 * 1000))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(ScepChallenge {
        challenge_hash: r.challenge_hash,
        token_id: r.token_id,
        group_id: r.group_id,
        created_at: r.created_at,
        expires_at: r.expires_at,
        used_at: r.used_at,
        device_id: r.device_id,
    }))
}

pub(super) async fn record_issued<DB: Backend>(pool: &Db<DB>, c: &IssuedCertificate) -> Result<()> {
    query::<DB>(
        "INSERT INTO issued_certificates (fingerprint, device_id, group_id, token_id, issued_at, proof) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.fingerprint)
    .bind(&c.device_id)
    .bind(&c.group_id)
    .bind(&c.token_id)
    .bind(c.issued_at)
    .bind(c.proof.map(IssuedProof::as_str))
    .execute(pool)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("certificate {} already recorded", c.fingerprint))
        }
        StoreError::NotFound(_) => StoreError::NotFound(format!("group {:?}", c.group_id)),
        other => other,
    })?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct IssuedRow {
    fingerprint: String,
    device_id: Option<String>,
    group_id: Option<String>,
    token_id: Option<String>,
    issued_at: i64,
    proof: Option<String>,
}

pub(super) async fn issued<DB: Backend>(
    pool: &Db<DB>,
    fingerprint: &str,
) -> Result<Option<IssuedCertificate>> {
    let r: Option<IssuedRow> = query_as::<DB, _>(
        "SELECT fingerprint, device_id, group_id, token_id, issued_at, proof \
         FROM issued_certificates WHERE fingerprint = $1",
    )
    .bind(fingerprint)
    .fetch_optional(pool)
    .await?;
    r.map(|r| {
        Ok(IssuedCertificate {
            proof: r
                .proof
                .as_deref()
                .map(IssuedProof::from_stored)
                .transpose()?,
            fingerprint: r.fingerprint,
            device_id: r.device_id,
            group_id: r.group_id,
            token_id: r.token_id,
            issued_at: r.issued_at,
        })
    })
    .transpose()
}

pub(super) async fn bind_issued<DB: Backend>(
    pool: &Db<DB>,
    fingerprint: &str,
    device_id: &str,
) -> Result<Option<IssuedCertificate>> {
    query::<DB>(
        "UPDATE issued_certificates SET device_id = $1 \
         WHERE fingerprint = $2 AND device_id IS NULL",
    )
    .bind(device_id)
    .bind(fingerprint)
    .execute(pool)
    .await?;
    match issued(pool, fingerprint).await? {
        Some(c) if c.device_id.as_deref() == Some(device_id) => Ok(Some(c)),
        Some(c) => Err(StoreError::Conflict(format!(
            "certificate {} was bound to device {} at its first Authenticate",
            fingerprint.get(..16).unwrap_or(fingerprint),
            c.device_id.unwrap_or_default()
        ))),
        None => Ok(None),
    }
}

#[async_trait::async_trait]
impl<DB: Backend> Scep for SqlStore<DB> {
    async fn create_enrollment_token(&self, t: &EnrollmentToken, event: &NewEvent) -> Result<()> {
        create_token(&self.pool, t, event).await
    }

    async fn enrollment_token(&self, id: &str) -> Result<Option<EnrollmentToken>> {
        token(&self.pool, id).await
    }

    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>> {
        list_tokens(&self.pool).await
    }

    async fn revoke_enrollment_token(&self, id: &str, at: Millis, event: &NewEvent) -> Result<()> {
        revoke_token(&self.pool, id, at, event).await
    }

    async fn redeem_enrollment_token(
        &self,
        token_hash: &str,
        at: Millis,
        challenge: &ScepChallenge,
        event: &NewEvent,
    ) -> Result<std::result::Result<EnrollmentToken, TokenRefusal>> {
        redeem_token(&self.pool, token_hash, at, challenge, event).await
    }

    async fn consume_scep_challenge(
        &self,
        challenge_hash: &str,
        at: Millis,
    ) -> Result<Option<ScepChallenge>> {
        consume_challenge(&self.pool, challenge_hash, at).await
    }

    async fn put_scep_challenge(&self, c: &ScepChallenge) -> Result<()> {
        put_challenge(&self.pool, c).await
    }

    async fn record_issued_certificate(&self, c: &IssuedCertificate) -> Result<()> {
        record_issued(&self.pool, c).await
    }

    async fn issued_certificate(&self, fingerprint: &str) -> Result<Option<IssuedCertificate>> {
        issued(&self.pool, fingerprint).await
    }

    async fn bind_issued_certificate(
        &self,
        fingerprint: &str,
        device_id: &str,
    ) -> Result<Option<IssuedCertificate>> {
        bind_issued(&self.pool, fingerprint, device_id).await
    }

    async fn claim_scep_nonce(
        &self,
        nonce: &str,
        transaction_id: &str,
        at: Millis,
        forget_before: Millis,
        keep_at_most: u32,
    ) -> Result<bool> {
        super::scep::claim_nonce(
            &self.pool,
            nonce,
            transaction_id,
            at,
            forget_before,
            keep_at_most,
        )
        .await
    }
}
