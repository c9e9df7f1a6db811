//! The agent's side of the escrowd agent channel (issue 6): registration with the one-time secret from the
//! `com.escrowd.agent` settings, the 0600 state file holding its Ed25519 signing key and X25519 HPKE key,
//! signed requests (`protocol::agent_profile::signing_message`), opening HPKE-sealed action credentials,
//! running each action with [`crate::actions`] and reporting results and inventory.
//!
//! Guarantees: keys and passwords live in `vault::Secret`s; the state file is created 0600 in a 0700
//! directory and its Debug output is redacted; passwords reach Apple's tools only through the existing
//! `Tools` runner (stdin or a pty) and are redacted from any output reported to the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protocol::action_kind::ActionKind;
use protocol::agent_profile::{
    self, ActionResultRequest, AgentActionWire, AgentActionsResponse, AgentInventoryRequest,
    AgentSettings, EscrowReportRequest, MAX_POLL_WAIT_SECS, RegisterRequest, RegisterResponse,
};
use serde::{Deserialize, Serialize};
use vault::Secret;

use crate::actions::{self, ActionError, ActionOutcome, Credentials};
use crate::inventory;
use crate::mac::Mac;
use crate::tools::redact;
use crate::troubleshoot;

/// Largest response body the agent reads.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// Largest output reported for one action.
const MAX_OUTPUT: usize = 16 * 1024;

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

/// Where the agent talks to: base URL and, for https, the trusted roots.
#[derive(Clone)]
pub struct Http {
    base: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    pub timeout: Duration,
}

struct Url {
    https: bool,
    host: String,
    port: u16,
    prefix: String,
}

fn parse_url(url: &str) -> Result<Url, ClientError> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(ClientError::Config(format!(
            "server URL {url:?} must start with https:// or http://"
        )));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse()
                .map_err(|_| ClientError::Config(format!("server URL {url:?} has a bad port")))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority, if https { 443 } else { 80 }),
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(ClientError::Config(format!(
            "server URL {url:?} has no usable host"
        )));
    }
    Ok(Url {
        https,
        host: host.to_string(),
        port,
        prefix: prefix.to_string(),
    })
}

impl Http {
    /// `ca_cert` (PEM) is required for https: the agent trusts only what it is told to.
    pub fn new(base: &str, ca_cert: Option<&Path>) -> Result<Self, ClientError> {
        let url = parse_url(base)?;
        let tls = if url.https {
            let path = ca_cert.ok_or_else(|| {
                ClientError::Config(
                    "https needs --ca-cert PEM (the server's certificate or its CA, e.g. DATA_DIR/tls.pem)"
                        .into(),
                )
            })?;
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                ClientError::Config(format!("reading --ca-cert {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    ClientError::Config(format!("--ca-cert {} is not PEM: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ClientError::Config(format!("--ca-cert {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ClientError::Config(format!(
                    "--ca-cert {} holds no certificate",
                    path.display()
                )));
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Http {
            base: base.trim_end_matches('/').to_string(),
            tls,
            timeout: Duration::from_secs(30),
        })
    }

    /// One HTTP/1.1 request on its own connection. Returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let url = parse_url(&self.base)?;
        let connect_err = |detail: String| ClientError::Connect {
            url: self.base.clone(),
            detail,
        };
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .map_err(|e| connect_err(e.to_string()))?;
        tcp.set_read_timeout(Some(self.timeout)).ok();
        tcp.set_write_timeout(Some(self.timeout)).ok();
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: escrow-agent/{}\r\nContent-Length: {}\r\n",
            url.prefix,
            if (url.https && url.port == 443) || (!url.https && url.port == 80) {
                url.host.clone()
            } else {
                format!("{}:{}", url.host, url.port)
            },
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            if v.contains(['\r', '\n']) {
                return Err(ClientError::Protocol(format!(
                    "header {k} has a line break"
                )));
            }
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut raw = Vec::new();
        let io = |r: std::io::Result<()>| r.map_err(|e| connect_err(e.to_string()));
        match &self.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| connect_err(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| connect_err(e.to_string()))?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                io(tls.write_all(req.as_bytes()))?;
                io(tls.write_all(body))?;
                io(tls.flush())?;
                read_capped(&mut tls, &mut raw).map_err(|e| {
                    connect_err(format!(
                        "{e} (for a self-signed server certificate pass --ca-cert)"
                    ))
                })?;
            }
            None => {
                let mut tcp = tcp;
                io(tcp.write_all(req.as_bytes()))?;
                io(tcp.write_all(body))?;
                read_capped(&mut tcp, &mut raw).map_err(|e| connect_err(e.to_string()))?;
            }
        }
        parse_response(&raw)
    }
}

