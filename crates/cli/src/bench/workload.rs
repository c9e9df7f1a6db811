//! Workloads and the timed window: parsing `--workload`, the pre-signed requests each one replays, and the
//! workers that send them.
//!
//! Guarantees: nothing is signed inside a timed window (every body and its `Mdm-Signature` are made before
//! it); a request counts as ok only when the server answered what the protocol promises (200; for
//! GetBootstrapToken a non-empty token; for a command poll the command that was queued); every other
//! outcome is counted by kind; a workload that consumes bodies (set, enroll, commands) stops when they run
//! out and says so instead of replaying them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::HeaderValue;

/// A check-in message kind a mix can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A signed Idle poll on the command channel.
    Idle,
    /// GetBootstrapToken for a device whose token was set before the window.
    Get,
    /// SetBootstrapToken with a fresh token each time.
    Set,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::Get => "get",
            Kind::Set => "set",
        }
    }
}

/// One `--workload` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// Weighted mix of check-ins (a single kind is a mix of one).
    Mix(Vec<(Kind, u32)>),
    /// An enrollment wave: Authenticate + TokenUpdate from devices never seen before.
    Enroll,
    /// Commands queued through the API before the window, then fetched and acknowledged by the devices.
    Commands,
}

pub const WORKLOAD_HELP: &str = "idle, get, set, enroll, commands, mixed (= idle=6+get=3+set=1), or a mix of \
idle/get/set with weights joined by '+', e.g. idle=8+get=2";

impl Workload {
    pub fn name(&self) -> String {
        match self {
            Workload::Enroll => "enroll".into(),
            Workload::Commands => "commands".into(),
            Workload::Mix(parts) if parts.len() == 1 => parts[0].0.name().into(),
            Workload::Mix(parts) => parts
                .iter()
                .map(|(k, w)| format!("{}={w}", k.name()))
                .collect::<Vec<_>>()
                .join("+"),
        }
    }

    /// Whether a second window (`--paced`) can replay it. Enrollments and the commands' acknowledgements are
    /// signed once per run, for one window: the server refuses a command UUID it already finished.
    pub fn repeatable(&self) -> bool {
        matches!(self, Workload::Mix(_))
    }

    pub fn uses(&self, kind: Kind) -> bool {
        matches!(self, Workload::Mix(parts) if parts.iter().any(|(k, _)| *k == kind))
    }
}

/// Parse one workload: `idle`, `get`, `set`, `enroll`, `commands`, `mixed`, or `idle=3+get=1`.
pub fn parse_workload(s: &str) -> Result<Workload, String> {
    let s = s.trim();
    match s.to_ascii_lowercase().as_str() {
        "enroll" => return Ok(Workload::Enroll),
        "commands" => return Ok(Workload::Commands),
        "mixed" => return parse_workload("idle=6+get=3+set=1"),
        "" => return Err(format!("empty workload; use {WORKLOAD_HELP}")),
        _ => {}
    }
    let mut parts: Vec<(Kind, u32)> = Vec::new();
    for item in s.split('+') {
        let (name, weight) = match item.split_once('=') {
            Some((n, w)) => {
                let w: u32 = w
                    .trim()
                    .parse()
                    .ok()
                    .filter(|w| (1..=1000).contains(w))
                    .ok_or_else(|| format!("weight {w:?} in {s:?} must be 1-1000"))?;
                (n.trim(), w)
            }
            None => (item.trim(), 1),
        };
        let kind = match name.to_ascii_lowercase().as_str() {
            "idle" => Kind::Idle,
            "get" => Kind::Get,
            "set" => Kind::Set,
            "enroll" | "commands" if s.contains('+') => {
                return Err(format!(
                    "{name} cannot be mixed; run it as its own workload"
                ));
            }
            _ => return Err(format!("unknown workload {name:?}; use {WORKLOAD_HELP}")),
        };
        if parts.iter().any(|(k, _)| *k == kind) {
            return Err(format!("{name} appears twice in {s:?}"));
        }
        parts.push((kind, weight));
    }
    Ok(Workload::Mix(parts))
}

