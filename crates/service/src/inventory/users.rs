//! The Mac's users as MDM reports them (UserList): the rows stored from a report, the one spelling of a user's
//! GUID both MDM and the agent key users by, and the rate-limited UserList re-ask after a change to the Mac's
//! users.

use protocol::command::Command;
use protocol::results::UserList;
use store::{DeviceUser, FactSource, Millis};

use crate::commands::new_command_uuid;
use crate::{Scoped, ServiceError};

/// The shortest time between two UserList re-asks of one Mac after a change to its users (an agent action, a
/// SetBootstrapToken, a user-channel TokenUpdate).
pub const USER_LIST_REFRESH_INTERVAL_MS: Millis = 5 * 60 * 1000;

/// A user GUID (MDM's UserGUID, dscl's GeneratedUID) in one spelling, upper case, so both sources key a user
/// alike; None unless it has the 8-4-4-4-12 hex layout.
pub fn normalize_guid(g: &str) -> Option<String> {
    let g = g.trim();
    let parts: Vec<&str> = g.split('-').collect();
    let layout = [8, 4, 4, 4, 12];
    let ok = parts.len() == layout.len()
        && parts
            .iter()
            .zip(layout)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| g.to_ascii_uppercase())
}

/// UserList entries as MDM-source user rows; entries without a GUID or short name are skipped, duplicates
/// keep the first.
pub(super) fn mdm_users(device_id: &str, list: &UserList, at: store::Millis) -> Vec<DeviceUser> {
    let mut seen = std::collections::HashSet::new();
    list.users
        .iter()
        .filter_map(|u| {
            let guid = u
                .user_guid
                .as_deref()
                .map(|g| normalize_guid(g).unwrap_or_else(|| g.to_string()));
            let key = guid.clone().or_else(|| u.user_name.clone())?;
            seen.insert(key.clone()).then(|| DeviceUser {
                device_id: device_id.to_string(),
                source: FactSource::Mdm,
                user_key: key,
                short_name: u.user_name.clone(),
                full_name: u.full_name.clone(),
                uid: u.uid,
                guid,
                has_secure_token: u.has_secure_token,
                mobile_account: u.mobile_account,
                is_logged_in: u.is_logged_in,
                is_admin: None,
                filevault_enabled: None,
                volume_owner: None,
                managed_admin: None,
                observed_at: at,
            })
        })
        .collect()
}

impl<S: ?Sized + store::Commands + store::Events + store::Inventory> Scoped<'_, S> {
    /// The request types queued for `device_id`: `known` when the caller just read them, else read now.
    pub(crate) async fn queued_types<'k>(
        &self,
        device_id: &str,
        known: Option<&'k [String]>,
    ) -> Result<std::borrow::Cow<'k, [String]>, ServiceError> {
        Ok(match known {
            Some(types) => std::borrow::Cow::Borrowed(types),
            None => std::borrow::Cow::Owned(self.store.active_request_types(device_id).await?),
        })
    }

    /// The Mac's users may have changed (a successful agent action, a SetBootstrapToken, a user-channel
    /// TokenUpdate): queue UserList, unless one is still queued or one was asked in the last
    /// [`USER_LIST_REFRESH_INTERVAL_MS`]. No push of its own: it rides on the Mac's next check-in (after a
    /// SetBootstrapToken, on the SecurityInfo push queued after it). The agent re-reports on its own after
    /// every cycle. A failure is recorded as an event; it never fails the caller's request.
    pub(crate) async fn refresh_user_list(&self, device_id: &str, why: &str) {
        let result = async {
            if !self.claim_user_list(device_id, None).await? {
                return Ok(false);
            }
            let command = Command::user_list(new_command_uuid());
            self.enqueue(&[device_id.to_string()], &command).await?;
            Ok::<bool, ServiceError>(true)
        }
        .await;
        match result {
            Ok(queued) => {
                tracing::debug!(udid = %device_id, queued, "UserList refresh after {why}");
            }
            Err(err) => self.not_queued(device_id, "UserList", why, &err).await,
        }
    }

    /// Whether UserList is to be queued now: none is queued (`pending`, when the caller just read the Mac's
    /// queued request types) and none was asked in the last [`USER_LIST_REFRESH_INTERVAL_MS`]. When so, this
    /// call has claimed the interval (one of several escrowd processes wins it); the caller queues the command.
    pub(crate) async fn claim_user_list(
        &self,
        device_id: &str,
        pending: Option<&[String]>,
    ) -> Result<bool, ServiceError> {
        let pending = self.queued_types(device_id, pending).await?;
        if pending.iter().any(|p| p == "UserList") {
            return Ok(false);
        }
        let now = self.now();
        let since = now.saturating_sub(USER_LIST_REFRESH_INTERVAL_MS);
        Ok(self
            .store
            .claim_user_list_refresh(device_id, now, since)
            .await?)
    }
}
