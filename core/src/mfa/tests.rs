//! Given/when/then tests of the MFA decisions and throttling, against `decide` + `apply`.

use std::net::IpAddr;

use super::*;
use crate::testkit::{Given, PASSWORD};
use crate::{Command, Event, LoginMode, Rejection, Reply};

fn keys() -> MfaKeys {
    MfaKeys::from_master(&[42; 32])
}

fn ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// Starts and confirms TOTP for `account`; returns the secret and the backup codes.
fn enrol(w: &mut Given, account: AccountId) -> (Vec<u8>, Vec<String>) {
    let secret = start(w, account);
    w.advance_secs(31);
    let code = code_now(w, &secret);
    match w.run(Command::from(crate::mfa::ConfirmTotp {
        account,
        code: TotpCode::parse(&code).expect("six digits"),
        keys: keys(),
        client: None,
    })) {
        Ok(Reply::TotpEnabled { backup_codes }) => {
            let codes = backup_codes
                .expose()
                .iter()
                .map(|c| c.to_string())
                .collect();
            // Move past the confirming step so the next code is a fresh one.
            w.advance_secs(30);
            (secret, codes)
        }
        other => panic!("confirm failed: {other:?}"),
    }
}

fn start(w: &mut Given, account: AccountId) -> Vec<u8> {
    match w.run(Command::from(crate::mfa::StartTotpEnrolment {
        step_up: (Some(w.now)).into(),
        account,
        keys: keys(),
    })) {
        Ok(Reply::TotpEnrolmentStarted(e)) => {
            assert!(e.otpauth_uri.starts_with("otpauth://totp/Tessera:"));
            assert!(e.otpauth_uri.contains(e.secret_base32.as_str()));
            assert!(e.qr_svg.contains("<svg"));
            assert!(!format!("{e:?}").contains(e.secret_base32.as_str()));
            data_encoding::BASE32_NOPAD
                .decode(e.secret_base32.as_bytes())
                .expect("base32")
        }
        other => panic!("enrolment failed: {other:?}"),
    }
}

fn code_now(w: &Given, secret: &[u8]) -> String {
    totp_code_at(secret, w.now).expect("valid secret")
}

fn totp(code: &str) -> MfaAnswer {
    MfaAnswer::totp(code).expect("six digits")
}

fn wrong_code(w: &Given, secret: &[u8]) -> MfaAnswer {
    // A code that is none of the three in the window.
    let window: Vec<String> = [0u64, 30, 60]
        .iter()
        .map(|d| totp_code_at(secret, w.now.plus_ms(d * 1000).plus_ms(0)).expect("code"))
        .chain([totp_code_at(secret, Timestamp(w.now.0.saturating_sub(30_000))).expect("code")])
        .collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .expect("some code is wrong");
    totp(&wrong)
}

/// `password` for `account`'s username, planned, prepared and decided as the server does it.
fn login_with(
    w: &mut Given,
    account: AccountId,
    password: &str,
    mode: LoginMode,
    client: Option<IpAddr>,
) -> Result<Reply, Rejection> {
    let username = w
        .views
        .account(&account)
        .expect("account exists")
        .username
        .clone();
    let login = w.login_command(&username, password, mode, client)?;
    w.run(Command::from(login))
}

fn login(
    w: &mut Given,
    account: AccountId,
    mode: LoginMode,
    client: Option<IpAddr>,
) -> Result<Reply, Rejection> {
    login_with(w, account, PASSWORD, mode, client)
}

fn wrong_password(
    w: &mut Given,
    account: AccountId,
    client: Option<IpAddr>,
) -> Result<Reply, Rejection> {
    login_with(w, account, "Wrong password 1", LoginMode::Session, client)
}

fn challenge(w: &mut Given, account: AccountId, mode: LoginMode) -> String {
    match login(w, account, mode, None) {
        Ok(Reply::MfaRequired(c)) => {
            assert_eq!(c.expires_in_secs, 300);
            c.mfa_token.expose().to_owned()
        }
        other => panic!("expected an MFA challenge: {other:?}"),
    }
}

fn answer(w: &mut Given, token: &str, answer: MfaAnswer) -> Result<Reply, Rejection> {
    let presented = presented_challenge_digest(token).expect("token shape");
    w.run(Command::from(crate::mfa::AnswerMfaChallenge {
        presented,
        answer,
        keys: keys(),
        client: ip("192.0.2.1"),
        supersedes: None,
    }))
}

