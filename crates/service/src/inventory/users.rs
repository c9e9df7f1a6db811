//! The Mac's users as MDM reports them (UserList): the rows stored from a report, the one spelling of a user's
//! GUID both MDM and the agent key users by, and the rate-limited UserList re-ask after a change to the Mac's
//! users.

use protocol::command::Command;
use protocol::results::UserList;
use store::{DeviceUser, FactSource, Millis};

use crate::Scoped;
use crate::commands::new_command_uuid;

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
    /// The Mac's users may have changed (a successful agent action, a SetBootstrapToken, a user-channel
    /// TokenUpdate): queue UserList, unless one is still queued or one was asked in the last
    /// [`USER_LIST_REFRESH_INTERVAL_MS`]. No push of its own: it rides on the Mac's next check-in (after a
    /// SetBootstrapToken, on the SecurityInfo push queued after it). The agent re-reports on its own after
    /// every cycle. A failure is recorded as an event; it never fails the caller's request.
    pub(crate) async fn refresh_user_list(&self, device_id: &str, why: &str) {
        let result = async {
            let queued = self.store.active_request_types(device_id).await?;
            if queued.iter().any(|t| t == "UserList") {
                return Ok(false);
            }
            // The claim of the refresh interval (one of several escrowd processes wins it) and the command
            // are one write.
            let not_since = self.now().saturating_sub(USER_LIST_REFRESH_INTERVAL_MS);
            let command = Command::user_list(new_command_uuid());
            self.enqueue_follow_ups(device_id, Some((&command, not_since)), &[])
                .await
        }
        .await;
        match result {
            Ok(queued) => {
                tracing::debug!(udid = %device_id, queued, "UserList refresh after {why}");
            }
            Err(err) => self.not_queued(device_id, "UserList", why, &err).await,
        }
    }
}
