//! SCEP (RFC 8894) message crypto: the PKCS#7 envelopes around a certificate request and its reply.
//!
//! Guarantees: a request is accepted only if its SignedData has exactly one signer whose signature (with signed
//! attributes, incl. messageDigest) verifies against the certificate embedded in the message, and it carries a
//! known messageType, a transactionID and a 16-byte senderNonce; the CSR inside is decrypted with the CA key and
//! its self-signature verified; only RSA keys of 2048–4096 bits are accepted. Replies are DER SignedData signed
//! by the CA with SHA-256, the issued certificate encrypted (AES-256-CBC) to the requester's signing
//! certificate. The challenge password leaves this module only as a [`vault::Secret`]. No `unsafe` here: the
//! attributes openssl cannot expose are read and written with the small DER codec in [`der`].
//!
//! Policy (which challenge is valid, replays, who may renew) is the caller's (`service::scep`).

pub mod client;
pub mod der;
mod server;
#[cfg(test)]
mod tests;

use std::fmt;

use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKeyRef, Private};
use openssl::sign::Signer;
use openssl::x509::X509Ref;

pub use server::{Csr, ScepRequest, cert_rep_failure, cert_rep_success, decode_request};

use crate::IdentityError;
use crate::error::crypto;
use der::{
    TAG_CONTEXT_0, TAG_OCTET_STRING, TAG_PRINTABLE_STRING, TAG_SEQUENCE, TAG_SET, Tlv, algorithm,
    oid, seq, set_of, small_integer, tlv,
};

/// Largest PKIOperation message we read (an RSA-4096 request is about 4 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Smallest and largest RSA key we issue certificates for.
pub const MIN_RSA_BITS: u32 = 2048;
pub const MAX_RSA_BITS: u32 = 4096;
/// Length of a SCEP nonce (RFC 8894 §3.2.1.5).
pub const NONCE_LEN: usize = 16;

/// What `GetCACaps` answers, one capability per line.
pub const CA_CAPS: &str = "AES\nPOSTPKIOperation\nRenewal\nSHA-256\nSHA-512\nSCEPStandard\n";

/// Why a SCEP message was refused. Messages name the problem, never key material or challenge values.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    /// Not a SCEP message we can read at all; no CertRep can be built (HTTP 400).
    #[error("malformed SCEP message: {0}")]
    Malformed(String),
    /// A readable message we refuse; answered with a CertRep FAILURE carrying this failInfo.
    #[error("SCEP request refused ({fail_info}): {reason}")]
    Refused { fail_info: FailInfo, reason: String },
    #[error(transparent)]
    Crypto(#[from] IdentityError),
}

impl ScepError {
    pub(crate) fn refused(fail_info: FailInfo, reason: impl Into<String>) -> Self {
        ScepError::Refused {
            fail_info,
            reason: reason.into(),
        }
    }
}

impl From<der::DerError> for ScepError {
    fn from(e: der::DerError) -> Self {
        ScepError::Malformed(e.0.to_string())
    }
}

/// SCEP messageType values we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
}

impl MessageType {
    fn code(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
        }
    }

    fn from_code(code: &[u8]) -> Option<Self> {
        match code {
            b"3" => Some(MessageType::CertRep),
            b"17" => Some(MessageType::RenewalReq),
            b"19" => Some(MessageType::PkcsReq),
            _ => None,
        }
    }
}

/// SCEP failInfo (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    fn from_code(code: &[u8]) -> Option<Self> {
        Some(match code {
            b"0" => FailInfo::BadAlg,
            b"1" => FailInfo::BadMessageCheck,
            b"2" => FailInfo::BadRequest,
            b"3" => FailInfo::BadTime,
            b"4" => FailInfo::BadCertId,
            _ => return None,
        })
    }
}

impl fmt::Display for FailInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
        })
    }
}

/// pkiStatus of a CertRep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiStatus {
    Success,
    Failure,
    Pending,
}

// Object identifiers (dotted arcs).
const OID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
const OID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
const OID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_CONTENT_TYPE: &[u64] = &[1, 2, 840, 113549, 1, 9, 3];
const OID_MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113549, 1, 9, 4];
const OID_CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113549, 1, 9, 7];
const OID_MESSAGE_TYPE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 2];
const OID_PKI_STATUS: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 3];
const OID_FAIL_INFO: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 4];
const OID_SENDER_NONCE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 5];
const OID_RECIPIENT_NONCE: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 6];
const OID_TRANSACTION_ID: &[u64] = &[2, 16, 840, 1, 113733, 1, 9, 7];

