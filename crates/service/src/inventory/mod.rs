//! Inventory from command results: SecurityInfo, UserList and DeviceInformation reports become the device's
//! latest inventory (typed columns) and its MDM user rows. Guarantees: a result that does not parse is
//! recorded as a failure event and changes nothing; only device-channel results are stored; recovery-key
//! blobs and other secrets in the report are never copied (protocol's typed structs leave them out).

use protocol::command::{Command, CommandReport, INVENTORY_DEVICE_QUERIES};
use protocol::results::{DeviceInformation, SecurityInfo, UserList};
use store::{
    DeviceFacts, DeviceUser, Enrollment, FactSource, Millis, Outcome, SecurityFacts, os_version_num,
};

use crate::commands::new_command_uuid;

mod users;

use crate::{EventKind, MdmService, Scoped, ServiceError};
use users::mdm_users;
pub use users::{USER_LIST_REFRESH_INTERVAL_MS, normalize_guid};

/// The commands of a device's inventory, in the order they are queued.
pub const INVENTORY_REQUEST_TYPES: [&str; 3] = ["SecurityInfo", "UserList", "DeviceInformation"];

/// A fresh inventory command of one of [`INVENTORY_REQUEST_TYPES`].
fn inventory_command(request_type: &str) -> Option<Command> {
    let uuid = new_command_uuid();
    match request_type {
        "SecurityInfo" => Some(Command::security_info(uuid)),
        "UserList" => Some(Command::user_list(uuid)),
        "DeviceInformation" => Some(Command::device_information(uuid, INVENTORY_DEVICE_QUERIES)),
        _ => None,
    }
}

/// macOS 10.15.x, the only release that needs `Settings/MDMOptions BootstrapTokenAllowed` (11+ reads the
/// profile's `com.apple.mdm.bootstraptoken` capability instead).
fn is_catalina(os_version: Option<&str>) -> bool {
    os_version
        .and_then(os_version_num)
        .is_some_and(|n| (101500..101600).contains(&n))
}

/// What one tick of the inventory schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryTick {
    /// Devices that got at least one inventory command, oldest request first.
    pub queued: Vec<String>,
    /// Inventory commands queued in all.
    pub commands: usize,
    /// Devices whose queueing failed (recorded as `inventory.queue_failed` events).
    pub failed: usize,
}

/// The schedule-claim kind of the inventory schedule (`store::Cluster::claim_schedule_round`).
const INVENTORY_ROUND: &str = "inventory";

impl MdmService {
    /// The TokenUpdate that completed enrollment. A Mac waiting in Setup Assistant (`AwaitingConfiguration`
    /// true) first gets its setup commands (AccountConfiguration when its group names a managed admin, then
    /// DeviceConfigured: see `accounts`). Then SecurityInfo, UserList and DeviceInformation, and for a macOS
    /// 10.15 Mac whose group escrows, Settings/MDMOptions with the full effective set
    /// (`BootstrapTokenAllowed` true); then push. A failure is recorded as an event and logged; it never fails
    /// the device's TokenUpdate.
    pub(crate) async fn queue_enrollment_inventory(&self, device: &Enrollment) {
        self.scoped().queue_enrollment_inventory(device).await
    }

