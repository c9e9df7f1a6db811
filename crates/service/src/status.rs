//! The Bootstrap Token status of a device (ARCHITECTURE.md): Configured, Not configured or NA, and why.
//!
//! Guarantees: one rule. [`BootstrapStatus::compute`] decides a device's status from its token and inventory;
//! the device list filter (`store`'s SQL over [`DeviceFilter::has_token`] and [`DeviceFilter::can_escrow`]) is
//! asked only through [`BootstrapStatus::restrict`], and a test below runs that SQL on a real store for every
//! combination of the rule's inputs and checks it selects exactly the devices this rule gives that status.

use store::{DeviceFilter, DeviceInventory, DeviceRecord};

/// The Bootstrap Token status of a device, as the list filter, the device view and the reports use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapStatus {
    /// NA (SOTI: "the device does not support bootstrap token"): macOS < 10.15, a user enrollment, or 10.15
    /// not enrolled via ADE.
    NotSupported,
    /// Not configured: supported, nothing stored (also when its group has escrow switched off; see
    /// [`DeviceStatus::status_reason`]).
    NotEscrowed,
    /// Configured: a token is stored.
    Escrowed,
}

impl BootstrapStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BootstrapStatus::NotSupported => "not_supported",
            BootstrapStatus::NotEscrowed => "not_escrowed",
            BootstrapStatus::Escrowed => "escrowed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_supported" => Some(BootstrapStatus::NotSupported),
            "not_escrowed" => Some(BootstrapStatus::NotEscrowed),
            "escrowed" => Some(BootstrapStatus::Escrowed),
            _ => None,
        }
    }

    /// How admins see it: NA / Not configured / Configured.
    pub fn label(self) -> &'static str {
        match self {
            BootstrapStatus::NotSupported => "NA",
            BootstrapStatus::NotEscrowed => "Not configured",
            BootstrapStatus::Escrowed => "Configured",
        }
    }

    /// The one rule: unknown facts count as supported. NA only when the Mac cannot escrow at all; a group's
    /// escrow switch does not change what the Mac supports, so it is not an input here (the device view gives
    /// it as the status's reason).
    pub fn compute(has_token: bool, inventory: Option<&DeviceInventory>) -> Self {
        if has_token {
            return BootstrapStatus::Escrowed;
        }
        if unsupported_reason(inventory).is_some() {
            BootstrapStatus::NotSupported
        } else {
            BootstrapStatus::NotEscrowed
        }
    }

    /// Narrow `f` to the devices of this status: the same rule as [`compute`](Self::compute), in the store's
    /// primitive conditions (a token is stored; the inventory lets the Mac escrow).
    pub fn restrict(self, f: &mut DeviceFilter) {
        let (has_token, can_escrow) = match self {
            BootstrapStatus::Escrowed => (true, None),
            BootstrapStatus::NotSupported => (false, Some(false)),
            BootstrapStatus::NotEscrowed => (false, Some(true)),
        };
        f.has_token = Some(has_token);
        f.can_escrow = can_escrow;
    }
}

/// Why a Mac cannot escrow a Bootstrap Token at all (its status is NA), or None when it can (or it is not
/// known yet). `store`'s SQL for [`DeviceFilter::can_escrow`] is this rule's twin (tested below).
pub fn unsupported_reason(inventory: Option<&DeviceInventory>) -> Option<String> {
    let device = inventory.and_then(|i| i.device.as_ref());
    let os = device.and_then(|d| d.os_version_num);
    let os_text = device
        .and_then(|d| d.os_version.clone())
        .unwrap_or_else(|| "unknown".into());
    let security = inventory.and_then(|i| i.security.as_ref());
    if os.is_some_and(|n| n < 101_500) {
        return Some(format!("macOS {os_text} is older than 10.15"));
    }
    if security.and_then(|s| s.is_user_enrollment) == Some(true) {
        return Some("a User Enrollment cannot escrow a Bootstrap Token".into());
    }
    if os.is_some_and(|n| n < 110_000) && security.and_then(|s| s.enrolled_via_dep) == Some(false) {
        return Some(format!(
            "macOS {os_text} escrows only when enrolled through Automated Device Enrollment"
        ));
    }
    None
}

