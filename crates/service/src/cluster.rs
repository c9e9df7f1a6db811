//! Several escrowd instances on one PostgreSQL database (issue 14): what each instance tells the others, and
//! the claims that keep two instances' schedules from working on the same device in the same round.
//!
//! Guarantees: an agent action queued on one instance wakes the agent's long poll on whichever instance it
//! waits (a `NOTIFY` after the action is stored); a push certificate stored by one instance is put in use by
//! every instance that listens (the server rebuilds its push provider when [`MdmService::on_instance_signal`]
//! says so); after a lost listening connection every waiting poll re-reads the store and the push provider
//! is rebuilt, so a missed signal costs latency, never correctness. A failed signal is logged, never fails the
//! caller: the agent still finds its action at its next poll.

use store::{Millis, Notice, Signal};

use crate::{MdmService, Scoped, ServiceError};

/// How long one schedule round holds a device it claimed (`store::Cluster::claim_schedule_round`): longer
/// than the round's work on that device, shorter than the schedule's tick, so a round that failed for a device
/// is retried by the next round on any instance.
pub const SCHEDULE_CLAIM_MS: Millis = 60_000;

impl MdmService {
    /// Start listening for other instances' signals; None on SQLite (one instance, nothing to hear). The
    /// server runs the loop (it alone knows how to rebuild the push provider).
    pub async fn listen_to_instances(&self) -> Result<Option<store::SignalListener>, ServiceError> {
        Ok(self.store.listen_instances().await?)
    }

    /// Act on a signal heard from the database: wake the agent polls it concerns (all of them after a
    /// [`Signal::Resync`]). True when the caller must rebuild the push provider from the store. This instance's
    /// own signals are ignored (it acted on them when it sent them).
    pub fn on_instance_signal(&self, notice: &Notice) -> bool {
        if notice.origin == *self.instance {
            return false;
        }
        match &notice.signal {
            Signal::AgentActions { device_id } => {
                self.agent_nudges.wake(device_id);
                false
            }
            Signal::PushCertificate => true,
            Signal::Resync => {
                self.agent_nudges.wake_all();
                true
            }
        }
    }
}

/// The cluster role for the components that signal other instances or claim schedule rounds.
impl<S: ?Sized + store::Cluster> Scoped<'_, S> {
    /// Tell the other instances on this database `signal` (nothing on SQLite). A failure is logged only.
    pub(crate) async fn signal_instances(&self, signal: Signal) {
        if let Err(e) = self.store.notify_instances(self.instance, &signal).await {
            tracing::warn!(error = %e, ?signal, "could not signal the other escrowd instances");
        }
    }

    /// Claim `device_id` for this round of schedule `kind` at `now` (see [`SCHEDULE_CLAIM_MS`]): false when
    /// another instance (or an earlier round still running) holds it.
    pub(crate) async fn claim_schedule_round(
        &self,
        kind: &str,
        device_id: &str,
        now: Millis,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .claim_schedule_round(kind, device_id, now, now.saturating_add(SCHEDULE_CLAIM_MS))
            .await?)
    }

    /// End this instance's claim of `device_id` for schedule `kind` (won with [`Self::claim_schedule_round`])
    /// once its work is done. A failure is logged only: the claim then lapses on its own.
    pub(crate) async fn release_schedule_round(&self, kind: &str, device_id: &str) {
        if let Err(e) = self
            .store
            .release_schedule_round(kind, device_id, self.now())
            .await
        {
            tracing::warn!(error = %e, kind, device_id, "could not release a schedule claim");
        }
    }
}