    /// The follow-ups of a SetBootstrapToken: UserList (rate-limited, see [`MdmService::refresh_user_list`])
    /// first, then when a token was `escrowed` the SecurityInfo re-ask, and one push once both are queued: the
    /// Mac fetches both on it, in that order. The Mac's queue is read once for both.
    ///
    /// Both commands and the UserList's refresh claim are one write (`Scoped::enqueue_follow_ups`: the claim
    /// and its UserList both written or neither): in an escrow storm of Macs new to it, the claim and then the
    /// commands, each waited for in its own group-commit batch, were what bounded the storm, not the escrows.
    pub(crate) async fn after_set_bootstrap_token(&self, device_id: &str, escrowed: bool) {
        const WHY: &str = "a SetBootstrapToken";
        let scoped = self.scoped();
        // What is queued already, read once; then every follow-up is one write (one group-commit batch the
        // Mac's SetBootstrapToken waits for, not one per command and one for the UserList claim).
        let (result, security_info) = match scoped.store.active_request_types(device_id).await {
            Err(err) => (Err(ServiceError::from(err)), escrowed),
            Ok(queued) => {
                let has = |t: &str| queued.iter().any(|q| q == t);
                let user_list = (!has("UserList")).then(|| Command::user_list(new_command_uuid()));
                let others: Vec<Command> = (escrowed && !has("SecurityInfo"))
                    .then(|| Command::security_info(new_command_uuid()))
                    .into_iter()
                    .collect();
                if user_list.is_none() && others.is_empty() {
                    return;
                }
                let not_since = scoped.now().saturating_sub(USER_LIST_REFRESH_INTERVAL_MS);
                let queued = scoped
                    .enqueue_follow_ups(
                        device_id,
                        user_list.as_ref().map(|c| (c, not_since)),
                        &others,
                    )
                    .await
                    .map(|user_list| others.len() + usize::from(user_list));
                (queued, !others.is_empty())
            }
        };
        if security_info {
            // One push for both: the Mac fetches UserList, then SecurityInfo, on it.
            scoped
                .after_queueing(device_id, "bootstrap token escrow", result)
                .await;
        } else if let Err(err) = result {
            // UserList alone has no push of its own (`refresh_user_list`).
            scoped.not_queued(device_id, "UserList", WHY, &err).await;
        }
    }

    /// The Mac's users may have changed (a successful agent action, a SetBootstrapToken, a user-channel
    /// TokenUpdate): queue UserList, unless one is still queued or one was asked in the last
    /// [`USER_LIST_REFRESH_INTERVAL_MS`]. No push of its own: it rides on the Mac's next check-in (after a
    /// SetBootstrapToken, on the SecurityInfo push queued after it). The agent re-reports on its own after
    /// every cycle. A failure is recorded as an event; it never fails the caller's request.
    pub(crate) async fn refresh_user_list(&self, device_id: &str, why: &str) {
        self.scoped().refresh_user_list(device_id, why).await
    }

    /// One tick of the inventory schedule: re-queue inventory for at most `limit` devices last asked more than
    /// `max_age` ms before `now`, oldest first, skipping commands still queued for a device, then push them
    /// (one batch). Testable without a timer; `server` calls it periodically.
    pub async fn queue_due_inventory(
        &self,
        now: Millis,
        max_age: Millis,
        limit: u32,
    ) -> Result<InventoryTick, ServiceError> {
        self.scoped().queue_due_inventory(now, max_age, limit).await
    }

    /// [`Self::queue_due_inventory`] at the service clock's now.
    pub async fn queue_due_inventory_now(
        &self,
        max_age: Millis,
        limit: u32,
    ) -> Result<InventoryTick, ServiceError> {
        self.scoped().queue_due_inventory_now(max_age, limit).await
    }

    /// Store what an acknowledged inventory command reported. Other request types are ignored.
    pub(crate) async fn store_inventory(
        &self,
        enrollment_id: &str,
        device_id: &str,
        request_type: &str,
        report: &CommandReport,
    ) -> Result<(), ServiceError> {
        self.scoped()
            .store_inventory(enrollment_id, device_id, request_type, report)
            .await
    }
}

/// The store roles of this component (`Scoped` methods below).
pub(crate) trait InventoryRoles:
    store::Inventory
    + store::Events
    + store::Commands
    + store::Enrollments
    + store::Push
    + store::Groups
    + store::Secrets
    + store::Cluster
{
}
impl<
    T: ?Sized
        + store::Cluster
        + store::Inventory
        + store::Events
        + store::Commands
        + store::Enrollments
        + store::Push
        + store::Groups
        + store::Secrets,
> InventoryRoles for T
{
}

