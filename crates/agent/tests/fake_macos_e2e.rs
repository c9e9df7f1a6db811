//! The real `escrow-agent` and a real escrowd server, with a Mac whose tools answer from the sim crate's
//! model of macOS's token rules (`escrowd-fake-macos`): whether a grant works is decided by the model, as
//! macOS would decide it, not scripted by the test. A grant and a user creation succeed and the Users table
//! shows them; a wrong admin password, an admin without a token and a Mac without any token holder fail with
//! their precise reasons and change nothing; no password reaches any tool's argv (every invocation is
//! logged), the agent's output, the server's answers or its events.

mod support;

use serde_json::{Value as Json, json};
use sim::mac::{AddUser, Mac, MacSpec, UserKind};
use support::model_mac::ModelMac;
use support::server::{Admin, installed};
use testkit::TestServer;

const LADMIN_PW: &str = "L0cal-Adm1n pw";
const ALICE_PW: &str = "al1ce-Zoë pw%";
const HELPDESK_PW: &str = "h3lp-desk-pw!";
const BOB_PW: &str = "b0b-new-pw#";
const MANAGED_PW: &str = "m4naged-adm1n";
const WRONG_PW: &str = "Wr0ng-guess-pw";
const RESET_PW: &str = "n3w-Alice-pw after reset";

/// `ladmin` made in Setup Assistant (first token, volume owner); `alice`, a standard user added later (no
/// token: a holder exists and nobody authorised her); `helpdesk`, an admin added the same way (no token).
fn typical_mac(udid: &str) -> Mac {
    let mut mac = Mac::new(MacSpec::apple_silicon_ade(udid));
    mac.device_configured();
    let local =
        |name: &str, admin: bool, pw: &str| AddUser::new(name, admin, UserKind::Local, Some(pw));
    mac.setup_assistant_create_user(local("ladmin", true, LADMIN_PW))
        .unwrap();
    mac.add_user(local("alice", false, ALICE_PW)).unwrap();
    mac.add_user(local("helpdesk", true, HELPDESK_PW)).unwrap();
    assert!(mac.user("ladmin").unwrap().secure_token);
    assert!(!mac.user("alice").unwrap().secure_token);
    assert!(!mac.user("helpdesk").unwrap().secure_token);
    mac
}

/// Nobody holds a token: the ADE managed admin was made from a hash (no plain-text password, no token) and
/// the only local user opted out with `;DisabledTags;SecureToken`.
fn mac_without_token_holder(udid: &str) -> Mac {
    let mut mac = Mac::new(MacSpec::apple_silicon_ade(udid));
    mac.create_managed_admin("mdmadmin", MANAGED_PW).unwrap();
    mac.device_configured();
    mac.add_user(
        AddUser::new("alice", false, UserKind::Local, Some(ALICE_PW)).disabling_secure_token(),
    )
    .unwrap();
    assert!(!mac.has_token_holder());
    mac
}

const ALL_PASSWORDS: [&str; 7] = [
    LADMIN_PW,
    ALICE_PW,
    HELPDESK_PW,
    BOB_PW,
    MANAGED_PW,
    WRONG_PW,
    RESET_PW,
];

