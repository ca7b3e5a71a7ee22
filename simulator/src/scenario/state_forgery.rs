//! OAuth state forgery and code injection: the attacker completes an authorization for its
//! own account and sends the resulting code to the victim's client, as if the victim's
//! browser came back from the server (CSRF against the client's redirect URI, RFC 6749
//! §10.12; code injection, RFC 9700 §4.5). Had it worked, the victim's client would hold
//! tokens for the attacker's account and store the victim's data there.
//!
//! Defences, each enough alone: the client compares the `state` it sent with the one that
//! comes back (the attacker cannot know a 256-bit state), and the server binds every code
//! to the PKCE challenge of the flow that asked for it, so the victim's client, exchanging
//! with its own verifier, gets `invalid_grant` for the attacker's code even when the state
//! check is missing.

use std::collections::BTreeSet;

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::oauth::{
    ClientKind, ClientRegistration, ExchangeAuthorizationCode, GrantType, IssueAuthorizationCode,
    OAuthReply, RegisterClient,
};
use tessera_core::{AccountId, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const CLIENT: &str = "sim-notes";
const REDIRECT: &str = "https://notes.example/cb";

/// A random URL-safe string of `n` characters (states and PKCE verifiers).
fn token(rng: &mut ChaCha20Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n)
        .filter_map(|_| super::pick(rng, ALPHABET).map(|&b| char::from(b)))
        .collect()
}

/// One browser's authorization flow as a client starts it: state and PKCE.
struct Flow {
    state: String,
    verifier: String,
}

impl Flow {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        Self {
            state: token(rng, 43),
            verifier: token(rng, 64),
        }
    }

    fn challenge(&self) -> String {
        tessera_core::oauth::authorize::s256(&self.verifier)
    }
}

pub struct StateForgery {
    rng: ChaCha20Rng,
    victim: (String, String),
    attacker: (String, String),
    stats: AttackStats,
}

impl StateForgery {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("state-victim".to_owned(), strong_password(&mut rng));
        let attacker = ("state-attacker".to_owned(), strong_password(&mut rng));
        Self {
            rng,
            victim,
            attacker,
            stats: AttackStats::default(),
        }
    }

    /// A code for `account` in `flow`, as the consent page issues it.
    fn code_for(
        world: &mut World,
        account: AccountId,
        flow: &Flow,
    ) -> Result<Option<String>, Failure> {
        let command = IssueAuthorizationCode {
            account,
            client_id: CLIENT.to_owned(),
            redirect_uri: REDIRECT.to_owned(),
            scopes: BTreeSet::from(["openid".to_owned()]),
            code_challenge: flow.challenge(),
            state: flow.state.clone(),
            record_consent: true,
        };
        Ok(match world.execute(command)? {
            Some(Ok(Reply::OAuth(OAuthReply::CodeIssued(issued)))) => {
                Some(issued.code.expose().to_owned())
            }
            _ => None,
        })
    }

    /// The victim's client exchanging `code` with its own verifier: whose tokens it got.
    fn exchange(world: &mut World, code: &str, flow: &Flow) -> Result<Option<AccountId>, Failure> {
        let Ok(command) = ExchangeAuthorizationCode::new(
            code,
            CLIENT.to_owned(),
            REDIRECT.to_owned(),
            flow.verifier.clone(),
        ) else {
            return Ok(None);
        };
        Ok(match world.execute(command)? {
            Some(Ok(Reply::OAuth(OAuthReply::Tokens(issued)))) => Some(issued.account),
            _ => None,
        })
    }
}

impl Scenario for StateForgery {
    fn name(&self) -> &'static str {
        "oauth-state-forgery"
    }

    fn defence(&self) -> &'static str {
        "the client's state check, and codes bound to the flow's PKCE challenge"
    }

    fn mark(&self) -> &'static str {
        "injected code refused by PKCE"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        world.register(&self.attacker.0, &self.attacker.1)?;
        let command = RegisterClient {
            registration: ClientRegistration {
                client_id: CLIENT.to_owned(),
                name: "Sim Notes".to_owned(),
                kind: ClientKind::Public,
                redirect_uris: vec![REDIRECT.to_owned()],
                grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                scopes: vec!["openid".to_owned()],
            },
            keys: world.mfa_keys().clone(),
            by: tessera_core::Actor::Operator {
                name: "simulator".into(),
            },
        };
        world.execute(command)?;
        Ok(())
    }

    fn step(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        let (Some(victim), Some(attacker)) = (
            world.account_id(&self.victim.0),
            world.account_id(&self.attacker.0),
        ) else {
            return Ok(());
        };
        // The victim's client starts a flow; the attacker runs its own to the end.
        let victim_flow = Flow::new(&mut self.rng);
        let attacker_flow = Flow::new(&mut self.rng);
        let Some(attacker_code) = Self::code_for(world, attacker, &attacker_flow)? else {
            return Ok(());
        };
        self.stats.attempt(world.now());
        // The forged callback carries the attacker's code and a state the attacker made up.
        let forged_state = if self.rng.random_bool(0.5) {
            attacker_flow.state.clone()
        } else {
            token(&mut self.rng, 43)
        };
        if forged_state == victim_flow.state {
            return Err(self.stats.succeeded(
                world,
                self.name(),
                "the attacker knew the victim's state",
            ));
        }
        world.marks.hit("forged state refused by the client");
        // A client that skipped the check would exchange the code with its own verifier.
        match Self::exchange(world, &attacker_code, &victim_flow)? {
            Some(_) => Err(self.stats.succeeded(
                world,
                self.name(),
                "an injected code was exchanged with another flow's verifier",
            )),
            None => {
                self.stats.blocked();
                world.marks.hit("injected code refused by PKCE");
                // The victim's own flow still completes.
                if self.rng.random_bool(0.25)
                    && let Some(code) = Self::code_for(world, victim, &victim_flow)?
                {
                    match Self::exchange(world, &code, &victim_flow)? {
                        Some(a) if a == victim => world.marks.hit("own code exchanged"),
                        Some(_) => {
                            return Err(self.stats.succeeded(
                                world,
                                self.name(),
                                "tokens for another account",
                            ));
                        }
                        None => {}
                    }
                }
                Ok(())
            }
        }
    }

    victim_accessors!();
}

redacted_debug!(StateForgery);
