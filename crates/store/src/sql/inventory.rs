//! The latest inventory of each device and what each source says about its users. Guarantees: a
//! DeviceInformation write replaces only the device columns and a SecurityInfo write only the security
//! columns; a user list from one source replaces that source's rows for the device in one transaction and
//! leaves the other source's rows alone; inventory only exists for an existing enrollment (NotFound
//! otherwise).

use super::Db;

use super::{Backend, SqlStore, enrollments, query, query_as};
use crate::{
    DeviceFacts, DeviceInventory, DeviceUser, FactSource, Inventory, InventoryDue, Millis, Result,
    SecurityFacts, StoreError,
};

pub(super) async fn put_device<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    f: &DeviceFacts,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    enrollments::ensure_exists::<DB>(&mut tx, device_id).await?;
    query::<DB>(
        "INSERT INTO device_inventory (device_id, os_version, os_version_num, build_version, model, model_name, \
         product_name, serial_number, device_name, is_apple_silicon, is_supervised, eacs_preflight, device_info_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (device_id) DO UPDATE SET os_version = excluded.os_version, \
         os_version_num = excluded.os_version_num, build_version = excluded.build_version, \
         model = excluded.model, model_name = excluded.model_name, product_name = excluded.product_name, \
         serial_number = excluded.serial_number, device_name = excluded.device_name, \
         is_apple_silicon = excluded.is_apple_silicon, is_supervised = excluded.is_supervised, \
         eacs_preflight = excluded.eacs_preflight, device_info_at = excluded.device_info_at",
    )
    .bind(device_id)
    .bind(&f.os_version)
    .bind(f.os_version_num)
    .bind(&f.build_version)
    .bind(&f.model)
    .bind(&f.model_name)
    .bind(&f.product_name)
    .bind(&f.serial_number)
    .bind(&f.device_name)
    .bind(f.is_apple_silicon)
    .bind(f.is_supervised)
    .bind(&f.eacs_preflight)
    .bind(f.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn put_security<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    f: &SecurityFacts,
) -> Result<()> {
    let mut tx = pool.begin_write().await?;
    enrollments::ensure_exists::<DB>(&mut tx, device_id).await?;
    query::<DB>(
        "INSERT INTO device_inventory (device_id, filevault_enabled, bt_allowed_for_authentication, \
         bt_required_for_software_update, bt_required_for_kext_approval, enrolled_via_dep, \
         user_approved_enrollment, is_user_enrollment, security_info_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (device_id) DO UPDATE SET filevault_enabled = excluded.filevault_enabled, \
         bt_allowed_for_authentication = excluded.bt_allowed_for_authentication, \
         bt_required_for_software_update = excluded.bt_required_for_software_update, \
         bt_required_for_kext_approval = excluded.bt_required_for_kext_approval, \
         enrolled_via_dep = excluded.enrolled_via_dep, \
         user_approved_enrollment = excluded.user_approved_enrollment, \
         is_user_enrollment = excluded.is_user_enrollment, security_info_at = excluded.security_info_at",
    )
    .bind(device_id)
    .bind(f.filevault_enabled)
    .bind(&f.bt_allowed_for_authentication)
    .bind(f.bt_required_for_software_update)
    .bind(f.bt_required_for_kext_approval)
    .bind(f.enrolled_via_dep)
    .bind(f.user_approved_enrollment)
    .bind(f.is_user_enrollment)
    .bind(f.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub(super) struct InventoryRow {
    pub(super) device_id: String,
    pub(super) os_version: Option<String>,
    pub(super) os_version_num: Option<i64>,
    pub(super) build_version: Option<String>,
    pub(super) model: Option<String>,
    pub(super) model_name: Option<String>,
    pub(super) product_name: Option<String>,
    pub(super) serial_number: Option<String>,
    pub(super) device_name: Option<String>,
    pub(super) is_apple_silicon: Option<bool>,
    pub(super) is_supervised: Option<bool>,
    pub(super) eacs_preflight: Option<String>,
    pub(super) device_info_at: Option<i64>,
    pub(super) filevault_enabled: Option<bool>,
    pub(super) bt_allowed_for_authentication: Option<String>,
    pub(super) bt_required_for_software_update: Option<bool>,
    pub(super) bt_required_for_kext_approval: Option<bool>,
    pub(super) enrolled_via_dep: Option<bool>,
    pub(super) user_approved_enrollment: Option<bool>,
    pub(super) is_user_enrollment: Option<bool>,
    pub(super) security_info_at: Option<i64>,
}

impl From<InventoryRow> for DeviceInventory {
    fn from(r: InventoryRow) -> Self {
        DeviceInventory {
            device: r.device_info_at.map(|at| DeviceFacts {
                os_version: r.os_version,
                os_version_num: r.os_version_num,
                build_version: r.build_version,
                model: r.model,
                model_name: r.model_name,
                product_name: r.product_name,
                serial_number: r.serial_number,
                device_name: r.device_name,
                is_apple_silicon: r.is_apple_silicon,
                is_supervised: r.is_supervised,
                eacs_preflight: r.eacs_preflight,
                at,
            }),
            security: r.security_info_at.map(|at| SecurityFacts {
                filevault_enabled: r.filevault_enabled,
                bt_allowed_for_authentication: r.bt_allowed_for_authentication,
                bt_required_for_software_update: r.bt_required_for_software_update,
                bt_required_for_kext_approval: r.bt_required_for_kext_approval,
                enrolled_via_dep: r.enrolled_via_dep,
                user_approved_enrollment: r.user_approved_enrollment,
                is_user_enrollment: r.is_user_enrollment,
                at,
            }),
            device_id: r.device_id,
        }
    }
}

pub(super) async fn get<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
) -> Result<Option<DeviceInventory>> {
    let row: Option<InventoryRow> = query_as::<DB, _>(
        "SELECT device_id, os_version, os_version_num, build_version, model, model_name, product_name, \
         serial_number, device_name, is_apple_silicon, is_supervised, eacs_preflight, device_info_at, \
         filevault_enabled, bt_allowed_for_authentication, bt_required_for_software_update, \
         bt_required_for_kext_approval, enrolled_via_dep, user_approved_enrollment, is_user_enrollment, \
         security_info_at FROM device_inventory WHERE device_id = $1",
    )
    .bind(device_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(DeviceInventory::from))
}

#[derive(sqlx::FromRow)]
struct UserRow {
    device_id: String,
    source: String,
    user_key: String,
    short_name: Option<String>,
    full_name: Option<String>,
    uid: Option<i64>,
    guid: Option<String>,
    has_secure_token: Option<bool>,
    mobile_account: Option<bool>,
    is_logged_in: Option<bool>,
    is_admin: Option<bool>,
    filevault_enabled: Option<bool>,
    volume_owner: Option<bool>,
    managed_admin: Option<bool>,
    observed_at: i64,
}

impl TryFrom<UserRow> for DeviceUser {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(DeviceUser {
            source: FactSource::from_stored(&r.source)?,
            device_id: r.device_id,
            user_key: r.user_key,
            short_name: r.short_name,
            full_name: r.full_name,
            uid: r.uid,
            guid: r.guid,
            has_secure_token: r.has_secure_token,
            mobile_account: r.mobile_account,
            is_logged_in: r.is_logged_in,
            is_admin: r.is_admin,
            filevault_enabled: r.filevault_enabled,
            volume_owner: r.volume_owner,
            managed_admin: r.managed_admin,
            observed_at: r.observed_at,
        })
    }
}

