//! A device as the admin API shows it, and the two rules behind that view: the inventory (the newest
//! DeviceInformation answer) wins over what the Mac said at check-in, and the enrollment type follows
//! SecurityInfo (user enrollment, then ADE, then user-approved, else a plain device enrollment; unknown until
//! the first SecurityInfo answer). Metadata only: nothing here can see a token or a key hash.

use apitypes::{
    BootstrapTokenView, Device, DeviceGroup, DeviceIdentity, EnrollmentType, InventoryAt,
    TokenLabel, TokenStatus,
};
use store::{DeviceRecord, SecurityFacts};

use crate::status::{BootstrapStatus, DeviceStatus};

/// The view of `d` that the device list and detail answer with.
pub fn device_view(d: &DeviceRecord) -> Device {
    let e = &d.enrollment;
    let inv = d.inventory.as_ref();
    let dev = inv.and_then(|i| i.device.as_ref());
    let sec = inv.and_then(|i| i.security.as_ref());
    // The inventory's word first, else what the Mac said at check-in.
    let newest = |inventory: Option<&Option<String>>, checkin: &Option<String>| {
        inventory.cloned().flatten().or_else(|| checkin.clone())
    };
    let status = d.status();
    Device {
        id: e.id.clone(),
        serial_number: newest(dev.map(|f| &f.serial_number), &e.serial_number),
        device_name: newest(dev.map(|f| &f.device_name), &e.device_name),
        model: newest(dev.map(|f| &f.model), &e.model),
        model_name: newest(dev.map(|f| &f.model_name), &e.model_name),
        os_version: newest(dev.map(|f| &f.os_version), &e.os_version),
        build_version: newest(dev.map(|f| &f.build_version), &e.build_version),
        enrolled: e.enabled,
        enrolled_at: e.enrolled_at,
        last_seen_at: e.last_seen_at,
        enrollment_type: enrollment_type(sec),
        supervised: dev.and_then(|f| f.is_supervised),
        group: e.group_id.as_ref().map(|id| DeviceGroup {
            id: id.clone(),
            name: d.group_name.clone(),
            bootstrap_escrow_enabled: d.group_escrow_enabled,
        }),
        bootstrap_token: BootstrapTokenView {
            status: token_status(status),
            label: token_label(status),
            reason: d.status_reason(),
            escrowed_at: d.token.as_ref().map(|t| t.escrowed_at),
            verified: d.token.as_ref().map(|t| t.verified),
            last_requested_at: d.token.as_ref().and_then(|t| t.last_requested_at),
        },
        apple_silicon: dev.and_then(|f| f.is_apple_silicon),
        bootstrap_token_allowed_for_authentication: sec
            .and_then(|s| s.bt_allowed_for_authentication.clone()),
        bootstrap_token_required_for_software_update: sec
            .and_then(|s| s.bt_required_for_software_update),
        bootstrap_token_required_for_kernel_extension_approval: sec
            .and_then(|s| s.bt_required_for_kext_approval),
        eacs_preflight: dev.and_then(|f| f.eacs_preflight.clone()),
        filevault_enabled: sec.and_then(|s| s.filevault_enabled),
        users: d.user_count,
        users_without_secure_token: d.users_without_secure_token,
        identity: DeviceIdentity {
            certificate_expires_at: e.cert_not_after,
            blocked_at: e.blocked_at,
            pending_identity: e.has_pending,
        },
        inventory_at: InventoryAt {
            device_information: dev.map(|f| f.at),
            security_info: sec.map(|s| s.at),
        },
    }
}

/// How the Mac enrolled, from its SecurityInfo answer (None: not answered yet).
pub fn enrollment_type(sec: Option<&SecurityFacts>) -> EnrollmentType {
    match sec {
        Some(s) if s.is_user_enrollment == Some(true) => EnrollmentType::UserEnrollment,
        Some(s) if s.enrolled_via_dep == Some(true) => EnrollmentType::AutomatedDeviceEnrollment,
        Some(s) if s.user_approved_enrollment == Some(true) => EnrollmentType::UserApproved,
        Some(_) => EnrollmentType::Device,
        None => EnrollmentType::Unknown,
    }
}

fn token_status(s: BootstrapStatus) -> TokenStatus {
    match s {
        BootstrapStatus::NotSupported => TokenStatus::NotSupported,
        BootstrapStatus::NotEscrowed => TokenStatus::NotEscrowed,
        BootstrapStatus::Escrowed => TokenStatus::Escrowed,
    }
}

fn token_label(s: BootstrapStatus) -> TokenLabel {
    match s {
        BootstrapStatus::NotSupported => TokenLabel::Na,
        BootstrapStatus::NotEscrowed => TokenLabel::NotConfigured,
        BootstrapStatus::Escrowed => TokenLabel::Configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_enrollment_outranks_ade_which_outranks_user_approved() {
        let sec = |ue, dep, ua| SecurityFacts {
            is_user_enrollment: ue,
            enrolled_via_dep: dep,
            user_approved_enrollment: ua,
            ..Default::default()
        };
        let t = |s: SecurityFacts| enrollment_type(Some(&s));
        assert_eq!(enrollment_type(None), EnrollmentType::Unknown);
        assert_eq!(
            t(sec(Some(true), Some(true), Some(true))),
            EnrollmentType::UserEnrollment
        );
        assert_eq!(
            t(sec(Some(false), Some(true), Some(true))),
            EnrollmentType::AutomatedDeviceEnrollment
        );
        assert_eq!(t(sec(None, None, Some(true))), EnrollmentType::UserApproved);
        assert_eq!(t(sec(None, Some(false), None)), EnrollmentType::Device);
    }

    #[test]
    fn token_status_and_label_follow_the_store() {
        for s in [
            BootstrapStatus::NotSupported,
            BootstrapStatus::NotEscrowed,
            BootstrapStatus::Escrowed,
        ] {
            assert_eq!(token_status(s).as_str(), s.as_str());
            assert_eq!(token_label(s).as_str(), s.label());
        }
    }

    #[test]
    fn the_inventory_wins_over_check_in_and_check_in_fills_the_gaps() {
        let mut enrollment = store::Enrollment::new_device("UDID-1", 5);
        enrollment.serial_number = Some("CHECKIN-SERIAL".into());
        enrollment.os_version = Some("13.0".into());
        enrollment.model = Some("Mac14,2".into());
        let record = |inventory| DeviceRecord {
            enrollment: enrollment.clone(),
            group_name: None,
            group_escrow_enabled: None,
            token: None,
            inventory,
            users_without_secure_token: 0,
            user_count: 0,
        };
        let before = device_view(&record(None));
        assert_eq!(before.serial_number.as_deref(), Some("CHECKIN-SERIAL"));
        assert_eq!(before.enrollment_type, EnrollmentType::Unknown);
        let inventory = store::DeviceInventory {
            device_id: "UDID-1".into(),
            device: Some(store::DeviceFacts {
                serial_number: Some("INVENTORY-SERIAL".into()),
                os_version: Some("14.5".into()),
                at: 9,
                ..Default::default()
            }),
            security: Some(SecurityFacts::default()),
        };
        let after = device_view(&record(Some(inventory)));
        assert_eq!(after.serial_number.as_deref(), Some("INVENTORY-SERIAL"));
        assert_eq!(after.os_version.as_deref(), Some("14.5"));
        assert_eq!(
            after.model.as_deref(),
            Some("Mac14,2"),
            "check-in fills what the inventory lacks"
        );
        assert_eq!(after.enrollment_type, EnrollmentType::Device);
        assert_eq!(after.inventory_at.device_information, Some(9));
    }
}
