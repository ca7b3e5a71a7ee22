use super::*;
use crate::blocklist::check_not_revoked;
use crate::testkit::{Given, PASSWORD};
use crate::token::TokenRejection;
use crate::{Actor, Command, Event, Reply};

fn accepted(w: &Given, claims: &AccessClaims) -> Result<(), TokenRejection> {
    check_not_revoked(&w.views, claims, w.now)
}

#[test]
fn every_use_rotates_and_the_old_token_is_spent() {
    let mut w = Given::seeded(2);
    w.registered("alice");
    let first = w.login_tokens("alice");
    assert!(first.refresh.expose().starts_with(REFRESH_TOKEN_PREFIX));
    assert_eq!(w.last_kinds(1), ["RefreshFamilyStarted"]);
    w.advance_secs(60);
    let second = w.refresh(first.refresh.expose()).expect("rotates");
    assert_eq!(second.family, first.family);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access.jti, first.access.jti);
    assert_eq!(w.views.family(&first.family).map(|f| f.generation), Some(1));
    assert!(accepted(&w, &second.access).is_ok() && accepted(&w, &first.access).is_ok());
    // No secret in any event or view.
    let dump = format!("{:?}{:?}", w.log, w.views);
    assert!(
        !dump.contains(&first.refresh.expose()[4..])
            && !dump.contains(&second.refresh.expose()[4..])
    );
}

