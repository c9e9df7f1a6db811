//! Signed agent requests: every request after registration must carry a valid Ed25519 signature over method,
//! path, timestamp, nonce and SHA-256(body), a timestamp within ±5 minutes and an unseen nonce, else it is
//! refused with an `agent.auth_failed` count (per source and hour, `crate::edge`) and changes nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::sha::sha256;
use protocol::agent_profile::signing_message;
use store::AgentRegistration;

use super::AgentVerifyRoles;
use super::{MAX_CLOCK_SKEW_MS, SignedRequest};
use crate::{EventKind, MdmService, Scoped, ServiceError};

impl MdmService {
    /// Verify a signed agent request; on failure count `agent.auth_failed` for `source` (per hour, never a
    /// row per request: `crate::edge`) and refuse.
    pub async fn agent_verify(
        &self,
        req: &SignedRequest<'_>,
        source: &crate::edge::Source,
    ) -> Result<AgentRegistration, ServiceError> {
        self.scoped().agent_verify(req, source).await
    }
}

impl<S: ?Sized + AgentVerifyRoles> Scoped<'_, S> {
    /// Verify a signed agent request; on failure count `agent.auth_failed` for `source` (per hour, never a
    /// row per request: `crate::edge`) and refuse.
    pub(crate) async fn agent_verify(
        &self,
        req: &SignedRequest<'_>,
        source: &crate::edge::Source,
    ) -> Result<AgentRegistration, ServiceError> {
        match self.agent_verify_inner(req).await {
            Ok(reg) => Ok(reg),
            Err((subject, err)) => {
                // The path without its query: the query is the caller's and may be anything.
                let path = req.path.split('?').next().unwrap_or_default();
                let detail = format!("{subject}: {} {path}: {err}", req.method);
                self.note_refusal(EventKind::AgentAuthFailed, source, &detail);
                Err(err)
            }
        }
    }

    async fn agent_verify_inner(
        &self,
        req: &SignedRequest<'_>,
    ) -> Result<AgentRegistration, (String, ServiceError)> {
        let unknown = |e: ServiceError| ("unknown".to_string(), e);
        let unauth = |m: &str| ServiceError::Unauthorized(m.to_string());
        let Some(reg) = self
            .store
            .agent(req.agent_id)
            .await
            .map_err(|e| unknown(e.into()))?
        else {
            return Err(unknown(unauth("unknown agent: register it again")));
        };
        let device = reg.device_id.clone();
        let fail = |m: &str| (device.clone(), unauth(m));
        let ts: i64 = req
            .timestamp
            .parse()
            .map_err(|_| fail("timestamp must be unix seconds"))?;
        let now = self.now();
        if (ts.saturating_mul(1000) - now).abs() > MAX_CLOCK_SKEW_MS {
            return Err(fail(
                "stale timestamp: more than 5 minutes off the server's clock",
            ));
        }
        if req.nonce.len() < 16
            || req.nonce.len() > 128
            || !req.nonce.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(fail("nonce must be 16-128 letters or digits"));
        }
        let sig = B64
            .decode(req.signature)
            .map_err(|_| fail("signature is not base64"))?;
        let message = signing_message(
            req.method,
            req.path,
            ts,
            req.nonce,
            &hex::encode(sha256(req.body)),
        );
        if !agentwire::verify_signature(&reg.signing_key, &message, &sig) {
            return Err(fail("bad signature"));
        }
        let fresh = self
            .store
            .claim_agent_nonce(&reg.agent_id, req.nonce, now, now - 2 * MAX_CLOCK_SKEW_MS)
            .await
            .map_err(|e| (device.clone(), e.into()))?;
        if !fresh {
            return Err(fail("replayed nonce"));
        }
        self.store
            .touch_agent(&reg.agent_id, now)
            .await
            .map_err(|e| (device.clone(), e.into()))?;
        Ok(reg)
    }
}
