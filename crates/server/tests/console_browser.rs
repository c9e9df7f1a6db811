//! The console in a real browser (issue 15): Debian's Chromium, headless, through chromedriver
//! (`testkit::browser`). Each test saves a screenshot under `target/console-screenshots/`.
//! Without Chromium these print SKIPPED (and fail when `CI` is set).

use store::ApiScope;
use testkit::browser::Browser;
use testkit::console::test_password;
use testkit::{ConsoleClient, TestServer};

async fn start() -> Option<(TestServer, Browser)> {
    let ts = TestServer::start().await.unwrap();
    let browser = Browser::launch(&ts.admin_url()).await.unwrap()?;
    Some((ts, browser))
}

#[tokio::test]
async fn browser_signs_in_with_a_strict_httponly_cookie_and_signs_out() {
    let Some((ts, b)) = start().await else { return };
    // An admin account (ConsoleClient::sign_in creates it through the service).
    ConsoleClient::sign_in(&ts, "ada", ApiScope::Operate)
        .await
        .unwrap();
    b.open("/?from=test").await.unwrap();
    assert!(
        b.url()
            .await
            .unwrap()
            .ends_with("/signin?next=%2F%3Ffrom%3Dtest"),
        "{}",
        b.url().await.unwrap()
    );
    b.screenshot("signin-page").await.unwrap();
    b.sign_in("ada", &test_password("ada")).await.unwrap();
    assert!(
        b.url().await.unwrap().ends_with("/?from=test"),
        "{}",
        b.url().await.unwrap()
    );
    b.open("/").await.unwrap();
    let who = b.text(".who span").await.unwrap();
    assert_eq!(who, "ada (operate)");
    let cookies = b.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.0 == "escrowd_session")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert!(session.1, "HttpOnly");
    assert_eq!(session.2, "Strict");
    let html = b.html().await.unwrap();
    testkit::assert_no_secret(&html, &[test_password("ada").as_bytes()]);
    b.screenshot("signed-in-home").await.unwrap();
    b.click_button("Sign out").await.unwrap();
    assert!(
        b.url().await.unwrap().ends_with("/signin"),
        "{}",
        b.url().await.unwrap()
    );
    b.open("/").await.unwrap();
    assert!(
        b.url().await.unwrap().contains("/signin?next="),
        "signed out: back to sign-in"
    );
    b.close().await.unwrap();
    ts.stop().await;
}

#[tokio::test]
async fn browser_shows_a_wrong_password_and_then_the_lockout() {
    let Some((ts, b)) = start().await else { return };
    ConsoleClient::sign_in(&ts, "bob", ApiScope::Read)
        .await
        .unwrap();
    b.open("/signin").await.unwrap();
    b.sign_in("bob", "not the right password").await.unwrap();
    assert_eq!(b.text(".error").await.unwrap(), "Wrong name or password.");
    assert!(b.url().await.unwrap().ends_with("/signin"));
    b.screenshot("wrong-password").await.unwrap();
    for _ in 0..4 {
        b.sign_in("bob", "still not the password").await.unwrap();
    }
    b.sign_in("bob", &test_password("bob")).await.unwrap();
    let error = b.text(".error").await.unwrap();
    assert!(
        error.starts_with("Too many failed sign-ins. Try again after"),
        "{error}"
    );
    testkit::assert_no_secret(b.html().await.unwrap(), &[test_password("bob").as_bytes()]);
    b.screenshot("locked-out").await.unwrap();
    b.close().await.unwrap();
    ts.stop().await;
}
