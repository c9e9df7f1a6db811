//! Chain checks against the configured device CAs, and the bounded cache of positive verdicts.
//!
//! Guarantees: a certificate passes only if openssl's `X509_verify_cert` builds a path from it to one of the
//! configured CAs at the current time (each configured CA is a trust anchor, even if it is an intermediate).
//! The cache holds at most its capacity, only ever remembers certificates that passed, and never answers for a
//! certificate past its notAfter.

use std::collections::HashMap;
use std::sync::Mutex;

use openssl::stack::StackRef;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Ref, X509StoreContext};

use crate::cms_fast::SignerKey;
use crate::error::{IdentityError, openssl_reason};
use crate::identity::CertInfo;

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

/// A verified certificate as the cache keeps it: its details (without its DER) and its public key, parsed
/// once for the `Mdm-Signature` fast path (`cms_fast::SignerKey::of`; None for a key that path does not take:
/// RSA outside 2048–8192 bits, neither RSA nor EC, or one OpenSSL could not read).
#[derive(Clone)]
pub(crate) struct Verdict {
    pub(crate) info: CertInfo,
    pub(crate) key: Option<SignerKey>,
}

/// Bounded map from SHA-256 fingerprint to a verified certificate's [`Verdict`].
pub(crate) struct VerdictCache {
    entries: Mutex<HashMap<[u8; 32], Verdict>>,
    capacity: usize,
}

impl VerdictCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerdictCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verdict>> {
        // A panic elsewhere while holding the lock cannot leave a half-written entry (inserts are single
        // calls), so a poisoned map is still sound to use.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached verdict, unless absent or expired at `now_unix` (expired entries are dropped).
    pub(crate) fn get(&self, fingerprint: &[u8; 32], now_unix: i64) -> Option<Verdict> {
        let mut entries = self.lock();
        match entries.get(fingerprint) {
            Some(v) if now_unix <= v.info.not_after_unix => Some(v.clone()),
            Some(_) => {
                entries.remove(fingerprint);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified certificate; when full, an arbitrary entry makes room.
    pub(crate) fn insert(&self, fingerprint: [u8; 32], verdict: Verdict) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&fingerprint) {
            let victim = entries.keys().next().copied();
            if let Some(victim) = victim {
                entries.remove(&victim);
            }
        }
        entries.insert(fingerprint, verdict);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_after_unix: i64) -> Verdict {
        Verdict {
            info: CertInfo {
                fingerprint: String::new(),
                der: Vec::new(),
                subject: "CN=x".into(),
                issuer: "CN=ca".into(),
                serial_hex: "01".into(),
                not_after_unix,
            },
            key: None,
        }
    }

    #[test]
    fn cache_never_grows_past_its_capacity() {
        let cache = VerdictCache::new(3);
        for i in 0..10u8 {
            cache.insert([i; 32], info(100));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&[9; 32], 0).is_some(), "the newest entry is kept");
    }

    #[test]
    fn cached_entry_past_not_after_is_not_returned_and_is_dropped() {
        let cache = VerdictCache::new(10);
        cache.insert([1; 32], info(1_000));
        assert!(cache.get(&[1; 32], 1_000).is_some());
        assert!(cache.get(&[1; 32], 1_001).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn no_configured_ca_is_refused() {
        assert!(matches!(
            TrustAnchors::new(Vec::new()),
            Err(IdentityError::Untrusted(_))
        ));
    }
}
