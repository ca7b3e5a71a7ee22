//! Property test: random sequences of logins, refreshes, replays of old tokens,
//! revocations, logouts, password changes and clock jumps, checked step by step against a
//! small reference model of what must and must not be accepted.
//!
//! Properties: a revoked family never mints again; after reuse is detected no token of the
//! family is accepted; at most one live refresh token per family; nothing outlives its
//! deadline. `Given::run` also checks the views' invariants after every command.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

use tessera_core::blocklist::check_not_revoked;
use tessera_core::refresh::TokensIssued;
use tessera_core::secret::SecretDigest;
use tessera_core::token::AccessClaims;
use tessera_core::{Actor, Command, FamilyId, Rejection, Reply, Timestamp};
use tessera_tests::{Given, PASSWORD};

/// The two accounts every case runs with; `Op`'s account numbers index this.
const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Clone, Debug)]
enum Op {
    Login(usize),
    /// Present the `n`th refresh token ever issued (often an old, spent one).
    Refresh(usize),
    /// Present the newest token of the `n`th family.
    RefreshLatest(usize),
    RevokeRefresh(usize),
    RevokeAccess(usize),
    LogoutFamily(usize),
    ChangePassword(usize),
    SignOutEverywhere(usize),
    AdvanceSecs(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..2usize).prop_map(Op::Login),
        3 => any::<usize>().prop_map(Op::Refresh),
        5 => any::<usize>().prop_map(Op::RefreshLatest),
        1 => any::<usize>().prop_map(Op::RevokeRefresh),
        1 => any::<usize>().prop_map(Op::RevokeAccess),
        1 => any::<usize>().prop_map(Op::LogoutFamily),
        1 => (0..2usize).prop_map(Op::ChangePassword),
        1 => (0..2usize).prop_map(Op::SignOutEverywhere),
        3 => prop::sample::select(vec![1u64, 30, 600, 3600, 3 * 86_400, 8 * 86_400]).prop_map(Op::AdvanceSecs),
    ]
}

/// What the model knows of one family.
#[derive(Debug)]
struct ModelFamily {
    id: FamilyId,
    account: usize,
    expires_at: Timestamp,
    /// Index into `Model::tokens` of the current refresh token.
    current: usize,
    current_expires_at: Timestamp,
    revoked: bool,
    reuse_detected: bool,
}

#[derive(Debug, Default)]
struct Model {
    families: Vec<ModelFamily>,
    /// Every refresh token issued: (family index, secret).
    tokens: Vec<(usize, String)>,
    /// Every access token issued: (family index, claims, revoked).
    access: Vec<(usize, AccessClaims, bool)>,
}

impl Model {
    fn live(&self, f: usize, now: Timestamp) -> bool {
        self.families
            .get(f)
            .is_some_and(|m| !m.revoked && now < m.expires_at.min(m.current_expires_at))
    }

    fn issued(&mut self, f: usize, t: &TokensIssued) {
        self.tokens.push((f, t.refresh.expose().to_owned()));
        self.access.push((f, t.access.clone(), false));
    }

    fn revoke_account(&mut self, account: usize) {
        for m in self.families.iter_mut().filter(|m| m.account == account) {
            m.revoked = true;
        }
    }
}

fn present(w: &mut Given, model: &mut Model, token: usize) -> Result<(), TestCaseError> {
    let Some((f, secret)) = model.tokens.get(token).cloned() else {
        return Ok(());
    };
    let now = w.now;
    let live = model.live(f, now);
    let is_current = model.families[f].current == token;
    let result = w.refresh(&secret);
    match (live, is_current) {
        (true, true) => {
            let t = result.map_err(|e| {
                TestCaseError::fail(format!(
                    "the current token of a live family was refused: {e:?}"
                ))
            })?;
            let m = &mut model.families[f];
            prop_assert_eq!(t.family, m.id);
            prop_assert!(
                t.refresh_expires_at <= m.expires_at,
                "a refresh token outlives its family"
            );
            prop_assert!(
                t.access.expires_at() <= m.expires_at,
                "an access token outlives its family"
            );
            m.current = model.tokens.len();
            m.current_expires_at = t.refresh_expires_at;
            model.issued(f, &t);
        }
        (true, false) => {
            prop_assert_eq!(result.err(), Some(Rejection::RefreshTokenReused));
            model.families[f].revoked = true;
            model.families[f].reuse_detected = true;
        }
        (false, _) => prop_assert_eq!(
            result.err(),
            Some(Rejection::RefreshTokenInvalid),
            "a revoked or dead family minted"
        ),
    }
    Ok(())
}

