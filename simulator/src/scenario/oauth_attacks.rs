//! Attacks on the OAuth provider, each against the defence that must stop it:
//!
//! - **code-interception**: a stolen authorization code exchanged without its PKCE
//!   verifier (or with a guessed one, or by another client). Defence: the code is bound to
//!   the client, the redirect URI and an S256 challenge.
//! - **code-replay**: a code exchanged twice, in sequence and racing. Defence: the single
//!   writer redeems a code once; a replay revokes the tokens of the first exchange.
//! - **pkce-downgrade**: an authorization request with `plain`, no method, or no challenge.
//!   Defence: PKCE with S256 is required of every client.
//! - **redirect-manipulation**: redirect URIs that differ by a slash, case, query, fragment,
//!   userinfo, dot segments, a wildcard or another host. Defence: exact matching (only a
//!   loopback port may vary), and no redirect before the URI is trusted.
//! - **user-code-guessing**: an attacker types user codes on the device page. Defence: at
//!   most 5 wrong entries per session and per address every 15 minutes.
//! - **device-polling-abuse**: a device polls faster than its interval. Defence: slow_down,
//!   and the interval grows by 5 seconds each time.
//! - **client-secret-guessing**: guessed client secrets. Defence: 256-bit secrets checked
//!   with a keyed digest in constant time.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::oauth::authorize::s256;
use tessera_core::oauth::{
    AuthorizationRequest, AuthorizeError, ClientCredentials, ClientKind, ClientRegistration,
    DecideDeviceAuthorization, DeviceDecision, EnterUserCode, ExchangeAuthorizationCode, GrantType,
    IssueAuthorizationCode, OAuthReply, PollDeviceCode, RegisterClient, StartDeviceAuthorization,
    authenticate_client, validate_authorization,
};
use tessera_core::{Actor, Command, Rejection, Reply};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const REDIRECT: &str = "https://app.example/cb";
const LOOPBACK: &str = "http://127.0.0.1/cb";
const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));

/// Which attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    CodeInterception,
    CodeReplay,
    PkceDowngrade,
    RedirectManipulation,
    UserCodeGuessing,
    DevicePollingAbuse,
    ClientSecretGuessing,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Self::CodeInterception => "code-interception",
            Self::CodeReplay => "code-replay",
            Self::PkceDowngrade => "pkce-downgrade",
            Self::RedirectManipulation => "redirect-manipulation",
            Self::UserCodeGuessing => "user-code-guessing",
            Self::DevicePollingAbuse => "device-polling-abuse",
            Self::ClientSecretGuessing => "client-secret-guessing",
        }
    }
}

pub struct OAuthAttack {
    attack: Attack,
    rng: ChaCha20Rng,
    victim: (String, String),
    client: String,
    stats: AttackStats,
}

impl OAuthAttack {
    pub fn new(attack: Attack, mut rng: ChaCha20Rng) -> Self {
        let victim = (
            format!("{}-victim", attack.name()),
            strong_password(&mut rng),
        );
        Self {
            attack,
            rng,
            victim,
            client: format!("{}-app", attack.name()),
            stats: AttackStats::default(),
        }
    }

    fn verifier(&mut self) -> String {
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
        (0..64)
            .filter_map(|_| super::pick(&mut self.rng, ALPHABET).map(|&b| char::from(b)))
            .collect()
    }

    /// A code for the victim, consented, with the challenge of `verifier`.
    fn code(&mut self, world: &mut World, verifier: &str) -> Result<Option<String>, Failure> {
        let Some(account) = world.account_id(&self.victim.0) else {
            return Ok(None);
        };
        let reply = world.execute(IssueAuthorizationCode {
            account,
            client_id: self.client.clone(),
            redirect_uri: REDIRECT.into(),
            scopes: ["read".to_owned()].into(),
            code_challenge: s256(verifier),
            state: "s".into(),
            record_consent: true,
        })?;
        Ok(match reply {
            Some(Ok(Reply::OAuth(OAuthReply::CodeIssued(c)))) => Some(c.code.expose().to_owned()),
            _ => None,
        })
    }