#[test]
fn enrol_confirm_and_log_in_with_a_code() {
    let mut w = Given::seeded(1);
    let alice = w.registered("alice");
    assert!(!w.views.mfa_status(&alice, w.now).enabled);
    let secret = start(&mut w, alice);
    assert!(w.views.mfa_status(&alice, w.now).pending);
    // The log holds the sealed secret only.
    let logged = format!("{:?}", w.log);
    assert!(!logged.contains(&data_encoding::BASE32_NOPAD.encode(&secret)));
    // Enrolling twice while pending: a clear refusal, nothing recorded.
    let before = w.log.len();
    assert!(matches!(
        w.run(Command::from(crate::mfa::StartTotpEnrolment {
            step_up: (Some(w.now)).into(),
            account: alice,
            keys: keys()
        })),
        Err(Rejection::MfaEnrolmentPending {
            retry_after_secs: 600
        })
    ));
    assert_eq!(w.log.len(), before);
    // Login before confirmation is still a plain login.
    assert!(matches!(
        login(&mut w, alice, LoginMode::Session, None),
        Ok(Reply::LoggedIn(_))
    ));
    w.advance_secs(31);
    // A wrong code does not confirm, and is recorded as a failure.
    let wrong = match wrong_code(&w, &secret) {
        MfaAnswer::Totp(c) => c,
        MfaAnswer::Backup(_) => unreachable!(),
    };
    assert_eq!(
        w.run(Command::from(crate::mfa::ConfirmTotp {
            account: alice,
            code: wrong,
            keys: keys(),
            client: None
        })),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: None
        })
    );
    assert_eq!(w.last_kinds(1), vec!["MfaCodeFailed"]);
    let code = code_now(&w, &secret);
    let Ok(Reply::TotpEnabled { backup_codes }) = w.run(Command::from(crate::mfa::ConfirmTotp {
        account: alice,
        code: TotpCode::parse(&code).expect("code"),
        keys: keys(),
        client: None,
    })) else {
        panic!("confirmation failed");
    };
    assert_eq!(backup_codes.len(), 10);
    assert!(!format!("{backup_codes:?}").contains(backup_codes.expose()[0]));
    let status = w.views.mfa_status(&alice, w.now);
    assert!(status.enabled && !status.pending);
    assert_eq!(status.backup_codes_remaining, 10);
    // Enrolling while on: refused.
    assert_eq!(
        w.run(Command::from(crate::mfa::StartTotpEnrolment {
            step_up: (Some(w.now)).into(),
            account: alice,
            keys: keys()
        }))
        .err(),
        Some(Rejection::MfaAlreadyEnabled)
    );
    // A right password issues nothing but a challenge.
    let token = challenge(&mut w, alice, LoginMode::Session);
    assert_eq!(w.last_kinds(1), vec!["MfaChallengeStarted"]);
    // The confirming code was accepted once: the same step is a replay, even in the window.
    assert_eq!(
        answer(&mut w, &token, totp(&code)),
        Err(Rejection::MfaCodeReplayed {
            attempts_left: Some(4)
        })
    );
    w.advance_secs(30);
    let fresh = code_now(&w, &secret);
    assert!(matches!(
        answer(&mut w, &token, totp(&fresh)),
        Ok(Reply::LoggedIn(_))
    ));
    assert_eq!(
        w.last_kinds(3),
        vec!["TotpStepAccepted", "MfaChallengePassed", "SessionStarted"]
    );
    // The token is spent; the same code again is a replay on a new challenge.
    assert_eq!(
        answer(&mut w, &token, totp(&fresh)),
        Err(Rejection::MfaChallengeInvalid)
    );
    let token = challenge(&mut w, alice, LoginMode::Token);
    assert_eq!(
        answer(&mut w, &token, totp(&fresh)),
        Err(Rejection::MfaCodeReplayed {
            attempts_left: Some(4)
        })
    );
    w.advance_secs(30);
    let next = code_now(&w, &secret);
    assert!(matches!(
        answer(&mut w, &token, totp(&next)),
        Ok(Reply::TokensIssued(_))
    ));
}

