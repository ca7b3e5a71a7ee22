//! Attacks on signing in with an external provider. The provider is modelled by the facts
//! the flow's pure part receives (the state it sends back, the ID token's claims, the
//! profile), and the flow runs through the same functions as the HTTP callback:
//! [`PendingSignIn::open`], [`check_callback`], [`accept_id_token`], then the
//! [`ExternalSignIn`] command through the writer.
//!
//! - `external-state-forgery` (login CSRF through the callback, RFC 6749 §10.12): the
//!   attacker finishes a sign-in for its own identity and makes the victim's browser deliver
//!   the callback; or forges a state, or a cookie; or replays a callback that already
//!   succeeded. Defence: the state must equal the one sealed in this browser's cookie (a key
//!   the attacker does not have), and a spent state is refused by the writer.
//! - `id-token-substitution`: the attacker presents an ID token for the victim's subject that
//!   was minted for another client, by another issuer, or for another sign-in. Defence: the
//!   audience (and `azp`), the issuer and the nonce bound to this browser's sign-in.
//! - `email-takeover`: the attacker signs in with a provider identity that claims the
//!   victim's e-mail address. Defence: identities are keyed by provider and subject; a first
//!   sign-in whose e-mail belongs to an account is refused, never linked.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::identity::{
    ExternalSignIn, IdTokenExpectation, IdTokenFacts, LinkIdentity, PendingSignIn, ProviderRules,
    SignInPurpose, StateSpent, UpstreamProfile, accept_id_token, check_callback,
};
use tessera_core::mfa::MfaKeys;
use tessera_core::{LoginMode, Rejection, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
const PROVIDER: &str = "corp";
const ISSUER: &str = "https://id.corp.example";
const CLIENT_ID: &str = "tessera";
const VICTIM_SUBJECT: &str = "corp-victim-subject";
const VICTIM_EMAIL: &str = "victim@corp.example";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    StateForgery,
    IdTokenSubstitution,
    EmailTakeover,
}

pub struct ExternalSignInAttack {
    attack: Attack,
    rng: ChaCha20Rng,
    victim: (String, String),
    stats: AttackStats,
    /// Counts the attacker's identities, for fresh subjects.
    identities: u64,
}

