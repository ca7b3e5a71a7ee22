//! Given/when/then tests of the API-key decisions and authentication.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::testkit::Given;

pub(crate) fn pepper() -> ApiKeyPepper {
    ApiKeyPepper::from_key(&[7; 32])
}

const ANY: KeyRoute = KeyRoute {
    live_only: false,
    scope: None,
};
const LIVE: KeyRoute = KeyRoute {
    live_only: true,
    scope: None,
};

fn spec(env: Environment) -> ApiKeySpec {
    ApiKeySpec {
        name: "billing".into(),
        kind: ApiKeyKind::Secret,
        environment: env,
        scopes: vec!["tokens:read".into()],
        allowed_cidrs: vec![],
        rate_limit_per_minute: None,
        expires_in_secs: 30 * 24 * 3600,
    }
}

fn create(w: &mut Given, account: AccountId, spec: ApiKeySpec) -> Result<ApiKeyIssued, Rejection> {
    let step_up = StepUp::At(Some(w.now));
    w.run(CreateApiKey {
        account,
        creator_scopes: None,
        spec,
        pepper: pepper(),
        step_up,
    })
}

fn rotate(
    w: &mut Given,
    account: AccountId,
    key: ApiKeyId,
    overlap: u64,
) -> Result<ApiKeyIssued, Rejection> {
    let step_up = StepUp::At(Some(w.now));
    w.run(RotateApiKey {
        account,
        key,
        overlap_secs: Some(overlap),
        pepper: pepper(),
        step_up,
    })
}

fn auth(w: &Given, key: &str, route: KeyRoute, ip: Option<IpAddr>) -> Result<ApiKeyId, KeyRefusal> {
    authenticate(&w.views, key, &pepper(), "tsr", w.now, ip, route)
        .map(|k| k.id)
        .map_err(|(r, _)| r)
}

#[test]
fn a_created_key_authenticates_and_only_its_digest_is_recorded() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let issued = create(&mut w, alice, spec(Environment::Live)).expect("created");
    assert!(issued.key.starts_with("tsr_sk_live_"));
    assert!(issued.key.starts_with(&issued.prefix));
    assert!(!format!("{issued:?}").contains(&issued.key[12..]));
    let logged = format!("{:?}", w.log);
    assert!(
        !logged.contains(&issued.key[12..]),
        "the key is never in an event"
    );
    assert_eq!(auth(&w, &issued.key, LIVE, None), Ok(issued.id));
    // A digest under another server key finds nothing.
    let other = ApiKeyPepper::from_key(&[8; 32]);
    assert!(authenticate(&w.views, &issued.key, &other, "tsr", w.now, None, ANY).is_err());
}

#[test]
fn creating_needs_a_recent_authentication() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let stale = StepUp::At(Some(w.now));
    w.advance_secs(w.policy.session.reauth_window_secs + 1);
    let r = w.run(CreateApiKey {
        account: alice,
        creator_scopes: None,
        spec: spec(Environment::Live),
        pepper: pepper(),
        step_up: stale,
    });
    assert_eq!(r.err(), Some(Rejection::ReauthenticationRequired));
    assert!(w.views.api_keys_of(&alice).next().is_none());
}

#[test]
fn requests_that_break_the_rules_are_refused_with_the_field() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let cases: Vec<(ApiKeySpec, CreatorScopes, &str)> = vec![
        (
            ApiKeySpec {
                name: " ".into(),
                ..spec(Environment::Live)
            },
            None,
            "/name",
        ),
        (
            ApiKeySpec {
                expires_in_secs: 0,
                ..spec(Environment::Live)
            },
            None,
            "/expires_in",
        ),
        (
            ApiKeySpec {
                expires_in_secs: 366 * 24 * 3600,
                ..spec(Environment::Live)
            },
            None,
            "/expires_in",
        ),
        (
            ApiKeySpec {
                scopes: vec!["tokens:write".into()],
                kind: ApiKeyKind::Publishable,
                ..spec(Environment::Live)
            },
            None,
            "/scopes",
        ),
        (
            ApiKeySpec {
                scopes: vec!["Tokens".into()],
                ..spec(Environment::Live)
            },
            None,
            "/scopes",
        ),
        (
            spec(Environment::Live),
            Some(vec!["profile:read".into()]),
            "/scopes",
        ),
        (
            ApiKeySpec {
                rate_limit_per_minute: Some(0),
                ..spec(Environment::Live)
            },
            None,
            "/rate_limit",
        ),
    ];
    for (s, creator, field) in cases {
        let step_up = StepUp::At(Some(w.now));
        let r = w.run(CreateApiKey {
            account: alice,
            creator_scopes: creator,
            spec: s,
            pepper: pepper(),
            step_up,
        });
        assert!(
            matches!(&r, Err(Rejection::ApiKeyRequestInvalid { field: f, .. }) if *f == field),
            "{field}: {r:?}"
        );
    }
    // A subset of the creator's scopes is fine, and a publishable key may read.
    let step_up = StepUp::At(Some(w.now));
    let pk = w.run(CreateApiKey {
        account: alice,
        creator_scopes: Some(vec!["tokens:read".into(), "x:write".into()]),
        spec: ApiKeySpec {
            kind: ApiKeyKind::Publishable,
            ..spec(Environment::Live)
        },
        pepper: pepper(),
        step_up,
    });
    assert!(pk.expect("created").key.starts_with("tsr_pk_"));
}

