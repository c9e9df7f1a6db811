//! A console client for tests: one signed-in admin of a given role, reading pages and posting forms the way
//! a browser does (form-encoded bodies carrying the page's CSRF token, the session cookie on every request).
//!
//! [`ConsoleClient::sign_in`] creates a console admin account through the service, loads the sign-in page
//! (which sets the pre-session CSRF cookie), posts the sign-in form and keeps the session cookie it answers
//! with. Cookies are kept by hand: the client never follows redirects, and a test can read and forge them.

use store::ApiScope;

use crate::TestServer;
use crate::device::Reply;

/// The password [`ConsoleClient::sign_in`] gives the admin `name` it creates.
pub fn test_password(name: &str) -> String {
    format!("correct horse battery staple for {name}")
}

/// An admin signed in to a test server's console.
pub struct ConsoleClient {
    base: String,
    client: reqwest::Client,
    /// The `Cookie` header sent with every request: `escrowd_session=<token>`.
    cookie: String,
    /// The session's CSRF token, read from the layout's `<meta name="csrf-token">`.
    pub csrf: String,
}

/// A sign-in page as a browser first sees it: its pre-session CSRF cookie (`name=value`) and the form's
/// hidden `csrf` field.
pub struct SignInPage {
    pub cookie: String,
    pub csrf: String,
}

/// The `name=value` of the first `Set-Cookie` named `name` in `resp`.
pub fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// The whole `Set-Cookie` header (attributes included) named `name`.
pub fn set_cookie_header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The `value` of `<input … name="NAME" value="…">` in `html`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_string())
}

/// Load `/signin` on `base` like a browser: the CSRF cookie it sets and the form's token.
pub async fn load_signin(client: &reqwest::Client, base: &str) -> anyhow::Result<SignInPage> {
    let page = client.get(format!("{base}/signin")).send().await?;
    anyhow::ensure!(
        page.status() == 200,
        "GET /signin answered {}",
        page.status()
    );
    let cookie = set_cookie(page.headers(), "escrowd_signin")
        .ok_or_else(|| anyhow::anyhow!("GET /signin set no escrowd_signin cookie"))?;
    let html = page.text().await?;
    let csrf = input_value(&html, "csrf").ok_or_else(|| anyhow::anyhow!("no csrf field"))?;
    Ok(SignInPage { cookie, csrf })
}

/// Post the sign-in form as a browser would after [`load_signin`]; the raw answer (a 303 with the session
/// cookie on success, 401 for a wrong password, 429 when locked out).
pub async fn post_signin(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<reqwest::Response> {
    let page = load_signin(client, base).await?;
    let body = serde_urlencoded::to_string([
        ("name", name),
        ("password", password),
        ("csrf", page.csrf.as_str()),
        ("next", "/"),
    ])?;
    Ok(client
        .post(format!("{base}/signin"))
        .header("cookie", page.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?)
}

impl ConsoleClient {
    /// Sign in as a new admin `name` with `scope`'s role (the account is created with
    /// [`test_password`]).
    pub async fn sign_in(ts: &TestServer, name: &str, scope: ApiScope) -> anyhow::Result<Self> {
        ts.running()
            .state
            .mdm
            .create_console_admin(
                name,
                scope,
                &test_password(name),
                &service::apikeys::Actor::offline("test"),
            )
            .await?;
        Self::sign_in_as(ts, name, &test_password(name)).await
    }

    /// Sign in as an existing admin with `password`.
    pub async fn sign_in_as(ts: &TestServer, name: &str, password: &str) -> anyhow::Result<Self> {
        let base = ts.admin_url();
        let client = crate::http::client();
        let resp = post_signin(&client, &base, name, password).await?;
        anyhow::ensure!(
            resp.status() == 303,
            "POST /signin answered {}",
            resp.status()
        );
        let cookie = set_cookie(resp.headers(), "escrowd_session")
            .ok_or_else(|| anyhow::anyhow!("sign-in set no escrowd_session cookie"))?;
        let mut c = ConsoleClient {
            base,
            client,
            cookie,
            csrf: String::new(),
        };
        let home = c.get("/").await?;
        anyhow::ensure!(home.status == 200, "console home answered {}", home.status);
        c.csrf = meta_csrf(&home.text()).ok_or_else(|| anyhow::anyhow!("no csrf-token meta"))?;
        Ok(c)
    }

    /// The session cookie as sent (`escrowd_session=<token>`), for tests that replay or inspect it.
    pub fn session_cookie(&self) -> &str {
        &self.cookie
    }

    /// GET a console path (`/devices?status=configured`).
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        crate::http::send(
            self.client
                .get(format!("{}{path}", self.base))
                .header("cookie", &self.cookie),
        )
        .await
    }

    /// POST a form to `path` with the session's CSRF token added as `csrf`.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Reply> {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", self.csrf.as_str()));
        self.post_raw(path, &all).await
    }

    /// POST a form exactly as given (no CSRF token added): for tests of what the console refuses.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.post_with(path, fields, &[]).await
    }

    /// POST a form exactly as given with extra headers (an `Origin`, say).
    pub async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let body = serde_urlencoded::to_string(fields)?;
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        crate::http::send(req).await
    }
}

/// The `content` of `<meta name="csrf-token" content="…">`.
pub fn meta_csrf(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf-token\"")?;
    let rest = &html[at..];
    let start = rest.find("content=\"")? + "content=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_string())
}
