//! Conformance: the command queue and its history.

use std::sync::Arc;

use super::{device, event};
use crate::{CommandStatus, NewCommand, QueueDepth, ReportOutcome, Store, StoreError};

pub(super) fn cmd(uuid: &str) -> NewCommand {
    NewCommand {
        uuid: uuid.into(),
        request_type: "DeviceInformation".into(),
        payload: format!("<plist>{uuid}</plist>").into_bytes(),
        carries_secret: false,
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

async fn next_uuid(store: &Arc<dyn Store>, id: &str, skip_notnow: bool) -> Option<String> {
    store
        .next_command(id, skip_notnow)
        .await
        .unwrap()
        .map(|c| c.uuid)
}

pub(super) async fn a_bound_enrollment_read_says_whether_its_queue_holds_anything(
    store: Arc<dyn Store>,
) {
    store
        .upsert_enrollment(
            &device("UDID-A", Some("fp-a")),
            &event("UDID-A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let bound = |store: Arc<dyn Store>| async move {
        store
            .enrollment_by_fingerprint_with_queue("fp-a")
            .await
            .unwrap()
            .map(|(e, queued)| (e.id, queued))
    };
    assert_eq!(bound(store.clone()).await, Some(("UDID-A".into(), false)));
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    assert_eq!(bound(store.clone()).await, Some(("UDID-A".into(), true)));
    store
        .record_command_result("UDID-A", "C-1", CommandStatus::NotNow, b"<notnow/>", 6_000)
        .await
        .unwrap();
    assert_eq!(
        bound(store.clone()).await,
        Some(("UDID-A".into(), true)),
        "a NotNow entry is still queued"
    );
    store
        .record_command_result(
            "UDID-A",
            "C-1",
            CommandStatus::Acknowledged,
            b"<ok/>",
            7_000,
        )
        .await
        .unwrap();
    assert_eq!(bound(store.clone()).await, Some(("UDID-A".into(), false)));
    assert_eq!(
        store.enrollment_by_fingerprint("fp-a").await.unwrap(),
        store
            .enrollment_by_fingerprint_with_queue("fp-a")
            .await
            .unwrap()
            .map(|(e, _)| e),
        "the same row as the plain read"
    );
    assert!(
        store
            .enrollment_by_fingerprint_with_queue("fp-other")
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn queue_serves_commands_in_enqueue_order(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    // Same timestamp and uuids that do not sort in enqueue order: only enqueue order may decide.
    for uuid in ["C-zulu", "C-alpha", "C-mike"] {
        store
            .enqueue(&ids(&["UDID-A"]), &cmd(uuid), 5_000)
            .await
            .unwrap();
    }
    let first = store.next_command("UDID-A", false).await.unwrap().unwrap();
    assert_eq!(first.uuid, "C-zulu");
    assert_eq!(first.status, CommandStatus::Pending);
    assert_eq!(first.payload, b"<plist>C-zulu</plist>");
    assert_eq!(first.request_type, "DeviceInformation");
    assert_eq!(first.result, None);
    for expected in ["C-zulu", "C-alpha", "C-mike"] {
        assert_eq!(
            next_uuid(&store, "UDID-A", false).await.as_deref(),
            Some(expected)
        );
        let r = store.record_command_result(
            "UDID-A",
            expected,
            CommandStatus::Acknowledged,
            b"<ack/>",
            6_000,
        );
        assert_eq!(r.await.unwrap(), ReportOutcome::Recorded);
    }
    assert_eq!(next_uuid(&store, "UDID-A", false).await, None);
}

pub(super) async fn notnow_is_skipped_in_the_same_session_and_eligible_again_after_idle(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-2"), 5_000)
        .await
        .unwrap();
    let r = store
        .record_command_result("UDID-A", "C-1", CommandStatus::NotNow, b"<notnow/>", 6_000)
        .await;
    assert_eq!(r.unwrap(), ReportOutcome::Recorded);
    // Right after the NotNow: skip it.
    assert_eq!(
        next_uuid(&store, "UDID-A", true).await.as_deref(),
        Some("C-2")
    );
    // On an Idle: it is first in line again, still NotNow, still active.
    let again = store.next_command("UDID-A", false).await.unwrap().unwrap();
    assert_eq!(
        (again.uuid.as_str(), again.status),
        ("C-1", CommandStatus::NotNow)
    );
    assert_eq!(again.updated_at, 6_000);
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 2);
    // Only NotNow entries left: skipping leaves nothing.
    let r = store
        .record_command_result("UDID-A", "C-2", CommandStatus::NotNow, b"<notnow/>", 6_100)
        .await;
    assert_eq!(r.unwrap(), ReportOutcome::Recorded);
    assert_eq!(next_uuid(&store, "UDID-A", true).await, None);
    assert_eq!(
        next_uuid(&store, "UDID-A", false).await.as_deref(),
        Some("C-1")
    );
}

pub(super) async fn queue_depth_counts_unfinished_entries_of_every_enrollment_by_status(
    store: Arc<dyn Store>,
) {
    assert_eq!(store.queue_depth().await.unwrap(), QueueDepth::default());
    enrolled(&store, "UDID-A").await;
    enrolled(&store, "UDID-B").await;
    store
        .enqueue(&ids(&["UDID-A", "UDID-B"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-2"), 5_000)
        .await
        .unwrap();
    store
        .enqueue(&ids(&["UDID-B"]), &cmd("C-3"), 5_000)
        .await
        .unwrap();
    let depth = |pending, not_now| QueueDepth { pending, not_now };
    assert_eq!(store.queue_depth().await.unwrap(), depth(4, 0));
    let notnow = store
        .record_command_result("UDID-A", "C-1", CommandStatus::NotNow, b"<notnow/>", 6_000)
        .await;
    assert_eq!(notnow.unwrap(), ReportOutcome::Recorded);
    assert_eq!(store.queue_depth().await.unwrap(), depth(3, 1));
    let done = store
        .record_command_result(
            "UDID-B",
            "C-3",
            CommandStatus::Acknowledged,
            b"<ok/>",
            6_000,
        )
        .await;
    assert_eq!(done.unwrap(), ReportOutcome::Recorded);
    assert_eq!(
        store.queue_depth().await.unwrap(),
        depth(2, 1),
        "a finished command leaves the count"
    );
    let pool = store.pool_stats();
    assert!(
        pool.idle <= pool.size && pool.size <= pool.max && pool.max >= 1,
        "{pool:?}"
    );
}

pub(super) async fn acknowledged_command_moves_to_history_with_its_result(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    let r = store
        .record_command_result(
            "UDID-A",
            "C-1",
            CommandStatus::Acknowledged,
            b"<report/>",
            6_000,
        )
        .await;
    assert_eq!(r.unwrap(), ReportOutcome::Recorded);
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
    assert_eq!(store.next_command("UDID-A", false).await.unwrap(), None);
    let done = store.command("UDID-A", "C-1").await.unwrap().unwrap();
    assert_eq!(done.status, CommandStatus::Acknowledged);
    assert_eq!(done.result.as_deref(), Some(&b"<report/>"[..]));
    assert_eq!((done.created_at, done.updated_at), (5_000, 6_000));
    assert_eq!(done.payload, b"<plist>C-1</plist>");
    assert_eq!(store.command_history("UDID-A", 10).await.unwrap(), [done]);
}

pub(super) async fn error_and_format_error_reports_also_finish_the_command(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    for (uuid, status) in [
        ("C-err", CommandStatus::Error),
        ("C-fmt", CommandStatus::CommandFormatError),
    ] {
        store
            .enqueue(&ids(&["UDID-A"]), &cmd(uuid), 5_000)
            .await
            .unwrap();
        let r = store
            .record_command_result("UDID-A", uuid, status, b"<ErrorChain/>", 6_000)
            .await;
        assert_eq!(r.unwrap(), ReportOutcome::Recorded);
        let done = store.command("UDID-A", uuid).await.unwrap().unwrap();
        assert_eq!(done.status, status);
        assert_eq!(done.result.as_deref(), Some(&b"<ErrorChain/>"[..]));
    }
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
}

pub(super) async fn a_second_report_for_a_finished_command_is_duplicate_and_changes_nothing(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    let r = store
        .record_command_result(
            "UDID-A",
            "C-1",
            CommandStatus::Acknowledged,
            b"<first/>",
            6_000,
        )
        .await;
    assert_eq!(r.unwrap(), ReportOutcome::Recorded);
    let before = store.command("UDID-A", "C-1").await.unwrap();
    for status in [
        CommandStatus::Acknowledged,
        CommandStatus::Error,
        CommandStatus::NotNow,
    ] {
        let r = store
            .record_command_result("UDID-A", "C-1", status, b"<second/>", 7_000)
            .await;
        assert_eq!(r.unwrap(), ReportOutcome::Duplicate, "{status:?}");
    }
    assert_eq!(store.command("UDID-A", "C-1").await.unwrap(), before);
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
}

pub(super) async fn report_for_a_uuid_never_queued_here_is_unknown_command(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    enrolled(&store, "UDID-B").await;
    store
        .enqueue(&ids(&["UDID-B"]), &cmd("C-for-B"), 5_000)
        .await
        .unwrap();
    for (uuid, status) in [
        ("C-never", CommandStatus::Acknowledged),
        ("C-for-B", CommandStatus::Acknowledged),
        ("C-for-B", CommandStatus::NotNow),
    ] {
        let r = store
            .record_command_result("UDID-A", uuid, status, b"<x/>", 6_000)
            .await;
        assert_eq!(
            r.unwrap(),
            ReportOutcome::UnknownCommand,
            "{uuid} {status:?}"
        );
    }
    assert_eq!(
        store.active_queue_len("UDID-B").await.unwrap(),
        1,
        "B's command is untouched"
    );
    assert_eq!(store.command("UDID-A", "C-for-B").await.unwrap(), None);
}

pub(super) async fn enqueue_to_an_unknown_enrollment_is_not_found_and_queues_nothing(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    let err = store
        .enqueue(&ids(&["UDID-A", "UDID-ghost"]), &cmd("C-1"), 5_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
    assert_eq!(store.command("UDID-A", "C-1").await.unwrap(), None);
    // Nothing of the failed call remains: the same command can now be queued, even with another payload.
    let other = NewCommand {
        payload: b"<plist>other</plist>".to_vec(),
        ..cmd("C-1")
    };
    store
        .enqueue(&ids(&["UDID-A"]), &other, 5_100)
        .await
        .unwrap();
    assert_eq!(
        store
            .next_command("UDID-A", false)
            .await
            .unwrap()
            .unwrap()
            .payload,
        b"<plist>other</plist>"
    );
    // An empty list queues nothing and is not an error.
    store.enqueue(&[], &cmd("C-2"), 5_200).await.unwrap();
}

pub(super) async fn a_command_and_its_events_are_queued_and_recorded_together_or_not_at_all(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    enrolled(&store, "UDID-B").await;
    let queued = |subject: &str| {
        let store = store.clone();
        let subject = subject.to_string();
        async move {
            store
                .events(&crate::EventFilter {
                    subject: Some(subject),
                    kind: Some("command.queued".into()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    let noted = |id: &str| crate::NewEvent {
        detail: format!("DeviceInformation C-1 for {id}"),
        ..event(id, "command.queued")
    };
    store
        .enqueue_recorded(
            &ids(&["UDID-A", "UDID-B"]),
            &cmd("C-1"),
            None,
            5_000,
            &[noted("UDID-A"), noted("UDID-B")],
        )
        .await
        .unwrap();
    assert_eq!(
        next_uuid(&store, "UDID-A", false).await.as_deref(),
        Some("C-1")
    );
    assert_eq!(
        next_uuid(&store, "UDID-B", false).await.as_deref(),
        Some("C-1")
    );
    assert_eq!((queued("UDID-A").await, queued("UDID-B").await), (1, 1));
    // A failed queueing (an unknown enrollment) records nothing either.
    let err = store
        .enqueue_recorded(
            &ids(&["UDID-A", "UDID-ghost"]),
            &cmd("C-2"),
            None,
            5_100,
            &[noted("UDID-A"), noted("UDID-ghost")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.command("UDID-A", "C-2").await.unwrap(), None);
    assert_eq!((queued("UDID-A").await, queued("UDID-ghost").await), (1, 0));
    // So does a command carrying a secret offered unsealed.
    let secret = NewCommand {
        carries_secret: true,
        ..cmd("C-3")
    };
    let err = store
        .enqueue_recorded(&ids(&["UDID-A"]), &secret, None, 5_200, &[noted("UDID-A")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(queued("UDID-A").await, 1);
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 1);
}

pub(super) async fn follow_ups_queue_the_user_list_only_with_its_claim_in_one_write(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    let noted = |uuid: &str| crate::NewEvent {
        detail: format!("queued {uuid}"),
        ..event("UDID-A", "command.queued")
    };
    let recorded = || async {
        store
            .events(&crate::EventFilter {
                subject: Some("UDID-A".into()),
                kind: Some("command.queued".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    };
    let claim = |uuid: &str, not_since| crate::UserListClaim {
        command: cmd(uuid),
        events: vec![noted(uuid)],
        not_since,
    };
    let others = |uuids: &[&str]| -> Vec<(NewCommand, Vec<crate::NewEvent>)> {
        uuids.iter().map(|u| (cmd(u), vec![noted(u)])).collect()
    };
    // Never claimed: the UserList is claimed and queued first, then the others, each recorded.
    let claimed = store
        .enqueue_follow_ups("UDID-A", Some(&claim("UL-1", 0)), &others(&["SI-1"]), 5_000)
        .await
        .unwrap();
    assert!(claimed);
    assert_eq!(
        next_uuid(&store, "UDID-A", false).await.as_deref(),
        Some("UL-1")
    );
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 2);
    assert_eq!(recorded().await, 2);
    // Claimed at 5,000, not claimable since 4,000: the UserList and its event are skipped, the rest is queued.
    let claimed = store
        .enqueue_follow_ups(
            "UDID-A",
            Some(&claim("UL-2", 4_000)),
            &others(&["SI-2"]),
            5_100,
        )
        .await
        .unwrap();
    assert!(!claimed);
    assert_eq!(store.command("UDID-A", "UL-2").await.unwrap(), None);
    assert!(store.command("UDID-A", "SI-2").await.unwrap().is_some());
    assert_eq!(recorded().await, 3);
    // Claimable again (not since 5,500), but a later command fails: the claim is undone with everything else,
    // so the next claim in the same window still wins.
    let mut clash = others(&["SI-1"]);
    clash[0].0.payload = b"<plist>other</plist>".to_vec();
    let err = store
        .enqueue_follow_ups("UDID-A", Some(&claim("UL-3", 5_500)), &clash, 6_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.command("UDID-A", "UL-3").await.unwrap(), None);
    assert!(
        store
            .claim_user_list_refresh("UDID-A", 6_100, 5_500)
            .await
            .unwrap(),
        "the failed write claimed nothing"
    );
    // Only the UserList, and nothing to claim: nothing is written.
    let claimed = store
        .enqueue_follow_ups("UDID-A", Some(&claim("UL-4", 6_000)), &[], 6_200)
        .await
        .unwrap();
    assert!(!claimed);
    assert_eq!(store.command("UDID-A", "UL-4").await.unwrap(), None);
    // A command carrying a secret is refused before anything is written; an unknown device is NotFound.
    let mut secret = claim("UL-5", 99_000);
    secret.command.carries_secret = true;
    let err = store
        .enqueue_follow_ups("UDID-A", Some(&secret), &others(&["SI-5"]), 100_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.command("UDID-A", "SI-5").await.unwrap(), None);
    let err = store
        .enqueue_follow_ups(
            "UDID-ghost",
            Some(&claim("UL-6", 0)),
            &others(&["SI-6"]),
            100_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 3);
    assert_eq!(recorded().await, 3);
}

pub(super) async fn enqueueing_a_uuid_twice_or_with_another_payload_is_a_conflict(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    enrolled(&store, "UDID-B").await;
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    let err = store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let changed = NewCommand {
        request_type: "EraseDevice".into(),
        ..cmd("C-1")
    };
    let err = store
        .enqueue(&ids(&["UDID-B"]), &changed, 5_100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.active_queue_len("UDID-B").await.unwrap(), 0);
    // The same command for another enrollment in a later call is fine.
    store
        .enqueue(&ids(&["UDID-B"]), &cmd("C-1"), 5_200)
        .await
        .unwrap();
    // Finished for A: queuing it again for A is still a conflict.
    store
        .record_command_result("UDID-A", "C-1", CommandStatus::Acknowledged, b"<a/>", 6_000)
        .await
        .unwrap();
    let err = store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 6_100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // Listing an id twice in one call queues it once.
    store
        .enqueue(&ids(&["UDID-A", "UDID-A"]), &cmd("C-2"), 6_200)
        .await
        .unwrap();
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 1);
}

pub(super) async fn active_queue_stays_empty_after_1000_acknowledged_commands(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    for i in 0..1000 {
        let uuid = format!("C-{i:04}");
        store
            .enqueue(&ids(&["UDID-A"]), &cmd(&uuid), 5_000 + i)
            .await
            .unwrap();
        assert_eq!(
            next_uuid(&store, "UDID-A", false).await.as_deref(),
            Some(uuid.as_str())
        );
        let r = store.record_command_result(
            "UDID-A",
            &uuid,
            CommandStatus::Acknowledged,
            b"<ack/>",
            6_000 + i,
        );
        assert_eq!(r.await.unwrap(), ReportOutcome::Recorded);
    }
    assert_eq!(store.active_queue_len("UDID-A").await.unwrap(), 0);
    assert_eq!(store.next_command("UDID-A", false).await.unwrap(), None);
    assert_eq!(
        store.command_history("UDID-A", 0).await.unwrap().len(),
        100,
        "0 means the default page"
    );
    let all = store.command_history("UDID-A", 5_000).await.unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0].uuid, "C-0999");
    assert_eq!(all[999].uuid, "C-0000");
}

pub(super) async fn command_history_lists_active_and_finished_newest_first(store: Arc<dyn Store>) {
    enrolled(&store, "UDID-A").await;
    enrolled(&store, "UDID-B").await;
    for uuid in ["C-1", "C-2", "C-3", "C-4"] {
        store
            .enqueue(&ids(&["UDID-A"]), &cmd(uuid), 5_000)
            .await
            .unwrap();
    }
    store
        .enqueue(&ids(&["UDID-B"]), &cmd("C-B"), 5_000)
        .await
        .unwrap();
    store
        .record_command_result("UDID-A", "C-1", CommandStatus::Acknowledged, b"<a/>", 6_000)
        .await
        .unwrap();
    store
        .record_command_result("UDID-A", "C-3", CommandStatus::Error, b"<e/>", 6_000)
        .await
        .unwrap();
    store
        .record_command_result("UDID-A", "C-4", CommandStatus::NotNow, b"<n/>", 6_000)
        .await
        .unwrap();
    let history = store.command_history("UDID-A", 10).await.unwrap();
    let summary: Vec<(&str, CommandStatus)> = history
        .iter()
        .map(|c| (c.uuid.as_str(), c.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("C-4", CommandStatus::NotNow),
            ("C-3", CommandStatus::Error),
            ("C-2", CommandStatus::Pending),
            ("C-1", CommandStatus::Acknowledged),
        ]
    );
    assert_eq!(store.command_history("UDID-A", 2).await.unwrap().len(), 2);
    assert_eq!(
        store
            .command("UDID-A", "C-2")
            .await
            .unwrap()
            .unwrap()
            .status,
        CommandStatus::Pending
    );
}

pub(super) async fn concurrent_reports_of_one_command_record_it_exactly_once(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "UDID-A").await;
    store
        .enqueue(&ids(&["UDID-A"]), &cmd("C-1"), 5_000)
        .await
        .unwrap();
    let reports: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let body = format!("<report n={i}/>").into_bytes();
                store
                    .record_command_result(
                        "UDID-A",
                        "C-1",
                        CommandStatus::Acknowledged,
                        &body,
                        6_000 + i,
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for report in reports {
        outcomes.push(report.await.unwrap().unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ReportOutcome::Recorded)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ReportOutcome::Duplicate)
            .count(),
        5,
        "{outcomes:?}"
    );
    assert_eq!(store.command_history("UDID-A", 10).await.unwrap().len(), 1);
}

pub(super) async fn concurrent_enqueues_of_one_command_for_different_enrollments_all_land(
    store: Arc<dyn Store>,
) {
    let devices: Vec<String> = (0..6).map(|i| format!("UDID-{i}")).collect();
    for id in &devices {
        enrolled(&store, id).await;
    }
    let calls: Vec<_> = devices
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.enqueue(&[id], &cmd("C-shared"), 5_000).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    for id in &devices {
        assert_eq!(
            next_uuid(&store, id, false).await.as_deref(),
            Some("C-shared")
        );
    }
}
