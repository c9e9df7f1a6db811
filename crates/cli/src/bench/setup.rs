//! Untimed setup: the device CA, the devices, every signed body, and the per-server preparation a window
//! needs (enrolling, draining queued commands, the token Get fetches, queueing commands).
//!
//! Guarantees: signing and certificate issuing run on every core before any window; a server that refuses
//! setup (enrollment, the primed token, queueing) stops the run with the reason, since measuring a
//! half-prepared server would mislead.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use bytes::Bytes;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use pki::ca::CertificateAuthority;
use pki::sign::{SignOptions, SignatureDigest, mdm_signature};
use protocol::command::Status;
use reqwest::header::HeaderValue;
use sim::keypool::KeyPool;
use sim::mac::{Arch, Enrollment, Mac, MacSpec, OsVersion, SimToken};
use tokio::task::JoinSet;

use super::workload::{self, Channel, CommandScript, Kind, Plan, Signed, Workload};
use super::{BenchArgs, Target};

/// Most commands queued per device for the commands workload.
const MAX_COMMANDS_PER_DEVICE: usize = 100;
/// Most Idle → acknowledge rounds while draining one device's queue.
const MAX_DRAIN: usize = 32;

pub async fn load_ca(args: &BenchArgs) -> anyhow::Result<CertificateAuthority> {
    match (&args.device_ca_cert, &args.device_ca_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("reading the device CA at {}", p.display()))
            };
            CertificateAuthority::from_pem(&read(cert)?, &read(key)?)
                .context("loading the device CA")
        }
        _ => server::device_ca::load_existing(&args.data_dir, args.database.as_deref())
            .await
            .with_context(|| {
                format!(
                    "loading the device CA from the data directory {} (or give --device-ca-cert and \
                     --device-ca-key)",
                    args.data_dir.display()
                )
            }),
    }
}

/// A virtual device: its model (for bodies) and identity.
struct Device {
    mac: Mac,
    cert: X509,
    key: PKey<Private>,
}

fn mac_for(udid: String) -> Mac {
    // Manually enrolled Apple silicon on macOS 14: no AwaitingConfiguration, so servers queue no setup
    // commands.
    Mac::new(MacSpec {
        udid,
        arch: Arch::AppleSilicon,
        os: OsVersion::new(14, 0, 0),
        enrollment: Enrollment::Manual,
        filevault: true,
        bt_capability: true,
    })
}

/// Map `f` over `items` on every core, keeping order.
fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(workers).max(1);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(chunk).collect());
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

async fn par_map_async<T, R>(items: Vec<T>, f: impl Fn(T) -> R + Send + Sync + 'static) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || par_map(items, f))
        .await
        .unwrap_or_else(|p| std::panic::resume_unwind(p.into_panic()))
}

fn sign(channel: Channel, body: Vec<u8>, d: &Device) -> anyhow::Result<Signed> {
    let opts = SignOptions {
        digest: SignatureDigest::Sha1,
        signed_attributes: false,
    };
    let sig = mdm_signature(&body, &d.cert, &d.key, opts)?;
    Ok(Signed {
        channel,
        body: Bytes::from(body),
        signature: HeaderValue::from_str(&sig)?,
    })
}

fn command_body(uuid: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict><key>CommandUUID</key>\
         <string>{uuid}</string><key>Command</key><dict><key>RequestType</key><string>ProfileList</string>\
         </dict></dict></plist>\n"
    )
    .into_bytes()
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:X}{:X}", nanos, std::process::id())
}

/// Everything signed before the windows.
pub struct Prepared {
    devices: Arc<Vec<Device>>,
    enroll: Vec<(Signed, Signed)>,
    idle: Vec<Signed>,
    get: Vec<Signed>,
    set_prime: Vec<Signed>,
    set: Vec<Signed>,
    wave: Vec<(Signed, Signed)>,
    commands: Vec<CommandScript>,
    signatures: Arc<AtomicU64>,
}

