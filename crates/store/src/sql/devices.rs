//! The admin device view: one device with its group, token metadata, inventory and user counts, and the
//! filtered, paged device list. Guarantees: never selects the sealed token; `can_escrow` is the SQL twin of
//! `service::status::unsupported_reason`; filters are bound parameters; pages are ordered by device id.

use super::Db;

use super::{Backend, QueryBuilder, inventory};
use crate::rows::{EnrollmentRow, count, page_limit};
use crate::{
    DeviceFilter, DeviceInventory, DeviceRecord, Enrollment, FleetCounts, Millis, Result, TokenInfo,
};

/// SQL twin of `service::status::unsupported_reason` over `i` (inventory): the Mac cannot escrow a Bootstrap
/// Token at all; unknown facts count as supported. A group with escrow off does not make a Mac unsupported.
/// `service::status`'s test runs this against the Rust rule for every combination of its inputs.
const NOT_SUPPORTED: &str = "(COALESCE(i.os_version_num, 999999) < 101500 \
     OR COALESCE(i.is_user_enrollment, FALSE) = TRUE \
     OR (COALESCE(i.os_version_num, 999999) < 110000 AND COALESCE(i.enrolled_via_dep, TRUE) = FALSE))";

/// SQL twin of `service::reports`' `cannot_authorize` over `i`: an Apple silicon Mac whose SecurityInfo
/// reported BootstrapTokenAllowedForAuthentication as anything but `allowed`.
const CANNOT_AUTHORIZE: &str = "(COALESCE(i.is_apple_silicon, FALSE) = TRUE \
     AND i.bt_allowed_for_authentication IS NOT NULL AND i.bt_allowed_for_authentication <> 'allowed')";

/// `AND (…)`: `term` is a case-insensitive substring (LIKE wildcards in it are literal) of the UDID, the serial
/// number or device name (inventory or check-in), the enrollment's user, or any user the Mac reported.
fn push_search<DB: Backend>(q: &mut QueryBuilder<DB>, term: &str) {
    let mut pattern = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    let columns = [
        "e.id",
        "e.serial_number",
        "i.serial_number",
        "e.device_name",
        "i.device_name",
        "e.user_short_name",
        "e.user_long_name",
    ];
    q.push(" AND (");
    for (n, column) in columns.iter().enumerate() {
        if n > 0 {
            q.push(" OR ");
        }
        q.push(format!("LOWER({column}) LIKE "))
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\'");
    }
    q.push(" OR EXISTS (SELECT 1 FROM device_users s WHERE s.device_id = e.id AND (LOWER(s.short_name) LIKE ")
        .push_bind(pattern.clone())
        .push(" ESCAPE '\\' OR LOWER(s.full_name) LIKE ")
        .push_bind(pattern)
        .push(" ESCAPE '\\')))");
}

/// SQL for "the user row `u` says HasSecureToken = false and that is the user's newest word on it": no row
/// of the same user (`user_key`, shared by MDM and agent rows) from another source says otherwise later, or at
/// the same time from the agent. The twin of `service::admin::merge_users`' rule (newest fact wins, a tie
/// goes to the agent), so lists, counts and reports agree with the Users table.
macro_rules! lacks_secure_token {
    () => {
        "(u.has_secure_token = FALSE AND NOT EXISTS (SELECT 1 FROM device_users v \
         WHERE v.device_id = u.device_id AND v.user_key = u.user_key AND v.source <> u.source \
         AND v.has_secure_token IS NOT NULL \
         AND (v.observed_at > u.observed_at OR (v.observed_at = u.observed_at AND v.source = 'agent'))))"
    };
}

