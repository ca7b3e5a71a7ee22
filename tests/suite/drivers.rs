//! One path per use case: the HTTP adapter and the simulator build the same command from the
//! same input, because both run the use case's plan and its argon2 half
//! (`tessera_core::usecase`) and differ only in where the hashing runs.

use std::sync::Arc;

use tessera_core::password::{Verification, verify};
use tessera_core::usecase::{ChangePasswordRequest, LoginRequest, RegisterRequest};
use tessera_core::{LoginMode, Rejection};
use tessera_http::{App, HttpConfig};
use tessera_simulator::world::World;
use tessera_tests::{NEW_PASSWORD, PASSWORD, policy};

/// An HTTP adapter over the simulator world's own engine, signing with a key the world's
/// engine has recorded.
fn adapter_over(world: &World, dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> App {
    let keys = tessera_storage::keys::KeyStore::open(dir).expect("key store opens");
    let signer = keys
        .write(&zeroize::Zeroizing::new([9u8; 32]))
        .expect("a key file");
    let added = world
        .engine()
        .execute_blocking(signer.add_command())
        .expect("the engine answers");
    assert!(added.reply.is_ok(), "the adapter's key is recorded");
    let mfa_keys = keys
        .mfa_keys_or_create(&zeroize::Zeroizing::new([3u8; 32]))
        .expect("an MFA key");
    let signing = rt
        .block_on(tessera_http::signing::Signing::start(world.engine(), keys))
        .expect("the recorded key loads");
    App::new(
        world.engine().clone(),
        HttpConfig::default(),
        Arc::new(signing),
        mfa_keys,
        tessera_tests::workload::api_key_pepper(),
    )
    .expect("valid config")
}

fn login(username: &str, password: &str, mode: LoginMode) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: password.into(),
        mode,
        client: Some("192.0.2.7".parse().expect("literal")),
        supersedes: None,
    }
}

#[test]
fn the_http_adapter_and_the_simulator_build_the_same_commands() {
    let mut world = World::new(7, policy(), vec![], None).expect("a world");
    let alice = world
        .register("alice", PASSWORD)
        .expect("no crash")
        .expect("registered");
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let app = adapter_over(&world, dir.path(), &rt);

    // Logins: right and wrong passwords, an unknown name (checked against the decoy), both
    // modes. No hash is stale, so no salt is drawn and the commands must be equal.
    let cases = [
        ("alice", PASSWORD, LoginMode::Session),
        ("ALICE", PASSWORD, LoginMode::Token),
        ("alice", "Wrong horse 9 battery", LoginMode::Session),
        ("mallory", PASSWORD, LoginMode::Token),
    ];
    for (username, password, mode) in cases {
        let over_http = rt
            .block_on(app.prepare(login(username, password, mode)))
            .expect("the adapter prepares a login");
        let in_simulator = world
            .prepare(login(username, password, mode))
            .expect("the simulator prepares a login");
        assert_eq!(over_http, in_simulator, "{username} {mode:?}");
    }

    // A password change: the check is the same; the new hashes differ only by their salt
    // (the OS's in the adapter, the seed's in the simulator).
    let change = || ChangePasswordRequest {
        account: alice,
        current_password: PASSWORD.into(),
        new_password: NEW_PASSWORD.into(),
        current_session: None,
        client: None,
    };
    let over_http = rt.block_on(app.prepare(change())).expect("prepared");
    let in_simulator = world.prepare(change()).expect("prepared");
    assert_eq!(over_http.check, in_simulator.check);
    for hash in [&over_http.new_hash, &in_simulator.new_hash] {
        assert!(matches!(
            verify(NEW_PASSWORD, hash, &policy().argon2),
            Verification::Match { stale: false }
        ));
    }

    // A registration: the same account, each with a hash of the same password.
    let register = || RegisterRequest {
        username: "bob".into(),
        email: Some("bob@example.com".into()),
        password: PASSWORD.into(),
        client: None,
    };
    let over_http = rt.block_on(app.prepare(register())).expect("prepared");
    let in_simulator = world.prepare(register()).expect("prepared");
    assert_eq!(
        (&over_http.username, &over_http.email),
        (&in_simulator.username, &in_simulator.email)
    );
    let hash = over_http
        .password_hash
        .as_ref()
        .expect("a free name is hashed");
    assert!(matches!(
        verify(PASSWORD, hash, &policy().argon2),
        Verification::Match { .. }
    ));

    // And the same refusal before the writer for a taken name.
    let taken = || RegisterRequest {
        username: "Alice".into(),
        email: None,
        password: PASSWORD.into(),
        client: None,
    };
    assert!(rt.block_on(app.prepare(taken())).is_err());
    assert_eq!(world.prepare(taken()).err(), Some(Rejection::UsernameTaken));
    drop(app);
    world.shutdown();
}
