//! The server half of SCEP: read a PKIOperation request, answer with a CertRep.

use std::fmt;

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKey, Public};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Req};
use vault::Secret;

use super::der::{self, TAG_CONTEXT_0, TAG_OID, TAG_SEQUENCE, TAG_SET};
use super::{
    FailInfo, MAX_MESSAGE_BYTES, MAX_RSA_BITS, MIN_RSA_BITS, MessageType, NONCE_LEN,
    OID_CHALLENGE_PASSWORD, PkiStatus, ScepError, degenerate_certs, oid, read_scep_attributes,
    scep_attributes, signed_data,
};
use crate::ca::CertificateAuthority;
use crate::error::{crypto, openssl_reason};
use crate::identity::one_line_name;

/// Longest transactionID we accept (they are usually a hex or base64 hash of the key).
const MAX_TRANSACTION_ID: usize = 128;
/// Longest challenge password we accept (PKCS#9 allows 255).
const MAX_CHALLENGE: usize = 255;

/// A PKIOperation request whose signature verified. The CSR inside is still encrypted: see [`ScepRequest::csr`].
pub struct ScepRequest {
    /// None for a messageType we do not serve (GetCertInitial, GetCRL, …); answer with badRequest.
    pub message_type: Option<MessageType>,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the request: self-signed for PKCSReq, the current identity for RenewalReq.
    pub signer: X509,
    envelope: Vec<u8>,
}

impl fmt::Debug for ScepRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScepRequest")
            .field("message_type", &self.message_type)
            .field("transaction_id", &self.transaction_id)
            .field("signer", &one_line_name(self.signer.subject_name()))
            .finish_non_exhaustive()
    }
}

/// A decrypted, self-signature-checked certificate request.
pub struct Csr {
    pub public_key: PKey<Public>,
    pub key_bits: u32,
    /// `CN=…, O=…` one-line subject, for logs and events.
    pub subject: String,
    pub common_name: Option<String>,
    /// The PKCS#9 challengePassword, if the request carries one.
    pub challenge: Option<Secret<Vec<u8>>>,
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csr")
            .field("key_bits", &self.key_bits)
            .field("subject", &self.subject)
            .field("challenge", &self.challenge.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// Verify and read a PKIOperation message (DER). Errors are `Malformed`: no reply can be built.
pub fn decode_request(message: &[u8]) -> Result<ScepRequest, ScepError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ScepError::Malformed(format!(
            "message is {} bytes; at most {MAX_MESSAGE_BYTES} accepted",
            message.len()
        )));
    }
    let attrs = read_scep_attributes(message)?;
    let p7 = Pkcs7::from_der(message)
        .map_err(|e| ScepError::Malformed(format!("not PKCS#7: {}", openssl_reason(&e))))?;
    let none = Stack::<X509>::new().map_err(crypto("verifying SCEP request"))?;
    let store = X509StoreBuilder::new()
        .map_err(crypto("verifying SCEP request"))?
        .build();
    let mut envelope = Vec::new();
    p7.verify(
        &none,
        &store,
        None,
        Some(&mut envelope),
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
    )
    .map_err(|e| {
        ScepError::Malformed(format!("signature does not verify: {}", openssl_reason(&e)))
    })?;
    let signers = p7
        .signers(&none, Pkcs7Flags::NOVERIFY)
        .map_err(|e| ScepError::Malformed(format!("no signer: {}", openssl_reason(&e))))?;
    let signer = match (signers.len(), signers.get(0)) {
        (1, Some(cert)) => cert.to_owned(),
        (n, _) => {
            return Err(ScepError::Malformed(format!(
                "expected exactly one signer, found {n}"
            )));
        }
    };
    let message_type = attrs
        .message_type
        .ok_or_else(|| ScepError::Malformed("no messageType attribute".into()))?;
    let transaction_id = attrs
        .transaction_id
        .ok_or_else(|| ScepError::Malformed("no transactionID attribute".into()))?;
    if transaction_id.is_empty()
        || transaction_id.len() > MAX_TRANSACTION_ID
        || !transaction_id
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        return Err(ScepError::Malformed(format!(
            "transactionID must be 1-{MAX_TRANSACTION_ID} printable characters"
        )));
    }
    let sender_nonce = attrs
        .sender_nonce
        .ok_or_else(|| ScepError::Malformed("no senderNonce attribute".into()))?;
    if sender_nonce.len() != NONCE_LEN {
        return Err(ScepError::Malformed(format!(
            "senderNonce must be {NONCE_LEN} bytes, got {}",
            sender_nonce.len()
        )));
    }
    Ok(ScepRequest {
        message_type: MessageType::from_code(&message_type).filter(|t| *t != MessageType::CertRep),
        transaction_id: String::from_utf8_lossy(&transaction_id).into_owned(),
        sender_nonce,
        signer,
        envelope,
    })
}