pub(super) async fn replace_users<DB: Backend>(
    pool: &Db<DB>,
    device_id: &str,
    source: FactSource,
    users: &[DeviceUser],
) -> Result<()> {
    if let Some(u) = users
        .iter()
        .find(|u| u.device_id != device_id || u.source != source)
    {
        return Err(StoreError::Conflict(format!(
            "user {:?} belongs to another device or source",
            u.user_key
        )));
    }
    let mut tx = pool.begin_write().await?;
    enrollments::ensure_exists::<DB>(&mut tx, device_id).await?;
    query::<DB>("DELETE FROM device_users WHERE device_id = $1 AND source = $2")
        .bind(device_id)
        .bind(source.as_str())
        .execute(&mut *tx)
        .await?;
    for u in users {
        query::<DB>(
            "INSERT INTO device_users (device_id, source, user_key, short_name, full_name, uid, guid, \
             has_secure_token, mobile_account, is_logged_in, is_admin, filevault_enabled, volume_owner, \
             managed_admin, observed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(device_id)
        .bind(source.as_str())
        .bind(&u.user_key)
        .bind(&u.short_name)
        .bind(&u.full_name)
        .bind(u.uid)
        .bind(&u.guid)
        .bind(u.has_secure_token)
        .bind(u.mobile_account)
        .bind(u.is_logged_in)
        .bind(u.is_admin)
        .bind(u.filevault_enabled)
        .bind(u.volume_owner)
        .bind(u.managed_admin)
        .bind(u.observed_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("user {:?} is listed twice", u.user_key))
            }
            other => other,
        })?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn users<DB: Backend>(pool: &Db<DB>, device_id: &str) -> Result<Vec<DeviceUser>> {
    let rows: Vec<UserRow> = query_as::<DB, _>(
        "SELECT device_id, source, user_key, short_name, full_name, uid, guid, has_secure_token, \
         mobile_account, is_logged_in, is_admin, filevault_enabled, volume_owner, managed_admin, observed_at \
         FROM device_users WHERE device_id = $1 ORDER BY user_key, source",
    )
    .bind(device_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(DeviceUser::try_from).collect()
}

#[async_trait::async_trait]
impl<DB: Backend> Inventory for SqlStore<DB> {
    async fn put_device_facts(&self, device_id: &str, facts: &DeviceFacts) -> Result<()> {
        put_device(&self.pool, device_id, facts).await
    }

    async fn put_security_facts(&self, device_id: &str, facts: &SecurityFacts) -> Result<()> {
        put_security(&self.pool, device_id, facts).await
    }

    async fn device_inventory(&self, device_id: &str) -> Result<Option<DeviceInventory>> {
        get(&self.pool, device_id).await
    }

    async fn replace_device_users(
        &self,
        device_id: &str,
        source: FactSource,
        users: &[DeviceUser],
    ) -> Result<()> {
        replace_users(&self.pool, device_id, source, users).await
    }

    async fn device_users(&self, device_id: &str) -> Result<Vec<DeviceUser>> {
        users(&self.pool, device_id).await
    }

    async fn inventory_due(
        &self,
        requested_before: Millis,
        request_types: &[String],
        limit: u32,
    ) -> Result<Vec<InventoryDue>> {
        super::schedule::due(&self.pool, requested_before, request_types, limit).await
    }

    async fn mark_inventory_requested(&self, device_id: &str, at: Millis) -> Result<()> {
        super::schedule::mark_requested(&self.pool, device_id, at).await
    }

    async fn inventory_requested_at(&self, device_id: &str) -> Result<Option<Millis>> {
        super::schedule::requested_at(&self.pool, device_id).await
    }

    async fn active_request_types(&self, enrollment_id: &str) -> Result<Vec<String>> {
        super::schedule::active_request_types(&self.pool, enrollment_id).await
    }

    async fn claim_user_list_refresh(
        &self,
        device_id: &str,
        now: Millis,
        not_since: Millis,
    ) -> Result<bool> {
        super::schedule::claim_user_list_refresh(&self.pool, device_id, now, not_since).await
    }
}
