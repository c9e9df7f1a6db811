//! `GET /metrics`: Prometheus text that counts what really happened, by matched route and message type, behind a
//! read-scope key, with nothing identifying a Mac or a key in it.
//!
//! The recorder is per process and the tests of this file run in parallel, so counters are compared before and
//! after, only this file's first test sends check-ins, and scrapes (which set the gauges) take turns.

mod common;

use std::collections::BTreeMap;

use common::{api, enrolled, key};
use service::apikeys::Actor;
use store::ApiScope;
use testkit::device::CHECKIN;
use testkit::{TestServer, assert_no_secret, messages};

const TOKEN: &[u8] = b"\x01\x02metrics-bootstrap-token-0123456789abcdef\xfe\xff";

/// Scrapes set the scrape-time gauges of the one recorder; they take turns so a test reads its own server's.
static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Scrape {
    status: u16,
    content_type: Option<String>,
    body: String,
}

async fn scrape(ts: &TestServer, authorization: Option<&str>) -> Scrape {
    let mut req = testkit::http::client().get(format!("{}/metrics", ts.admin_url()));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    Scrape {
        status,
        content_type,
        body,
    }
}

/// A successful scrape, parsed.
async fn metrics(ts: &TestServer, key: &str) -> (Exposition, String) {
    let s = scrape(ts, Some(&format!("Bearer {key}"))).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(
        s.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let parsed = parse(&s.body).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{}", s.body));
    (parsed, s.body)
}

#[tokio::test]
async fn check_ins_are_counted_by_message_and_outcome_and_nothing_identifying_is_exposed() {
    let ts = TestServer::start().await.unwrap();
    let read = key(&ts, ApiScope::Read).await;
    let udid = "UDID-METRICS-7f3e9a";
    let mac = enrolled(&ts, udid).await;
    let user_id = "A1B2C3D4-0000-1111-2222-3333444455AA";
    let r = mac
        .checkin(messages::user_token_update(udid, user_id, "jdoe"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    let before = {
        let _turn = SCRAPE.lock().await;
        metrics(&ts, &read).await.0
    };

    assert_eq!(
        mac.set_bootstrap_token(Some(TOKEN)).await.unwrap().status,
        200
    );
    let (reply, token) = mac.get_bootstrap_token().await.unwrap();
    assert_eq!((reply.status, token.as_deref()), (200, Some(TOKEN)));
    // Refused: a user-channel GetBootstrapToken (policy, after a valid signature).
    let user_get = format!(
        r#"<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>GetBootstrapToken</string><key>UDID</key><string>{udid}</string><key>UserID</key><string>{user_id}</string></dict></plist>"#
    );
    assert_eq!(
        mac.checkin(user_get.into_bytes()).await.unwrap().status,
        400
    );
    // Unauthenticated: an unsigned SetBootstrapToken.
    let unsigned = messages::set_bootstrap_token(udid, Some(b"unsigned"), None);
    let r = mac
        .put_raw("/mdm/checkin", CHECKIN, unsigned, None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // Not a plist at all: no message type to name.
    assert_eq!(
        mac.checkin(b"not a plist".to_vec()).await.unwrap().status,
        400
    );
    // An admin request naming the Mac in its URL.
    let (status, _) = api(&ts, ApiScope::Read)
        .await
        .get(&format!("/api/v1/devices/{udid}"))
        .await;
    assert_eq!(status, 200);

    let (after, text) = {
        let _turn = SCRAPE.lock().await;
        metrics(&ts, &read).await
    };
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let checkins = "escrowd_checkin_total";
    assert_eq!(
        delta(
            checkins,
            &[("message", "SetBootstrapToken"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            checkins,
            &[("message", "GetBootstrapToken"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            checkins,
            &[("message", "GetBootstrapToken"), ("outcome", "refused")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            checkins,
            &[
                ("message", "SetBootstrapToken"),
                ("outcome", "unauthenticated")
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(checkins, &[("message", "unparsed"), ("outcome", "refused")]),
        1.0
    );
    assert_eq!(
        delta(
            checkins,
            &[("message", "SetBootstrapToken"), ("outcome", "refused")]
        ),
        0.0
    );
    let durations = "escrowd_checkin_duration_seconds_count";
    assert_eq!(delta(durations, &[("message", "SetBootstrapToken")]), 2.0);
    assert_eq!(delta(durations, &[("message", "GetBootstrapToken")]), 2.0);

    let requests = "escrowd_http_requests_total";
    assert_eq!(
        delta(requests, &[("route", "/mdm/checkin"), ("status", "200")]),
        2.0
    );
    assert_eq!(
        delta(requests, &[("route", "/mdm/checkin"), ("status", "400")]),
        3.0
    );
    assert_eq!(
        delta(
            requests,
            &[("route", "/api/v1/devices/{id}"), ("status", "200")]
        ),
        1.0,
        "requests are labelled with the matched route, not the URL"
    );
    assert_eq!(
        delta(
            "escrowd_http_request_duration_seconds_count",
            &[("route", "/mdm/checkin")]
        ),
        5.0
    );
    for family in [
        "escrowd_http_request_duration_seconds",
        "escrowd_checkin_duration_seconds",
    ] {
        assert_eq!(
            after.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}"
        );
    }

    // The queue gauge is this server's queue: escrow queued UserList and SecurityInfo.
    let depth = ts.store().queue_depth().await.unwrap();
    assert!(depth.pending >= 2, "{depth:?}");
    assert_eq!(
        after.value("escrowd_command_queue_depth", &[("status", "pending")]),
        depth.pending as f64
    );
    assert_eq!(
        after.value("escrowd_command_queue_depth", &[("status", "notnow")]),
        depth.not_now as f64
    );
    let pool = ts.store().pool_stats();
    assert_eq!(
        after.value("escrowd_db_pool_max_connections", &[]),
        f64::from(pool.max)
    );
    assert!(after.value("escrowd_db_pool_connections", &[]) >= 1.0);
    // The group commit's counters are this store's own, read at scrape. The recorder is one per process and a
    // counter set with `absolute` never goes down (`fetch_max`), so one that another test's server in this
    // process raised earlier may show more than this store counted; in escrowd (one store per process) it
    // shows exactly the count.
    if let Some(stats) = ts.store().write_batches() {
        use std::sync::atomic::Ordering::Relaxed;
        let batches = stats.batches.load(Relaxed) as f64;
        assert!(batches >= 1.0, "the Set above committed at least one batch");
        assert!(after.value("escrowd_store_batches_total", &[]) >= batches);
        assert!(after.value("escrowd_store_batched_writes_total", &[]) >= batches);
        // Each class at least as this store counted it (see above).
        for (family, label, classes, counts) in [
            (
                "escrowd_store_batches_by_size_total",
                "max_writes",
                ["1", "3", "7", "15", "31", "63", "+Inf"],
                &stats.size_buckets,
            ),
            (
                "escrowd_store_commits_by_duration_total",
                "max_ms",
                ["1", "2.5", "5", "10", "25", "50", "+Inf"],
                &stats.commit_buckets,
            ),
        ] {
            let own: f64 = counts.iter().map(|n| n.load(Relaxed) as f64).sum();
            assert_eq!(own, batches, "{family}: every batch in one class");
            for (class, n) in classes.iter().zip(counts) {
                let shown = after.value(family, &[(label, class)]);
                assert!(
                    shown >= n.load(Relaxed) as f64,
                    "{family}{{{label}={class}}}: {shown} shown, {} counted",
                    n.load(Relaxed)
                );
            }
        }
    }

    let fingerprint = pki::identity::fingerprint_sha256(&mac.cert.to_der().unwrap());
    assert_no_secret(
        &text,
        &[
            TOKEN,
            b"unsigned",
            udid.as_bytes(),
            user_id.as_bytes(),
            fingerprint.as_bytes(),
            &fingerprint.as_bytes()[..16],
            read.as_bytes(),
        ],
    );
}

#[tokio::test]
async fn metrics_need_a_valid_api_key() {
    let ts = TestServer::start().await.unwrap();
    let bad_basic = format!(
        "Basic {}",
        base64_of(b"admin:not-a-key") // not NanoMDM's user
    );
    for auth in [None, Some("Bearer escrowd_wrong"), Some(bad_basic.as_str())] {
        let s = scrape(&ts, auth).await;
        assert_eq!(s.status, 401, "{auth:?}: {}", s.body);
        assert!(!s.body.contains("escrowd_"), "{}", s.body);
    }
    // Every scope includes read, so the key that lacks it is a revoked one.
    let (revoked, secret) = ts
        .running()
        .state
        .mdm
        .create_api_key("gone", ApiScope::Read, &Actor::offline("test"))
        .await
        .unwrap();
    ts.running()
        .state
        .mdm
        .revoke_api_key(&revoked.id, &Actor::offline("test"))
        .await
        .unwrap();
    let s = scrape(&ts, Some(&format!("Bearer {}", secret.expose()))).await;
    assert_eq!(s.status, 401, "{}", s.body);

    for scope in [ApiScope::Read, ApiScope::Operate, ApiScope::Admin] {
        let k = key(&ts, scope).await;
        let _turn = SCRAPE.lock().await;
        let (parsed, text) = metrics(&ts, &k).await;
        assert!(
            parsed.types.contains_key("escrowd_http_requests_total"),
            "{text}"
        );
        assert_no_secret(&text, &[k.as_bytes()]);
    }
}

#[tokio::test]
async fn a_server_with_metrics_off_answers_404_and_still_checks_the_key() {
    let ts = TestServer::start_with(|o| o.metrics = false).await.unwrap();
    assert_eq!(scrape(&ts, None).await.status, 401);
    let k = key(&ts, ApiScope::Read).await;
    let s = scrape(&ts, Some(&format!("Bearer {k}"))).await;
    assert_eq!(s.status, 404, "{}", s.body);
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n";
    let parsed = parse(good).unwrap();
    assert_eq!(parsed.value("a_total", &[("x", "1")]), 3.0);
    assert_eq!(parsed.value("h_count", &[]), 2.0);
    for bad in [
        "a_total 1\n",                                                      // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 3\n",                       // open quote
        "# TYPE a_total counter\na_total{x=\"1\"} three\n",                 // value
        "# TYPE a_total counter\na_total{x=\"1\",x=\"2\"} 3\n",             // repeated label
        "# TYPE a_total counter\na_total 1\na_total 2\n",                   // repeated series
        "# TYPE 1a counter\n1a 1\n",                                        // name
        "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
        "# TYPE h histogram\nh_bucket{le=\"0.5\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // falls
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", // count != +Inf
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                             // TYPE twice
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A parsed text exposition: each family's TYPE and each series' value.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    /// (sample name, sorted labels) -> value.
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Exposition {
    /// The series' value; 0 when it does not exist yet (a counter not yet incremented).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Labels of `{a="x",b="y"}` (the braces stripped), with `\\`, `\"` and `\n` escapes.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or(format!("bad labels {s:?}"))?;
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("bad escape in {s:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {s:?}")),
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} repeated"));
        }
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return Err(format!("bad label separator in {s:?}")),
        };
    }
    labels.sort();
    Ok(labels)
}

/// The family a sample belongs to, given the declared TYPEs.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return Some(base);
        }
    }
    None
}

/// A strict reader of the text format 0.0.4: every sample's family TYPEd once before it, well-formed names,
/// labels and values, no repeated series, and histograms with cumulative buckets ending in `+Inf` equal to
/// `_count`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name, true) {
                        return Err(format!("bad metric name {name:?}"));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(format!("bad type {kind:?}"));
                    }
                    if out.types.insert(name.into(), kind.into()).is_some() {
                        return Err(format!("TYPE of {name} given twice"));
                    }
                }
                (Some("HELP"), Some(name), _) if !is_name(name, true) => {
                    return Err(format!("bad metric name {name:?}"));
                }
                _ => {}
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("bad line {line:?}"))?;
        let value = parse_value(value)?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').ok_or(format!("bad line {line:?}"))?)?,
            ),
            None => (series, Vec::new()),
        };
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        if family_of(name, &out.types).is_none() {
            return Err(format!("{name} has no TYPE before it"));
        }
        if out.samples.insert((name.into(), labels), value).is_some() {
            return Err(format!("series repeated: {line}"));
        }
    }
    check_histograms(&out)?;
    Ok(out)
}

/// A series' labels, sorted by name.
type Labels = Vec<(String, String)>;

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, _) in e.types.iter().filter(|(_, t)| *t == "histogram") {
        // Buckets per series (labels without `le`), in file order of `le`.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), value) in &e.samples {
            if *name != format!("{family}_bucket") {
                continue;
            }
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or(format!("{family} bucket without le"))?;
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            series
                .entry(rest)
                .or_default()
                .push((parse_value(&le.1)?, *value));
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
                return Err(format!("{family}{labels:?} has no +Inf bucket"));
            }
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family}{labels:?} buckets are not cumulative"));
            }
            let count = e
                .samples
                .get(&(format!("{family}_count"), labels.clone()))
                .ok_or(format!("{family}{labels:?} has no _count"))?;
            if !e
                .samples
                .contains_key(&(format!("{family}_sum"), labels.clone()))
            {
                return Err(format!("{family}{labels:?} has no _sum"));
            }
            if buckets.last().map(|b| b.1) != Some(*count) {
                return Err(format!(
                    "{family}{labels:?}: +Inf bucket differs from _count"
                ));
            }
        }
    }
    Ok(())
}
