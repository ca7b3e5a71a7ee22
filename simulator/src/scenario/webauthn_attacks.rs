//! Attacks on passkeys, against a victim who logs in with one (WebAuthn Level 2):
//!
//! - Phishing: a look-alike site relays our login options to the victim and the victim's
//!   answer back to us, passwordless or as the second factor after a phished password.
//!   Defences: the authenticator scopes credentials to our rp id (a page elsewhere gets
//!   nothing to relay), and when a client signs for our rp id anyway, the origin in the
//!   signed client data is not ours and the ceremony refuses it (§7.2 step 13).
//! - A cloned authenticator: the victim's key copied (an extracted software key, a cloned
//!   token), used after the original has moved on. Defence: the signature counter must
//!   rise (§7.2 step 21); a counter that does not is recorded as an event and the login
//!   refused.
//! - A replayed assertion: a response captured in transit (a logging proxy, a stolen HAR
//!   file) presented again. Defences: a ceremony is single-use and expires; its challenge is
//!   signed, so the response fits no other ceremony.
//!
//! Every attempt goes through the ceremony crate and core's decisions, as the HTTP routes
//! do. The victim logs in with the passkey on every step, which must keep working.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::{AccountId, LoginMode, Rejection, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::authenticator::{Authenticator, AuthenticatorError, Gesture};
use crate::ledger::Ledger;
use crate::world::{WEBAUTHN_ORIGIN, World};
use crate::{Failure, FailureKind};

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 90));
const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 90));

/// The look-alike site, and the rp id a browser lets it ask for: its own host.
const PHISHING_ORIGIN: &str = "https://tessera-login.test";
const PHISHING_RP_ID: &str = "tessera-login.test";

/// The relying-party id of [`WEBAUTHN_ORIGIN`].
const RP_ID: &str = "tessera.test";

/// Attempts at enrolling the victim's passkey before the setup gives up (each crash the
/// seed planned can spoil one).
const ENROL_TRIES_MAX: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    Phishing,
    ClonedAuthenticator,
    ReplayedAssertion,
}

/// A victim with a password and a passkey on a platform authenticator.
pub struct WebauthnAttack {
    attack: Attack,
    rng: ChaCha20Rng,
    victim: (String, String),
    device: Authenticator,
    /// The attacker's copy of the victim's authenticator, taken right after registration.
    clone: Option<Authenticator>,
    stats: AttackStats,
}

impl std::fmt::Debug for WebauthnAttack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnAttack")
            .field("attack", &self.attack)
            .field("victim", &self.victim.0)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What the victim's own passkey login came to.
enum VictimLogin {
    /// It worked; the response it sent, and the ceremony it answered.
    LoggedIn {
        ceremony: tessera_webauthn::CeremonyId,
        response: serde_json::Value,
    },
    /// The engine crashed under it: whether the counter was stored is unknown.
    Unknown,
    /// The account is throttled by the attacker's failures; the victim waits.
    Throttled,
}