/// The SCEP attributes of a message's single signer (raw values; absent ones are None).
#[derive(Debug, Default, Clone)]
pub(crate) struct ScepAttributes {
    pub message_type: Option<Vec<u8>>,
    pub pki_status: Option<Vec<u8>>,
    pub fail_info: Option<Vec<u8>>,
    pub sender_nonce: Option<Vec<u8>>,
    pub recipient_nonce: Option<Vec<u8>>,
    pub transaction_id: Option<Vec<u8>>,
}

/// Reads the signed attributes of the one SignerInfo of a SignedData ContentInfo.
pub(crate) fn read_scep_attributes(message: &[u8]) -> Result<ScepAttributes, ScepError> {
    let mut outer = der::Reader::new(message);
    let mut content_info = outer.enter(TAG_SEQUENCE, "ContentInfo is not a SEQUENCE")?;
    let ty = content_info.expect(der::TAG_OID, "ContentInfo has no content type")?;
    if ty.raw != oid(OID_SIGNED_DATA).as_slice() {
        return Err(ScepError::Malformed("not a PKCS#7 SignedData".into()));
    }
    let mut explicit = content_info.enter(TAG_CONTEXT_0, "SignedData content missing")?;
    let mut signed = explicit.enter(TAG_SEQUENCE, "SignedData is not a SEQUENCE")?;
    signed.expect(der::TAG_INTEGER, "SignedData has no version")?;
    signed.expect(TAG_SET, "SignedData has no digest algorithms")?;
    signed.expect(TAG_SEQUENCE, "SignedData has no content")?;
    signed.optional(TAG_CONTEXT_0)?; // certificates
    signed.optional(der::TAG_CONTEXT_1)?; // crls
    let mut infos = signed.enter(TAG_SET, "SignedData has no signer infos")?;
    let info = infos.expect(TAG_SEQUENCE, "SignerInfo is not a SEQUENCE")?;
    if !infos.is_empty() {
        return Err(ScepError::Malformed("more than one signer".into()));
    }
    let mut info = infos.inside(&info)?;
    info.expect(der::TAG_INTEGER, "SignerInfo has no version")?;
    info.any()?; // issuerAndSerialNumber or subjectKeyIdentifier
    info.expect(TAG_SEQUENCE, "SignerInfo has no digest algorithm")?;
    let Some(attrs) = info.optional(TAG_CONTEXT_0)? else {
        return Err(ScepError::Malformed(
            "signer has no signed attributes".into(),
        ));
    };
    let mut attrs_reader = info.inside(&attrs)?;
    let mut out = ScepAttributes::default();
    while !attrs_reader.is_empty() {
        let mut attr = attrs_reader.enter(TAG_SEQUENCE, "attribute is not a SEQUENCE")?;
        let kind = attr.expect(der::TAG_OID, "attribute has no type")?;
        let mut values = attr.enter(TAG_SET, "attribute has no values")?;
        let value: Tlv<'_> = values.any()?;
        let slot = match kind.raw {
            k if k == oid(OID_MESSAGE_TYPE).as_slice() => &mut out.message_type,
            k if k == oid(OID_PKI_STATUS).as_slice() => &mut out.pki_status,
            k if k == oid(OID_FAIL_INFO).as_slice() => &mut out.fail_info,
            k if k == oid(OID_SENDER_NONCE).as_slice() => &mut out.sender_nonce,
            k if k == oid(OID_RECIPIENT_NONCE).as_slice() => &mut out.recipient_nonce,
            k if k == oid(OID_TRANSACTION_ID).as_slice() => &mut out.transaction_id,
            _ => continue,
        };
        *slot = Some(value.content.to_vec());
    }
    Ok(out)
}

/// One signed attribute: SEQUENCE { type, SET { value } }.
fn attribute(arcs: &[u64], value: Vec<u8>) -> Vec<u8> {
    seq(TAG_SEQUENCE, &[&oid(arcs), &set_of(vec![value])])
}

