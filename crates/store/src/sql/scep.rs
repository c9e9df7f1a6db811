//! SCEP replay protection. Guarantees: a nonce is claimed at most once while it is remembered, even by
//! concurrent claimers (one INSERT decides); at most about `keep_at_most` nonces are remembered (the oldest
//! are forgotten first), so the table stays bounded whatever arrives.

use super::Db;

use super::{Backend, query};
use crate::{Millis, Result};

pub(super) async fn claim_nonce<DB: Backend>(
    pool: &Db<DB>,
    nonce: &str,
    transaction_id: &str,
    at: Millis,
    forget_before: Millis,
    keep_at_most: u32,
) -> Result<bool> {
    query::<DB>("DELETE FROM scep_nonces WHERE seen_at < $1")
        .bind(forget_before)
        .execute(pool)
        .await?;
    let done = query::<DB>(
        "INSERT INTO scep_nonces (nonce, transaction_id, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (nonce) DO NOTHING",
    )
    .bind(nonce)
    .bind(transaction_id)
    .bind(at)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        // Beyond the cap the oldest go (ties at the boundary may keep a few more).
        query::<DB>(
            "DELETE FROM scep_nonces WHERE seen_at < \
             (SELECT seen_at FROM scep_nonces ORDER BY seen_at DESC LIMIT 1 OFFSET $1)",
        )
        // The keep_at_most-th newest is the oldest kept.
        .bind(i64::from(keep_at_most.max(1)) - 1)
        .execute(pool)
        .await?;
    }
    Ok(done.rows_affected() == 1)
}
