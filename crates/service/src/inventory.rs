//! Inventory from command results: SecurityInfo, UserList and DeviceInformation reports become the device's
//! latest inventory (typed columns) and its MDM user rows. Guarantees: a result that does not parse is
//! recorded as a failure event and changes nothing; only device-channel results are stored; recovery-key
//! blobs and other secrets in the report are never copied (protocol's typed structs leave them out).

use protocol::command::CommandReport;
use protocol::results::{DeviceInformation, SecurityInfo, UserList};
use store::{DeviceFacts, DeviceUser, FactSource, Outcome, SecurityFacts, os_version_num};

use crate::{MdmService, ServiceError};

/// Event kind when an inventory result could not be stored.
pub const INVENTORY_REJECTED: &str = "inventory.rejected";
pub const INVENTORY_UPDATED: &str = "inventory.updated";

impl MdmService {
    /// Store what an acknowledged inventory command reported. Other request types are ignored.
    pub(crate) async fn store_inventory(
        &self,
        enrollment_id: &str,
        device_id: &str,
        request_type: &str,
        report: &CommandReport,
    ) -> Result<(), ServiceError> {
        if enrollment_id != device_id {
            return Ok(());
        }
        let now = self.now();
        let stored = match request_type {
            "SecurityInfo" => match SecurityInfo::from_report(report) {
                Ok(Some(s)) => {
                    let m = s.management_status.as_ref();
                    let facts = SecurityFacts {
                        filevault_enabled: s.fde_enabled,
                        bt_allowed_for_authentication: s
                            .bootstrap_token_allowed_for_authentication
                            .as_ref()
                            .map(|a| a.as_str().to_string()),
                        bt_required_for_software_update: s
                            .bootstrap_token_required_for_software_update,
                        bt_required_for_kext_approval: s
                            .bootstrap_token_required_for_kernel_extension_approval,
                        enrolled_via_dep: m.and_then(|m| m.enrolled_via_dep),
                        user_approved_enrollment: m.and_then(|m| m.user_approved_enrollment),
                        is_user_enrollment: m.and_then(|m| m.is_user_enrollment),
                        at: now,
                    };
                    self.store.put_security_facts(device_id, &facts).await?;
                    Ok(())
                }
                Ok(None) => Err("no SecurityInfo dictionary in the result".to_string()),
                Err(e) => Err(e.to_string()),
            },
            "UserList" => match UserList::from_report(report) {
                Ok(Some(list)) => {
                    let users = mdm_users(device_id, &list, now);
                    self.store
                        .replace_device_users(device_id, FactSource::Mdm, &users)
                        .await?;
                    Ok(())
                }
                Ok(None) => Err("no Users array in the result".to_string()),
                Err(e) => Err(e.to_string()),
            },
            "DeviceInformation" => match DeviceInformation::from_report(report) {
                Ok(Some(d)) => {
                    let facts = DeviceFacts {
                        os_version_num: d.os_version.as_deref().and_then(os_version_num),
                        os_version: d.os_version,
                        build_version: d.build_version,
                        model: d.model,
                        model_name: d.model_name,
                        product_name: d.product_name,
                        serial_number: d.serial_number,
                        device_name: d.device_name,
                        is_apple_silicon: d.is_apple_silicon,
                        is_supervised: d.is_supervised,
                        eacs_preflight: d.eacs_preflight,
                        at: now,
                    };
                    self.store.put_device_facts(device_id, &facts).await?;
                    Ok(())
                }
                Ok(None) => Err("no QueryResponses dictionary in the result".to_string()),
                Err(e) => Err(e.to_string()),
            },
            _ => return Ok(()),
        };
        let (kind, outcome, detail) = match stored {
            Ok(()) => (
                INVENTORY_UPDATED,
                Outcome::Success,
                format!("{request_type} stored"),
            ),
            Err(reason) => (
                INVENTORY_REJECTED,
                Outcome::Failure,
                format!("{request_type} result not stored: {reason}"),
            ),
        };
        let event = self.event(device_id, Some(device_id), kind, outcome, detail);
        self.store.record_event(&event).await?;
        Ok(())
    }
}

/// UserList entries as MDM-source user rows; entries without a GUID or short name are skipped, duplicates
/// keep the first.
fn mdm_users(device_id: &str, list: &UserList, at: store::Millis) -> Vec<DeviceUser> {
    let mut seen = std::collections::HashSet::new();
    list.users
        .iter()
        .filter_map(|u| {
            let key = u.user_guid.clone().or_else(|| u.user_name.clone())?;
            seen.insert(key.clone()).then(|| DeviceUser {
                device_id: device_id.to_string(),
                source: FactSource::Mdm,
                user_key: key,
                short_name: u.user_name.clone(),
                full_name: u.full_name.clone(),
                uid: u.uid,
                guid: u.user_guid.clone(),
                has_secure_token: u.has_secure_token,
                mobile_account: u.mobile_account,
                is_logged_in: u.is_logged_in,
                is_admin: None,
                filevault_enabled: None,
                volume_owner: None,
                observed_at: at,
            })
        })
        .collect()
}