#[test]
fn refusals_name_their_reason() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let live = create(&mut w, alice, spec(Environment::Live)).expect("live");
    let test = create(&mut w, alice, spec(Environment::Test)).expect("test");
    let fenced = create(
        &mut w,
        alice,
        ApiKeySpec {
            allowed_cidrs: vec![Cidr::parse("203.0.113.0/24").expect("cidr")],
            ..spec(Environment::Live)
        },
    )
    .expect("fenced");
    let inside = "203.0.113.9".parse().ok();
    let outside = "198.51.100.1".parse().ok();
    assert_eq!(
        auth(&w, &test.key, LIVE, None),
        Err(KeyRefusal::WrongEnvironment)
    );
    assert_eq!(auth(&w, &test.key, ANY, None), Ok(test.id));
    assert_eq!(auth(&w, &fenced.key, ANY, inside), Ok(fenced.id));
    assert_eq!(
        auth(&w, &fenced.key, ANY, outside),
        Err(KeyRefusal::AddressNotAllowed)
    );
    assert_eq!(
        auth(&w, &fenced.key, ANY, None),
        Err(KeyRefusal::AddressNotAllowed)
    );
    let scoped = KeyRoute {
        live_only: false,
        scope: Some("accounts:read"),
    };
    assert_eq!(
        auth(&w, &live.key, scoped, None),
        Err(KeyRefusal::ScopeMissing)
    );
    // Typos and made-up keys never reach the lookup.
    let mut typo = live.key.to_string();
    typo.replace_range(20..21, if &typo[20..21] == "a" { "b" } else { "a" });
    assert_eq!(
        auth(&w, &typo, ANY, None),
        Err(KeyRefusal::Format(format::FormatError::BadChecksum))
    );
    let made_up = format::generate("tsr", ApiKeyKind::Secret, Environment::Live, || [3; 64]);
    assert_eq!(auth(&w, &made_up, ANY, None), Err(KeyRefusal::Unknown));
    assert_eq!(
        auth(&w, &live.key.replace("tsr_", "sk_"), ANY, None),
        Err(KeyRefusal::Format(format::FormatError::WrongPrefix))
    );
    // Revoked, then expired.
    w.run(RevokeApiKey {
        account: alice,
        key: live.id,
    })
    .expect("revoked");
    assert_eq!(auth(&w, &live.key, ANY, None), Err(KeyRefusal::Revoked));
    w.advance_secs(30 * 24 * 3600 - 1);
    assert_eq!(auth(&w, &test.key, ANY, None), Ok(test.id));
    w.advance_secs(1);
    assert_eq!(auth(&w, &test.key, ANY, None), Err(KeyRefusal::Expired));
}

#[test]
fn someone_elses_key_cannot_be_revoked_or_rotated() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let mallory = w.registered("mallory");
    let k = create(&mut w, alice, spec(Environment::Live)).expect("created");
    assert_eq!(
        w.run(RevokeApiKey {
            account: mallory,
            key: k.id
        }),
        Err(Rejection::ApiKeyNotFound)
    );
    assert_eq!(
        rotate(&mut w, mallory, k.id, 0).err(),
        Some(Rejection::ApiKeyNotFound)
    );
    assert_eq!(auth(&w, &k.key, ANY, None), Ok(k.id));
}

#[test]
fn rotation_keeps_the_old_key_for_the_overlap_only() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let old = create(&mut w, alice, spec(Environment::Live)).expect("created");
    let new = rotate(&mut w, alice, old.id, 600).expect("rotated");
    assert_ne!(old.key, new.key);
    let s = w.views.api_key(&new.id).expect("successor");
    assert_eq!(
        (s.rotated_from, s.scopes.clone()),
        (Some(old.id), vec!["tokens:read".to_owned()])
    );
    assert_eq!(auth(&w, &old.key, ANY, None), Ok(old.id));
    assert_eq!(
        rotate(&mut w, alice, old.id, 0).err(),
        Some(Rejection::ApiKeyNotActive)
    );
    w.advance_secs(600);
    assert_eq!(auth(&w, &old.key, ANY, None), Err(KeyRefusal::Retired));
    assert_eq!(auth(&w, &new.key, ANY, None), Ok(new.id));
    let too_long = w.policy.api_keys.overlap_secs_max + 1;
    assert!(matches!(
        rotate(&mut w, alice, new.id, too_long),
        Err(Rejection::ApiKeyRequestInvalid {
            field: "/overlap_seconds",
            ..
        })
    ));
}

