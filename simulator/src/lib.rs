//! Tessera's deterministic attack simulator: seeded attacks and faults against the real
//! engine, with every invariant checked after every step.
//!
//! # What this crate owns
//! The world (the real core, writer and sled store in a temporary folder, under a virtual
//! clock and seeded randomness), the attack scenarios with the defences they prove, the
//! faults (crashes at a chosen append, before or after the write; clock drift and steps back),
//! the invariant checks, coverage marks, and the report.
//!
//! # What this crate must not do
//! Decide anything itself, or take a shortcut the server does not take: every decision goes
//! through the same `prepare`, `decide` and writer as `tessera serve`; the simulator only
//! chooses what happens next. It must not read the wall clock or OS randomness: one seed
//! decides everything, so a seed and a commit reproduce a run byte for byte (the report
//! carries the log's head hash to prove it).
//!
//! # How to drive it
//! `run(&Options { seed, scenarios, steps, .. })` returns a [`RunReport`] or the [`Failure`]
//! that stopped the run, with the seed and step that reproduce it.
//!
//! Modelled on TigerBeetle's VOPR and FoundationDB's simulation testing: a swarm of options
//! drawn from the seed (which faults, how much skew), then two phases: attacks and faults,
//! and a quiet liveness phase where every honest user must get back in.

pub mod authenticator;
pub mod clock;
pub mod ledger;
pub mod marks;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod world;

use rand::RngExt;
use rand::seq::SliceRandom;
use serde::Serialize;
use tessera_core::Policy;
use tessera_core::policy::Argon2Params;
use tessera_storage::fault::FaultPoint;

use crate::ledger::Ledger;
use crate::marks::Marks;
use crate::scenario::{AttackStats, Scenario};
use crate::world::{CrashPlan, World};

/// What kind of failure stopped a run; each has its own exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The engine failed in a way no fault explains.
    Crash,
    /// An invariant broke, or an attack succeeded.
    Invariant,
    /// An honest user could not get back in once the attacks stopped.
    Liveness,
}

impl FailureKind {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Crash => 3,
            Self::Invariant => 4,
            Self::Liveness => 5,
        }
    }
}

/// Why a run stopped, and how to reproduce it.
#[derive(Clone, Debug, Serialize, thiserror::Error)]
#[error("seed {seed}, step {step}: {kind:?}: {why}")]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub kind: FailureKind,
    pub why: String,
    /// The last actions before the failure.
    pub recent: Vec<String>,
}

impl Failure {
    pub fn new(seed: u64, step: u64, kind: FailureKind, why: impl Into<String>) -> Self {
        Self {
            seed,
            step,
            kind,
            why: why.into(),
            recent: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Scenario names; empty means all.
    pub scenarios: Vec<String>,
    pub steps: u64,
    /// Argon2 cost: cheap by default, real when asked.
    pub argon2: Argon2Params,
    /// Keep the store in this (new or empty) folder, for `tessera replay` afterwards.
    pub keep: Option<std::path::PathBuf>,
    /// Keep the log in this (empty) PostgreSQL database instead of sled.
    pub postgres: Option<String>,
}

impl Options {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            scenarios: Vec::new(),
            steps: 200,
            argon2: Argon2Params::INSECURE_FAST,
            keep: None,
            postgres: None,
        }
    }
}

/// The swarm: what this seed turns on.
#[derive(Clone, Debug, Serialize)]
pub struct Swarm {
    pub crashes: Vec<CrashPlan>,
    pub clock_drift_ppm: u64,
    pub clock_steps_back: bool,
}

impl Swarm {
    fn draw(seed: u64, steps: u64) -> Self {
        let mut rng = seed::stream(seed, "swarm");
        let mut crashes = Vec::new();
        if rng.random_bool(0.5) {
            for _ in 0..rng.random_range(1..=2) {
                let point = if rng.random_bool(0.5) {
                    FaultPoint::BeforeWrite
                } else {
                    FaultPoint::AfterWrite
                };
                crashes.push(CrashPlan {
                    at_append: rng.random_range(2..steps.max(3)),
                    point,
                });
            }
        }
        let skew = rng.random_bool(0.5);
        Self {
            crashes,
            clock_drift_ppm: if skew { rng.random_range(0..2_000) } else { 0 },
            clock_steps_back: skew,
        }
    }
}

/// One scenario's line in the report.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub defence: &'static str,
    pub mark: &'static str,
    pub mark_hits: u64,
    #[serde(flatten)]
    pub stats: AttackStats,
    pub time_to_detection_secs: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub steps: u64,
    pub events: u64,
    /// SHA-256 chain hash of the last envelope: it stands for every byte of the log.
    pub log_hash: String,
    pub swarm: Swarm,
    pub scenarios: Vec<ScenarioReport>,
    pub marks: Marks,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one seed.
