//! SCEP replay protection, shared by both backends (compiled per backend, see `sqlite.rs`). Guarantees: a
//! nonce is claimed at most once while it is remembered, even by concurrent claimers (one INSERT decides).

use sqlx::Pool;

use super::Db;
use crate::{Millis, Result};

pub(super) async fn claim_nonce(
    pool: &Pool<Db>,
    nonce: &str,
    transaction_id: &str,
    at: Millis,
    forget_before: Millis,
) -> Result<bool> {
    sqlx::query("DELETE FROM scep_nonces WHERE seen_at < $1")
        .bind(forget_before)
        .execute(pool)
        .await?;
    let done = sqlx::query(
        "INSERT INTO scep_nonces (nonce, transaction_id, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce)
    .bind(transaction_id)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