impl ScepRequest {
    /// Decrypt the request's envelope with the CA key and check the CSR inside.
    pub fn csr(&self, ca: &CertificateAuthority) -> Result<Csr, ScepError> {
        enable_legacy_ciphers();
        let envelope = Pkcs7::from_der(&self.envelope).map_err(|e| {
            ScepError::refused(
                FailInfo::BadMessageCheck,
                format!("envelope is not PKCS#7: {}", openssl_reason(&e)),
            )
        })?;
        let csr_der = envelope
            .decrypt(ca.key(), ca.certificate(), Pkcs7Flags::BINARY)
            .map_err(|e| {
                ScepError::refused(
                    FailInfo::BadMessageCheck,
                    format!(
                        "envelope does not decrypt with this CA's key: {}",
                        openssl_reason(&e)
                    ),
                )
            })?;
        parse_csr(&csr_der)
    }
}

/// Many SCEP clients (micromdm's `scepclient`, older network gear) encrypt requests with single DES, which
/// OpenSSL 3 only offers through its "legacy" provider. Load it once, keeping the default provider, so those
/// requests decrypt; if it is not installed, such requests are refused with badMessageCheck. Our own replies
/// always use AES-256-CBC.
fn enable_legacy_ciphers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        match openssl::provider::Provider::try_load(None, "legacy", true) {
            // Kept loaded for the life of the process: unloading would withdraw the ciphers again.
            Ok(provider) => std::mem::forget(provider),
            Err(e) => tracing::warn!(
                reason = %openssl_reason(&e),
                "OpenSSL legacy provider unavailable: SCEP requests encrypted with single DES will be refused"
            ),
        }
    });
}

/// Parse a PKCS#10 request, verify its self-signature and key, and pull out its challenge password.
pub(crate) fn parse_csr(csr_der: &[u8]) -> Result<Csr, ScepError> {
    let bad = |reason: String| ScepError::refused(FailInfo::BadRequest, reason);
    let req = X509Req::from_der(csr_der)
        .map_err(|e| bad(format!("not a PKCS#10 request: {}", openssl_reason(&e))))?;
    let public_key = req
        .public_key()
        .map_err(|e| bad(format!("request key unreadable: {}", openssl_reason(&e))))?;
    if !req.verify(&public_key).unwrap_or(false) {
        return Err(ScepError::refused(
            FailInfo::BadMessageCheck,
            "request self-signature does not verify",
        ));
    }
    let key_bits = public_key.bits();
    if public_key.id() != Id::RSA || !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key_bits) {
        return Err(ScepError::refused(
            FailInfo::BadAlg,
            format!(
                "only RSA keys of {MIN_RSA_BITS}-{MAX_RSA_BITS} bits are issued (got {key_bits}-bit {:?})",
                public_key.id()
            ),
        ));
    }
    let common_name = req
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok());
    Ok(Csr {
        key_bits,
        subject: one_line_name(req.subject_name()),
        common_name,
        challenge: challenge_password(csr_der)?,
        public_key,
    })
}

