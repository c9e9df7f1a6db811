//! Conformance: unauthenticated refusals are counted per (kind, source, bucket), details capped, old and
//! excess rows pruned.

use std::sync::Arc;

use crate::{AuthFailureCount, AuthFailureFilter, MAX_AUTH_FAILURE_DETAIL, Store};

fn count(kind: &str, source: &str, bucket: i64, n: i64, at: i64, detail: &str) -> AuthFailureCount {
    AuthFailureCount {
        kind: kind.into(),
        source: source.into(),
        bucket,
        count: n,
        first_at: at,
        last_at: at,
        detail: detail.into(),
    }
}

async fn all(store: &Arc<dyn Store>) -> Vec<AuthFailureCount> {
    store
        .auth_failures(&AuthFailureFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

pub(super) async fn auth_failure_counts_add_up_per_kind_source_and_bucket(store: Arc<dyn Store>) {
    store
        .add_auth_failures(
            &[
                count(
                    "scep.refused",
                    "203.0.113.5",
                    3_600_000,
                    3,
                    3_600_100,
                    "first",
                ),
                count(
                    "auth.failed",
                    "203.0.113.5",
                    3_600_000,
                    1,
                    3_600_200,
                    "udid A",
                ),
            ],
            0,
            1000,
        )
        .await
        .unwrap();
    store
        .add_auth_failures(
            &[
                count(
                    "scep.refused",
                    "203.0.113.5",
                    3_600_000,
                    4,
                    3_600_900,
                    "latest",
                ),
                count(
                    "scep.refused",
                    "2001:db8:1:2::/64",
                    3_600_000,
                    2,
                    3_600_300,
                    "v6",
                ),
                count(
                    "scep.refused",
                    "203.0.113.5",
                    7_200_000,
                    1,
                    7_200_001,
                    "next hour",
                ),
            ],
            0,
            1000,
        )
        .await
        .unwrap();
    let rows = all(&store).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    // Newest bucket first, then kind, then source.
    assert_eq!(rows[0].bucket, 7_200_000);
    assert_eq!(
        rows[1],
        count(
            "auth.failed",
            "203.0.113.5",
            3_600_000,
            1,
            3_600_200,
            "udid A"
        )
    );
    assert_eq!(rows[2].source, "2001:db8:1:2::/64");
    let merged = &rows[3];
    assert_eq!(
        (merged.kind.as_str(), merged.source.as_str()),
        ("scep.refused", "203.0.113.5")
    );
    assert_eq!(merged.count, 7);
    assert_eq!((merged.first_at, merged.last_at), (3_600_100, 3_600_900));
    assert_eq!(merged.detail, "latest");

    // An older batch arriving late adds its count but keeps the latest detail and times.
    store
        .add_auth_failures(
            &[count(
                "scep.refused",
                "203.0.113.5",
                3_600_000,
                1,
                3_600_050,
                "late",
            )],
            0,
            1000,
        )
        .await
        .unwrap();
    let filtered = store
        .auth_failures(&AuthFailureFilter {
            kind: Some("scep.refused".into()),
            source: Some("203.0.113.5".into()),
            since: Some(3_600_000),
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 2);
    let merged = filtered.iter().find(|r| r.bucket == 3_600_000).unwrap();
    assert_eq!(
        (merged.count, merged.first_at, merged.last_at),
        (8, 3_600_050, 3_600_900)
    );
    assert_eq!(merged.detail, "latest");
    let since = store
        .auth_failures(&AuthFailureFilter {
            since: Some(7_000_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
}

pub(super) async fn auth_failure_details_are_capped_on_a_character_boundary(store: Arc<dyn Store>) {
    let long = "é".repeat(2 * MAX_AUTH_FAILURE_DETAIL);
    store
        .add_auth_failures(
            &[count("enroll.refused", "198.51.100.1", 0, 1, 5, &long)],
            0,
            1000,
        )
        .await
        .unwrap();
    let rows = all(&store).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].detail.len() <= MAX_AUTH_FAILURE_DETAIL);
    assert_eq!(rows[0].detail.len(), MAX_AUTH_FAILURE_DETAIL);
    assert!(rows[0].detail.chars().all(|c| c == 'é'));
}

pub(super) async fn old_and_excess_auth_failure_rows_are_pruned(store: Arc<dyn Store>) {
    let batch: Vec<_> = (0..10)
        .map(|i| {
            count(
                "auth.failed",
                &format!("192.0.2.{i}"),
                1_000 * i,
                1,
                1_000 * i + 1,
                "x",
            )
        })
        .collect();
    store.add_auth_failures(&batch, 0, 1000).await.unwrap();
    assert_eq!(all(&store).await.len(), 10);
    // Buckets before 3000 are forgotten; of the rest only the 4 most recently seen stay.
    store.add_auth_failures(&[], 3_000, 4).await.unwrap();
    let rows = all(&store).await;
    let mut sources: Vec<_> = rows.iter().map(|r| r.source.as_str()).collect();
    sources.sort();
    assert_eq!(
        sources,
        ["192.0.2.6", "192.0.2.7", "192.0.2.8", "192.0.2.9"]
    );
}
