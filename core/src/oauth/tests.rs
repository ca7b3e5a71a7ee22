//! Unit tests of the pure OAuth rules: redirect URI matching, PKCE, scopes, user codes.

use proptest::prelude::*;

use super::authorize::{s256, verifier_well_formed};
use super::client::{check_redirect_uri, redirect_uri_matches};
use super::device::{USER_CODE_ALPHABET, normalise_user_code};
use super::{percent_encode, scope, with_query};

#[test]
fn s256_matches_rfc7636_appendix_b() {
    assert_eq!(
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn verifiers_are_43_to_128_unreserved_characters() {
    assert!(verifier_well_formed(&"a".repeat(43)));
    assert!(verifier_well_formed(&"Z9-._~".repeat(22)[..128]));
    assert!(!verifier_well_formed(&"a".repeat(42)));
    assert!(!verifier_well_formed(&"a".repeat(129)));
    for bad in ['+', '/', '=', ' ', '%', 'é'] {
        assert!(
            !verifier_well_formed(&format!("{}{bad}", "a".repeat(43))),
            "{bad}"
        );
    }
}

#[test]
fn redirect_uris_match_exactly_but_for_a_loopback_port() {
    let r = "https://app.example/cb";
    assert!(redirect_uri_matches(r, r));
    for p in [
        "https://app.example/cb/",
        "https://App.example/cb",
        "https://app.example/cb?a=1",
        "https://app.example/cb#f",
        "https://app.example@evil/cb",
        "https://app.example/cb/..;/x",
        "https://app.example:443/cb",
    ] {
        assert!(!redirect_uri_matches(r, p), "{p}");
    }
    let loopback = "http://127.0.0.1/cb";
    for p in [
        "http://127.0.0.1:1/cb",
        "http://127.0.0.1:65535/cb",
        loopback,
    ] {
        assert!(redirect_uri_matches(loopback, p), "{p}");
    }
    for p in [
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:65536/cb",
        "http://127.0.0.1:80@evil/cb",
        "http://127.0.0.1.evil/cb",
        "http://127.0.0.1:80/cb/",
        "http://127.0.0.1:/cb",
        "http://localhost:80/cb",
    ] {
        assert!(!redirect_uri_matches(loopback, p), "{p}");
    }
    assert!(redirect_uri_matches(
        "http://[::1]:8/cb",
        "http://[::1]:9000/cb"
    ));
}

#[test]
fn registration_refuses_uris_that_cannot_be_matched_safely() {
    for ok in [
        "https://app.example/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:4000/",
        "com.example.app:/oauth2redirect",
    ] {
        assert!(check_redirect_uri(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "https://*.example/cb",
        "https://app.example/cb#x",
        "https://u@app.example/cb",
        "http://app.example/cb",
        "https://app.example/a/../b",
        "https://app.example/a/..;/b",
        "https://app.example/a b",
        "https:\\\\app.example",
        "javascript:alert(1)",
        "cb",
    ] {
        assert!(check_redirect_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn scopes_are_parsed_canonically_and_limited() {
    let allowed = scope::parse("read write").expect("valid");
    assert_eq!(
        scope::join(&scope::within(Some("write read read"), &allowed).expect("within")),
        "read write"
    );
    assert_eq!(scope::within(None, &allowed), Some(allowed.clone()));
    assert!(scope::within(Some("read admin"), &allowed).is_none());
    assert!(scope::within(Some("read  write"), &allowed).is_none());
    assert!(scope::within(Some(""), &allowed).is_none());
    assert!(scope::parse("a\"b").is_none());
    assert!(scope::parse("a\\b").is_none());
}

#[test]
fn user_codes_are_accepted_in_any_case_with_any_punctuation() {
    assert_eq!(
        normalise_user_code("bcdf-ghjk").as_deref(),
        Some("BCDFGHJK")
    );
    assert_eq!(
        normalise_user_code(" BC DF.GH_JK ").as_deref(),
        Some("BCDFGHJK")
    );
    assert!(normalise_user_code("BCDF-GHJA").is_none(), "a vowel");
    assert!(normalise_user_code("BCDF-GHJ").is_none(), "too short");
    assert!(normalise_user_code("BCDF-GHJKL").is_none(), "too long");
    assert!(normalise_user_code("BCDF-GHJ0").is_none(), "a digit");
    assert_eq!(USER_CODE_ALPHABET.len(), 20);
    assert!(
        !USER_CODE_ALPHABET
            .iter()
            .any(|c| b"AEIOUY01LIO".contains(c) && *c != b'L')
    );
}

#[test]
fn query_parameters_are_appended_and_encoded() {
    assert_eq!(
        with_query("https://a/cb", &[("code", "x y"), ("state", "&=")]),
        "https://a/cb?code=x%20y&state=%26%3D"
    );
    assert_eq!(
        with_query("https://a/cb?k=v", &[("iss", "https://i")]),
        "https://a/cb?k=v&iss=https%3A%2F%2Fi"
    );
    assert_eq!(percent_encode("A-z_.~"), "A-z_.~");
}

proptest! {
    /// Anything that is not the registered string matches only when both are loopback URIs
    /// that differ in the port alone.
    #[test]
    fn only_the_loopback_port_may_differ(
        path in "/[a-z]{0,8}",
        port in 1u16..,
        junk in "[a-zA-Z0-9@:/?#.;*-]{1,12}",
    ) {
        let registered = format!("http://127.0.0.1{path}");
        let with_port = format!("http://127.0.0.1:{port}{path}");
        prop_assert!(redirect_uri_matches(&registered, &with_port));
        let tampered = format!("{with_port}{junk}");
        prop_assert!(!redirect_uri_matches(&registered, &tampered));
        let https = format!("https://app.example{path}");
        let other = format!("{https}{junk}");
        prop_assert!(!redirect_uri_matches(&https, &other));
    }

    /// Every generated user code normalises to itself, and mangling its case or adding
    /// dashes and spaces does not change it.
    #[test]
    fn user_codes_survive_case_and_punctuation(indices in proptest::collection::vec(0usize..20, 8)) {
        let code: String = indices
            .iter()
            .filter_map(|i| USER_CODE_ALPHABET.get(*i).map(|b| char::from(*b)))
            .collect();
        let typed = format!(" {}-{} ", code[..4].to_lowercase(), &code[4..]);
        prop_assert_eq!(normalise_user_code(&typed), Some(code));
    }
}
