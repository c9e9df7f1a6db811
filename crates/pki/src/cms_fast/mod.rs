//! The fast path for the common `Mdm-Signature`: a detached CMS SignedData with one signer, one embedded
//! certificate and no signed attributes (what Macs send), verified with OpenSSL after one pass over the bytes.
//!
//! Guarantees: [`parse`] reads the structure without copying and answers `None` for anything outside that
//! narrow shape (BER constructed strings, signed attributes, several signers or certificates, a signer not
//! matched byte for byte by issuer and serial, eContent present, unknown algorithms, trailing bytes): the
//! caller then takes the full OpenSSL path, which gives every error its precise wording.
//! [`FastSignature::verify_with`] is true only if the signature over the exact body verifies with the signer's
//! public key, using the digest the SignerInfo names (which must be one of the SignedData's digest algorithms).
//! The key is [`FastSignature::signer_key`], read from the embedded certificate's own bytes (those the caller's
//! chain verdict is keyed by, by SHA-256); the caller keeps the most recent signers' keys, since a kept key
//! keeps OpenSSL's Montgomery context, which `ring` rebuilt on every verify
//! (`cargo bench -p pki --bench mdm_signature`). No chain check here. Hostile input never panics: every
//! length is checked and nesting depth is bounded.

use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Verifier;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;
const MAX_DEPTH: usize = 16;

// DER contents of the object identifiers involved.
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_SHA1_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
const OID_SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];

/// One element: its tag, its whole encoding and its contents (for an indefinite length, without the
/// end-of-contents octets).
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    raw: &'a [u8],
    content: &'a [u8],
}

/// Reads the element at the start of `buf`; the rest after it.
fn read(buf: &[u8], depth: usize) -> Option<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (&tag, after_tag) = buf.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur here
    }
    let (&first, mut rest) = after_tag.split_first()?;
    let header = buf.len() - rest.len();
    if first == 0x80 {
        // BER indefinite length: only for constructed elements; the contents are elements up to 00 00.
        if tag & 0x20 == 0 {
            return None;
        }
        let start = rest;
        loop {
            if rest.starts_with(&[0, 0]) {
                let content_len = start.len() - rest.len();
                let total = header + content_len + 2;
                let tlv = Tlv {
                    tag,
                    raw: &buf[..total],
                    content: &start[..content_len],
                };
                return Some((tlv, &buf[total..]));
            }
            let (_, next) = read(rest, depth + 1)?;
            rest = next;
        }
    }
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let header = buf.len() - rest.len();
    if rest.len() < len {
        return None;
    }
    let total = header + len;
    let tlv = Tlv {
        tag,
        raw: &buf[..total],
        content: &rest[..len],
    };
    Some((tlv, &buf[total..]))
}

/// Reads the elements of a constructed element's contents in order.
struct Children<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Children<'a> {
    fn of(tlv: &Tlv<'a>, depth: usize) -> Self {
        Children {
            rest: tlv.content,
            depth,
        }
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let (tlv, rest) = read(self.rest, self.depth)?;
        if tlv.tag != tag {
            return None;
        }
        self.rest = rest;
        Some(tlv)
    }

    /// The next element if it has `tag`.
    fn optional(&mut self, tag: u8) -> Option<Tlv<'a>> {
        match read(self.rest, self.depth) {
            Some((tlv, rest)) if tlv.tag == tag => {
                self.rest = rest;
                Some(tlv)
            }
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Tlv<'a>> {
        let (tlv, rest) = read(self.rest, self.depth)?;
        self.rest = rest;
        Some(tlv)
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// The OID of an AlgorithmIdentifier and its parameters' raw encoding (empty when absent).
fn algorithm<'a>(alg: &Tlv<'a>, depth: usize) -> Option<(&'a [u8], &'a [u8])> {
    let mut parts = Children::of(alg, depth);
    let oid = parts.expect(OID)?.content;
    let params = if parts.is_empty() {
        &[][..]
    } else {
        parts.next()?.raw
    };
    parts.is_empty().then_some((oid, params))
}