/// The SCEP attributes of a message, in the order they are encoded (DER sorts them anyway).
pub(crate) fn scep_attributes(
    message_type: MessageType,
    transaction_id: &[u8],
    sender_nonce: &[u8],
    recipient_nonce: Option<&[u8]>,
    status: Option<(PkiStatus, Option<FailInfo>)>,
) -> Vec<Vec<u8>> {
    let printable = |s: &[u8]| tlv(TAG_PRINTABLE_STRING, s);
    let mut attrs = vec![
        attribute(OID_MESSAGE_TYPE, printable(message_type.code().as_bytes())),
        attribute(OID_TRANSACTION_ID, printable(transaction_id)),
        attribute(OID_SENDER_NONCE, tlv(TAG_OCTET_STRING, sender_nonce)),
    ];
    if let Some(nonce) = recipient_nonce {
        attrs.push(attribute(OID_RECIPIENT_NONCE, tlv(TAG_OCTET_STRING, nonce)));
    }
    if let Some((status, fail)) = status {
        let code = match status {
            PkiStatus::Success => "0",
            PkiStatus::Failure => "2",
            PkiStatus::Pending => "3",
        };
        attrs.push(attribute(OID_PKI_STATUS, printable(code.as_bytes())));
        if let Some(fail) = fail {
            attrs.push(attribute(OID_FAIL_INFO, printable(fail.code().as_bytes())));
        }
    }
    attrs
}

/// A DER SignedData ContentInfo over `content` (encapsulated as id-data), one signer (SHA-256 with RSA or
/// ECDSA), `attrs` plus contentType and messageDigest as signed attributes, the signer certificate embedded.
pub(crate) fn signed_data(
    content: &[u8],
    signer: &X509Ref,
    key: &PKeyRef<Private>,
    mut attrs: Vec<Vec<u8>>,
) -> Result<Vec<u8>, IdentityError> {
    let digest = hash(MessageDigest::sha256(), content).map_err(crypto("digesting content"))?;
    attrs.push(attribute(OID_CONTENT_TYPE, oid(OID_DATA)));
    attrs.push(attribute(
        OID_MESSAGE_DIGEST,
        tlv(TAG_OCTET_STRING, &digest),
    ));
    let attr_set = set_of(attrs);
    let mut signer_tool =
        Signer::new(MessageDigest::sha256(), key).map_err(crypto("signing SCEP message"))?;
    signer_tool
        .update(&attr_set)
        .map_err(crypto("signing SCEP message"))?;
    let signature = signer_tool
        .sign_to_vec()
        .map_err(crypto("signing SCEP message"))?;
    let mut signed_attrs = attr_set;
    signed_attrs[0] = TAG_CONTEXT_0;

    let issuer = signer
        .issuer_name()
        .to_der()
        .map_err(crypto("encoding signer issuer"))?;
    let serial = signer
        .serial_number()
        .to_bn()
        .map_err(crypto("encoding signer serial"))?
        .to_vec();
    let sig_alg = if key.id() == openssl::pkey::Id::EC {
        seq(TAG_SEQUENCE, &[&oid(&[1, 2, 840, 10045, 4, 3, 2])])
    } else {
        algorithm(OID_RSA_ENCRYPTION)
    };
    let signer_info = seq(
        TAG_SEQUENCE,
        &[
            &small_integer(1),
            &seq(TAG_SEQUENCE, &[&issuer, &der::unsigned_integer(&serial)]),
            &algorithm(OID_SHA256),
            &signed_attrs,
            &sig_alg,
            &tlv(TAG_OCTET_STRING, &signature),
        ],
    );
    let cert_der = signer
        .to_der()
        .map_err(crypto("encoding signer certificate"))?;
    let signed = seq(
        TAG_SEQUENCE,
        &[
            &small_integer(1),
            &set_of(vec![algorithm(OID_SHA256)]),
            &seq(
                TAG_SEQUENCE,
                &[
                    &oid(OID_DATA),
                    &tlv(TAG_CONTEXT_0, &tlv(TAG_OCTET_STRING, content)),
                ],
            ),
            &tlv(TAG_CONTEXT_0, &cert_der),
            &set_of(vec![signer_info]),
        ],
    );
    Ok(content_info_signed(&signed))
}

/// A certs-only ("degenerate") SignedData holding `certs_der` in order.
pub(crate) fn degenerate_certs(certs_der: &[Vec<u8>]) -> Vec<u8> {
    let signed = seq(
        TAG_SEQUENCE,
        &[
            &small_integer(1),
            &tlv(TAG_SET, &[]),
            &seq(TAG_SEQUENCE, &[&oid(OID_DATA)]),
            &tlv(TAG_CONTEXT_0, &certs_der.concat()),
            &tlv(TAG_SET, &[]),
        ],
    );
    content_info_signed(&signed)
}

fn content_info_signed(signed: &[u8]) -> Vec<u8> {
    seq(
        TAG_SEQUENCE,
        &[&oid(OID_SIGNED_DATA), &tlv(TAG_CONTEXT_0, signed)],
    )
}