fn step(
    w: &mut Given,
    model: &mut Model,
    accounts: &[tessera_core::AccountId],
    op: Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Login(a) => {
            let t = w.login_tokens(USERS[a]);
            let family = w.views.family(&t.family).expect("started");
            model.families.push(ModelFamily {
                id: t.family,
                account: a,
                expires_at: family.expires_at,
                current: model.tokens.len(),
                current_expires_at: t.refresh_expires_at,
                revoked: false,
                reuse_detected: false,
            });
            model.issued(model.families.len() - 1, &t);
        }
        Op::Refresh(n) if !model.tokens.is_empty() => present(w, model, n % model.tokens.len())?,
        Op::RefreshLatest(n) if !model.families.is_empty() => {
            let current = model.families[n % model.families.len()].current;
            present(w, model, current)?;
        }
        Op::RevokeRefresh(n) if !model.tokens.is_empty() => {
            let (f, secret) = model.tokens[n % model.tokens.len()].clone();
            prop_assert_eq!(
                w.run(Command::from(tessera_core::refresh::RevokeRefreshToken {
                    presented: SecretDigest::of(&secret)
                })),
                Ok(Reply::Revoked)
            );
            // A family already dropped from the views cannot be found, and needs no revoking.
            model.families[f].revoked = true;
        }
        Op::RevokeAccess(n) if !model.access.is_empty() => {
            let i = n % model.access.len();
            let claims = model.access[i].1.clone();
            let cmd = Command::from(tessera_core::blocklist::RevokeAccessToken {
                jti: claims.jti,
                account: claims.sub,
                expires_at: claims.expires_at(),
            });
            prop_assert_eq!(w.run(cmd), Ok(Reply::Revoked));
            model.access[i].2 = true;
        }
        Op::LogoutFamily(n) if !model.families.is_empty() => {
            let f = n % model.families.len();
            let expected = if model.live(f, w.now) {
                Ok(Reply::LoggedOut)
            } else {
                Err(Rejection::Unauthenticated)
            };
            prop_assert_eq!(
                w.run(Command::from(tessera_core::refresh::LogoutFamily {
                    family: model.families[f].id
                })),
                expected
            );
            model.families[f].revoked = true;
        }
        Op::ChangePassword(a) => {
            // The same password under a new hash, so that later logins still know it.
            let cmd = w.change_password(USERS[a], PASSWORD, PASSWORD, None);
            prop_assert!(w.run(cmd).is_ok());
            model.revoke_account(a);
        }
        Op::SignOutEverywhere(a) => {
            prop_assert_eq!(
                w.run(Command::from(tessera_core::blocklist::SignOutEverywhere {
                    step_up: (Some(w.now)).into(),
                    account: accounts[a],
                    by: Actor::Holder
                })),
                Ok(Reply::SignedOutEverywhere)
            );
            model.revoke_account(a);
        }
        Op::AdvanceSecs(s) => {
            w.advance_secs(s);
        }
        _ => {}
    }
    Ok(())
}

fn check(w: &Given, model: &Model) -> Result<(), TestCaseError> {
    let now = w.now;
    for (f, claims, revoked) in &model.access {
        if now.as_secs() >= claims.exp {
            continue; // verification refuses it on `exp`; the blocklist need not.
        }
        let m = &model.families[*f];
        let expected = model.live(*f, now) && !revoked;
        let accepted = check_not_revoked(&w.views, claims, now).is_ok();
        prop_assert_eq!(
            accepted,
            expected,
            "access token of family {:?} (reuse: {})",
            m.id,
            m.reuse_detected
        );
    }
    for (i, m) in model.families.iter().enumerate() {
        let live_tokens = model
            .tokens
            .iter()
            .filter(|(f, s)| {
                *f == i
                    && w.views
                        .refresh_token(&SecretDigest::of(s))
                        .is_some_and(|t| t.spent_at.is_none())
            })
            .count();
        prop_assert!(
            live_tokens <= 1,
            "family {:?} has {} unspent refresh tokens",
            m.id,
            live_tokens
        );
        if m.revoked {
            prop_assert!(
                w.views.family(&m.id).is_none_or(|v| !v.is_live(now)),
                "a revoked family is live in the views"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 96,
        rng_seed: RngSeed::Fixed(0x7e55e2a),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/refresh_props.txt")))),
        ..Config::default()
    })]

    #[test]
    fn refresh_families_follow_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = Given::seeded(99);
        let accounts = USERS.map(|name| w.registered(name));
        let mut model = Model::default();
        for op in ops {
            step(&mut w, &mut model, &accounts, op)?;
            check(&w, &model)?;
        }
    }
}