#[test]
fn an_operator_can_show_the_pending_enrolment_only() {
    let mut w = Given::seeded(13);
    let alice = w.registered("alice");
    let uri = |w: &Given| pending_otpauth_uri(&w.views, &alice, &keys(), &w.policy, w.now);
    assert_eq!(uri(&w).err(), Some(Rejection::MfaNotEnrolled));
    let secret = start(&mut w, alice);
    let shown = uri(&w).expect("pending");
    assert!(shown.contains(&data_encoding::BASE32_NOPAD.encode(&secret)));
    assert!(qr_terminal(&shown).is_some());
    assert_eq!(
        pending_otpauth_uri(
            &w.views,
            &alice,
            &MfaKeys::from_master(&[0; 32]),
            &w.policy,
            w.now
        )
        .err(),
        Some(Rejection::MfaKeysUnavailable)
    );
    w.advance_secs(601);
    assert_eq!(uri(&w).err(), Some(Rejection::MfaNotEnrolled), "expired");
}

#[test]
fn confirming_without_enrolment_is_refused_and_spends_nothing() {
    let mut w = Given::seeded(2);
    let alice = w.registered("alice");
    let before = w.log.len();
    assert_eq!(
        w.run(Command::from(crate::mfa::ConfirmTotp {
            account: alice,
            code: TotpCode::parse("123456").expect("code"),
            keys: keys(),
            client: None,
        })),
        Err(Rejection::MfaNotEnrolled)
    );
    // An expired enrolment is no enrolment, and may be replaced.
    let _ = start(&mut w, alice);
    w.advance_secs(601);
    assert_eq!(
        w.run(Command::from(crate::mfa::ConfirmTotp {
            account: alice,
            code: TotpCode::parse("123456").expect("code"),
            keys: keys(),
            client: None,
        })),
        Err(Rejection::MfaNotEnrolled)
    );
    assert_eq!(w.log.len(), before + 1, "only the enrolment was recorded");
    let _ = start(&mut w, alice);
    assert_eq!(
        w.run(Command::from(crate::mfa::ReplaceBackupCodes {
            step_up: (Some(w.now)).into(),
            account: alice,
            answer: totp("123456"),
            keys: keys(),
            client: None,
        })),
        Err(Rejection::MfaNotEnrolled)
    );
}

#[test]
fn a_challenge_dies_after_five_wrong_answers_even_for_the_right_code() {
    let mut w = Given::seeded(3);
    let alice = w.registered("alice");
    let (secret, backup) = enrol(&mut w, alice);
    let token = challenge(&mut w, alice, LoginMode::Session);
    for left in (0..5).rev() {
        let wrong = wrong_code(&w, &secret);
        assert_eq!(
            answer(&mut w, &token, wrong),
            Err(Rejection::MfaCodeInvalid {
                attempts_left: Some(left)
            })
        );
        assert_eq!(w.last_kinds(1), vec!["MfaCodeFailed"]);
    }
    let before = w.log.len();
    let right = code_now(&w, &secret);
    assert_eq!(
        answer(&mut w, &token, totp(&right)),
        Err(Rejection::MfaChallengeExhausted)
    );
    let backup_answer = MfaAnswer::backup(&backup[0]).expect("shape");
    assert_eq!(
        answer(&mut w, &token, backup_answer),
        Err(Rejection::MfaChallengeExhausted)
    );
    assert_eq!(w.log.len(), before, "a dead challenge spends nothing");
    assert_eq!(w.views.mfa_status(&alice, w.now).backup_codes_remaining, 10);
}

#[test]
fn backup_codes_work_once_and_a_new_set_voids_the_old() {
    let mut w = Given::seeded(4);
    let alice = w.registered("alice");
    let bob = w.registered("bob");
    let (secret, codes) = enrol(&mut w, alice);
    let (_, bob_codes) = enrol(&mut w, bob);
    let token = challenge(&mut w, alice, LoginMode::Session);
    // A code for another account is a wrong code.
    let bobs = MfaAnswer::backup(&bob_codes[0]).expect("shape");
    assert_eq!(
        answer(&mut w, &token, bobs),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: Some(4)
        })
    );
    let first = MfaAnswer::backup(&codes[0].to_uppercase()).expect("shape");
    assert!(matches!(
        answer(&mut w, &token, first.clone()),
        Ok(Reply::LoggedIn(_))
    ));
    assert_eq!(
        w.log.iter().rev().nth(2).map(|(_, e)| e.kind()),
        Some("BackupCodeUsed")
    );
    assert_eq!(w.views.mfa_status(&alice, w.now).backup_codes_remaining, 9);
    let token = challenge(&mut w, alice, LoginMode::Session);
    assert_eq!(
        answer(&mut w, &token, first),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: Some(4)
        }),
        "a spent backup code"
    );
    // Replace the set with a TOTP code.
    let code = code_now(&w, &secret);
    let Ok(Reply::BackupCodesReplaced { backup_codes }) =
        w.run(Command::from(crate::mfa::ReplaceBackupCodes {
            step_up: (Some(w.now)).into(),
            account: alice,
            answer: totp(&code),
            keys: keys(),
            client: None,
        }))
    else {
        panic!("replace failed");
    };
    assert_eq!(w.views.mfa_status(&alice, w.now).backup_codes_remaining, 10);
    let old = MfaAnswer::backup(&codes[1]).expect("shape");
    assert_eq!(
        answer(&mut w, &token, old),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: Some(3)
        }),
        "the old set stopped working"
    );
    let new = MfaAnswer::backup(backup_codes.expose()[0]).expect("shape");
    assert!(matches!(
        answer(&mut w, &token, new),
        Ok(Reply::LoggedIn(_))
    ));
}

