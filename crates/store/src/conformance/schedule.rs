//! Conformance: the automatic inventory schedule (who is due, oldest first, batch limit, pending skip).

use std::sync::Arc;

use super::{device, event, user};
use crate::{CommandStatus, NewCommand, Store, StoreError};

fn types() -> Vec<String> {
    ["SecurityInfo", "UserList", "DeviceInformation"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn cmd(uuid: &str, request_type: &str) -> NewCommand {
    NewCommand {
        uuid: uuid.into(),
        request_type: request_type.into(),
        payload: format!("<plist>{uuid}</plist>").into_bytes(),
        carries_secret: false,
    }
}

/// An enrolled device that has sent its first TokenUpdate.
async fn enrolled(store: &Arc<dyn Store>, id: &str) {
    let mut e = device(id, None);
    e.token_update_count = 1;
    store
        .upsert_enrollment(&e, &event(id, "enrollment.completed"))
        .await
        .unwrap();
}

fn ids(due: &[crate::InventoryDue]) -> Vec<&str> {
    due.iter().map(|d| d.device_id.as_str()).collect()
}

pub(super) async fn inventory_due_is_oldest_first_within_the_limit(store: Arc<dyn Store>) {
    for id in ["D-1", "D-2", "D-3", "D-4"] {
        enrolled(&store, id).await;
    }
    // Never asked: D-1, D-4. Asked at 500: D-3; at 100: D-2.
    store.mark_inventory_requested("D-3", 500).await.unwrap();
    store.mark_inventory_requested("D-2", 100).await.unwrap();
    let due = store.inventory_due(1_000, &types(), 10).await.unwrap();
    assert_eq!(ids(&due), ["D-1", "D-4", "D-2", "D-3"]);
    assert_eq!(due[0].requested_at, None);
    assert_eq!(due[2].requested_at, Some(100));

    let due = store.inventory_due(1_000, &types(), 3).await.unwrap();
    assert_eq!(ids(&due), ["D-1", "D-4", "D-2"], "the batch limit holds");

    // Only those asked before the cut-off are due.
    let due = store.inventory_due(500, &types(), 10).await.unwrap();
    assert_eq!(ids(&due), ["D-1", "D-4", "D-2"]);

    // Asking again moves a device to the back.
    store.mark_inventory_requested("D-1", 900).await.unwrap();
    assert_eq!(
        store.inventory_requested_at("D-1").await.unwrap(),
        Some(900)
    );
    let due = store.inventory_due(1_000, &types(), 10).await.unwrap();
    assert_eq!(ids(&due), ["D-4", "D-2", "D-3", "D-1"]);
    assert_eq!(store.inventory_requested_at("D-9").await.unwrap(), None);
    assert!(
        store
            .inventory_due(1_000, &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn inventory_due_skips_unfinished_checked_out_and_user_enrollments(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D-1").await;
    // Authenticated but no TokenUpdate yet: its inventory is queued when enrollment completes.
    store
        .upsert_enrollment(
            &device("D-2", None),
            &event("D-2", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    enrolled(&store, "D-3").await;
    let mut u = user("D-1", "U-1");
    u.token_update_count = 1;
    store
        .upsert_enrollment(&u, &event("D-1", "enrollment.user_channel"))
        .await
        .unwrap();
    store
        .checkout("D-3", 1_500, &event("D-3", "enrollment.checked_out"))
        .await
        .unwrap();
    let due = store.inventory_due(10_000, &types(), 10).await.unwrap();
    assert_eq!(ids(&due), ["D-1"]);
}

pub(super) async fn inventory_due_reports_pending_types_and_skips_fully_pending_devices(
    store: Arc<dyn Store>,
) {
    for id in ["D-1", "D-2", "D-3"] {
        enrolled(&store, id).await;
    }
    let all = ["D-1".to_string()];
    for (uuid, rt) in [
        ("C-1", "SecurityInfo"),
        ("C-2", "UserList"),
        ("C-3", "DeviceInformation"),
    ] {
        store.enqueue(&all, &cmd(uuid, rt), 1_000).await.unwrap();
    }
    // D-2: UserList still queued (a NotNow keeps it active), plus an unrelated command.
    let d2 = ["D-2".to_string()];
    store
        .enqueue(&d2, &cmd("C-4", "UserList"), 1_000)
        .await
        .unwrap();
    store
        .enqueue(&d2, &cmd("C-5", "InstallProfile"), 1_000)
        .await
        .unwrap();
    store
        .record_command_result("D-2", "C-4", CommandStatus::NotNow, b"<plist/>", 1_100)
        .await
        .unwrap();
    // D-3: its SecurityInfo was answered, so nothing of it is pending.
    let d3 = ["D-3".to_string()];
    store
        .enqueue(&d3, &cmd("C-6", "SecurityInfo"), 1_000)
        .await
        .unwrap();
    store
        .record_command_result(
            "D-3",
            "C-6",
            CommandStatus::Acknowledged,
            b"<plist/>",
            1_100,
        )
        .await
        .unwrap();

    let due = store.inventory_due(10_000, &types(), 10).await.unwrap();
    assert_eq!(
        ids(&due),
        ["D-2", "D-3"],
        "D-1 has every inventory command queued"
    );
    assert_eq!(due[0].pending, ["UserList"]);
    assert!(due[1].pending.is_empty());

    assert_eq!(
        store.active_request_types("D-2").await.unwrap(),
        ["UserList", "InstallProfile"]
    );
    assert!(store.active_request_types("D-3").await.unwrap().is_empty());
}

pub(super) async fn marking_an_unknown_device_is_not_found(store: Arc<dyn Store>) {
    match store.mark_inventory_requested("nope", 1).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.inventory_requested_at("nope").await.unwrap(), None);
}

pub(super) async fn a_user_list_refresh_is_claimed_once_per_window(store: Arc<dyn Store>) {
    enrolled(&store, "D-1").await;
    enrolled(&store, "D-2").await;
    // Never claimed: the first claim wins; a second inside the window does not.
    assert!(
        store
            .claim_user_list_refresh("D-1", 1_000, 700)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_user_list_refresh("D-1", 1_100, 800)
            .await
            .unwrap()
    );
    // Claimed at 1000, which is not before 1000: still refused.
    assert!(
        !store
            .claim_user_list_refresh("D-1", 1_300, 1_000)
            .await
            .unwrap()
    );
    // Another device has its own window.
    assert!(
        store
            .claim_user_list_refresh("D-2", 1_100, 800)
            .await
            .unwrap()
    );
    // Once the last claim is older than the window, the next one wins and restarts it.
    assert!(
        store
            .claim_user_list_refresh("D-1", 1_400, 1_001)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_user_list_refresh("D-1", 1_500, 1_200)
            .await
            .unwrap()
    );
    match store.claim_user_list_refresh("nope", 1, 0).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub(super) async fn concurrent_user_list_refresh_claims_let_one_win(store: Arc<dyn Store>) {
    enrolled(&store, "D-1").await;
    let claims = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_user_list_refresh("D-1", 2_000 + i, 1_500)
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1);
}
