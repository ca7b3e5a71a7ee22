//! Golden bytes: one fixed example of every event variant, encoded, checked in under
//! `storage/golden/`. A failing test here means the format moved: add a variant or an
//! upcaster instead. `TESSERA_BLESS=1 cargo test -p tessera-storage golden` writes files for
//! new variants only; it never overwrites an existing one.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use tessera_core::mfa::{BackupCodeDigest, SealedSecret};
use tessera_core::oauth::{ClientKind, ClientSecretDigest, GrantRevokeReason, GrantType};
use tessera_core::password::PasswordHash;
use tessera_core::secret::SecretDigest;
use tessera_core::{
    AccountId, Actor, ChallengeId, Event, FamilyId, FamilyRevokeReason, LoginFailure, LoginMode,
    RegistrationOutcome, SessionEndReason, SessionId, Timestamp, TokenId,
};
use uuid_fixture::uuid;

use super::*;

mod uuid_fixture {
    pub fn uuid(n: u8) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = n.wrapping_mul(17).wrapping_add(i as u8);
        }
        b
    }
}

/// The times below are literals, not the test kit's start time: they are encoded in the
/// checked-in files, which must not move if the tests start elsewhere.
fn examples() -> Vec<Event> {
    let account = AccountId::from_bytes(uuid(1));
    let session = SessionId::from_bytes(uuid(2));
    let family = FamilyId::from_bytes(uuid(3));
    let hash =
        PasswordHash("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA".into());
    let client = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    let challenge = ChallengeId::from_bytes(uuid(5));
    vec![
        Event::AccountRegistered {
            account,
            username: "Alice".into(),
            email: Some("alice@example.com".into()),
            password_hash: hash.clone(),
        },
        Event::PasswordChanged {
            account,
            password_hash: hash.clone(),
        },
        Event::PasswordRehashed {
            account,
            password_hash: hash,
        },
        Event::AccountDisabled {
            account,
            by: Actor::Operator { name: "ops".into() },
        },
        Event::LoginFailed {
            account,
            reason: LoginFailure::WrongPassword,
            client,
        },
        Event::UnknownAccountLoginFailed { client },
        Event::SessionStarted {
            session,
            account,
            secret_digest: SecretDigest([9; 32]),
            idle_timeout_ms: 1_800_000,
            expires_at: Timestamp::from_millis(1_700_000_000_000),
        },
        Event::SessionTouched { session },
        Event::SessionEnded {
            session,
            reason: SessionEndReason::LoggedOut,
        },
        Event::SigningKeyAdded {
            kid: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into(),
            public_key: [3; 32],
        },
        Event::SigningKeyRetired {
            kid: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into(),
            unpublish_at: Timestamp::from_millis(1_700_000_001_000),
        },
        Event::RefreshFamilyStarted {
            family,
            account,
            session: Some(session),
            client_id: Some("cli".into()),
            scope: Some("openid profile".into()),
            token_digest: SecretDigest([4; 32]),
            token_expires_at: Timestamp::from_millis(1_700_604_800_000),
            expires_at: Timestamp::from_millis(1_702_592_000_000),
        },
        Event::RefreshTokenRotated {
            family,
            presented_digest: SecretDigest([4; 32]),
            token_digest: SecretDigest([5; 32]),
            token_expires_at: Timestamp::from_millis(1_700_604_900_000),
            grace: false,
        },
        Event::RefreshTokenReused {
            family,
            presented_digest: SecretDigest([4; 32]),
            generation: 0,
            since_rotation_ms: 5_000,
            successor_used: true,
        },
        Event::RefreshFamilyRevoked {
            family,
            reason: FamilyRevokeReason::PasswordChanged,
        },
        Event::AccessTokenRevoked {
            jti: TokenId::from_bytes(uuid(4)),
            account,
            expires_at: Timestamp::from_millis(1_700_000_900_000),
        },
        Event::AccountSignedOutEverywhere {
            account,
            by: Actor::Holder,
        },
        Event::TotpEnrolmentStarted {
            account,
            sealed_secret: SealedSecret {
                key_id: [1, 2, 3, 4, 5, 6, 7, 8],
                nonce: [6; 24],
                ciphertext: vec![7; 36],
            },
            expires_at: Timestamp::from_millis(1_700_000_600_000),
        },
        Event::TotpEnabled {
            account,
            step: 56_666_666,
            backup_codes: vec![BackupCodeDigest([8; 32]), BackupCodeDigest([9; 32])],
        },
        Event::TotpStepAccepted {
            account,
            step: 56_666_667,
        },
        Event::BackupCodeUsed {
            account,
            code: BackupCodeDigest([8; 32]),
        },
        Event::BackupCodesReplaced {
            account,
            backup_codes: vec![BackupCodeDigest([10; 32])],
        },
        Event::TotpDisabled {
            account,
            by: Actor::Operator { name: "ops".into() },
        },
        Event::MfaChallengeStarted {
            challenge,
            account,
            token_digest: SecretDigest([11; 32]),
            mode: LoginMode::Token,
            attempts_max: 5,
            expires_at: Timestamp::from_millis(1_700_000_300_000),
        },
        Event::MfaCodeFailed {
            account,
            challenge: Some(challenge),
            client,
        },
        Event::MfaChallengePassed { challenge },
        Event::AccountEnabled {
            account,
            by: Actor::Operator { name: "ops".into() },
        },
        Event::RegistrationAttempted {
            client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            outcome: RegistrationOutcome::UsernameTaken,
        },
        Event::ClientRegistered {
            client_id: "photos-app".into(),
            name: "Photos".into(),
            kind: ClientKind::Confidential,
            secret: Some(ClientSecretDigest([7; 32])),
            redirect_uris: vec!["https://photos.example/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: vec!["photos.read".into()],
            by: Actor::Operator { name: "ops".into() },
        },
        Event::ClientSecretRotated {
            client_id: "photos-app".into(),
            secret: ClientSecretDigest([8; 32]),
            previous_valid_until: Timestamp::from_millis(1_700_000_600_000),
            by: Actor::Operator { name: "ops".into() },
        },
        Event::ClientRemoved {
            client_id: "photos-app".into(),
            by: Actor::Operator { name: "ops".into() },
        },
        Event::ConsentGranted {
            account,
            client_id: "photos-app".into(),
            scope: "photos.read".into(),
        },
        Event::GrantRevoked {
            account,
            client_id: "photos-app".into(),
            reason: GrantRevokeReason::RevokedByUser,
        },
        Event::AuthorizationCodeIssued {
            code: SecretDigest([9; 32]),
            client_id: "photos-app".into(),
            account,
            redirect_uri: "https://photos.example/cb".into(),
            scope: "photos.read".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            expires_at: Timestamp::from_millis(1_700_000_060_000),
        },
        Event::AuthorizationCodeRedeemed {
            code: SecretDigest([9; 32]),
            family,
        },
        Event::AuthorizationCodeReplayed {
            code: SecretDigest([9; 32]),
        },
        Event::DeviceAuthorizationStarted {
            device: SecretDigest([10; 32]),
            user_code: "BCDFGHJK".into(),
            client_id: "tv-app".into(),
            scope: "photos.read".into(),
            address: client,
            interval_secs: 5,
            expires_at: Timestamp::from_millis(1_700_000_600_000),
        },
        Event::DeviceCodePolled {
            device: SecretDigest([10; 32]),
            slow_down: true,
            interval_secs: 10,
        },
        Event::DeviceUserCodeFailed {
            session: Some(session),
            address: client,
        },
        Event::DeviceAuthorizationApproved {
            device: SecretDigest([10; 32]),
            account,
        },
        Event::DeviceAuthorizationDenied {
            device: SecretDigest([10; 32]),
            account,
        },
        Event::DeviceCodeRedeemed {
            device: SecretDigest([10; 32]),
            family,
        },
        Event::ClientAccessTokenRevoked {
            client_id: "backend".into(),
            jti: TokenId::from_bytes(uuid(6)),
            expires_at: Timestamp::from_millis(1_700_000_900_000),
        },
    ]
    .into_iter()
    .chain(api_key_examples(account))
    .collect()
}

fn api_key_examples(account: AccountId) -> Vec<Event> {
    use tessera_core::apikey::{ApiKeyKind, ApiKeyRevokeReason, Cidr, Environment};
    let key = tessera_core::ApiKeyId::from_bytes(uuid(6));
    let successor = tessera_core::ApiKeyId::from_bytes(uuid(7));
    vec![
        Event::ApiKeyCreated {
            key,
            account,
            name: "billing".into(),
            kind: ApiKeyKind::Secret,
            environment: Environment::Live,
            scopes: vec!["tokens:read".into()],
            allowed_cidrs: vec![Cidr {
                network: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0)),
                prefix_len: 24,
            }],
            rate_limit_per_minute: Some(600),
            digest: SecretDigest([8; 32]),
            prefix: "tsr_sk_live_AbCd1234".into(),
            expires_at: Timestamp::from_millis(1_731_536_000_000),
            rotated_from: None,
        },
        Event::ApiKeyRotated {
            key,
            successor,
            retires_at: Timestamp::from_millis(1_700_003_600_000),
        },
        Event::ApiKeyRevoked {
            key: successor,
            reason: ApiKeyRevokeReason::Leaked {
                source: "commit".into(),
                url: Some("https://github.com/octo/repo/blob/abc/config.yml".into()),
            },
        },
        Event::ApiKeyExpiryWarned {
            key,
            expires_at: Timestamp::from_millis(1_731_536_000_000),
        },
        Event::ApiKeyUsed {
            key,
            requests: 1200,
            accepted: 1190,
            refused: 4,
            rate_limited: 6,
            first_at: Timestamp::from_millis(1_700_000_000_000),
            last_at: Timestamp::from_millis(1_700_000_059_000),
            addresses: vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))],
        },
        Event::AccountImported {
            account,
            username: "legacy.user".into(),
            email: Some("legacy@example.com".into()),
            password_hash: PasswordHash(format!(
                "md5$before$TmFDbA${}",
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
            )),
            last_active_at: Some(Timestamp::from_millis(1_690_000_000_000)),
        },
        Event::LegacyCredentialRetired {
            account,
            reset_digest: SecretDigest([0x21; 32]),
            reset_expires_at: Timestamp::from_millis(1_700_259_200_000),
        },
        Event::PasswordReset {
            account,
            password_hash: PasswordHash(
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA".into(),
            ),
            reset_digest: SecretDigest([0x21; 32]),
        },
        Event::ExternalAccountCreated {
            account,
            username: "octocat".into(),
            email: Some("octocat@example.com".into()),
            provider: "github".into(),
            subject: "583231".into(),
        },
        Event::ExternalIdentityLinked {
            account,
            provider: "google".into(),
            subject: "110169484474386276334".into(),
            state: SecretDigest([0x31; 32]),
            state_expires_at: Timestamp::from_millis(1_700_000_600_000),
        },
        Event::ExternalIdentityUnlinked {
            account,
            provider: "google".into(),
            subject: "110169484474386276334".into(),
        },
        Event::ExternalSignInRecorded {
            account,
            provider: "github".into(),
            state: SecretDigest([0x32; 32]),
            state_expires_at: Timestamp::from_millis(1_700_000_600_000),
            client: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
        },
        Event::WebauthnCredentialRegistered {
            account,
            credential: tessera_core::webauthn::CredentialId(vec![0x5a; 16]),
            name: "YubiKey 5".into(),
            kind: tessera_core::webauthn::CredentialKind::Passkey,
            public_key: r#"{"cred_id":"WlpaWlpaWlpaWlpaWlpaWg","counter":0}"#.into(),
            counter: 0,
            transports: vec!["usb".into(), "nfc".into()],
            discoverable: true,
            user_verified: true,
            backup_eligible: false,
        },
        Event::WebauthnCredentialUsed {
            account,
            credential: tessera_core::webauthn::CredentialId(vec![0x5a; 16]),
            counter: 7,
            user_verified: true,
            backup_state: false,
        },
        Event::WebauthnCounterRegressed {
            account,
            credential: tessera_core::webauthn::CredentialId(vec![0x5a; 16]),
            stored: 7,
            presented: 3,
            accepted: false,
            client: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
        },
        Event::WebauthnCredentialRemoved {
            account,
            credential: tessera_core::webauthn::CredentialId(vec![0x5a; 16]),
            by: Actor::Holder,
        },
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join("events-v1")
}

