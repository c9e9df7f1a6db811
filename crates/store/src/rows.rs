//! Database rows as the drivers see them (plain strings, integers, bytes) and their checked conversion into
//! the public types. Guarantees: a row holding a value this store never writes becomes
//! `StoreError::Database`, never a panic; both backends map rows through this one code.

use crate::model::*;
use crate::{Result, StoreError};

/// `LocalRow` (`sql/local.rs`) for a row struct: each field from the column of its name, as sqlx's `FromRow`
/// derive reads it; `flatten` fields from the same row.
macro_rules! local_row {
    ($row:ident { $($field:ident),* $(,)? } $(flatten { $($nested:ident: $nested_ty:ty),* $(,)? })?) => {
        impl crate::sql::LocalRow for $row {
            fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Self::from_columns(&crate::sql::ByName::new(row))
            }
        }

        impl $row {
            /// Read from `columns`, which a row holding this one shares (the names are read once a row).
            pub(crate) fn from_columns(columns: &crate::sql::ByName<'_, '_>) -> rusqlite::Result<Self> {
                Ok($row {
                    $($field: columns.get(stringify!($field))?,)*
                    $($($nested: <$nested_ty>::from_columns(columns)?,)*)?
                })
            }
        }
    };
}

/// Column list matching [`EnrollmentRow`], for `concat!` into static SQL.
macro_rules! enrollment_columns {
    () => {
        "id, device_id, channel, user_id, user_short_name, user_long_name, group_id, serial_number, model, \
         model_name, device_name, os_version, build_version, product_name, topic, push_token, push_magic, \
         awaiting_configuration, cert_fingerprint, enabled, token_update_count, enrolled_at, updated_at, \
         last_seen_at, pending_for, has_pending, blocked_at, cert_not_after"
    };
}
pub(crate) use enrollment_columns;

/// An [`EnrollmentRow`] and whether its command queue holds any entry.
#[derive(sqlx::FromRow)]
pub(crate) struct EnrollmentQueueRow {
    #[sqlx(flatten)]
    pub(crate) enrollment: EnrollmentRow,
    pub(crate) queued: bool,
}
local_row!(EnrollmentQueueRow { queued } flatten { enrollment: EnrollmentRow });

#[derive(sqlx::FromRow)]
pub(crate) struct EnrollmentRow {
    id: String,
    device_id: String,
    channel: String,
    user_id: Option<String>,
    user_short_name: Option<String>,
    user_long_name: Option<String>,
    group_id: Option<String>,
    serial_number: Option<String>,
    model: Option<String>,
    model_name: Option<String>,
    device_name: Option<String>,
    os_version: Option<String>,
    build_version: Option<String>,
    product_name: Option<String>,
    topic: Option<String>,
    push_token: Option<Vec<u8>>,
    push_magic: Option<String>,
    awaiting_configuration: Option<bool>,
    cert_fingerprint: Option<String>,
    enabled: bool,
    token_update_count: i64,
    enrolled_at: i64,
    updated_at: i64,
    last_seen_at: i64,
    pending_for: Option<String>,
    has_pending: bool,
    blocked_at: Option<i64>,
    cert_not_after: Option<i64>,
}
local_row!(EnrollmentRow {
    id,
    device_id,
    channel,
    user_id,
    user_short_name,
    user_long_name,
    group_id,
    serial_number,
    model,
    model_name,
    device_name,
    os_version,
    build_version,
    product_name,
    topic,
    push_token,
    push_magic,
    awaiting_configuration,
    cert_fingerprint,
    enabled,
    token_update_count,
    enrolled_at,
    updated_at,
    last_seen_at,
    pending_for,
    has_pending,
    blocked_at,
    cert_not_after,
});