    fn exchange(
        &self,
        code: &str,
        client: &str,
        redirect: &str,
        verifier: &str,
    ) -> Option<Command> {
        ExchangeAuthorizationCode::new(code, client.into(), redirect.into(), verifier.into())
            .ok()
            .map(Command::from)
    }

    fn succeeded(&mut self, world: &World, what: &str) -> Failure {
        let name = self.attack.name();
        self.stats.succeeded(world, name, what)
    }

    fn interception(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let verifier = self.verifier();
        let Some(code) = self.code(world, &verifier)? else {
            return Ok(());
        };
        let guessed = self.verifier();
        let attempts = [
            (self.client.clone(), guessed.clone()),
            (self.client.clone(), String::new()),
            ("other-app".to_owned(), verifier.clone()),
        ];
        for (client, v) in attempts {
            self.stats.attempt(world.now());
            let Some(command) = self.exchange(&code, &client, REDIRECT, &v) else {
                self.stats.blocked();
                continue;
            };
            if let Some(Ok(Reply::OAuth(OAuthReply::Tokens(t)))) = world.execute(command)? {
                ledger.token_issued(&world.sign(&t.access), &t.access);
                return Err(self.succeeded(world, "an intercepted code was exchanged"));
            }
            self.stats.blocked();
        }
        world
            .marks
            .hit("intercepted code refused without its verifier");
        // The rightful client still gets its tokens.
        if let Some(command) = self.exchange(&code, &self.client.clone(), REDIRECT, &verifier) {
            world.execute(command)?;
        }
        Ok(())
    }

    fn replay(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        let verifier = self.verifier();
        let Some(code) = self.code(world, &verifier)? else {
            return Ok(());
        };
        let Some(command) = self.exchange(&code, &self.client.clone(), REDIRECT, &verifier) else {
            return Ok(());
        };
        self.stats.attempt(world.now());
        if self.rng.random_bool(0.5) {
            let (a, b) = world.race(command.clone(), command)?;
            let (Some(a), Some(b)) = (a, b) else {
                return Ok(());
            };
            let won: Vec<_> = [a, b]
                .into_iter()
                .filter_map(|r| match r {
                    Ok(Reply::OAuth(OAuthReply::Tokens(t))) => Some(t),
                    _ => None,
                })
                .collect();
            if won.len() != 1 {
                return Err(self.succeeded(world, &format!("{} racing exchanges won", won.len())));
            }
            world.marks.hit("racing exchanges: exactly one won");
            self.stats.blocked();
            self.stats.detected(world.now());
            if let Some(t) = won.first() {
                ledger.token_issued(&world.sign(&t.access), &t.access);
                ledger.family_ended(t.family, "its code was replayed");
                if world.family_live(&t.family) {
                    return Err(self.succeeded(world, "a replayed code left its family live"));
                }
            }
            return Ok(());
        }
        let Some(Ok(Reply::OAuth(OAuthReply::Tokens(first)))) = world.execute(command.clone())?
        else {
            return Ok(());
        };
        let access = world.sign(&first.access);
        ledger.token_issued(&access, &first.access);
        match world.execute(command)? {
            Some(Ok(_)) => return Err(self.succeeded(world, "a code was exchanged twice")),
            Some(Err(Rejection::AuthorizationCodeReused)) => {
                self.stats.blocked();
                self.stats.detected(world.now());
                ledger.family_ended(first.family, "its code was replayed");
                if world.verify_bearer(&access).is_ok() || world.family_live(&first.family) {
                    return Err(self.succeeded(world, "tokens of a replayed code still work"));
                }
                world
                    .marks
                    .hit("code replay revoked the first exchange's tokens");
            }
            _ => self.stats.blocked(),
        }
        Ok(())
    }

    fn request(
        &self,
        redirect: &str,
        method: Option<&str>,
        challenge: Option<String>,
    ) -> AuthorizationRequest {
        AuthorizationRequest {
            response_type: Some("code".into()),
            client_id: Some(self.client.clone()),
            redirect_uri: Some(redirect.into()),
            scope: Some("read".into()),
            state: Some("st".into()),
            code_challenge: challenge,
            code_challenge_method: method.map(str::to_owned),
            repeated: Vec::new(),
        }
    }