/// The kinds of a mix in sending order: each kind `weight` times, interleaved (idle=2+get=1 → idle, get, idle).
pub fn schedule(parts: &[(Kind, u32)]) -> Vec<Kind> {
    let mut left: Vec<(Kind, u32)> = parts.to_vec();
    let mut out = Vec::new();
    while left.iter().any(|(_, w)| *w > 0) {
        for (k, w) in left.iter_mut() {
            if *w > 0 {
                out.push(*k);
                *w -= 1;
            }
        }
    }
    out
}

/// Which MDM endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Checkin,
    Connect,
}

/// A body with its `Mdm-Signature`, made before the window.
#[derive(Clone)]
pub struct Signed {
    pub channel: Channel,
    pub body: Bytes,
    pub signature: HeaderValue,
}

/// Bodies may hold (test) Bootstrap Tokens: Debug shows their size only.
impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("channel", &self.channel)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Where requests go: the check-in and command URLs of each instance (round-robin), parsed once: parsing a
/// URL for every request was about 4 % of the generator's samples under the get workload.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub checkin: Vec<reqwest::Url>,
    pub connect: Vec<reqwest::Url>,
}

impl Endpoints {
    /// The endpoints at these URLs; an error names the one that is not a URL.
    pub fn parse(checkin: &[String], connect: &[String]) -> anyhow::Result<Endpoints> {
        let parse = |urls: &[String]| -> anyhow::Result<Vec<reqwest::Url>> {
            urls.iter()
                .map(|u| {
                    reqwest::Url::parse(u).map_err(|e| {
                        anyhow::anyhow!(
                            "{u} is not a server URL ({e}); give e.g. http://127.0.0.1:8080"
                        )
                    })
                })
                .collect()
        };
        Ok(Endpoints {
            checkin: parse(checkin)?,
            connect: parse(connect)?,
        })
    }
}

/// What a command poll must answer.
#[derive(Debug, Clone)]
pub enum Expect {
    Ok,
    Token,
    Command(String),
    NoCommand,
}

/// A device's command round trips: the Idle poll, then one acknowledgement per queued command.
#[derive(Debug, Clone)]
pub struct CommandScript {
    pub idle: Signed,
    /// (UUID of the queued command, the signed acknowledgement of it), in queue order.
    pub acks: Vec<(String, Signed)>,
}

/// The requests one workload replays.
#[derive(Debug, Clone)]
pub enum Plan {
    Mix {
        schedule: Vec<Kind>,
        idle: Vec<Signed>,
        get: Vec<Signed>,
        /// Fresh tokens, each sent at most once.
        set: Vec<Signed>,
    },
    Enroll(Vec<(Signed, Signed)>),
    Commands(Vec<CommandScript>),
}

/// Counters of one worker, merged at the end.
#[derive(Debug, Default)]
pub struct Tally {
    pub latencies_us: Vec<u32>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
    pub fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }
}

/// Send one pre-signed request; `Ok(body)` when the status was 200.
pub async fn send(http: &reqwest::Client, url: &reqwest::Url, s: &Signed) -> Result<Bytes, String> {
    let content_type = match s.channel {
        Channel::Checkin => sim::client::CHECKIN_CONTENT_TYPE,
        Channel::Connect => sim::client::CONNECT_CONTENT_TYPE,
    };
    let resp = http
        .put(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header("Mdm-Signature", s.signature.clone())
        .body(s.body.clone())
        .send()
        .await
        .map_err(|e| error_kind(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| error_kind(&e))?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    Ok(body)
}

fn error_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect failed".into()
    } else {
        "connection error".into()
    }
}

/// The `CommandUUID` of a command the server sent, if the body is one.
pub fn command_uuid(body: &[u8]) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let v = plist::Value::from_reader(std::io::Cursor::new(body)).ok()?;
    v.as_dictionary()?
        .get("CommandUUID")?
        .as_string()
        .map(str::to_string)
}

fn check(expect: &Expect, body: &[u8]) -> Result<(), String> {
    match expect {
        Expect::Ok => Ok(()),
        Expect::Token => match sim::reports::bootstrap_token_of(body) {
            Ok(t) if !t.is_empty() => Ok(()),
            Ok(_) => Err("no token in reply".into()),
            Err(_) => Err("unreadable reply".into()),
        },
        Expect::NoCommand => match command_uuid(body) {
            None => Ok(()),
            Some(_) => Err("unexpected command".into()),
        },
        Expect::Command(uuid) => match command_uuid(body) {
            Some(u) if &u == uuid => Ok(()),
            Some(_) => Err("unexpected command".into()),
            None => Err("queued command missing".into()),
        },
    }
}