#[test]
fn reuse_revokes_the_family_and_records_what_kind_it_was() {
    let mut w = Given::seeded(3);
    w.registered("alice");
    let first = w.login_tokens("alice");
    w.advance_secs(10);
    let second = w.refresh(first.refresh.expose()).expect("rotates");
    w.advance_secs(5);
    // The old token comes back: a lost response, or theft. The successor is unused.
    assert_eq!(
        w.refresh(first.refresh.expose()),
        Err(Rejection::RefreshTokenReused)
    );
    let (_, event) = w.log.last().expect("reuse recorded").clone();
    assert_eq!(
        event,
        Event::RefreshTokenReused {
            family: first.family,
            presented_digest: SecretDigest::of(first.refresh.expose()),
            generation: 0,
            since_rotation_ms: 5000,
            successor_used: false,
        }
    );
    // Nothing of the family works any more.
    assert_eq!(
        w.refresh(second.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(
        accepted(&w, &second.access),
        Err(TokenRejection::FamilyRevoked)
    );
    assert_eq!(
        accepted(&w, &first.access),
        Err(TokenRejection::FamilyRevoked)
    );
    // A further replay is refused and records nothing new.
    let before = w.log.len();
    assert_eq!(
        w.refresh(first.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(w.log.len(), before);
}

#[test]
fn reuse_after_the_successor_was_used_looks_like_theft() {
    let mut w = Given::seeded(4);
    w.registered("alice");
    let first = w.login_tokens("alice");
    let second = w.refresh(first.refresh.expose()).expect("rotates");
    let _third = w.refresh(second.refresh.expose()).expect("rotates");
    w.advance_secs(3600);
    assert_eq!(
        w.refresh(first.refresh.expose()),
        Err(Rejection::RefreshTokenReused)
    );
    match w.log.last() {
        Some((
            _,
            Event::RefreshTokenReused {
                successor_used,
                since_rotation_ms,
                ..
            },
        )) => {
            assert!(*successor_used);
            assert_eq!(*since_rotation_ms, 3_600_000);
        }
        other => panic!("expected reuse, got {other:?}"),
    }
}

#[test]
fn the_grace_window_tolerates_a_lost_response_but_not_a_later_reuse() {
    let mut w = Given::seeded(5);
    w.policy.token.reuse_grace_secs = 10;
    w.registered("alice");
    let first = w.login_tokens("alice");
    let lost = w.refresh(first.refresh.expose()).expect("rotates");
    w.advance_secs(3);
    let retried = w
        .refresh(first.refresh.expose())
        .expect("within grace: rotates again");
    assert_eq!(retried.family, first.family);
    assert!(matches!(
        w.log.last(),
        Some((_, Event::RefreshTokenRotated { grace: true, .. }))
    ));
    assert!(accepted(&w, &retried.access).is_ok());
    // The response that was lost held a token that is now spent unused: presenting it, even
    // inside the window, is reuse, and revokes everything, including what the grace
    // rotation returned.
    assert_eq!(
        w.refresh(lost.refresh.expose()),
        Err(Rejection::RefreshTokenReused)
    );
    assert!(matches!(
        w.log.last(),
        Some((
            _,
            Event::RefreshTokenReused {
                generation: 1,
                successor_used: false,
                ..
            }
        ))
    ));
    assert_eq!(
        w.refresh(retried.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(
        accepted(&w, &retried.access),
        Err(TokenRejection::FamilyRevoked)
    );
}

#[test]
fn outside_the_grace_window_a_replay_is_reuse() {
    let mut w = Given::seeded(6);
    w.policy.token.reuse_grace_secs = 10;
    w.registered("alice");
    let first = w.login_tokens("alice");
    w.refresh(first.refresh.expose()).expect("rotates");
    w.advance_secs(10);
    assert_eq!(
        w.refresh(first.refresh.expose()),
        Err(Rejection::RefreshTokenReused)
    );
}

#[test]
fn refresh_tokens_expire_idle_and_families_at_their_absolute_deadline() {
    let mut w = Given::seeded(7);
    w.registered("alice");
    let mut t = w.login_tokens("alice");
    let family_expires = w.views.family(&t.family).expect("family").expires_at;
    // Six days at a time: each token is used before its seven days are up.
    for _ in 0..4 {
        w.advance_secs(6 * 24 * 3600);
        t = w
            .refresh(t.refresh.expose())
            .expect("still inside both deadlines");
        assert!(t.refresh_expires_at <= family_expires);
        assert!(t.access.expires_at() <= family_expires);
    }
    w.advance_secs(6 * 24 * 3600); // day 30: past the family's deadline
    assert_eq!(
        w.refresh(t.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    // An idle token dies after seven days.
    let mut w = Given::seeded(8);
    w.registered("bob");
    let t = w.login_tokens("bob");
    w.advance_secs(7 * 24 * 3600);
    assert_eq!(
        w.refresh(t.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(accepted(&w, &t.access), Err(TokenRejection::FamilyRevoked));
}

#[test]
fn dead_and_revoked_families_are_dropped_once_nothing_of_them_can_matter() {
    let mut w = Given::seeded(9);
    w.registered("alice");
    let t = w.login_tokens("alice");
    w.refresh(t.refresh.expose()).expect("rotates");
    assert_eq!(
        w.run(Command::from(crate::refresh::LogoutFamily {
            family: t.family
        })),
        Ok(Reply::LoggedOut)
    );
    let drop_at = w
        .views
        .family(&t.family)
        .expect("kept while access tokens live")
        .drop_at();
    assert_eq!(
        drop_at,
        w.now
            .plus_ms(ACCESS_TOKEN_OUTLIVES_MS + REVOCATION_MARGIN_MS)
    );
    w.now = drop_at;
    w.registered("bob"); // any event at or after the deadline drops it
    assert!(w.views.family(&t.family).is_none());
    assert!(
        w.views
            .refresh_token(&SecretDigest::of(t.refresh.expose()))
            .is_none()
    );
    assert_eq!(
        w.refresh(t.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
}

#[test]
fn rfc_7009_revocation_revokes_the_family_and_ignores_unknown_tokens() {
    let mut w = Given::seeded(10);
    w.registered("alice");
    let t = w.login_tokens("alice");
    let unknown = SecretDigest::of("tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let before = w.log.len();
    assert_eq!(
        w.run(Command::from(crate::refresh::RevokeRefreshToken {
            presented: unknown
        })),
        Ok(Reply::Revoked)
    );
    assert_eq!(w.log.len(), before);
    let presented = SecretDigest::of(t.refresh.expose());
    assert_eq!(
        w.run(Command::from(crate::refresh::RevokeRefreshToken {
            presented
        })),
        Ok(Reply::Revoked)
    );
    assert_eq!(w.last_kinds(1), ["RefreshFamilyRevoked"]);
    assert_eq!(
        w.run(Command::from(crate::refresh::RevokeRefreshToken {
            presented
        })),
        Ok(Reply::Revoked),
        "twice is fine"
    );
    assert_eq!(
        w.refresh(t.refresh.expose()),
        Err(Rejection::RefreshTokenInvalid)
    );
    assert_eq!(accepted(&w, &t.access), Err(TokenRejection::FamilyRevoked));
    assert_eq!(
        w.run(Command::from(crate::refresh::LogoutFamily {
            family: t.family
        })),
        Err(Rejection::Unauthenticated)
    );
}

#[test]
fn access_token_revocation_lasts_until_its_expiry() {
    let mut w = Given::seeded(11);
    let alice = w.registered("alice");
    let t = w.login_tokens("alice");
    let other = w.refresh(t.refresh.expose()).expect("rotates");
    let cmd = Command::from(crate::blocklist::RevokeAccessToken {
        jti: t.access.jti,
        account: alice,
        expires_at: t.access.expires_at(),
    });
    assert_eq!(w.run(cmd.clone()), Ok(Reply::Revoked));
    assert_eq!(accepted(&w, &t.access), Err(TokenRejection::Revoked));
    assert!(accepted(&w, &other.access).is_ok(), "only that one token");
    assert_eq!(w.run(cmd), Ok(Reply::Revoked));
    assert_eq!(
        w.last_kinds(1),
        ["AccessTokenRevoked"],
        "the second revocation records nothing"
    );
    w.now = t.access.expires_at().plus_ms(REVOCATION_MARGIN_MS);
    w.registered("bob");
    assert!(!w.views.access_token_revoked(&t.access.jti));
}

#[test]
fn sign_out_everywhere_password_change_and_disable_refuse_older_tokens() {
    for how in 0..3 {
        let mut w = Given::seeded(12 + how);
        let alice = w.registered("alice");
        let a = w.login_tokens("alice");
        let b = w.login_tokens("alice");
        w.advance_secs(1);
        let cmd = match how {
            0 => Command::from(crate::blocklist::SignOutEverywhere {
                step_up: (Some(w.now)).into(),
                account: alice,
                by: Actor::Holder,
            }),
            // The same password under a new hash, so that the login below still knows it.
            1 => w.change_password("alice", PASSWORD, PASSWORD, None),
            _ => Command::from(crate::account::DisableAccount {
                account: alice,
                by: Actor::Operator { name: "ops".into() },
            }),
        };
        assert!(w.run(cmd).is_ok());
        assert_eq!(w.views.not_before(&alice), Some(w.now));
        for t in [&a, &b] {
            assert!(accepted(&w, &t.access).is_err());
            assert_eq!(
                w.refresh(t.refresh.expose()),
                Err(Rejection::RefreshTokenInvalid)
            );
        }
        if how < 2 {
            w.advance_secs(1);
            let fresh = w.login_tokens("alice");
            assert!(
                accepted(&w, &fresh.access).is_ok(),
                "a token issued after the change works"
            );
        }
    }
}

#[test]
fn session_logout_revokes_families_bound_to_it() {
    let mut w = Given::seeded(20);
    let alice = w.registered("alice");
    let session = w.logged_in("alice");
    let (started, issued) = start_family(alice, Some(session.session), None, None, &mut w.env());
    w.apply_all([started.event]);
    assert!(accepted(&w, &issued.access).is_ok());
    assert_eq!(
        w.run(Command::from(crate::session::Logout {
            session: session.session
        })),
        Ok(Reply::SessionEnded)
    );
    assert_eq!(w.last_kinds(2), ["SessionEnded", "RefreshFamilyRevoked"]);
    assert_eq!(
        accepted(&w, &issued.access),
        Err(TokenRejection::FamilyRevoked)
    );
}
