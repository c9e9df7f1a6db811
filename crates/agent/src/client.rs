//! The agent's side of the escrowd agent channel (issue 6): registration with the one-time secret from the
//! `com.escrowd.agent` settings, the 0600 state file holding its Ed25519 signing key and X25519 HPKE key,
//! signed requests (`protocol::agent_profile::signing_message`), opening HPKE-sealed action credentials,
//! running each action with [`crate::actions`] and reporting results and inventory.
//!
//! Guarantees: keys and passwords live in `vault::Secret`s; the state file is created 0600 in a 0700
//! directory and its Debug output is redacted; passwords reach Apple's tools only through the existing
//! `Tools` runner (stdin or a pty) and are redacted from any output reported to the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protocol::agent_profile::{
    self, ActionResultRequest, AgentActionWire, AgentActionsResponse, AgentInventoryRequest,
    AgentSettings, EscrowReportRequest, MAX_POLL_WAIT_SECS, RegisterRequest, RegisterResponse,
};
use serde::Deserialize;
use vault::Secret;

pub use crate::http::Http;
use crate::inventory;
pub use crate::state::AgentState;
use crate::state::state_err;

mod perform;

pub use perform::{CycleReport, cycle, perform};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(String),
    #[error("state file {path}: {detail}")]
    State { path: String, detail: String },
    #[error("cannot reach {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("{method} {path}: the server answered {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
}

