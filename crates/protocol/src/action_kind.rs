//! The kinds of remote action an admin can queue for the Mac agent: one enum shared by the server (which
//! validates and queues them), the CLI and the agent (which performs them). Part of the agent wire format.
//!
//! Guarantees: [`ActionKind::as_str`] is exactly the text on the wire, in the database and in the API (pinned by
//! a test below); parsing is its exact inverse. The wire keeps the kind as text
//! ([`crate::agent_profile::AgentActionWire::kind`]) so an older agent can answer "unsupported" to a kind it
//! does not know instead of failing the whole poll.

use std::fmt;
use std::str::FromStr;

/// Whether an action kind carries a name and its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    No,
    /// Both or neither (troubleshoot runs `profiles validate` only when given an admin).
    Optional,
    Yes,
}

macro_rules! action_kinds {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// A remote action for a Mac's agent.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ActionKind {
            $($(#[$doc])* $variant,)*
        }

        impl ActionKind {
            /// Every kind, in the order help texts list them.
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$variant,)*];
            /// Every kind's text, in the same order (for schemas and help).
            pub const NAMES: &'static [&'static str] = &[$($text,)*];

            /// The wire and stored text, e.g. `"grant_secure_token"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ActionKind::$variant => $text,)*
                }
            }

            /// The kind whose [`as_str`](Self::as_str) is exactly `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(ActionKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

action_kinds! {
    GrantSecureToken => "grant_secure_token",
    CreateUser => "create_user",
    SecureTokenOff => "secure_token_off",
    /// `admin` is the current token holder, `user` the one who gets the token.
    TransferSecureToken => "transfer_secure_token",
    ValidateBootstrapToken => "validate_bootstrap_token",
    RemoveBootstrapToken => "remove_bootstrap_token",
    ReescrowBootstrapToken => "reescrow_bootstrap_token",
    Troubleshoot => "troubleshoot",
    /// `user` is whose password changes and `user_password` its NEW password; `admin` authorises it.
    ResetPassword => "reset_password",
}

impl ActionKind {
    /// What the kind needs: (user + user_password, admin + admin_password).
    pub fn needs(self) -> (Needed, Needed) {
        match self {
            ActionKind::GrantSecureToken
            | ActionKind::CreateUser
            | ActionKind::SecureTokenOff
            | ActionKind::TransferSecureToken
            | ActionKind::ResetPassword => (Needed::Yes, Needed::Yes),
            ActionKind::ValidateBootstrapToken
            | ActionKind::RemoveBootstrapToken
            | ActionKind::ReescrowBootstrapToken => (Needed::No, Needed::Yes),
            ActionKind::Troubleshoot => (Needed::No, Needed::Optional),
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of [`ActionKind::ALL`]; says which ones are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action kind {0:?}; use one of {names}", names = ActionKind::NAMES.join(", "))]
pub struct UnknownActionKind(pub String);

impl FromStr for ActionKind {
    type Err = UnknownActionKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionKind::parse(s).ok_or_else(|| UnknownActionKind(s.to_string()))
    }
}

/// A stored or received kind (text) compares equal to the variant it spells.
impl PartialEq<ActionKind> for String {
    fn eq(&self, other: &ActionKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<ActionKind> for str {
    fn eq(&self, other: &ActionKind) -> bool {
        self == other.as_str()
    }
}

impl serde::Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ActionKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts on the wire, in the database and the API, written out so a renamed variant cannot change them.
    const PINNED: &[(ActionKind, &str)] = &[
        (ActionKind::GrantSecureToken, "grant_secure_token"),
        (ActionKind::CreateUser, "create_user"),
        (ActionKind::SecureTokenOff, "secure_token_off"),
        (ActionKind::TransferSecureToken, "transfer_secure_token"),
        (
            ActionKind::ValidateBootstrapToken,
            "validate_bootstrap_token",
        ),
        (ActionKind::RemoveBootstrapToken, "remove_bootstrap_token"),
        (
            ActionKind::ReescrowBootstrapToken,
            "reescrow_bootstrap_token",
        ),
        (ActionKind::Troubleshoot, "troubleshoot"),
        (ActionKind::ResetPassword, "reset_password"),
    ];

    #[test]
    fn every_kind_keeps_its_text_and_texts_are_unique() {
        assert_eq!(PINNED.len(), ActionKind::ALL.len());
        assert_eq!(
            ActionKind::NAMES,
            PINNED.iter().map(|p| p.1).collect::<Vec<_>>()
        );
        let mut seen = std::collections::HashSet::new();
        for (kind, text) in PINNED {
            assert_eq!(kind.as_str(), *text);
            assert!(seen.insert(*text), "{text} twice");
            assert_eq!(text.parse::<ActionKind>(), Ok(*kind));
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<ActionKind>(&format!("\"{text}\"")).unwrap(),
                *kind
            );
        }
    }

    #[test]
    fn an_unknown_kind_names_the_known_ones() {
        assert_eq!(
            "format_disk".parse::<ActionKind>().unwrap_err().to_string(),
            "unknown action kind \"format_disk\"; use one of grant_secure_token, create_user, secure_token_off, \
             transfer_secure_token, validate_bootstrap_token, remove_bootstrap_token, reescrow_bootstrap_token, \
             troubleshoot, reset_password"
        );
        assert!(serde_json::from_str::<ActionKind>("\"Troubleshoot\"").is_err());
    }

    #[test]
    fn needs_are_as_documented() {
        assert_eq!(
            ActionKind::ResetPassword.needs(),
            (Needed::Yes, Needed::Yes)
        );
        assert_eq!(
            ActionKind::RemoveBootstrapToken.needs(),
            (Needed::No, Needed::Yes)
        );
        assert_eq!(
            ActionKind::Troubleshoot.needs(),
            (Needed::No, Needed::Optional)
        );
    }
}