    fn downgrade(&mut self, world: &mut World) -> Result<(), Failure> {
        let verifier = self.verifier();
        let cases = [
            (Some("plain"), Some(verifier.clone())),
            (None, Some(verifier.clone())),
            (Some("S256"), None),
            (None, None),
        ];
        let Some(case) = super::pick(&mut self.rng, &cases).cloned() else {
            return Ok(());
        };
        self.stats.attempt(world.now());
        let request = self.request(REDIRECT, case.0, case.1);
        let answer = validate_authorization(&world.engine().views(), &request);
        match answer {
            Ok(_) => Err(self.succeeded(world, "an authorization request without S256 passed")),
            Err(AuthorizeError::Redirect {
                error: "invalid_request",
                ..
            }) => {
                self.stats.blocked();
                world.marks.hit("PKCE downgrade refused");
                Ok(())
            }
            Err(_) => {
                self.stats.blocked();
                Ok(())
            }
        }
    }

    fn redirect(&mut self, world: &mut World) -> Result<(), Failure> {
        let manipulated = [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb?next=evil",
            "https://app.example/cb#x",
            "https://app.example@evil.example/cb",
            "https://app.example/cb/..;/x",
            "https://app.example/../cb",
            "https://*.example/cb",
            "https://evil.example/cb",
            "http://127.0.0.1:80@evil.example/cb",
            "http://localhost/cb",
            "http://127.0.0.1/cb/",
        ];
        let Some(uri) = super::pick(&mut self.rng, &manipulated).copied() else {
            return Ok(());
        };
        self.stats.attempt(world.now());
        let verifier = self.verifier();
        let request = self.request(uri, Some("S256"), Some(s256(&verifier)));
        let answer = validate_authorization(&world.engine().views(), &request);
        match answer {
            Err(AuthorizeError::Untrusted(_)) => {
                self.stats.blocked();
                world
                    .marks
                    .hit("manipulated redirect URI refused without redirect");
                Ok(())
            }
            Err(AuthorizeError::Redirect { .. }) => {
                Err(self.succeeded(world, &format!("redirected to manipulated URI {uri}")))
            }
            Ok(_) => Err(self.succeeded(world, &format!("manipulated URI {uri} accepted"))),
        }
    }

    fn user_codes(&mut self, world: &mut World) -> Result<(), Failure> {
        // A real device flow is waiting; the attacker guesses codes for it.
        world.execute(StartDeviceAuthorization {
            client_id: self.client.clone(),
            scope: None,
            address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        })?;
        const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
        for _ in 0..3 {
            let guess: String = (0..8)
                .filter_map(|_| super::pick(&mut self.rng, ALPHABET).map(|&b| char::from(b)))
                .collect();
            self.stats.attempt(world.now());
            let Some(account) = world.account_id(&self.victim.0) else {
                return Ok(());
            };
            // The attacker approves whatever the guess finds, for its own account.
            match world.execute(DecideDeviceAuthorization {
                user_code: guess,
                account,
                session: None,
                address: Some(ATTACKER_IP),
                decision: DeviceDecision::Approve,
            })? {
                Some(Ok(_)) => {
                    return Err(self.succeeded(world, "a guessed user code was approved"));
                }
                Some(Err(Rejection::Throttled { .. })) => {
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("user-code guessing throttled");
                }
                _ => self.stats.blocked(),
            }
        }
        // Lookups are counted the same way.
        self.stats.attempt(world.now());
        if let Some(Ok(_)) = world.execute(EnterUserCode {
            user_code: "BBBB-BBBB".into(),
            session: None,
            address: Some(ATTACKER_IP),
        })? {
            return Err(self.succeeded(world, "a made-up user code was found"));
        }
        self.stats.blocked();
        Ok(())
    }

