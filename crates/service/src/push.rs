//! Waking devices: the seam between the service and whatever delivers pushes (APNs over HTTP/2 in `server`).
//!
//! A push only wakes a device, which then polls the command channel. Without a configured `Pusher` (no push
//! certificate uploaded yet) every push is answered with an explicit per-device error, never silently dropped.
//!
//! When APNs says a token is dead ([`TOKEN_REFUSING_REASONS`]), the enrollment is marked (only while it still
//! holds that token) and later pushes to it are skipped with a clear error until its next TokenUpdate.

use std::sync::Arc;

use store::{NewEvent, Outcome};

use crate::{EventKind, MdmService, Scoped, ServiceError};

/// APNs reasons that mean the device token will never work again for this topic: the enrollment is marked
/// and skipped until it sends a new TokenUpdate.
pub const TOKEN_REFUSING_REASONS: [&str; 3] =
    ["BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"];

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
    /// The `reason` of APNs' error answer, verbatim (e.g. `Unregistered`), when APNs gave one.
    pub apns_reason: Option<String>,
}

impl PushResult {
    /// A push APNs accepted with this `apns-id`.
    pub fn sent(enrollment_id: impl Into<String>, apns_id: Option<String>) -> Self {
        PushResult {
            enrollment_id: enrollment_id.into(),
            id: apns_id,
            error: None,
            apns_reason: None,
        }
    }

    /// A push that failed for `error` (no APNs reason).
    pub fn failed(enrollment_id: impl Into<String>, error: impl Into<String>) -> Self {
        PushResult {
            enrollment_id: enrollment_id.into(),
            id: None,
            error: Some(error.into()),
            apns_reason: None,
        }
    }
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
        self.scoped().set_pusher(pusher);
    }

    /// The current push provider, if any.
    pub fn pusher(&self) -> Option<Arc<dyn Pusher>> {
        self.scoped().pusher()
    }

    /// Push to the given enrollment ids. Unknown ids, checked-out enrollments, enrollments without a push
    /// token and enrollments whose token APNs refused (until their next TokenUpdate) get a per-id error; the
    /// rest go to the pusher in one batch. Tokens APNs now refuses are marked (with an event).
    pub async fn push(&self, enrollment_ids: &[String]) -> Result<Vec<PushResult>, ServiceError> {
        self.scoped().push(enrollment_ids).await
    }

    /// Whether APNs refused the enrollment's current push token (and why), until its next TokenUpdate.
    pub async fn push_mark(
        &self,
        enrollment_id: &str,
    ) -> Result<Option<store::PushInvalid>, ServiceError> {
        self.scoped().push_mark(enrollment_id).await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait PushRoles: store::Enrollments + store::Push {}
impl<T: ?Sized + store::Enrollments + store::Push> PushRoles for T {}

impl<S: ?Sized> Scoped<'_, S> {
    /// The current push provider, if a push certificate is installed.
    pub(crate) fn pusher(&self) -> Option<Arc<dyn Pusher>> {
        self.pusher
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Install (or remove) the push provider; later pushes use it.
    pub(crate) fn set_pusher(&self, pusher: Option<Arc<dyn Pusher>>) {
        *self.pusher.write().unwrap_or_else(|p| p.into_inner()) = pusher;
    }
}

/// Pushes after the request that asked for them has been answered: a slow push provider must not hold up a
/// device's check-in. Failures are logged, never returned.
pub(crate) trait BackgroundPush: Send + Sync {
    fn push_in_background(&self, enrollment_ids: Vec<String>);
}

impl BackgroundPush for MdmService {
    fn push_in_background(&self, ids: Vec<String>) {
        let service = self.clone();
        tokio::spawn(async move {
            match service.push(&ids).await {
                Ok(results) => {
                    for r in results.iter().filter(|r| r.error.is_some()) {
                        tracing::debug!(enrollment = %r.enrollment_id, error = ?r.error, "inventory push not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "inventory push failed"),
            }
        });
    }
}

impl<S: ?Sized + PushRoles> Scoped<'_, S> {
    /// Push to the given enrollment ids. Unknown ids, checked-out enrollments, enrollments without a push
    /// token and enrollments whose token APNs refused (until their next TokenUpdate) get a per-id error; the
    /// rest go to the pusher in one batch. Tokens APNs now refuses are marked (with an event).
    pub(crate) async fn push(
        &self,
        enrollment_ids: &[String],
    ) -> Result<Vec<PushResult>, ServiceError> {
        let mut results = Vec::with_capacity(enrollment_ids.len());
        let mut targets = Vec::with_capacity(enrollment_ids.len());
        let mut devices = std::collections::HashMap::new();
        for id in enrollment_ids {
            let fail = |reason: &str| PushResult::failed(id.clone(), reason);
            match self.store.enrollment(id).await? {
                None => results.push(fail("not enrolled")),
                Some(e) if !e.enabled => results.push(fail("checked out")),
                Some(e) => match (e.push_token, e.push_magic, e.topic) {
                    (Some(token), Some(push_magic), Some(topic)) => {
                        if let Some(mark) = self.store.push_invalid(id).await? {
                            results.push(fail(&format!(
                                "skipped: APNs refused this push token ({}); waiting for the device's next \
TokenUpdate (if it never comes, the Mac must re-enroll)",
                                mark.reason
                            )));
                            continue;
                        }
                        devices.insert(id.clone(), e.device_id);
                        targets.push(PushTarget {
                            enrollment_id: id.clone(),
                            token,
                            push_magic,
                            topic,
                        })
                    }
                    _ => results.push(fail("no push token yet (no TokenUpdate received)")),
                },
            }
        }
        let pushed = match &self.pusher() {
            Some(pusher) if !targets.is_empty() => pusher.push(&targets).await,
            Some(_) => Vec::new(),
            None => targets
                .iter()
                .map(|t| {
                    PushResult::failed(t.enrollment_id.clone(), "no push certificate is configured")
                })
                .collect(),
        };
        for r in &pushed {
            let Some(reason) = r
                .apns_reason
                .as_deref()
                .filter(|r| TOKEN_REFUSING_REASONS.contains(r))
            else {
                continue;
            };
            let Some(target) = targets.iter().find(|t| t.enrollment_id == r.enrollment_id) else {
                continue;
            };
            let now = self.now();
            let event = NewEvent {
                subject: devices
                    .get(&target.enrollment_id)
                    .cloned()
                    .unwrap_or_else(|| target.enrollment_id.clone()),
                enrollment_id: Some(target.enrollment_id.clone()),
                kind: EventKind::PushTokenInvalid,
                outcome: Outcome::Failure,
                detail: format!(
                    "APNs answered {reason}: pushes to this enrollment are skipped until its next TokenUpdate"
                ),
                at: now,
            };
            let marked = self
                .store
                .mark_push_invalid(&target.enrollment_id, &target.token, reason, now, &event)
                .await?;
            if marked {
                tracing::warn!(enrollment = %target.enrollment_id, reason, "APNs refused the push token; marked");
            }
        }
        results.extend(pushed);
        Ok(results)
    }

    /// Whether APNs refused the enrollment's current push token (and why), until its next TokenUpdate.
    pub(crate) async fn push_mark(
        &self,
        enrollment_id: &str,
    ) -> Result<Option<store::PushInvalid>, ServiceError> {
        Ok(self.store.push_invalid(enrollment_id).await?)
    }
}
