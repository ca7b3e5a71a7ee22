//! Attacks, each with the defence that must stop it. A scenario acts on the world one step
//! at a time and counts what its attacker tried and what came of it. A success is a failure
//! of the run.

use rand::rngs::ChaCha20Rng;
use serde::Serialize;
use tessera_core::Timestamp;

use crate::ledger::Ledger;
use crate::world::World;
use crate::{Failure, FailureKind};

pub use api_keys::{ApiKeyGuessing, LeakedApiKey};
pub use brute_force::BruteForce;
pub use external_sign_in::ExternalSignInAttack;
pub use jwt_tampering::JwtTampering;
pub use legacy::Legacy;
pub use login_csrf::LoginCsrf;
pub use mfa_attacks::MfaAttack;
pub use oauth_attacks::OAuthAttack;
pub use refresh_race::RefreshRace;
pub use refresh_theft::RefreshTheft;
pub use registration_harvest::RegistrationHarvest;
pub use revoked_token::RevokedToken;
pub use session_fixation::SessionFixation;
pub use state_forgery::StateForgery;
pub use stolen_session::StolenSession;
pub use stuffing::Stuffing;
pub use webauthn_attacks::WebauthnAttack;

/// What one scenario's attacker did, and what the server did about it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AttackStats {
    pub attempts: u64,
    pub successes: u64,
    pub blocked: u64,
    pub detected: u64,
    #[serde(skip)]
    pub first_attempt_at: Option<Timestamp>,
    #[serde(skip)]
    pub first_detected_at: Option<Timestamp>,
    pub events_written: u64,
}

impl AttackStats {
    pub fn attempt(&mut self, at: Timestamp) {
        self.attempts += 1;
        self.first_attempt_at.get_or_insert(at);
    }

    pub fn blocked(&mut self) {
        self.blocked += 1;
    }

    pub fn detected(&mut self, at: Timestamp) {
        self.detected += 1;
        self.first_detected_at.get_or_insert(at);
    }

    /// Seconds of simulated time from the first attempt to the first detection.
    pub fn time_to_detection_secs(&self) -> Option<u64> {
        Some(self.first_detected_at?.since(self.first_attempt_at?) / 1000)
    }

    /// Records an attack that worked, and fails the run.
    pub fn succeeded(&mut self, world: &World, scenario: &str, what: &str) -> Failure {
        self.successes += 1;
        world.fail(
            FailureKind::Invariant,
            format!("attack succeeded in {scenario}: {what}"),
        )
    }
}

/// The accessors every scenario with one `victim: (username, password)` and `stats` shares:
/// the victim is its honest user, and its stats are its own.
macro_rules! victim_accessors {
    () => {
        fn honest_accounts(&self) -> Vec<(String, String)> {
            vec![self.victim.clone()]
        }

        fn stats(&self) -> &AttackStats {
            &self.stats
        }

        fn stats_mut(&mut self) -> &mut AttackStats {
            &mut self.stats
        }
    };
}

/// `setup` for a scenario whose only account is its victim.
macro_rules! register_victim {
    () => {
        fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
            world.register(&self.victim.0, &self.victim.1)?;
            Ok(())
        }
    };
}

/// `Debug` that names the victim and shows the stats, never a password or a code.
macro_rules! redacted_debug {
    ($t:ident) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("victim", &self.victim.0)
                    .field("stats", &self.stats)
                    .finish_non_exhaustive()
            }
        }
    };
}

mod api_keys;
mod brute_force;
pub mod external_sign_in;
mod jwt_tampering;
mod legacy;
mod login_csrf;
mod mfa_attacks;
pub mod oauth_attacks;
mod refresh_race;
mod refresh_theft;
mod registration_harvest;
mod revoked_token;
mod session_fixation;
mod state_forgery;
mod stolen_session;
mod stuffing;
mod webauthn_attacks;

