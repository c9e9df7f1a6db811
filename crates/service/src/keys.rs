//! Key rotation: re-wrap every sealed secret in the store under the vault's active key.
//!
//! Safe while the server runs: each secret is replaced with a compare-and-swap on its old blob, so a token the
//! server escrows during the pass is never overwritten with a stale value (it is already under the new key,
//! because the running server notices the key file changed).

use std::sync::Arc;

use store::Store;
use vault::Vault;

use crate::ServiceError;

/// What a re-wrap pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// Secrets moved to the active key.
    pub rewrapped: u64,
    /// Secrets already under the active key.
    pub already_current: u64,
    /// Secrets that changed while we worked (a concurrent write won; they are under the active key anyway).
    pub changed_concurrently: u64,
    /// Secrets that would not open: (owner, field, reason). They keep their old key, so it cannot be retired.
    pub failed: Vec<(String, String, String)>,
}

/// Total number of sealed secrets (for a progress bar).
pub async fn count_sealed_secrets(store: &dyn Store) -> Result<u64, ServiceError> {
    Ok(store
        .sealed_secret_key_counts()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum())
}

/// Re-wrap every sealed secret under `vault`'s active key, calling `progress(done)` after each page.
pub async fn rewrap_all(
    store: &Arc<dyn Store>,
    vault: &Vault,
    mut progress: impl FnMut(u64),
) -> Result<RewrapReport, ServiceError> {
    const PAGE: u32 = 500;
    let mut report = RewrapReport::default();
    let mut after: Option<(String, String)> = None;
    let mut done = 0u64;
    loop {
        let cursor = after.as_ref().map(|(o, f)| (o.as_str(), f.as_str()));
        let page = store.sealed_secrets_page(cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.owner.clone(), last.field.clone()));
        for secret in &page {
            match crate::secrets::rewrap_stored(vault, secret) {
                Ok(None) => report.already_current += 1,
                Ok(Some(new)) => {
                    let now = crate::clock::Clock::now_millis(&crate::SystemClock);
                    if store
                        .replace_sealed_secret(
                            &secret.owner,
                            &secret.field,
                            &secret.blob,
                            &new.key_id,
                            &new.blob,
                            now,
                        )
                        .await?
                    {
                        report.rewrapped += 1;
                    } else {
                        report.changed_concurrently += 1;
                    }
                }
                Err(err) => report.failed.push((
                    secret.owner.clone(),
                    secret.field.clone(),
                    err.to_string(),
                )),
            }
            done += 1;
        }
        progress(done);
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(report)
}