/// A registered agent on `mac`, for device `udid` of `ts`.
struct Agent {
    model: ModelMac,
    admin: Admin,
    udid: String,
    state: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    async fn register(ts: &TestServer, udid: &str, mac: &Mac) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let (admin, config) = installed(ts, udid, dir.path()).await;
        let model = ModelMac::new(mac, &ALL_PASSWORDS);
        let state = dir.path().join("agent.json").to_str().unwrap().to_string();
        let run = model.agent(&[
            "register",
            "--config",
            config.to_str().unwrap(),
            "--state",
            &state,
            "--json",
        ]);
        assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
        Agent {
            model,
            admin,
            udid: udid.to_string(),
            state,
            _dir: dir,
        }
    }

    /// Queues an action through the admin API, lets the agent run one cycle, and returns the action as the
    /// API shows it afterwards.
    fn act(&self, body: Json) -> Json {
        let (s, created) = self.admin.call(
            "POST",
            &format!("/api/v1/devices/{}/actions", self.udid),
            Some(body),
        );
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let run = self
            .model
            .agent(&["run", "--once", "--state", &self.state, "--json"]);
        let cycle = run.json();
        assert_eq!(cycle["actions"][0]["id"], id.as_str(), "{}", run.stdout);
        let (s, shown) = self.admin.call(
            "GET",
            &format!("/api/v1/devices/{}/actions/{id}", self.udid),
            None,
        );
        assert_eq!(s, 200, "{shown}");
        // The cycle's exit code agrees with the action's outcome.
        let succeeded = shown["status"] == "succeeded";
        assert_eq!(run.code, Some(if succeeded { 0 } else { 1 }), "{shown}");
        shown
    }

    fn user_row(&self, short_name: &str) -> Json {
        let (s, users) =
            self.admin
                .call("GET", &format!("/api/v1/devices/{}/users", self.udid), None);
        assert_eq!(s, 200, "{users}");
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["short_name"] == short_name)
            .cloned()
            .unwrap_or_else(|| panic!("{short_name} not in {users}"))
    }

    /// Passwords reached tools only on stdin or a pty: `-password -` / `-adminPassword -`, never a value.
    fn assert_passwords_off_argv(&self) {
        let calls = self.model.invocations();
        assert!(!calls.is_empty());
        for call in &calls {
            for (i, arg) in call.iter().enumerate() {
                if arg.ends_with("assword") && arg.starts_with('-') {
                    assert_eq!(
                        call.get(i + 1).map(String::as_str),
                        Some("-"),
                        "a password flag with a value: {call:?}"
                    );
                }
            }
        }
    }
}

fn reason(action: &Json) -> &str {
    action["reason"].as_str().unwrap_or_default()
}