    fn polling(&mut self, world: &mut World) -> Result<(), Failure> {
        let started = world.execute(StartDeviceAuthorization {
            client_id: self.client.clone(),
            scope: None,
            address: Some(ATTACKER_IP),
        })?;
        let Some(Ok(Reply::OAuth(OAuthReply::DeviceStarted(d)))) = started else {
            return Ok(());
        };
        let Ok(poll) = PollDeviceCode::new(d.device_code.expose(), self.client.clone()) else {
            return Ok(());
        };
        let mut interval = d.interval_secs;
        for i in 0..4 {
            self.stats.attempt(world.now());
            let answer = world.execute(poll.clone())?;
            match answer {
                Some(Err(Rejection::SlowDown { interval_secs })) => {
                    if interval_secs != interval + 5 && interval + 5 <= 60 {
                        return Err(self.succeeded(world, "slow_down did not grow the interval"));
                    }
                    interval = interval_secs;
                    self.stats.blocked();
                    self.stats.detected(world.now());
                    world.marks.hit("fast polling slowed down");
                }
                Some(Err(Rejection::AuthorizationPending)) if i > 0 => {
                    return Err(self.succeeded(world, "a fast poll was answered as a paced one"));
                }
                Some(Ok(_)) => return Err(self.succeeded(world, "an unapproved device got tokens")),
                _ => self.stats.blocked(),
            }
            // Faster than asked: a tenth of the interval.
            world.advance(u64::from(interval) * 100);
        }
        Ok(())
    }

    fn secrets(&mut self, world: &mut World) -> Result<(), Failure> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for _ in 0..5 {
            let body: String = (0..43)
                .filter_map(|_| super::pick(&mut self.rng, ALPHABET).map(|&b| char::from(b)))
                .collect();
            let guess = format!("tcs_{body}");
            self.stats.attempt(world.now());
            let credentials = ClientCredentials {
                client_id: self.client.clone(),
                secret: Some(zeroize::Zeroizing::new(guess)),
            };
            let now = world.now();
            let ok =
                authenticate_client(&world.engine().views(), world.mfa_keys(), &credentials, now);
            if ok.is_ok() {
                return Err(self.succeeded(world, "a guessed client secret was accepted"));
            }
            self.stats.blocked();
        }
        world.marks.hit("guessed client secrets refused");
        Ok(())
    }
}

impl Scenario for OAuthAttack {
    fn name(&self) -> &'static str {
        self.attack.name()
    }

    fn defence(&self) -> &'static str {
        match self.attack {
            Attack::CodeInterception => "codes bound to client, redirect URI and an S256 challenge",
            Attack::CodeReplay => "one writer redeems a code once; a replay revokes its tokens",
            Attack::PkceDowngrade => "PKCE with S256 required of every client",
            Attack::RedirectManipulation => "exact redirect URI matching; no redirect before trust",
            Attack::UserCodeGuessing => "5 wrong user codes per session and address, then a wait",
            Attack::DevicePollingAbuse => "slow_down; the interval grows by 5 s each time",
            Attack::ClientSecretGuessing => "256-bit secrets checked by keyed digest",
        }
    }

    fn mark(&self) -> &'static str {
        match self.attack {
            Attack::CodeInterception => "intercepted code refused without its verifier",
            Attack::CodeReplay => "code replay revoked the first exchange's tokens",
            Attack::PkceDowngrade => "PKCE downgrade refused",
            Attack::RedirectManipulation => "manipulated redirect URI refused without redirect",
            Attack::UserCodeGuessing => "user-code guessing throttled",
            Attack::DevicePollingAbuse => "fast polling slowed down",
            Attack::ClientSecretGuessing => "guessed client secrets refused",
        }
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        let keys = world.mfa_keys().clone();
        world.execute(RegisterClient {
            registration: ClientRegistration {
                client_id: self.client.clone(),
                name: self.client.clone(),
                kind: ClientKind::Confidential,
                redirect_uris: vec![REDIRECT.into(), LOOPBACK.into()],
                grant_types: GrantType::ALL.to_vec(),
                scopes: vec!["read".into()],
            },
            keys,
            by: Actor::Operator {
                name: "simulator".into(),
            },
        })?;
        Ok(())
    }

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        match self.attack {
            Attack::CodeInterception => self.interception(world, ledger),
            Attack::CodeReplay => self.replay(world, ledger),
            Attack::PkceDowngrade => self.downgrade(world),
            Attack::RedirectManipulation => self.redirect(world),
            Attack::UserCodeGuessing => self.user_codes(world),
            Attack::DevicePollingAbuse => self.polling(world),
            Attack::ClientSecretGuessing => self.secrets(world),
        }
    }

    victim_accessors!();
}

impl std::fmt::Debug for OAuthAttack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthAttack")
            .field("attack", &self.attack)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