impl ExternalSignInAttack {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let name = match attack {
            Attack::StateForgery => "ext-state-victim",
            Attack::IdTokenSubstitution => "ext-token-victim",
            Attack::EmailTakeover => "ext-email-victim",
        };
        let victim = (name.to_owned(), strong_password(&mut rng));
        Self {
            attack,
            rng,
            victim,
            stats: AttackStats::default(),
            identities: 0,
        }
    }

    /// A browser's sign-in: what the redirect started and the cookie sealing it.
    fn start(&mut self, world: &World) -> (PendingSignIn, String) {
        let pending = PendingSignIn::start(
            PROVIDER,
            true,
            "/",
            SignInPurpose::Login,
            world.now(),
            &mut self.rng,
        );
        let nonce: [u8; 24] = self.rng.random();
        let cookie = pending.seal(world.mfa_keys(), nonce);
        (pending, cookie)
    }

    fn attacker_profile(&mut self, email: Option<String>) -> UpstreamProfile {
        self.identities += 1;
        UpstreamProfile {
            provider: PROVIDER.into(),
            // Each scenario's own subjects: the scenarios share one provider in a run.
            subject: format!("{}-attacker-{}", self.victim.0, self.identities),
            username: Some("mallory".into()),
            email,
            mfa_asserted: false,
        }
    }

    /// The callback as the HTTP adapter runs it, from the browser's cookie on: `Ok` with the
    /// reply when it signed someone in.
    fn callback(
        &mut self,
        world: &mut World,
        cookie: Option<&str>,
        returned_state: &str,
        profile: UpstreamProfile,
    ) -> Result<Result<Reply, Rejection>, Failure> {
        let pending = cookie.and_then(|c| PendingSignIn::open(c, world.mfa_keys()));
        let pending = match check_callback(
            pending.as_ref(),
            PROVIDER,
            Some(returned_state),
            world.now(),
        ) {
            Ok(p) => p.clone(),
            Err(r) => return Ok(Err(r)),
        };
        let command = ExternalSignIn {
            profile,
            rules: ProviderRules::default(),
            state: StateSpent::from(&pending),
            mode: LoginMode::Session,
            client: Some(ATTACKER_IP),
            supersedes: None,
        };
        Ok(world
            .execute(command)?
            .unwrap_or(Err(Rejection::ExternalStateSpent)))
    }

    fn state_forgery(&mut self, world: &mut World) -> Result<(), Failure> {
        let (_, victim_cookie) = self.start(world);
        let (attacker, attacker_cookie) = self.start(world);
        let profile = self.attacker_profile(None);
        let variant = self.rng.random_range(0..5u8);
        let outcome = match variant {
            // The attacker's callback delivered to a browser that started nothing.
            0 => self.callback(world, None, &attacker.state, profile)?,
            // ... to the victim's browser, which started its own sign-in.
            1 => self.callback(world, Some(&victim_cookie), &attacker.state, profile)?,
            // A made-up state.
            2 => {
                let guess: [u8; 32] = self.rng.random();
                let state = data_encoding::BASE64URL_NOPAD.encode(&guess);
                self.callback(world, Some(&victim_cookie), &state, profile)?
            }
            // A cookie of the attacker's own making, sealed under keys it chose.
            3 => {
                let keys = MfaKeys::from_master(&self.rng.random());
                let forged = attacker.seal(&keys, self.rng.random());
                self.callback(world, Some(&forged), &attacker.state, profile)?
            }
            // The attacker's own sign-in, completed, then its callback replayed.
            _ => {
                let first = self.callback(
                    world,
                    Some(&attacker_cookie),
                    &attacker.state,
                    profile.clone(),
                )?;
                if first.is_ok() {
                    world.marks.hit("external sign-in completed");
                }
                self.stats.attempt(world.now());
                self.callback(world, Some(&attacker_cookie), &attacker.state, profile)?
            }
        };
        if variant < 4 {
            self.stats.attempt(world.now());
        }
        match outcome {
            Ok(_) => Err(self.stats.succeeded(
                world,
                "external-state-forgery",
                "a callback this browser did not start, or replayed, signed it in",
            )),
            Err(_) => {
                self.stats.blocked();
                self.stats.detected(world.now());
                world.marks.hit("forged or replayed callback refused");
                Ok(())
            }
        }
    }

    fn id_token_substitution(&mut self, world: &mut World) -> Result<(), Failure> {
        let (attacker, _) = self.start(world);
        let now = world.now();
        let good = IdTokenFacts {
            issuer: ISSUER.into(),
            audience: vec![CLIENT_ID.into()],
            authorized_party: None,
            subject: VICTIM_SUBJECT.into(),
            nonce: attacker.nonce.clone(),
            expires_at: now.plus_ms(300_000),
            amr: vec!["pwd".into()],
            acr: None,
        };
        let other_nonce: [u8; 32] = self.rng.random();
        let other_nonce = Some(data_encoding::BASE64URL_NOPAD.encode(&other_nonce));
        let facts = match self.rng.random_range(0..4u8) {
            // Minted for another client the victim signed in to.
            0 => IdTokenFacts {
                audience: vec!["photo-app".into()],
                nonce: other_nonce,
                ..good
            },
            // Both audiences, but authorized for the other client.
            1 => IdTokenFacts {
                audience: vec![CLIENT_ID.into(), "photo-app".into()],
                authorized_party: Some("photo-app".into()),
                ..good
            },
            // Ours, but from the victim's own earlier sign-in (another nonce).
            2 => IdTokenFacts {
                nonce: other_nonce,
                ..good
            },
            // Another issuer's token for a subject of the same name.
            _ => IdTokenFacts {
                issuer: "https://evil.example".into(),
                ..good
            },
        };
        self.stats.attempt(now);
        let expect = IdTokenExpectation {
            issuer: ISSUER,
            client_id: CLIENT_ID,
        };
        if accept_id_token(&facts, expect, &attacker, now).is_err() {
            self.stats.blocked();
            self.stats.detected(now);
            world.marks.hit("substituted id token refused");
            return Ok(());
        }
        // Accepted: the callback would sign in as the token's subject.
        let command = ExternalSignIn {
            profile: UpstreamProfile {
                provider: PROVIDER.into(),
                subject: facts.subject,
                username: None,
                email: None,
                mfa_asserted: false,
            },
            rules: ProviderRules::default(),
            state: StateSpent::from(&attacker),
            mode: LoginMode::Session,
            client: Some(ATTACKER_IP),
            supersedes: None,
        };
        world.execute(command)?;
        Err(self.stats.succeeded(
            world,
            "id-token-substitution",
            "an ID token minted for another client, issuer or sign-in was accepted",
        ))
    }

    fn email_takeover(&mut self, world: &mut World) -> Result<(), Failure> {
        // A crash can lose the victim's registration before it was acknowledged: register
        // again first, or there is no e-mail to collide with.
        if world.account_id(&self.victim.0).is_none() {
            return self.setup(world, &mut Ledger::default());
        }
        let email = match self.rng.random_range(0..3u8) {
            0 => VICTIM_EMAIL.to_owned(),
            1 => VICTIM_EMAIL.to_ascii_uppercase(),
            _ => format!(" {VICTIM_EMAIL}"),
        };
        let (attacker, cookie) = self.start(world);
        let profile = self.attacker_profile(Some(email));
        self.stats.attempt(world.now());
        let victim = world.account_id(&self.victim.0);
        match self.callback(world, Some(&cookie), &attacker.state, profile)? {
            Ok(Reply::ExternalSignedIn { account, .. }) if Some(account) == victim => {
                Err(self.stats.succeeded(
                    world,
                    "email-takeover",
                    "an identity claiming the victim's e-mail signed in to the victim's account",
                ))
            }
            Ok(_) => Err(self.stats.succeeded(
                world,
                "email-takeover",
                "an identity claiming an account's e-mail got an account without being refused",
            )),
            Err(_) => {
                self.stats.blocked();
                self.stats.detected(world.now());
                world.marks.hit("email collision refused");
                Ok(())
            }
        }
    }
}

