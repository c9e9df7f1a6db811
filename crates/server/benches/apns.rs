//! Pushes per second from the APNs provider to the local stand-in (HTTP/2 over TLS with a client certificate)
//! for 1,000 devices: `cargo bench -p server --bench apns`. Prints one line per round; no assertions.

use std::time::{Duration, Instant};

use server::apns::{ApnsClient, ApnsSettings};
use service::push::{PushTarget, Pusher};
use testkit::apns::{ApnsStandIn, PushCa, device_token};
use testkit::messages::TOPIC;
use vault::Secret;

const DEVICES: u32 = 1000;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let ca = PushCa::generate().unwrap();
        let standin = ApnsStandIn::start(&ca.cert_pem().unwrap()).await.unwrap();
        let (cert, key) = ca.issue(TOPIC, -1, 30).unwrap();
        let targets: Vec<PushTarget> = (0..DEVICES)
            .map(|n| PushTarget {
                enrollment_id: format!("D{n}"),
                token: device_token(n).0,
                push_magic: format!("magic-{n}"),
                topic: TOPIC.into(),
            })
            .collect();
        for concurrency in [16, 64, 256] {
            let client = ApnsClient::new(
                ApnsSettings {
                    url: standin.url.clone(),
                    ca_pem: Some(standin.server_ca_pem.clone()),
                    concurrency,
                    initial_backoff: Duration::from_millis(1),
                    ..Default::default()
                },
                &cert,
                &Secret::new(key.clone()),
            )
            .unwrap();
            // Warm the connection, then time three rounds.
            client.push(&targets[..1]).await;
            for round in 1..=3 {
                let start = Instant::now();
                let results = client.push(&targets).await;
                let elapsed = start.elapsed();
                let failed = results.iter().filter(|r| r.error.is_some()).count();
                println!(
                    "apns: {DEVICES} pushes, concurrency {concurrency}, round {round}: {:.0} pushes/s ({} ms, {failed} failed)",
                    f64::from(DEVICES) / elapsed.as_secs_f64(),
                    elapsed.as_millis()
                );
            }
        }
        println!(
            "stand-in saw {} requests on {} connection(s), max {} in flight",
            standin.requests(),
            standin.connections(),
            standin.max_in_flight()
        );
    });
}