#[test]
fn every_variant_has_an_example() {
    let kinds: Vec<&str> = examples().iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        Event::KINDS,
        "add an example (and golden file) for every new variant, in order"
    );
}

#[test]
fn golden_bytes_match_and_decode() {
    let bless = std::env::var_os("TESSERA_BLESS").is_some();
    for event in examples() {
        let path = golden_dir().join(format!("{}.hex", event.kind()));
        let bytes = encode_event(&event).expect("examples encode");
        let hex = data_encoding_hex(&bytes);
        match std::fs::read_to_string(&path) {
            Ok(golden) => {
                assert_eq!(
                    golden.trim(),
                    hex,
                    "the encoding of {} changed: add a variant or an upcaster",
                    event.kind()
                );
                let decoded =
                    decode_event(event.kind(), EVENT_SCHEMA, &bytes).expect("golden decodes");
                assert_eq!(decoded, event);
            }
            Err(_) if bless => {
                std::fs::create_dir_all(golden_dir())
                    .expect("golden dir is writable when blessing");
                std::fs::write(&path, format!("{hex}\n"))
                    .expect("golden file is writable when blessing");
            }
            Err(e) => panic!(
                "missing golden file {}: {e} (run with TESSERA_BLESS=1 once)",
                path.display()
            ),
        }
    }
}