impl Scenario for ExternalSignInAttack {
    fn name(&self) -> &'static str {
        match self.attack {
            Attack::StateForgery => "external-state-forgery",
            Attack::IdTokenSubstitution => "id-token-substitution",
            Attack::EmailTakeover => "email-takeover",
        }
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::StateForgery => {
                "the state must match this browser's sealed cookie; a spent state is refused"
            }
            Attack::IdTokenSubstitution => {
                "the ID token's audience, azp, issuer and nonce must answer this sign-in"
            }
            Attack::EmailTakeover => {
                "identities are keyed by provider and subject; an e-mail collision is refused"
            }
        }
    }

    fn mark(&self) -> &'static str {
        match self.attack {
            Attack::StateForgery => "forged or replayed callback refused",
            Attack::IdTokenSubstitution => "substituted id token refused",
            Attack::EmailTakeover => "email collision refused",
        }
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        match self.attack {
            Attack::EmailTakeover => {
                let request = tessera_core::usecase::RegisterRequest {
                    username: self.victim.0.clone(),
                    email: Some(VICTIM_EMAIL.into()),
                    password: self.victim.1.as_str().into(),
                    client: None,
                };
                world.run(request)?;
            }
            Attack::IdTokenSubstitution => {
                world.register(&self.victim.0, &self.victim.1)?;
                let Some(account) = world.account_id(&self.victim.0) else {
                    return Ok(());
                };
                // The victim linked its corporate identity earlier.
                let (pending, _) = self.start(world);
                world.execute(LinkIdentity {
                    account,
                    profile: UpstreamProfile {
                        provider: PROVIDER.into(),
                        subject: VICTIM_SUBJECT.into(),
                        username: None,
                        email: None,
                        mfa_asserted: false,
                    },
                    state: StateSpent::from(&pending),
                    client: None,
                })?;
            }
            Attack::StateForgery => {
                world.register(&self.victim.0, &self.victim.1)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        match self.attack {
            Attack::StateForgery => self.state_forgery(world)?,
            Attack::IdTokenSubstitution => self.id_token_substitution(world)?,
            Attack::EmailTakeover => self.email_takeover(world)?,
        }
        world.advance(self.rng.random_range(500..5_000));
        Ok(())
    }

    victim_accessors!();
}

redacted_debug!(ExternalSignInAttack);
