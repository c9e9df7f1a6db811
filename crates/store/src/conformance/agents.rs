//! Conformance: agent registration secrets, registrations, request nonces and actions (issue 6).

use std::sync::Arc;

use super::{device, event, event_count};
use crate::{
    ActionEnd, ActionStatus, AgentAction, AgentRegistration, AgentSecret, COMMAND_PAYLOAD_FIELD,
    CommandStatus, NewCommand, NewEvent, SealedSecret, Store, StoreError, command_payload_owner,
};

/// A registration secret for `device_id` carried by InstallProfile `IP-<hash>`, created at 1_000.
fn secret(hash: &str, device_id: &str, ttl_ms: i64) -> AgentSecret {
    AgentSecret {
        secret_hash: hash.into(),
        device_id: device_id.into(),
        command_uuid: Some(format!("IP-{hash}")),
        created_at: 1_000,
        ttl_ms,
        delivered_at: None,
        expires_at: None,
        used_at: None,
        revoked_at: None,
        replace_authorized_by: None,
    }
}

/// Store `s` with its sealed InstallProfile; returns how many earlier secrets it revoked.
pub(super) async fn install(store: &Arc<dyn Store>, s: &AgentSecret) -> crate::Result<u64> {
    let uuid = s.command_uuid.clone().unwrap();
    let cmd = NewCommand {
        uuid: uuid.clone(),
        request_type: "InstallProfile".into(),
        payload: b"<plist>redacted</plist>".to_vec(),
        carries_secret: true,
    };
    let sealed = SealedSecret {
        owner: command_payload_owner(&uuid),
        field: COMMAND_PAYLOAD_FIELD.into(),
        key_id: "k1".into(),
        blob: format!("sealed-{uuid}").into_bytes(),
        updated_at: s.created_at,
    };
    store
        .create_agent_secret(
            s,
            &cmd,
            &sealed,
            &[event(&s.device_id, "agent.install_queued")],
        )
        .await
}

fn reg(agent_id: &str, device_id: &str, at: i64) -> AgentRegistration {
    AgentRegistration {
        agent_id: agent_id.into(),
        device_id: device_id.into(),
        signing_key: vec![1; 32],
        hpke_key: vec![2; 32],
        registered_at: at,
        last_seen_at: at,
    }
}

fn action(id: &str, device_id: &str, created_at: i64, expires_at: i64) -> AgentAction {
    AgentAction {
        id: id.into(),
        device_id: device_id.into(),
        kind: "grant_secure_token".into(),
        params: r#"{"user":"bob"}"#.into(),
        sealed: Some(b"sealed-credentials".to_vec()),
        status: ActionStatus::Queued,
        reason: None,
        output: None,
        created_by: "key-1".into(),
        created_at,
        updated_at: created_at,
        expires_at,
    }
}

async fn enrolled(store: &Arc<dyn Store>, id: &str) {
    store
        .upsert_enrollment(&device(id, None), &event(id, "enrollment.authenticated"))
        .await
        .unwrap();
}

