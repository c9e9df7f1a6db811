//! Conformance: commands that carry a secret (issue 11) are stored redacted with a sealed payload that lives
//! exactly as long as some enrollment still has the command queued.

use std::sync::Arc;

use super::{device, event, event_count};
use crate::{
    COMMAND_PAYLOAD_FIELD, CommandStatus, NewCommand, ReportOutcome, SealedSecret, Store,
    StoreError, command_payload_owner,
};

const REDACTED: &[u8] = b"<plist>PIN: redacted</plist>";

fn secret_cmd(uuid: &str) -> NewCommand {
    NewCommand {
        uuid: uuid.into(),
        request_type: "EraseDevice".into(),
        payload: REDACTED.to_vec(),
        carries_secret: true,
    }
}

fn sealed(uuid: &str) -> SealedSecret {
    SealedSecret {
        owner: command_payload_owner(uuid),
        field: COMMAND_PAYLOAD_FIELD.into(),
        key_id: "k1".into(),
        blob: format!("ciphertext-of-{uuid}").into_bytes(),
        updated_at: 5_000,
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn enrolled(store: &Arc<dyn Store>, id: &str) {
    store
        .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
        .await
        .unwrap();
}

async fn sealed_payload(store: &Arc<dyn Store>, uuid: &str) -> Option<SealedSecret> {
    store
        .sealed_secret(&command_payload_owner(uuid), COMMAND_PAYLOAD_FIELD)
        .await
        .unwrap()
}

pub(super) async fn a_command_carrying_a_secret_is_only_queued_sealed(store: Arc<dyn Store>) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    // Never in the clear.
    assert!(matches!(
        store
            .enqueue(&ids(&["D1"]), &secret_cmd("S-1"), 5_000)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.command("D1", "S-1").await.unwrap(), None);
    // Not marked, keyed to another command or field, no target: refused, nothing stored.
    let unmarked = NewCommand {
        carries_secret: false,
        ..secret_cmd("S-1")
    };
    let mut other_owner = sealed("S-1");
    other_owner.owner = command_payload_owner("S-2");
    let mut other_field = sealed("S-1");
    other_field.field = "bootstrap_token".into();
    for (cmd, s, targets) in [
        (&unmarked, sealed("S-1"), ids(&["D1"])),
        (&secret_cmd("S-1"), other_owner, ids(&["D1"])),
        (&secret_cmd("S-1"), other_field, ids(&["D1"])),
        (&secret_cmd("S-1"), sealed("S-1"), vec![]),
    ] {
        assert!(matches!(
            store.enqueue_sealed(&targets, cmd, &s, 5_000).await,
            Err(StoreError::Conflict(_))
        ));
    }
    // An unknown enrollment: NotFound, and neither the command nor its sealed payload is kept.
    assert!(matches!(
        store
            .enqueue_sealed(
                &ids(&["D1", "NOPE"]),
                &secret_cmd("S-1"),
                &sealed("S-1"),
                5_000
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.command("D1", "S-1").await.unwrap(), None);
    assert_eq!(sealed_payload(&store, "S-1").await, None);
    // The real thing: redacted row, sealed payload beside it.
    store
        .enqueue_sealed(
            &ids(&["D1", "D2"]),
            &secret_cmd("S-1"),
            &sealed("S-1"),
            5_000,
        )
        .await
        .unwrap();
    let next = store.next_command("D1", false).await.unwrap().unwrap();
    assert_eq!(next.uuid, "S-1");
    assert!(next.carries_secret);
    assert_eq!(next.payload, REDACTED);
    assert_eq!(sealed_payload(&store, "S-1").await, Some(sealed("S-1")));
    let history = store.command_history("D2", 0).await.unwrap();
    assert!(history[0].carries_secret && history[0].payload == REDACTED);
    // Queued once: the same uuid again, sealed or not, is a Conflict and the sealed payload is unchanged.
    let mut again = sealed("S-1");
    again.blob = b"another secret".to_vec();
    enrolled(&store, "D3").await;
    assert!(matches!(
        store
            .enqueue_sealed(&ids(&["D3"]), &secret_cmd("S-1"), &again, 5_100)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let plain = NewCommand {
        payload: REDACTED.to_vec(),
        carries_secret: false,
        ..secret_cmd("S-1")
    };
    assert!(matches!(
        store.enqueue(&ids(&["D3"]), &plain, 5_100).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.command("D3", "S-1").await.unwrap(), None);
    assert_eq!(sealed_payload(&store, "S-1").await, Some(sealed("S-1")));
    // Nor can it be overwritten as a stand-alone secret.
    assert!(matches!(
        store.put_sealed_secret(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(sealed_payload(&store, "S-1").await, Some(sealed("S-1")));
    // Ordinary commands are still not marked.
    let ordinary = NewCommand {
        uuid: "P-1".into(),
        request_type: "SecurityInfo".into(),
        payload: b"<plist>P-1</plist>".to_vec(),
        carries_secret: false,
    };
    store
        .enqueue(&ids(&["D3"]), &ordinary, 5_200)
        .await
        .unwrap();
    assert!(
        !store
            .command("D3", "P-1")
            .await
            .unwrap()
            .unwrap()
            .carries_secret
    );
}

pub(super) async fn a_sealed_payload_outlives_notnow_and_goes_with_the_last_finished_entry(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    store
        .enqueue_sealed(
            &ids(&["D1", "D2"]),
            &secret_cmd("S-1"),
            &sealed("S-1"),
            5_000,
        )
        .await
        .unwrap();
    let report = |dev: &'static str, status| {
        let store = store.clone();
        async move {
            store
                .record_command_result(dev, "S-1", status, b"<plist>report</plist>", 6_000)
                .await
                .unwrap()
        }
    };
    // NotNow: it will be sent again, so the payload stays.
    assert_eq!(
        report("D1", CommandStatus::NotNow).await,
        ReportOutcome::Recorded
    );
    assert!(sealed_payload(&store, "S-1").await.is_some());
    // D1 done, D2 still has it queued: it stays.
    assert_eq!(
        report("D1", CommandStatus::Acknowledged).await,
        ReportOutcome::Recorded
    );
    assert!(sealed_payload(&store, "S-1").await.is_some());
    // The last entry finishes (an Error counts): gone, and the history keeps the redacted row.
    assert_eq!(
        report("D2", CommandStatus::Error).await,
        ReportOutcome::Recorded
    );
    assert_eq!(sealed_payload(&store, "S-1").await, None);
    let done = store.command("D2", "S-1").await.unwrap().unwrap();
    assert_eq!(done.status, CommandStatus::Error);
    assert!(done.carries_secret);
    assert_eq!(done.payload, REDACTED);
    // A late duplicate changes nothing.
    assert_eq!(
        report("D2", CommandStatus::Acknowledged).await,
        ReportOutcome::Duplicate
    );
    // A one-target Acknowledged deletes it at once.
    store
        .enqueue_sealed(&ids(&["D1"]), &secret_cmd("S-2"), &sealed("S-2"), 7_000)
        .await
        .unwrap();
    store
        .record_command_result("D1", "S-2", CommandStatus::Acknowledged, b"<plist/>", 7_100)
        .await
        .unwrap();
    assert_eq!(sealed_payload(&store, "S-2").await, None);
}

pub(super) async fn checkout_drops_sealed_payloads_no_longer_queued_anywhere(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    store
        .enqueue_sealed(&ids(&["D1"]), &secret_cmd("S-1"), &sealed("S-1"), 5_000)
        .await
        .unwrap();
    store
        .enqueue_sealed(
            &ids(&["D1", "D2"]),
            &secret_cmd("S-2"),
            &sealed("S-2"),
            5_000,
        )
        .await
        .unwrap();
    store
        .enqueue_sealed(&ids(&["D2"]), &secret_cmd("S-3"), &sealed("S-3"), 5_000)
        .await
        .unwrap();
    let before = event_count(&store).await;
    store
        .checkout("D1", 6_000, &event("D1", "enrollment.checked_out"))
        .await
        .unwrap();
    assert_eq!(event_count(&store).await, before + 1);
    assert_eq!(sealed_payload(&store, "S-1").await, None);
    // Still queued for D2.
    assert!(sealed_payload(&store, "S-2").await.is_some());
    assert!(sealed_payload(&store, "S-3").await.is_some());
}

pub(super) async fn sealed_payloads_are_rewrapped_with_the_other_secrets(store: Arc<dyn Store>) {
    enrolled(&store, "D1").await;
    store
        .enqueue_sealed(&ids(&["D1"]), &secret_cmd("S-1"), &sealed("S-1"), 5_000)
        .await
        .unwrap();
    let page = store.sealed_secrets_page(None, 0).await.unwrap();
    assert!(page.contains(&sealed("S-1")), "{page:?}");
    assert!(
        store
            .sealed_secret_key_counts()
            .await
            .unwrap()
            .contains(&("k1".to_string(), 1))
    );
    assert!(
        store
            .replace_sealed_secret(
                &command_payload_owner("S-1"),
                COMMAND_PAYLOAD_FIELD,
                &sealed("S-1").blob,
                "k2",
                b"rewrapped",
                5_500,
            )
            .await
            .unwrap()
    );
    let now = sealed_payload(&store, "S-1").await.unwrap();
    assert_eq!(
        (now.key_id.as_str(), &now.blob[..]),
        ("k2", &b"rewrapped"[..])
    );
}
