//! Conformance: the audit trail.

use std::sync::Arc;

use crate::{EventFilter, NewEvent, Outcome, Store};

fn ev(subject: &str, kind: &str, outcome: Outcome, at: i64) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        enrollment_id: (subject != "unknown").then(|| subject.to_string()),
        kind: crate::EventKind::parse(kind).unwrap_or_else(|| panic!("{kind:?} is no EventKind")),
        outcome,
        detail: format!("{kind} at {at}"),
        at,
    }
}

pub(super) async fn events_filter_by_subject_kind_outcome_and_since(store: Arc<dyn Store>) {
    let all = [
        ev("UDID-A", "bootstrap_token.escrowed", Outcome::Success, 10),
        ev("UDID-B", "bootstrap_token.escrowed", Outcome::Success, 20),
        ev("UDID-A", "bootstrap_token.requested", Outcome::Refused, 30),
        ev("unknown", "auth.failed", Outcome::Failure, 40),
        ev("UDID-A", "bootstrap_token.escrowed", Outcome::Failure, 50),
    ];
    for e in &all {
        store.record_event(e).await.unwrap();
    }
    let kinds = |events: Vec<crate::Event>| {
        events
            .into_iter()
            .map(|e| (e.subject, e.kind, e.at))
            .collect::<Vec<_>>()
    };

    let got = store.events(&EventFilter::default()).await.unwrap();
    assert_eq!(got.len(), 5);
    assert!(got.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let first = &got[4];
    assert_eq!(
        (
            first.subject.as_str(),
            first.enrollment_id.as_deref(),
            first.outcome,
            first.detail.as_str()
        ),
        (
            "UDID-A",
            Some("UDID-A"),
            Outcome::Success,
            "bootstrap_token.escrowed at 10"
        )
    );
    assert_eq!(got[1].enrollment_id, None);

    let a = store
        .events(&EventFilter {
            subject: Some("UDID-A".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds(a).iter().map(|k| k.2).collect::<Vec<_>>(),
        [50, 30, 10]
    );
    let escrowed = EventFilter {
        kind: Some("bootstrap_token.escrowed".into()),
        ..Default::default()
    };
    assert_eq!(
        kinds(store.events(&escrowed).await.unwrap())
            .iter()
            .map(|k| k.2)
            .collect::<Vec<_>>(),
        [50, 20, 10]
    );
    let failures = EventFilter {
        outcome: Some(Outcome::Failure),
        ..Default::default()
    };
    assert_eq!(
        kinds(store.events(&failures).await.unwrap())
            .iter()
            .map(|k| k.2)
            .collect::<Vec<_>>(),
        [50, 40]
    );
    let combined = EventFilter {
        subject: Some("UDID-A".into()),
        kind: Some("bootstrap_token.escrowed".into()),
        outcome: Some(Outcome::Success),
        ..Default::default()
    };
    assert_eq!(
        kinds(store.events(&combined).await.unwrap()),
        [("UDID-A".into(), "bootstrap_token.escrowed".into(), 10)]
    );
    let since = EventFilter {
        since: Some(30),
        ..Default::default()
    };
    assert_eq!(
        kinds(store.events(&since).await.unwrap())
            .iter()
            .map(|k| k.2)
            .collect::<Vec<_>>(),
        [50, 40, 30]
    );
    let none = EventFilter {
        subject: Some("UDID-A' OR '1'='1".into()),
        ..Default::default()
    };
    assert!(
        store.events(&none).await.unwrap().is_empty(),
        "filters are bound, not spliced"
    );
}

pub(super) async fn events_page_newest_first_with_before_id(store: Arc<dyn Store>) {
    for i in 0..7 {
        store
            .record_event(&ev(
                "UDID-A",
                "enrollment.authenticated",
                Outcome::Success,
                i,
            ))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .events(&EventFilter {
                before_id,
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        before_id = Some(last.id);
        seen.extend(page.into_iter().map(|e| e.at));
    }
    assert_eq!(seen, [6, 5, 4, 3, 2, 1, 0]);
}

pub(super) async fn event_limit_zero_means_one_hundred(store: Arc<dyn Store>) {
    for i in 0..120 {
        store
            .record_event(&ev(
                "UDID-A",
                "enrollment.authenticated",
                Outcome::Success,
                i,
            ))
            .await
            .unwrap();
    }
    let page = store.events(&EventFilter::default()).await.unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].at, 119);
    assert_eq!(
        store
            .events(&EventFilter {
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        5
    );
}
