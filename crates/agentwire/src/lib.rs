//! agentwire: the agent channel's cryptography (issue 6), the one piece both escrowd (`service`) and the Mac
//! agent need; kept out of `vault` (keys and envelopes at rest) and out of `protocol` (pure wire types).
//!
//! Ed25519 request signatures and RFC 9180 HPKE sealing of action
//! credentials to an agent's X25519 key.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode. A sealed blob is
//! `enc (32 bytes) || ciphertext`. The caller binds a blob to its purpose with `info` (e.g. the action id), so a
//! blob copied to another action does not open. Guarantees: private keys and opened plaintext only exist in
//! [`Secret`]s; errors never carry key or plaintext bytes.

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use vault::{Secret, VaultError};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// Length of an X25519 public key and of the encapsulated key at the front of a sealed blob.
pub const HPKE_KEY_LEN: usize = 32;
/// Length of an Ed25519 public key.
pub const SIGNING_KEY_LEN: usize = 32;

/// An Ed25519 signing key (PKCS#8 v2 document, kept in a `Secret`).
pub struct SigningKey {
    pkcs8: Secret<Vec<u8>>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, VaultError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| VaultError::Crypto("Ed25519 key generation failed".into()))?;
        Self::from_pkcs8(Secret::new(doc.as_ref().to_vec()))
    }

    pub fn from_pkcs8(pkcs8: Secret<Vec<u8>>) -> Result<Self, VaultError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.expose())
            .map_err(|_| VaultError::Malformed)?;
        Ok(SigningKey { pkcs8, pair })
    }

    pub fn pkcs8(&self) -> &Secret<Vec<u8>> {
        &self.pkcs8
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` by `public_key`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    public_key.len() == SIGNING_KEY_LEN
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(message, signature)
            .is_ok()
}

/// Whether `bytes` is a usable Ed25519 public key (right length; ring checks the point when verifying).
pub fn check_signing_public_key(bytes: &[u8]) -> Result<(), VaultError> {
    if bytes.len() == SIGNING_KEY_LEN {
        Ok(())
    } else {
        Err(VaultError::Malformed)
    }
}

/// An X25519 HPKE key pair; the private half only in a `Secret`.
pub struct HpkeKeyPair {
    private: Secret<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for HpkeKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HpkeKeyPair([REDACTED])")
    }
}

impl HpkeKeyPair {
    pub fn generate() -> Self {
        let (sk, pk) = Kem::gen_keypair();
        HpkeKeyPair {
            private: Secret::new(sk.to_bytes().to_vec()),
            public: pk.to_bytes().to_vec(),
        }
    }

    /// Rebuild from a stored private key.
    pub fn from_private(private: Secret<Vec<u8>>) -> Result<Self, VaultError> {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(private.expose())
            .map_err(|_| VaultError::Malformed)?;
        let public = Kem::sk_to_pk(&sk).to_bytes().to_vec();
        Ok(HpkeKeyPair { private, public })
    }

    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    pub fn private_key(&self) -> &Secret<Vec<u8>> {
        &self.private
    }

    /// Open a blob made by [`hpke_seal`] for this key with the same `info` and `aad`.
    pub fn open(
        &self,
        info: &[u8],
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Secret<Vec<u8>>, VaultError> {
        if blob.len() < HPKE_KEY_LEN {
            return Err(VaultError::Malformed);
        }
        let (enc, ct) = blob.split_at(HPKE_KEY_LEN);
        let enc =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| VaultError::Malformed)?;
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(self.private.expose())
            .map_err(|_| VaultError::Malformed)?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, info, ct, aad)
            .map(Secret::new)
            .map_err(|_| VaultError::OpenFailed)
    }
}

/// Whether `bytes` is a usable X25519 public key.
pub fn check_hpke_public_key(bytes: &[u8]) -> Result<(), VaultError> {
    <Kem as hpke::Kem>::PublicKey::from_bytes(bytes)
        .map(|_| ())
        .map_err(|_| VaultError::Malformed)
}

/// Seal `plaintext` to `recipient` (an X25519 public key): `enc || ciphertext`.
pub fn hpke_seal(
    recipient: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let pk =
        <Kem as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| VaultError::Malformed)?;
    let (enc, ct) =
        hpke::single_shot_seal::<Aead, Kdf, Kem>(&OpModeS::Base, &pk, info, plaintext, aad)
            .map_err(|_| VaultError::Crypto("HPKE seal failed".into()))?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpke_round_trips_and_is_bound_to_info_aad_and_key() {
        let kp = HpkeKeyPair::generate();
        let blob = hpke_seal(kp.public_key(), b"action-1", b"aad", b"pw: hunter2").unwrap();
        assert!(!blob.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            kp.open(b"action-1", b"aad", &blob).unwrap().expose(),
            b"pw: hunter2"
        );
        assert!(kp.open(b"action-2", b"aad", &blob).is_err());
        assert!(kp.open(b"action-1", b"other", &blob).is_err());
        assert!(
            HpkeKeyPair::generate()
                .open(b"action-1", b"aad", &blob)
                .is_err()
        );
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(kp.open(b"action-1", b"aad", &bad).is_err());
        assert!(kp.open(b"action-1", b"aad", &blob[..10]).is_err());
        let again = HpkeKeyPair::from_private(kp.private_key().clone()).unwrap();
        assert_eq!(again.public_key(), kp.public_key());
        assert!(check_hpke_public_key(&[0u8; 5]).is_err());
        assert!(check_hpke_public_key(kp.public_key()).is_ok());
        assert_eq!(format!("{kp:?}"), "HpkeKeyPair([REDACTED])");
    }

    #[test]
    fn signatures_verify_only_for_the_same_key_and_message() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"GET /agent/v1/actions");
        assert!(verify_signature(
            &key.public_key(),
            b"GET /agent/v1/actions",
            &sig
        ));
        assert!(!verify_signature(
            &key.public_key(),
            b"GET /agent/v1/action",
            &sig
        ));
        let other = SigningKey::generate().unwrap();
        assert!(!verify_signature(
            &other.public_key(),
            b"GET /agent/v1/actions",
            &sig
        ));
        assert!(!verify_signature(b"short", b"GET /agent/v1/actions", &sig));
        assert!(!verify_signature(
            &key.public_key(),
            b"GET /agent/v1/actions",
            b"garbage"
        ));
        let back = SigningKey::from_pkcs8(key.pkcs8().clone()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(SigningKey::from_pkcs8(Secret::new(vec![1, 2, 3])).is_err());
        assert_eq!(format!("{key:?}"), "SigningKey([REDACTED])");
    }
}
