//! Passkeys and security keys in a real browser: Chromium's virtual authenticator (the
//! WebDriver WebAuthn extension) answers `navigator.credentials`, as a platform
//! authenticator or a USB key would after the user's touch and PIN.
//!
//! Chromium refuses an IP address as a relying-party id, so the pages are opened as
//! `http://localhost:<port>` (a secure context, like `127.0.0.1`); a page on `127.0.0.1`
//! is then another site.

use serde_json::{Value, json};

use super::harness::{Browser, Callback, VirtualAuthenticatorOptions};

/// Creates a credential for `rp_id` from the page the browser is on; returns the credential
/// id, or the name of the DOMException the browser threw.
const CREATE: &str = r#"
const [rpId, residentKey] = arguments;
return navigator.credentials.create({ publicKey: {
    rp: { id: rpId, name: "Test" },
    user: { id: new Uint8Array([1, 2, 3, 4]), name: "ada", displayName: "Ada" },
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    pubKeyCredParams: [{ type: "public-key", alg: -7 }],
    authenticatorSelection: { residentKey, userVerification: "required" },
    attestation: "none",
}}).then(c => ({ id: c.id, type: c.type }), e => ({ error: e.name }));
"#;

/// Asks for an assertion for `rp_id` with an empty allow list (a discoverable credential);
/// returns the credential id, or the name of the DOMException the browser threw.
const GET: &str = r#"
const [rpId] = arguments;
return navigator.credentials.get({ publicKey: {
    rpId,
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    userVerification: "required",
}}).then(c => ({ id: c.id, type: c.type }), e => ({ error: e.name }));
"#;

async fn run(b: &Browser, script: &str, args: Vec<Value>) -> Value {
    b.client
        .execute(script, args)
        .await
        .expect("the script runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_virtual_authenticator_makes_lists_and_drops_credentials() {
    let Some(mut b) = Browser::start("webauthn_virtual").await else {
        return;
    };
    let site = Callback::start().await;
    *site.attack_page.lock().unwrap() =
        "<!doctype html><title>Relying party</title><h1>A relying party</h1>".into();
    let port = site.addr.port();

    let passkeys = b
        .add_virtual_authenticator(VirtualAuthenticatorOptions::passkey())
        .await;
    b.goto(&format!("http://localhost:{port}/attack")).await;
    b.shot("page").await;
    let made = run(&b, CREATE, vec![json!("localhost"), json!("required")]).await;
    let id = made["id"].as_str().unwrap_or_else(|| panic!("{made}"));

    let held = b.virtual_credentials(&passkeys).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].credential_id, id);
    assert!(held[0].is_resident_credential);
    assert_eq!(held[0].rp_id.as_deref(), Some("localhost"));
    assert_eq!(held[0].user_handle.as_deref(), Some("AQIDBA"));
    let count = held[0].sign_count;

    let used = run(&b, GET, vec![json!("localhost")]).await;
    assert_eq!(used["id"].as_str(), Some(id), "{used}");
    assert!(b.virtual_credentials(&passkeys).await[0].sign_count > count);

    // Without user verification the authenticator answers no request that requires it.
    b.set_user_verified(&passkeys, false).await;
    let refused = run(&b, GET, vec![json!("localhost")]).await;
    assert_eq!(refused["error"], "NotAllowedError", "{refused}");
    b.set_user_verified(&passkeys, true).await;

    // Another site cannot even ask for our relying party's credentials: its origin's host
    // is not the rp id nor below it.
    b.goto(&format!("http://127.0.0.1:{port}/attack")).await;
    let foreign = run(&b, GET, vec![json!("localhost")]).await;
    assert_eq!(foreign["error"], "SecurityError", "{foreign}");

    b.remove_virtual_authenticator(passkeys).await;
    let key = b
        .add_virtual_authenticator(VirtualAuthenticatorOptions::security_key())
        .await;
    b.goto(&format!("http://localhost:{port}/attack")).await;
    let made = run(&b, CREATE, vec![json!("localhost"), json!("discouraged")]).await;
    assert!(made["id"].is_string(), "{made}");
    let held = b.virtual_credentials(&key).await;
    assert_eq!(held.len(), 1);
    assert!(!held[0].is_resident_credential);
    // The passkey went with its authenticator: an empty allow list finds nothing.
    let nothing = run(&b, GET, vec![json!("localhost")]).await;
    assert_eq!(nothing["error"], "NotAllowedError", "{nothing}");

    b.close().await;
}