/// Every column of the device view: the enrollment (`e.*`), group, token metadata (never the sealed token),
/// inventory (`i_*`) and the user counts (one per user, whichever sources reported it), so one query returns a whole page.
const VIEW_SELECT: &str = concat!(
    "SELECT e.id, e.device_id, e.channel, e.user_id, e.user_short_name, e.user_long_name, \
     e.group_id, e.serial_number, e.model, e.model_name, e.device_name, e.os_version, e.build_version, \
     e.product_name, e.topic, e.push_token, e.push_magic, e.awaiting_configuration, e.cert_fingerprint, \
     e.enabled, e.token_update_count, e.enrolled_at, e.updated_at, e.last_seen_at, \
     e.pending_for, e.has_pending, e.blocked_at, e.cert_not_after, \
     g.name AS g_name, g.bootstrap_escrow_enabled AS g_escrow, \
     t.size AS t_size, t.escrowed_at AS t_escrowed_at, t.verified AS t_verified, \
     t.last_requested_at AS t_last_requested_at, \
     i.device_id AS i_device_id, i.os_version AS i_os_version, i.os_version_num AS i_os_version_num, \
     i.build_version AS i_build_version, i.model AS i_model, i.model_name AS i_model_name, \
     i.product_name AS i_product_name, i.serial_number AS i_serial_number, i.device_name AS i_device_name, \
     i.is_apple_silicon AS i_is_apple_silicon, i.is_supervised AS i_is_supervised, \
     i.eacs_preflight AS i_eacs_preflight, i.device_info_at AS i_device_info_at, \
     i.filevault_enabled AS i_filevault_enabled, i.bt_allowed_for_authentication AS i_bt_allowed_for_authentication, \
     i.bt_required_for_software_update AS i_bt_required_for_software_update, \
     i.bt_required_for_kext_approval AS i_bt_required_for_kext_approval, \
     i.enrolled_via_dep AS i_enrolled_via_dep, i.user_approved_enrollment AS i_user_approved_enrollment, \
     i.is_user_enrollment AS i_is_user_enrollment, i.security_info_at AS i_security_info_at, \
     (SELECT COUNT(DISTINCT u.user_key) FROM device_users u WHERE u.device_id = e.id) AS user_count, \
     (SELECT COUNT(DISTINCT u.user_key) FROM device_users u WHERE u.device_id = e.id AND ",
    lacks_secure_token!(),
    ") AS users_without"
);

/// The view's joins onto `e`: group, inventory and token metadata, each at most one row per enrollment.
const VIEW_JOINS: &str = " LEFT JOIN device_groups g ON g.id = e.group_id \
     LEFT JOIN device_inventory i ON i.device_id = e.id \
     LEFT JOIN bootstrap_tokens t ON t.enrollment_id = e.id";

#[derive(sqlx::FromRow)]
struct ViewRow {
    #[sqlx(flatten)]
    enrollment: EnrollmentRow,
    g_name: Option<String>,
    g_escrow: Option<bool>,
    t_size: Option<i64>,
    t_escrowed_at: Option<i64>,
    t_verified: Option<bool>,
    t_last_requested_at: Option<i64>,
    i_device_id: Option<String>,
    i_os_version: Option<String>,
    i_os_version_num: Option<i64>,
    i_build_version: Option<String>,
    i_model: Option<String>,
    i_model_name: Option<String>,
    i_product_name: Option<String>,
    i_serial_number: Option<String>,
    i_device_name: Option<String>,
    i_is_apple_silicon: Option<bool>,
    i_is_supervised: Option<bool>,
    i_eacs_preflight: Option<String>,
    i_device_info_at: Option<i64>,
    i_filevault_enabled: Option<bool>,
    i_bt_allowed_for_authentication: Option<String>,
    i_bt_required_for_software_update: Option<bool>,
    i_bt_required_for_kext_approval: Option<bool>,
    i_enrolled_via_dep: Option<bool>,
    i_user_approved_enrollment: Option<bool>,
    i_is_user_enrollment: Option<bool>,
    i_security_info_at: Option<i64>,
    user_count: i64,
    users_without: i64,
}

impl TryFrom<ViewRow> for DeviceRecord {
    type Error = crate::StoreError;
    fn try_from(r: ViewRow) -> Result<Self> {
        let token = match (r.t_size, r.t_escrowed_at, r.t_verified) {
            (Some(size), Some(escrowed_at), Some(verified)) => Some(TokenInfo {
                size,
                escrowed_at,
                verified,
                last_requested_at: r.t_last_requested_at,
            }),
            _ => None,
        };
        let inventory = r.i_device_id.map(|device_id| {
            DeviceInventory::from(inventory::InventoryRow {
                device_id,
                os_version: r.i_os_version,
                os_version_num: r.i_os_version_num,
                build_version: r.i_build_version,
                model: r.i_model,
                model_name: r.i_model_name,
                product_name: r.i_product_name,
                serial_number: r.i_serial_number,
                device_name: r.i_device_name,
                is_apple_silicon: r.i_is_apple_silicon,
                is_supervised: r.i_is_supervised,
                eacs_preflight: r.i_eacs_preflight,
                device_info_at: r.i_device_info_at,
                filevault_enabled: r.i_filevault_enabled,
                bt_allowed_for_authentication: r.i_bt_allowed_for_authentication,
                bt_required_for_software_update: r.i_bt_required_for_software_update,
                bt_required_for_kext_approval: r.i_bt_required_for_kext_approval,
                enrolled_via_dep: r.i_enrolled_via_dep,
                user_approved_enrollment: r.i_user_approved_enrollment,
                is_user_enrollment: r.i_is_user_enrollment,
                security_info_at: r.i_security_info_at,
            })
        });
        Ok(DeviceRecord {
            enrollment: Enrollment::try_from(r.enrollment)?,
            group_escrow_enabled: r.g_escrow,
            group_name: r.g_name,
            token,
            inventory,
            users_without_secure_token: count(r.users_without)?,
            user_count: count(r.user_count)?,
        })
    }
}

