//! The admin device view: one device with its group, token metadata, inventory and user counts, and the
//! filtered, paged device list. Shared by both backends (compiled per backend, see `sqlite.rs`). Guarantees:
//! never selects the sealed token; the status filter is the same rule as [`crate::BootstrapStatus::compute`];
//! filters are bound parameters; pages are ordered by device id.

use sqlx::{Pool, QueryBuilder};

use super::{Db, enrollments, inventory};
use crate::rows::{count, page_limit};
use crate::{BootstrapStatus, Channel, DeviceFilter, DeviceRecord, Group, Result, TokenInfo};

/// SQL twin of `BootstrapStatus::compute`'s "unsupported" rule over `g` (group) and `i` (inventory); unknown
/// facts count as supported.
const NOT_SUPPORTED: &str = "(COALESCE(g.bootstrap_escrow_enabled, TRUE) = FALSE \
     OR COALESCE(i.os_version_num, 999999) < 101500 \
     OR COALESCE(i.is_user_enrollment, FALSE) = TRUE \
     OR (COALESCE(i.os_version_num, 999999) < 110000 AND COALESCE(i.enrolled_via_dep, TRUE) = FALSE))";

/// One device-channel enrollment as the admin views show it; None if unknown or a user channel.
pub(super) async fn record(pool: &Pool<Db>, device_id: &str) -> Result<Option<DeviceRecord>> {
    let Some(enrollment) = enrollments::get(pool, device_id).await? else {
        return Ok(None);
    };
    if enrollment.channel != Channel::Device {
        return Ok(None);
    }
    let group: Option<Group> = match enrollment.group_id.as_deref() {
        Some(id) => super::groups::get(pool, id).await?,
        None => None,
    };
    let token: Option<(i64, i64, bool, Option<i64>)> = sqlx::query_as(
        "SELECT size, escrowed_at, verified, last_requested_at FROM bootstrap_tokens WHERE enrollment_id = $1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await?;
    let (without, total): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN has_secure_token = FALSE THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM device_users WHERE device_id = $1 AND source = 'mdm'",
    )
    .bind(device_id)
    .fetch_one(pool)
    .await?;
    Ok(Some(DeviceRecord {
        group_name: group.as_ref().map(|g| g.name.clone()),
        group_escrow_enabled: group.as_ref().map(|g| g.bootstrap_escrow_enabled),
        token: token.map(
            |(size, escrowed_at, verified, last_requested_at)| TokenInfo {
                size,
                escrowed_at,
                verified,
                last_requested_at,
            },
        ),
        inventory: inventory::get(pool, device_id).await?,
        users_without_secure_token: count(without)?,
        user_count: count(total)?,
        enrollment,
    }))
}

/// Device ids matching `f`, in id order, one page.
pub(super) async fn list_ids(pool: &Pool<Db>, f: &DeviceFilter) -> Result<Vec<String>> {
    let mut q = QueryBuilder::<Db>::new(
        "SELECT e.id FROM enrollments e \
         LEFT JOIN device_groups g ON g.id = e.group_id \
         LEFT JOIN device_inventory i ON i.device_id = e.id \
         LEFT JOIN bootstrap_tokens t ON t.enrollment_id = e.id \
         WHERE e.channel = 'device'",
    );
    if !f.include_checked_out {
        q.push(" AND e.enabled = TRUE");
    }
    match f.status {
        Some(BootstrapStatus::Escrowed) => {
            q.push(" AND t.enrollment_id IS NOT NULL");
        }
        Some(BootstrapStatus::NotSupported) => {
            q.push(" AND t.enrollment_id IS NULL AND ")
                .push(NOT_SUPPORTED);
        }
        Some(BootstrapStatus::NotEscrowed) => {
            q.push(" AND t.enrollment_id IS NULL AND NOT ")
                .push(NOT_SUPPORTED);
        }
        None => {}
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
        q.push(
            " EXISTS (SELECT 1 FROM device_users u WHERE u.device_id = e.id AND u.source = 'mdm' \
             AND u.has_secure_token = FALSE)",
        );
    }
    if let Some(after) = &f.after_id {
        q.push(" AND e.id > ").push_bind(after.clone());
    }
    q.push(" ORDER BY e.id LIMIT ")
        .push_bind(page_limit(f.limit, 100, 1000));
    let ids: Vec<String> = q.build_query_scalar().fetch_all(pool).await?;
    Ok(ids)
}

pub(super) async fn list(pool: &Pool<Db>, f: &DeviceFilter) -> Result<Vec<DeviceRecord>> {
    let mut out = Vec::new();
    for id in list_ids(pool, f).await? {
        if let Some(r) = record(pool, &id).await? {
            out.push(r);
        }
    }
    Ok(out)
}