#[test]
fn an_operator_revokes_by_prefix_or_whole_key_and_ambiguity_is_refused() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let k = create(&mut w, alice, spec(Environment::Live)).expect("created");
    let p = PresentedPrefix::read(&k.key[..k.prefix.len() + 3], &pepper(), "tsr").expect("prefix");
    assert_eq!(p, PresentedPrefix::Prefix(k.prefix.clone()));
    assert!(PresentedPrefix::read("tsr_sk_live_ab", &pepper(), "tsr").is_err());
    assert!(PresentedPrefix::read("sk_live_abcdefghijkl", &pepper(), "tsr").is_err());
    let done = w
        .run(RevokeApiKeyByPrefix {
            presented: p,
            operator: "ops".into(),
        })
        .expect("revoked");
    assert_eq!(done.key, k.id);
    assert_eq!(auth(&w, &k.key, ANY, None), Err(KeyRefusal::Revoked));
    // Two keys under one display prefix: only the whole key decides.
    let a = create(&mut w, alice, spec(Environment::Live)).expect("a");
    let twin = ApiKeyView {
        id: ApiKeyId::from_bytes([9; 16]),
        digest: SecretDigest([9; 32]),
        ..w.views.api_key(&a.id).cloned().expect("a")
    };
    w.views.put_api_key(twin);
    let r = w.run(RevokeApiKeyByPrefix {
        presented: PresentedPrefix::Prefix(a.prefix.clone()),
        operator: "ops".into(),
    });
    assert_eq!(r, Err(Rejection::ApiKeyPrefixAmbiguous));
    let whole = PresentedPrefix::read(&a.key, &pepper(), "tsr").expect("key");
    assert_eq!(
        w.run(RevokeApiKeyByPrefix {
            presented: whole,
            operator: "ops".into()
        })
        .map(|d| d.key),
        Ok(a.id)
    );
}

#[test]
fn a_leak_report_revokes_our_keys_and_ignores_others() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let k = create(&mut w, alice, spec(Environment::Live)).expect("created");
    let reports = vec![
        LeakReport {
            digest: Some(pepper().digest(&k.key)),
            source: "content".into(),
            url: Some("https://example.com/x".into()),
        },
        LeakReport {
            digest: Some(pepper().digest(&k.key)),
            source: "commit".into(),
            url: None,
        },
        LeakReport {
            digest: None,
            source: "content".into(),
            url: None,
        },
    ];
    let out = w.run(ReportLeakedApiKeys { reports }).expect("reported");
    assert_eq!(
        out,
        vec![
            LeakOutcome::Revoked(k.id),
            LeakOutcome::AlreadyInactive(k.id),
            LeakOutcome::Unknown
        ]
    );
    assert_eq!(w.last_kinds(1), vec!["ApiKeyRevoked"]);
    assert!(matches!(
        &w.views.api_key(&k.id).expect("kept").revoked,
        Some((_, ApiKeyRevokeReason::Leaked { source, url: Some(_) })) if source == "content"
    ));
}

#[test]
fn usage_is_folded_and_expiry_is_warned_once() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let k = create(
        &mut w,
        alice,
        ApiKeySpec {
            expires_in_secs: 20 * 24 * 3600,
            ..spec(Environment::Live)
        },
    )
    .expect("created");
    let mut t = UsageTally::default();
    for i in 0..10u8 {
        t.record(
            w.now.plus_ms(u64::from(i)),
            UseOutcome::Accepted,
            Some(IpAddr::from([10, 0, 0, i % 7])),
        );
    }
    t.record(w.now, UseOutcome::RateLimited, None);
    assert_eq!(t.addresses.len(), LAST_ADDRESSES_MAX);
    assert_eq!(
        w.run(RecordApiKeyUsage {
            tallies: vec![(k.id, t)]
        }),
        Ok(1)
    );
    let u = &w.views.api_key(&k.id).expect("key").usage;
    assert_eq!((u.requests, u.accepted, u.rate_limited), (11, 10, 1));
    assert_eq!(u.last_used_at, Some(w.now.plus_ms(9)));
    assert_eq!(w.run(WarnExpiringApiKeys), Ok(0));
    w.advance_secs(6 * 24 * 3600 + 1);
    assert_eq!(
        w.views.api_keys_expiring_count(w.now, &w.policy.api_keys),
        1
    );
    assert_eq!(w.run(WarnExpiringApiKeys), Ok(1));
    assert_eq!(w.run(WarnExpiringApiKeys), Ok(0));
    // A key past its expiry is forgotten; its late usage is not recorded.
    w.advance_secs(15 * 24 * 3600);
    let mut late = UsageTally::default();
    late.record(w.now, UseOutcome::Refused, None);
    assert_eq!(
        w.run(RecordApiKeyUsage {
            tallies: vec![(k.id, late)]
        }),
        Ok(0)
    );
    // Dropped from the views when the next event is applied.
    assert_eq!(
        w.views.api_key(&k.id).map(|k| k.state(w.now)),
        Some(KeyState::Expired)
    );
    w.registered("bob");
    assert!(w.views.api_key(&k.id).is_none());
}