#[test]
fn envelope_round_trips_and_rejects_garbage() {
    let mut e = Envelope {
        sequence: 7,
        stream: StreamId("account-x".into()),
        stream_version: 2,
        recorded_at: Timestamp::from_millis(5),
        schema: EVENT_SCHEMA,
        event: examples().remove(1),
        prev_hash: [1; 32],
        hash: [2; 32],
        content_hash: [0; 32],
    };
    // The hash read back from the stored bytes must equal the one computed from the fields:
    // the chain check relies on it to avoid re-encoding.
    e.content_hash = crate::chain::expected_hash(&e).expect("hashes");
    let bytes = encode_envelope(&e).expect("encodes");
    assert_eq!(decode_envelope(&bytes).expect("decodes"), e);
    assert!(matches!(
        decode_envelope(&[]),
        Err(CodecError::Decode { .. })
    ));
    assert!(matches!(
        decode_envelope(&[9, 1, 2]),
        Err(CodecError::UnknownFormat(9))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode_envelope(&longer),
        Err(CodecError::Trailing(_))
    ));
    assert!(decode_envelope(&bytes[..bytes.len() - 3]).is_err());
}

#[test]
fn unknown_schema_is_refused_not_guessed() {
    let bytes = encode_event(&examples()[0]).expect("encodes");
    assert!(matches!(
        decode_event("AccountRegistered", 2, &bytes),
        Err(CodecError::UnknownSchema { .. })
    ));
    assert!(matches!(
        decode_event("PasswordChanged", 1, &bytes),
        Err(CodecError::Decode { .. })
    ));
}