/// One device-channel enrollment as the admin views show it (one query); None if unknown or a user channel.
pub(super) async fn record<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Option<DeviceRecord>> {
    let mut q = QueryBuilder::<DB>::new(VIEW_SELECT);
    q.push(" FROM enrollments e")
        .push(VIEW_JOINS)
        .push(" WHERE e.channel = 'device' AND e.pending_for IS NULL AND e.id = ")
        .push_bind(device_id.to_string());
    let row: Option<ViewRow> = q.build_query_as().fetch_optional(pool).await?;
    row.map(DeviceRecord::try_from).transpose()
}

/// Devices matching `f`, in id order, one page, in one query.
///
/// The page is picked first, in a subquery over `enrollments` (joined to group, inventory and token only when
/// a filter needs them) ordered by id with the LIMIT, and only that page's rows are joined to the rest of the
/// view and counted, so the joins and counts cost one page whatever the planner knows. PostgreSQL without
/// statistics (a freshly loaded fleet, before autovacuum's ANALYZE) otherwise joined every device to its
/// inventory and token and then sorted: 106 ms for the first page of 10,000 devices in the ignored
/// `device_list_at_scale` test, 21 ms now (it sorts the ids alone); with statistics both shapes take 1-3 ms.
pub(super) async fn list<DB: Backend>(
    pool: &Db<DB>,
    f: &DeviceFilter,
) -> Result<Vec<DeviceRecord>> {
    let mut q = QueryBuilder::<DB>::new(VIEW_SELECT);
    q.push(" FROM (SELECT e.* FROM enrollments e");
    let joins_needed = f.has_token.is_some()
        || f.can_escrow.is_some()
        || f.apple_silicon.is_some()
        || f.os_version.is_some()
        || f.escrowed_before.is_some()
        || f.escrowed_after.is_some()
        || f.verified.is_some()
        || f.cannot_authorize.is_some()
        || f.search.is_some();
    if joins_needed {
        q.push(VIEW_JOINS);
    }
    q.push(" WHERE e.channel = 'device' AND e.pending_for IS NULL");
    if !f.include_checked_out {
        q.push(" AND e.enabled = TRUE");
    }
    if let Some(has_token) = f.has_token {
        q.push(if has_token {
            " AND t.enrollment_id IS NOT NULL"
        } else {
            " AND t.enrollment_id IS NULL"
        });
    }
    if let Some(can_escrow) = f.can_escrow {
        q.push(if can_escrow { " AND NOT " } else { " AND " })
            .push(NOT_SUPPORTED);
    }
    if let Some(apple_silicon) = f.apple_silicon {
        q.push(" AND COALESCE(i.is_apple_silicon, FALSE) = ")
            .push_bind(apple_silicon);
    }
    if let Some(os) = &f.os_version {
        // Exact version or a dotted prefix: "14.5" matches "14.5" and "14.5.1", never "14.50".
        q.push(" AND (COALESCE(i.os_version, e.os_version) = ")
            .push_bind(os.clone())
            .push(" OR SUBSTR(COALESCE(i.os_version, e.os_version), 1, ")
            .push_bind(i32::try_from(os.len() + 1).unwrap_or(i32::MAX))
            .push(") = ")
            .push_bind(format!("{os}."))
            .push(")");
    }
    if let Some(group) = &f.group_id {
        q.push(" AND e.group_id = ").push_bind(group.clone());
    }
    if let Some(before) = f.escrowed_before {
        q.push(" AND t.escrowed_at < ").push_bind(before);
    }
    if let Some(after) = f.escrowed_after {
        q.push(" AND t.escrowed_at >= ").push_bind(after);
    }
    if let Some(without) = f.users_without_secure_token {
        if !without {
            q.push(" AND NOT");
        } else {
            q.push(" AND");
        }
        q.push(concat!(
            " EXISTS (SELECT 1 FROM device_users u WHERE u.device_id = e.id AND ",
            lacks_secure_token!(),
            ")"
        ));
    }
    if let Some(verified) = f.verified {
        q.push(" AND t.verified = ").push_bind(verified);
    }
    if let Some(cannot) = f.cannot_authorize {
        q.push(if cannot { " AND " } else { " AND NOT " })
            .push(CANNOT_AUTHORIZE);
    }
    if let Some(before) = f.identity_expires_before {
        q.push(" AND e.cert_not_after < ").push_bind(before);
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        push_search(&mut q, term);
    }
    let (cmp, order) = if f.descending {
        (" AND e.id < ", " ORDER BY e.id DESC")
    } else {
        (" AND e.id > ", " ORDER BY e.id")
    };
    if let Some(after) = &f.after_id {
        q.push(cmp).push_bind(after.clone());
    }
    q.push(order)
        .push(" LIMIT ")
        .push_bind(page_limit(f.limit, 100, 1000))
        .push(") e")
        .push(VIEW_JOINS)
        .push(order);
    let rows: Vec<ViewRow> = q.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(DeviceRecord::try_from).collect()
}