/// A signature in the narrow shape this path handles, borrowed from the decoded header.
pub(crate) struct FastSignature<'a> {
    /// The signer's certificate, exactly as embedded.
    pub signer_der: &'a [u8],
    /// The signer certificate's SubjectPublicKeyInfo, whole.
    spki: &'a [u8],
    /// Its subjectPublicKey (the BIT STRING's bits, after the unused-bits octet).
    key_bits: &'a [u8],
    algorithm: Algorithm,
    signature: &'a [u8],
}

/// The verification the SignerInfo asks for: PKCS #1 v1.5 with an RSA key, or ECDSA (DER signature) on the
/// curve the certificate names (P-256 or P-384).
#[derive(Clone, Copy)]
struct Algorithm {
    digest: Digest,
    key: Id,
}

#[derive(Clone, Copy)]
enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn message_digest(self) -> MessageDigest {
        match self {
            Digest::Sha1 => MessageDigest::sha1(),
            Digest::Sha256 => MessageDigest::sha256(),
            Digest::Sha384 => MessageDigest::sha384(),
            Digest::Sha512 => MessageDigest::sha512(),
        }
    }

    /// Whether `decrypted` is the PKCS #1 v1.5 DigestInfo of `body` (RFC 8017 §9.2, note 1: the DER prefix,
    /// then the hash).
    fn is_digest_info_of(self, decrypted: &[u8], body: &[u8]) -> bool {
        const SHA1: &[u8] = &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        const SHA2: [u8; 19] = [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        // SHA-384 and SHA-512 differ from SHA-256's prefix in the lengths and the OID's last arc only.
        let sha2 = |outer: u8, arc: u8, len: u8| {
            let mut p = SHA2;
            p[1] = outer;
            p[14] = arc;
            p[18] = len;
            p
        };
        let (prefix, hash): (&[u8], &[u8]) = match self {
            // The digests Macs sign with (SHA-1, SHA-256) are RustCrypto's (`crate::identity::sha256`).
            Digest::Sha1 => (SHA1, &<sha1::Sha1 as sha1::Digest>::digest(body)[..]),
            Digest::Sha256 => (&SHA2, &crate::identity::sha256(body)),
            Digest::Sha384 => (&sha2(0x41, 0x02, 0x30), &openssl::sha::sha384(body)),
            Digest::Sha512 => (&sha2(0x51, 0x03, 0x40), &openssl::sha::sha512(body)),
        };
        decrypted.len() == prefix.len() + hash.len()
            && decrypted.starts_with(prefix)
            && decrypted.ends_with(hash)
    }
}

/// RSA key sizes accepted here (the bounds of `ring`'s PKCS #1 verification, which this path used before):
/// others take the full path.
const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=8192;

/// A signer's public key, read from its certificate's bytes by [`FastSignature::signer_key`]; the caller keeps
/// the most recently used ones (a kept RSA key keeps libcrypto's Montgomery context after its first verify).
#[derive(Clone)]
pub(crate) enum SignerKey {
    /// An RSA key of 2048 to 8192 bits.
    Rsa(Rsa<Public>),
    /// An EC key.
    Ec(PKey<Public>),
}

/// An RSAPublicKey (RFC 8017 A.1.1: a SEQUENCE of the modulus and public exponent INTEGERs) built by hand
/// from its DER: libcrypto 3's decoder (`d2i_RSA_PUBKEY`) goes through provider lookups costing more than the
/// verify. None unless both integers are positive and minimally encoded and the modulus has 2048–8192 bits.
fn rsa_public_key(der: &[u8]) -> Option<Rsa<Public>> {
    let (key, trailing) = read(der, 8)?;
    if key.tag != SEQUENCE || !trailing.is_empty() || key.raw.get(1) == Some(&0x80) {
        return None;
    }
    let mut parts = Children::of(&key, 9);
    let n = positive_integer(parts.expect(INTEGER)?.content)?;
    let e = positive_integer(parts.expect(INTEGER)?.content)?;
    if !parts.is_empty() {
        return None;
    }
    let n = BigNum::from_slice(n).ok()?;
    if !RSA_BITS.contains(&u32::try_from(n.num_bits()).ok()?) {
        return None;
    }
    Rsa::from_public_components(n, BigNum::from_slice(e).ok()?).ok()
}