#[test]
fn view_trees_are_indexed_by_their_position() {
    for (i, tree) in ViewTree::ALL.into_iter().enumerate() {
        assert_eq!(tree.index(), i);
    }
}

#[test]
fn token_view_records_round_trip_through_their_trees() {
    use tessera_core::blocklist::{NotBefore, RevokedAccessToken};
    use tessera_core::refresh::{FamilyView, RefreshTokenView};
    use tessera_core::signing_key::PublishedKey;
    use tessera_core::{ViewKey, ViewRecord};
    let account = AccountId::from_bytes(uuid(1));
    let family = FamilyId::from_bytes(uuid(3));
    let jti = TokenId::from_bytes(uuid(4));
    let at = tessera_core::testkit::T0;
    let pairs = vec![
        (
            ViewKey::SigningKey("kid".into()),
            ViewRecord::SigningKey(PublishedKey {
                kid: "kid".into(),
                public_key: [1; 32],
                created_at: at,
                unpublish_at: Some(at),
            }),
        ),
        (
            ViewKey::Family(family),
            ViewRecord::Family(FamilyView {
                id: family,
                account,
                session: None,
                client_id: None,
                scope: Some("s".into()),
                started_at: at,
                expires_at: at,
                generation: 2,
                current: Some(SecretDigest([2; 32])),
                current_expires_at: at,
                revoked_at: None,
            }),
        ),
        (
            ViewKey::RefreshToken(SecretDigest([2; 32])),
            ViewRecord::RefreshToken(RefreshTokenView {
                family,
                generation: 2,
                issued_at: at,
                expires_at: at,
                spent_at: None,
                spent_unused: false,
            }),
        ),
        (
            ViewKey::RevokedAccessToken(jti),
            ViewRecord::RevokedAccessToken(RevokedAccessToken {
                jti,
                account,
                expires_at: at,
            }),
        ),
        (
            ViewKey::NotBefore(account),
            ViewRecord::NotBefore(NotBefore { at }),
        ),
    ];
    for (key, record) in pairs {
        let (tree, bytes) = view_key(&key);
        assert_eq!(decode_view_key(tree, &bytes).expect("key decodes"), key);
        let encoded = encode_view_record(&record).expect("encodes");
        assert_eq!(decode_view_record(tree, &encoded).expect("decodes"), record);
        assert!(decode_view_key(tree, &[1, 2, 3]).is_err() || tree == ViewTree::SigningKeys);
    }
}

