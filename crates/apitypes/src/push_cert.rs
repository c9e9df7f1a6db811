//! The APNs push certificate.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Millis, SecretString};

/// `GET|PUT /api/v1/push-certificate`: what the certificate says (never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushCertificate {
    /// The APNs topic (the subject's UID).
    pub topic: String,
    pub subject: String,
    pub serial: String,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    pub not_after: Millis,
    pub days_left: i64,
    /// Expiring or expired.
    pub warning: Option<String>,
}

/// The body of `PUT /api/v1/push-certificate`: one of [`PushCertificatePem`] or [`PushCertificatePkcs12`].
/// Read field by field (no other field is accepted) so that a mix of both forms, or neither, gets a plain
/// answer; [`PushCertificateUpload::into_form`] tells which form it is. Its secrets never serialize.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushCertificateUpload {
    pub certificate_pem: Option<String>,
    #[serde(default)]
    pub private_key_pem: Option<SecretString>,
    #[serde(default)]
    pub pkcs12_base64: Option<SecretString>,
    #[serde(default)]
    pub password: Option<SecretString>,
}

/// A push certificate as a PEM pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushCertificatePem {
    pub certificate_pem: String,
    /// Never stored in the clear, never shown.
    #[schema(value_type = String)]
    pub private_key_pem: SecretString,
}

/// A push certificate as a PKCS#12 file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushCertificatePkcs12 {
    /// The .p12 file, base64 (standard alphabet).
    #[schema(value_type = String)]
    pub pkcs12_base64: SecretString,
    /// Omit (or null) for none.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

/// The form of a push-certificate upload.
#[derive(Debug, Clone)]
pub enum PushCertificateForm {
    Pem(PushCertificatePem),
    Pkcs12(PushCertificatePkcs12),
}

impl PushCertificateUpload {
    /// The form this body is, or None when it holds both forms, neither, or half of the PEM pair.
    pub fn into_form(self) -> Option<PushCertificateForm> {
        match (
            self.certificate_pem,
            self.private_key_pem,
            self.pkcs12_base64,
            self.password,
        ) {
            (Some(certificate_pem), Some(private_key_pem), None, None) => {
                Some(PushCertificateForm::Pem(PushCertificatePem {
                    certificate_pem,
                    private_key_pem,
                }))
            }
            (None, None, Some(pkcs12_base64), password) => {
                Some(PushCertificateForm::Pkcs12(PushCertificatePkcs12 {
                    pkcs12_base64,
                    password,
                }))
            }
            _ => None,
        }
    }
}

// Written out: the body is parsed as one flat object (see above), but documented as exactly one of its two
// forms, each derived from the struct `into_form` builds.
impl utoipa::PartialSchema for PushCertificateUpload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{OneOfBuilder, Ref};
        OneOfBuilder::new()
            .item(Ref::from_schema_name(PushCertificatePem::name()))
            .item(Ref::from_schema_name(PushCertificatePkcs12::name()))
            .description(Some(
                "A PEM pair or a PKCS#12 file. Checked (key matches, in date, MDM topic, usable for TLS) \
                 before it is stored.",
            ))
            .into()
    }
}

impl ToSchema for PushCertificateUpload {
    fn schemas(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        out.push((
            PushCertificatePem::name().into_owned(),
            PushCertificatePem::schema(),
        ));
        PushCertificatePem::schemas(out);
        out.push((
            PushCertificatePkcs12::name().into_owned(),
            PushCertificatePkcs12::schema(),
        ));
        PushCertificatePkcs12::schemas(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(v: serde_json::Value) -> Option<PushCertificateForm> {
        serde_json::from_value::<PushCertificateUpload>(v)
            .unwrap()
            .into_form()
    }

    #[test]
    fn an_upload_is_exactly_one_form() {
        assert!(matches!(
            form(json!({"certificate_pem": "C", "private_key_pem": "K"})),
            Some(PushCertificateForm::Pem(p)) if p.private_key_pem.expose() == "K"
        ));
        assert!(matches!(
            form(json!({"pkcs12_base64": "AA==", "password": null})),
            Some(PushCertificateForm::Pkcs12(p)) if p.password.is_none()
        ));
        assert!(form(json!({"certificate_pem": "C"})).is_none());
        assert!(form(json!({})).is_none());
        assert!(
            form(json!({"certificate_pem": "C", "private_key_pem": "K", "pkcs12_base64": "AA=="}))
                .is_none()
        );
        assert!(
            serde_json::from_value::<PushCertificateUpload>(json!({"x": 1}))
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let shown = format!(
            "{:?}",
            form(json!({"pkcs12_base64": "P12SECRET", "password": "PWSECRET"}))
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn the_schema_is_one_of_the_two_forms() {
        use utoipa::PartialSchema;
        let s = serde_json::to_value(PushCertificateUpload::schema()).unwrap();
        assert_eq!(
            s["oneOf"],
            json!([
                {"$ref": "#/components/schemas/PushCertificatePem"},
                {"$ref": "#/components/schemas/PushCertificatePkcs12"}
            ])
        );
        let mut deps = Vec::new();
        PushCertificateUpload::schemas(&mut deps);
        let names: Vec<&str> = deps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["PushCertificatePem", "PushCertificatePkcs12"]);
    }
}
