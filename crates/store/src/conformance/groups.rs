//! Conformance: groups and group membership.

use std::sync::Arc;

use super::{device, event};
use crate::{Group, Store, StoreError};

fn group(id: &str, name: &str) -> Group {
    Group {
        id: id.into(),
        name: name.into(),
        bootstrap_escrow_enabled: true,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 100,
        updated_at: 100,
    }
}

pub(super) async fn groups_create_get_by_name_list_and_update(store: Arc<dyn Store>) {
    let lab = group("g-1", "Lab Macs");
    let staff = group("g-2", "Staff");
    store.create_group(&staff).await.unwrap();
    store.create_group(&lab).await.unwrap();
    assert_eq!(store.group("g-1").await.unwrap(), Some(lab.clone()));
    assert_eq!(
        store.group_by_name("Staff").await.unwrap(),
        Some(staff.clone())
    );
    assert_eq!(store.group("g-missing").await.unwrap(), None);
    assert_eq!(
        store.group_by_name("staff").await.unwrap(),
        None,
        "names match exactly"
    );
    assert_eq!(
        store.list_groups().await.unwrap(),
        [lab.clone(), staff.clone()]
    );

    let changed = Group {
        name: "Lab Macs (2025)".into(),
        bootstrap_escrow_enabled: false,
        prompt_user_to_allow_bootstrap_token_for_authentication: true,
        created_at: 999, // ignored: creation time is kept
        updated_at: 200,
        ..lab.clone()
    };
    store.update_group(&changed).await.unwrap();
    assert_eq!(
        store.group("g-1").await.unwrap(),
        Some(Group {
            created_at: 100,
            ..changed
        })
    );
    assert_eq!(store.group_by_name("Lab Macs").await.unwrap(), None);
}

pub(super) async fn duplicate_group_name_or_id_is_a_conflict(store: Arc<dyn Store>) {
    store.create_group(&group("g-1", "Lab")).await.unwrap();
    let err = store.create_group(&group("g-2", "Lab")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .create_group(&group("g-1", "Other"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.list_groups().await.unwrap().len(), 1);
}

pub(super) async fn updating_a_missing_group_is_not_found_and_to_a_taken_name_a_conflict(
    store: Arc<dyn Store>,
) {
    let err = store
        .update_group(&group("g-ghost", "Ghost"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    store.create_group(&group("g-1", "Lab")).await.unwrap();
    store.create_group(&group("g-2", "Staff")).await.unwrap();
    let err = store.update_group(&group("g-2", "Lab")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.group("g-2").await.unwrap().unwrap().name, "Staff");
}

pub(super) async fn set_enrollment_group_assigns_and_clears_and_missing_either_is_not_found(
    store: Arc<dyn Store>,
) {
    store.create_group(&group("g-1", "Lab")).await.unwrap();
    store
        .upsert_enrollment(
            &device("UDID-A", None),
            &event("UDID-A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store
        .set_enrollment_group("UDID-A", Some("g-1"))
        .await
        .unwrap();
    assert_eq!(
        store
            .enrollment("UDID-A")
            .await
            .unwrap()
            .unwrap()
            .group_id
            .as_deref(),
        Some("g-1")
    );

    let err = store
        .set_enrollment_group("UDID-A", Some("g-ghost"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(
        store
            .enrollment("UDID-A")
            .await
            .unwrap()
            .unwrap()
            .group_id
            .as_deref(),
        Some("g-1")
    );
    let err = store
        .set_enrollment_group("UDID-ghost", Some("g-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store
        .set_enrollment_group("UDID-ghost", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    store.set_enrollment_group("UDID-A", None).await.unwrap();
    assert_eq!(
        store.enrollment("UDID-A").await.unwrap().unwrap().group_id,
        None
    );
}

pub(super) async fn account_settings_are_set_replaced_removed_and_go_with_their_group(
    store: Arc<dyn Store>,
) {
    use crate::{GroupAccountSettings, PrimaryAccount};
    let settings = |group_id: &str, primary: PrimaryAccount| GroupAccountSettings {
        group_id: group_id.into(),
        admin_short_name: "mgmt".into(),
        admin_full_name: "Management".into(),
        admin_hidden: true,
        primary_account: primary,
        dont_auto_populate_primary_account_info: false,
        lock_primary_account_info: true,
        primary_account_full_name: None,
        primary_account_user_name: Some("jdoe".into()),
        updated_at: 200,
    };
    let before = super::event_count(&store).await;
    let missing = store
        .put_group_account_settings(
            &settings("g-none", PrimaryAccount::Admin),
            &event("group:g-none", "admin.group.accounts"),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(
        super::event_count(&store).await,
        before,
        "no event on failure"
    );

    store.create_group(&group("g-a", "A")).await.unwrap();
    assert_eq!(store.group_account_settings("g-a").await.unwrap(), None);
    let first = settings("g-a", PrimaryAccount::Skip);
    store
        .put_group_account_settings(&first, &event("group:g-a", "admin.group.accounts"))
        .await
        .unwrap();
    assert_eq!(
        store.group_account_settings("g-a").await.unwrap(),
        Some(first)
    );
    let second = GroupAccountSettings {
        admin_short_name: "ladmin".into(),
        primary_account_user_name: None,
        ..settings("g-a", PrimaryAccount::Standard)
    };
    store
        .put_group_account_settings(&second, &event("group:g-a", "admin.group.accounts"))
        .await
        .unwrap();
    assert_eq!(
        store.group_account_settings("g-a").await.unwrap(),
        Some(second)
    );
    assert_eq!(super::event_count(&store).await, before + 2);

    assert!(
        store
            .delete_group_account_settings("g-a", &event("group:g-a", "admin.group.accounts"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_group_account_settings("g-a", &event("group:g-a", "admin.group.accounts"))
            .await
            .unwrap()
    );
    assert_eq!(super::event_count(&store).await, before + 3);
    assert_eq!(store.group_account_settings("g-a").await.unwrap(), None);

    store
        .put_group_account_settings(
            &settings("g-a", PrimaryAccount::Admin),
            &event("group:g-a", "admin.group.accounts"),
        )
        .await
        .unwrap();
    store
        .delete_group("g-a", &event("group:g-a", "admin.group.deleted"))
        .await
        .unwrap();
    assert_eq!(store.group_account_settings("g-a").await.unwrap(), None);
}
