//! What instances sharing one database tell each other (issue 14): [`Signal`]s, sent with
//! [`crate::Cluster::notify_instances`] and heard through a [`SignalListener`].

/// Something another instance must act on at once, because it keeps state in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Actions were queued for this device's agent: wake its long poll, wherever it waits.
    AgentActions { device_id: String },
    /// The push certificate changed: rebuild the push provider from the store.
    PushCertificate,
    /// Signals may have been missed (the listening connection was lost and came back): re-read everything
    /// kept in memory. Never sent; a listener yields it.
    Resync,
}

/// A signal and the instance that sent it (the `origin` the sender passed; empty for [`Signal::Resync`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub origin: String,
    pub signal: Signal,
}

impl Signal {
    /// The text sent on the wire after the origin; None for [`Signal::Resync`] (never sent).
    pub(crate) fn encode(&self, origin: &str) -> Option<String> {
        match self {
            Signal::AgentActions { device_id } => Some(format!("{origin} agent {device_id}")),
            Signal::PushCertificate => Some(format!("{origin} push_cert")),
            Signal::Resync => None,
        }
    }

    /// Read a payload written by [`Signal::encode`]; None for anything else (a newer version's signal).
    pub(crate) fn decode(payload: &str) -> Option<Notice> {
        let (origin, rest) = payload.split_once(' ')?;
        let signal = match rest.split_once(' ') {
            Some(("agent", device_id)) if !device_id.is_empty() => Signal::AgentActions {
                device_id: device_id.to_string(),
            },
            None if rest == "push_cert" => Signal::PushCertificate,
            _ => return None,
        };
        Some(Notice {
            origin: origin.to_string(),
            signal,
        })
    }
}

/// Hears the signals of every instance on the same database (and schema). Only PostgreSQL has one
/// (`LISTEN`); see [`crate::Cluster::listen_instances`].
pub struct SignalListener {
    pub(crate) inner: sqlx::postgres::PgListener,
}

impl std::fmt::Debug for SignalListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalListener").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_unknown_payloads_are_ignored() {
        for s in [
            Signal::AgentActions {
                device_id: "UDID-1 with space".into(),
            },
            Signal::PushCertificate,
        ] {
            let wire = s.encode("inst-a").unwrap();
            assert_eq!(
                Signal::decode(&wire),
                Some(Notice {
                    origin: "inst-a".into(),
                    signal: s
                })
            );
        }
        assert_eq!(Signal::Resync.encode("x"), None);
        for bad in [
            "",
            "inst",
            "inst agent",
            "inst agent ",
            "inst reload_everything",
        ] {
            assert_eq!(Signal::decode(bad), None, "{bad:?}");
        }
    }
}
