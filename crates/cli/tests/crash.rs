//! Crash safety of Bootstrap Token escrow (issue 14): a 200 to SetBootstrapToken means the token is durable.
//!
//! The real `escrowd serve --http` binary runs on one data directory (SQLite always; PostgreSQL too when
//! `ESCROWD_TEST_DATABASE_URL` is set). Virtual Macs (the `sim` client: real RSA/EC identities from the data
//! directory's device CA, Mac-like signed check-ins) escrow fresh random tokens as fast as they can while the
//! server is SIGKILLed at random moments and restarted on the same data. Each Mac sends one token at a time and
//! records what came of it: a 200 (acknowledged), a transport error (the answer was lost: it may or may not
//! have been stored), or another status. At the end each Mac's GetBootstrapToken must serve its last
//! acknowledged token or one it sent after it whose answer was lost: never an older one, never none.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use sim::client::{ClientError, KeyKind, VirtualMac, issue_identity_with};
use sim::mac::{Mac, MacSpec, SimToken};
use sim::reports;

const MACS: usize = 50;
const KILLS: usize = 6;

/// What one SetBootstrapToken came to, in the order the Mac sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 200: the server promised the token is durable.
    Acked,
    /// The connection failed before an answer arrived (killed mid-request, or the server was down).
    Lost,
    /// The server answered something else.
    Refused(u16),
}

struct Sent {
    token: Vec<u8>,
    outcome: Outcome,
}

/// Random bytes from the OS (via OpenSSL, already a dependency of the sim client).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf).expect("random bytes");
    buf
}

fn random_below(n: u64) -> u64 {
    let b = random_bytes(8);
    u64::from_le_bytes(b.try_into().expect("8 bytes")) % n.max(1)
}

/// A virtual Mac and every token it sent, in order. The storm holds the lock across one request and its
/// record, so a check sees a consistent history.
struct Escrower {
    vm: VirtualMac,
    sent: Vec<Sent>,
}

type Shared = Arc<tokio::sync::Mutex<Escrower>>;

