//! The attack surface at the server edge (issue 11): unauthenticated junk costs bounded storage, and what it
//! cost is still visible to the admin as counts.

mod common;

use std::path::Path;

use common::api;
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
        // The cost is measured in SQLite's files: this test stays on SQLite whatever the backend.
        o.database = None;
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
    let client = testkit::http::client();
    let send = |req: testkit::http::RequestBuilder, body: Vec<u8>| async move {
        testkit::http::send(req.body(body)).await.unwrap().status
    };
    for i in 0..200 {
        // A check-in claiming a known Mac, with a signature that is not one.
        let s = send(
            client
                .put(format!("{base}/mdm/checkin?{pad}"))
                .header("content-type", testkit::device::CHECKIN)
                .header("mdm-signature", "bm90IGEgc2lnbmF0dXJl"),
            messages::authenticate("UDID-EDGE-KNOWN"),
        )
        .await;
        assert_eq!(s, 400);
        // An agent nobody registered, with a junk body.
        let s = send(
            client
                .post(format!("{base}/agent/v1/inventory?{pad}"))
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
            client.post(format!("{base}/scep?operation=PKIOperation&{pad}")),
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
        let s = send(client.get(format!("{base}/enroll?{q}")), Vec::new()).await;
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
    let req = testkit::http::client()
        .put(format!("{}/mdm/checkin", ts.base_url()))
        .header("content-type", testkit::device::CHECKIN)
        .header("mdm-signature", "AAAA")
        .body(messages::authenticate("UDID-EDGE-FILTER"));
    assert_eq!(testkit::http::send(req).await.unwrap().status, 400);

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
        base: ts.admin_url(),
        auth: None,
    };
    assert_eq!(anonymous.get("/api/v1/auth-failures").await.0, 401);
}

// ---- slow and greedy clients

use std::time::Duration;

use server::listener::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read until the server closes the connection; Err if it is still open after `within` (bounded wait).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, &'static str> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(within, read).await {
        Ok(()) => Ok(got),
        Err(_) => Err("still open"),
    }
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut s, Duration::from_secs(20))
        .await
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

fn limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_or_nothing_is_disconnected() {
    // A long idle timeout: only the header timeout can close these connections.
    let ts = TestServer::start_with(|o| {
        o.limits = limits(|l| {
            l.header_read_timeout = Duration::from_secs(1);
            l.idle_timeout = Duration::from_secs(3600);
        })
    })
    .await
    .unwrap();
    let addr = ts.running().local_addr;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"PUT /mdm/checkin HTTP/1.1\r\nHost: x\r\nContent-Type: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(20))
            .await
            .is_ok()
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(20))
            .await
            .is_ok()
    );
    // A client that sends its header in time is served.
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_busy_one_is_not() {
    // A long header timeout: only the idle timeout can close this connection.
    let ts = TestServer::start_with(|o| {
        o.limits = limits(|l| {
            l.header_read_timeout = Duration::from_secs(3600);
            l.idle_timeout = Duration::from_secs(1);
        })
    })
    .await
    .unwrap();
    let mut s = TcpStream::connect(ts.running().local_addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive after the answer, then closed once idle.
    let rest = closed_within(&mut s, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));

    // A request in flight is not idle: an upload that pauses past the idle timeout is still answered.
    let body = messages::authenticate("UDID-PAUSE");
    let (start, end) = body.split_at(body.len() / 2);
    let mut s = partial_upload(ts.running().local_addr, body.len(), 0).await;
    s.write_all(start).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.write_all(end).await.unwrap();
    let answer = status_of(s).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "read to the end: {answer}"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_with_503_until_one_closes() {
    let ts = TestServer::start_with(|o| {
        o.limits = limits(|l| {
            l.max_connections = 2;
            l.header_read_timeout = Duration::from_secs(3600);
            l.idle_timeout = Duration::from_secs(3600);
        })
    })
    .await
    .unwrap();
    let addr = ts.running().local_addr;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    // The third is told to come back later and closed (it sends nothing, so nothing is left unread).
    let mut third = TcpStream::connect(addr).await.unwrap();
    let answer = closed_within(&mut third, Duration::from_secs(20))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    // Once one closes, a new connection is served (bounded wait for the server to notice the close).
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        if healthz(addr).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a slot came free");
}

/// Send a request header announcing `length` body bytes and `sent` of them, keeping the connection open.
async fn partial_upload(addr: std::net::SocketAddr, length: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /mdm/checkin HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {length}\r\n\r\n",
        testkit::device::CHECKIN
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'<'; sent]).await.unwrap();
    s
}

async fn status_of(mut s: TcpStream) -> String {
    let got = closed_within(&mut s, Duration::from_secs(20))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines().next().unwrap_or_default().to_string() + "\n" + &text
}

#[tokio::test]
async fn large_bodies_beyond_the_cap_get_503_with_retry_after() {
    let ts = TestServer::start_with(|o| {
        o.limits = limits(|l| {
            l.max_large_body_parses = 1;
            l.header_read_timeout = Duration::from_secs(3600);
            l.idle_timeout = Duration::from_secs(3600);
        })
    })
    .await
    .unwrap();
    let addr = ts.running().local_addr;
    let large = 1024 * 1024;
    // A slow uploader holds the only permit while its body trickles in.
    let slow = partial_upload(addr, large, 1000).await;
    // Bounded wait until the server has started reading it: then the next large body is refused unread.
    let mut refused = None;
    for _ in 0..100 {
        let mut probe = partial_upload(addr, large, 0).await;
        probe.write_all(b"").await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(20), probe.read(&mut buf))
            .await
            .expect("an answer to the probe")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("HTTP/1.1 503") {
            refused = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("a large body beyond the cap was refused");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    // Small requests are not held up.
    let mut small = TcpStream::connect(addr).await.unwrap();
    let body = messages::authenticate("UDID-SMALL");
    let head = format!(
        "PUT /mdm/checkin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        testkit::device::CHECKIN,
        body.len()
    );
    small.write_all(head.as_bytes()).await.unwrap();
    small.write_all(&body).await.unwrap();
    let answer = status_of(small).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "unsigned, but read: {answer}"
    );
    // When the slow upload goes away, its permit is free again.
    drop(slow);
    let mut read_again = false;
    for _ in 0..100 {
        let mut s = partial_upload(addr, 300 * 1024, 300 * 1024).await;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("HTTP/1.1 503") {
            assert!(
                text.starts_with("HTTP/1.1 400"),
                "read and refused as junk: {text}"
            );
            read_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(read_again, "the permit came back");
}