/// The magnitude of a DER INTEGER's contents if it is positive and minimally encoded.
fn positive_integer(content: &[u8]) -> Option<&[u8]> {
    match content {
        [0, next, ..] if next & 0x80 != 0 => Some(&content[1..]),
        [first, ..] if *first != 0 && first & 0x80 == 0 => Some(content),
        _ => None, // empty, zero, a needless leading zero, or negative
    }
}

impl FastSignature<'_> {
    /// The public key of the embedded certificate, read from its SubjectPublicKeyInfo (the bytes of
    /// [`FastSignature::signer_der`], which the caller's chain verdict is keyed by), if this path can use it:
    /// None for an RSA key outside 2048–8192 bits or one not in plain DER.
    pub(crate) fn signer_key(&self) -> Option<SignerKey> {
        match self.algorithm.key {
            Id::RSA => {
                let (&unused_bits, der) = self.key_bits.split_first()?;
                (unused_bits == 0)
                    .then(|| rsa_public_key(der))
                    .flatten()
                    .map(SignerKey::Rsa)
            }
            Id::EC => PKey::public_key_from_der(self.spki).ok().map(SignerKey::Ec),
            _ => None,
        }
    }

    /// True only if the signature over exactly `body` verifies with `key`, which must be the public key of
    /// [`FastSignature::signer_der`] ([`FastSignature::signer_key`], or one the caller kept from it) and of
    /// the kind the SignerInfo names.
    ///
    /// RSA is checked by hand on libcrypto's RSA primitive (`RSA_public_decrypt`, which also checks the
    /// PKCS #1 type-1 padding) and a comparison with the expected DigestInfo, because libcrypto 3.0's EVP
    /// verify looks its algorithm implementations up again on every call: measured under a storm of Idle polls
    /// it made each verify slower than `ring`'s, while the primitive with a kept key is faster than both.
    pub(crate) fn verify_with(&self, key: &SignerKey, body: &[u8]) -> bool {
        match (key, self.algorithm.key) {
            (SignerKey::Rsa(rsa), Id::RSA) => {
                let size = rsa.size() as usize;
                if self.signature.len() != size {
                    return false;
                }
                // At most 8192 bits (`signer_key` refuses larger keys; a kept key came from there).
                let mut decrypted = [0u8; 1024];
                let Some(out) = decrypted.get_mut(..size) else {
                    return false;
                };
                let Ok(len) = rsa.public_decrypt(self.signature, out, Padding::PKCS1) else {
                    return false;
                };
                self.algorithm.digest.is_digest_info_of(&out[..len], body)
            }
            (SignerKey::Ec(ec), Id::EC) => {
                Verifier::new(self.algorithm.digest.message_digest(), ec)
                    .and_then(|mut v| v.verify_oneshot(self.signature, body))
                    .unwrap_or(false)
            }
            _ => false,
        }
    }

    /// [`FastSignature::verify_with`] the key of the embedded certificate (each call reads it).
    #[cfg(test)]
    pub(crate) fn verify(&self, body: &[u8]) -> bool {
        self.signer_key()
            .is_some_and(|key| self.verify_with(&key, body))
    }
}

