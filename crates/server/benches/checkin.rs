//! The signed check-in path end to end: HTTP on loopback, Mdm-Signature verification (chain cached), plist
//! parsing, certificate binding, sealing/opening and the durable SQLite write. Bodies are signed once up front,
//! so the figures are the server's cost, not the client's signing.
//!
//! Run: `cargo bench -p server --bench checkin`; with `ESCROWD_BENCH_METRICS=off` the server runs without metrics
//! (no recorder, no request layer), to measure what they cost. The recorder is per process, so the two are
//! separate runs.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use testkit::{TestServer, messages};

fn signed_checkin(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (ts, mac) = rt.block_on(async {
        let metrics = std::env::var("ESCROWD_BENCH_METRICS").map_or(true, |v| v != "off");
        let ts = TestServer::start_with(|o| o.metrics = metrics)
            .await
            .expect("server");
        let mac = ts.new_device("UDID-BENCH").expect("device");
        mac.enroll().await.expect("enroll");
        (ts, mac)
    });
    let token = vec![0x5au8; 256];
    let set_body = messages::set_bootstrap_token("UDID-BENCH", Some(&token), None);
    let set_sig = mac.signature(&set_body).expect("sign");
    let get_body = messages::get_bootstrap_token("UDID-BENCH", None);
    let get_sig = mac.signature(&get_body).expect("sign");
    let ct = testkit::device::CHECKIN;

    let mut group = c.benchmark_group("signed_checkin");
    group.throughput(Throughput::Elements(1));
    group.bench_function("SetBootstrapToken", |b| {
        b.iter(|| {
            let r = rt
                .block_on(mac.put_raw("/mdm/checkin", ct, set_body.clone(), Some(&set_sig)))
                .expect("request");
            assert_eq!(r.status, 200);
        })
    });
    group.bench_function("GetBootstrapToken", |b| {
        b.iter(|| {
            let r = rt
                .block_on(mac.put_raw("/mdm/checkin", ct, get_body.clone(), Some(&get_sig)))
                .expect("request");
            assert_eq!(r.status, 200);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("client");
    group.bench_function("sign_mdm_signature_rsa2048_sha256", |b| {
        b.iter(|| mac.signature(&get_body).expect("sign"))
    });
    group.finish();
    rt.block_on(ts.stop());
}

criterion_group!(benches, signed_checkin);
criterion_main!(benches);
