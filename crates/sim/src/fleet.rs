//! A fleet of virtual Macs running a mix of scenarios against one server: the demo and the load generator
//! behind `escrowd sim`.
//!
//! Guarantees: each Mac runs its scenario to the end or records one failure reason (never a panic); at
//! most `concurrency` Macs talk to the server at once; the summary holds counts and latencies only, no
//! token bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::ca::CertificateAuthority;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::client::{ClientError, KeyKind, VirtualMac, issue_identity_with};
use crate::keypool::KeyPool;
use crate::mac::{AddUser, Arch, Enrollment, Mac, MacSpec, OsVersion, Served, UserKind};

mod summary;

pub use summary::{Latency, Summary, summarize};

const PW: &str = "sim-password";

/// The scenarios a fleet Mac can play (named after `shared/docs/scenarios.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// S1: AS 14 ADE; the Setup Assistant admin's login escrows; a mobile account gets a token from the BT.
    S1,
    /// S4: a managed admin from a hash escrows at its first GUI login.
    S4,
    /// S5: Intel 10.15 ADE; a mobile account gets a token once the BT is escrowed.
    S5,
    /// S6: Intel 10.14; no Bootstrap Token at all.
    S6,
    /// S7: macOS 13; a standard user logs in first and takes the first token, then grants the admin one.
    S7,
    /// S8: no token holder, nothing escrows, grants fail.
    S8,
    /// S9: macOS 10.12, Secure Tokens do not apply.
    S9,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::S1,
        Scenario::S4,
        Scenario::S5,
        Scenario::S6,
        Scenario::S7,
        Scenario::S8,
        Scenario::S9,
    ];

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name().eq_ignore_ascii_case(s.trim()))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::S1 => "s1",
            Scenario::S4 => "s4",
            Scenario::S5 => "s5",
            Scenario::S6 => "s6",
            Scenario::S7 => "s7",
            Scenario::S8 => "s8",
            Scenario::S9 => "s9",
        }
    }

    fn spec(&self, udid: String) -> MacSpec {
        let (arch, os) = match self {
            Scenario::S1 | Scenario::S4 | Scenario::S8 => {
                (Arch::AppleSilicon, OsVersion::new(14, 0, 0))
            }
            Scenario::S5 => (Arch::Intel, OsVersion::new(10, 15, 7)),
            Scenario::S6 => (Arch::Intel, OsVersion::new(10, 14, 6)),
            Scenario::S7 => (Arch::AppleSilicon, OsVersion::new(13, 6, 0)),
            Scenario::S9 => (Arch::Intel, OsVersion::new(10, 12, 6)),
        };
        MacSpec {
            udid,
            arch,
            os,
            enrollment: Enrollment::Ade,
            filevault: true,
            bt_capability: true,
        }
    }

    /// Setup Assistant's primary account: `ladmin` (admin) in S1, S5, S6 and S9; none where the story has
    /// only a managed admin (S4, S7, S8).
    fn setup_plan(&self) -> crate::client::SetupPlan {
        let primary = match self {
            Scenario::S1 | Scenario::S5 | Scenario::S6 | Scenario::S9 => {
                Some(AddUser::new("ladmin", true, UserKind::Local, Some(PW)))
            }
            Scenario::S4 | Scenario::S7 | Scenario::S8 => None,
        };
        crate::client::SetupPlan { primary }
    }

    /// Whether the scenario ends with the Bootstrap Token escrowed.
    fn escrows(&self) -> bool {
        matches!(
            self,
            Scenario::S1 | Scenario::S4 | Scenario::S5 | Scenario::S7
        )
    }
}

/// Parse `s1=3,s4,s8=1` (weight 1 when omitted) or `all`.
pub fn parse_mix(s: &str) -> Result<Vec<(Scenario, u32)>, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Scenario::ALL.into_iter().map(|sc| (sc, 1)).collect());
    }
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = match part.split_once('=') {
            Some((n, w)) => (
                n,
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("weight of {n:?} must be a whole number, got {w:?}"))?,
            ),
            None => (part, 1),
        };
        let sc = Scenario::parse(name).ok_or_else(|| {
            let names: Vec<_> = Scenario::ALL.iter().map(Scenario::name).collect();
            format!(
                "unknown scenario {name:?}; choose from {} or 'all'",
                names.join(", ")
            )
        })?;
        out.push((sc, weight));
    }
    if out.iter().all(|(_, w)| *w == 0) {
        return Err("the mix is empty: give at least one scenario with a weight above 0".into());
    }
    Ok(out)
}