#[derive(sqlx::FromRow)]
struct CountsRow {
    devices: i64,
    escrowed: i64,
    not_supported: i64,
    escrowed_unverified: i64,
    apple_silicon: i64,
    cannot_authorize: i64,
    devices_with_users_without: i64,
    users_without: i64,
    without_inventory: i64,
    identities_expiring: i64,
}

/// `CAST(COALESCE(SUM(CASE WHEN <cond> THEN 1 ELSE 0 END), 0) AS BIGINT) AS <name>`: a count of the rows where
/// `cond` holds (PostgreSQL's SUM of a BIGINT is NUMERIC, hence the casts).
macro_rules! count_where {
    ($cond:expr, $name:literal) => {
        concat!(
            "CAST(COALESCE(SUM(CASE WHEN ",
            $cond,
            " THEN 1 ELSE 0 END), 0) AS BIGINT) AS ",
            $name
        )
    };
}

/// The fleet summary's counts over enabled device enrollments, in one pass: each count is the same condition
/// as the device list's filter of that name (`NOT_SUPPORTED`, `CANNOT_AUTHORIZE`, `lacks_secure_token!`).
pub(super) async fn counts<DB: Backend>(
    pool: &Db<DB>,
    identity_expires_before: Millis,
) -> Result<FleetCounts> {
    let mut q = QueryBuilder::<DB>::new(concat!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS devices, ",
        count_where!("t.enrollment_id IS NOT NULL", "escrowed"),
        ", CAST(COALESCE(SUM(CASE WHEN t.enrollment_id IS NULL AND "
    ));
    q.push(NOT_SUPPORTED)
        .push(concat!(
            " THEN 1 ELSE 0 END), 0) AS BIGINT) AS not_supported, ",
            count_where!(
                "t.enrollment_id IS NOT NULL AND t.verified = FALSE",
                "escrowed_unverified"
            ),
            ", ",
            count_where!("COALESCE(i.is_apple_silicon, FALSE) = TRUE", "apple_silicon"),
            ", CAST(COALESCE(SUM(CASE WHEN "
        ))
        .push(CANNOT_AUTHORIZE)
        .push(concat!(
            " THEN 1 ELSE 0 END), 0) AS BIGINT) AS cannot_authorize, ",
            "CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM device_users u WHERE u.device_id = e.id AND ",
            lacks_secure_token!(),
            ") THEN 1 ELSE 0 END), 0) AS BIGINT) AS devices_with_users_without, ",
            "CAST(COALESCE(SUM((SELECT COUNT(DISTINCT u.user_key) FROM device_users u WHERE u.device_id = e.id AND ",
            lacks_secure_token!(),
            ")), 0) AS BIGINT) AS users_without, ",
            count_where!("i.device_id IS NULL", "without_inventory"),
            ", CAST(COALESCE(SUM(CASE WHEN e.cert_not_after < "
        ))
        .push_bind(identity_expires_before)
        .push(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS identities_expiring FROM enrollments e")
        .push(VIEW_JOINS)
        .push(" WHERE e.channel = 'device' AND e.pending_for IS NULL AND e.enabled = TRUE");
    let r: CountsRow = q.build_query_as().fetch_one(pool).await?;
    Ok(FleetCounts {
        devices: count(r.devices)?,
        escrowed: count(r.escrowed)?,
        not_supported: count(r.not_supported)?,
        escrowed_unverified: count(r.escrowed_unverified)?,
        apple_silicon: count(r.apple_silicon)?,
        cannot_authorize: count(r.cannot_authorize)?,
        devices_with_users_without_secure_token: count(r.devices_with_users_without)?,
        users_without_secure_token: count(r.users_without)?,
        devices_without_inventory: count(r.without_inventory)?,
        identities_expiring: count(r.identities_expiring)?,
    })
}