/// The shared state of a window.
struct Window {
    http: reqwest::Client,
    endpoints: Endpoints,
    plan: Plan,
    deadline: Instant,
    /// Paced windows: when request ticket 0 is due, and the gap between two tickets.
    pace: Option<(Instant, Duration)>,
    next: AtomicUsize,
    set_next: AtomicUsize,
    url_next: AtomicUsize,
    stop: AtomicBool,
    ended_early: std::sync::Mutex<Option<String>>,
    done: Arc<AtomicU64>,
}

impl Window {
    fn url(&self, ch: Channel) -> &reqwest::Url {
        let list = match ch {
            Channel::Checkin => &self.endpoints.checkin,
            Channel::Connect => &self.endpoints.connect,
        };
        &list[self.url_next.fetch_add(1, Ordering::Relaxed) % list.len()]
    }

    fn end_early(&self, why: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let mut e = self.ended_early.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert_with(|| why.to_string());
    }

    /// One request, timed and tallied; false when it failed. Its latency counts from `due` when the window is
    /// paced (the time it was scheduled for, so time spent waiting for a free connection counts too).
    async fn request(
        &self,
        t: &mut Tally,
        s: &Signed,
        expect: &Expect,
        due: Option<Instant>,
    ) -> bool {
        let started = due.unwrap_or_else(Instant::now);
        let result = send(&self.http, self.url(s.channel), s).await;
        let us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.done.fetch_add(1, Ordering::Relaxed);
        let outcome = result.and_then(|body| check(expect, &body));
        t.latencies_us.push(us);
        match outcome {
            Ok(()) => {
                t.ok += 1;
                true
            }
            Err(kind) => {
                *t.errors.entry(kind).or_default() += 1;
                false
            }
        }
    }

    async fn worker(self: Arc<Self>) -> Tally {
        let mut t = Tally::default();
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let due = match self.pace {
                Some((start, gap)) => {
                    let due = start + gap.mul_f64(n as f64);
                    if due >= self.deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
                None => None,
            };
            match &self.plan {
                Plan::Mix {
                    schedule,
                    idle,
                    get,
                    set,
                } => {
                    let kind = schedule[n % schedule.len()];
                    let device = n / schedule.len();
                    match kind {
                        Kind::Idle => {
                            self.request(&mut t, &idle[device % idle.len()], &Expect::Ok, due)
                                .await;
                        }
                        Kind::Get => {
                            self.request(&mut t, &get[device % get.len()], &Expect::Token, due)
                                .await;
                        }
                        Kind::Set => {
                            let i = self.set_next.fetch_add(1, Ordering::Relaxed);
                            let Some(s) = set.get(i) else {
                                self.end_early(
                                    "pre-signed SetBootstrapToken bodies used up (raise --presign)",
                                );
                                break;
                            };
                            self.request(&mut t, s, &Expect::Ok, due).await;
                        }
                    }
                }
                Plan::Enroll(pairs) => {
                    let Some((auth, update)) = pairs.get(n) else {
                        self.end_early("pre-signed enrollments used up (raise --presign)");
                        break;
                    };
                    if self.request(&mut t, auth, &Expect::Ok, due).await {
                        self.request(&mut t, update, &Expect::Ok, None).await;
                    }
                }
                Plan::Commands(scripts) => {
                    let Some(script) = scripts.get(n) else {
                        self.end_early("every queued command was delivered and acknowledged");
                        break;
                    };
                    let first = match script.acks.first() {
                        Some((u, _)) => Expect::Command(u.clone()),
                        None => Expect::NoCommand,
                    };
                    if !self.request(&mut t, &script.idle, &first, due).await {
                        continue;
                    }
                    for (i, (_, ack)) in script.acks.iter().enumerate() {
                        if Instant::now() >= self.deadline {
                            break;
                        }
                        let expect = match script.acks.get(i + 1) {
                            Some((u, _)) => Expect::Command(u.clone()),
                            None => Expect::NoCommand,
                        };
                        if !self.request(&mut t, ack, &expect, None).await {
                            break;
                        }
                    }
                }
            }
        }
        t
    }
}