impl<S: ?Sized + InventoryRoles> Scoped<'_, S> {
    /// Queue the inventory commands of `request_types` (in that order) that are not already queued for the
    /// device, and note when it was asked. Returns how many were queued. The commands and their
    /// `command.queued` events are one write ([`Scoped::enqueue_follow_ups`]): a Mac checking in meanwhile, or
    /// an admin listing its queue, sees all of them or none, never SecurityInfo without the rest.
    async fn queue_inventory_commands(
        &self,
        device_id: &str,
        request_types: &[&str],
        already_pending: &[String],
        at: Millis,
    ) -> Result<usize, ServiceError> {
        let commands: Vec<Command> = request_types
            .iter()
            .filter(|t| !already_pending.iter().any(|p| p == *t))
            .filter_map(|t| inventory_command(t))
            .collect();
        if !commands.is_empty() {
            self.enqueue_follow_ups(device_id, None, &commands).await?;
        }
        self.store.mark_inventory_requested(device_id, at).await?;
        Ok(commands.len())
    }

    /// The TokenUpdate that completed enrollment. A Mac waiting in Setup Assistant (`AwaitingConfiguration`
    /// true) first gets its setup commands (AccountConfiguration when its group names a managed admin, then
    /// DeviceConfigured: see `accounts`). Then SecurityInfo, UserList and DeviceInformation, and for a macOS
    /// 10.15 Mac whose group escrows, Settings/MDMOptions with the full effective set
    /// (`BootstrapTokenAllowed` true); then push. A failure is recorded as an event and logged; it never fails
    /// the device's TokenUpdate.
    pub(crate) async fn queue_enrollment_inventory(&self, device: &Enrollment) {
        let result = async {
            let mut queued = 0;
            if device.awaiting_configuration == Some(true) {
                queued += self.queue_setup_commands(device).await?;
            }
            // The schedule may have found this Mac due between the TokenUpdate's commit and now (it finished
            // enrolling, was never asked): both would queue the same inventory. The round's claim decides; a
            // schedule that won it queues these very commands. Released once the Mac is marked asked: a
            // schedule that listed it before then finds it no longer due (`queue_due_inventory`).
            let now = self.now();
            if self
                .claim_schedule_round(INVENTORY_ROUND, &device.id, now)
                .await?
            {
                let pending = self.store.active_request_types(&device.id).await;
                let done = match pending {
                    Ok(pending) => {
                        self.queue_inventory_commands(
                            &device.id,
                            &INVENTORY_REQUEST_TYPES,
                            &pending,
                            now,
                        )
                        .await
                    }
                    Err(e) => Err(e.into()),
                };
                self.release_schedule_round(INVENTORY_ROUND, &device.id)
                    .await;
                queued += done?;
            }
            if is_catalina(device.os_version.as_deref())
                && crate::checkin::bootstrap::escrow_policy(&*self.store, device)
                    .await?
                    .is_ok()
            {
                let options = self.effective_mdm_options(device).await?;
                let command = Command::settings_mdm_options(new_command_uuid(), &options);
                self.enqueue(std::slice::from_ref(&device.id), &command)
                    .await?;
                queued += 1;
            }
            Ok::<usize, ServiceError>(queued)
        }
        .await;
        self.after_queueing(&device.id, "enrollment", result).await;
    }

    /// Agent rows stored without a GUID (an older agent) take the key of MDM's row with the same short name,
    /// so the two are one user in counts and reports too. Rows whose new key another agent row has keep theirs.
    async fn rekey_agent_users(&self, device_id: &str) -> Result<(), ServiceError> {
        let rows = self.store.device_users(device_id).await?;
        let mdm: std::collections::HashMap<&str, &str> = rows
            .iter()
            .filter(|r| r.source == FactSource::Mdm)
            .filter_map(|r| r.short_name.as_deref().map(|n| (n, r.user_key.as_str())))
            .collect();
        let mut agent: Vec<DeviceUser> = rows
            .iter()
            .filter(|r| r.source == FactSource::Agent)
            .cloned()
            .collect();
        let mut changed = false;
        for i in 0..agent.len() {
            let r = &agent[i];
            let Some(key) = r.short_name.as_deref().and_then(|n| mdm.get(n)) else {
                continue;
            };
            if r.guid.is_some() || r.user_key == *key || agent.iter().any(|o| o.user_key == *key) {
                continue;
            }
            agent[i].user_key = key.to_string();
            changed = true;
        }
        if changed {
            self.store
                .replace_device_users(device_id, FactSource::Agent, &agent)
                .await?;
        }
        Ok(())
    }

    /// One tick of the inventory schedule (several instances may run it at once: each device is claimed for
    /// the round first, so only one of them queues and pushes for it): re-queue inventory for at most `limit` devices last asked more than
    /// `max_age` ms before `now`, oldest first, skipping commands still queued for a device, then push them
    /// (one batch). Testable without a timer; `server` calls it periodically.
    pub(crate) async fn queue_due_inventory(
        &self,
        now: Millis,
        max_age: Millis,
        limit: u32,
    ) -> Result<InventoryTick, ServiceError> {
        let mut tick = InventoryTick::default();
        if limit == 0 {
            return Ok(tick);
        }
        let types: Vec<String> = INVENTORY_REQUEST_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let requested_before = now.saturating_sub(max_age);
        let due = self
            .store
            .inventory_due(requested_before, &types, limit)
            .await?;
        for d in due {
            // Another instance's schedule may be working on the same due list: one of them takes each device.
            if !self
                .claim_schedule_round(INVENTORY_ROUND, &d.device_id, now)
                .await?
            {
                continue;
            }
            // Listed before another round (the Mac's enrollment) asked it and let go: no longer due.
            if self
                .store
                .inventory_requested_at(&d.device_id)
                .await?
                .is_some_and(|at| at >= requested_before)
            {
                continue;
            }
            match self
                .queue_inventory_commands(&d.device_id, &INVENTORY_REQUEST_TYPES, &d.pending, now)
                .await
            {
                Ok(n) => {
                    tick.commands += n;
                    if n > 0 {
                        tick.queued.push(d.device_id);
                    }
                }
                Err(err) => {
                    tick.failed += 1;
                    self.after_queueing(&d.device_id, "the inventory schedule", Err(err))
                        .await;
                }
            }
        }
        if !tick.queued.is_empty() {
            let results = self.push(&tick.queued).await?;
            let unsent = results.iter().filter(|r| r.error.is_some()).count();
            if unsent > 0 {
                tracing::debug!(unsent, "inventory schedule: some pushes not sent");
            }
        }
        Ok(tick)
    }

    /// [`Self::queue_due_inventory`] at the service clock's now.
    pub(crate) async fn queue_due_inventory_now(
        &self,
        max_age: Millis,
        limit: u32,
    ) -> Result<InventoryTick, ServiceError> {
        self.queue_due_inventory(self.now(), max_age, limit).await
    }

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
                    self.rekey_agent_users(device_id).await?;
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
                EventKind::InventoryUpdated,
                Outcome::Success,
                format!("{request_type} stored"),
            ),
            Err(reason) => (
                EventKind::InventoryRejected,
                Outcome::Failure,
                format!("{request_type} result not stored: {reason}"),
            ),
        };
        let event = self.event(device_id, Some(device_id), kind, outcome, detail);
        self.store.record_event(&event).await?;
        Ok(())
    }
}

