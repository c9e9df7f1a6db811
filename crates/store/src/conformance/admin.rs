//! Conformance: API keys, inventory, per-user facts, the device view and list filters, group deletion.

use std::sync::Arc;

use super::{device, event, event_count, token};
use crate::{
    ApiKey, ApiScope, DeviceFacts, DeviceFilter, DeviceUser, FactSource, Group, SecurityFacts,
    Store, StoreError,
};

fn key(id: &str, hash: &str, scope: ApiScope) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("key {id}"),
        scope,
        key_hash: hash.into(),
        created_at: 10,
        revoked_at: None,
    }
}

fn mdm_user(device_id: &str, name: &str, secure_token: Option<bool>) -> DeviceUser {
    DeviceUser {
        device_id: device_id.into(),
        source: FactSource::Mdm,
        user_key: name.into(),
        short_name: Some(name.into()),
        full_name: None,
        uid: Some(501),
        guid: None,
        has_secure_token: secure_token,
        mobile_account: Some(false),
        is_logged_in: Some(true),
        is_admin: None,
        filevault_enabled: None,
        volume_owner: None,
        managed_admin: None,
        observed_at: 50,
    }
}

fn facts(os: &str, apple_silicon: bool) -> DeviceFacts {
    DeviceFacts {
        os_version: Some(os.into()),
        os_version_num: crate::os_version_num(os),
        is_apple_silicon: Some(apple_silicon),
        at: 40,
        ..Default::default()
    }
}

fn ids(records: &[crate::DeviceRecord]) -> Vec<&str> {
    records.iter().map(|r| r.enrollment.id.as_str()).collect()
}

