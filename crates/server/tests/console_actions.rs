//! The console's device actions and group pages over HTTP (issue 15), driven as a signed-in admin through
//! `ConsoleClient`: each post does what the admin API would (checked through the service and the store), is
//! refused without the session's CSRF token or the role, and never shows a password or an enrollment token
//! after the answer that created it.

mod common;

use agentwire::{HpkeKeyPair, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{enrolled, raw};
use protocol::agent_profile;
use serde_json::json;
use store::ApiScope;
use testkit::device::{KeyKind, issue_identity};
use testkit::{ConsoleClient, TestDevice, TestServer, assert_no_secret};

const TOKEN: &[u8] = b"\x01\x02bootstrap-token-bytes-0123456789abcdef\xfe\xff";
const ADMIN_PW: &str = "C0nsole-Adm1n-Pa55";
const USER_PW: &str = "C0nsole-Us3r-Pa55";
/// The serial number `TestDevice` reports.
const SERIAL: &str = "C02TEST0001";

/// How many commands of `request_type` the Mac has had queued.
async fn queued(ts: &TestServer, udid: &str, request_type: &str) -> usize {
    ts.running()
        .state
        .mdm
        .admin_command_history(udid, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.request_type == request_type)
        .count()
}

async fn has_token(ts: &TestServer, udid: &str) -> bool {
    ts.store().bootstrap_token(udid).await.unwrap().is_some()
}

/// A group made through the console (its id read back from the store).
async fn console_group(ts: &TestServer, admin: &ConsoleClient, name: &str) -> store::Group {
    let r = admin
        .post_form(
            "/groups",
            &[("name", name), ("bootstrap_escrow_enabled", "on")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Group created"), "{}", r.text());
    ts.store()
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == name)
        .expect("the group exists")
}

#[tokio::test]
async fn switching_a_groups_escrow_off_refuses_its_macs_next_set_bootstrap_token() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    assert!(lab.bootstrap_escrow_enabled);
    let mac = enrolled(&ts, "UDID-CONSOLE-LAB").await;
    ts.store()
        .set_enrollment_group(&mac.udid, Some(&lab.id))
        .await
        .unwrap();
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );

    let page = admin.get(&format!("/groups/{}", lab.id)).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Turn escrow off"), "{}", page.text());

    let off = admin
        .post_form(
            &format!("/groups/{}/escrow", lab.id),
            &[("enabled", "off"), ("on_escrow_disabled", "keep")],
        )
        .await
        .unwrap();
    assert_eq!(off.status, 200, "{}", off.text());
    assert!(
        off.text().contains("escrow is off for Lab"),
        "{}",
        off.text()
    );
    let group = ts.store().group(&lab.id).await.unwrap().unwrap();
    assert!(!group.bootstrap_escrow_enabled);
    // The Mac's next SetBootstrapToken is refused; the token escrowed before was kept.
    assert_eq!(
        mac.set_bootstrap_token(Some(b"a-newer-token"))
            .await
            .unwrap()
            .status,
        400
    );
    assert!(
        ts.events_text()
            .await
            .contains("bootstrap_token.escrow_refused")
    );
    assert!(has_token(&ts, &mac.udid).await);
    let page = admin.get(&format!("/groups/{}", lab.id)).await.unwrap();
    assert!(page.text().contains("Turn escrow on"), "{}", page.text());

    // On again: the Mac escrows again.
    let on = admin
        .post_form(&format!("/groups/{}/escrow", lab.id), &[("enabled", "on")])
        .await
        .unwrap();
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(
        mac.set_bootstrap_token(Some(b"a-newer-token"))
            .await
            .unwrap()
            .status,
        200
    );

    // Off with "delete them": the escrowed token goes too.
    let off = admin
        .post_form(
            &format!("/groups/{}/escrow", lab.id),
            &[("enabled", "off"), ("on_escrow_disabled", "clear")],
        )
        .await
        .unwrap();
    assert_eq!(off.status, 200, "{}", off.text());
    assert!(
        off.text().contains("1 escrowed token(s) were deleted"),
        "{}",
        off.text()
    );
    assert!(!has_token(&ts, &mac.udid).await);

    // Nonsense is refused and changes nothing.
    let bad = admin
        .post_form(
            &format!("/groups/{}/escrow", lab.id),
            &[("enabled", "maybe")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert!(
        !ts.store()
            .group(&lab.id)
            .await
            .unwrap()
            .unwrap()
            .bootstrap_escrow_enabled
    );
    ts.stop().await;
}

#[tokio::test]
async fn group_settings_and_the_group_list_show_what_was_saved() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let saved = admin
        .post_form(
            &format!("/groups/{}/settings", lab.id),
            &[("name", "Lab 2"), ("prompt", "on")],
        )
        .await
        .unwrap();
    assert_eq!(saved.status, 200, "{}", saved.text());
    let g = ts.store().group(&lab.id).await.unwrap().unwrap();
    assert_eq!(g.name, "Lab 2");
    assert!(g.prompt_user_to_allow_bootstrap_token_for_authentication);
    let list = admin.get("/groups").await.unwrap();
    assert_eq!(list.status, 200);
    assert!(
        list.text()
            .contains(&format!("href=\"/groups/{}\">Lab 2</a>", lab.id)),
        "{}",
        list.text()
    );
    // A second group of the same name is refused with the service's reason.
    let dup = admin
        .post_form("/groups", &[("name", "Lab 2")])
        .await
        .unwrap();
    assert!(dup.status == 409 || dup.status == 400, "{}", dup.status);
    assert_eq!(ts.store().list_groups().await.unwrap().len(), 1);
    ts.stop().await;
}

#[tokio::test]
async fn an_enrollment_link_is_shown_once_and_then_only_its_metadata() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let made = admin
        .post_form(
            &format!("/groups/{}/enrollment-tokens", lab.id),
            &[
                ("name", "Spring Macs"),
                ("max_uses", "5"),
                ("expires_in_days", "7"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(made.status, 200, "{}", made.text());
    let html = made.text();
    let at = html
        .find("/enroll?token=")
        .expect("the link is on the page")
        + "/enroll?token=".len();
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert!(token.len() > 20, "{token}");
    assert!(html.contains("shown on this page only"));

    let tokens = ts
        .running()
        .state
        .mdm
        .list_enrollment_tokens()
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].group_id, lab.id);
    assert_eq!(tokens[0].max_uses, Some(5));
    assert!(tokens[0].expires_at.is_some());

    // The group page lists the link's name and uses, never the token; neither do the events.
    let page = admin.get(&format!("/groups/{}", lab.id)).await.unwrap();
    assert!(page.text().contains("Spring Macs"));
    assert!(page.text().contains("0 of 5"));
    assert_no_secret(page.body, &[token.as_bytes()]);
    assert_no_secret(ts.events_text().await, &[token.as_bytes()]);

    // Revoked from the page: its state says so, and the service agrees.
    let id = &tokens[0].id;
    let revoked = admin
        .post_form(
            &format!("/groups/{}/enrollment-tokens/{id}/revoke", lab.id),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let tokens = ts
        .running()
        .state
        .mdm
        .list_enrollment_tokens()
        .await
        .unwrap();
    assert!(tokens[0].revoked_at.is_some());
    let page = admin.get(&format!("/groups/{}", lab.id)).await.unwrap();
    assert!(page.text().contains("revoked"));

    // A bad number creates nothing.
    let bad = admin
        .post_form(
            &format!("/groups/{}/enrollment-tokens", lab.id),
            &[("max_uses", "lots")],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(
        ts.running()
            .state
            .mdm
            .list_enrollment_tokens()
            .await
            .unwrap()
            .len(),
        1
    );
    ts.stop().await;
}

#[tokio::test]
async fn refresh_inventory_queues_the_three_inventory_commands() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-REFRESH").await;
    let op = ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();
    let kinds = ["DeviceInformation", "SecurityInfo", "UserList"];
    let mut before = Vec::new();
    for k in kinds {
        before.push(queued(&ts, &mac.udid, k).await);
    }
    let r = op
        .post_form(
            &format!("/devices/{}/actions/refresh-inventory", mac.udid),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Queued 3 commands"), "{}", r.text());
    for (k, n) in kinds.iter().zip(before) {
        assert_eq!(queued(&ts, &mac.udid, k).await, n + 1, "{k}");
    }
    // Audited under the console admin's name.
    assert!(ts.events_text().await.contains("otto"));
    // An unknown Mac: 404, nothing queued.
    let r = op
        .post_form("/devices/UDID-NOBODY/actions/refresh-inventory", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    ts.stop().await;
}

#[tokio::test]
async fn clearing_the_token_needs_the_serial_or_udid_typed_back() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-CLEAR").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let path = format!("/devices/{}/actions/clear-token", mac.udid);
    for wrong in ["", "C02TEST", "UDID-SOMEONE-ELSE"] {
        let r = admin.post_form(&path, &[("confirm", wrong)]).await.unwrap();
        assert_eq!(r.status, 400, "{wrong:?}: {}", r.text());
        assert!(r.text().contains("nothing was changed"));
        assert!(
            has_token(&ts, &mac.udid).await,
            "{wrong:?} cleared the token"
        );
    }
    let r = admin
        .post_form(
            &path,
            &[("confirm", &format!(" {} ", SERIAL.to_lowercase()))],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Bootstrap Token cleared"));
    assert!(!has_token(&ts, &mac.udid).await);
    // Typing the UDID works too (nothing left to clear now).
    let r = admin
        .post_form(&path, &[("confirm", &mac.udid)])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("No Bootstrap Token to clear"));
    ts.stop().await;
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-CSRF").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let infos = queued(&ts, &mac.udid, "DeviceInformation").await;
    let clear = format!("/devices/{}/actions/clear-token", mac.udid);
    for csrf in [None, Some("forged"), Some("")] {
        let mut fields = vec![("confirm", mac.udid.as_str())];
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        let r = admin.post_raw(&clear, &fields).await.unwrap();
        assert_eq!(r.status, 403, "{csrf:?}");
        let r = admin
            .post_raw(
                &format!("/groups/{}/escrow", lab.id),
                &[&[("enabled", "off")][..], &fields[1..]].concat(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{csrf:?}");
        let r = admin
            .post_raw(
                &format!("/devices/{}/actions/refresh-inventory", mac.udid),
                &fields[1..],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{csrf:?}");
    }
    assert!(has_token(&ts, &mac.udid).await);
    assert!(
        ts.store()
            .group(&lab.id)
            .await
            .unwrap()
            .unwrap()
            .bootstrap_escrow_enabled
    );
    assert_eq!(queued(&ts, &mac.udid, "DeviceInformation").await, infos);
    ts.stop().await;
}

#[tokio::test]
async fn read_only_admins_see_no_action_buttons_and_are_refused_when_they_post() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-READ").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let infos = queued(&ts, &mac.udid, "DeviceInformation").await;
    let reader = ConsoleClient::sign_in(&ts, "rita", ApiScope::Read)
        .await
        .unwrap();
    let operator = ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();

    let actions = format!("/devices/{}/actions", mac.udid);
    let page = reader.get(&actions).await.unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        !html.contains("<form method=\"post\" action=\"/devices"),
        "{html}"
    );
    assert!(!html.contains("Grant Secure Token"), "{html}");
    for path in ["/groups".to_string(), format!("/groups/{}", lab.id)] {
        let html = reader.get(&path).await.unwrap().text();
        assert!(
            !html.contains("<form method=\"post\" action=\"/groups"),
            "{html}"
        );
        assert!(!html.contains("enrollment-tokens"), "{html}");
    }
    // The operator sees the Mac's actions but not the admin-only ones.
    let html = operator.get(&actions).await.unwrap().text();
    assert!(html.contains("actions/refresh-inventory"), "{html}");
    assert!(html.contains("Grant Secure Token"));
    assert!(!html.contains("actions/clear-token"), "{html}");
    assert!(!html.contains("actions/block"), "{html}");
    // The admin sees them all.
    let html = admin.get(&actions).await.unwrap().text();
    assert!(html.contains("actions/clear-token"));
    assert!(html.contains("actions/approve-identity"));

    for path in [
        "refresh-inventory",
        "grant-secure-token",
        "install-agent",
        "troubleshoot",
        "clear-token",
        "block",
    ] {
        let r = reader
            .post_form(&format!("{actions}/{path}"), &[("confirm", &mac.udid)])
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{path}");
    }
    let r = operator
        .post_form(&format!("{actions}/clear-token"), &[("confirm", &mac.udid)])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = reader
        .post_form(&format!("/groups/{}/escrow", lab.id), &[("enabled", "off")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = operator
        .post_form("/groups", &[("name", "Sneaky")])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        reader
            .get(&format!("/groups/{}/profile", lab.id))
            .await
            .unwrap()
            .status,
        403
    );

    assert!(has_token(&ts, &mac.udid).await);
    let e = ts.store().enrollment(&mac.udid).await.unwrap().unwrap();
    assert!(e.blocked_at.is_none());
    assert!(
        ts.store()
            .group(&lab.id)
            .await
            .unwrap()
            .unwrap()
            .bootstrap_escrow_enabled
    );
    assert_eq!(ts.store().list_groups().await.unwrap().len(), 1);
    assert_eq!(queued(&ts, &mac.udid, "DeviceInformation").await, infos);
    ts.stop().await;
}

/// Install the agent from the console, then register it as the Mac's agent would.
async fn agent_installed_from_the_console(ts: &TestServer, op: &ConsoleClient, mac: &TestDevice) {
    let r = op
        .post_form(&format!("/devices/{}/actions/install-agent", mac.udid), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Agent install queued"), "{}", r.text());
    let reply = mac.idle().await.unwrap();
    let v: plist::Value = plist::from_bytes(&reply.body).unwrap();
    let cmd = v.as_dictionary().unwrap()["Command"]
        .as_dictionary()
        .unwrap();
    assert_eq!(cmd["RequestType"].as_string(), Some("InstallProfile"));
    let settings = agent_profile::parse_agent_settings(cmd["Payload"].as_data().unwrap()).unwrap();
    // The secret is in the profile only, never on the page.
    assert_no_secret(r.body, &[settings.registration_secret.expose().as_bytes()]);
    assert_eq!(settings.server_url, ts.base_url());
    let reg = json!({
        "device_id": mac.udid,
        "registration_secret": settings.registration_secret.expose(),
        "signing_key": B64.encode(SigningKey::generate().unwrap().public_key()),
        "hpke_key": B64.encode(HpkeKeyPair::generate().public_key()),
    });
    let (status, answer) = raw(
        &ts.base_url(),
        "POST",
        "/agent/v1/register",
        &[],
        reg.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn agent_actions_are_queued_sealed_and_their_passwords_never_come_back() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-AGENT").await;
    let op = ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();
    let base = format!("/devices/{}/actions", mac.udid);
    // Without an agent, the action is refused with what to do.
    let r = op
        .post_form(
            &format!("{base}/grant-secure-token"),
            &[
                ("user", "jdoe"),
                ("user_password", USER_PW),
                ("admin", "ladmin"),
                ("admin_password", ADMIN_PW),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("install it first"), "{}", r.text());
    assert_no_secret(&r.body, &[USER_PW.as_bytes(), ADMIN_PW.as_bytes()]);

    agent_installed_from_the_console(&ts, &op, &mac).await;
    let mut answers = Vec::new();
    let grant = op
        .post_form(
            &format!("{base}/grant-secure-token"),
            &[
                ("user", "jdoe"),
                ("user_password", USER_PW),
                ("admin", "ladmin"),
                ("admin_password", ADMIN_PW),
            ],
        )
        .await
        .unwrap();
    assert_eq!(grant.status, 200, "{}", grant.text());
    assert!(
        grant
            .text()
            .contains("Queued grant_secure_token for jdoe (by ladmin)"),
        "{}",
        grant.text()
    );
    answers.push(grant.body);
    // Create User Account with the enrollment wildcards, expanded for this Mac.
    let create = op
        .post_form(
            &format!("{base}/create-user"),
            &[
                ("user", "tech-%serial%"),
                ("full_name", "Tech %serial%"),
                ("user_password", USER_PW),
                ("make_admin", "on"),
                ("admin", "ladmin"),
                ("admin_password", ADMIN_PW),
            ],
        )
        .await
        .unwrap();
    assert_eq!(create.status, 200, "{}", create.text());
    assert!(
        create.text().contains(&format!("tech-{SERIAL}")),
        "{}",
        create.text()
    );
    answers.push(create.body);
    let check = op
        .post_form(&format!("{base}/troubleshoot"), &[("kind", "troubleshoot")])
        .await
        .unwrap();
    assert_eq!(check.status, 200, "{}", check.text());
    answers.push(check.body);
    // A check the dialog does not offer, and a missing password, queue nothing.
    let bad = op
        .post_form(
            &format!("{base}/troubleshoot"),
            &[
                ("kind", "remove_bootstrap_token"),
                ("admin", "ladmin"),
                ("admin_password", ADMIN_PW),
            ],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    answers.push(bad.body);
    let bad = op
        .post_form(
            &format!("{base}/grant-secure-token"),
            &[
                ("user", "jdoe"),
                ("admin", "ladmin"),
                ("admin_password", ADMIN_PW),
            ],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    answers.push(bad.body);

    let actions = ts
        .running()
        .state
        .mdm
        .admin_actions(&mac.udid, 100)
        .await
        .unwrap();
    let mut kinds: Vec<&str> = actions.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["create_user", "grant_secure_token", "troubleshoot"]);
    let grant = actions
        .iter()
        .find(|a| a.kind == "grant_secure_token")
        .unwrap();
    assert!(
        grant.sealed.is_some(),
        "the passwords are sealed to the agent"
    );
    assert!(grant.created_by.contains("otto"), "{}", grant.created_by);
    let create = actions.iter().find(|a| a.kind == "create_user").unwrap();
    assert!(
        create.params.contains(&format!("tech-{SERIAL}")),
        "{}",
        create.params
    );
    assert!(
        create.params.contains("\"make_admin\":true"),
        "{}",
        create.params
    );

    // The actions page lists them; no page, answer, event or stored action shows a password.
    let page = op.get(&base).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("grant_secure_token"));
    assert!(page.text().contains("Cancel"));
    answers.push(page.body);
    answers.push(ts.events_text().await.into_bytes());
    answers.push(
        format!(
            "{:?}",
            actions.iter().map(|a| &a.params).collect::<Vec<_>>()
        )
        .into_bytes(),
    );
    for a in answers {
        assert_no_secret(a, &[USER_PW.as_bytes(), ADMIN_PW.as_bytes()]);
    }

    // Cancelled from the page.
    let r = op
        .post_form(&format!("{base}/{}/cancel", grant.id), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let grant = ts
        .running()
        .state
        .mdm
        .admin_action(&mac.udid, &grant.id)
        .await
        .unwrap();
    assert_eq!(grant.status, store::ActionStatus::Cancelled);
    ts.stop().await;
}

#[tokio::test]
async fn admins_block_unblock_and_a_block_that_clears_needs_the_confirmation() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-BLOCK").await;
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let base = format!("/devices/{}/actions", mac.udid);
    let blocked = |ts: &TestServer| {
        let store = ts.store();
        let udid = mac.udid.clone();
        async move {
            store
                .enrollment(&udid)
                .await
                .unwrap()
                .unwrap()
                .blocked_at
                .is_some()
        }
    };
    let r = admin
        .post_form(
            &format!("{base}/block"),
            &[("clear_token", "on"), ("confirm", "nope")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(!blocked(&ts).await);
    let r = admin
        .post_form(&format!("{base}/block"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(blocked(&ts).await);
    assert!(
        has_token(&ts, &mac.udid).await,
        "a plain block keeps the token"
    );
    assert_ne!(
        mac.idle().await.unwrap().status,
        200,
        "a blocked Mac is refused"
    );
    let r = admin
        .post_form(&format!("{base}/unblock"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!blocked(&ts).await);
    let r = admin
        .post_form(
            &format!("{base}/block"),
            &[("clear_token", "on"), ("confirm", SERIAL)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("was deleted"));
    assert!(!has_token(&ts, &mac.udid).await);
    assert!(admin.get(&base).await.unwrap().text().contains("Blocked"));
    // No pending identity to approve: refused with the service's reason.
    let r = admin
        .post_form(&format!("{base}/approve-identity"), &[])
        .await
        .unwrap();
    assert!(
        r.status == 404 || r.status == 409 || r.status == 400,
        "{}",
        r.status
    );
    ts.stop().await;
}

#[tokio::test]
async fn an_admin_downloads_the_groups_signed_enrollment_profile() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let path = format!("/groups/{}/profile", lab.id);
    // No push certificate yet: a page that says why, not a profile.
    let r = admin.get(&path).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("Downloading the profile failed"),
        "{}",
        r.text()
    );
    ts.install_push_certificate().await.unwrap();
    let r = admin.get(&path).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<html"), "a signed profile, not a page");
    let signer = ts.profile_signer_cert();
    let profile = testkit::enroll::read_signed_profile(&r.body, &signer).unwrap();
    assert!(
        profile.scep.challenge.is_some(),
        "the group's static challenge"
    );
    assert!(
        ts.events_text().await.contains("admin.group.profile"),
        "the download is audited"
    );
    let operator = ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();
    assert_eq!(operator.get(&path).await.unwrap().status, 403);
    ts.stop().await;
}

#[tokio::test]
async fn a_pending_identity_is_listed_and_approved_from_the_actions_page() {
    let ts = TestServer::start().await.unwrap();
    let mac = enrolled(&ts, "UDID-CONSOLE-PENDING").await;
    let (cert, key) =
        issue_identity(&ts.device_ca().unwrap(), &mac.udid, KeyKind::Rsa2048).unwrap();
    let fingerprint = pki::identity::fingerprint_sha256(&cert.to_der().unwrap());
    let reenrolled = TestDevice::with_identity(&mac.udid, cert, key, ts.base_url());
    assert_eq!(reenrolled.authenticate().await.unwrap().status, 200);
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let base = format!("/devices/{}/actions", mac.udid);
    let html = admin.get(&base).await.unwrap().text();
    assert!(html.contains("Pending identities"), "{html}");
    assert!(
        html.contains(&format!("name=\"fingerprint\" value=\"{fingerprint}\"")),
        "{html}"
    );
    // An operator sees the pending identity but no Approve button.
    let operator = ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();
    let html = operator.get(&base).await.unwrap().text();
    assert!(html.contains("Pending identities"));
    assert!(!html.contains("approve-identity"), "{html}");
    let r = admin
        .post_form(
            &format!("{base}/approve-identity"),
            &[("fingerprint", &fingerprint)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let e = ts.store().enrollment(&mac.udid).await.unwrap().unwrap();
    assert_eq!(e.cert_fingerprint.as_deref(), Some(fingerprint.as_str()));
    ts.stop().await;
}

/// In headless Chromium: an admin turns a group's escrow off with the group page's own form, and the group's
/// Mac is refused on its next SetBootstrapToken; a read-only admin sees the device page without any action form.
#[tokio::test]
async fn in_a_browser_turning_escrow_off_refuses_the_mac_and_readers_get_no_buttons() {
    let ts = TestServer::start().await.unwrap();
    let Some(b) = testkit::browser::Browser::launch(&ts.admin_url())
        .await
        .unwrap()
    else {
        ts.stop().await;
        return;
    };
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    ConsoleClient::sign_in(&ts, "rita", ApiScope::Read)
        .await
        .unwrap();
    let lab = console_group(&ts, &admin, "Lab").await;
    let mac = enrolled(&ts, "UDID-BROWSER-LAB").await;
    ts.store()
        .set_enrollment_group(&mac.udid, Some(&lab.id))
        .await
        .unwrap();
    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );

    b.open("/signin").await.unwrap();
    b.sign_in("ada", &testkit::console::test_password("ada"))
        .await
        .unwrap();
    b.open(&format!("/groups/{}", lab.id)).await.unwrap();
    b.screenshot("group-escrow-on").await.unwrap();
    b.click("#escrow-heading ~ details summary").await.unwrap();
    b.click_button("Turn escrow off").await.unwrap();
    let text = b.text("main").await.unwrap();
    assert!(text.contains("escrow is off for Lab"), "{text}");
    b.screenshot("group-escrow-turned-off").await.unwrap();
    assert!(
        !ts.store()
            .group(&lab.id)
            .await
            .unwrap()
            .unwrap()
            .bootstrap_escrow_enabled
    );
    assert_eq!(
        mac.set_bootstrap_token(Some(b"a-newer-token"))
            .await
            .unwrap()
            .status,
        400,
        "the group's Mac is refused once escrow is off"
    );

    // A reader: the device page with no action forms.
    b.click_button("Sign out").await.unwrap();
    b.open("/signin").await.unwrap();
    b.sign_in("rita", &testkit::console::test_password("rita"))
        .await
        .unwrap();
    b.open(&format!("/devices/{}", mac.udid)).await.unwrap();
    let html = b.html().await.unwrap();
    assert!(html.contains(&mac.udid), "{html}");
    assert!(
        !html.contains("action=\"/devices/"),
        "a reader sees no action forms: {html}"
    );
    testkit::assert_no_secret(&html, &[TOKEN]);
    b.screenshot("device-as-reader").await.unwrap();
    b.close().await.unwrap();
    ts.stop().await;
}