/// The enum values added with MFA inside released events keep their encodings: appended,
/// never inserted.
#[test]
fn appended_enum_values_encode_after_the_old_ones() {
    let account = AccountId::from_bytes(uuid(1));
    let throttled = encode_event(&Event::LoginFailed {
        account,
        reason: LoginFailure::Throttled,
        client: None,
    })
    .expect("encodes");
    // Variant 4 (LoginFailed), the account, then reason 2, then None.
    assert_eq!(throttled.first(), Some(&4));
    assert_eq!(&throttled[throttled.len() - 2..], &[2, 0]);
    let ended = encode_event(&Event::SessionEnded {
        session: SessionId::from_bytes(uuid(2)),
        reason: SessionEndReason::MfaDisabled,
    })
    .expect("encodes");
    assert_eq!(ended.last(), Some(&7));
    let revoked = encode_event(&Event::RefreshFamilyRevoked {
        family: FamilyId::from_bytes(uuid(3)),
        reason: FamilyRevokeReason::MfaDisabled,
    })
    .expect("encodes");
    assert_eq!(revoked.last(), Some(&5));
}

#[test]
fn mfa_view_records_round_trip_through_their_trees() {
    use std::collections::BTreeSet;
    use tessera_core::mfa::{ActiveTotp, ChallengeView, MfaView};
    use tessera_core::throttle::Strikes;
    use tessera_core::{ViewKey, ViewRecord};
    let account = AccountId::from_bytes(uuid(1));
    let challenge = ChallengeId::from_bytes(uuid(5));
    let at = tessera_core::testkit::T0;
    let strikes = Strikes {
        failures: 3,
        last_failure_at: at,
    };
    let pairs = vec![
        (
            ViewKey::Mfa(account),
            ViewRecord::Mfa(MfaView {
                account,
                pending: None,
                totp: Some(ActiveTotp {
                    sealed_secret: SealedSecret {
                        key_id: [1; 8],
                        nonce: [2; 24],
                        ciphertext: vec![3; 36],
                    },
                    enabled_at: at,
                    last_step: 9,
                }),
                backup_codes: BTreeSet::from([BackupCodeDigest([4; 32])]),
            }),
        ),
        (
            ViewKey::Challenge(challenge),
            ViewRecord::Challenge(ChallengeView {
                id: challenge,
                account,
                token_digest: SecretDigest([5; 32]),
                mode: LoginMode::Session,
                started_at: at,
                expires_at: at,
                attempts_max: 5,
                failures: 2,
            }),
        ),
        (
            ViewKey::AccountStrikes(account),
            ViewRecord::Strikes(strikes),
        ),
        (
            ViewKey::AddressStrikes(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            ViewRecord::Strikes(strikes),
        ),
        (
            ViewKey::AddressStrikes("2001:db8::".parse().expect("ip")),
            ViewRecord::Strikes(strikes),
        ),
        (
            ViewKey::RegistrationStrikes("2001:db8::".parse().expect("ip")),
            ViewRecord::Strikes(strikes),
        ),
    ];
    for (key, record) in pairs {
        let (tree, bytes) = view_key(&key);
        assert_eq!(decode_view_key(tree, &bytes).expect("key decodes"), key);
        let encoded = encode_view_record(&record).expect("encodes");
        assert_eq!(decode_view_record(tree, &encoded).expect("decodes"), record);
    }
}

#[test]
fn identity_view_records_round_trip_through_their_trees() {
    use tessera_core::identity::{IdentityView, SpentState};
    use tessera_core::view::{IdentityKey, IdentityRecord};
    use tessera_core::{ViewKey, ViewRecord};
    let at = tessera_core::testkit::T0;
    let link = IdentityView {
        provider: "github".into(),
        // A subject may hold any character, a zero byte included: the provider ends first.
        subject: "a\0b/c".into(),
        account: AccountId::from_bytes(uuid(1)),
        linked_at: at,
        last_sign_in_at: Some(at),
    };
    let spent = SpentState {
        digest: SecretDigest([7; 32]),
        expires_at: at,
    };
    let pairs = vec![
        (
            ViewKey::Identity(IdentityKey::Link(
                link.provider.clone(),
                link.subject.clone(),
            )),
            ViewRecord::Identity(IdentityRecord::Link(link)),
        ),
        (
            ViewKey::Identity(IdentityKey::SpentState(spent.digest)),
            ViewRecord::Identity(IdentityRecord::SpentState(spent)),
        ),
    ];
    for (key, record) in pairs {
        let (tree, bytes) = view_key(&key);
        assert_eq!(tree, ViewTree::Identities);
        assert_eq!(decode_view_key(tree, &bytes).expect("key decodes"), key);
        let encoded = encode_view_record(&record).expect("encodes");
        assert_eq!(decode_view_record(tree, &encoded).expect("decodes"), record);
    }
    assert!(decode_view_key(ViewTree::Identities, &[0, b'x']).is_err());
    assert!(decode_view_key(ViewTree::Identities, &[2]).is_err());
}

fn data_encoding_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
