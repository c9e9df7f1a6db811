//! Configuration profiles (`.mobileconfig`): the enrollment profile escrowd serves, and reading one back (the
//! simulator does what a Mac does with it).
//!
//! A [`Profile`] is a top-level `Configuration` payload wrapping any number of [`Payload`]s; the SCEP
//! ([`ScepPayload`]) and MDM ([`MdmPayload`]) payloads build into a `Payload`, and any other payload (an agent
//! configuration, say) can be added as a plain `Payload` with its own content dictionary. UUIDs come from the
//! caller (this crate has no randomness); identifiers should be stable so a re-installed profile replaces the
//! old one.
//!
//! Guarantees: the SCEP challenge travels as a `vault::Secret` and no type here prints it in `Debug`;
//! [`EnrollmentProfile::parse`] guards its input like every device-facing parser and refuses a profile without
//! exactly one SCEP and one MDM payload or whose `IdentityCertificateUUID` names no SCEP payload.

use std::fmt;

use plist::{Dictionary, Value};
use vault::Secret;

use crate::ProtocolError;
use crate::guard::{DEFAULT_MAX_DEPTH, check_xml_plist};

pub const SCEP_PAYLOAD_TYPE: &str = "com.apple.security.scep";
pub const MDM_PAYLOAD_TYPE: &str = "com.apple.mdm";
pub const CAP_PER_USER_CONNECTIONS: &str = "com.apple.mdm.per-user-connections";
pub const CAP_BOOTSTRAP_TOKEN: &str = "com.apple.mdm.bootstraptoken";
/// Every access right Apple defines (1 | 2 | 4 | … | 4096): the MDM server may query and manage everything.
pub const ALL_ACCESS_RIGHTS: u64 = 8191;
/// Largest profile [`EnrollmentProfile::parse`] reads.
pub const MAX_PROFILE_BYTES: usize = 256 * 1024;

/// One payload inside a profile.
#[derive(Clone)]
pub struct Payload {
    pub payload_type: String,
    pub identifier: String,
    pub uuid: String,
    pub display_name: String,
    /// Payload-specific keys (PayloadType, PayloadIdentifier, PayloadUUID, PayloadVersion and
    /// PayloadDisplayName are added from the fields above).
    pub content: Dictionary,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The content may hold a challenge: only name its keys.
        f.debug_struct("Payload")
            .field("payload_type", &self.payload_type)
            .field("identifier", &self.identifier)
            .field("uuid", &self.uuid)
            .field("keys", &self.content.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Payload {
    fn to_dict(&self) -> Dictionary {
        let mut d = self.content.clone();
        d.insert("PayloadType".into(), self.payload_type.clone().into());
        d.insert("PayloadIdentifier".into(), self.identifier.clone().into());
        d.insert("PayloadUUID".into(), self.uuid.clone().into());
        d.insert("PayloadVersion".into(), Value::Integer(1.into()));
        d.insert(
            "PayloadDisplayName".into(),
            self.display_name.clone().into(),
        );
        d
    }
}

/// The top-level `Configuration` payload.
#[derive(Debug, Clone)]
pub struct Profile {
    pub identifier: String,
    pub uuid: String,
    pub display_name: String,
    pub organization: String,
    pub description: String,
    pub payloads: Vec<Payload>,
}

impl Profile {
    /// The profile as an XML plist (unsigned).
    pub fn to_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut d = Dictionary::new();
        d.insert("PayloadType".into(), "Configuration".into());
        d.insert("PayloadVersion".into(), Value::Integer(1.into()));
        d.insert("PayloadIdentifier".into(), self.identifier.clone().into());
        d.insert("PayloadUUID".into(), self.uuid.clone().into());
        d.insert(
            "PayloadDisplayName".into(),
            self.display_name.clone().into(),
        );
        d.insert(
            "PayloadOrganization".into(),
            self.organization.clone().into(),
        );
        d.insert("PayloadDescription".into(), self.description.clone().into());
        d.insert("PayloadScope".into(), "System".into());
        d.insert(
            "PayloadContent".into(),
            Value::Array(
                self.payloads
                    .iter()
                    .map(|p| Value::Dictionary(p.to_dict()))
                    .collect(),
            ),
        );
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, &Value::Dictionary(d))
            .map_err(|e| ProtocolError::Encode(e.to_string()))?;
        Ok(out)
    }
}