/// Whether `der` (a ContentInfo) is a SignedData whose every digestAlgorithm is SHA-1, SHA-256, SHA-384 or
/// SHA-512. OpenSSL 3.0's `PKCS7_verify` leaks the memory BIO it wraps detached content in when a
/// digestAlgorithm is one it cannot set up (about 300 bytes a request, found by fuzzing `Mdm-Signature`
/// under LeakSanitizer), so the full path asks this first (`cms::verify_decoded`).
pub(crate) fn digest_algorithms_supported(der: &[u8]) -> bool {
    let supported = || -> Option<bool> {
        let (content_info, _) = read(der, 0)?;
        let mut ci = Children::of(&content_info, 1);
        if ci.expect(OID)?.content != OID_SIGNED_DATA {
            return Some(false);
        }
        let explicit = ci.expect(CONTEXT_0)?;
        let signed_data = Children::of(&explicit, 2).expect(SEQUENCE)?;
        let mut sd = Children::of(&signed_data, 3);
        sd.expect(INTEGER)?;
        let mut algorithms = Children::of(&sd.expect(SET)?, 4);
        while !algorithms.is_empty() {
            let (oid, _) = algorithm(&algorithms.next()?, 5)?;
            if ![OID_SHA1, OID_SHA256, OID_SHA384, OID_SHA512].contains(&oid) {
                return Some(false);
            }
        }
        Some(true)
    };
    supported() == Some(true)
}

/// The signature in `der` (a decoded `Mdm-Signature`), if it has the narrow shape this path handles.
pub(crate) fn parse(der: &[u8]) -> Option<FastSignature<'_>> {
    let (content_info, trailing) = read(der, 0)?;
    if content_info.tag != SEQUENCE || !trailing.is_empty() {
        return None;
    }
    let mut ci = Children::of(&content_info, 1);
    if ci.expect(OID)?.content != OID_SIGNED_DATA {
        return None;
    }
    let explicit = ci.expect(CONTEXT_0)?;
    let mut inner = Children::of(&explicit, 2);
    let signed_data = inner.expect(SEQUENCE)?;
    if !inner.is_empty() || !ci.is_empty() {
        return None;
    }

    let mut sd = Children::of(&signed_data, 3);
    sd.expect(INTEGER)?;
    let digest_algorithms = sd.expect(SET)?;
    let encap = sd.expect(SEQUENCE)?;
    let mut encap_parts = Children::of(&encap, 4);
    if encap_parts.expect(OID)?.content != OID_DATA || !encap_parts.is_empty() {
        return None; // eContent present (or not id-data): not a detached signature of a body
    }
    let certificates = sd.expect(CONTEXT_0)?;
    sd.optional(CONTEXT_1);
    let signer_infos = sd.expect(SET)?;
    if !sd.is_empty() {
        return None;
    }

    let mut certs = Children::of(&certificates, 4);
    let cert = certs.expect(SEQUENCE)?;
    if !certs.is_empty() {
        return None;
    }
    let mut signers = Children::of(&signer_infos, 4);
    let signer_info = signers.expect(SEQUENCE)?;
    if !signers.is_empty() {
        return None;
    }

    let mut si = Children::of(&signer_info, 5);
    si.expect(INTEGER)?;
    let sid = si.expect(SEQUENCE)?; // issuerAndSerialNumber (a subjectKeyIdentifier sid takes the slow path)
    let digest_alg = si.expect(SEQUENCE)?;
    if si.optional(CONTEXT_0).is_some() {
        return None; // signed attributes
    }
    let signature_alg = si.expect(SEQUENCE)?;
    let signature = si.expect(OCTET_STRING)?.content;
    si.optional(CONTEXT_1);
    if !si.is_empty() {
        return None;
    }

    let (digest_oid, _) = algorithm(&digest_alg, 6)?;
    let mut listed = Children::of(&digest_algorithms, 4);
    let mut digest_listed = false;
    while !listed.is_empty() {
        let alg = listed.expect(SEQUENCE)?;
        digest_listed |= algorithm(&alg, 5)?.0 == digest_oid;
    }
    if !digest_listed {
        return None;
    }

    let parsed_cert = CertFields::parse(&cert)?;
    let mut sid_parts = Children::of(&sid, 6);
    let sid_issuer = sid_parts.expect(SEQUENCE)?;
    let sid_serial = sid_parts.expect(INTEGER)?;
    if !sid_parts.is_empty()
        || sid_issuer.raw != parsed_cert.issuer
        || sid_serial.content != parsed_cert.serial
    {
        return None;
    }

    let (signature_oid, _) = algorithm(&signature_alg, 6)?;
    let algorithm = choose_algorithm(
        digest_oid,
        signature_oid,
        parsed_cert.key_oid,
        parsed_cert.key_params,
    )?;
    Some(FastSignature {
        signer_der: cert.raw,
        spki: parsed_cert.spki,
        key_bits: parsed_cert.key_bits,
        algorithm,
        signature,
    })
}