async fn assert_no_password_in_server(ts: &TestServer, answers: &[&Json]) {
    let events = ts
        .store()
        .events(&store::EventFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!events.is_empty());
    let texts = answers
        .iter()
        .map(|a| a.to_string())
        .chain(events.iter().map(|e| format!("{} {}", e.kind, e.detail)));
    let secrets: Vec<&[u8]> = ALL_PASSWORDS.iter().map(|p| p.as_bytes()).collect();
    for text in texts {
        testkit::assert_no_secret(&text, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_create_user_succeed_on_the_model_mac_and_show_in_the_users_table() {
    const UDID: &str = "MODEL-E2E-GRANT";
    let ts = TestServer::start().await.unwrap();
    let agent = Agent::register(&ts, UDID, &typical_mac(UDID)).await;

    // Before: the agent's first report shows alice without a token.
    let run = agent
        .model
        .agent(&["run", "--once", "--state", &agent.state]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(agent.user_row("alice")["has_secure_token"]["value"], false);

    let granted = agent.act(
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
        "user_password": ALICE_PW, "admin_password": LADMIN_PW}),
    );
    assert_eq!(granted["status"], "succeeded", "{granted}");
    let mac = agent.model.load();
    let alice = mac.user("alice").unwrap();
    assert!(alice.secure_token, "the model did not grant: {alice:?}");
    // §1.4: a token granted by the volume owner makes alice an owner too.
    assert!(alice.volume_owner);
    let row = agent.user_row("alice");
    assert_eq!(row["has_secure_token"]["value"], true, "{row}");
    assert_eq!(row["has_secure_token"]["source"], "agent", "{row}");

    let created = agent.act(json!({"kind": "create_user", "user": "bob", "full_name": "Bob Li",
        "make_admin": true, "admin": "ladmin", "user_password": BOB_PW, "admin_password": LADMIN_PW}));
    assert_eq!(created["status"], "succeeded", "{created}");
    let mac = agent.model.load();
    let bob = mac.user("bob").unwrap();
    assert!(bob.secure_token && bob.admin, "{bob:?}");
    assert_eq!(bob.real_name, "Bob Li");
    assert!(mac.password_matches("bob", BOB_PW));
    let row = agent.user_row("bob");
    assert_eq!(row["has_secure_token"]["value"], true, "{row}");

    agent.assert_passwords_off_argv();
    let calls = agent.model.invocations();
    assert!(
        calls
            .iter()
            .any(|c| c[0] == "sysadminctl" && c.iter().any(|a| a == "-secureTokenOn")),
        "{calls:?}"
    );
    assert_no_password_in_server(&ts, &[&granted, &created]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_name_the_reason_and_leave_the_mac_unchanged() {
    let ts = TestServer::start().await.unwrap();
    let typical = Agent::register(&ts, "MODEL-E2E-FAIL", &typical_mac("MODEL-E2E-FAIL")).await;
    let before = typical.model.load();

    let wrong = typical.act(
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
        "user_password": ALICE_PW, "admin_password": WRONG_PW}),
    );
    assert_eq!(wrong["status"], "failed", "{wrong}");
    assert!(
        reason(&wrong).starts_with("wrong_admin_password"),
        "{wrong}"
    );
    assert_eq!(
        typical.model.load(),
        before,
        "a failed grant changed the Mac"
    );

    let tokenless = typical.act(
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "helpdesk",
        "user_password": ALICE_PW, "admin_password": HELPDESK_PW}),
    );
    assert_eq!(tokenless["status"], "failed", "{tokenless}");
    assert!(
        reason(&tokenless).starts_with("admin_lacks_token"),
        "{tokenless}"
    );
    assert!(reason(&tokenless).contains("helpdesk"), "{tokenless}");
    assert_eq!(typical.model.load(), before);

    // A standard user cannot be the granting admin either, even with the right password.
    let standard = typical.act(
        json!({"kind": "create_user", "user": "carol", "full_name": "Carol",
        "admin": "alice", "user_password": BOB_PW, "admin_password": ALICE_PW}),
    );
    assert_eq!(standard["status"], "failed", "{standard}");
    assert!(reason(&standard).starts_with("not_admin"), "{standard}");
    assert!(typical.model.load().user("carol").is_err());

    let orphan = Agent::register(
        &ts,
        "MODEL-E2E-ORPHAN",
        &mac_without_token_holder("MODEL-E2E-ORPHAN"),
    )
    .await;
    let before = orphan.model.load();
    let none = orphan.act(
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "mdmadmin",
        "user_password": ALICE_PW, "admin_password": MANAGED_PW}),
    );
    assert_eq!(none["status"], "failed", "{none}");
    assert!(reason(&none).starts_with("no_token_holder"), "{none}");
    assert_eq!(orphan.model.load(), before);

    for agent in [&typical, &orphan] {
        agent.assert_passwords_off_argv();
    }
    assert_no_password_in_server(&ts, &[&wrong, &tokenless, &standard, &none]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_bootstrap_token_actions_and_self_service_escrow_on_the_model_mac() {
    const UDID: &str = "MODEL-E2E-BT";
    let ts = TestServer::start().await.unwrap();
    let mut mac = typical_mac(UDID);
    // carol: a standard user without a token, the transfer's target.
    mac.add_user(AddUser::new("carol", false, UserKind::Local, Some(BOB_PW)))
        .unwrap();
    let agent = Agent::register(&ts, UDID, &mac).await;

    // Self-service escrow as the console user: the password is checked with `dscl -authonly` and typed into
    // `profiles install` and `profiles validate` on a pty; the model escrows and serves the token back.
    let run = agent.model.agent_with_stdin(
        &[
            "escrow",
            "--console-user",
            "ladmin",
            "--prompt",
            "terminal",
            "--json",
        ],
        &[LADMIN_PW],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.json()["result"],
        "escrowed_and_validated",
        "{}",
        run.stdout
    );
    let escrowed = agent.model.load();
    assert!(
        escrowed.server_copy.is_some(),
        "the model's server holds no token"
    );
    assert_eq!(escrowed.profiles_status(), (true, true));

    // The same through the server's queue: validate (served back and matched), then remove, then re-escrow.
    let validated = agent.act(
        json!({"kind": "validate_bootstrap_token", "admin": "ladmin",
        "admin_password": LADMIN_PW}),
    );
    assert_eq!(validated["status"], "succeeded", "{validated}");
    let bad = agent.act(
        json!({"kind": "validate_bootstrap_token", "admin": "ladmin",
        "admin_password": WRONG_PW}),
    );
    assert!(reason(&bad).starts_with("wrong_admin_password"), "{bad}");
    let removed = agent.act(json!({"kind": "remove_bootstrap_token", "admin": "ladmin",
        "admin_password": LADMIN_PW}));
    assert_eq!(removed["status"], "succeeded", "{removed}");
    assert_eq!(agent.model.load().profiles_status(), (true, false));
    let again = agent.act(
        json!({"kind": "reescrow_bootstrap_token", "admin": "ladmin",
        "admin_password": LADMIN_PW}),
    );
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(agent.model.load().profiles_status(), (true, true));

    // Factorial's transfer from a standard token holder: alice gets a token, then passes one to carol while
    // promoted to admin for the grant only.
    let granted = agent.act(
        json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
        "user_password": ALICE_PW, "admin_password": LADMIN_PW}),
    );
    assert_eq!(granted["status"], "succeeded", "{granted}");
    let moved = agent.act(
        json!({"kind": "transfer_secure_token", "admin": "alice", "user": "carol",
        "admin_password": ALICE_PW, "user_password": BOB_PW}),
    );
    assert_eq!(moved["status"], "succeeded", "{moved}");
    let after = agent.model.load();
    let (alice, carol) = (after.user("alice").unwrap(), after.user("carol").unwrap());
    assert!(carol.secure_token, "{carol:?}");
    assert!(!alice.admin, "alice was left an admin: {alice:?}");
    let calls = agent.model.invocations();
    let promoted = calls
        .iter()
        .position(|c| c.join(" ") == "dscl . -append /Groups/admin GroupMembership alice")
        .expect("alice was never promoted");
    let demoted = calls
        .iter()
        .position(|c| c.join(" ") == "dscl . -delete /Groups/admin GroupMembership alice")
        .expect("alice was never demoted");
    assert!(promoted < demoted);

    agent.assert_passwords_off_argv();
    assert_no_password_in_server(&ts, &[&validated, &bad, &removed, &again, &granted, &moved])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_starts_a_new_action_at_once_instead_of_after_its_interval() {
    use std::io::BufRead;
    const UDID: &str = "MODEL-E2E-NUDGE";
    let ts = TestServer::start().await.unwrap();
    let agent = Agent::register(&ts, UDID, &typical_mac(UDID)).await;
    // An hour between cycles: only the nudge can start the action within this test's bound.
    let mut child = agent.model.spawn_agent(&[
        "run",
        "--interval",
        "3600",
        "--state",
        &agent.state,
        "--json",
    ]);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Json = tokio::task::block_in_place(|| {
        serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap()
    });
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["next_poll_secs"], 3600, "{first}");

    // The first cycle is over and the agent is waiting: queue a grant.
    let (s, created) = agent.admin.call(
        "POST",
        &format!("/api/v1/devices/{UDID}/actions"),
        Some(
            json!({"kind": "grant_secure_token", "user": "alice", "admin": "ladmin",
            "user_password": ALICE_PW, "admin_password": LADMIN_PW}),
        ),
    );
    assert_eq!(s, 201, "{created}");
    // A liveness bound far above the seconds a nudged cycle takes, far below the hour without one.
    let second: Json = tokio::task::block_in_place(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(lines.next());
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the running agent did not start the new action: no nudge");
        serde_json::from_str(&line.unwrap().unwrap()).unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(second["actions"][0]["id"], created["id"], "{second}");
    assert_eq!(second["actions"][0]["succeeded"], true, "{second}");
    assert!(agent.model.has_token("alice"));
    agent.assert_passwords_off_argv();
}

