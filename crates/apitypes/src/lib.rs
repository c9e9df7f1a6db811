//! The admin API's request and answer bodies as Rust types, shared by the server (which serializes them and
//! derives its OpenAPI schemas from them with `utoipa`), the CLI (which reads answers into them) and the tests.
//!
//! Field names and JSON shapes are the API's contract: every answer field is always present (null when
//! unknown), and the server's OpenAPI document marks them all required and closes every answer object. Types
//! here hold metadata only: none has a field for a Bootstrap Token or an API key's hash. Request bodies
//! (`New…`, `…Change`, …) are what the server's handlers deserialize, so their schemas cannot drift from the
//! parser; a secret a request carries (a password, a private key) is a [`SecretString`], which never
//! serializes and whose `Debug` is redacted.

mod actions;
mod devices;
mod edge;
mod enroll;
mod fleet;
mod groups;
mod nanomdm;
mod push_cert;
mod secret;

pub use actions::*;
pub use devices::*;
pub use edge::*;
pub use enroll::*;
pub use fleet::*;
pub use groups::*;
pub use nanomdm::*;
pub use push_cert::*;
pub use secret::SecretString;

pub use utoipa;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A closed set of strings as a Rust enum: serde and the schema use the strings, `as_str` gives them back.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $variant),+
        }

        impl $name {
            /// The string on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Written out rather than derived: the derive does not see a `rename` built by a macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let object = utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($s),+]))
                    .build();
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object))
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}
pub(crate) use str_enum;

/// Every refusal and failure: `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorAnswer {
    /// What went wrong and what to do.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_their_wire_strings() {
        assert_eq!(
            serde_json::to_value(EnrollmentType::AutomatedDeviceEnrollment).unwrap(),
            "automated_device_enrollment"
        );
        assert_eq!(TokenLabel::NotConfigured.as_str(), "Not configured");
        let o: Outcome = serde_json::from_value("refused".into()).unwrap();
        assert_eq!(o, Outcome::Refused);
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(TokenLabel::schema()).unwrap();
        assert_eq!(
            schema,
            serde_json::json!({"type": "string", "enum": ["NA", "Not configured", "Configured"]})
        );
        // A struct refers to the enum by name and carries its schema along.
        use utoipa::ToSchema;
        let mut deps = Vec::new();
        Event::schemas(&mut deps);
        assert!(deps.iter().any(|(name, _)| name == "Outcome"));
        let event = serde_json::to_value(Event::schema()).unwrap();
        assert_eq!(
            event["properties"]["outcome"]["$ref"],
            "#/components/schemas/Outcome"
        );
    }
}
