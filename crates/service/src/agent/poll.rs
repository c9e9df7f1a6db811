//! The agent's poll for actions, held (up to `MAX_POLL_WAIT`) until an action is queued for its device: the
//! in-process nudges that wake a waiting poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use protocol::agent_profile::{AgentActionWire, AgentActionsResponse};
use store::AgentRegistration;

use super::AgentVerifyRoles;
use super::MAX_POLL_WAIT;
use crate::{MdmService, Scoped, ServiceError};

impl MdmService {
    /// `GET /agent/v1/actions[?wait=N]`: the device's open actions (queued ones become delivered). With a
    /// wait (capped at [`MAX_POLL_WAIT`]) and nothing to do, the answer is held until an action is queued for
    /// the device (the nudge) or the wait ends, so an agent hears of new work at once without polling often.
    pub async fn agent_poll(
        &self,
        agent: &AgentRegistration,
        wait: Duration,
    ) -> Result<AgentActionsResponse, ServiceError> {
        self.scoped().agent_poll(agent, wait).await
    }
}

impl<S: ?Sized + AgentVerifyRoles> Scoped<'_, S> {
    /// `GET /agent/v1/actions[?wait=N]`: the device's open actions (queued ones become delivered). With a
    /// wait (capped at [`MAX_POLL_WAIT`]) and nothing to do, the answer is held until an action is queued for
    /// the device (the nudge) or the wait ends, so an agent hears of new work at once without polling often.
    pub(crate) async fn agent_poll(
        &self,
        agent: &AgentRegistration,
        wait: Duration,
    ) -> Result<AgentActionsResponse, ServiceError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_POLL_WAIT);
        let nudge = self.agent_nudges.subscribe(&agent.device_id);
        let actions = loop {
            // Armed before the store is read, so an action queued in between still wakes this poll.
            let notified = nudge.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let found = self
                .store
                .deliver_agent_actions(&agent.device_id, self.now())
                .await;
            match found {
                Ok(a) if a.is_empty() && tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                other => break other,
            }
        };
        drop(nudge);
        let actions = actions?;
        let actions = actions
            .into_iter()
            .map(|a| AgentActionWire {
                params: serde_json::from_str(&a.params).unwrap_or(serde_json::Value::Null),
                sealed: a.sealed.as_deref().map(|s| B64.encode(s)),
                id: a.id,
                kind: a.kind,
            })
            .collect();
        Ok(AgentActionsResponse { actions })
    }
}

/// Wakes agents whose poll is waiting for work, in this process. Other instances on the same PostgreSQL
/// database hear of an action through a signal (`crate::cluster`) and wake their own waiting polls.
#[derive(Default)]
pub(crate) struct AgentNudges {
    waiting: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// One waiting poll; dropping it (also when the agent hangs up mid-wait) forgets the device once nobody
/// else waits on it.
struct NudgeSubscription<'a> {
    nudges: &'a AgentNudges,
    device_id: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Drop for NudgeSubscription<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .nudges
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else is waiting.
        if waiting
            .get(&self.device_id)
            .is_some_and(|n| Arc::strong_count(n) == 2)
        {
            waiting.remove(&self.device_id);
        }
    }
}

impl AgentNudges {
    fn subscribe(&self, device_id: &str) -> NudgeSubscription<'_> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let notify = waiting.entry(device_id.to_string()).or_default().clone();
        NudgeSubscription {
            nudges: self,
            device_id: device_id.to_string(),
            notify,
        }
    }

    #[cfg(test)]
    fn waiting_devices(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn wake(&self, device_id: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = waiting.get(device_id) {
            n.notify_waiters();
        }
    }

    /// Wake every waiting poll (each re-reads its device's actions and waits again if there are none).
    pub(crate) fn wake_all(&self) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for n in waiting.values() {
            n.notify_waiters();
        }
    }
}

#[cfg(test)]
mod nudge_tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_waiter_and_the_device_is_forgotten_after_the_last() {
        let nudges = AgentNudges::default();
        let first = nudges.subscribe("MAC");
        let second = nudges.subscribe("MAC");
        let other = nudges.subscribe("OTHER");
        {
            let (a, b, c) = (
                first.notify.notified(),
                second.notify.notified(),
                other.notify.notified(),
            );
            tokio::pin!(a, b, c);
            for n in [a.as_mut(), b.as_mut(), c.as_mut()] {
                n.enable();
            }
            nudges.wake("MAC");
            a.await;
            b.await;
            // OTHER was not woken.
            assert!(
                tokio::time::timeout(Duration::from_millis(20), c)
                    .await
                    .is_err()
            );
        }
        drop(first);
        assert_eq!(nudges.waiting_devices(), 2, "MAC still has a waiter");
        drop((second, other));
        assert_eq!(nudges.waiting_devices(), 0);
        // Waking a device nobody waits on is a no-op.
        nudges.wake("MAC");
    }
}