#[test]
fn unknown_expired_and_foreign_tokens_are_refused() {
    let mut w = Given::seeded(5);
    let alice = w.registered("alice");
    let (secret, _) = enrol(&mut w, alice);
    let unknown = format!("{MFA_TOKEN_PREFIX}{}", "a".repeat(43));
    assert_eq!(
        answer(&mut w, &unknown, totp("123456")),
        Err(Rejection::MfaChallengeInvalid)
    );
    assert!(presented_challenge_digest("tsm_short").is_none());
    assert!(presented_challenge_digest(&format!("tss_{}", "a".repeat(43))).is_none());
    let token = challenge(&mut w, alice, LoginMode::Session);
    w.advance_secs(301);
    let before = w.log.len();
    let code = code_now(&w, &secret);
    assert_eq!(
        answer(&mut w, &token, totp(&code)),
        Err(Rejection::MfaChallengeInvalid)
    );
    assert_eq!(w.log.len(), before);
    assert_eq!(
        w.views.mfa.challenges.len(),
        1,
        "dropped at the next applied event"
    );
    let _ = w.registered("carol");
    assert!(w.views.mfa.challenges.is_empty());
}

#[test]
fn disabling_needs_a_code_and_ends_the_other_sessions() {
    let mut w = Given::seeded(6);
    let alice = w.registered("alice");
    let (secret, codes) = enrol(&mut w, alice);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let token = challenge(&mut w, alice, LoginMode::Session);
        w.advance_secs(30);
        let code = code_now(&w, &secret);
        match answer(&mut w, &token, totp(&code)) {
            Ok(Reply::LoggedIn(s)) => sessions.push(s.session),
            other => panic!("{other:?}"),
        }
    }
    let token = challenge(&mut w, alice, LoginMode::Token);
    let family = match answer(&mut w, &token, MfaAnswer::backup(&codes[3]).expect("shape")) {
        Ok(Reply::TokensIssued(t)) => t.family,
        other => panic!("{other:?}"),
    };
    let wrong = wrong_code(&w, &secret);
    let authenticated = w.now;
    let disable = |answer: MfaAnswer| {
        Command::from(crate::mfa::DisableTotp {
            step_up: (Some(authenticated)).into(),
            account: alice,
            answer,
            keys: keys(),
            client: None,
            current_session: sessions.first().copied(),
            current_family: None,
        })
    };
    assert_eq!(
        w.run(disable(wrong)),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: None
        })
    );
    assert!(w.views.mfa_status(&alice, w.now).enabled);
    let used = MfaAnswer::backup(&codes[3]).expect("shape");
    assert_eq!(
        w.run(disable(used)),
        Err(Rejection::MfaCodeInvalid {
            attempts_left: None
        })
    );
    let good = MfaAnswer::backup(&codes[4]).expect("shape");
    assert_eq!(w.run(disable(good)), Ok(Reply::TotpDisabled));
    assert!(!w.views.mfa_status(&alice, w.now).enabled);
    assert!(
        w.views.session(&sessions[0]).is_some(),
        "the current session survives"
    );
    assert!(w.views.session(&sessions[1]).is_none());
    assert!(
        w.views
            .family(&family)
            .is_some_and(|f| f.revoked_at.is_some())
    );
    // MFA off: a plain login again, and it can be enrolled anew.
    assert!(matches!(
        login(&mut w, alice, LoginMode::Session, None),
        Ok(Reply::LoggedIn(_))
    ));
    let _ = start(&mut w, alice);
}

