//! Fleet reports: a summary (one counting query) and CSV rows for Macs without a Bootstrap Token, Apple silicon Macs where it
//! cannot authorize, users without a Secure Token, and Macs with no volume owner. Guarantees: produced page by
//! page (1000 devices at a time) so a caller can stream them; CSV fields are quoted and formula-looking cells
//! are defused; no row carries a token.

use store::{DeviceFilter, DeviceRecord};

use crate::status::{BootstrapStatus, DeviceStatus};

use crate::admin::merge_users;

use crate::{MdmService, Scoped, ServiceError};

/// Which CSV report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    WithoutBootstrapToken,
    CannotAuthorize,
    UsersWithoutSecureToken,
    NoVolumeOwner,
}

impl Report {
    pub fn parse(s: &str) -> Option<Report> {
        Some(match s {
            "without-bootstrap-token" => Report::WithoutBootstrapToken,
            "cannot-authorize" => Report::CannotAuthorize,
            "users-without-secure-token" => Report::UsersWithoutSecureToken,
            "no-volume-owner" => Report::NoVolumeOwner,
            _ => return None,
        })
    }

    pub fn header(self) -> &'static str {
        match self {
            Report::UsersWithoutSecureToken => {
                "device_id,serial_number,os_version,user,full_name,is_logged_in,observed_at\n"
            }
            _ => {
                "device_id,serial_number,os_version,status,apple_silicon,bootstrap_token_allowed_for_authentication\n"
            }
        }
    }
}

/// Fleet-wide counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetSummary {
    pub devices: u64,
    pub escrowed: u64,
    pub not_escrowed: u64,
    pub not_supported: u64,
    pub escrowed_unverified: u64,
    pub apple_silicon: u64,
    pub apple_silicon_cannot_authorize: u64,
    pub devices_with_users_without_secure_token: u64,
    pub users_without_secure_token: u64,
    pub devices_without_inventory: u64,
    /// Macs whose bound identity certificate expires within [`IDENTITY_EXPIRING_MS`] (or has expired).
    pub identities_expiring: u64,
}

/// How soon an identity's expiry counts as "expiring" in the summary: 30 days.
pub const IDENTITY_EXPIRING_MS: i64 = 30 * 24 * 3600 * 1000;

/// One CSV cell: quoted, with a leading `= + - @` defused (spreadsheet formula injection).
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn os(d: &DeviceRecord) -> String {
    d.inventory
        .as_ref()
        .and_then(|i| i.device.as_ref())
        .and_then(|f| f.os_version.clone())
        .or_else(|| d.enrollment.os_version.clone())
        .unwrap_or_default()
}

fn cannot_authorize(d: &DeviceRecord) -> bool {
    let inv = d.inventory.as_ref();
    inv.and_then(|i| i.device.as_ref())
        .and_then(|f| f.is_apple_silicon)
        == Some(true)
        && inv
            .and_then(|i| i.security.as_ref())
            .and_then(|s| s.bt_allowed_for_authentication.as_deref())
            .is_some_and(|a| a != "allowed")
}

impl MdmService {
    /// One page of a report: CSV lines (without the header) and the id to continue after, None at the end.
    pub async fn report_page(
        &self,
        report: Report,
        after: Option<String>,
    ) -> Result<(String, Option<String>), ServiceError> {
        self.scoped().report_page(report, after).await
    }

