//! Conformance: console admin accounts, sessions and failed sign-ins.

use std::sync::Arc;

use super::event_count;
use crate::{
    ApiScope, ConsoleAdminAccount, ConsoleSession, EventKind, NewEvent, Outcome, Store, StoreError,
};

fn ev(kind: EventKind, at: i64) -> NewEvent {
    NewEvent {
        subject: "console:ada".into(),
        enrollment_id: None,
        kind,
        outcome: Outcome::Success,
        detail: kind.as_str().into(),
        at,
    }
}

fn admin(name: &str) -> ConsoleAdminAccount {
    ConsoleAdminAccount {
        name: name.into(),
        role: ApiScope::Operate,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: 10,
        updated_at: 10,
        disabled_at: None,
    }
}

fn session(hash: &str, name: &str, at: i64) -> ConsoleSession {
    ConsoleSession {
        token_hash: hash.into(),
        admin_name: name.into(),
        csrf: format!("csrf-{hash}"),
        created_at: at,
        last_seen_at: at,
        expires_at: at + 1_000,
    }
}

pub(crate) async fn console_admins_are_created_once_listed_repassworded_and_disabled(
    store: Arc<dyn Store>,
) {
    let before = event_count(&store).await;
    store
        .create_console_admin(&admin("ada"), &ev(EventKind::ConsoleAdminCreated, 10))
        .await
        .unwrap();
    store
        .create_console_admin(&admin("bob"), &ev(EventKind::ConsoleAdminCreated, 10))
        .await
        .unwrap();
    let dup = store
        .create_console_admin(&admin("ada"), &ev(EventKind::ConsoleAdminCreated, 11))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(
        event_count(&store).await,
        before + 2,
        "a refused create writes no event"
    );
    let names: Vec<String> = store
        .list_console_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(
        store.console_admin("ada").await.unwrap(),
        Some(admin("ada"))
    );
    assert_eq!(store.console_admin("nobody").await.unwrap(), None);

    store
        .create_console_session(
            &session("s1", "ada", 100),
            &ev(EventKind::ConsoleSignIn, 100),
        )
        .await
        .unwrap();
    store
        .set_console_admin_password(
            "ada",
            "$argon2id$new",
            200,
            &ev(EventKind::ConsoleAdminPasswordSet, 200),
        )
        .await
        .unwrap();
    let ada = store.console_admin("ada").await.unwrap().unwrap();
    assert_eq!(
        (ada.password_hash.as_str(), ada.updated_at),
        ("$argon2id$new", 200)
    );
    assert_eq!(
        store.console_session("s1").await.unwrap(),
        None,
        "a new password ends sessions"
    );
    let missing = store
        .set_console_admin_password(
            "nobody",
            "x",
            200,
            &ev(EventKind::ConsoleAdminPasswordSet, 200),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    store
        .create_console_session(
            &session("s2", "ada", 300),
            &ev(EventKind::ConsoleSignIn, 300),
        )
        .await
        .unwrap();
    store
        .disable_console_admin("ada", 400, &ev(EventKind::ConsoleAdminDisabled, 400))
        .await
        .unwrap();
    assert_eq!(
        store
            .console_admin("ada")
            .await
            .unwrap()
            .unwrap()
            .disabled_at,
        Some(400)
    );
    assert_eq!(
        store.console_session("s2").await.unwrap(),
        None,
        "disabling ends sessions"
    );
    let again = store
        .disable_console_admin("ada", 500, &ev(EventKind::ConsoleAdminDisabled, 500))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    assert_eq!(event_count(&store).await, before + 6);
}

pub(crate) async fn console_sessions_are_found_by_hash_touched_forward_and_deleted_once(
    store: Arc<dyn Store>,
) {
    store
        .create_console_admin(&admin("ada"), &ev(EventKind::ConsoleAdminCreated, 10))
        .await
        .unwrap();
    let unknown_admin = store
        .create_console_session(
            &session("sx", "nobody", 100),
            &ev(EventKind::ConsoleSignIn, 100),
        )
        .await;
    assert!(
        matches!(unknown_admin, Err(StoreError::NotFound(_))),
        "{unknown_admin:?}"
    );
    store
        .create_console_session(
            &session("s1", "ada", 100),
            &ev(EventKind::ConsoleSignIn, 100),
        )
        .await
        .unwrap();
    assert_eq!(
        store.console_session("s1").await.unwrap(),
        Some(session("s1", "ada", 100))
    );
    store.touch_console_session("s1", 150).await.unwrap();
    store.touch_console_session("s1", 120).await.unwrap();
    store.touch_console_session("unknown", 150).await.unwrap();
    assert_eq!(
        store
            .console_session("s1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        150
    );

    // A new sign-in forgets sessions past their absolute expiry.
    store
        .create_console_session(
            &session("s2", "ada", 5_000),
            &ev(EventKind::ConsoleSignIn, 5_000),
        )
        .await
        .unwrap();
    assert_eq!(store.console_session("s1").await.unwrap(), None);

    let before = event_count(&store).await;
    assert!(
        store
            .delete_console_session("s2", &ev(EventKind::ConsoleSignOut, 5_100))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_console_session("s2", &ev(EventKind::ConsoleSignOut, 5_200))
            .await
            .unwrap()
    );
    assert_eq!(
        event_count(&store).await,
        before + 1,
        "only a real sign-out is audited"
    );
    assert_eq!(store.console_session("s2").await.unwrap(), None);
}

pub(crate) async fn signin_failures_count_per_key_newest_first_and_are_forgotten(
    store: Arc<dyn Store>,
) {
    let keys = ["name:ada".to_string(), "addr:127.0.0.1".to_string()];
    for at in [100, 200, 300] {
        store
            .record_signin_failure(&keys, at, 0, &ev(EventKind::ConsoleSignInFailed, at))
            .await
            .unwrap();
    }
    assert_eq!(
        store.signin_failures("name:ada", 0, 10).await.unwrap(),
        [300, 200, 100]
    );
    assert_eq!(
        store
            .signin_failures("addr:127.0.0.1", 150, 10)
            .await
            .unwrap(),
        [300, 200]
    );
    assert_eq!(
        store.signin_failures("name:ada", 0, 2).await.unwrap(),
        [300, 200]
    );
    assert!(
        store
            .signin_failures("name:bob", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store.clear_signin_failures("name:ada").await.unwrap();
    assert!(
        store
            .signin_failures("name:ada", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .signin_failures("addr:127.0.0.1", 0, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // Writing a new failure forgets those older than the window.
    store
        .record_signin_failure(
            &keys[1..],
            400,
            250,
            &ev(EventKind::ConsoleSignInFailed, 400),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .signin_failures("addr:127.0.0.1", 0, 10)
            .await
            .unwrap(),
        [400, 300]
    );
}
