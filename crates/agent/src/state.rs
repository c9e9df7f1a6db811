//! The agent's state file: what `register` stores and `run` needs (server URL, ids, the Ed25519 signing key
//! and the X25519 HPKE key). Created 0600 in a 0700 directory, written atomically, refused when others can
//! read it; its Debug output shows no key.

use std::io::Write;
use std::path::Path;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vault::Secret;

use crate::client::ClientError;

/// The state file's JSON form (only ever built transiently, to write or read the file).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    server_url: String,
    device_id: String,
    agent_id: String,
    signing_key: String,
    hpke_key: String,
}

/// What `register` stores and `run` needs. Written 0600; Debug shows no key.
pub struct AgentState {
    pub server_url: String,
    pub device_id: String,
    pub agent_id: String,
    /// Base64 PKCS#8 Ed25519 key.
    pub(crate) signing_key: Secret<String>,
    /// Base64 X25519 private key.
    pub(crate) hpke_key: Secret<String>,
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState")
            .field("server_url", &self.server_url)
            .field("device_id", &self.device_id)
            .field("agent_id", &self.agent_id)
            .field("signing_key", &"[REDACTED]")
            .field("hpke_key", &"[REDACTED]")
            .finish()
    }
}

pub(crate) fn state_err(path: &Path, detail: impl ToString) -> ClientError {
    ClientError::State {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl AgentState {
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            state_err(
                path,
                format!("{e}; run `escrow-agent register` first (or pass --state)"),
            )
        })?;
        if meta.mode() & 0o077 != 0 {
            return Err(state_err(
                path,
                format!(
                    "mode {:o} lets others read the agent's keys; chmod 600 it or register again",
                    meta.mode() & 0o777
                ),
            ));
        }
        if meta.len() > 64 * 1024 {
            return Err(state_err(path, "too large to be an agent state file"));
        }
        let bytes = Secret::new(std::fs::read(path).map_err(|e| state_err(path, e))?);
        let file: StateFile = serde_json::from_slice(bytes.expose())
            .map_err(|e| state_err(path, format!("not an agent state file: {e}")))?;
        let state = AgentState {
            server_url: file.server_url,
            device_id: file.device_id,
            agent_id: file.agent_id,
            signing_key: Secret::new(file.signing_key),
            hpke_key: Secret::new(file.hpke_key),
        };
        state.keys().map_err(|e| state_err(path, e))?;
        Ok(state)
    }

    /// Writes atomically: a 0600 temporary file in the same (0700 when created) directory, then a rename.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| state_err(path, format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "state".into())
        ));
        let _ = std::fs::remove_file(&tmp);
        let file = StateFile {
            server_url: self.server_url.clone(),
            device_id: self.device_id.clone(),
            agent_id: self.agent_id.clone(),
            signing_key: self.signing_key.expose().clone(),
            hpke_key: self.hpke_key.expose().clone(),
        };
        let json = Secret::new(
            serde_json::to_vec_pretty(&file).map_err(|e| state_err(path, e.to_string()))?,
        );
        drop(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| state_err(&tmp, e))?;
        f.write_all(json.expose())
            .and_then(|_| f.sync_all())
            .map_err(|e| state_err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| state_err(path, e))?;
        Ok(())
    }

    pub(crate) fn keys(&self) -> Result<(SigningKey, HpkeKeyPair), String> {
        let sk = B64
            .decode(self.signing_key.expose())
            .map_err(|_| "signing key is not base64".to_string())?;
        let signing =
            SigningKey::from_pkcs8(Secret::new(sk)).map_err(|_| "bad signing key".to_string())?;
        let hk = B64
            .decode(self.hpke_key.expose())
            .map_err(|_| "HPKE key is not base64".to_string())?;
        let hpke = HpkeKeyPair::from_private(Secret::new(hk)).map_err(|_| "bad HPKE key")?;
        Ok((signing, hpke))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_is_0600_round_trips_and_never_shows_keys() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let signing = SigningKey::generate().unwrap();
        let hpke = HpkeKeyPair::generate();
        let state = AgentState {
            server_url: "http://x".into(),
            device_id: "D".into(),
            agent_id: "A".into(),
            signing_key: Secret::new(B64.encode(signing.pkcs8().expose())),
            hpke_key: Secret::new(B64.encode(hpke.private_key().expose())),
        };
        state.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        let back = AgentState::load(&path).unwrap();
        assert_eq!(back.keys().unwrap().0.public_key(), signing.public_key());
        let dbg = format!("{back:?}");
        assert!(!dbg.contains(state.hpke_key.expose().as_str()));
        assert!(!dbg.contains(state.signing_key.expose().as_str()));
        // Readable by others: refused. Garbage: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(AgentState::load(&path).is_err());
        std::fs::write(dir.path().join("g"), b"{\"nope\":1}").unwrap();
        std::fs::set_permissions(dir.path().join("g"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(AgentState::load(&dir.path().join("g")).is_err());
    }
}