fn read_capped(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_RESPONSE {
                    return Err(std::io::Error::other("response too large"));
                }
            }
            // A TLS peer that closes without close_notify still sent a complete response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let bad = |what: &str| ClientError::Protocol(format!("malformed HTTP response: {what}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = Some(v.parse::<usize>().map_err(|_| bad("content-length"))?);
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("chunk size"))?;
            let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad("chunk"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(bad("truncated body"));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

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
    signing_key: Secret<String>,
    /// Base64 X25519 private key.
    hpke_key: Secret<String>,
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

fn state_err(path: &Path, detail: impl ToString) -> ClientError {
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

    fn keys(&self) -> Result<(SigningKey, HpkeKeyPair), String> {
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

#[derive(Deserialize)]
struct Params {
    user: Option<String>,
    admin: Option<String>,
    full_name: Option<String>,
    #[serde(default)]
    make_admin: bool,
}

fn parse_actions(body: &[u8]) -> Result<Vec<AgentActionWire>, ClientError> {
    let resp: AgentActionsResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("actions answer: {e}")))?;
    Ok(resp.actions)
}

/// Runs one polled action and says what to report. Reasons are `code: message` with the stable codes of
/// [`ActionError::code`] (or `bad_action`, `credentials`, `unsupported`); output has every password redacted.
pub fn perform(client: &AgentClient, mac: &Mac, action: &AgentActionWire) -> ActionResultRequest {
    let fail = |code: &str, message: String| ActionResultRequest {
        succeeded: false,
        reason: Some(format!("{code}: {message}")),
        ..Default::default()
    };
    let params: Params = match serde_json::from_value(action.params.clone()) {
        Ok(p) => p,
        Err(e) => return fail("bad_action", format!("params: {e}")),
    };
    let creds = match client.open_credentials(action) {
        Ok(c) => c,
        Err(e) => return fail("credentials", e.to_string()),
    };
    let kind = ActionKind::parse(&action.kind);
    if kind == Some(ActionKind::Troubleshoot) {
        let admin = match (&params.admin, creds.admin_password) {
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                password,
            }),
            _ => None,
        };
        let commands = troubleshoot::run(mac, admin.as_ref());
        let problems = troubleshoot::problems(&commands);
        return ActionResultRequest {
            succeeded: problems.is_empty(),
            reason: (!problems.is_empty())
                .then(|| format!("problems_found: {}", problems.join("; "))),
            output: None,
            commands,
        };
    }
    let need = |name: &Option<String>, pw: &Option<Secret<String>>, what: &str| match (name, pw) {
        (Some(n), Some(p)) => Ok(Credentials {
            user: n.clone(),
            password: Secret::new(p.expose().clone()),
        }),
        _ => Err(format!("{} needs {what} and its password", action.kind)),
    };
    let user = || need(&params.user, &creds.user_password, "user");
    let admin = || need(&params.admin, &creds.admin_password, "admin");
    let result: Result<Result<ActionOutcome, ActionError>, String> = (|| {
        let Some(kind) = kind else {
            return Err(format!(
                "this agent does not know action kind {:?}",
                action.kind
            ));
        };
        Ok(match kind {
            ActionKind::GrantSecureToken => actions::grant_secure_token(mac, &user()?, &admin()?),
            ActionKind::CreateUser => actions::create_user(
                mac,
                &user()?,
                params
                    .full_name
                    .as_deref()
                    .ok_or("create_user needs full_name")?,
                params.make_admin,
                &admin()?,
            ),
            ActionKind::SecureTokenOff => actions::secure_token_off(mac, &user()?, &admin()?),
            // "admin" is the current holder, "user" the one who gets the token.
            ActionKind::TransferSecureToken => {
                actions::transfer_secure_token(mac, &admin()?, &user()?)
            }
            ActionKind::ValidateBootstrapToken => actions::validate_bootstrap_token(mac, &admin()?),
            ActionKind::RemoveBootstrapToken => actions::remove_bootstrap_token(mac, &admin()?),
            ActionKind::ReescrowBootstrapToken => actions::escrow_bootstrap_token(mac, &admin()?),
            // "user_password" is the new password.
            ActionKind::ResetPassword => actions::reset_password(mac, &user()?, &admin()?),
            // Performed above (it needs no user and reports commands, not an outcome).
            ActionKind::Troubleshoot => return Err("troubleshoot is performed on its own".into()),
        })
    })();
    let secrets: Vec<&Secret<String>> = [&creds.user_password, &creds.admin_password]
        .into_iter()
        .flatten()
        .collect();
    match result {
        Err(msg) => {
            let code = if msg.contains("does not know") {
                "unsupported"
            } else {
                "bad_action"
            };
            fail(code, redact(&msg, &secrets))
        }
        Ok(Ok(outcome)) => ActionResultRequest {
            succeeded: true,
            output: Some(
                agent_profile::cut(
                    &redact(
                        &serde_json::to_string(&outcome).unwrap_or_default(),
                        &secrets,
                    ),
                    MAX_OUTPUT,
                )
                .to_string(),
            ),
            ..Default::default()
        },
        Ok(Err(e)) => fail(e.code(), redact(&e.to_string(), &secrets)),
    }
}

