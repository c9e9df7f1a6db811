//! Console sign-in over HTTP (issue 15): admin accounts, cookie sessions, sign-out, backoff, CSRF and
//! Origin checks, the `next` redirect, and no password or session token in pages or events.

use store::{ApiScope, EventKind};
use testkit::console::{load_signin, post_signin, set_cookie, set_cookie_header, test_password};
use testkit::{ConsoleClient, TestServer};

async fn kinds(ts: &TestServer, subject: &str) -> Vec<String> {
    ts.store()
        .events(&store::EventFilter {
            subject: Some(subject.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_sets_a_strict_httponly_session_cookie_and_a_new_token_each_time() {
    let ts = TestServer::start().await.unwrap();
    let base = ts.admin_url();
    let client = testkit::http::client();
    ts.running()
        .state
        .mdm
        .create_console_admin(
            "ada",
            ApiScope::Operate,
            &test_password("ada"),
            &service::apikeys::Actor::offline("test"),
        )
        .await
        .unwrap();
    let first = post_signin(&client, &base, "ada", &test_password("ada"))
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(location(&first), "/");
    let header = set_cookie_header(first.headers(), "escrowd_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attr), "{attr} missing from {header}");
    }
    assert!(
        !header.contains("Secure"),
        "plain HTTP: no Secure attribute ({header})"
    );
    let token1 = set_cookie(first.headers(), "escrowd_session").unwrap();
    assert_eq!(
        token1.len(),
        "escrowd_session=".len() + 64,
        "32 random bytes in hex"
    );
    let second = post_signin(&client, &base, "ada", &test_password("ada"))
        .await
        .unwrap();
    let token2 = set_cookie(second.headers(), "escrowd_session").unwrap();
    assert_ne!(token1, token2, "every sign-in gets a new session token");

    let page = ConsoleClient::sign_in_as(&ts, "ada", &test_password("ada"))
        .await
        .unwrap();
    let home = page.get("/").await.unwrap();
    assert_eq!(home.status, 200);
    assert!(home.text().contains("ada (operate)"), "{}", home.text());
    assert!(
        kinds(&ts, "console:ada")
            .await
            .contains(&EventKind::ConsoleSignIn.as_str().to_string())
    );
    ts.stop().await;
}

#[tokio::test]
async fn a_wrong_password_or_unknown_name_is_refused_and_audited_without_the_password() {
    let ts = TestServer::start().await.unwrap();
    let base = ts.admin_url();
    let client = testkit::http::client();
    ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let wrong = post_signin(&client, &base, "ada", "not-the-password-123")
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(wrong.headers(), "escrowd_session").is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong name or password.")
    );
    let unknown = post_signin(&client, &base, "nobody", "whatever-password-1")
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    assert!(
        kinds(&ts, "console:ada")
            .await
            .contains(&"console.signin_failed".to_string())
    );
    assert!(
        kinds(&ts, "console:nobody")
            .await
            .contains(&"console.signin_failed".to_string())
    );
    testkit::assert_no_secret(
        ts.events_text().await,
        &[
            b"not-the-password-123",
            b"whatever-password-1",
            test_password("ada").as_bytes(),
        ],
    );
    ts.stop().await;
}

#[tokio::test]
async fn five_failures_lock_the_name_out_even_with_the_right_password() {
    let ts = TestServer::start().await.unwrap();
    let base = ts.admin_url();
    let client = testkit::http::client();
    ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    for i in 0..5 {
        let r = post_signin(&client, &base, "ada", &format!("wrong password {i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "failure {i}");
    }
    let locked = post_signin(&client, &base, "ada", &test_password("ada"))
        .await
        .unwrap();
    assert_eq!(
        locked.status(),
        429,
        "locked out even with the right password"
    );
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&retry), "retry after {retry} s");
    let text = locked.text().await.unwrap();
    assert!(
        text.contains("Too many failed sign-ins. Try again after"),
        "{text}"
    );
    assert!(
        kinds(&ts, "console:ada")
            .await
            .contains(&"console.lockout".to_string())
    );
    ts.stop().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_server_side() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    let out = admin.post_form("/signout", &[]).await.unwrap();
    assert_eq!(out.status, 303);
    let page = admin.get("/").await.unwrap();
    assert_eq!(page.status, 303, "the old cookie no longer opens pages");
    let post = admin.post_form("/signout", &[]).await.unwrap();
    assert_eq!(post.status, 401, "nor posts");
    assert!(
        kinds(&ts, "console:ada")
            .await
            .contains(&"console.signout".to_string())
    );
    ts.stop().await;
}

#[tokio::test]
async fn csrf_less_and_cross_origin_posts_are_refused() {
    let ts = TestServer::start().await.unwrap();
    let base = ts.admin_url();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    assert_eq!(admin.post_raw("/signout", &[]).await.unwrap().status, 403);
    assert_eq!(
        admin
            .post_raw("/signout", &[("csrf", "0000")])
            .await
            .unwrap()
            .status,
        403
    );
    let cross = admin
        .post_with(
            "/signout",
            &[("csrf", admin.csrf.as_str())],
            &[("origin", "https://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(cross.status, 403);
    assert_eq!(
        admin.get("/").await.unwrap().status,
        200,
        "still signed in after the refusals"
    );
    let host = base.trim_start_matches("http://");
    let same = admin
        .post_with(
            "/signout",
            &[("csrf", admin.csrf.as_str())],
            &[("origin", &format!("http://{host}"))],
        )
        .await
        .unwrap();
    assert_eq!(
        same.status, 303,
        "a same-origin post with the token is accepted"
    );

    // The sign-in form itself: its token must match the pre-session cookie, and come from this origin.
    let client = testkit::http::client();
    let body = serde_urlencoded::to_string([
        ("name", "ada"),
        ("password", test_password("ada").as_str()),
        ("csrf", "forged"),
    ])
    .unwrap();
    let no_cookie = client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 403);
    let page = load_signin(&client, &base).await.unwrap();
    let body = serde_urlencoded::to_string([
        ("name", "ada"),
        ("password", test_password("ada").as_str()),
        ("csrf", page.csrf.as_str()),
    ])
    .unwrap();
    let cross = client
        .post(format!("{base}/signin"))
        .header("cookie", &page.cookie)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    ts.stop().await;
}

#[tokio::test]
async fn next_only_follows_same_site_paths() {
    let ts = TestServer::start().await.unwrap();
    let base = ts.admin_url();
    let client = testkit::http::client();
    let anon = client
        .get(format!("{base}/?status=configured"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 303);
    assert_eq!(location(&anon), "/signin?next=%2F%3Fstatus%3Dconfigured");
    ConsoleClient::sign_in(&ts, "ada", ApiScope::Read)
        .await
        .unwrap();
    for (next, expected) in [
        ("/devices?status=configured", "/devices?status=configured"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let page = load_signin(&client, &base).await.unwrap();
        let body = serde_urlencoded::to_string([
            ("name", "ada"),
            ("password", test_password("ada").as_str()),
            ("csrf", page.csrf.as_str()),
            ("next", next),
        ])
        .unwrap();
        let r = client
            .post(format!("{base}/signin"))
            .header("cookie", &page.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{next}");
        assert_eq!(location(&r), expected, "next={next}");
    }
    ts.stop().await;
}

#[tokio::test]
async fn no_password_or_session_token_in_pages_or_events() {
    let ts = TestServer::start().await.unwrap();
    let admin = ConsoleClient::sign_in(&ts, "ada", ApiScope::Admin)
        .await
        .unwrap();
    let token = admin
        .session_cookie()
        .trim_start_matches("escrowd_session=")
        .to_string();
    let password = test_password("ada");
    let mut seen = String::new();
    for path in ["/", "/signin"] {
        seen.push_str(&admin.get(path).await.unwrap().text());
    }
    let failed = post_signin(
        &testkit::http::client(),
        &ts.admin_url(),
        "ada",
        "a-wrong-password-xyz",
    )
    .await
    .unwrap();
    seen.push_str(&failed.text().await.unwrap());
    seen.push_str(&ts.events_text().await);
    testkit::assert_no_secret(
        seen,
        &[
            password.as_bytes(),
            token.as_bytes(),
            b"a-wrong-password-xyz",
        ],
    );
    ts.stop().await;
}