/// Factorial's password reset: with a token-holding admin the user's password changes and its Secure Token
/// follows (in sync: the model re-wraps it); what would leave the token out of sync is refused with the
/// reason and changes nothing: an admin without a token, a wrong admin password, a Mac with no token holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_password_keeps_the_token_in_sync_and_refuses_what_would_not() {
    let ts = TestServer::start().await.unwrap();
    let mut mac = typical_mac("MODEL-E2E-RESET");
    mac.secure_token_on("alice", ALICE_PW, "ladmin", LADMIN_PW)
        .unwrap();
    let agent = Agent::register(&ts, "MODEL-E2E-RESET", &mac).await;
    let before = agent.model.load();

    let tokenless = agent.act(
        json!({"kind": "reset_password", "user": "alice", "admin": "helpdesk",
        "user_password": RESET_PW, "admin_password": HELPDESK_PW}),
    );
    assert_eq!(tokenless["status"], "failed", "{tokenless}");
    assert!(
        reason(&tokenless).starts_with("admin_lacks_token"),
        "{tokenless}"
    );
    assert_eq!(
        agent.model.load(),
        before,
        "a refused reset changed the Mac"
    );

    let wrong = agent.act(
        json!({"kind": "reset_password", "user": "alice", "admin": "ladmin",
        "user_password": RESET_PW, "admin_password": WRONG_PW}),
    );
    assert_eq!(wrong["status"], "failed", "{wrong}");
    assert!(
        reason(&wrong).starts_with("wrong_admin_password"),
        "{wrong}"
    );
    assert_eq!(agent.model.load(), before);

    let unknown = agent.act(
        json!({"kind": "reset_password", "user": "zed", "admin": "ladmin",
        "user_password": RESET_PW, "admin_password": LADMIN_PW}),
    );
    assert_eq!(unknown["status"], "failed", "{unknown}");
    assert!(reason(&unknown).starts_with("unknown_user"), "{unknown}");

    let reset = agent.act(
        json!({"kind": "reset_password", "user": "alice", "admin": "ladmin",
        "user_password": RESET_PW, "admin_password": LADMIN_PW}),
    );
    assert_eq!(reset["status"], "succeeded", "{reset}");
    let mac = agent.model.load();
    assert!(mac.password_matches("alice", RESET_PW));
    assert!(!mac.password_matches("alice", ALICE_PW));
    let alice = mac.user("alice").unwrap();
    assert!(
        alice.secure_token && !alice.token_out_of_sync,
        "token not in sync: {alice:?}"
    );
    // The new password unlocks FileVault: alice is still one of its users.
    assert!(
        mac.filevault_users()
            .iter()
            .any(|u| u.short_name == "alice")
    );
    // And the model agrees macOS-wise: the new password grants like any token holder's.
    let mut check = mac.clone();
    check
        .secure_token_on("helpdesk", HELPDESK_PW, "alice", RESET_PW)
        .unwrap();
    let calls = agent.model.invocations();
    assert!(
        calls
            .iter()
            .any(|c| c[0] == "sysadminctl" && c.iter().any(|a| a == "-resetPasswordFor")),
        "{calls:?}"
    );

    let orphan = Agent::register(
        &ts,
        "MODEL-E2E-RESET-ORPHAN",
        &mac_without_token_holder("MODEL-E2E-RESET-ORPHAN"),
    )
    .await;
    let before = orphan.model.load();
    let none = orphan.act(
        json!({"kind": "reset_password", "user": "alice", "admin": "mdmadmin",
        "user_password": RESET_PW, "admin_password": MANAGED_PW}),
    );
    assert_eq!(none["status"], "failed", "{none}");
    assert!(reason(&none).starts_with("no_token_holder"), "{none}");
    assert_eq!(orphan.model.load(), before);

    for a in [&agent, &orphan] {
        a.assert_passwords_off_argv();
    }
    assert_no_password_in_server(&ts, &[&tokenless, &wrong, &unknown, &reset, &none]).await;
}