pub(super) async fn api_keys_are_found_by_hash_listed_and_revoked_with_events(
    store: Arc<dyn Store>,
) {
    let k = key("k1", "hash-1", ApiScope::Admin);
    store
        .create_api_key(&k, &event("apikey:k1", "admin.apikey.created"))
        .await
        .unwrap();
    assert_eq!(
        store.api_key_by_hash("hash-1").await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(store.api_key_by_hash("hash-2").await.unwrap(), None);
    assert!(matches!(
        store
            .create_api_key(
                &key("k2", "hash-1", ApiScope::Read),
                &event("x", "enrollment.authenticated")
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        event_count(&store).await,
        1,
        "a refused create writes no event"
    );
    store
        .revoke_api_key("k1", 20, &event("apikey:k1", "admin.apikey.revoked"))
        .await
        .unwrap();
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(20));
    assert!(matches!(
        store
            .revoke_api_key("k1", 30, &event("x", "enrollment.authenticated"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(event_count(&store).await, 2);
}

pub(super) async fn inventory_parts_are_written_independently(store: Arc<dyn Store>) {
    store
        .upsert_enrollment(
            &device("D1", None),
            &event("D1", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    assert_eq!(store.device_inventory("D1").await.unwrap(), None);
    let security = SecurityFacts {
        filevault_enabled: Some(true),
        bt_allowed_for_authentication: Some("allowed".into()),
        at: 30,
        ..Default::default()
    };
    store.put_security_facts("D1", &security).await.unwrap();
    store
        .put_device_facts("D1", &facts("14.5", true))
        .await
        .unwrap();
    let inv = store.device_inventory("D1").await.unwrap().unwrap();
    assert_eq!(inv.security, Some(security));
    assert_eq!(inv.device, Some(facts("14.5", true)));
    assert!(matches!(
        store.put_device_facts("NOPE", &facts("14.5", true)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub(super) async fn a_user_list_replaces_only_its_sources_rows(store: Arc<dyn Store>) {
    store
        .upsert_enrollment(
            &device("D1", None),
            &event("D1", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    let agent = DeviceUser {
        source: FactSource::Agent,
        volume_owner: Some(true),
        managed_admin: Some(true),
        ..mdm_user("D1", "alice", None)
    };
    store
        .replace_device_users("D1", FactSource::Agent, std::slice::from_ref(&agent))
        .await
        .unwrap();
    store
        .replace_device_users(
            "D1",
            FactSource::Mdm,
            &[
                mdm_user("D1", "alice", Some(true)),
                mdm_user("D1", "bob", Some(false)),
            ],
        )
        .await
        .unwrap();
    store
        .replace_device_users("D1", FactSource::Mdm, &[mdm_user("D1", "bob", Some(false))])
        .await
        .unwrap();
    let users = store.device_users("D1").await.unwrap();
    assert_eq!(users, [agent, mdm_user("D1", "bob", Some(false))]);
    // The agent's managed-admin mark is kept as said: true, and NULL (not false) where a source is silent.
    assert_eq!(
        users.iter().map(|u| u.managed_admin).collect::<Vec<_>>(),
        [Some(true), None]
    );
    let twice = [mdm_user("D1", "bob", None), mdm_user("D1", "bob", None)];
    assert!(matches!(
        store
            .replace_device_users("D1", FactSource::Mdm, &twice)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.device_users("D1").await.unwrap().len(),
        2,
        "nothing changed"
    );
    let record = store.device_record("D1").await.unwrap().unwrap();
    assert_eq!(
        (record.users_without_secure_token, record.user_count),
        (1, 2),
        "alice (agent) and bob (MDM) are two users; bob lacks a token"
    );
}

/// MDM and agent rows of one user share its key: counts, the device list filter and the view see one user,
/// whose newest word on its Secure Token wins (a tie goes to the agent).
pub(super) async fn user_counts_take_each_users_newest_secure_token_fact(store: Arc<dyn Store>) {
    for id in ["D1", "D2"] {
        store
            .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    let agent = |d: &str, name: &str, st: Option<bool>, at: i64| DeviceUser {
        source: FactSource::Agent,
        observed_at: at,
        ..mdm_user(d, name, st)
    };
    // D1: ladmin false per MDM at 50, true per the agent at 60 (a transfer); kiosk false per both.
    store
        .replace_device_users(
            "D1",
            FactSource::Mdm,
            &[
                mdm_user("D1", "ladmin", Some(false)),
                mdm_user("D1", "kiosk", Some(false)),
            ],
        )
        .await
        .unwrap();
    store
        .replace_device_users(
            "D1",
            FactSource::Agent,
            &[
                agent("D1", "ladmin", Some(true), 60),
                agent("D1", "kiosk", Some(false), 60),
            ],
        )
        .await
        .unwrap();
    // D2: alice true per MDM at 50 and false per the agent at 50 (a tie: the agent wins); bob's agent row
    // says nothing about the token, so MDM's false stands.
    store
        .replace_device_users(
            "D2",
            FactSource::Mdm,
            &[
                mdm_user("D2", "alice", Some(true)),
                mdm_user("D2", "bob", Some(false)),
            ],
        )
        .await
        .unwrap();
    store
        .replace_device_users(
            "D2",
            FactSource::Agent,
            &[
                agent("D2", "alice", Some(false), 50),
                agent("D2", "bob", None, 70),
            ],
        )
        .await
        .unwrap();
    let d1 = store.device_record("D1").await.unwrap().unwrap();
    assert_eq!((d1.user_count, d1.users_without_secure_token), (2, 1));
    let d2 = store.device_record("D2").await.unwrap().unwrap();
    assert_eq!((d2.user_count, d2.users_without_secure_token), (2, 2));

    // Once the agent says kiosk holds a token too, D1 has nobody without one and leaves the filter.
    store
        .replace_device_users(
            "D1",
            FactSource::Agent,
            &[
                agent("D1", "ladmin", Some(true), 60),
                agent("D1", "kiosk", Some(true), 60),
            ],
        )
        .await
        .unwrap();
    let without = store
        .list_devices(&DeviceFilter {
            users_without_secure_token: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&without), ["D2"]);
    let d1 = store.device_record("D1").await.unwrap().unwrap();
    assert_eq!((d1.user_count, d1.users_without_secure_token), (2, 0));
}

pub(super) async fn device_list_filters_match_the_status_rule_and_page_by_id(
    store: Arc<dyn Store>,
) {
    let off = Group {
        id: "g-off".into(),
        name: "Escrow off".into(),
        bootstrap_escrow_enabled: false,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 1,
        updated_at: 1,
    };
    store.create_group(&off).await.unwrap();
    for id in ["A", "B", "C", "D", "E"] {
        store
            .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
            .await
            .unwrap();
    }
    store
        .upsert_enrollment(
            &super::user("A", "U1"),
            &event("A", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    // A: escrowed, Apple silicon 14.5; B: group escrow off (supported); C: macOS 10.14; D: nothing known; E: 14.50 Intel.
    store
        .put_bootstrap_token(
            &token("A", "k1", b"tok"),
            &event("A", "bootstrap_token.escrowed"),
        )
        .await
        .unwrap();
    store
        .put_device_facts("A", &facts("14.5.1", true))
        .await
        .unwrap();
    store
        .set_enrollment_group("B", Some("g-off"))
        .await
        .unwrap();
    store
        .put_device_facts("C", &facts("10.14.6", false))
        .await
        .unwrap();
    store
        .put_device_facts("E", &facts("14.50", false))
        .await
        .unwrap();
    store
        .replace_device_users("D", FactSource::Mdm, &[mdm_user("D", "bob", Some(false))])
        .await
        .unwrap();

    let list = |f: DeviceFilter| {
        let store = store.clone();
        async move { store.list_devices(&f).await.unwrap() }
    };
    let all = list(DeviceFilter::default()).await;
    assert_eq!(
        ids(&all),
        ["A", "B", "C", "D", "E"],
        "user channels are not devices"
    );
    // The primitive conditions `service::status` narrows a list with (its test checks them against the
    // Rust rule for every combination of inputs).
    let token_and_escrow = |has_token, can_escrow| DeviceFilter {
        has_token,
        can_escrow,
        ..Default::default()
    };
    assert_eq!(ids(&list(token_and_escrow(Some(true), None)).await), ["A"]);
    assert_eq!(
        ids(&list(token_and_escrow(Some(false), None)).await),
        ["B", "C", "D", "E"]
    );
    // B's group has escrow off: that does not make the Mac unable to escrow (NA = cannot escrow at all).
    assert_eq!(
        ids(&list(token_and_escrow(Some(false), Some(false))).await),
        ["C"]
    );
    assert_eq!(
        ids(&list(token_and_escrow(Some(false), Some(true))).await),
        ["B", "D", "E"]
    );
    assert_eq!(
        ids(&list(token_and_escrow(None, Some(true))).await),
        ["A", "B", "D", "E"]
    );
    let silicon = list(DeviceFilter {
        apple_silicon: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&silicon), ["A"]);
    let os = list(DeviceFilter {
        os_version: Some("14.5".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&os), ["A"], "14.5 matches 14.5.1, not 14.50");
    let group = list(DeviceFilter {
        group_id: Some("g-off".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&group), ["B"]);
    let before = list(DeviceFilter {
        escrowed_before: Some(3_001),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&before), ["A"]);
    let after = list(DeviceFilter {
        escrowed_after: Some(3_001),
        ..Default::default()
    })
    .await;
    assert!(after.is_empty());
    let no_st = list(DeviceFilter {
        users_without_secure_token: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&no_st), ["D"]);
    let page1 = list(DeviceFilter {
        limit: 2,
        ..Default::default()
    })
    .await;
    let page2 = list(DeviceFilter {
        limit: 2,
        after_id: Some("B".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((ids(&page1), ids(&page2)), (vec!["A", "B"], vec!["C", "D"]));

    let a = store.device_record("A").await.unwrap().unwrap();
    assert_eq!(a.token.as_ref().map(|t| t.escrowed_at), Some(3_000));
    assert_eq!(
        store.device_record("A:U1").await.unwrap(),
        None,
        "user channel is no device"
    );
    assert_eq!(store.device_record("ZZ").await.unwrap(), None);
}

pub(super) async fn deleting_a_group_ungroups_its_members_and_writes_the_event(
    store: Arc<dyn Store>,
) {
    let g = Group {
        id: "g1".into(),
        name: "Lab".into(),
        bootstrap_escrow_enabled: true,
        prompt_user_to_allow_bootstrap_token_for_authentication: false,
        created_at: 1,
        updated_at: 1,
    };
    store.create_group(&g).await.unwrap();
    store
        .upsert_enrollment(
            &device("D1", None),
            &event("D1", "enrollment.authenticated"),
        )
        .await
        .unwrap();
    store.set_enrollment_group("D1", Some("g1")).await.unwrap();
    let before = event_count(&store).await;
    store
        .delete_group("g1", &event("group:g1", "admin.group.deleted"))
        .await
        .unwrap();
    assert_eq!(store.group("g1").await.unwrap(), None);
    assert_eq!(
        store.enrollment("D1").await.unwrap().unwrap().group_id,
        None
    );
    assert_eq!(event_count(&store).await, before + 1);
    assert!(matches!(
        store
            .delete_group("g1", &event("x", "enrollment.authenticated"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(event_count(&store).await, before + 1);
}
