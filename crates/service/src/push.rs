//! Waking devices: the seam between the service and whatever delivers pushes (APNs over HTTP/2 in `server`).
//!
//! A push only wakes a device, which then polls the command channel. Without a configured `Pusher` (no push
//! certificate uploaded yet) every push is answered with an explicit per-device error, never silently dropped.

use std::sync::Arc;

use crate::{MdmService, ServiceError};

/// Where and how to wake one enrollment (device or user channel), from its latest TokenUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub enrollment_id: String,
    /// APNs device token (binary; hex-encoded in the APNs URL path).
    pub token: Vec<u8>,
    pub push_magic: String,
    pub topic: String,
}

/// The outcome of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    pub enrollment_id: String,
    /// The `apns-id` APNs answered with, on success.
    pub id: Option<String>,
    /// Why the push failed (APNs reason, "not enrolled", "no push token", …).
    pub error: Option<String>,
}

/// Delivers pushes. Implemented by the APNs provider; tests may use a recording implementation.
#[async_trait::async_trait]
pub trait Pusher: Send + Sync + 'static {
    async fn push(&self, targets: &[PushTarget]) -> Vec<PushResult>;
}

impl MdmService {
    /// Install (or replace) the push provider.
    pub fn with_pusher(self, pusher: Arc<dyn Pusher>) -> Self {
        self.set_pusher(Some(pusher));
        self
    }

    /// Install, replace or remove the push provider of this service and every clone of it (a new push
    /// certificate takes effect without a restart).
    pub fn set_pusher(&self, pusher: Option<Arc<dyn Pusher>>) {
        *self.pusher.write().unwrap_or_else(|p| p.into_inner()) = pusher;
    }

    /// The current push provider, if any.
    pub fn pusher(&self) -> Option<Arc<dyn Pusher>> {
        self.pusher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Push to the given enrollment ids. Unknown ids, checked-out enrollments and enrollments without a push
    /// token get a per-id error; the rest go to the pusher in one batch.
    pub async fn push(&self, enrollment_ids: &[String]) -> Result<Vec<PushResult>, ServiceError> {
        let mut results = Vec::with_capacity(enrollment_ids.len());
        let mut targets = Vec::with_capacity(enrollment_ids.len());
        for id in enrollment_ids {
            let fail = |reason: &str| PushResult {
                enrollment_id: id.clone(),
                id: None,
                error: Some(reason.to_string()),
            };
            match self.store.enrollment(id).await? {
                None => results.push(fail("not enrolled")),
                Some(e) if !e.enabled => results.push(fail("checked out")),
                Some(e) => match (e.push_token, e.push_magic, e.topic) {
                    (Some(token), Some(push_magic), Some(topic)) => targets.push(PushTarget {
                        enrollment_id: id.clone(),
                        token,
                        push_magic,
                        topic,
                    }),
                    _ => results.push(fail("no push token yet (no TokenUpdate received)")),
                },
            }
        }
        match &self.pusher() {
            Some(pusher) if !targets.is_empty() => results.extend(pusher.push(&targets).await),
            Some(_) => {}
            None => results.extend(targets.into_iter().map(|t| PushResult {
                enrollment_id: t.enrollment_id,
                id: None,
                error: Some("no push certificate is configured".to_string()),
            })),
        }
        Ok(results)
    }
}
