//! Talking to the server outside a run cycle: waiting for a nudge between cycles, and reporting a
//! self-service escrow's end.

use std::time::{Duration, Instant};

use agent::client::{AgentClient, AgentState};
use protocol::agent_profile::MAX_POLL_WAIT_SECS;

/// Sleeps `wait`, long-polling the server meanwhile so that an action queued for this Mac ends the wait at
/// once. Falls back to plain sleep when the server answers a wait early (a server without long polls) or
/// cannot be reached (the next cycle reports that).
pub(crate) fn wait_or_nudged(agent: &AgentClient, wait: Duration) {
    let end = Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(2) {
            std::thread::sleep(left);
            return;
        }
        let asked = left.min(Duration::from_secs(MAX_POLL_WAIT_SECS));
        let started = Instant::now();
        match agent.wait_for_actions(asked) {
            Ok(true) => return,
            Ok(false) if started.elapsed() + Duration::from_secs(1) >= asked => continue,
            Ok(false) | Err(_) => {
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                return;
            }
        }
    }
}

/// How telling the server about a self-service escrow went.
pub(crate) enum Told {
    Reported,
    NotRegistered,
    Failed(String),
}

/// Reports the escrow's end to the server when this Mac's agent is registered (never fails the escrow).
pub(crate) fn tell_server(
    state: &std::path::Path,
    ca_cert: Option<&std::path::Path>,
    report: &protocol::agent_profile::EscrowReportRequest,
) -> Told {
    if !state.exists() {
        return Told::NotRegistered;
    }
    let sent = AgentState::load(state)
        .and_then(|st| AgentClient::new(&st, ca_cert))
        .and_then(|agent| agent.post_escrow_report(report));
    match sent {
        Ok(()) => Told::Reported,
        Err(e) => Told::Failed(e.to_string()),
    }
}

impl Told {
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Told::Reported => serde_json::json!({"reported": true}),
            Told::NotRegistered => {
                serde_json::json!({"reported": false, "reason": "not_registered"})
            }
            Told::Failed(e) => {
                serde_json::json!({"reported": false, "reason": "failed", "message": e})
            }
        }
    }

    pub(crate) fn print(&self, state: &std::path::Path) {
        match self {
            Told::Reported => println!("The server was told how it went."),
            Told::NotRegistered => eprintln!(
                "note: this Mac's agent is not registered (no {}), so the server was not told; \
                 register it with `escrow-agent register` or pass --state",
                state.display()
            ),
            Told::Failed(e) => eprintln!("warning: could not tell the server how it went: {e}"),
        }
    }
}
