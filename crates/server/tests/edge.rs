//! The attack surface at the server edge (issue 11): unauthenticated junk costs bounded storage, and what it
//! cost is still visible to the admin as counts.

mod common;

use std::path::Path;

use common::api;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use protocol::agent_profile::{HEADER_AGENT, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use store::ApiScope;
use testkit::{TestServer, messages};

/// The SQLite database with its WAL and SHM, in bytes.
fn database_bytes(dir: &Path) -> u64 {
    ["escrowd.db", "escrowd.db-wal", "escrowd.db-shm"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn event_rows(ts: &TestServer) -> usize {
    common::event_count(ts).await
}

#[tokio::test]
async fn eight_hundred_junk_requests_with_huge_queries_cost_well_under_a_megabyte_and_are_counted()
{
    let ts = TestServer::start_with(|o| {
        o.scep_challenge = Some(vault::Secret::new(b"edge-challenge".to_vec()));
    })
    .await
    .unwrap();
    ts.install_push_certificate().await.unwrap();
    let known = ts.new_device("UDID-EDGE-KNOWN").unwrap();
    known.enroll().await.unwrap();
    let base = ts.base_url();
    let data = ts.opts.data_dir.clone();
    let admin = api(&ts, ApiScope::Read).await;
    // Settle: make sure the counts table has its first row (and pages) before measuring.
    ts.running().state.mdm.flush_auth_failures().await.unwrap();
    let before = database_bytes(&data);
    let events_before = event_rows(&ts).await;

    let pad = format!("pad={}", "A".repeat(60 * 1024 - 1024));
    let junk_body = vec![0x5a_u8; 16 * 1024];
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |req: http::request::Builder, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let resp = client
                .request(req.body(Full::new(Bytes::from(body))).unwrap())
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
    };
    for i in 0..200 {
        // A check-in claiming a known Mac, with a signature that is not one.
        let s = send(
            http::Request::put(format!("{base}/mdm/checkin?{pad}"))
                .header("content-type", testkit::device::CHECKIN)
                .header("mdm-signature", "bm90IGEgc2lnbmF0dXJl"),
            messages::authenticate("UDID-EDGE-KNOWN"),
        )
        .await;
        assert_eq!(s, 400);
        // An agent nobody registered, with a junk body.
        let s = send(
            http::Request::post(format!("{base}/agent/v1/inventory?{pad}"))
                .header(HEADER_AGENT, format!("ghost-{i}"))
                .header(HEADER_TIMESTAMP, "1")
                .header(HEADER_NONCE, format!("nonce-nonce-nonce-{i}"))
                .header(HEADER_SIGNATURE, "AAAA"),
            junk_body.clone(),
        )
        .await;
        assert_eq!(s, 401);
        // A SCEP message that is not one.
        let s = send(
            http::Request::post(format!("{base}/scep?operation=PKIOperation&{pad}")),
            junk_body.clone(),
        )
        .await;
        assert_eq!(s, 400);
        // An enrollment link with a made-up token, then one padded to 60 KB.
        let q = if i % 2 == 0 {
            format!("token=escrowd_enroll_{i:064}")
        } else {
            format!("token={pad}")
        };
        let s = send(http::Request::get(format!("{base}/enroll?{q}")), Vec::new()).await;
        assert!(s == 403 || s == 400, "{s}");
    }

    // The admin sees the counts (flushed on read), by kind, with capped details.
    let (status, body) = admin.get("/api/v1/auth-failures?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let rows = body["auth_failures"].as_array().unwrap();
    let total = |kind: &str| -> i64 {
        rows.iter()
            .filter(|r| r["kind"] == kind)
            .map(|r| r["count"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(total("auth.failed"), 200, "{body}");
    assert_eq!(total("agent.auth_failed"), 200, "{body}");
    assert_eq!(total("scep.refused"), 200, "{body}");
    assert_eq!(total("enroll.refused"), 100, "{body}");
    for r in rows {
        assert_eq!(r["source"], "127.0.0.1", "{r}");
        assert!(r["detail"].as_str().unwrap().len() <= 512, "{r}");
    }
    assert!(rows.len() <= 8, "one row per kind and hour: {body}");
    assert_eq!(
        event_rows(&ts).await,
        events_before,
        "no event row per request"
    );

    let grown = database_bytes(&data).saturating_sub(before);
    eprintln!("database grew by {grown} bytes");
    assert!(
        grown < 256 * 1024,
        "the database grew by {grown} bytes for 800 junk requests"
    );
}

#[tokio::test]
async fn the_auth_failures_api_filters_and_refuses_bad_queries() {
    let ts = TestServer::start().await.unwrap();
    let known = ts.new_device("UDID-EDGE-FILTER").unwrap();
    known.enroll().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::put(format!("{}/mdm/checkin", ts.base_url()))
        .header("content-type", testkit::device::CHECKIN)
        .header("mdm-signature", "AAAA")
        .body(Full::new(Bytes::from(messages::authenticate(
            "UDID-EDGE-FILTER",
        ))))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 400);

    let reader = api(&ts, ApiScope::Read).await;
    let (s, b) = reader
        .get("/api/v1/auth-failures?kind=auth.failed&source=127.0.0.1")
        .await;
    assert_eq!(s, 200, "{b}");
    let rows = b["auth_failures"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{b}");
    assert_eq!(rows[0]["count"], 1);
    assert!(
        rows[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("UDID-EDGE-FILTER: Authenticate"),
        "{b}"
    );
    let (_, b) = reader.get("/api/v1/auth-failures?kind=scep.refused").await;
    assert_eq!(b["auth_failures"], serde_json::json!([]));
    let (_, b) = reader
        .get("/api/v1/auth-failures?since=99999999999999")
        .await;
    assert_eq!(b["auth_failures"], serde_json::json!([]));
    for bad in ["limit=0", "limit=1001", "since=soon", "surprise=1", "kind="] {
        let (s, b) = reader.get(&format!("/api/v1/auth-failures?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    // Without a key: 401.
    let anonymous = common::Api {
        base: ts.base_url(),
        auth: None,
    };
    assert_eq!(anonymous.get("/api/v1/auth-failures").await.0, 401);
}
