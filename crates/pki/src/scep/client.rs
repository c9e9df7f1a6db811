//! The client half of SCEP (what a Mac does): build a PKCSReq or RenewalReq and read the CertRep. Used by the
//! test kit's virtual Macs and by tests; escrowd itself never enrolls anywhere.

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKeyRef, Private};
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Ref};

use super::der::{self, TAG_CONTEXT_0, TAG_SEQUENCE, TAG_UTF8_STRING, oid, seq, set_of, tlv};
use super::{
    FailInfo, MessageType, NONCE_LEN, OID_CHALLENGE_PASSWORD, PkiStatus, ScepError,
    read_scep_attributes, scep_attributes, signed_data,
};
use crate::IdentityError;
use crate::error::{crypto, openssl_reason};

/// A request ready to send, with what the reply must echo.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub message: Vec<u8>,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
}

/// A CertRep as the client reads it.
#[derive(Debug)]
pub struct CertRep {
    pub status: PkiStatus,
    pub fail_info: Option<FailInfo>,
    pub transaction_id: String,
    pub recipient_nonce: Option<Vec<u8>>,
    /// The issued certificate (SUCCESS only).
    pub certificate: Option<X509>,
}

/// A DER PKCS#10 request for `key` with subject CN=`common_name` and an optional challengePassword.
pub fn csr_der(
    key: &PKeyRef<Private>,
    common_name: &str,
    challenge: Option<&str>,
) -> Result<Vec<u8>, IdentityError> {
    let err = || crypto("building certificate request");
    let mut name = X509NameBuilder::new().map_err(err())?;
    name.append_entry_by_text("CN", common_name)
        .map_err(err())?;
    let name = name.build().to_der().map_err(err())?;
    let spki = key.public_key_to_der().map_err(err())?;
    let attrs = match challenge {
        Some(c) => seq(
            TAG_SEQUENCE,
            &[
                &oid(OID_CHALLENGE_PASSWORD),
                &set_of(vec![tlv(TAG_UTF8_STRING, c.as_bytes())]),
            ],
        ),
        None => Vec::new(),
    };
    let info = seq(
        TAG_SEQUENCE,
        &[
            &der::small_integer(0),
            &name,
            &spki,
            &tlv(TAG_CONTEXT_0, &attrs),
        ],
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(err())?;
    signer.update(&info).map_err(err())?;
    let signature = signer.sign_to_vec().map_err(err())?;
    let sig_alg = if key.id() == openssl::pkey::Id::EC {
        seq(TAG_SEQUENCE, &[&oid(&[1, 2, 840, 10045, 4, 3, 2])])
    } else {
        der::algorithm(&[1, 2, 840, 113549, 1, 1, 11])
    };
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    Ok(seq(TAG_SEQUENCE, &[&info, &sig_alg, &tlv(0x03, &bits)]))
}

/// A throwaway self-signed certificate for signing a first PKCSReq (RFC 8894 §2.3).
pub fn self_signed_signer(
    key: &PKeyRef<Private>,
    common_name: &str,
) -> Result<X509, IdentityError> {
    let err = || crypto("building SCEP signer certificate");
    let mut name = X509NameBuilder::new().map_err(err())?;
    name.append_entry_by_text("CN", common_name)
        .map_err(err())?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(err())?;
    b.set_version(2).map_err(err())?;
    b.set_subject_name(&name).map_err(err())?;
    b.set_issuer_name(&name).map_err(err())?;
    b.set_pubkey(key).map_err(err())?;
    let serial = openssl::bn::BigNum::from_u32(1)
        .and_then(|bn| bn.to_asn1_integer())
        .map_err(err())?;
    b.set_serial_number(&serial).map_err(err())?;
    let now = Asn1Time::days_from_now(0).map_err(err())?;
    let later = Asn1Time::days_from_now(1).map_err(err())?;
    b.set_not_before(&now).map_err(err())?;
    b.set_not_after(&later).map_err(err())?;
    b.sign(key, MessageDigest::sha256()).map_err(err())?;
    Ok(b.build())
}

/// A PKCSReq (or RenewalReq) carrying `csr_der`, encrypted to `ca` and signed by `signer`/`signer_key`.
pub fn pki_request(
    message_type: MessageType,
    csr_der: &[u8],
    signer: &X509Ref,
    signer_key: &PKeyRef<Private>,
    ca: &X509Ref,
) -> Result<ClientRequest, IdentityError> {
    let err = || crypto("building SCEP request");
    let mut recipients = Stack::<X509>::new().map_err(err())?;
    recipients.push(ca.to_owned()).map_err(err())?;
    let envelope = Pkcs7::encrypt(
        &recipients,
        csr_der,
        Cipher::aes_256_cbc(),
        Pkcs7Flags::BINARY,
    )
    .and_then(|p| p.to_der())
    .map_err(err())?;
    let mut nonce = vec![0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).map_err(err())?;
    let digest = openssl::hash::hash(MessageDigest::sha256(), csr_der).map_err(err())?;
    let transaction_id = hex::encode(digest);
    let attrs = scep_attributes(message_type, transaction_id.as_bytes(), &nonce, None, None);
    Ok(ClientRequest {
        message: signed_data(&envelope, signer, signer_key, attrs)?,
        transaction_id,
        sender_nonce: nonce,
    })
}

/// Verify a CertRep against the CA certificate and decrypt the issued certificate with the requester's key.
pub fn read_cert_rep(
    message: &[u8],
    ca: &X509Ref,
    recipient: &X509Ref,
    recipient_key: &PKeyRef<Private>,
) -> Result<CertRep, ScepError> {
    let attrs = read_scep_attributes(message)?;
    let p7 = Pkcs7::from_der(message)
        .map_err(|e| ScepError::Malformed(format!("not PKCS#7: {}", openssl_reason(&e))))?;
    let mut certs = Stack::<X509>::new().map_err(crypto("verifying CertRep"))?;
    certs
        .push(ca.to_owned())
        .map_err(crypto("verifying CertRep"))?;
    // NOINTERN: the signer must be the CA certificate we were given, not one the message brings along.
    // NOVERIFY: the CA is the trust anchor itself; its keyUsage is not an S/MIME signer's.
    let store = X509StoreBuilder::new()
        .map_err(crypto("verifying CertRep"))?
        .build();
    let mut content = Vec::new();
    p7.verify(
        &certs,
        &store,
        None,
        Some(&mut content),
        Pkcs7Flags::BINARY | Pkcs7Flags::NOINTERN | Pkcs7Flags::NOVERIFY,
    )
    .map_err(|e| {
        ScepError::Malformed(format!(
            "CertRep not signed by the CA: {}",
            openssl_reason(&e)
        ))
    })?;
    if attrs.message_type.as_deref() != Some(b"3") {
        return Err(ScepError::Malformed("reply is not a CertRep".into()));
    }
    let status = match attrs.pki_status.as_deref() {
        Some(b"0") => PkiStatus::Success,
        Some(b"2") => PkiStatus::Failure,
        Some(b"3") => PkiStatus::Pending,
        _ => {
            return Err(ScepError::Malformed(
                "CertRep has no valid pkiStatus".into(),
            ));
        }
    };
    let fail_info = attrs.fail_info.as_deref().and_then(FailInfo::from_code);
    let certificate = if status == PkiStatus::Success {
        let envelope = Pkcs7::from_der(&content)
            .map_err(|e| ScepError::Malformed(format!("envelope: {}", openssl_reason(&e))))?;
        let certs_only = envelope
            .decrypt(recipient_key, recipient, Pkcs7Flags::BINARY)
            .map_err(|e| ScepError::Malformed(format!("decrypt: {}", openssl_reason(&e))))?;
        let certs_only = Pkcs7::from_der(&certs_only)
            .map_err(|e| ScepError::Malformed(format!("certs-only: {}", openssl_reason(&e))))?;
        certs_only
            .signed()
            .and_then(|s| s.certificates())
            .and_then(|c| c.get(0))
            .map(|c| c.to_owned())
    } else {
        None
    };
    Ok(CertRep {
        status,
        fail_info,
        transaction_id: String::from_utf8_lossy(
            attrs.transaction_id.as_deref().unwrap_or_default(),
        )
        .into_owned(),
        recipient_nonce: attrs.recipient_nonce,
        certificate,
    })
}