    /// Counts over the whole fleet (enabled devices), read page by page.
    pub async fn fleet_summary(&self) -> Result<FleetSummary, ServiceError> {
        self.scoped().fleet_summary().await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait ReportRoles: store::Admin + store::Inventory {}
impl<T: ?Sized + store::Admin + store::Inventory> ReportRoles for T {}

impl<S: ?Sized + ReportRoles> Scoped<'_, S> {
    /// One page of a report: CSV lines (without the header) and the id to continue after, None at the end.
    pub(crate) async fn report_page(
        &self,
        report: Report,
        after: Option<String>,
    ) -> Result<(String, Option<String>), ServiceError> {
        let mut f = DeviceFilter {
            apple_silicon: (report == Report::CannotAuthorize).then_some(true),
            users_without_secure_token: (report == Report::UsersWithoutSecureToken).then_some(true),
            after_id: after,
            limit: 1000,
            ..Default::default()
        };
        if report == Report::WithoutBootstrapToken {
            BootstrapStatus::NotEscrowed.restrict(&mut f);
        }
        let page = self.store.list_devices(&f).await?;
        let next = (page.len() == 1000)
            .then(|| page.last().map(|d| d.enrollment.id.clone()))
            .flatten();
        let mut out = String::new();
        for d in &page {
            let serial = d.enrollment.serial_number.clone().unwrap_or_default();
            let device_row = |out: &mut String| {
                let sec = d.inventory.as_ref().and_then(|i| i.security.as_ref());
                let silicon = d
                    .inventory
                    .as_ref()
                    .and_then(|i| i.device.as_ref())
                    .and_then(|f| f.is_apple_silicon);
                let cells = [
                    d.enrollment.id.clone(),
                    serial.clone(),
                    os(d),
                    d.status().as_str().to_string(),
                    silicon.map(|b| b.to_string()).unwrap_or_default(),
                    sec.and_then(|s| s.bt_allowed_for_authentication.clone())
                        .unwrap_or_default(),
                ];
                out.push_str(
                    &cells
                        .iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            };
            match report {
                Report::WithoutBootstrapToken => device_row(&mut out),
                Report::CannotAuthorize if cannot_authorize(d) => device_row(&mut out),
                Report::CannotAuthorize => {}
                Report::UsersWithoutSecureToken => {
                    // One row per user (MDM and agent rows merged), by its newest word on the token.
                    let users = merge_users(self.store.device_users(&d.enrollment.id).await?);
                    for u in &users {
                        let Some(st) = u.has_secure_token.as_ref().filter(|f| !f.value) else {
                            continue;
                        };
                        let cells = [
                            d.enrollment.id.clone(),
                            serial.clone(),
                            os(d),
                            u.name().to_string(),
                            u.full_name.clone().unwrap_or_default(),
                            u.is_logged_in
                                .as_ref()
                                .map(|f| f.value.to_string())
                                .unwrap_or_default(),
                            st.at.to_string(),
                        ];
                        out.push_str(
                            &cells
                                .iter()
                                .map(|c| csv_cell(c))
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                        out.push('\n');
                    }
                }
                Report::NoVolumeOwner => {
                    let users = merge_users(self.store.device_users(&d.enrollment.id).await?);
                    // Only the agent knows volume owners: Macs without its facts are unknown, not listed.
                    let known: Vec<_> = users
                        .iter()
                        .filter_map(|u| u.volume_owner.as_ref())
                        .collect();
                    if !known.is_empty() && !known.iter().any(|f| f.value) {
                        device_row(&mut out);
                    }
                }
            }
        }
        Ok((out, next))
    }

    /// Counts over the whole fleet (enabled devices), in one query (`store::Admin::fleet_counts`: the same
    /// conditions as the device list's filters, so each number matches the list it links to).
    pub(crate) async fn fleet_summary(&self) -> Result<FleetSummary, ServiceError> {
        let c = self
            .store
            .fleet_counts(self.now() + IDENTITY_EXPIRING_MS)
            .await?;
        Ok(FleetSummary {
            devices: c.devices,
            escrowed: c.escrowed,
            not_escrowed: c.devices - c.escrowed - c.not_supported,
            not_supported: c.not_supported,
            escrowed_unverified: c.escrowed_unverified,
            apple_silicon: c.apple_silicon,
            apple_silicon_cannot_authorize: c.cannot_authorize,
            devices_with_users_without_secure_token: c.devices_with_users_without_secure_token,
            users_without_secure_token: c.users_without_secure_token,
            devices_without_inventory: c.devices_without_inventory,
            identities_expiring: c.identities_expiring,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("a\"b,c"), "\"a\"\"b,c\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(csv_cell("@x"), "\"'@x\"");
    }

    /// A fleet of every combination of the summary's inputs in a real SQLite store: the one-query counts equal
    /// the Rust rules applied device by device, and each count equals the device list filtered the way the
    /// console's links filter it.
    #[tokio::test]
    async fn the_counting_query_agrees_with_the_rules_and_the_list_filters() {
        use store::{
            BOOTSTRAP_TOKEN_FIELD, BootstrapTokenRecord, DeviceFacts, DeviceUser, Enrollment,
            EventKind, FactSource, NewEvent, Outcome, SealedSecret, SecurityFacts,
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let store = store::connect(&url).await.unwrap();
        let event = |id: &str| NewEvent {
            subject: id.into(),
            enrollment_id: Some(id.into()),
            kind: EventKind::EnrollmentAuthenticated,
            outcome: Outcome::Success,
            detail: String::new(),
            at: 1,
        };
        let mut n = 0;
        for token in [None, Some(false), Some(true)] {
            for silicon in [None, Some(true), Some(false)] {
                for auth in [None, Some("allowed"), Some("disallowed")] {
                    for (os, lacking, expires) in
                        [(None, false, None), (Some(101_406), true, Some(5))]
                    {
                        n += 1;
                        let id = format!("D{n:03}");
                        let e = Enrollment {
                            cert_not_after: expires.or(Some(1_000_000)),
                            ..Enrollment::new_device(&id, 1)
                        };
                        store.upsert_enrollment(&e, &event(&id)).await.unwrap();
                        if silicon.is_some() || os.is_some() {
                            let facts = DeviceFacts {
                                is_apple_silicon: silicon,
                                os_version_num: os,
                                at: 2,
                                ..Default::default()
                            };
                            store.put_device_facts(&id, &facts).await.unwrap();
                        }
                        if let Some(auth) = auth {
                            let facts = SecurityFacts {
                                bt_allowed_for_authentication: Some(auth.into()),
                                at: 2,
                                ..Default::default()
                            };
                            store.put_security_facts(&id, &facts).await.unwrap();
                        }
                        let user = |name: &str, st: bool| DeviceUser {
                            device_id: id.clone(),
                            source: FactSource::Mdm,
                            user_key: name.into(),
                            short_name: Some(name.into()),
                            full_name: None,
                            uid: None,
                            guid: None,
                            has_secure_token: Some(st),
                            mobile_account: None,
                            is_logged_in: None,
                            is_admin: None,
                            filevault_enabled: None,
                            volume_owner: None,
                            managed_admin: None,
                            observed_at: 3,
                        };
                        let users = if lacking {
                            vec![user("a", false), user("b", false), user("c", true)]
                        } else {
                            vec![user("c", true)]
                        };
                        store
                            .replace_device_users(&id, FactSource::Mdm, &users)
                            .await
                            .unwrap();
                        if let Some(verified) = token {
                            let rec = BootstrapTokenRecord {
                                enrollment_id: id.clone(),
                                sealed: SealedSecret {
                                    owner: id.clone(),
                                    field: BOOTSTRAP_TOKEN_FIELD.into(),
                                    key_id: "k".into(),
                                    blob: vec![1],
                                    updated_at: 3,
                                },
                                size: 1,
                                digest: "d".into(),
                                escrowed_at: 3,
                                verified: false,
                                last_requested_at: None,
                            };
                            store.put_bootstrap_token(&rec, &event(&id)).await.unwrap();
                            store
                                .set_bootstrap_token_verified(&id, verified)
                                .await
                                .unwrap();
                        }
                    }
                }
            }
        }
        let all = store
            .list_devices(&DeviceFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), n);
        let c = store.fleet_counts(100).await.unwrap();
        let rule = |f: &dyn Fn(&DeviceRecord) -> bool| all.iter().filter(|d| f(d)).count() as u64;
        assert_eq!(c.devices, n as u64);
        assert_eq!(
            c.escrowed,
            rule(&|d| d.status() == BootstrapStatus::Escrowed)
        );
        assert_eq!(
            c.not_supported,
            rule(&|d| d.status() == BootstrapStatus::NotSupported)
        );
        assert_eq!(
            c.escrowed_unverified,
            rule(&|d| d.token.as_ref().is_some_and(|t| !t.verified))
        );
        assert_eq!(c.cannot_authorize, rule(&cannot_authorize));
        assert_eq!(
            c.devices_with_users_without_secure_token,
            rule(&|d| d.users_without_secure_token > 0)
        );
        assert_eq!(
            c.users_without_secure_token,
            all.iter()
                .map(|d| d.users_without_secure_token)
                .sum::<u64>()
        );
        assert_eq!(
            c.devices_without_inventory,
            rule(&|d| d.inventory.is_none())
        );
        assert_eq!(
            c.identities_expiring,
            rule(&|d| d.enrollment.cert_not_after.is_some_and(|t| t < 100))
        );
        assert!(c.cannot_authorize > 0 && c.not_supported > 0 && c.escrowed_unverified > 0);
        let listed = |f: DeviceFilter| {
            let store = store.clone();
            async move {
                store
                    .list_devices(&DeviceFilter { limit: 1000, ..f })
                    .await
                    .unwrap()
                    .len() as u64
            }
        };
        let f = DeviceFilter::default;
        assert_eq!(
            listed(DeviceFilter {
                verified: Some(false),
                ..f()
            })
            .await,
            c.escrowed_unverified
        );
        assert_eq!(
            listed(DeviceFilter {
                cannot_authorize: Some(true),
                ..f()
            })
            .await,
            c.cannot_authorize
        );
        assert_eq!(
            listed(DeviceFilter {
                cannot_authorize: Some(false),
                ..f()
            })
            .await,
            c.devices - c.cannot_authorize
        );
        assert_eq!(
            listed(DeviceFilter {
                apple_silicon: Some(true),
                ..f()
            })
            .await,
            c.apple_silicon
        );
        assert_eq!(
            listed(DeviceFilter {
                users_without_secure_token: Some(true),
                ..f()
            })
            .await,
            c.devices_with_users_without_secure_token
        );
        assert_eq!(
            listed(DeviceFilter {
                identity_expires_before: Some(100),
                ..f()
            })
            .await,
            c.identities_expiring
        );
    }

    #[test]
    fn report_names_parse_and_unknown_ones_do_not() {
        assert_eq!(
            Report::parse("cannot-authorize"),
            Some(Report::CannotAuthorize)
        );
        assert_eq!(Report::parse("everything"), None);
    }
}
