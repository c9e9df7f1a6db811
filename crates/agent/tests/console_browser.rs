//! Issue 15 in a real browser with the real agent: an operator fills in the console's Grant Secure Token
//! dialog in headless Chromium, the REAL `escrow-agent` runs the action against the fake macOS tools, and the
//! device's Users tab then shows the user with a Secure Token, reported by the agent. No password reaches a
//! page. Screenshots go under `target/console-screenshots/`.

mod support;

use store::ApiScope;
use support::server::{agent_blocking, installed_device};
use support::typical_mac;
use testkit::browser::Browser;
use testkit::{ConsoleClient, TestServer};

const UDID: &str = "BROWSER-AGENT-MAC";
const ADMIN_PW: &str = "Adm1n-pw!";
const ALICE_PW: &str = "al1ce pw%";

/// The Secure Token cell (the first cell after the user's name) of `user`'s row in the Users tab's HTML.
fn secure_token_cell(html: &str, user: &str) -> String {
    let row = html
        .split("<th scope=\"row\">")
        .find(|r| r.starts_with(user))
        .unwrap_or_else(|| panic!("no row for {user}: {html}"));
    let cell = &row[row.find("<td>").expect("a cell") + 4..];
    cell[..cell.find("</td>").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_grant_secure_token_runs_on_the_mac_and_the_users_tab_shows_it() {
    let ts = TestServer::start().await.unwrap();
    let Some(b) = Browser::launch(&ts.admin_url()).await.unwrap() else {
        ts.stop().await;
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_api, config, _device) = installed_device(&ts, UDID, dir.path()).await;
    let state = dir.path().join("state/agent.json");
    let (config_s, state_s) = (config.to_str().unwrap(), state.to_str().unwrap());
    let mut mac = typical_mac();
    let run = agent_blocking(
        &mut mac,
        &["register", "--config", config_s, "--state", state_s],
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    // A first cycle reports the Mac's users: alice without a token.
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    ConsoleClient::sign_in(&ts, "otto", ApiScope::Operate)
        .await
        .unwrap();
    b.open("/signin").await.unwrap();
    b.sign_in("otto", &testkit::console::test_password("otto"))
        .await
        .unwrap();
    // `#users` scrolls the table into the screenshot (the operator's action panel sits above it).
    b.open(&format!("/devices/{UDID}?tab=users#users"))
        .await
        .unwrap();
    let before = b.html().await.unwrap();
    assert!(
        secure_token_cell(&before, "alice").contains("No"),
        "{before}"
    );
    b.screenshot("users-before-grant").await.unwrap();

    // The dialog, as an operator fills it in.
    b.open(&format!("/devices/{UDID}")).await.unwrap();
    b.click("details.dialog summary").await.unwrap();
    b.fill_label("User who gets the token (short name)", "alice")
        .await
        .unwrap();
    b.fill_label("That user's password", ALICE_PW)
        .await
        .unwrap();
    b.fill_label("Admin with a Secure Token (short name)", "ladmin")
        .await
        .unwrap();
    b.fill_label("Admin's password", ADMIN_PW).await.unwrap();
    b.screenshot("grant-dialog").await.unwrap();
    b.click_button("Grant Secure Token").await.unwrap();
    let queued = b.html().await.unwrap();
    testkit::assert_no_secret(&queued, &[ADMIN_PW.as_bytes(), ALICE_PW.as_bytes()]);
    b.screenshot("grant-queued").await.unwrap();

    // The agent runs it on the Mac: alice holds a token, and the Users tab says so, from the agent.
    let run = agent_blocking(&mut mac, &["run", "--once", "--state", state_s]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(mac.has_token("alice"));
    b.open(&format!("/devices/{UDID}?tab=users#users"))
        .await
        .unwrap();
    let after = b.html().await.unwrap();
    let cell = secure_token_cell(&after, "alice");
    assert!(cell.contains("Yes") && cell.contains("agent"), "{cell}");
    testkit::assert_no_secret(&after, &[ADMIN_PW.as_bytes(), ALICE_PW.as_bytes()]);
    b.screenshot("users-after-grant").await.unwrap();
    b.close().await.unwrap();
    ts.stop().await;
}
