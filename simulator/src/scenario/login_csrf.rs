//! Login CSRF and forged page forms: the attacker makes the victim's browser post one of the
//! pages' forms, to sign the browser in as the attacker (whose account then collects what
//! the victim types) or to approve a consent the victim never saw (OWASP CSRF Prevention
//! Cheat Sheet, "Login CSRF"; RFC 6749 §10.12). Defence: every page form carries this
//! browser's token for that form ([`tessera_core::csrf`], the same check the pages run),
//! and must come from this site; either alone refuses every forgery below.

use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::csrf::{BrowserSecret, check_form};

use super::{AttackStats, Scenario, strong_password};
use crate::Failure;
use crate::ledger::Ledger;
use crate::world::World;

const VICTIM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 30));

/// The forms an attacker forges.
const LOGIN: &str = "login";
const LOGOUT: &str = "logout";

pub struct LoginCsrf {
    rng: ChaCha20Rng,
    victim: (String, String),
    attacker: (String, String),
    /// The victim's browser's CSRF secret (its `__Host-` cookie).
    victim_browser: BrowserSecret,
    /// The attacker's own browser, where it can load any page and read its tokens.
    attacker_browser: BrowserSecret,
    stats: AttackStats,
}

impl LoginCsrf {
    pub fn new(mut rng: ChaCha20Rng) -> Self {
        let victim = ("csrf-victim".to_owned(), strong_password(&mut rng));
        let attacker = ("csrf-attacker".to_owned(), strong_password(&mut rng));
        let victim_browser = BrowserSecret::generate(&mut rng);
        let attacker_browser = BrowserSecret::generate(&mut rng);
        Self {
            rng,
            victim,
            attacker,
            victim_browser,
            attacker_browser,
            stats: AttackStats::default(),
        }
    }

    /// One forged post into the victim's browser: the purpose it targets, the token it
    /// carries, and whether the browser reports it as same-site (an attacker on a sibling
    /// page, or a browser that sends neither header, gets `true`).
    fn forge(&mut self) -> (String, Option<String>, bool) {
        let consent = format!("consent:{}", self.rng.random_range(0..1_000_000u32));
        match self.rng.random_range(0..6u8) {
            // An auto-submitted cross-site form: no token can be read from another site.
            0 => (LOGIN.to_owned(), None, false),
            // The attacker's own login token, from its own browser, cross-site.
            1 => (
                LOGIN.to_owned(),
                Some(self.attacker_browser.token(LOGIN)),
                false,
            ),
            // The same from a same-site position.
            2 => (
                LOGIN.to_owned(),
                Some(self.attacker_browser.token(LOGIN)),
                true,
            ),
            // A guessed token.
            3 => {
                let guess: [u8; 32] = self.rng.random();
                (
                    LOGIN.to_owned(),
                    Some(data_encoding::BASE64URL_NOPAD.encode(&guess)),
                    true,
                )
            }
            // The victim's token for another form (leaked), replayed on the login form.
            4 => (
                LOGIN.to_owned(),
                Some(self.victim_browser.token(LOGOUT)),
                true,
            ),
            // A consent approval with the attacker's own consent token.
            _ => (
                consent.clone(),
                Some(self.attacker_browser.token(&consent)),
                true,
            ),
        }
    }
}

impl Scenario for LoginCsrf {
    fn name(&self) -> &'static str {
        "login-csrf"
    }

    fn defence(&self) -> &'static str {
        "per-browser, per-form CSRF token and a same-site check on every page form"
    }

    fn mark(&self) -> &'static str {
        "forged page form refused"
    }

    fn setup(&mut self, world: &mut World, _: &mut Ledger) -> Result<(), Failure> {
        world.register(&self.victim.0, &self.victim.1)?;
        world.register(&self.attacker.0, &self.attacker.1)?;
        Ok(())
    }

    fn step(&mut self, world: &mut World, ledger: &mut Ledger) -> Result<(), Failure> {
        // The victim's own form passes the same check, and signs the victim in.
        if self.rng.random_bool(0.25) {
            let token = self.victim_browser.token(LOGIN);
            if check_form(Some(&self.victim_browser), LOGIN, Some(&token), true).is_err() {
                return Err(world.fail(
                    crate::FailureKind::Liveness,
                    "the victim's own login form was refused",
                ));
            }
            if let Some(Ok(issued)) = world.login(&self.victim.0, &self.victim.1, VICTIM_IP)? {
                ledger.issued(issued.secret.expose(), issued.account, world.now());
            }
            return Ok(());
        }
        let (purpose, token, same_site) = self.forge();
        self.stats.attempt(world.now());
        match check_form(
            Some(&self.victim_browser),
            &purpose,
            token.as_deref(),
            same_site,
        ) {
            Ok(()) => {
                // The forged form would now run: the victim's browser signed in as the
                // attacker (or a consent recorded).
                let _ = world.login(&self.attacker.0, &self.attacker.1, VICTIM_IP)?;
                Err(self.stats.succeeded(
                    world,
                    self.name(),
                    "a forged page form passed the CSRF check",
                ))
            }
            Err(_) => {
                self.stats.blocked();
                world.marks.hit("forged page form refused");
                Ok(())
            }
        }
    }

    victim_accessors!();
}

redacted_debug!(LoginCsrf);