impl WebauthnAttack {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let name = match attack {
            Attack::Phishing => "passkey-phish-victim",
            Attack::ClonedAuthenticator => "passkey-clone-victim",
            Attack::ReplayedAssertion => "passkey-replay-victim",
        };
        let victim = (name.to_owned(), strong_password(&mut rng));
        Self {
            attack,
            rng,
            victim,
            device: Authenticator::platform(),
            clone: None,
            stats: AttackStats::default(),
        }
    }

    /// Registers the victim's passkey right after a password login, as the holder does on
    /// the account page.
    fn enrol(&mut self, world: &mut World, account: AccountId) -> Result<(), Failure> {
        for _ in 0..ENROL_TRIES_MAX {
            let logged_in_at = match world.login(&self.victim.0, &self.victim.1, VICTIM_IP)? {
                Some(Ok(_)) => world.now(),
                Some(Err(r)) => {
                    return Err(world.fail(
                        FailureKind::Crash,
                        format!("{} cannot log in to enrol: {r}", self.victim.0),
                    ));
                }
                None => continue,
            };
            let registered =
                world.register_passkey(account, &mut self.device, &mut self.rng, logged_in_at)?;
            let stored = world.engine().views().credentials_of(&account).count() > 0;
            if registered.is_some() || stored {
                return Ok(());
            }
        }
        Err(world.fail(
            FailureKind::Crash,
            format!("{}'s passkey could not be registered", self.victim.0),
        ))
    }

    /// The victim logs in with the passkey from the real site; a refusal that is not the
    /// throttle is a liveness failure.
    fn victim_logs_in(&mut self, world: &mut World) -> Result<VictimLogin, Failure> {
        let started = world.start_passkey_login()?;
        let response = self
            .device
            .assert_json(&started.options, &Gesture::new(WEBAUTHN_ORIGIN))
            .map_err(|e| world.fail(FailureKind::Crash, format!("victim's device: {e}")))?;
        match world.finish_passkey_login(&started.ceremony, &response, VICTIM_IP)? {
            Some(Ok(Reply::TokensIssued(_))) => Ok(VictimLogin::LoggedIn {
                ceremony: started.ceremony,
                response,
            }),
            Some(Err(Rejection::Throttled { .. })) => Ok(VictimLogin::Throttled),
            Some(other) => Err(world.fail(
                FailureKind::Liveness,
                format!("{}'s own passkey login answered {other:?}", self.victim.0),
            )),
            None => Ok(VictimLogin::Unknown),
        }
    }

    /// An attacker's passwordless login attempt with `response`; a success fails the run.
    fn attacker_login(
        &mut self,
        world: &mut World,
        ceremony: &tessera_webauthn::CeremonyId,
        response: &serde_json::Value,
        what: &str,
    ) -> Result<Option<Rejection>, Failure> {
        self.stats.attempt(world.now());
        match world.finish_passkey_login(ceremony, response, ATTACKER_IP)? {
            Some(Ok(_)) => Err(self.stats.succeeded(world, self.name(), what)),
            Some(Err(r)) => {
                self.stats.blocked();
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    /// The attacker logs in with the stolen password and answers the challenge with
    /// whatever `answer` makes of the request options; a success fails the run.
    fn attacker_second_factor(
        &mut self,
        world: &mut World,
        what: &str,
        answer: impl FnOnce(&serde_json::Value) -> Option<serde_json::Value>,
    ) -> Result<Option<Rejection>, Failure> {
        let (username, password) = self.victim.clone();
        let token = match world.login_any(&username, &password, ATTACKER_IP, LoginMode::Token)? {
            Some(Ok(Reply::MfaRequired(c))) => c.mfa_token.expose().to_owned(),
            Some(Ok(_)) => {
                return Err(self.stats.succeeded(
                    world,
                    self.name(),
                    "a password alone opened an account with a passkey",
                ));
            }
            Some(Err(_)) | None => return Ok(None),
        };
        self.stats.attempt(world.now());
        match world.answer_mfa_with_credential(&token, ATTACKER_IP, answer)? {
            Some(Ok(_)) => Err(self.stats.succeeded(world, self.name(), what)),
            Some(Err(r)) => {
                self.stats.blocked();
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    fn phishing(&mut self, world: &mut World) -> Result<(), Failure> {
        match self.rng.random_range(0..3u8) {
            // An honest browser lets the look-alike page ask only for its own rp id: the
            // victim's authenticator has no credential there, so nothing can be relayed.
            0 => {
                let started = world.start_passkey_login()?;
                let mut options = started.options.clone();
                if let Some(rp_id) = options.pointer_mut("/publicKey/rpId") {
                    *rp_id = PHISHING_RP_ID.into();
                }
                self.stats.attempt(world.now());
                let gesture = Gesture::new(PHISHING_ORIGIN).with_rp_id(PHISHING_RP_ID);
                match self.device.assert_json(&options, &gesture) {
                    Err(AuthenticatorError::NoCredential { .. }) => {
                        self.stats.blocked();
                        world.marks.hit("phishing page got no credential");
                    }
                    other => {
                        return Err(world.fail(
                            FailureKind::Crash,
                            format!("an authenticator answered another rp id: {other:?}"),
                        ));
                    }
                }
            }
            // A client that signs for our rp id from the look-alike origin (a compromised
            // or careless client): the origin it writes is not ours.
            1 => {
                let started = world.start_passkey_login()?;
                let response = self
                    .device
                    .assert_json(&started.options, &Gesture::new(PHISHING_ORIGIN))
                    .map_err(|e| world.fail(FailureKind::Crash, format!("device: {e}")))?;
                let refused = self.attacker_login(
                    world,
                    &started.ceremony,
                    &response,
                    "a passkey assertion for another origin logged in",
                )?;
                if refused.is_some() {
                    world.marks.hit("phished assertion refused");
                }
            }
            // The password phished too, the passkey relayed as the second factor: a wrong
            // answer to the challenge, recorded as a failed attempt.
            _ => {
                // The device leaves `self` while the closure holds it.
                let mut device = std::mem::replace(&mut self.device, Authenticator::platform());
                let refused = self.attacker_second_factor(
                    world,
                    "a second factor for another origin passed",
                    |options| {
                        device
                            .assert_json(options, &Gesture::new(PHISHING_ORIGIN))
                            .ok()
                    },
                );
                self.device = device;
                let refused = refused?;
                if matches!(refused, Some(Rejection::WebauthnAssertionInvalid { .. })) {
                    // Counted against the challenge and recorded as a failed attempt.
                    self.stats.detected(world.now());
                }
                if refused.is_some() {
                    world.marks.hit("phished assertion refused");
                }
            }
        }
        Ok(())
    }

    fn cloned(&mut self, world: &mut World) -> Result<(), Failure> {
        // The original must have moved past the copy, and the server must know it: after an
        // unknown outcome the copy may be ahead of the stored counter, and a counter cannot
        // tell a copy that is ahead (the original is then the one refused, which is the
        // same detection, later).
        if !matches!(self.victim_logs_in(world)?, VictimLogin::LoggedIn { .. }) {
            return Ok(());
        }
        let Some(mut clone) = self.clone.take() else {
            return Err(world.fail(FailureKind::Crash, "no clone was taken"));
        };
        let refused = if self.rng.random_bool(0.5) {
            let started = world.start_passkey_login()?;
            let response = clone
                .assert_json(&started.options, &Gesture::new(WEBAUTHN_ORIGIN))
                .map_err(|e| world.fail(FailureKind::Crash, format!("clone: {e}")))?;
            self.attacker_login(
                world,
                &started.ceremony,
                &response,
                "a cloned authenticator logged in",
            )?
        } else {
            self.attacker_second_factor(
                world,
                "a cloned authenticator passed as the second factor",
                |options| {
                    clone
                        .assert_json(options, &Gesture::new(WEBAUTHN_ORIGIN))
                        .ok()
                },
            )?
        };
        self.clone = Some(clone);
        if refused == Some(Rejection::WebauthnCounterRegressed) {
            self.stats.detected(world.now());
            world.marks.hit("cloned authenticator refused");
        }
        Ok(())
    }

    fn replayed(&mut self, world: &mut World) -> Result<(), Failure> {
        let VictimLogin::LoggedIn { ceremony, response } = self.victim_logs_in(world)? else {
            return Ok(());
        };
        let refused = match self.rng.random_range(0..4u8) {
            // The same ceremony again: spent.
            0 => self.attacker_login(
                world,
                &ceremony,
                &response,
                "a replayed assertion logged in again",
            )?,
            // A ceremony of the attacker's own: the signed challenge is another.
            1 => {
                let started = world.start_passkey_login()?;
                self.attacker_login(
                    world,
                    &started.ceremony,
                    &response,
                    "an assertion answered another ceremony",
                )?
            }
            // As the second factor after the phished password: another challenge too.
            2 => {
                let refused = self.attacker_second_factor(
                    world,
                    "a replayed assertion passed as the second factor",
                    |_| Some(response.clone()),
                )?;
                if matches!(refused, Some(Rejection::WebauthnAssertionInvalid { .. })) {
                    self.stats.detected(world.now());
                }
                refused
            }
            // A response that never reached us (the victim's request dropped), presented
            // after the ceremony expired.
            _ => {
                let started = world.start_passkey_login()?;
                let unsent = self
                    .device
                    .assert_json(&started.options, &Gesture::new(WEBAUTHN_ORIGIN))
                    .map_err(|e| world.fail(FailureKind::Crash, format!("device: {e}")))?;
                // Engine time: after the clock stepped back it stands still for a while.
                let expired_at = world
                    .now()
                    .plus_ms(tessera_webauthn::CEREMONY_TTL_MS_DEFAULT);
                while world.now() <= expired_at {
                    world.advance(60_000);
                }
                self.attacker_login(
                    world,
                    &started.ceremony,
                    &unsent,
                    "an assertion logged in after its ceremony expired",
                )?
            }
        };
        if refused.is_some() {
            world.marks.hit("replayed assertion refused");
        }
        Ok(())
    }
}

impl Scenario for WebauthnAttack {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::Phishing => "passkey-phishing",
            Attack::ClonedAuthenticator => "cloned-authenticator",
            Attack::ReplayedAssertion => "assertion-replay",
        }
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::Phishing => "credentials scoped to the rp id; signed origin checked",
            Attack::ClonedAuthenticator => {
                "signature counter must rise; regression recorded, refused"
            }
            Attack::ReplayedAssertion => "single-use, expiring ceremonies; signed challenge",
        }
    }

    fn mark(&self) -> &'static str {
        match self.attack {
            Attack::Phishing => "phished assertion refused",
            Attack::ClonedAuthenticator => "cloned authenticator refused",
            Attack::ReplayedAssertion => "replayed assertion refused",
        }
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        let Some(account) = world.register(&self.victim.0, &self.victim.1)? else {
            return Err(world.fail(
                FailureKind::Crash,
                format!("{} could not register", self.victim.0),
            ));
        };
        self.enrol(world, account)?;
        if self.device.credentials().first().map(|c| c.rp_id.as_str()) != Some(RP_ID) {
            return Err(world.fail(FailureKind::Crash, "the passkey is not for our rp id"));
        }
        if self.attack == Attack::ClonedAuthenticator {
            self.clone = Some(self.device.clone());
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        match self.attack {
            Attack::Phishing => {
                self.victim_logs_in(world)?;
                self.phishing(world)
            }
            Attack::ClonedAuthenticator => self.cloned(world),
            Attack::ReplayedAssertion => self.replayed(world),
        }
    }

    /// The victims log in with their passkeys (every step checks it); a password alone no
    /// longer opens their accounts, so they have no password login to check at the end.
    fn honest_accounts(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn stats(&self) -> &AttackStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut AttackStats {
        &mut self.stats
    }
}