/// The scenario of Mac number `i`: a deterministic round-robin over the weighted mix.
pub fn scenario_for(mix: &[(Scenario, u32)], i: usize) -> Scenario {
    let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut slot = (i as u64) % total.max(1);
    for (sc, w) in mix {
        if slot < u64::from(*w) {
            return *sc;
        }
        slot -= u64::from(*w);
    }
    Scenario::S1
}

/// How one Mac's run ended.
#[derive(Debug, Clone, Serialize)]
pub struct MacOutcome {
    pub udid: String,
    pub scenario: Scenario,
    pub enrolled: bool,
    pub escrowed: bool,
    /// Whether this Mac should end escrowed: the scenario escrows and the server offered escrow to it (the
    /// `com.apple.mdm.bootstraptoken` capability of its group's profile), so an escrow-off group's Macs are
    /// not failures for not escrowing.
    pub escrow_expected: bool,
    pub users_with_secure_token: usize,
    pub requests: u64,
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
    pub failure: Option<String>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub server: String,
    pub count: usize,
    pub concurrency: usize,
    pub mix: Vec<(Scenario, u32)>,
    /// Prefix of every UDID (a fresh one per run keeps runs apart).
    pub udid_prefix: String,
    pub key_kind: KeyKind,
    /// Share these cached keys instead of generating one per Mac (each Mac still gets its own
    /// certificate); `key_kind` is then the pool's kind.
    pub key_pool: Option<Arc<KeyPool>>,
    /// Enroll through an enrollment link (profile + SCEP) instead of identities from the device CA.
    pub enroll_link: Option<EnrollLink>,
}

/// The real enrollment path: every Mac opens `/enroll?token=…`, checks the profile against `signer` and does
/// SCEP with the profile's challenge. The token must allow `count` uses.
#[derive(Debug, Clone)]
pub struct EnrollLink {
    pub token: String,
    pub signer: X509,
}

/// Progress callbacks: identities are issued first (CPU work, not timed), then the Macs run.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    IdentityIssued,
    ProtocolStarted,
    Finished(&'a MacOutcome),
}

/// Outcomes sorted by UDID, and the time the protocol phase took (identity issuing excluded).
#[derive(Debug, Clone)]
pub struct FleetRun {
    pub outcomes: Vec<MacOutcome>,
    pub protocol_elapsed: Duration,
}

type Identity = Result<(X509, PKey<Private>), String>;

/// Run the fleet, reporting progress through `on_progress` (for a progress bar).
pub async fn run(
    config: FleetConfig,
    ca: Arc<CertificateAuthority>,
    on_progress: Arc<dyn Fn(Progress<'_>) + Send + Sync>,
) -> FleetRun {
    let identities = match &config.enroll_link {
        // Keys are made during SCEP, inside each Mac's run.
        Some(_) => (0..config.count).map(|_| Err(String::new())).collect(),
        None => issue_identities(&config, &ca, &on_progress).await,
    };
    on_progress(Progress::ProtocolStarted);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for (i, identity) in identities.into_iter().enumerate() {
        let scenario = scenario_for(&config.mix, i);
        let udid = format!("{}-{i:06}", config.udid_prefix);
        let (gate, server, on_progress, link) = (
            gate.clone(),
            config.server.clone(),
            on_progress.clone(),
            config.enroll_link.clone(),
        );
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let outcome = run_one(scenario, udid, identity, &server, link.as_ref()).await;
            on_progress(Progress::Finished(&outcome));
            outcome
        });
    }
    let mut outcomes = Vec::with_capacity(config.count);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    let protocol_elapsed = started.elapsed();
    outcomes.sort_by(|a, b| a.udid.cmp(&b.udid));
    FleetRun {
        outcomes,
        protocol_elapsed,
    }
}