/// The challengePassword attribute of a DER CertificationRequest, if present.
fn challenge_password(csr_der: &[u8]) -> Result<Option<Secret<Vec<u8>>>, ScepError> {
    let mut outer = der::Reader::new(csr_der);
    let mut req = outer.enter(TAG_SEQUENCE, "request is not a SEQUENCE")?;
    let mut info = req.enter(TAG_SEQUENCE, "request info is not a SEQUENCE")?;
    info.expect(der::TAG_INTEGER, "request has no version")?;
    info.expect(TAG_SEQUENCE, "request has no subject")?;
    info.expect(TAG_SEQUENCE, "request has no public key")?;
    let Some(attrs) = info.optional(TAG_CONTEXT_0)? else {
        return Ok(None);
    };
    let mut attrs = info.inside(&attrs)?;
    let wanted = oid(OID_CHALLENGE_PASSWORD);
    while !attrs.is_empty() {
        let mut attr = attrs.enter(TAG_SEQUENCE, "request attribute is not a SEQUENCE")?;
        let kind = attr.expect(TAG_OID, "request attribute has no type")?;
        if kind.raw != wanted.as_slice() {
            continue;
        }
        let mut values = attr.enter(TAG_SET, "challengePassword has no value")?;
        let value = values.any()?;
        // DirectoryString: PrintableString, UTF8String, IA5String or TeletexString.
        if !matches!(value.tag, 0x13 | 0x0c | 0x16 | 0x14) {
            return Err(ScepError::refused(
                FailInfo::BadRequest,
                "challengePassword is not a string",
            ));
        }
        if value.content.len() > MAX_CHALLENGE {
            return Err(ScepError::refused(
                FailInfo::BadRequest,
                format!("challengePassword longer than {MAX_CHALLENGE} bytes"),
            ));
        }
        return Ok(Some(Secret::new(value.content.to_vec())));
    }
    Ok(None)
}

fn new_nonce() -> Result<Vec<u8>, ScepError> {
    let mut nonce = vec![0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).map_err(crypto("generating nonce"))?;
    Ok(nonce)
}

/// A CertRep SUCCESS carrying `issued`, encrypted to the request's signer.
pub fn cert_rep_success(
    ca: &CertificateAuthority,
    req: &ScepRequest,
    issued: &X509,
) -> Result<Vec<u8>, ScepError> {
    let certs_only =
        degenerate_certs(&[issued.to_der().map_err(crypto("encoding certificate"))?]);
    let mut recipients = Stack::<X509>::new().map_err(crypto("encrypting reply"))?;
    recipients
        .push(req.signer.clone())
        .map_err(crypto("encrypting reply"))?;
    let envelope = Pkcs7::encrypt(
        &recipients,
        &certs_only,
        Cipher::aes_256_cbc(),
        Pkcs7Flags::BINARY,
    )
    .and_then(|p7| p7.to_der())
    .map_err(crypto("encrypting reply"))?;
    let attrs = scep_attributes(
        MessageType::CertRep,
        req.transaction_id.as_bytes(),
        &new_nonce()?,
        Some(&req.sender_nonce),
        Some((PkiStatus::Success, None)),
    );
    Ok(signed_data(&envelope, ca.certificate(), ca.key(), attrs)?)
}

/// A CertRep FAILURE with `fail_info`.
pub fn cert_rep_failure(
    ca: &CertificateAuthority,
    req: &ScepRequest,
    fail_info: FailInfo,
) -> Result<Vec<u8>, ScepError> {
    let attrs = scep_attributes(
        MessageType::CertRep,
        req.transaction_id.as_bytes(),
        &new_nonce()?,
        Some(&req.sender_nonce),
        Some((PkiStatus::Failure, Some(fail_info))),
    );
    Ok(signed_data(&[], ca.certificate(), ca.key(), attrs)?)
}
