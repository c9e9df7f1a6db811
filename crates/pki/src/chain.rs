//! Chain checks against the configured device CAs, and the bounded cache of positive verdicts.
//!
//! Guarantees: a certificate passes only if openssl's `X509_verify_cert` builds a path from it to one of the
//! configured CAs at the current time (each configured CA is a trust anchor, even if it is an intermediate).
//! The cache holds at most its capacity, only ever remembers certificates that passed, and never answers for a
//! certificate past its notAfter.

use std::sync::Mutex;

use hashlink::LruCache;

use openssl::stack::StackRef;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Ref, X509StoreContext};

use crate::cms_fast::SignerKey;
use crate::error::{IdentityError, openssl_reason};

/// The device CA(s) certificates must chain to.
pub(crate) struct TrustAnchors {
    store: X509Store,
    /// The same anchors without the validity-period check, for [`TrustAnchors::check_ignoring_time`].
    timeless: X509Store,
    count: usize,
}

impl TrustAnchors {
    pub(crate) fn new(cas: Vec<X509>) -> Result<Self, IdentityError> {
        if cas.is_empty() {
            return Err(IdentityError::Untrusted(
                "no device CA certificate is configured".into(),
            ));
        }
        let count = cas.len();
        let crypto = |e| IdentityError::Crypto(openssl_reason(&e));
        let build = |flags: X509VerifyFlags| -> Result<X509Store, IdentityError> {
            let mut builder = X509StoreBuilder::new().map_err(crypto)?;
            for ca in &cas {
                builder.add_cert(ca.clone()).map_err(crypto)?;
            }
            builder.set_flags(flags).map_err(crypto)?;
            Ok(builder.build())
        };
        // An admin may configure an issuing (intermediate) CA rather than its root: trust it as an anchor.
        Ok(TrustAnchors {
            store: build(X509VerifyFlags::PARTIAL_CHAIN)?,
            timeless: build(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::NO_CHECK_TIME)?,
            count,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Verifies `cert` against the anchors, using `intermediates` only as untrusted path material.
    pub(crate) fn check(
        &self,
        cert: &X509Ref,
        intermediates: &StackRef<X509>,
    ) -> Result<(), IdentityError> {
        Self::check_in(&self.store, cert, intermediates)
    }

    /// Like [`TrustAnchors::check`] but without the validity-period check (and nothing else relaxed): for the
    /// narrowly scoped grace of an identity shortly past its notAfter (see `DeviceIdentityVerifier`).
    pub(crate) fn check_ignoring_time(
        &self,
        cert: &X509Ref,
        intermediates: &StackRef<X509>,
    ) -> Result<(), IdentityError> {
        Self::check_in(&self.timeless, cert, intermediates)
    }

    fn check_in(
        store: &X509Store,
        cert: &X509Ref,
        intermediates: &StackRef<X509>,
    ) -> Result<(), IdentityError> {
        let crypto = |e| IdentityError::Crypto(openssl_reason(&e));
        let mut ctx = X509StoreContext::new().map_err(crypto)?;
        let (ok, reason) = ctx
            .init(store, cert, intermediates, |c| {
                let ok = c.verify_cert()?;
                Ok((ok, c.error().error_string().to_string()))
            })
            .map_err(crypto)?;
        if ok {
            Ok(())
        } else {
            Err(IdentityError::Untrusted(reason))
        }
    }
}

/// What the cache answers for a certificate that passed: when it stops being valid, and the signer key kept
/// for it if it is among the most recently used ones.
pub(crate) struct Verdict {
    pub(crate) not_after_unix: i64,
    pub(crate) key: Option<SignerKey>,
}

/// Bounded LRU maps keyed by a certificate's SHA-256 fingerprint: the positive chain verdicts (a notAfter each,
/// about 80 bytes an entry), and beside them the parsed public keys of fewer signers (an RSA-2048 key with its
/// Montgomery context takes about 1.6 KB). A key is read again from the request's own certificate bytes when it
/// is not kept, so a fleet larger than the key map costs a key parse per request, never a chain check.
pub(crate) struct VerdictCache {
    inner: Mutex<Entries>,
}

struct Entries {
    verdicts: LruCache<[u8; 32], i64>,
    keys: LruCache<[u8; 32], SignerKey>,
}

impl VerdictCache {
    pub(crate) fn new(verdicts: usize, keys: usize) -> Self {
        VerdictCache {
            inner: Mutex::new(Entries {
                verdicts: LruCache::new(verdicts.max(1)),
                keys: LruCache::new(keys.max(1)),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere while holding the lock cannot leave a half-written entry (inserts are single
        // calls), so a poisoned map is still sound to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached verdict, unless absent or expired at `now_unix` (an expired one is dropped with its key).
    pub(crate) fn get(&self, fingerprint: &[u8; 32], now_unix: i64) -> Option<Verdict> {
        let mut entries = self.lock();
        let not_after_unix = *entries.verdicts.get(fingerprint)?;
        if now_unix > not_after_unix {
            entries.verdicts.remove(fingerprint);
            entries.keys.remove(fingerprint);
            return None;
        }
        let key = entries.keys.get(fingerprint).cloned();
        Some(Verdict {
            not_after_unix,
            key,
        })
    }

    /// Remembers a verified certificate; when full, the least recently used one makes room.
    pub(crate) fn insert(&self, fingerprint: [u8; 32], not_after_unix: i64) {
        self.lock().verdicts.insert(fingerprint, not_after_unix);
    }

    /// Keeps the public key read from the certificate with this fingerprint (only ever its own key: the
    /// fingerprint is of the bytes it was read from); when full, the least recently used key makes room.
    pub(crate) fn keep_key(&self, fingerprint: [u8; 32], key: SignerKey) {
        self.lock().keys.insert(fingerprint, key);
    }

    /// (verdicts, keys) held.
    pub(crate) fn len(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.verdicts.len(), entries.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SignerKey {
        SignerKey::Ec(crate::test_support::public_of(
            &crate::test_support::ec_key(),
        ))
    }

    #[test]
    fn verdicts_and_keys_never_grow_past_their_capacities_and_the_least_recently_used_goes() {
        let cache = VerdictCache::new(3, 2);
        for i in 0..3u8 {
            cache.insert([i; 32], 100);
        }
        cache.keep_key([0; 32], key());
        cache.keep_key([1; 32], key());
        assert!(
            cache.get(&[0; 32], 0).is_some(),
            "0 is now the most recently used"
        );
        cache.keep_key([2; 32], key());
        for i in 3..5u8 {
            cache.insert([i; 32], 100);
        }
        assert_eq!(cache.len(), (3, 2));
        let kept = cache.get(&[0; 32], 0).expect("recently used, kept");
        assert_eq!(kept.not_after_unix, 100);
        assert!(kept.key.is_some(), "its key was used after key 1's");
        assert!(
            cache.get(&[1; 32], 0).is_none(),
            "least recently used, evicted"
        );
        assert!(
            cache.get(&[2; 32], 0).is_none(),
            "evicted next, its kept key no verdict"
        );
        let newest = cache.get(&[4; 32], 0).expect("the newest entry is kept");
        assert!(newest.key.is_none(), "no key was kept for it");
    }

    #[test]
    fn cached_entry_past_not_after_is_not_returned_and_is_dropped_with_its_key() {
        let cache = VerdictCache::new(10, 10);
        cache.insert([1; 32], 1_000);
        cache.keep_key([1; 32], key());
        assert!(cache.get(&[1; 32], 1_000).is_some());
        assert!(cache.get(&[1; 32], 1_001).is_none());
        assert_eq!(cache.len(), (0, 0));
    }

    #[test]
    fn a_kept_key_alone_is_no_verdict() {
        let cache = VerdictCache::new(10, 10);
        cache.keep_key([7; 32], key());
        assert!(cache.get(&[7; 32], 0).is_none());
    }

    #[test]
    fn no_configured_ca_is_refused() {
        assert!(matches!(
            TrustAnchors::new(Vec::new()),
            Err(IdentityError::Untrusted(_))
        ));
    }
}
