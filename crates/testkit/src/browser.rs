//! A real browser for the console tests: Debian's Chromium, headless, driven through Debian's `chromedriver`
//! (package `chromium-driver`) over the W3C WebDriver protocol (JSON over HTTP on 127.0.0.1).
//!
//! Why no WebDriver crate: `fantoccini` (tried first; it builds with `default-features = false`, no TLS) pulls
//! `webdriver` 0.53 and with it a second `http`, `thiserror` 1, two `cookie`s and ICU 1.5, and changes feature
//! unification enough to rebuild half the workspace; chromiumoxide pulls a websocket stack and a huge
//! generated DevTools crate. The dozen WebDriver endpoints the tests use are a few lines each over the
//! workspace's own reqwest client, with no new dependency.
//!
//! Every browser gets a new empty `--user-data-dir` and the flags the machine needs without network
//! (`--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
//! --disable-sync --no-first-run`). Without Chromium, [`Browser::launch`] fails when `CI` is set and
//! otherwise prints a loud SKIPPED line and answers `None` (as the scepclient tests do).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A headless Chromium pointed at one server.
/// The longest any one WebDriver command may take (a page load included).
const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    base: String,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// Where screenshots go: `<target dir>/console-screenshots/` (the parent of the `debug` directory the test
/// binary runs from).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    target.join("console-screenshots")
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Browser {
    /// Start chromedriver and a headless Chromium for pages under `base` (`http://127.0.0.1:PORT`). `None`
    /// (after a SKIPPED line) when Chromium or chromedriver is missing and `CI` is not set.
    pub async fn launch(base: &str) -> anyhow::Result<Option<Browser>> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !std::path::Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "{} missing: install Debian's chromium and chromium-driver (.ci/run does)",
                missing.join(" and ")
            );
            anyhow::ensure!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("\n*** SKIPPED: browser test: {msg} ***\n");
            return Ok(None);
        }
        let port = free_port()?;
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            // Its own process group, so that dropping the Browser (a failed test) also ends the Chromium
            // processes chromedriver started, which would otherwise outlive the test run.
            .process_group(0)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let http = crate::http::client();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let created = wd(json_body(http.post(format!("{url}/session")), &caps))
            .await
            .context("starting a Chromium session through chromedriver")?;
        let id = created["sessionId"]
            .as_str()
            .context("chromedriver answered no sessionId")?;
        let session = format!("{url}/session/{id}");
        Ok(Some(Browser {
            http,
            session,
            base: base.trim_end_matches('/').to_string(),
            driver,
            _profile: profile,
        }))
    }

    /// Open a path of the server (`/signin`) or a whole URL.
    pub async fn open(&self, path: &str) -> anyhow::Result<()> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.post("/url", json!({ "url": url })).await?;
        Ok(())
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        wd(json_body(
            self.http.post(format!("{}{path}", self.session)),
            &body,
        ))
        .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        wd(self.http.get(format!("{}{path}", self.session))).await
    }

    /// The WebDriver id of the first element found `using` (`css selector`, `xpath`) `value`.
    async fn find_by(&self, using: &str, value: &str) -> anyhow::Result<String> {
        let found = self
            .post("/element", json!({ "using": using, "value": value }))
            .await
            .with_context(|| format!("no element matches {value:?}"))?;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .context("chromedriver answered no element id")
    }

    async fn type_into(&self, element: &str, value: &str) -> anyhow::Result<()> {
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await?;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": value }),
        )
        .await?;
        Ok(())
    }

    /// Type `value` into the field whose `<label>` reads `label` (exactly, whitespace trimmed).
    pub async fn fill_label(&self, label: &str, value: &str) -> anyhow::Result<()> {
        let l = self
            .find_by(
                "xpath",
                &format!("//label[normalize-space()={}]", xpath_literal(label)),
            )
            .await?;
        let id = self.get(&format!("/element/{l}/attribute/for")).await?;
        let id = id.as_str().context("the label has no `for`")?;
        let field = self.find_by("css selector", &format!("#{id}")).await?;
        self.type_into(&field, value).await
    }

    /// Fill in and send the sign-in form on the current page (`/signin`, or where a page load was sent).
    pub async fn sign_in(&self, name: &str, password: &str) -> anyhow::Result<()> {
        self.fill_label("Name", name).await?;
        self.fill_label("Password", password).await?;
        self.click_button("Sign in").await
    }

    /// Type `value` into the field matching CSS `selector`.
    pub async fn fill(&self, selector: &str, value: &str) -> anyhow::Result<()> {
        let field = self.find_by("css selector", selector).await?;
        self.type_into(&field, value).await
    }

    /// Click the element matching CSS `selector` (and wait for the page it loads, if it loads one).
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let e = self.find_by("css selector", selector).await?;
        self.click_and_settle(&e).await
    }

    /// Click element `e`; when the click replaces the document (a link, a form post), wait until the new one
    /// has loaded, so the next command never finds an element of the page being left (a "stale element").
    /// The old document carries a mark a new one lacks; a click that loads nothing keeps it (then this waits
    /// 300 ms, enough for a navigation to have begun).
    async fn click_and_settle(&self, e: &str) -> anyhow::Result<()> {
        let marked = self
            .post(
                "/execute/sync",
                json!({ "script": "window.__escrowdOldPage = true; return true;", "args": [] }),
            )
            .await
            .is_ok();
        self.post(&format!("/element/{e}/click"), json!({})).await?;
        if !marked {
            return Ok(());
        }
        for round in 0..100 {
            let probe = self
                .post(
                    "/execute/sync",
                    json!({
                        "script": "return [window.__escrowdOldPage === true, document.readyState];",
                        "args": []
                    }),
                )
                .await;
            if let Ok(v) = probe {
                let old = v[0].as_bool().unwrap_or(false);
                let ready = v[1].as_str() == Some("complete");
                if (!old && ready) || (old && round >= 3) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Click the button whose text is `text`.
    pub async fn click_button(&self, text: &str) -> anyhow::Result<()> {
        let b = self
            .find_by(
                "xpath",
                &format!("//button[normalize-space()={}]", xpath_literal(text)),
            )
            .await?;
        self.click_and_settle(&b).await
    }

    /// The visible text of the element matching CSS `selector`.
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        let e = self.find_by("css selector", selector).await?;
        let t = self.get(&format!("/element/{e}/text")).await?;
        Ok(t.as_str().unwrap_or_default().to_string())
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self
            .get("/url")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The current page's HTML.
    pub async fn html(&self) -> anyhow::Result<String> {
        Ok(self
            .get("/source")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The browser's cookies for the current page, as `(name, http_only, same_site, secure)`.
    pub async fn cookies(&self) -> anyhow::Result<Vec<(String, bool, String, bool)>> {
        let all = self.get("/cookie").await?;
        Ok(all
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["httpOnly"].as_bool().unwrap_or(false),
                    c["sameSite"].as_str().unwrap_or_default().to_string(),
                    c["secure"].as_bool().unwrap_or(false),
                )
            })
            .collect())
    }

    /// Save a PNG of the viewport as `<screenshot_dir>/<name>.png` and print where.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let b64 = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().context("no screenshot data")?)?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// End the browser session and chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = wd(self.http.delete(&self.session)).await;
        self.kill_group();
        let _ = self.driver.kill().await;
        closed.map(|_| ())
    }

    /// SIGKILL chromedriver's process group: chromedriver and every Chromium process it started.
    fn kill_group(&self) {
        if let Some(pid) = self.driver.id() {
            // SAFETY: killpg only sends a signal; the group is the one chromedriver leads (process_group(0)).
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}

fn json_body(req: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(body.to_string())
}

/// Send a WebDriver command; its `value`, or an error with WebDriver's own message.
async fn wd(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    // A bound on every WebDriver command, so a wedged browser fails its test instead of hanging the run.
    let resp = req
        .timeout(WEBDRIVER_TIMEOUT)
        .send()
        .await
        .context("WebDriver command (no answer within 120 s?)")?;
    let status = resp.status();
    let body: Value = serde_json::from_slice(&resp.bytes().await?)?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "WebDriver {status}: {} {}",
        value["error"].as_str().unwrap_or(""),
        value["message"].as_str().unwrap_or("")
    );
    Ok(value)
}

/// `text` as an XPath 1.0 string literal: in single quotes, in double quotes when it holds an apostrophe, or
/// as `concat(…)` when it holds both.
pub fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

#[cfg(test)]
mod tests {
    use super::xpath_literal;

    #[test]
    fn xpath_literals_quote_apostrophes_and_double_quotes() {
        assert_eq!(xpath_literal("Name"), "'Name'");
        assert_eq!(
            xpath_literal("That user's password"),
            "\"That user's password\""
        );
        assert_eq!(xpath_literal("a'b\"c"), "concat('a', \"'\", 'b\"c')");
    }
}
