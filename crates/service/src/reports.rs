//! Fleet reports: a summary and CSV rows for Macs without a Bootstrap Token, Apple silicon Macs where it
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
}

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

    /// Counts over the whole fleet (enabled devices), read page by page.
    pub(crate) async fn fleet_summary(&self) -> Result<FleetSummary, ServiceError> {
        let mut s = FleetSummary::default();
        let mut f = DeviceFilter {
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = self.store.list_devices(&f).await?;
            for d in &page {
                s.devices += 1;
                match d.status() {
                    BootstrapStatus::Escrowed => s.escrowed += 1,
                    BootstrapStatus::NotEscrowed => s.not_escrowed += 1,
                    BootstrapStatus::NotSupported => s.not_supported += 1,
                }
                if d.token.as_ref().is_some_and(|t| !t.verified) {
                    s.escrowed_unverified += 1;
                }
                let silicon = d
                    .inventory
                    .as_ref()
                    .and_then(|i| i.device.as_ref())
                    .and_then(|f| f.is_apple_silicon);
                if silicon == Some(true) {
                    s.apple_silicon += 1;
                }
                if cannot_authorize(d) {
                    s.apple_silicon_cannot_authorize += 1;
                }
                if d.users_without_secure_token > 0 {
                    s.devices_with_users_without_secure_token += 1;
                }
                s.users_without_secure_token += d.users_without_secure_token;
                if d.inventory.is_none() {
                    s.devices_without_inventory += 1;
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => f.after_id = Some(last.enrollment.id.clone()),
                _ => break,
            }
        }
        Ok(s)
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

    #[test]
    fn report_names_parse_and_unknown_ones_do_not() {
        assert_eq!(
            Report::parse("cannot-authorize"),
            Some(Report::CannotAuthorize)
        );
        assert_eq!(Report::parse("everything"), None);
    }
}
