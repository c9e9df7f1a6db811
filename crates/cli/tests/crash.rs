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

/// One Mac's escrow loop: fresh token, SetBootstrapToken, record, repeat until `stop`.
async fn storm(
    mut vm: VirtualMac,
    stop: Arc<AtomicBool>,
    acked_total: Arc<AtomicU64>,
) -> (VirtualMac, Vec<Sent>) {
    let mut sent = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let token = random_bytes(32);
        let sim_token = SimToken::new(token.clone(), format!("crash-{n}"));
        let body = reports::set_bootstrap_token(&vm.mac, Some(&sim_token)).expect("body");
        let outcome = match vm.checkin("SetBootstrapToken", body).await {
            Ok((200, _)) => Outcome::Acked,
            Ok((status, _)) => Outcome::Refused(status),
            Err(ClientError::Http(_)) => Outcome::Lost,
            Err(e) => panic!("{}: {e}", vm.mac.udid),
        };
        if outcome == Outcome::Acked {
            acked_total.fetch_add(1, Ordering::Relaxed);
        } else {
            // The server is down or restarting: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent.push(Sent { token, outcome });
    }
    (vm, sent)
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
    let mut server = Server::new(
        root,
        database.clone(),
        &["--inventory-interval", "0"],
    );
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

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = macs
        .into_iter()
        .map(|vm| tokio::spawn(storm(vm, stop.clone(), acked.clone())))
        .collect();

    let (mut acked_before_kill, mut killed) = (Vec::new(), Vec::new());
    for _ in 0..KILLS {
        // Let the storm run a random 300–1500 ms after the server came up, then kill it mid-flight.
        tokio::time::sleep(Duration::from_millis(300 + random_below(1200))).await;
        acked_before_kill.push(acked.load(Ordering::Relaxed));
        killed.push(server.pid());
        server.kill();
        tokio::time::sleep(Duration::from_millis(random_below(100))).await;
        server.start().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::with_capacity(MACS);
    for t in tasks {
        results.push(t.await.expect("storm task"));
    }

    let (mut total, mut total_acked, mut total_lost, mut refused) = (0, 0, 0, Vec::new());
    let mut failures = Vec::new();
    let mut served_unacked = 0;
    for (vm, sent) in results.iter_mut() {
        total += sent.len();
        total_acked += sent.iter().filter(|s| s.outcome == Outcome::Acked).count();
        total_lost += sent.iter().filter(|s| s.outcome == Outcome::Lost).count();
        refused.extend(sent.iter().filter_map(|s| match s.outcome {
            Outcome::Refused(status) => Some(status),
            _ => None,
        }));
        let body = reports::get_bootstrap_token(&vm.mac).expect("body");
        let (status, reply) = vm
            .checkin("GetBootstrapToken", body)
            .await
            .expect("GetBootstrapToken after the storm");
        assert_eq!(
            status, 200,
            "{}: GetBootstrapToken answered {status}",
            vm.mac.udid
        );
        let served = reports::bootstrap_token_of(&reply).expect("a GetBootstrapToken reply");
        if let Some(p) = sent.iter().rposition(|s| s.token == served)
            && sent[p].outcome == Outcome::Lost
        {
            served_unacked += 1;
        }
        if let Err(e) = check_served(&vm.mac.udid, sent, &served) {
            failures.push(e);
        }
    }
    eprintln!(
        "crash[{backend}]: {MACS} Macs, {KILLS} SIGKILLs, {total} SetBootstrapToken sent, {total_acked} acked, \
         {total_lost} lost in flight, {} refused {:?}, {served_unacked} Macs serve a token whose 200 was lost; \
         acked before each kill: {acked_before_kill:?} (pids {killed:?}); storm {:.1} s",
        refused.len(),
        refused.iter().take(5).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {MACS} Macs lost an acknowledged token:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The storm really ran against every incarnation of the server: tokens were acked between kills.
    assert!(
        acked_before_kill.windows(2).all(|w| w[1] > w[0]) && acked_before_kill[0] > 0,
        "no escrow got through between some kills: {acked_before_kill:?}"
    );
    assert!(
        results
            .iter()
            .all(|(_, s)| s.iter().any(|x| x.outcome == Outcome::Acked)),
        "every Mac must have had at least one token acknowledged"
    );
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