pub(super) async fn a_registration_secret_is_claimed_once_for_its_device_before_it_expires(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    let ev: NewEvent = event("D1", "agent.registered");
    let before = event_count(&store).await;
    assert!(matches!(
        install(&store, &secret("h-unknown-dev", "NOPE", 9_000)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(event_count(&store).await, before);
    assert_eq!(store.agent_secret("h-unknown-dev").await.unwrap(), None);
    assert_eq!(
        store
            .sealed_secret(
                &command_payload_owner("IP-h-unknown-dev"),
                COMMAND_PAYLOAD_FIELD
            )
            .await
            .unwrap(),
        None
    );
    // A secret must name the command carrying it.
    let mut unnamed = secret("h-x", "D1", 9_000);
    unnamed.command_uuid = Some("OTHER".into());
    let cmd = NewCommand {
        uuid: "IP-h-x".into(),
        request_type: "InstallProfile".into(),
        payload: b"<plist/>".to_vec(),
        carries_secret: true,
    };
    let sealed = SealedSecret {
        owner: command_payload_owner("IP-h-x"),
        field: COMMAND_PAYLOAD_FIELD.into(),
        key_id: "k1".into(),
        blob: b"x".to_vec(),
        updated_at: 1,
    };
    assert!(matches!(
        store
            .create_agent_secret(&unnamed, &cmd, &sealed, std::slice::from_ref(&ev))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        install(&store, &secret("h1", "D1", 5_000)).await.unwrap(),
        0
    );
    let stored = store.agent_secret("h1").await.unwrap().unwrap();
    assert_eq!(stored, secret("h1", "D1", 5_000));
    // Its InstallProfile is queued for the device, sealed.
    let queued = store.next_command("D1", false).await.unwrap().unwrap();
    assert_eq!(queued.uuid, "IP-h1");
    assert!(queued.carries_secret);
    let before = event_count(&store).await;
    // Wrong device, unknown hash: nothing written.
    assert!(
        !store
            .register_agent("h1", &reg("A2", "D2", 3_000), None, &ev)
            .await
            .unwrap()
    );
    assert!(
        !store
            .register_agent("nope", &reg("A1", "D1", 3_000), None, &ev)
            .await
            .unwrap()
    );
    assert_eq!(event_count(&store).await, before);
    assert_eq!(store.agent_for_device("D1").await.unwrap(), None);
    // Not delivered yet, so its expiry clock has not started: long after created_at + ttl it still works.
    assert!(
        store
            .register_agent("h1", &reg("A1", "D1", 900_000), None, &ev)
            .await
            .unwrap()
    );
    assert_eq!(event_count(&store).await, before + 1);
    assert_eq!(
        store.agent("A1").await.unwrap(),
        Some(reg("A1", "D1", 900_000))
    );
    assert_eq!(
        store.agent_for_device("D1").await.unwrap(),
        Some(reg("A1", "D1", 900_000))
    );
    assert_eq!(
        store.agent_secret("h1").await.unwrap().unwrap().used_at,
        Some(900_000)
    );
    // Used once: a second claim fails.
    assert!(
        !store
            .register_agent("h1", &reg("A9", "D1", 900_001), Some("A1"), &ev)
            .await
            .unwrap()
    );
    assert_eq!(store.agent("A9").await.unwrap(), None);
    // A fresh secret re-registers the device only when the caller names the current agent as the one
    // replaced; otherwise nothing changes and the secret stays unused.
    install(&store, &secret("h2", "D1", 9_000)).await.unwrap();
    let before = event_count(&store).await;
    for wrong in [None, Some("A-OTHER")] {
        assert!(
            !store
                .register_agent("h2", &reg("A3", "D1", 4_000), wrong, &ev)
                .await
                .unwrap()
        );
    }
    assert_eq!(event_count(&store).await, before);
    assert_eq!(
        store.agent_secret("h2").await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(
        store
            .agent_for_device("D1")
            .await
            .unwrap()
            .unwrap()
            .agent_id,
        "A1"
    );
    assert!(
        store
            .register_agent("h2", &reg("A3", "D1", 4_000), Some("A1"), &ev)
            .await
            .unwrap()
    );
    assert_eq!(store.agent("A1").await.unwrap(), None);
    assert_eq!(
        store
            .agent_for_device("D1")
            .await
            .unwrap()
            .unwrap()
            .agent_id,
        "A3"
    );
    store.touch_agent("A3", 4_500).await.unwrap();
    assert_eq!(
        store.agent("A3").await.unwrap().unwrap().last_seen_at,
        4_500
    );
    assert!(matches!(
        store.touch_agent("A1", 1).await,
        Err(StoreError::NotFound(_))
    ));
}

pub(super) async fn a_new_secret_revokes_the_devices_earlier_unused_ones(store: Arc<dyn Store>) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    install(&store, &secret("d2", "D2", 9_000)).await.unwrap();
    install(&store, &secret("h1", "D1", 9_000)).await.unwrap();
    let mut second = secret("h2", "D1", 9_000);
    second.created_at = 2_000;
    second.replace_authorized_by = Some("key admin-1".into());
    assert_eq!(install(&store, &second).await.unwrap(), 1);
    let first = store.agent_secret("h1").await.unwrap().unwrap();
    assert_eq!(first.revoked_at, Some(2_000));
    assert_eq!(
        first.unusable_at(2_000),
        Some("revoked by a newer agent install or a failed InstallProfile")
    );
    assert_eq!(store.agent_secret("h2").await.unwrap().unwrap(), second);
    // Another device's secret is untouched.
    assert_eq!(
        store.agent_secret("d2").await.unwrap().unwrap().revoked_at,
        None
    );
    let listed: Vec<String> = store
        .agent_secrets("D1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.secret_hash)
        .collect();
    assert_eq!(listed, ["h2", "h1"]);
    let ev = event("D1", "agent.registered");
    assert!(
        !store
            .register_agent("h1", &reg("A1", "D1", 3_000), None, &ev)
            .await
            .unwrap()
    );
    assert!(
        store
            .register_agent("h2", &reg("A1", "D1", 3_000), None, &ev)
            .await
            .unwrap()
    );
    // A used secret is not revoked by a later install (it keeps its history); nothing else is left to revoke.
    let mut third = secret("h3", "D1", 9_000);
    third.created_at = 4_000;
    assert_eq!(install(&store, &third).await.unwrap(), 0);
    assert_eq!(
        store.agent_secret("h2").await.unwrap().unwrap().revoked_at,
        None
    );
}

pub(super) async fn a_secrets_expiry_starts_when_the_mac_acknowledges_its_install_profile(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    install(&store, &secret("h1", "D1", 5_000)).await.unwrap();
    install(&store, &secret("h2", "D2", 5_000)).await.unwrap();
    let report = |dev: &'static str, uuid: &'static str, status, at| {
        let store = store.clone();
        async move {
            store
                .record_command_result(dev, uuid, status, b"<plist/>", at)
                .await
                .unwrap()
        }
    };
    // NotNow: not on the Mac yet, the clock does not start.
    report("D1", "IP-h1", CommandStatus::NotNow, 50_000).await;
    assert_eq!(
        store.agent_secret("h1").await.unwrap().unwrap().expires_at,
        None
    );
    report("D1", "IP-h1", CommandStatus::Acknowledged, 100_000).await;
    report("D2", "IP-h2", CommandStatus::Acknowledged, 100_000).await;
    let s1 = store.agent_secret("h1").await.unwrap().unwrap();
    assert_eq!(
        (s1.delivered_at, s1.expires_at),
        (Some(100_000), Some(105_000))
    );
    let ev = event("D1", "agent.registered");
    // Long after created_at + ttl, but within ttl of delivery: fine. At delivery + ttl: expired.
    assert!(
        !store
            .register_agent("h1", &reg("A1", "D1", 105_000), None, &ev)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .agent_secret("h1")
            .await
            .unwrap()
            .unwrap()
            .unusable_at(105_000),
        Some("expired")
    );
    assert!(
        store
            .register_agent("h2", &reg("A2", "D2", 104_999), None, &ev)
            .await
            .unwrap()
    );
    // A repeated report does not restart the clock.
    assert_eq!(
        report("D1", "IP-h1", CommandStatus::Acknowledged, 200_000).await,
        crate::ReportOutcome::Duplicate
    );
    assert_eq!(
        store.agent_secret("h1").await.unwrap().unwrap().expires_at,
        Some(105_000)
    );
    // An InstallProfile the Mac refused revokes its secret.
    let mut h3 = secret("h3", "D1", 5_000);
    h3.created_at = 110_000;
    install(&store, &h3).await.unwrap();
    report("D1", "IP-h3", CommandStatus::Error, 111_000).await;
    let s3 = store.agent_secret("h3").await.unwrap().unwrap();
    assert_eq!((s3.revoked_at, s3.expires_at), (Some(111_000), None));
    assert!(
        !store
            .register_agent("h3", &reg("A1", "D1", 111_001), None, &ev)
            .await
            .unwrap()
    );
    assert_eq!(store.agent_for_device("D1").await.unwrap(), None);
}

pub(super) async fn an_agent_nonce_is_accepted_once_per_agent_and_forgotten_after_its_window(
    store: Arc<dyn Store>,
) {
    assert!(store.claim_agent_nonce("A1", "n1", 1_000, 0).await.unwrap());
    assert!(!store.claim_agent_nonce("A1", "n1", 1_001, 0).await.unwrap());
    assert!(store.claim_agent_nonce("A2", "n1", 1_001, 0).await.unwrap());
    assert!(
        store
            .claim_agent_nonce("A1", "n1", 9_000, 2_000)
            .await
            .unwrap()
    );
    let claims = (0..8).map(|_| {
        let s = store.clone();
        tokio::spawn(async move { s.claim_agent_nonce("A1", "race", 9_000, 0).await.unwrap() })
    });
    let mut wins = 0;
    for c in claims {
        wins += usize::from(c.await.unwrap());
    }
    assert_eq!(wins, 1);
}

pub(super) async fn actions_are_delivered_then_finished_once_and_lose_their_credentials(
    store: Arc<dyn Store>,
) {
    enrolled(&store, "D1").await;
    enrolled(&store, "D2").await;
    assert!(matches!(
        store
            .create_agent_action(
                &action("x", "NOPE", 1_000, 9_000),
                &event("NOPE", "agent.action_created")
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    let a1 = action("act-1", "D1", 1_000, 9_000);
    let a2 = action("act-2", "D1", 1_100, 9_000);
    store
        .create_agent_action(&a1, &event("D1", "agent.action_created"))
        .await
        .unwrap();
    store
        .create_agent_action(&a2, &event("D1", "agent.action_created"))
        .await
        .unwrap();
    store
        .create_agent_action(
            &action("act-3", "D2", 1_000, 9_000),
            &event("D2", "agent.action_created"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_agent_action(&a1, &event("D1", "agent.action_created"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.agent_action("act-1").await.unwrap(), Some(a1.clone()));
    let listed: Vec<String> = store
        .agent_actions("D1", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["act-2", "act-1"]);

    let delivered = store.deliver_agent_actions("D1", 2_000).await.unwrap();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].id, "act-1");
    assert!(
        delivered
            .iter()
            .all(|a| a.status == ActionStatus::Delivered)
    );
    assert_eq!(
        delivered[0].sealed.as_deref(),
        Some(&b"sealed-credentials"[..])
    );

    // Finishing from another device is NotFound; the owner's finish deletes the ciphertext.
    let ev = event("D1", "agent.action_finished");
    assert_eq!(
        store
            .finish_agent_action(
                "D2",
                "act-1",
                ActionStatus::Succeeded,
                None,
                None,
                3_000,
                std::slice::from_ref(&ev)
            )
            .await
            .unwrap(),
        ActionEnd::NotFound
    );
    let before = event_count(&store).await;
    let both = [ev.clone(), event("D1", "agent.troubleshoot")];
    assert_eq!(
        store
            .finish_agent_action(
                "D1",
                "act-1",
                ActionStatus::Failed,
                Some("wrong admin password"),
                Some("out"),
                3_000,
                &both
            )
            .await
            .unwrap(),
        ActionEnd::Ended
    );
    assert_eq!(event_count(&store).await, before + 2);
    let done = store.agent_action("act-1").await.unwrap().unwrap();
    assert_eq!(done.status, ActionStatus::Failed);
    assert_eq!(done.sealed, None);
    assert_eq!(done.reason.as_deref(), Some("wrong admin password"));
    assert_eq!(done.output.as_deref(), Some("out"));
    // A second end changes nothing and writes no event.
    assert_eq!(
        store
            .finish_agent_action(
                "D1",
                "act-1",
                ActionStatus::Cancelled,
                None,
                None,
                3_100,
                &both
            )
            .await
            .unwrap(),
        ActionEnd::AlreadyEnded(ActionStatus::Failed)
    );
    assert_eq!(event_count(&store).await, before + 2);
    assert!(matches!(
        store
            .finish_agent_action(
                "D1",
                "act-2",
                ActionStatus::Queued,
                None,
                None,
                3_100,
                &both
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Redelivery returns only what is still open.
    let again = store.deliver_agent_actions("D1", 3_200).await.unwrap();
    assert_eq!(
        again.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["act-2"]
    );
    assert!(!format!("{:?}", again[0]).contains("sealed-credentials"));
}

pub(super) async fn overdue_actions_expire_and_lose_their_credentials(store: Arc<dyn Store>) {
    enrolled(&store, "D1").await;
    store
        .create_agent_action(
            &action("old", "D1", 1_000, 2_000),
            &event("D1", "agent.action_created"),
        )
        .await
        .unwrap();
    store
        .create_agent_action(
            &action("new", "D1", 1_000, 9_000),
            &event("D1", "agent.action_created"),
        )
        .await
        .unwrap();
    assert_eq!(store.expire_agent_actions(1_999).await.unwrap(), 0);
    let delivered = store.deliver_agent_actions("D1", 2_000).await.unwrap();
    assert_eq!(
        delivered.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["new"]
    );
    let old = store.agent_action("old").await.unwrap().unwrap();
    assert_eq!(old.status, ActionStatus::Expired);
    assert_eq!(old.sealed, None);
    assert_eq!(store.expire_agent_actions(9_000).await.unwrap(), 1);
    let new = store.agent_action("new").await.unwrap().unwrap();
    assert_eq!((new.status, new.sealed), (ActionStatus::Expired, None));
}