/// A `com.apple.security.scep` payload: RSA key of `key_size` bits, Key Usage 5 (signing + encryption).
#[derive(Debug, Clone)]
pub struct ScepPayload {
    pub identifier: String,
    pub uuid: String,
    pub url: String,
    pub challenge: Secret<String>,
    /// The CA-IDENT (`Name`).
    pub name: String,
    /// Relative distinguished names, e.g. `[("CN", "escrowd device"), ("O", "escrowd")]`.
    pub subject: Vec<(String, String)>,
    pub key_size: u64,
}

impl ScepPayload {
    pub fn into_payload(self) -> Payload {
        let mut c = Dictionary::new();
        c.insert("URL".into(), self.url.into());
        c.insert("Challenge".into(), self.challenge.expose().clone().into());
        c.insert("Name".into(), self.name.into());
        c.insert("Keysize".into(), Value::Integer(self.key_size.into()));
        c.insert("Key Type".into(), "RSA".into());
        c.insert("Key Usage".into(), Value::Integer(5.into()));
        let subject = self
            .subject
            .into_iter()
            .map(|(k, v)| {
                Value::Array(vec![Value::Array(vec![Value::String(k), Value::String(v)])])
            })
            .collect();
        c.insert("Subject".into(), Value::Array(subject));
        let mut outer = Dictionary::new();
        outer.insert("PayloadContent".into(), Value::Dictionary(c));
        Payload {
            payload_type: SCEP_PAYLOAD_TYPE.into(),
            identifier: self.identifier,
            uuid: self.uuid,
            display_name: "Device identity (SCEP)".into(),
            content: outer,
        }
    }
}

/// A `com.apple.mdm` payload.
#[derive(Debug, Clone)]
pub struct MdmPayload {
    pub identifier: String,
    pub uuid: String,
    pub server_url: String,
    pub checkin_url: String,
    pub topic: String,
    /// The SCEP payload's PayloadUUID.
    pub identity_certificate_uuid: String,
    /// Adds `com.apple.mdm.bootstraptoken` to ServerCapabilities.
    pub bootstrap_token: bool,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
    pub access_rights: u64,
}

impl MdmPayload {
    pub fn into_payload(self) -> Payload {
        let mut caps = vec![Value::String(CAP_PER_USER_CONNECTIONS.into())];
        if self.bootstrap_token {
            caps.push(Value::String(CAP_BOOTSTRAP_TOKEN.into()));
        }
        let mut c = Dictionary::new();
        c.insert("ServerURL".into(), self.server_url.into());
        c.insert("CheckInURL".into(), self.checkin_url.into());
        c.insert("Topic".into(), self.topic.into());
        c.insert(
            "IdentityCertificateUUID".into(),
            self.identity_certificate_uuid.into(),
        );
        c.insert("ServerCapabilities".into(), Value::Array(caps));
        c.insert("SignMessage".into(), Value::Boolean(true));
        c.insert("CheckOutWhenRemoved".into(), Value::Boolean(true));
        c.insert(
            "AccessRights".into(),
            Value::Integer(self.access_rights.into()),
        );
        c.insert(
            "PromptUserToAllowBootstrapTokenForAuthentication".into(),
            Value::Boolean(self.prompt_user_to_allow_bootstrap_token_for_authentication),
        );
        Payload {
            payload_type: MDM_PAYLOAD_TYPE.into(),
            identifier: self.identifier,
            uuid: self.uuid,
            display_name: "Mobile Device Management".into(),
            content: c,
        }
    }
}

/// What a Mac reads from an enrollment profile.
#[derive(Debug, Clone)]
pub struct EnrollmentProfile {
    pub identifier: String,
    pub scep: ScepSettings,
    pub mdm: MdmSettings,
}