/// Key generation is CPU work: done up front on the blocking pool, one task per core, so it neither slows
/// the server nor counts in the latencies.
async fn issue_identities(
    config: &FleetConfig,
    ca: &Arc<CertificateAuthority>,
    on_progress: &Arc<dyn Fn(Progress<'_>) + Send + Sync>,
) -> Vec<Identity> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gate = Arc::new(Semaphore::new(workers));
    let mut tasks = JoinSet::new();
    for i in 0..config.count {
        let udid = format!("{}-{i:06}", config.udid_prefix);
        let (gate, ca, kind, pool, on_progress) = (
            gate.clone(),
            ca.clone(),
            config.key_kind,
            config.key_pool.clone(),
            on_progress.clone(),
        );
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let issued = tokio::task::spawn_blocking(move || {
                match &pool {
                    Some(pool) => pool.issue_identity(&ca, &udid, i),
                    None => issue_identity_with(&ca, &udid, kind),
                }
                .map_err(|e| reason_of(&e))
            })
            .await
            .unwrap_or_else(|_| Err("identity task failed".into()));
            on_progress(Progress::IdentityIssued);
            (i, issued)
        });
    }
    let mut out: Vec<Identity> = (0..config.count)
        .map(|_| Err("identity task failed".into()))
        .collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, issued)) = joined
            && let Some(slot) = out.get_mut(i)
        {
            *slot = issued;
        }
    }
    out
}

async fn run_one(
    scenario: Scenario,
    udid: String,
    identity: Identity,
    server: &str,
    link: Option<&EnrollLink>,
) -> MacOutcome {
    let mut outcome = MacOutcome {
        udid: udid.clone(),
        scenario,
        enrolled: false,
        escrowed: false,
        escrow_expected: false,
        users_with_secure_token: 0,
        requests: 0,
        latencies_us: Vec::new(),
        failure: None,
    };
    let mac = Mac::new(scenario.spec(udid));
    let made = match (link, identity) {
        (Some(link), _) => VirtualMac::from_enrollment_link(mac, server, &link.token, &link.signer)
            .await
            .map(|(vm, _)| vm),
        (None, Ok((cert, key))) => VirtualMac::with_identity(mac, cert, key, server),
        (None, Err(reason)) => return failed(outcome, reason),
    };
    let mut vm = match made {
        Ok(vm) => vm,
        Err(err) => return failed(outcome, reason_of(&err)),
    };
    // The group's escrow setting as the server expressed it: the profile's capability for link enrollment
    // (device-CA Macs have no group, so escrow is on).
    outcome.escrow_expected = scenario.escrows() && vm.mac.bt_capability;
    vm.setup_plan = Some(scenario.setup_plan());
    let result = play(scenario, &mut vm, &mut outcome).await;
    outcome.escrowed = vm.mac.escrowed;
    outcome.users_with_secure_token = vm.mac.token_holders().len();
    outcome.requests = vm.stats.requests;
    outcome.latencies_us = std::mem::take(&mut vm.stats.latencies_us);
    if let Err(reason) = result {
        outcome.failure = Some(reason);
    } else if outcome.escrow_expected != vm.mac.escrowed {
        outcome.failure = Some(format!(
            "{}: expected escrowed={}, the Mac says {}",
            scenario.name(),
            outcome.escrow_expected,
            vm.mac.escrowed
        ));
    }
    outcome
}

fn failed(mut outcome: MacOutcome, reason: String) -> MacOutcome {
    outcome.failure = Some(reason);
    outcome
}

/// A short, groupable failure reason (no URLs, ids or secrets).
pub fn reason_of(err: &ClientError) -> String {
    match err {
        ClientError::Http(_) => "server unreachable".into(),
        ClientError::Status { what, status } => format!("{what}: HTTP {status}"),
        ClientError::Mac(e) => format!("Mac refused: {e}"),
        ClientError::Url(_) => "server URL must be http://".into(),
        other => other.to_string(),
    }
}