impl Prepared {
    pub async fn new(
        ca: Arc<CertificateAuthority>,
        pool: Arc<KeyPool>,
        args: &BenchArgs,
        workloads: &[Workload],
    ) -> anyhow::Result<Prepared> {
        let run = run_id();
        let signatures = Arc::new(AtomicU64::new(0));
        let issue = {
            let (ca, pool) = (ca.clone(), pool.clone());
            move |(i, udid): (usize, String)| -> anyhow::Result<Device> {
                let (cert, key) = pool.issue_identity(&ca, &udid, i)?;
                Ok(Device {
                    mac: mac_for(udid),
                    cert,
                    key,
                })
            }
        };
        let udids: Vec<(usize, String)> = (0..args.devices)
            .map(|i| (i, format!("BENCH-{run}-{i:06}")))
            .collect();
        let devices: Vec<Device> = par_map_async(udids, issue.clone())
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let devices = Arc::new(devices);
        let uses = |k: Kind| workloads.iter().any(|w| w.uses(k));
        let n = args.devices;

        // Per-device bodies: (device index, what) → signed.
        #[derive(Clone, Copy)]
        enum Body {
            Auth,
            Update,
            Idle,
            Get,
            Set,
        }
        let per_device = |what: Body, count: usize| {
            let (devices, signatures) = (devices.clone(), signatures.clone());
            par_map_async(
                (0..count).collect(),
                move |i: usize| -> anyhow::Result<Signed> {
                    let d = &devices[i % devices.len()];
                    let (channel, body) = match what {
                        Body::Auth => (Channel::Checkin, sim::reports::authenticate(&d.mac)?),
                        Body::Update => (Channel::Checkin, sim::reports::token_update(&d.mac)?),
                        Body::Idle => (
                            Channel::Connect,
                            sim::reports::report(
                                &d.mac,
                                Status::Idle,
                                None,
                                Default::default(),
                                None,
                            )?,
                        ),
                        Body::Get => (Channel::Checkin, sim::reports::get_bootstrap_token(&d.mac)?),
                        Body::Set => {
                            let mut token = vec![0u8; 64];
                            openssl::rand::rand_bytes(&mut token)?;
                            let token = SimToken::new(token, format!("{i}"));
                            (
                                Channel::Checkin,
                                sim::reports::set_bootstrap_token(&d.mac, Some(&token))?,
                            )
                        }
                    };
                    signatures.fetch_add(1, Ordering::Relaxed);
                    sign(channel, body, d)
                },
            )
        };
        let collect =
            |v: Vec<anyhow::Result<Signed>>| v.into_iter().collect::<anyhow::Result<Vec<_>>>();
        let auth = collect(per_device(Body::Auth, n).await)?;
        let update = collect(per_device(Body::Update, n).await)?;
        let enroll = auth.into_iter().zip(update).collect();
        let idle = collect(per_device(Body::Idle, n).await)?;
        let (get, set_prime) = if uses(Kind::Get) {
            (
                collect(per_device(Body::Get, n).await)?,
                collect(per_device(Body::Set, n).await)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let set = if uses(Kind::Set) {
            collect(per_device(Body::Set, args.presign).await)?
        } else {
            Vec::new()
        };
        let wave = if workloads.contains(&Workload::Enroll) {
            let signatures = signatures.clone();
            let items: Vec<(usize, String)> = (0..args.presign.div_ceil(2))
                .map(|i| (i, format!("BENCH-{run}-E{i:06}")))
                .collect();
            par_map_async(items, move |item| -> anyhow::Result<(Signed, Signed)> {
                let d = issue(item)?;
                signatures.fetch_add(2, Ordering::Relaxed);
                Ok((
                    sign(Channel::Checkin, sim::reports::authenticate(&d.mac)?, &d)?,
                    sign(Channel::Checkin, sim::reports::token_update(&d.mac)?, &d)?,
                ))
            })
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        let commands = if workloads.contains(&Workload::Commands) {
            let per = args.presign.div_ceil(n).clamp(1, MAX_COMMANDS_PER_DEVICE);
            let uuids: Arc<Vec<String>> = Arc::new(
                (0..per)
                    .map(|k| format!("BENCH-{run}-CMD-{k:03}"))
                    .collect(),
            );
            let (devices, signatures) = (devices.clone(), signatures.clone());
            let idle = idle.clone();
            par_map_async(
                (0..n).collect(),
                move |i: usize| -> anyhow::Result<CommandScript> {
                    let d = &devices[i];
                    let acks = uuids
                        .iter()
                        .map(|u| -> anyhow::Result<(String, Signed)> {
                            let body = sim::reports::report(
                                &d.mac,
                                Status::Acknowledged,
                                Some(u),
                                Default::default(),
                                None,
                            )?;
                            signatures.fetch_add(1, Ordering::Relaxed);
                            Ok((u.clone(), sign(Channel::Connect, body, d)?))
                        })
                        .collect::<anyhow::Result<_>>()?;
                    Ok(CommandScript {
                        idle: idle[i].clone(),
                        acks,
                    })
                },
            )
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Prepared {
            devices,
            enroll,
            idle,
            get,
            set_prime,
            set,
            wave,
            commands,
            signatures,
        })
    }

    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    /// Enroll every device on `t` (Authenticate, TokenUpdate; both must answer 200), and set the token that
    /// the get workload fetches.
    pub async fn enroll(
        &self,
        http: &reqwest::Client,
        t: &Target,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        let pairs: Vec<Vec<Signed>> = self
            .enroll
            .iter()
            .enumerate()
            .map(|(i, (a, u))| {
                let mut v = vec![a.clone(), u.clone()];
                v.extend(self.set_prime.get(i).cloned());
                v
            })
            .collect();
        for_each(http, t, pairs, concurrency)
            .await
            .with_context(|| format!("enrolling the devices on {}", t.name))
    }

    /// Answer whatever the server queued for the devices (e.g. follow-ups after a TokenUpdate or an
    /// escrow) so Idle polls measure an empty queue.
    async fn drain(
        &self,
        http: &reqwest::Client,
        t: &Target,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (i, idle) in self.idle.iter().enumerate() {
            let (gate, http, idle, devices) = (
                gate.clone(),
                http.clone(),
                idle.clone(),
                self.devices.clone(),
            );
            let url = t.endpoints.connect[i % t.endpoints.connect.len()].clone();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let mut next = idle;
                for _ in 0..MAX_DRAIN {
                    let body = workload::send(&http, &url, &next)
                        .await
                        .map_err(anyhow::Error::msg)?;
                    let Some(uuid) = workload::command_uuid(&body) else {
                        return Ok(());
                    };
                    let d = &devices[i];
                    let ack = sim::reports::report(
                        &d.mac,
                        Status::Acknowledged,
                        Some(&uuid),
                        Default::default(),
                        None,
                    )?;
                    next = sign(Channel::Connect, ack, d)?;
                }
                bail!("the server kept sending commands after {MAX_DRAIN} acknowledgements")
            });
        }
        while let Some(j) = tasks.join_next().await {
            j.context("a drain task failed")?
                .with_context(|| format!("draining queued commands on {}", t.name))?;
        }
        Ok(())
    }

    /// Queue every device's commands through `t`'s NanoMDM-compatible API (`PUT /v1/enqueue/{ids}?nopush`).
    async fn enqueue(&self, http: &reqwest::Client, t: &Target) -> anyhow::Result<()> {
        let key = t
            .api_key
            .as_deref()
            .context("the commands workload needs --api-key")?;
        let Some(first) = self.commands.first() else {
            return Ok(());
        };
        let base = &t.api_base;
        // One call per command for every device: NanoMDM refuses a command UUID it already stored, so the same
        // UUID cannot be queued in several calls.
        let ids: Vec<&str> = self.devices.iter().map(|d| d.mac.udid.as_str()).collect();
        for (uuid, _) in &first.acks {
            let resp = http
                .put(format!("{base}/v1/enqueue/{}?nopush=1", ids.join(",")))
                .basic_auth("nanomdm", Some(key))
                .header(reqwest::header::CONTENT_TYPE, "application/x-plist")
                .body(command_body(uuid))
                .send()
                .await
                .with_context(|| format!("queueing commands on {}", t.name))?;
            let status = resp.status();
            if !status.is_success() || status.as_u16() == 207 {
                let text = resp.text().await.unwrap_or_default();
                bail!(
                    "{} refused to queue a command: HTTP {status} {}",
                    t.name,
                    text.chars().take(300).collect::<String>()
                );
            }
        }
        Ok(())
    }

    /// Prepare `t` for `w` (drain, queue) and hand out the requests the window replays.
    pub async fn plan_for(
        &self,
        http: &reqwest::Client,
        t: &Target,
        w: &Workload,
        concurrency: usize,
    ) -> anyhow::Result<Plan> {
        self.drain(http, t, concurrency).await?;
        Ok(match w {
            Workload::Mix(parts) => Plan::Mix {
                schedule: workload::schedule(parts),
                idle: self.idle.clone(),
                get: self.get.clone(),
                set: self.set.clone(),
            },
            Workload::Enroll => Plan::Enroll(self.wave.clone()),
            Workload::Commands => {
                self.enqueue(http, t).await?;
                Plan::Commands(self.commands.clone())
            }
        })
    }
}

/// Send each device's requests in order (devices in parallel, `concurrency` at a time); every answer must
/// be a 200.
async fn for_each(
    http: &reqwest::Client,
    t: &Target,
    per_device: Vec<Vec<Signed>>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (i, reqs) in per_device.into_iter().enumerate() {
        let (gate, http) = (gate.clone(), http.clone());
        let endpoints = t.endpoints.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            for s in &reqs {
                let list = match s.channel {
                    Channel::Checkin => &endpoints.checkin,
                    Channel::Connect => &endpoints.connect,
                };
                workload::send(&http, &list[i % list.len()], s)
                    .await
                    .map_err(anyhow::Error::msg)?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(j) = tasks.join_next().await {
        j.context("a setup task failed")??;
    }
    Ok(())
}