/// What a window gave.
pub struct WindowResult {
    pub tally: Tally,
    pub elapsed: Duration,
    pub ended_early: Option<String>,
}

/// Run `plan` with `concurrency` workers for at most `duration`, counting requests into `done`; with `rate`,
/// request tickets are due at a fixed rate (requests/s over all workers) instead of as fast as they go.
pub async fn run_window(
    http: reqwest::Client,
    endpoints: Endpoints,
    plan: Plan,
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
    done: Arc<AtomicU64>,
) -> WindowResult {
    let started = Instant::now();
    let pace = rate
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(|r| (started, Duration::from_secs_f64(1.0 / r)));
    let window = Arc::new(Window {
        http,
        endpoints,
        plan,
        deadline: started + duration,
        pace,
        next: AtomicUsize::new(0),
        set_next: AtomicUsize::new(0),
        url_next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        ended_early: std::sync::Mutex::new(None),
        done,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        tasks.spawn(window.clone().worker());
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => tally.merge(t),
            Err(_) => *tally.errors.entry("worker failed".into()).or_default() += 1,
        }
    }
    let elapsed = started.elapsed();
    let ended_early = window
        .ended_early
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    WindowResult {
        tally,
        elapsed,
        ended_early,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_workloads_mixes_and_refuses_the_rest() {
        assert_eq!(
            parse_workload("get"),
            Ok(Workload::Mix(vec![(Kind::Get, 1)]))
        );
        assert_eq!(parse_workload(" Enroll "), Ok(Workload::Enroll));
        assert_eq!(parse_workload("commands"), Ok(Workload::Commands));
        let mix = parse_workload("idle=8+get=2").unwrap();
        assert_eq!(mix, Workload::Mix(vec![(Kind::Idle, 8), (Kind::Get, 2)]));
        assert_eq!(mix.name(), "idle=8+get=2");
        // Only the check-in mixes replay in a paced second window; enrollments and acknowledgements are used up.
        assert!(mix.repeatable() && parse_workload("set").unwrap().repeatable());
        assert!(!Workload::Enroll.repeatable() && !Workload::Commands.repeatable());
        assert!(mix.uses(Kind::Get) && !mix.uses(Kind::Set));
        assert_eq!(
            parse_workload("mixed").unwrap().name(),
            "idle=6+get=3+set=1"
        );
        for bad in [
            "",
            "sett",
            "idle=0",
            "idle=x",
            "get+get",
            "idle+enroll",
            "idle=1001",
        ] {
            let err = parse_workload(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(
            parse_workload("sett")
                .unwrap_err()
                .contains("unknown workload")
        );
    }

    #[test]
    fn a_schedule_interleaves_by_weight() {
        assert_eq!(
            schedule(&[(Kind::Idle, 3), (Kind::Get, 1)]),
            vec![Kind::Idle, Kind::Get, Kind::Idle, Kind::Idle]
        );
        assert_eq!(schedule(&[(Kind::Set, 1)]), vec![Kind::Set]);
    }

    #[test]
    fn replies_are_checked_against_what_the_protocol_promises() {
        let cmd = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>CommandUUID</key><string>u-1</string><key>Command</key><dict><key>RequestType</key><string>SecurityInfo</string></dict></dict></plist>"#;
        assert_eq!(command_uuid(cmd).as_deref(), Some("u-1"));
        assert_eq!(command_uuid(b""), None);
        assert!(check(&Expect::Command("u-1".into()), cmd).is_ok());
        assert_eq!(
            check(&Expect::Command("u-2".into()), cmd),
            Err("unexpected command".into())
        );
        assert_eq!(
            check(&Expect::NoCommand, cmd),
            Err("unexpected command".into())
        );
        assert!(check(&Expect::NoCommand, b"").is_ok());
        let token = br#"<?xml version="1.0"?><plist version="1.0"><dict><key>BootstrapToken</key><data>AAEC</data></dict></plist>"#;
        assert!(check(&Expect::Token, token).is_ok());
        let empty = br#"<?xml version="1.0"?><plist version="1.0"><dict></dict></plist>"#;
        assert_eq!(
            check(&Expect::Token, empty),
            Err("no token in reply".into())
        );
        assert_eq!(
            check(&Expect::Token, b"<html>"),
            Err("unreadable reply".into())
        );
    }
}