pub fn run(options: &Options) -> Result<RunReport, Failure> {
    let seed = options.seed;
    let names: Vec<String> = if options.scenarios.is_empty() {
        scenario::NAMES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        options.scenarios.clone()
    };
    let mut scenarios: Vec<Box<dyn Scenario>> = Vec::new();
    for name in &names {
        let s = scenario::by_name(name, seed).ok_or_else(|| {
            Failure::new(
                seed,
                0,
                FailureKind::Crash,
                format!("no scenario named {name}; try one of {:?}", scenario::NAMES),
            )
        })?;
        scenarios.push(s);
    }
    let swarm = Swarm::draw(seed, options.steps);
    let policy = Policy {
        argon2: options.argon2,
        ..Policy::default()
    };
    let mut world = World::new_on(
        seed,
        policy,
        swarm.crashes.clone(),
        options.keep.clone(),
        options.postgres.clone(),
    )?;
    world.drift_ppm = swarm.clock_drift_ppm;
    let mut ledger = Ledger::default();
    let mut rng = seed::stream(seed, "world");
    for s in &mut scenarios {
        s.setup(&mut world, &mut ledger)?;
    }
    // Phase one: attacks and faults.
    let mut order: Vec<usize> = (0..scenarios.len()).collect();
    let mut turn = order.len();
    for step in 1..=options.steps {
        world.step = step;
        world.advance(rng.random_range(0..30_000));
        if swarm.clock_steps_back && rng.random_bool(0.05) {
            world.clock.rewind(rng.random_range(1_000..120_000));
            world.marks.hit("clock stepped back");
        }
        // Rounds in a seeded order rather than independent draws: with thirty-odd scenarios
        // and a few hundred steps, independent draws leave one of them unexercised in a fair
        // share of runs; rounds give each the same number of steps, give or take one.
        if turn >= order.len() {
            order.shuffle(&mut rng);
            turn = 0;
        }
        let pick = order.get(turn).copied().unwrap_or(0);
        turn += 1;
        let Some(scenario) = scenarios.get_mut(pick) else {
            return Err(Failure::new(
                seed,
                step,
                FailureKind::Crash,
                "no scenario to run",
            ));
        };
        let before = world.head().sequence;
        scenario.step(&mut world, &mut ledger)?;
        let written = world.head().sequence.saturating_sub(before);
        scenario.stats_mut().events_written += written;
        ledger.check(&mut world)?;
        ledger.check_tokens(&mut world)?;
        world.audit()?;
    }
    // Phase two: quiet. Once the longest throttle wait has passed, every honest user gets
    // back in and can use the session.
    world.step = options.steps + 1;
    let throttle = &Policy::default().throttle;
    let longest_wait_secs = throttle
        .account
        .delay_secs_max
        .max(throttle.address.delay_secs_max);
    // Engine time: after the clock stepped back it stands still until the clock catches up.
    let quiet_until = world.now().plus_ms(60_000 + longest_wait_secs * 1000);
    while world.now() < quiet_until {
        world.advance(60_000);
    }
    for s in &scenarios {
        for (username, password) in s.honest_accounts() {
            let issued = match world.login(
                &username,
                &password,
                std::net::IpAddr::from([198, 51, 100, 1]),
            )? {
                Some(Ok(issued)) => issued,
                Some(Err(r)) => {
                    return Err(world.fail(
                        FailureKind::Liveness,
                        format!("{username} cannot log in after the attacks: {r}"),
                    ));
                }
                None => continue,
            };
            if world.use_session(issued.secret.expose())?.is_err() {
                return Err(world.fail(
                    FailureKind::Liveness,
                    format!("{username}'s new session is refused"),
                ));
            }
        }
    }
    ledger.check(&mut world)?;
    world.audit_full()?;
    let marks = world.marks.clone();
    let reports = scenarios
        .iter()
        .map(|s| ScenarioReport {
            name: s.name(),
            defence: s.defence(),
            mark: s.mark(),
            mark_hits: marks.count(s.mark()),
            stats: s.stats().clone(),
            time_to_detection_secs: s.stats().time_to_detection_secs(),
        })
        .collect();
    let head = world.shutdown();
    Ok(RunReport {
        seed,
        steps: options.steps,
        events: head.sequence,
        log_hash: hex(&head.hash),
        swarm,
        scenarios: reports,
        marks,
    })
}