#[test]
fn an_operator_reset_is_recorded_and_ends_every_session() {
    let mut w = Given::seeded(7);
    let alice = w.registered("alice");
    let (secret, _) = enrol(&mut w, alice);
    let token = challenge(&mut w, alice, LoginMode::Session);
    let code = code_now(&w, &secret);
    let Ok(Reply::LoggedIn(s)) = answer(&mut w, &token, totp(&code)) else {
        panic!("login failed");
    };
    let by = crate::Actor::Operator { name: "ops".into() };
    assert_eq!(
        w.run(Command::from(crate::mfa::ResetMfa {
            account: alice,
            by: by.clone()
        })),
        Ok(Reply::MfaReset)
    );
    assert!(w.log.iter().any(|(_, e)| *e
        == Event::TotpDisabled {
            account: alice,
            by: by.clone()
        }));
    assert!(w.views.session(&s.session).is_none());
    assert_eq!(
        w.run(Command::from(crate::mfa::ResetMfa { account: alice, by })),
        Err(Rejection::MfaNotEnrolled)
    );
    // A challenge opened before the reset no longer works.
    assert!(matches!(
        login(&mut w, alice, LoginMode::Session, None),
        Ok(Reply::LoggedIn(_))
    ));
}

#[test]
fn a_secret_sealed_under_another_key_spends_nothing() {
    let mut w = Given::seeded(8);
    let alice = w.registered("alice");
    let (secret, _) = enrol(&mut w, alice);
    let token = challenge(&mut w, alice, LoginMode::Session);
    let before = w.log.len();
    let code = code_now(&w, &secret);
    let presented = presented_challenge_digest(&token).expect("shape");
    assert_eq!(
        w.run(Command::from(crate::mfa::AnswerMfaChallenge {
            presented,
            answer: totp(&code),
            keys: MfaKeys::from_master(&[1; 32]),
            client: None,
            supersedes: None,
        })),
        Err(Rejection::MfaKeysUnavailable)
    );
    assert_eq!(w.log.len(), before);
}

#[test]
fn wrong_passwords_throttle_the_account_like_a_wrong_password_and_the_wait_ends() {
    let mut w = Given::seeded(9);
    let alice = w.registered("alice");
    let attacker = ip("198.51.100.9");
    for _ in 0..5 {
        assert_eq!(
            wrong_password(&mut w, alice, attacker),
            Err(Rejection::InvalidCredentials)
        );
    }
    // Throttled: even the right password answers like a wrong one, and is not counted.
    let honest = ip("203.0.113.5");
    assert_eq!(
        login(&mut w, alice, LoginMode::Session, honest),
        Err(Rejection::InvalidCredentials)
    );
    assert!(matches!(
        w.log.last(),
        Some((
            _,
            Event::LoginFailed {
                reason: crate::LoginFailure::Throttled,
                ..
            }
        ))
    ));
    assert_eq!(w.views.account_strikes(&alice).map(|s| s.failures), Some(5));
    w.advance_secs(1);
    assert!(matches!(
        login(&mut w, alice, LoginMode::Session, honest),
        Ok(Reply::LoggedIn(_))
    ));
    assert!(
        w.views.account_strikes(&alice).is_none(),
        "a success clears the strikes"
    );
}