/// A device record's status and the reason shown beside it.
pub trait DeviceStatus {
    fn status(&self) -> BootstrapStatus;
    /// Why the status is what it is, shown beside it: the group's escrow switch when it is off ("escrow is
    /// off for group Lab", whether a token was kept or not), else what makes the Mac NA; None otherwise.
    fn status_reason(&self) -> Option<String>;
}

impl DeviceStatus for DeviceRecord {
    fn status(&self) -> BootstrapStatus {
        BootstrapStatus::compute(self.token.is_some(), self.inventory.as_ref())
    }

    fn status_reason(&self) -> Option<String> {
        if self.group_escrow_enabled == Some(false) {
            let name = self.group_name.as_deref().unwrap_or("(unnamed)");
            return Some(format!("escrow is off for group {name}"));
        }
        match self.status() {
            BootstrapStatus::NotSupported => unsupported_reason(self.inventory.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use store::{
        BOOTSTRAP_TOKEN_FIELD, BootstrapTokenRecord, DeviceFacts, Enrollment, EventKind, NewEvent,
        Outcome, SealedSecret, SecurityFacts, TokenInfo,
    };

    use super::*;

    #[test]
    fn status_is_escrowed_with_a_token_and_not_configured_without_one() {
        assert_eq!(
            BootstrapStatus::compute(true, None),
            BootstrapStatus::Escrowed
        );
        assert_eq!(
            BootstrapStatus::compute(false, None),
            BootstrapStatus::NotEscrowed
        );
    }

    #[test]
    fn an_escrow_off_group_is_a_reason_not_na() {
        let mut d = DeviceRecord {
            enrollment: Enrollment::new_device("D", 1),
            group_name: Some("Lab".into()),
            group_escrow_enabled: Some(false),
            token: None,
            inventory: None,
            users_without_secure_token: 0,
            user_count: 0,
        };
        assert_eq!(d.status(), BootstrapStatus::NotEscrowed);
        assert_eq!(
            d.status_reason().as_deref(),
            Some("escrow is off for group Lab")
        );
        d.token = Some(TokenInfo {
            size: 1,
            escrowed_at: 1,
            verified: false,
            last_requested_at: None,
        });
        assert_eq!(d.status(), BootstrapStatus::Escrowed, "a kept token");
        assert_eq!(
            d.status_reason().as_deref(),
            Some("escrow is off for group Lab")
        );
        d.group_escrow_enabled = Some(true);
        assert_eq!(d.status_reason(), None);
        d.token = None;
        d.inventory = Some(DeviceInventory {
            device_id: "D".into(),
            device: Some(DeviceFacts {
                os_version: Some("10.14.6".into()),
                os_version_num: Some(101_406),
                ..Default::default()
            }),
            security: None,
        });
        assert_eq!(d.status(), BootstrapStatus::NotSupported);
        assert_eq!(
            d.status_reason().as_deref(),
            Some("macOS 10.14.6 is older than 10.15")
        );
    }

    #[test]
    fn status_is_na_on_old_macos_and_on_10_15_without_ade() {
        let inv = |os: i64, dep: Option<bool>| DeviceInventory {
            device_id: "d".into(),
            device: Some(DeviceFacts {
                os_version_num: Some(os),
                ..Default::default()
            }),
            security: Some(SecurityFacts {
                enrolled_via_dep: dep,
                ..Default::default()
            }),
        };
        let na = BootstrapStatus::NotSupported;
        assert_eq!(
            BootstrapStatus::compute(false, Some(&inv(101_407, Some(true)))),
            na
        );
        assert_eq!(
            BootstrapStatus::compute(false, Some(&inv(101_507, Some(false)))),
            na
        );
        assert_eq!(
            BootstrapStatus::compute(false, Some(&inv(101_507, Some(true)))),
            BootstrapStatus::NotEscrowed
        );
        assert_eq!(
            BootstrapStatus::compute(false, Some(&inv(140_000, Some(false)))),
            BootstrapStatus::NotEscrowed
        );
    }

    #[test]
    fn status_strings_round_trip() {
        for s in [
            BootstrapStatus::NotSupported,
            BootstrapStatus::NotEscrowed,
            BootstrapStatus::Escrowed,
        ] {
            assert_eq!(BootstrapStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(BootstrapStatus::parse("Configured"), None);
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            subject: id.into(),
            enrollment_id: Some(id.into()),
            kind: EventKind::EnrollmentAuthenticated,
            outcome: Outcome::Success,
            detail: String::new(),
            at: 1,
        }
    }

    /// Every combination of the rule's inputs (token; macOS version around each threshold, or unknown; user
    /// enrollment and ADE each true, false or unknown; a missing inventory row) as a device in a real SQLite
    /// store: the list filter of each status selects exactly the devices the Rust rule gives that status.
    #[tokio::test]
    async fn the_sql_filter_and_the_rust_rule_agree_on_every_combination() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let oses = [
            None,
            Some(101_406),
            Some(101_500),
            Some(109_999),
            Some(110_000),
        ];
        let flags = [None, Some(true), Some(false)];
        let mut expected: Vec<(String, BootstrapStatus)> = Vec::new();
        let mut n = 0;
        for has_token in [false, true] {
            for device in std::iter::once(None).chain(oses.iter().map(Some)) {
                let security: Vec<Option<(Option<bool>, Option<bool>)>> = std::iter::once(None)
                    .chain(
                        flags
                            .iter()
                            .flat_map(|u| flags.iter().map(move |d| Some((*u, *d)))),
                    )
                    .collect();
                for sec in security {
                    n += 1;
                    let id = format!("D{n:03}");
                    store
                        .upsert_enrollment(&Enrollment::new_device(&id, 1), &event(&id))
                        .await
                        .unwrap();
                    if let Some(os) = device {
                        let facts = DeviceFacts {
                            os_version: os.map(|n| format!("{}.{}", n / 10_000, n / 100 % 100)),
                            os_version_num: *os,
                            at: 2,
                            ..Default::default()
                        };
                        store.put_device_facts(&id, &facts).await.unwrap();
                    }
                    if let Some((user_enrollment, dep)) = sec {
                        let facts = SecurityFacts {
                            is_user_enrollment: user_enrollment,
                            enrolled_via_dep: dep,
                            at: 2,
                            ..Default::default()
                        };
                        store.put_security_facts(&id, &facts).await.unwrap();
                    }
                    if has_token {
                        let token = BootstrapTokenRecord {
                            enrollment_id: id.clone(),
                            sealed: SealedSecret {
                                owner: id.clone(),
                                field: BOOTSTRAP_TOKEN_FIELD.into(),
                                key_id: "k".into(),
                                blob: vec![1, 2, 3],
                                updated_at: 3,
                            },
                            size: 3,
                            digest: "d".into(),
                            escrowed_at: 3,
                            verified: false,
                            last_requested_at: None,
                        };
                        store
                            .put_bootstrap_token(&token, &event(&id))
                            .await
                            .unwrap();
                    }
                    let record = store.device_record(&id).await.unwrap().unwrap();
                    let rule = BootstrapStatus::compute(has_token, record.inventory.as_ref());
                    assert_eq!(record.status(), rule, "{id}");
                    expected.push((id, rule));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for status in [
            BootstrapStatus::Escrowed,
            BootstrapStatus::NotEscrowed,
            BootstrapStatus::NotSupported,
        ] {
            let mut f = DeviceFilter {
                limit: 1000,
                ..Default::default()
            };
            status.restrict(&mut f);
            let listed: BTreeSet<String> = store
                .list_devices(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.enrollment.id)
                .collect();
            let want: BTreeSet<String> = expected
                .iter()
                .filter(|(_, s)| *s == status)
                .map(|(id, _)| id.clone())
                .collect();
            assert!(!want.is_empty(), "{status:?} is reachable");
            assert_eq!(listed, want, "{status:?}");
            seen.extend(listed);
        }
        assert_eq!(seen.len(), expected.len(), "every device has one status");
    }
}