/// One cycle of `escrow-agent run`: poll, perform each action and report it, then report inventory.
pub struct CycleReport {
    pub actions: Vec<(String, String, ActionResultRequest)>,
    pub inventory_users: Option<usize>,
    pub errors: Vec<String>,
}

pub fn cycle(
    client: &AgentClient,
    mac: &Mac,
    managed_admin: Option<&str>,
) -> Result<CycleReport, ClientError> {
    let mut report = CycleReport {
        actions: Vec::new(),
        inventory_users: None,
        errors: Vec::new(),
    };
    for action in client.poll()? {
        let result = perform(client, mac, &action);
        if let Err(e) = client.post_result(&action.id, &result) {
            report.errors.push(format!("action {}: {e}", action.id));
        }
        report.actions.push((action.id, action.kind, result));
    }
    let inv = inventory::collect(mac, managed_admin);
    match client.post_inventory(&inv) {
        Ok(n) => report.inventory_users = Some(n),
        Err(e) => report.errors.push(format!("inventory: {e}")),
    }
    Ok(report)
}

/// Default paths.
pub fn default_config_path() -> PathBuf {
    PathBuf::from("/Library/Managed Preferences/com.escrowd.agent.plist")
}

pub fn default_state_path() -> PathBuf {
    PathBuf::from("/var/db/escrowd-agent/state.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_refused() {
        let u = parse_url("https://mdm.example:8443/base/").unwrap();
        assert!(u.https);
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("mdm.example", 8443, "/base")
        );
        let u = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (80, ""));
        for bad in [
            "ftp://x",
            "mdm.example",
            "http://",
            "http://h:port",
            "http://u@h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(Http::new("https://x", None).is_err());
    }

    #[test]
    fn responses_parse_and_hostile_ones_are_refused() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra").unwrap(),
            (200, b"{}".to_vec())
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
            )
            .unwrap(),
            (201, b"{}".to_vec())
        );
        for bad in [
            &b"garbage"[..],
            b"HTTP/1.1 xx\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\nab\r\n",
        ] {
            assert!(parse_response(bad).is_err());
        }
    }

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