async fn play(
    scenario: Scenario,
    vm: &mut VirtualMac,
    outcome: &mut MacOutcome,
) -> Result<(), String> {
    let e = |err: ClientError| reason_of(&err);
    let mac_err = |err: crate::mac::MacError| format!("Mac refused: {err}");
    vm.enroll().await.map_err(e)?;
    outcome.enrolled = true;
    if matches!(scenario, Scenario::S4 | Scenario::S7 | Scenario::S8) {
        // The managed admin of these stories, made from a hash while Setup Assistant waits (§1.2 rule 3).
        let name = if scenario == Scenario::S7 {
            "ladmin"
        } else {
            "mgmt"
        };
        vm.mac.create_managed_admin(name, PW).map_err(mac_err)?;
    }
    // The server answers AwaitingConfiguration with DeviceConfigured (after any AccountConfiguration); Setup
    // Assistant then finishes per the plan.
    vm.poll().await.map_err(e)?;
    if vm.mac.awaiting_configuration {
        return Err(format!(
            "{}: Setup Assistant still waits: the server sent no DeviceConfigured",
            scenario.name()
        ));
    }
    let expect_escrow = outcome.escrow_expected;
    match scenario {
        Scenario::S1 | Scenario::S5 | Scenario::S6 | Scenario::S9 => {
            vm.login("ladmin", PW).await.map_err(e)?;
            vm.mac
                .add_user(AddUser::new("jdoe", false, UserKind::Mobile, Some(PW)))
                .map_err(mac_err)?;
            let d = vm.login("jdoe", PW).await.map_err(e)?;
            if expect_escrow && d.and_then(|d| d.served) != Some(Served::Matched) {
                return Err(format!(
                    "{}: the mobile account got no token from the BT",
                    scenario.name()
                ));
            }
        }
        Scenario::S4 => {
            vm.login("mgmt", PW).await.map_err(e)?;
        }
        Scenario::S7 => {
            let m = &mut vm.mac;
            m.add_user(AddUser::new("kiosk", false, UserKind::Local, Some(PW)))
                .map_err(mac_err)?;
            vm.login("kiosk", PW).await.map_err(e)?;
            vm.mac
                .secure_token_on("ladmin", PW, "kiosk", PW)
                .map_err(mac_err)?;
        }
        Scenario::S8 => {
            let m = &mut vm.mac;
            m.add_user(
                AddUser::new("user", false, UserKind::Local, Some(PW)).disabling_secure_token(),
            )
            .map_err(mac_err)?;
            if m.secure_token_on("user", PW, "mgmt", PW).is_ok() {
                return Err("s8: a grant succeeded with no token holder".into());
            }
        }
    }
    vm.poll().await.map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_weights_defaults_and_all() {
        assert_eq!(
            parse_mix("s1=3,S4").unwrap(),
            [(Scenario::S1, 3), (Scenario::S4, 1)]
        );
        assert_eq!(parse_mix("all").unwrap().len(), Scenario::ALL.len());
    }

    #[test]
    fn bad_mixes_say_what_to_write_instead() {
        assert!(parse_mix("s99").unwrap_err().contains("choose from s1"));
        assert!(parse_mix("s1=x").unwrap_err().contains("whole number"));
        assert!(parse_mix("s1=0").unwrap_err().contains("empty"));
        assert!(parse_mix("").unwrap_err().contains("empty"));
    }

    #[test]
    fn scenarios_are_dealt_round_robin_by_weight() {
        let mix = [(Scenario::S1, 2), (Scenario::S8, 1)];
        let dealt: Vec<_> = (0..6).map(|i| scenario_for(&mix, i)).collect();
        assert_eq!(
            dealt,
            [
                Scenario::S1,
                Scenario::S1,
                Scenario::S8,
                Scenario::S1,
                Scenario::S1,
                Scenario::S8
            ]
        );
    }

    #[test]
    fn summary_counts_failures_by_reason_and_takes_percentiles() {
        let o = |fail: Option<&str>, lat: Vec<u64>| MacOutcome {
            udid: "u".into(),
            scenario: Scenario::S1,
            enrolled: true,
            escrowed: fail.is_none(),
            escrow_expected: true,
            users_with_secure_token: 2,
            requests: lat.len() as u64,
            latencies_us: lat,
            failure: fail.map(str::to_owned),
        };
        let outcomes = [
            o(None, vec![1000, 2000]),
            o(Some("x: HTTP 500"), vec![3000, 4000]),
            o(Some("x: HTTP 500"), vec![]),
        ];
        let s = summarize(&outcomes, Duration::from_secs(2));
        assert_eq!((s.macs, s.escrowed, s.failed_macs), (3, 1, 2));
        assert_eq!(s.failures_by_reason["x: HTTP 500"], 2);
        assert_eq!(s.requests, 4);
        assert_eq!(s.requests_per_second, 2.0);
        assert_eq!((s.latency_ms.p50, s.latency_ms.max), (2.0, 4.0));
    }
}