/// The parts of a certificate this path needs.
struct CertFields<'a> {
    /// The issuer Name's whole encoding.
    issuer: &'a [u8],
    /// The serial INTEGER's contents.
    serial: &'a [u8],
    key_oid: &'a [u8],
    key_params: &'a [u8],
    /// The SubjectPublicKeyInfo's whole encoding.
    spki: &'a [u8],
    /// The subjectPublicKey BIT STRING's contents (its first octet is the count of unused bits, 0).
    key_bits: &'a [u8],
}

impl<'a> CertFields<'a> {
    fn parse(cert: &Tlv<'a>) -> Option<Self> {
        let mut c = Children::of(cert, 5);
        let tbs = c.expect(SEQUENCE)?;
        let mut t = Children::of(&tbs, 6);
        t.optional(CONTEXT_0); // version
        let serial = t.expect(INTEGER)?.content;
        t.expect(SEQUENCE)?; // signature algorithm
        let issuer = t.expect(SEQUENCE)?.raw;
        t.expect(SEQUENCE)?; // validity
        t.expect(SEQUENCE)?; // subject
        let spki = t.expect(SEQUENCE)?;
        let mut s = Children::of(&spki, 7);
        let alg = s.expect(SEQUENCE)?;
        let (key_oid, key_params) = algorithm(&alg, 8)?;
        let bits = s.expect(BIT_STRING)?.content;
        if bits.first() != Some(&0) || !s.is_empty() {
            return None;
        }
        Some(CertFields {
            issuer,
            serial,
            key_oid,
            key_params,
            spki: spki.raw,
            key_bits: bits,
        })
    }
}

/// The verification for this digest, signature algorithm and key; None for anything else.
fn choose_algorithm(
    digest: &[u8],
    signature_alg: &[u8],
    key_oid: &[u8],
    key_params: &[u8],
) -> Option<Algorithm> {
    let (digest_fn, named_rsa) = match digest {
        d if d == OID_SHA1 => (Digest::Sha1, OID_SHA1_RSA),
        d if d == OID_SHA256 => (Digest::Sha256, OID_SHA256_RSA),
        d if d == OID_SHA384 => (Digest::Sha384, OID_SHA384_RSA),
        d if d == OID_SHA512 => (Digest::Sha512, OID_SHA512_RSA),
        _ => return None,
    };
    if key_oid == OID_RSA {
        // rsaEncryption, or the sha*WithRSAEncryption naming the same digest.
        return (signature_alg == OID_RSA || signature_alg == named_rsa).then_some(Algorithm {
            digest: digest_fn,
            key: Id::RSA,
        });
    }
    if key_oid == OID_EC_PUBLIC_KEY {
        let curve = Children::of(
            &Tlv {
                tag: SEQUENCE,
                raw: key_params,
                content: key_params,
            },
            8,
        )
        .expect(OID)?
        .content;
        let named = match digest {
            d if d == OID_SHA256 => OID_ECDSA_SHA256,
            d if d == OID_SHA384 => OID_ECDSA_SHA384,
            _ => return None,
        };
        let curve_known = curve == OID_P256 || curve == OID_P384;
        return (curve_known && signature_alg == named).then_some(Algorithm {
            digest: digest_fn,
            key: Id::EC,
        });
    }
    None
}

#[cfg(test)]
mod tests;