pub trait Scenario {
    fn name(&self) -> &'static str;
    /// The defence this scenario proves, in a few words.
    fn defence(&self) -> &'static str;
    /// The coverage mark a run must reach for this scenario to have tested its defence.
    fn mark(&self) -> &'static str;
    fn setup(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure>;
    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure>;
    /// The honest users this scenario owns: each must get back in during the liveness phase.
    fn honest_accounts(&self) -> Vec<(String, String)>;
    fn stats(&self) -> &AttackStats;
    fn stats_mut(&mut self) -> &mut AttackStats;
}

/// Every scenario by name.
pub const NAMES: &[&str] = &[
    "session-fixation",
    "stolen-session",
    "brute-force",
    "refresh-theft",
    "revoked-token",
    "jwt-tampering",
    "refresh-race",
    "mfa-guessing",
    "totp-replay",
    "backup-code-reuse",
    "credential-stuffing",
    "password-spraying",
    "registration-harvesting",
    "login-csrf",
    "oauth-state-forgery",
    "code-interception",
    "code-replay",
    "pkce-downgrade",
    "redirect-manipulation",
    "user-code-guessing",
    "device-polling-abuse",
    "client-secret-guessing",
    "leaked-api-key",
    "api-key-guessing",
    "stolen-md5-table",
    "sunset-login",
    "external-state-forgery",
    "id-token-substitution",
    "email-takeover",
    "passkey-phishing",
    "cloned-authenticator",
    "assertion-replay",
];

pub fn by_name(name: &str, seed: u64) -> Option<Box<dyn Scenario>> {
    let rng =
        |label: &str| -> ChaCha20Rng { crate::seed::stream(seed, &format!("scenario-{label}")) };
    Some(match name {
        "session-fixation" => Box::new(SessionFixation::new(rng(name))),
        "stolen-session" => Box::new(StolenSession::new(rng(name))),
        "brute-force" => Box::new(BruteForce::new(rng(name))),
        "refresh-theft" => Box::new(RefreshTheft::new(rng(name))),
        "revoked-token" => Box::new(RevokedToken::new(rng(name))),
        "jwt-tampering" => Box::new(JwtTampering::new(rng(name))),
        "refresh-race" => Box::new(RefreshRace::new(rng(name))),
        "mfa-guessing" => Box::new(MfaAttack::new(mfa_attacks::Attack::Guessing, rng(name))),
        "totp-replay" => Box::new(MfaAttack::new(mfa_attacks::Attack::TotpReplay, rng(name))),
        "backup-code-reuse" => {
            Box::new(MfaAttack::new(mfa_attacks::Attack::BackupReuse, rng(name)))
        }
        "credential-stuffing" => Box::new(Stuffing::new(stuffing::Attack::Stuffing, rng(name))),
        "password-spraying" => Box::new(Stuffing::new(stuffing::Attack::Spraying, rng(name))),
        "registration-harvesting" => Box::new(RegistrationHarvest::new(rng(name))),
        "login-csrf" => Box::new(LoginCsrf::new(rng(name))),
        "oauth-state-forgery" => Box::new(StateForgery::new(rng(name))),
        "code-interception" => oauth(oauth_attacks::Attack::CodeInterception, rng(name)),
        "code-replay" => oauth(oauth_attacks::Attack::CodeReplay, rng(name)),
        "pkce-downgrade" => oauth(oauth_attacks::Attack::PkceDowngrade, rng(name)),
        "redirect-manipulation" => oauth(oauth_attacks::Attack::RedirectManipulation, rng(name)),
        "user-code-guessing" => oauth(oauth_attacks::Attack::UserCodeGuessing, rng(name)),
        "device-polling-abuse" => oauth(oauth_attacks::Attack::DevicePollingAbuse, rng(name)),
        "client-secret-guessing" => oauth(oauth_attacks::Attack::ClientSecretGuessing, rng(name)),
        "leaked-api-key" => Box::new(LeakedApiKey::new(rng(name))),
        "api-key-guessing" => Box::new(ApiKeyGuessing::new(rng(name))),
        "stolen-md5-table" => Box::new(Legacy::new(legacy::Attack::StolenMd5, rng(name))),
        "sunset-login" => Box::new(Legacy::new(legacy::Attack::SunsetLogin, rng(name))),
        "external-state-forgery" => external(external_sign_in::Attack::StateForgery, rng(name)),
        "id-token-substitution" => {
            external(external_sign_in::Attack::IdTokenSubstitution, rng(name))
        }
        "email-takeover" => external(external_sign_in::Attack::EmailTakeover, rng(name)),
        "passkey-phishing" => webauthn(webauthn_attacks::Attack::Phishing, rng(name)),
        "cloned-authenticator" => {
            webauthn(webauthn_attacks::Attack::ClonedAuthenticator, rng(name))
        }
        "assertion-replay" => webauthn(webauthn_attacks::Attack::ReplayedAssertion, rng(name)),
        _ => return None,
    })
}

fn external(attack: external_sign_in::Attack, rng: ChaCha20Rng) -> Box<dyn Scenario> {
    Box::new(ExternalSignInAttack::new(attack, rng))
}

fn oauth(attack: oauth_attacks::Attack, rng: ChaCha20Rng) -> Box<dyn Scenario> {
    Box::new(OAuthAttack::new(attack, rng))
}

fn webauthn(attack: webauthn_attacks::Attack, rng: ChaCha20Rng) -> Box<dyn Scenario> {
    Box::new(WebauthnAttack::new(attack, rng))
}

/// A strong password the attacker cannot guess, from the actor's stream.
pub fn strong_password(rng: &mut ChaCha20Rng) -> String {
    use rand::RngExt;
    let tail: String = (0..16)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("Sim{}{tail}", rng.random_range(100..1000u32))
}

/// One of `items`, chosen uniformly with a single `random_range(0..len)` draw (a seeded run
/// replays only if every scenario draws exactly as before). `None` only for an empty slice,
/// which draws nothing.
pub fn pick<'a, T>(rng: &mut ChaCha20Rng, items: &'a [T]) -> Option<&'a T> {
    use rand::RngExt;
    if items.is_empty() {
        return None;
    }
    items.get(rng.random_range(0..items.len()))
}

/// A value shaped like a session cookie the server never issued.
pub fn forged_secret(rng: &mut ChaCha20Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let body: String = (0..43)
        .filter_map(|_| pick(rng, ALPHABET).map(|&b| char::from(b)))
        .collect();
    format!("{}{body}", tessera_core::session::SESSION_SECRET_PREFIX)
}