#[test]
fn the_rate_bucket_allows_its_burst_then_says_when() {
    let t0 = crate::testkit::T0;
    let mut b = RateBucket::full(3, t0);
    assert!((0..3).all(|_| b.take(3, t0).is_ok()));
    assert_eq!(b.take(3, t0), Err(20));
    assert_eq!(b.take(3, t0.plus_ms(19_000)), Err(1));
    assert!(b.take(3, t0.plus_ms(20_000)).is_ok());
}

#[test]
fn cidrs_parse_and_match() {
    let c = Cidr::parse("10.1.2.3/8").expect("v4");
    assert_eq!(c.to_string(), "10.0.0.0/8");
    assert!(c.contains("10.200.0.1".parse().expect("ip")));
    assert!(c.contains("::ffff:10.0.0.1".parse().expect("mapped")));
    assert!(!c.contains("11.0.0.1".parse().expect("ip")));
    assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("nope").is_none());
    let one = Cidr::parse("2001:db8::1").expect("v6");
    assert_eq!(one.prefix_len, 128);
    assert!(!one.contains("2001:db8::2".parse().expect("ip")));
}

/// One step of a rotation sequence.
#[derive(Clone, Debug)]
enum Step {
    Rotate { overlap_secs: u64 },
    Advance { secs: u64 },
    RevokeNewest,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..7200).prop_map(|overlap_secs| Step::Rotate { overlap_secs }),
        (1u64..5000).prop_map(|secs| Step::Advance { secs }),
        Just(Step::RevokeNewest),
    ]
}

proptest! {
    /// Over any sequence of rotations, waits and revocations: at most one key of the lineage
    /// is accepted outside an overlap, and no rotated key is accepted at or after its
    /// overlap's end.
    #[test]
    fn never_two_keys_of_one_rotation_valid_past_the_overlap(steps in proptest::collection::vec(step(), 1..30)) {
        let mut w = Given::nothing();
        let alice = w.registered("alice");
        let first = create(&mut w, alice, spec(Environment::Live)).expect("created");
        let mut lineage = vec![(first.id, first.key)];
        for s in steps {
            match s {
                Step::Rotate { overlap_secs } => {
                    let newest = lineage.last().map(|(id, _)| *id).expect("one key at least");
                    if let Ok(k) = rotate(&mut w, alice, newest, overlap_secs) {
                        lineage.push((k.id, k.key));
                    }
                }
                Step::Advance { secs } => { w.advance_secs(secs); }
                Step::RevokeNewest => {
                    let newest = lineage.last().map(|(id, _)| *id).expect("one key at least");
                    w.run(RevokeApiKey { account: alice, key: newest }).expect("own key");
                }
            }
            let mut outside_overlap = 0;
            for (id, key) in &lineage {
                if auth(&w, key, ANY, None).is_err() {
                    continue;
                }
                let v = w.views.api_key(id).expect("accepted keys are held");
                match v.retires_at {
                    Some(r) => prop_assert!(w.now < r, "a rotated key is accepted after its overlap"),
                    None => outside_overlap += 1,
                }
            }
            prop_assert!(outside_overlap <= 1, "two keys accepted outside an overlap");
        }
    }
}

#[test]
fn a_disabled_accounts_keys_are_refused_and_come_back_with_it() {
    let mut w = Given::nothing();
    let alice = w.registered("alice");
    let k = create(&mut w, alice, spec(Environment::Live)).expect("created");
    let by = crate::Actor::Operator { name: "ops".into() };
    w.run(crate::account::DisableAccount {
        account: alice,
        by: by.clone(),
    })
    .expect("disabled");
    assert_eq!(
        auth(&w, &k.key, ANY, None),
        Err(KeyRefusal::AccountDisabled)
    );
    w.run(crate::account::EnableAccount { account: alice, by })
        .expect("enabled");
    assert_eq!(auth(&w, &k.key, ANY, None), Ok(k.id));
}
