//! The web console over HTTP (issue 15): who may see it, the headers every page carries, CSRF on forms.
//! Pages in a real browser are tested in `console_browser.rs`.

use store::ApiScope;
use testkit::{ConsoleClient, TestServer};

#[tokio::test]
async fn the_console_needs_a_signed_in_admin() {
    let ts = TestServer::start().await.unwrap();
    let anonymous =
        testkit::http::send(testkit::http::client().get(format!("{}/", ts.admin_url())))
            .await
            .unwrap();
    assert_eq!(
        anonymous.status, 303,
        "an anonymous page load goes to the sign-in page"
    );
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let home = admin.get("/").await.unwrap();
    assert_eq!(home.status, 200);
    assert!(
        home.text().contains("ada"),
        "the page names the signed-in admin"
    );
    assert!(!admin.csrf.is_empty());
    ts.stop().await;
}

#[tokio::test]
async fn console_answers_carry_a_csp_without_inline_script() {
    let ts = TestServer::start().await.unwrap();
    let r = testkit::http::client()
        .get(format!("{}/assets/console.css", ts.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    ts.stop().await;
}