impl TryFrom<EnrollmentRow> for Enrollment {
    type Error = StoreError;
    fn try_from(r: EnrollmentRow) -> Result<Self> {
        Ok(Enrollment {
            channel: Channel::from_stored(&r.channel)?,
            id: r.id,
            device_id: r.device_id,
            user_id: r.user_id,
            user_short_name: r.user_short_name,
            user_long_name: r.user_long_name,
            group_id: r.group_id,
            serial_number: r.serial_number,
            model: r.model,
            model_name: r.model_name,
            device_name: r.device_name,
            os_version: r.os_version,
            build_version: r.build_version,
            product_name: r.product_name,
            topic: r.topic,
            push_token: r.push_token,
            push_magic: r.push_magic,
            awaiting_configuration: r.awaiting_configuration,
            cert_fingerprint: r.cert_fingerprint,
            enabled: r.enabled,
            token_update_count: r.token_update_count,
            enrolled_at: r.enrolled_at,
            updated_at: r.updated_at,
            last_seen_at: r.last_seen_at,
            pending_for: r.pending_for,
            has_pending: r.has_pending,
            blocked_at: r.blocked_at,
            cert_not_after: r.cert_not_after,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    subject: String,
    enrollment_id: Option<String>,
    kind: String,
    outcome: String,
    detail: String,
    at: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Event {
            outcome: Outcome::from_stored(&r.outcome)?,
            id: r.id,
            subject: r.subject,
            enrollment_id: r.enrollment_id,
            kind: r.kind,
            detail: r.detail,
            at: r.at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SealedSecretRow {
    owner: String,
    field: String,
    key_id: String,
    blob: Vec<u8>,
    updated_at: i64,
}
local_row!(SealedSecretRow {
    owner,
    field,
    key_id,
    blob,
    updated_at
});

impl From<SealedSecretRow> for SealedSecret {
    fn from(r: SealedSecretRow) -> Self {
        SealedSecret {
            owner: r.owner,
            field: r.field,
            key_id: r.key_id,
            blob: r.blob,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BootstrapTokenRow {
    enrollment_id: String,
    size: i64,
    digest: String,
    escrowed_at: i64,
    verified: bool,
    last_requested_at: Option<i64>,
    #[sqlx(flatten)]
    sealed: SealedSecretRow,
}
local_row!(BootstrapTokenRow {
    enrollment_id,
    size,
    digest,
    escrowed_at,
    verified,
    last_requested_at,
} flatten { sealed: SealedSecretRow });

impl From<BootstrapTokenRow> for BootstrapTokenRecord {
    fn from(r: BootstrapTokenRow) -> Self {
        BootstrapTokenRecord {
            enrollment_id: r.enrollment_id,
            sealed: r.sealed.into(),
            size: r.size,
            digest: r.digest,
            escrowed_at: r.escrowed_at,
            verified: r.verified,
            last_requested_at: r.last_requested_at,
        }
    }
}

/// An [`EnrollmentQueueRow`] and the enrollment's Bootstrap Token (with its sealed secret) from the same row,
/// the token's columns named `token_…` and NULL when there is none (SQLite's GetBootstrapToken read).
pub(crate) struct EnrollmentTokenRow {
    pub(crate) enrollment: EnrollmentQueueRow,
    pub(crate) token: Option<BootstrapTokenRow>,
}

impl crate::sql::LocalRow for EnrollmentTokenRow {
    fn from_local(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let columns = crate::sql::ByName::new(row);
        let enrollment = EnrollmentQueueRow::from_columns(&columns)?;
        // Both LEFT JOINs matched, or there is no token to serve (a token row without its secret is none,
        // as `Tokens::bootstrap_token`'s inner join has it).
        let enrollment_id: Option<String> = columns.get("token_enrollment_id")?;
        let owner: Option<String> = columns.get("token_owner")?;
        let token = if let (Some(enrollment_id), Some(owner)) = (enrollment_id, owner) {
            Some(BootstrapTokenRow {
                enrollment_id,
                size: columns.get("token_size")?,
                digest: columns.get("token_digest")?,
                escrowed_at: columns.get("token_escrowed_at")?,
                verified: columns.get("token_verified")?,
                last_requested_at: columns.get("token_last_requested_at")?,
                sealed: SealedSecretRow {
                    owner,
                    field: columns.get("token_field")?,
                    key_id: columns.get("token_key_id")?,
                    blob: columns.get("token_blob")?,
                    updated_at: columns.get("token_updated_at")?,
                },
            })
        } else {
            None
        };
        Ok(EnrollmentTokenRow { enrollment, token })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    id: String,
    name: String,
    bootstrap_escrow_enabled: bool,
    prompt_user_to_allow_bootstrap_token_for_authentication: bool,
    created_at: i64,
    updated_at: i64,
}
local_row!(GroupRow {
    id,
    name,
    bootstrap_escrow_enabled,
    prompt_user_to_allow_bootstrap_token_for_authentication,
    created_at,
    updated_at,
});

impl From<GroupRow> for Group {
    fn from(r: GroupRow) -> Self {
        Group {
            id: r.id,
            name: r.name,
            bootstrap_escrow_enabled: r.bootstrap_escrow_enabled,
            prompt_user_to_allow_bootstrap_token_for_authentication: r
                .prompt_user_to_allow_bootstrap_token_for_authentication,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct QueuedCommandRow {
    enrollment_id: String,
    uuid: String,
    request_type: String,
    payload: Vec<u8>,
    carries_secret: bool,
    status: String,
    result: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<QueuedCommandRow> for QueuedCommand {
    type Error = StoreError;
    fn try_from(r: QueuedCommandRow) -> Result<Self> {
        Ok(QueuedCommand {
            status: CommandStatus::from_stored(&r.status)?,
            enrollment_id: r.enrollment_id,
            uuid: r.uuid,
            request_type: r.request_type,
            payload: r.payload,
            carries_secret: r.carries_secret,
            result: r.result,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Convert every row, failing on the first bad one.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// A page size: 0 means `default`, anything above `max` is capped.
pub(crate) fn page_limit(limit: u32, default: u32, max: u32) -> i64 {
    i64::from(if limit == 0 { default } else { limit.min(max) })
}

/// A database COUNT as u64 (COUNT is never negative; a negative value is a broken driver, not a panic).
pub(crate) fn count(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| StoreError::Database("database returned a negative count".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limit_zero_means_default_and_large_is_capped() {
        assert_eq!(page_limit(0, 100, 1000), 100);
        assert_eq!(page_limit(7, 100, 1000), 7);
        assert_eq!(page_limit(u32::MAX, 100, 1000), 1000);
    }

    #[test]
    fn negative_count_is_an_error() {
        assert_eq!(count(3).unwrap(), 3);
        assert!(matches!(count(-1), Err(StoreError::Database(_))));
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupAccountSettingsRow {
    group_id: String,
    admin_short_name: String,
    admin_full_name: String,
    admin_hidden: bool,
    primary_account: String,
    dont_auto_populate_primary_account_info: bool,
    lock_primary_account_info: bool,
    primary_account_full_name: Option<String>,
    primary_account_user_name: Option<String>,
    updated_at: i64,
}

impl TryFrom<GroupAccountSettingsRow> for crate::GroupAccountSettings {
    type Error = crate::StoreError;
    fn try_from(r: GroupAccountSettingsRow) -> Result<Self> {
        let primary_account =
            crate::PrimaryAccount::parse(&r.primary_account).ok_or_else(|| {
                crate::StoreError::Database(format!(
                    "group {}: unknown primary_account {:?}",
                    r.group_id, r.primary_account
                ))
            })?;
        Ok(crate::GroupAccountSettings {
            group_id: r.group_id,
            admin_short_name: r.admin_short_name,
            admin_full_name: r.admin_full_name,
            admin_hidden: r.admin_hidden,
            primary_account,
            dont_auto_populate_primary_account_info: r.dont_auto_populate_primary_account_info,
            lock_primary_account_info: r.lock_primary_account_info,
            primary_account_full_name: r.primary_account_full_name,
            primary_account_user_name: r.primary_account_user_name,
            updated_at: r.updated_at,
        })
    }
}