impl<S: ?Sized + store::Admin + store::Commands + store::Events + store::Groups> Scoped<'_, S> {
    /// A group's escrow was switched back on: its macOS 10.15 Macs get Settings/MDMOptions again (10.15 reads
    /// `BootstrapTokenAllowed` instead of the profile's capability), with the full effective set so nothing
    /// else resets. Queued and pushed per Mac; a Mac that fails is an `inventory.queue_failed` event.
    pub(crate) async fn resend_catalina_mdm_options(
        &self,
        group_id: &str,
        by: &crate::apikeys::Actor,
    ) -> Result<(), ServiceError> {
        let mut f = store::DeviceFilter {
            group_id: Some(group_id.to_string()),
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = self.store.list_devices(&f).await?;
            for d in &page {
                let device = &d.enrollment;
                if !is_catalina(device.os_version.as_deref()) {
                    continue;
                }
                let result = async {
                    let options = self.effective_mdm_options(device).await?;
                    let command = Command::settings_mdm_options(new_command_uuid(), &options);
                    self.enqueue_audited(std::slice::from_ref(&device.id), &command, by)
                        .await?;
                    Ok::<usize, ServiceError>(1)
                }
                .await;
                self.after_queueing(&device.id, "escrow switched back on", result)
                    .await;
            }
            match page.last() {
                Some(last) => f.after_id = Some(last.enrollment.id.clone()),
                None => break,
            }
        }
        Ok(())
    }
}