#[derive(Debug, Clone)]
pub struct ScepSettings {
    pub uuid: String,
    pub url: String,
    pub challenge: Option<Secret<String>>,
    pub subject: Vec<(String, String)>,
    pub key_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmSettings {
    pub server_url: String,
    pub checkin_url: Option<String>,
    pub topic: String,
    pub identity_certificate_uuid: String,
    pub server_capabilities: Vec<String>,
    pub sign_message: bool,
    pub check_out_when_removed: bool,
    pub access_rights: u64,
    pub prompt_user_to_allow_bootstrap_token_for_authentication: bool,
}

impl MdmSettings {
    pub fn has_capability(&self, cap: &str) -> bool {
        self.server_capabilities.iter().any(|c| c == cap)
    }
}

fn malformed(what: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(what.into())
}

fn string(d: &Dictionary, key: &str) -> Result<String, ProtocolError> {
    d.get(key)
        .and_then(Value::as_string)
        .map(str::to_string)
        .ok_or_else(|| malformed(format!("{key} is missing or not a string")))
}

fn uint(d: &Dictionary, key: &str) -> Option<u64> {
    d.get(key).and_then(Value::as_unsigned_integer)
}

fn boolean(d: &Dictionary, key: &str) -> bool {
    d.get(key).and_then(Value::as_boolean).unwrap_or(false)
}

impl EnrollmentProfile {
    /// Read an (unsigned, or already verified and unwrapped) enrollment profile.
    pub fn parse(xml: &[u8]) -> Result<EnrollmentProfile, ProtocolError> {
        check_xml_plist(xml, DEFAULT_MAX_DEPTH, MAX_PROFILE_BYTES)?;
        let value = Value::from_reader_xml(xml)
            .map_err(|e| malformed(format!("profile is not a plist: {e}")))?;
        let top = value
            .as_dictionary()
            .ok_or_else(|| malformed("profile is not a dictionary"))?;
        if top.get("PayloadType").and_then(Value::as_string) != Some("Configuration") {
            return Err(malformed("PayloadType is not Configuration"));
        }
        let payloads = top
            .get("PayloadContent")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("PayloadContent is missing or not an array"))?;
        let of_type = |t: &str| -> Vec<&Dictionary> {
            payloads
                .iter()
                .filter_map(Value::as_dictionary)
                .filter(|d| d.get("PayloadType").and_then(Value::as_string) == Some(t))
                .collect()
        };
        let (scep, mdm) = match (
            &of_type(SCEP_PAYLOAD_TYPE)[..],
            &of_type(MDM_PAYLOAD_TYPE)[..],
        ) {
            ([scep], [mdm]) => (*scep, *mdm),
            _ => {
                return Err(malformed(
                    "an enrollment profile needs exactly one SCEP and one MDM payload",
                ));
            }
        };
        let sc = scep
            .get("PayloadContent")
            .and_then(Value::as_dictionary)
            .ok_or_else(|| malformed("SCEP PayloadContent is missing"))?;
        let mut subject = Vec::new();
        for rdn in sc
            .get("Subject")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for pair in rdn.as_array().into_iter().flatten() {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => {
                        subject.push((k.clone(), v.clone()))
                    }
                    _ => return Err(malformed("SCEP Subject is not [[[type, value]]]")),
                }
            }
        }
        let scep_settings = ScepSettings {
            uuid: string(scep, "PayloadUUID")?,
            url: string(sc, "URL")?,
            challenge: sc
                .get("Challenge")
                .and_then(Value::as_string)
                .map(|c| Secret::new(c.to_string())),
            subject,
            key_size: uint(sc, "Keysize").unwrap_or(1024),
        };
        let mdm_settings = MdmSettings {
            server_url: string(mdm, "ServerURL")?,
            checkin_url: mdm
                .get("CheckInURL")
                .and_then(Value::as_string)
                .map(str::to_string),
            topic: string(mdm, "Topic")?,
            identity_certificate_uuid: string(mdm, "IdentityCertificateUUID")?,
            server_capabilities: mdm
                .get("ServerCapabilities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_string)
                .map(str::to_string)
                .collect(),
            sign_message: boolean(mdm, "SignMessage"),
            check_out_when_removed: boolean(mdm, "CheckOutWhenRemoved"),
            access_rights: uint(mdm, "AccessRights")
                .ok_or_else(|| malformed("AccessRights is missing"))?,
            prompt_user_to_allow_bootstrap_token_for_authentication: boolean(
                mdm,
                "PromptUserToAllowBootstrapTokenForAuthentication",
            ),
        };
        if mdm_settings.identity_certificate_uuid != scep_settings.uuid {
            return Err(malformed(
                "IdentityCertificateUUID does not name the SCEP payload",
            ));
        }
        Ok(EnrollmentProfile {
            identifier: string(top, "PayloadIdentifier")?,
            scep: scep_settings,
            mdm: mdm_settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(bootstrap: bool) -> Profile {
        let scep = ScepPayload {
            identifier: "com.example.escrowd.enroll.scep".into(),
            uuid: "11111111-1111-1111-1111-111111111111".into(),
            url: "https://mdm.example.com/scep".into(),
            challenge: Secret::new("one-time-challenge-xyz".into()),
            name: "escrowd".into(),
            subject: vec![
                ("CN".into(), "escrowd device".into()),
                ("O".into(), "escrowd".into()),
            ],
            key_size: 2048,
        };
        let mdm = MdmPayload {
            identifier: "com.example.escrowd.enroll.mdm".into(),
            uuid: "22222222-2222-2222-2222-222222222222".into(),
            server_url: "https://mdm.example.com/mdm/connect".into(),
            checkin_url: "https://mdm.example.com/mdm/checkin".into(),
            topic: "com.apple.mgmt.External.abc".into(),
            identity_certificate_uuid: "11111111-1111-1111-1111-111111111111".into(),
            bootstrap_token: bootstrap,
            prompt_user_to_allow_bootstrap_token_for_authentication: true,
            access_rights: ALL_ACCESS_RIGHTS,
        };
        Profile {
            identifier: "com.example.escrowd.enroll".into(),
            uuid: "33333333-3333-3333-3333-333333333333".into(),
            display_name: "escrowd enrollment".into(),
            organization: "escrowd".into(),
            description: "Enrolls this Mac".into(),
            payloads: vec![scep.into_payload(), mdm.into_payload()],
        }
    }

    #[test]
    fn an_enrollment_profile_round_trips() {
        let xml = profile(true).to_xml().unwrap();
        let p = EnrollmentProfile::parse(&xml).unwrap();
        assert_eq!(p.identifier, "com.example.escrowd.enroll");
        assert_eq!(p.scep.url, "https://mdm.example.com/scep");
        assert_eq!(p.scep.challenge.unwrap().expose(), "one-time-challenge-xyz");
        assert_eq!(p.scep.key_size, 2048);
        assert_eq!(
            p.scep.subject[0],
            ("CN".to_string(), "escrowd device".to_string())
        );
        assert_eq!(
            p.mdm,
            MdmSettings {
                server_url: "https://mdm.example.com/mdm/connect".into(),
                checkin_url: Some("https://mdm.example.com/mdm/checkin".into()),
                topic: "com.apple.mgmt.External.abc".into(),
                identity_certificate_uuid: "11111111-1111-1111-1111-111111111111".into(),
                server_capabilities: vec![
                    CAP_PER_USER_CONNECTIONS.into(),
                    CAP_BOOTSTRAP_TOKEN.into()
                ],
                sign_message: true,
                check_out_when_removed: true,
                access_rights: 8191,
                prompt_user_to_allow_bootstrap_token_for_authentication: true,
            }
        );
        let text = String::from_utf8(xml).unwrap();
        for key in [
            "<key>Key Type</key>",
            "<key>Key Usage</key>",
            "<integer>5</integer>",
            "<key>PayloadScope</key>",
        ] {
            assert!(text.contains(key), "{key}");
        }
    }

    #[test]
    fn bootstrap_capability_only_when_asked() {
        let p = EnrollmentProfile::parse(&profile(false).to_xml().unwrap()).unwrap();
        assert!(!p.mdm.has_capability(CAP_BOOTSTRAP_TOKEN));
        assert!(p.mdm.has_capability(CAP_PER_USER_CONNECTIONS));
    }

    #[test]
    fn debug_never_shows_the_challenge() {
        let p = profile(true);
        let shown = format!("{p:?}");
        assert!(!shown.contains("one-time-challenge-xyz"), "{shown}");
        let parsed = EnrollmentProfile::parse(&p.to_xml().unwrap()).unwrap();
        assert!(!format!("{parsed:?}").contains("one-time-challenge-xyz"));
    }

    #[test]
    fn hostile_or_incomplete_profiles_are_refused() {
        let mut no_mdm = profile(true);
        no_mdm.payloads.pop();
        let mut two_scep = profile(true);
        two_scep.payloads.push(two_scep.payloads[0].clone());
        let mut wrong_uuid = profile(true);
        wrong_uuid.payloads[1]
            .content
            .insert("IdentityCertificateUUID".into(), "other".into());
        for bad in [no_mdm, two_scep, wrong_uuid] {
            assert!(EnrollmentProfile::parse(&bad.to_xml().unwrap()).is_err());
        }
        let deep = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(500),
            "</array>".repeat(500)
        );
        for raw in [
            &b""[..],
            b"bplist00",
            b"<plist><string>x</string></plist>",
            deep.as_bytes(),
            &vec![b' '; MAX_PROFILE_BYTES + 1],
        ] {
            assert!(EnrollmentProfile::parse(raw).is_err());
        }
    }
}