#[test]
fn many_accounts_failing_from_one_address_slow_that_address() {
    let mut w = Given::seeded(10);
    let accounts: Vec<AccountId> = (0..25).map(|i| w.registered(&format!("user{i}"))).collect();
    let stuffer = ip("198.51.100.7");
    for a in accounts.iter().take(20) {
        assert_eq!(
            wrong_password(&mut w, *a, stuffer),
            Err(Rejection::InvalidCredentials)
        );
    }
    let before = w.log.len();
    assert_eq!(
        wrong_password(&mut w, accounts[21], stuffer),
        Err(Rejection::Throttled {
            retry_after_secs: 1
        })
    );
    // The writer applies the same rule: a login prepared before the address had to wait
    // is refused there too.
    let mut late = w
        .login_command("user21", "Wrong password 1", LoginMode::Session, None)
        .expect("no address, no wait");
    late.client = stuffer;
    assert_eq!(
        w.run(Command::from(late)),
        Err(Rejection::Throttled {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        w.log.len(),
        before,
        "refused before any account is looked at"
    );
    assert_eq!(
        crate::throttle::check_address(&w.views, stuffer, w.now, &w.policy.throttle),
        Err(Rejection::Throttled {
            retry_after_secs: 1
        })
    );
    // Another address is not affected; nor is the same /64 of another subscriber.
    assert!(matches!(
        login(&mut w, accounts[22], LoginMode::Session, ip("198.51.100.8")),
        Ok(Reply::LoggedIn(_))
    ));
    w.advance_secs(1);
    assert_eq!(
        wrong_password(&mut w, accounts[21], stuffer),
        Err(Rejection::InvalidCredentials)
    );
}

#[test]
fn per_address_state_stays_within_its_bound_evicting_the_oldest() {
    let mut w = Given::seeded(11);
    let _ = w.views.set_address_capacity(3);
    for i in 1..=5u8 {
        w.advance_secs(1);
        // A username that names no account: a failure that counts against the address only.
        let login = w
            .login_command(
                "nobody",
                PASSWORD,
                LoginMode::Session,
                ip(&format!("192.0.2.{i}")),
            )
            .expect("each address fails once: none has to wait");
        let _ = w.run(Command::from(login));
        assert!(w.views.address_strikes_count() <= 3);
    }
    assert!(
        w.views
            .address_strikes(&"192.0.2.1".parse().expect("ip"))
            .is_none()
    );
    assert!(
        w.views
            .address_strikes(&"192.0.2.2".parse().expect("ip"))
            .is_none()
    );
    assert!(
        w.views
            .address_strikes(&"192.0.2.5".parse().expect("ip"))
            .is_some()
    );
    // Forgotten a day after the last failure.
    w.advance_secs(24 * 60 * 60);
    let _ = w.registered("bob");
    assert_eq!(w.views.address_strikes_count(), 0);
}

#[test]
fn wrong_mfa_codes_count_against_the_account() {
    let mut w = Given::seeded(12);
    let alice = w.registered("alice");
    let (secret, _) = enrol(&mut w, alice);
    let token = challenge(&mut w, alice, LoginMode::Session);
    // Guessing across challenges (one wrong code each) throttles the account: its logins
    // and its open challenges wait.
    for _ in 0..5 {
        let guess = challenge(&mut w, alice, LoginMode::Session);
        let wrong = wrong_code(&w, &secret);
        let _ = answer(&mut w, &guess, wrong);
    }
    assert_eq!(
        login(&mut w, alice, LoginMode::Session, None),
        Err(Rejection::InvalidCredentials)
    );
    let code = code_now(&w, &secret);
    assert_eq!(
        answer(&mut w, &token, totp(&code)),
        Err(Rejection::Throttled {
            retry_after_secs: 1
        })
    );
    w.advance_secs(1);
    assert!(matches!(
        answer(&mut w, &token, totp(&code)),
        Ok(Reply::LoggedIn(_))
    ));
}

#[test]
fn enrolment_required_only_when_the_policy_asks_and_past_the_grace_period() {
    let mut w = Given::seeded(7);
    let alice = w.registered("alice");
    let mut policy = w.policy.clone();
    // Off: never, however old the account.
    w.advance_secs(400 * 24 * 60 * 60);
    assert!(!enrolment_required(&w.views, &alice, w.now, &policy));
    // On, no grace: an account without MFA is limited.
    policy.mfa.required = true;
    assert!(enrolment_required(&w.views, &alice, w.now, &policy));
    // Within the grace period: not yet.
    let bob = w.registered("bob");
    policy.mfa.required_grace_days = 2;
    w.advance_secs(24 * 60 * 60);
    assert!(!enrolment_required(&w.views, &bob, w.now, &policy));
    w.advance_secs(24 * 60 * 60);
    assert!(enrolment_required(&w.views, &bob, w.now, &policy));
    // A pending enrolment is not enough; a confirmed one lifts the limit.
    let secret = start(&mut w, bob);
    assert!(enrolment_required(&w.views, &bob, w.now, &policy));
    w.advance_secs(31);
    let code = code_now(&w, &secret);
    assert!(matches!(
        w.run(Command::from(crate::mfa::ConfirmTotp {
            account: bob,
            code: TotpCode::parse(&code).expect("code"),
            keys: keys(),
            client: None,
        })),
        Ok(Reply::TotpEnabled { .. })
    ));
    assert!(!enrolment_required(&w.views, &bob, w.now, &policy));
    let _ = enrol(&mut w, alice);
    assert!(!enrolment_required(&w.views, &alice, w.now, &policy));
}