fn message_of(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        error: Option<serde_json::Value>,
        message: Option<String>,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(E {
            message: Some(m), ..
        }) => m,
        Ok(E { error: Some(e), .. }) => match e {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// Reads the settings, makes both keys, registers, and writes the state file. Refuses to overwrite an
/// existing state file unless `force`; forced over a readable state file of the same device, the registration
/// is signed with that (current) agent's key, which is how the server lets a registered agent replace itself
/// (otherwise it needs an admin's `agent-install --replace`).
pub fn register(
    settings: &AgentSettings,
    ca_cert: Option<&Path>,
    state_path: &Path,
    force: bool,
) -> Result<AgentState, ClientError> {
    if state_path.exists() && !force {
        return Err(state_err(
            state_path,
            "already exists: this Mac is registered; pass --force to register again with a new secret",
        ));
    }
    let http = Http::new(&settings.server_url, ca_cert)?;
    let signing = SigningKey::generate().map_err(|e| ClientError::Protocol(e.to_string()))?;
    let hpke = HpkeKeyPair::generate();
    let req = RegisterRequest {
        device_id: settings.device_id.clone(),
        registration_secret: settings.registration_secret.expose().clone(),
        signing_key: B64.encode(signing.public_key()),
        hpke_key: B64.encode(hpke.public_key()),
    };
    let body =
        Secret::new(serde_json::to_vec(&req).map_err(|e| ClientError::Protocol(e.to_string()))?);
    drop(req);
    let path = "/agent/v1/register";
    let current = if force && state_path.exists() {
        AgentState::load(state_path)
            .ok()
            .filter(|s| s.device_id == settings.device_id)
    } else {
        None
    };
    let headers = match &current {
        Some(state) => {
            let (key, _) = state.keys().map_err(ClientError::Protocol)?;
            signed_headers(
                &key,
                &state.agent_id,
                "POST",
                path,
                now_secs(),
                &random_hex(16)?,
                body.expose(),
            )
        }
        None => Vec::new(),
    };
    let (status, answer) = http.request("POST", path, &headers, body.expose())?;
    if status != 201 && status != 200 {
        let hint = match status {
            401 => {
                " (the registration secret is wrong, used, revoked or expired, or the current agent's signature was refused: reinstall the agent profile with `escrowd agent-install`)"
            }
            409 => {
                " (this Mac already has a registered agent whose key is not here: an admin can allow the replacement with `escrowd agent-install DEVICE --replace`)"
            }
            _ => "",
        };
        return Err(ClientError::Status {
            method: "POST".into(),
            path: path.into(),
            status,
            message: format!("{}{hint}", message_of(&answer)),
        });
    }
    let resp: RegisterResponse = serde_json::from_slice(&answer)
        .map_err(|e| ClientError::Protocol(format!("register answer: {e}")))?;
    let state = AgentState {
        server_url: settings.server_url.clone(),
        device_id: settings.device_id.clone(),
        agent_id: resp.agent_id,
        signing_key: Secret::new(B64.encode(signing.pkcs8().expose())),
        hpke_key: Secret::new(B64.encode(hpke.private_key().expose())),
    };
    state.save(state_path)?;
    Ok(state)
}

fn random_hex(n: usize) -> Result<String, ClientError> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| ClientError::Protocol("no randomness".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The four headers of a signed agent request (the signed text is `agent_profile::signing_message`). Public
/// so the server's tests sign exactly as the agent does, with chosen timestamps and nonces.
pub fn signed_headers(
    key: &SigningKey,
    agent_id: &str,
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let sig = key.sign(&agent_profile::signing_message(
        method, path, timestamp, nonce, &hex,
    ));
    vec![
        (agent_profile::HEADER_AGENT, agent_id.to_string()),
        (agent_profile::HEADER_TIMESTAMP, timestamp.to_string()),
        (agent_profile::HEADER_NONCE, nonce.to_string()),
        (agent_profile::HEADER_SIGNATURE, B64.encode(sig)),
    ]
}

/// A registered agent: signs every request with its key.
pub struct AgentClient {
    http: Http,
    agent_id: String,
    signing: SigningKey,
    hpke: HpkeKeyPair,
}

impl AgentClient {
    pub fn new(state: &AgentState, ca_cert: Option<&Path>) -> Result<Self, ClientError> {
        let (signing, hpke) = state.keys().map_err(ClientError::Protocol)?;
        Ok(AgentClient {
            http: Http::new(&state.server_url, ca_cert)?,
            agent_id: state.agent_id.clone(),
            signing,
            hpke,
        })
    }

    /// The signed headers for one request, now, with a fresh nonce.
    pub fn signed_headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        Ok(signed_headers(
            &self.signing,
            &self.agent_id,
            method,
            path,
            now_secs(),
            &random_hex(16)?,
            body,
        ))
    }

    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.call_on(&self.http, method, path, body)
    }

    fn call_on(
        &self,
        http: &Http,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let headers = self.signed_headers(method, path, body)?;
        let (status, answer) = http.request(method, path, &headers, body)?;
        if !(200..300).contains(&status) {
            let hint = if status == 401 {
                " (the server does not accept this agent's signature: check the clock, or register again)"
            } else {
                ""
            };
            return Err(ClientError::Status {
                method: method.into(),
                path: path.into(),
                status,
                message: format!("{}{hint}", message_of(&answer)),
            });
        }
        Ok(answer)
    }

    pub fn poll(&self) -> Result<Vec<AgentActionWire>, ClientError> {
        parse_actions(&self.call("GET", "/agent/v1/actions", b"")?)
    }

    /// Asks the server to hold the poll up to `wait` (it caps it at [`MAX_POLL_WAIT_SECS`]) until an action
    /// is queued: true when one is waiting. Does not deliver anything the next [`AgentClient::poll`] would
    /// not; it only says when to poll.
    pub fn wait_for_actions(&self, wait: Duration) -> Result<bool, ClientError> {
        let secs = wait.as_secs().min(MAX_POLL_WAIT_SECS);
        let mut http = self.http.clone();
        http.timeout = self.http.timeout + Duration::from_secs(secs);
        let path = format!("/agent/v1/actions?wait={secs}");
        Ok(!parse_actions(&self.call_on(&http, "GET", &path, b"")?)?.is_empty())
    }

    pub fn post_result(&self, id: &str, result: &ActionResultRequest) -> Result<(), ClientError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ClientError::Protocol(format!("bad action id {id:?}")));
        }
        let body = serde_json::to_vec(result).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call("POST", &format!("/agent/v1/actions/{id}/result"), &body)?;
        Ok(())
    }

    /// Tells the server how a self-service escrow ended (`POST /agent/v1/reports/escrow`).
    pub fn post_escrow_report(&self, report: &EscrowReportRequest) -> Result<(), ClientError> {
        let body = serde_json::to_vec(report).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call("POST", "/agent/v1/reports/escrow", &body)?;
        Ok(())
    }

    pub fn post_inventory(&self, inv: &inventory::Inventory) -> Result<usize, ClientError> {
        let req = inventory_request(inv)?;
        let body = serde_json::to_vec(&req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call("POST", "/agent/v1/inventory", &body)?;
        Ok(req.users.len())
    }

    /// Opens an action's sealed credentials (bound to its id) into name → password.
    pub fn open_credentials(
        &self,
        action: &AgentActionWire,
    ) -> Result<SealedCredentials, ClientError> {
        let Some(sealed) = &action.sealed else {
            return Ok(SealedCredentials::default());
        };
        let blob = B64
            .decode(sealed)
            .map_err(|_| ClientError::Protocol("sealed credentials are not base64".into()))?;
        let plain = self
            .hpke
            .open(
                &agent_profile::action_seal_info(&action.id),
                action.id.as_bytes(),
                &blob,
            )
            .map_err(|_| {
                ClientError::Protocol(
                    "the sealed credentials do not open with this agent's key".into(),
                )
            })?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Creds {
            user_password: Option<String>,
            admin_password: Option<String>,
        }
        let c: Creds = serde_json::from_slice(plain.expose()).map_err(|_| {
            ClientError::Protocol("the sealed credentials are not the expected JSON".into())
        })?;
        Ok(SealedCredentials {
            user_password: c.user_password.map(Secret::new),
            admin_password: c.admin_password.map(Secret::new),
        })
    }
}

/// The passwords of one action, after opening.
#[derive(Default)]
pub struct SealedCredentials {
    pub user_password: Option<Secret<String>>,
    pub admin_password: Option<Secret<String>>,
}

/// The inventory's users in the wire form (other fields are the agent's own).
pub fn inventory_request(inv: &inventory::Inventory) -> Result<AgentInventoryRequest, ClientError> {
    let value = serde_json::to_value(inv).map_err(|e| ClientError::Protocol(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("inventory: {e}")))
}

fn parse_actions(body: &[u8]) -> Result<Vec<AgentActionWire>, ClientError> {
    let resp: AgentActionsResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("actions answer: {e}")))?;
    Ok(resp.actions)
}

/// Default paths.
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/Library/Managed Preferences/com.escrowd.agent.plist")
}

pub fn default_state_path() -> PathBuf {
    PathBuf::from("/var/db/escrowd-agent/state.json")
}