/// One Mac's escrow loop: fresh token, SetBootstrapToken, record, repeat until `stop`; idle while `paused`.
async fn storm(mac: Shared, paused: Arc<AtomicBool>, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) {
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let mut m = mac.lock().await;
        n += 1;
        let token = random_bytes(32);
        let sim_token = SimToken::new(token.clone(), format!("crash-{n}"));
        let body = reports::set_bootstrap_token(&m.vm.mac, Some(&sim_token)).expect("body");
        let outcome = match m.vm.checkin("SetBootstrapToken", body).await {
            Ok((200, _)) => Outcome::Acked,
            Ok((status, _)) => Outcome::Refused(status),
            Err(ClientError::Http(_)) => Outcome::Lost,
            Err(e) => panic!("{}: {e}", m.vm.mac.udid),
        };
        m.sent.push(Sent { token, outcome });
        drop(m);
        if outcome == Outcome::Acked {
            acked.fetch_add(1, Ordering::Relaxed);
        } else {
            // The server is down: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// GetBootstrapToken for every Mac, each checked against its history; the failures, and how many Macs
/// serve a token whose 200 was lost.
async fn check_all(macs: &[Shared]) -> (Vec<String>, usize) {
    let (mut failures, mut served_unacked) = (Vec::new(), 0);
    for mac in macs {
        let mut m = mac.lock().await;
        let body = reports::get_bootstrap_token(&m.vm.mac).expect("body");
        let (status, reply) =
            m.vm.checkin("GetBootstrapToken", body)
                .await
                .expect("GetBootstrapToken after a restart");
        assert_eq!(
            status, 200,
            "{}: GetBootstrapToken answered {status}",
            m.vm.mac.udid
        );
        let served = reports::bootstrap_token_of(&reply).expect("a GetBootstrapToken reply");
        if let Some(p) = m.sent.iter().rposition(|s| s.token == served)
            && m.sent[p].outcome == Outcome::Lost
        {
            served_unacked += 1;
        }
        if let Err(e) = check_served(&m.vm.mac.udid, &m.sent, &served) {
            failures.push(e);
        }
    }
    (failures, served_unacked)
}

/// Whether what GetBootstrapToken served is allowed by what the Mac sent; `Err` says why not.
fn check_served(udid: &str, sent: &[Sent], served: &[u8]) -> Result<(), String> {
    let last_acked = sent.iter().rposition(|s| s.outcome == Outcome::Acked);
    let position = sent.iter().rposition(|s| s.token == served);
    match (last_acked, position) {
        (None, None) if served.is_empty() => Ok(()),
        (Some(a), _) if served.is_empty() => Err(format!(
            "{udid}: nothing served, but token #{a} of {} got a 200",
            sent.len()
        )),
        (_, None) => Err(format!("{udid}: served a token this Mac never sent")),
        (Some(a), Some(p)) if p < a => Err(format!(
            "{udid}: served token #{p}, older than #{a} which got a 200 ({} sent)",
            sent.len()
        )),
        (_, Some(p)) => match sent[p].outcome {
            Outcome::Acked | Outcome::Lost => Ok(()),
            Outcome::Refused(status) => Err(format!(
                "{udid}: served token #{p}, which the server refused with {status}"
            )),
        },
    }
}

async fn crash_storm(root: &Path, database: Option<String>, backend: &str) {
    // No inventory schedule: the storm is the only writer that matters here.
    let mut server = Server::new(root, database.clone(), &["--inventory-interval", "0"]);
    server.start().await;
    let base = server.base_url();

    let ca = server::device_ca::load_existing(&server.data_dir, database.as_deref())
        .await
        .expect("device CA of the data directory");
    let mut macs = Vec::with_capacity(MACS);
    for i in 0..MACS {
        let udid = format!(
            "CRASH-{backend}-{i:04}-{:08X}",
            random_below(u32::MAX as u64)
        );
        let (cert, key) = issue_identity_with(&ca, &udid, KeyKind::EcP256).expect("identity");
        let mac = Mac::new(MacSpec::apple_silicon_ade(&udid));
        let mut vm = VirtualMac::with_identity(mac, cert, key, &base).expect("virtual Mac");
        vm.enroll().await.expect("enroll");
        macs.push(vm);
    }

    let macs: Vec<Shared> = macs
        .into_iter()
        .map(|vm| {
            Arc::new(tokio::sync::Mutex::new(Escrower {
                vm,
                sent: Vec::new(),
            }))
        })
        .collect();
    let started = Instant::now();
    let (paused, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = macs
        .iter()
        .map(|m| {
            tokio::spawn(storm(
                m.clone(),
                paused.clone(),
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();

    // Each round: the storm runs a random 300-1500 ms, the server is SIGKILLed mid-flight and restarted on the
    // same data, and every Mac's token is checked against what was acknowledged before the kill.
    let (mut acked_before_kill, mut killed, mut served_unacked) = (Vec::new(), Vec::new(), 0);
    let mut failures = Vec::new();
    for round in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(300 + random_below(1200))).await;
        acked_before_kill.push(acked.load(Ordering::Relaxed));
        killed.push(server.pid());
        server.kill();
        paused.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(random_below(100))).await;
        server.start().await;
        let (f, unacked) = check_all(&macs).await;
        served_unacked += unacked;
        failures.extend(
            f.into_iter()
                .map(|e| format!("after kill {}: {e}", round + 1)),
        );
        paused.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("storm task");
    }
    let (f, _) = check_all(&macs).await;
    failures.extend(f.into_iter().map(|e| format!("at the end: {e}")));

    let (mut total, mut total_acked, mut total_lost, mut refused) = (0, 0, 0, Vec::new());
    for mac in &macs {
        let m = mac.lock().await;
        total += m.sent.len();
        total_acked += m
            .sent
            .iter()
            .filter(|s| s.outcome == Outcome::Acked)
            .count();
        total_lost += m.sent.iter().filter(|s| s.outcome == Outcome::Lost).count();
        refused.extend(m.sent.iter().filter_map(|s| match s.outcome {
            Outcome::Refused(status) => Some(status),
            _ => None,
        }));
    }
    eprintln!(
        "crash[{backend}]: {MACS} Macs, {KILLS} SIGKILLs, {total} SetBootstrapToken sent, {total_acked} acked, \
         {total_lost} lost (in flight at a kill, or sent while the server was down), {} refused {:?}; checks \
         after the kills found {served_unacked} Mac tokens whose 200 was lost; acked before each kill: \
         {acked_before_kill:?} (pids {killed:?}); {:.1} s",
        refused.len(),
        refused.iter().take(5).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} checks found a lost acknowledged token:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The storm really ran against every incarnation of the server: tokens were acked between kills.
    assert!(
        acked_before_kill.windows(2).all(|w| w[1] > w[0]) && acked_before_kill[0] > 0,
        "no escrow got through between some kills: {acked_before_kill:?}"
    );
    for mac in &macs {
        let m = mac.lock().await;
        assert!(
            m.sent.iter().any(|x| x.outcome == Outcome::Acked),
            "{}: no token acknowledged in the whole storm",
            m.vm.mac.udid
        );
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_an_escrow_storm_loses_no_acknowledged_token_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_storm(dir.path(), None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_an_escrow_storm_loses_no_acknowledged_token_on_postgres() {
    if std::env::var(testkit::backend::PG_URL_VAR).is_err() {
        eprintln!(
            "SKIPPED: set {} (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the crash storm on PostgreSQL",
            testkit::backend::PG_URL_VAR
        );
        return;
    }
    let schema = testkit::backend::PgSchema::create()
        .await
        .expect("a fresh PostgreSQL schema");
    let dir = tempfile::tempdir().unwrap();
    crash_storm(dir.path(), Some(schema.url.clone()), "postgres").await;
    drop(schema);
}

#[test]
fn the_check_rejects_older_absent_and_refused_tokens() {
    let s = |t: u8, outcome| Sent {
        token: vec![t; 4],
        outcome,
    };
    let sent = vec![
        s(1, Outcome::Acked),
        s(2, Outcome::Lost),
        s(3, Outcome::Acked),
        s(4, Outcome::Lost),
        s(5, Outcome::Refused(500)),
    ];
    assert!(check_served("M", &sent, &[3; 4]).is_ok());
    assert!(
        check_served("M", &sent, &[4; 4]).is_ok(),
        "a lost answer may have committed"
    );
    assert!(
        check_served("M", &sent, &[1; 4]).is_err(),
        "older than the last 200"
    );
    assert!(
        check_served("M", &sent, &[2; 4]).is_err(),
        "older than the last 200"
    );
    assert!(check_served("M", &sent, &[]).is_err(), "absent");
    assert!(check_served("M", &sent, &[9; 4]).is_err(), "never sent");
    assert!(check_served("M", &sent, &[5; 4]).is_err(), "refused");
    assert!(check_served("M", &[s(1, Outcome::Lost)], &[]).is_ok());
    assert!(check_served("M", &[s(1, Outcome::Lost)], &[1; 4]).is_ok());
}
