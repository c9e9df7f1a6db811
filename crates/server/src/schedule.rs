//! The automatic inventory schedule: a background task started with the server and stopped with it.
//!
//! Every tick (a minute, or the interval when that is shorter) it asks the service to re-queue inventory for
//! at most `batch` devices whose last request is older than the interval, oldest first
//! (`MdmService::queue_due_inventory`). With the defaults (a day, 200 per minute) 100,000 Macs are all asked
//! within about 8 hours and never all at once. The business rules live in `service`; this is only the timer.
//!
//! The identity renewal schedule (issue 11) runs beside it: every [`RENEWAL_TICK`] it asks the service to queue
//! renewal profiles for at most `batch` Macs whose identity expires within the renewal window and that have
//! none outstanding (`MdmService::renew_expiring_identities`).

use std::time::Duration;

use service::MdmService;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest pause between two ticks.
pub const MAX_TICK: Duration = Duration::from_secs(60);

/// Start the schedule; None when `interval` is zero (disabled). Stops when `shutdown` turns true.
pub fn spawn_inventory_schedule(
    mdm: MdmService,
    interval: Duration,
    batch: u32,
    shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if interval.is_zero() || batch == 0 {
        tracing::info!("inventory schedule disabled");
        return None;
    }
    let max_age = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let tick = interval.min(MAX_TICK);
    Some(tokio::spawn(every(tick, shutdown, move || {
        let mdm = mdm.clone();
        async move {
            match mdm.queue_due_inventory_now(max_age, batch).await {
                Ok(t) if t.queued.is_empty() && t.failed == 0 => {}
                Ok(t) => tracing::info!(
                    devices = t.queued.len(),
                    commands = t.commands,
                    failed = t.failed,
                    "inventory schedule queued"
                ),
                Err(e) => tracing::warn!(error = %e, "inventory schedule tick failed"),
            }
        }
    })))
}

/// Run `pass` every `tick` (the first at once) until `shutdown` turns true; a pass is never cut short.
async fn every<F, Fut>(tick: Duration, mut shutdown: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            break;
        }
        pass().await;
    }
}

/// Write the counted refusals of unauthenticated requests to the store every
/// [`service::edge::FLUSH_INTERVAL`], and once more at shutdown.
pub fn spawn_auth_failure_flush(
    mdm: MdmService,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(service::edge::FLUSH_INTERVAL);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stop = tokio::select! {
                _ = timer.tick() => false,
                changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
            };
            if let Err(e) = mdm.flush_auth_failures().await {
                tracing::warn!(error = %e, "could not write the counted auth failures; kept for the next try");
            }
            if stop {
                break;
            }
        }
    })
}

/// Pause between two passes of the identity renewal schedule.
pub const RENEWAL_TICK: Duration = Duration::from_secs(600);

/// Start the identity renewal schedule; None when `renewal_days` or `batch` is zero (disabled). Stops when
/// `shutdown` turns true.
pub fn spawn_renewal_schedule(
    mdm: MdmService,
    renewal_days: u32,
    batch: u32,
    shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if renewal_days == 0 || batch == 0 {
        tracing::info!("automatic identity renewal disabled");
        return None;
    }
    Some(tokio::spawn(every(RENEWAL_TICK, shutdown, move || {
        let mdm = mdm.clone();
        async move {
            match mdm.renew_expiring_identities(batch).await {
                Ok(t) if t.queued.is_empty() && t.failed == 0 => {}
                Ok(t) => tracing::info!(
                    devices = t.queued.len(),
                    failed = t.failed,
                    "identity renewal schedule queued renewal profiles"
                ),
                Err(e) => tracing::warn!(error = %e, "identity renewal schedule pass failed"),
            }
        }
    })))
}

/// Pause before listening again after the database could not be reached.
const SIGNAL_RETRY: Duration = Duration::from_secs(1);

/// Listen for the signals of the other instances on the same PostgreSQL database (`service::cluster`): wake
/// agent polls, and rebuild the push provider from the store with `apns` when the push certificate changed
/// (or signals may have been missed). None on SQLite (one instance). Stops when `shutdown` turns true.
pub async fn spawn_instance_signals(
    mdm: MdmService,
    apns: crate::apns::ApnsSettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(mut listener) = mdm.listen_to_instances().await? else {
        return Ok(None);
    };
    Ok(Some(tokio::spawn(async move {
        loop {
            let heard = tokio::select! {
                heard = listener.recv() => heard,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
            };
            let notice = match heard {
                Ok(notice) => notice,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the other instances' signals; listening again");
                    tokio::select! {
                        _ = tokio::time::sleep(SIGNAL_RETRY) => {}
                        _ = shutdown.changed() => {}
                    }
                    // Whatever was sent meanwhile is gone: re-read what is kept in memory.
                    store::Notice {
                        origin: String::new(),
                        signal: store::Signal::Resync,
                    }
                }
            };
            if mdm.on_instance_signal(&notice) {
                match crate::apns::install(&mdm, &apns).await {
                    Ok(_) => {
                        tracing::info!("push provider rebuilt from the stored push certificate")
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "the stored push certificate cannot be used; pushes fail until a new one is uploaded")
                    }
                }
            }
        }
    })))
}
