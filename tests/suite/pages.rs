//! The browser pages over plain HTTP: headers, CSRF and same-site refusals, the redirect
//! after a login, the MFA step and its limits, throttling, and open-redirect attempts. The
//! same flows run in a real browser in `browser::`.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tessera_http::HttpConfig;
use tessera_tests::PASSWORD;
use tessera_tests::server::{Answer, Server};

/// What a browser holds between pages: its CSRF cookie and the latest form token.
struct Visit {
    csrf_cookie: String,
    token: String,
}

/// The value of cookie `name` that an answer sets (first match).
fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

fn set_cookie_line<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}"))
}

/// The CSRF token in a page's form.
fn form_token(a: &Answer) -> String {
    let html = String::from_utf8_lossy(&a.body);
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[at..]
        .split('"')
        .next()
        .expect("closing quote")
        .to_owned()
}

fn html(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

fn assert_page(a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{}", html(a));
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    let csp = a.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe"),
        "scripts from this origin only: {csp}"
    );
    // The only script is the passkey one, served from this origin; nothing inline.
    let page = html(a);
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=\"/assets/webauthn.js\"></script>")
            .count(),
        "no inline script on any page"
    );
}

async fn open_login(s: &Server, query: &str) -> (Answer, Visit) {
    let a = s
        .send(Method::GET, &format!("/login{query}"), &[], Bytes::new())
        .await;
    assert_page(&a, StatusCode::OK);
    let visit = Visit {
        csrf_cookie: set_cookie(&a, "__Host-tessera_csrf").expect("a CSRF cookie"),
        token: form_token(&a),
    };
    (a, visit)
}

fn cookies(visit: &Visit, more: &[(&str, &str)]) -> String {
    let mut all = format!("__Host-tessera_csrf={}", visit.csrf_cookie);
    for (k, v) in more {
        all.push_str(&format!("; {k}={v}"));
    }
    all
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded_pairs(pairs)
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A page-login POST as a browser on this site sends it.
async fn post_login(
    s: &Server,
    v: &Visit,
    username: &str,
    password: &str,
    return_to: &str,
) -> Answer {
    let cookie = cookies(v, &[]);
    let origin = format!("http://{}", s.addr);
    s.post_form(
        "/login",
        &form(&[
            ("csrf_token", &v.token),
            ("return_to", return_to),
            ("username", username),
            ("password", password),
        ]),
        &[
            ("cookie", &cookie),
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_is_a_locked_down_accessible_form() {
    let s = Server::start(HttpConfig::default()).await;
    let (a, _) = open_login(&s, "").await;
    let cookie = set_cookie_line(&a, "__Host-tessera_csrf");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let page = html(&a);
    for needle in [
        "<label for=\"username\">",
        "<label for=\"password\">",
        "name=\"username\" type=\"text\" autocomplete=\"username\"",
        "name=\"password\" type=\"password\" autocomplete=\"current-password\"",
        "<form method=\"post\" action=\"/login\">",
        "<html lang=\"en\">",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    // A browser that already has the cookie keeps it.
    let again = s
        .send(
            Method::GET,
            "/login",
            &[(
                "cookie",
                set_cookie_line(&a, "__Host-tessera_csrf")
                    .split(';')
                    .next()
                    .unwrap(),
            )],
            Bytes::new(),
        )
        .await;
    assert!(set_cookie(&again, "__Host-tessera_csrf").is_none());
    assert_eq!(form_token(&again), form_token(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_cross_site_login_form_is_refused_with_a_403_page() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let (_, v) = open_login(&s, "").await;
    let body = |token: &str| {
        form(&[
            ("csrf_token", token),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
    };
    let cookie = cookies(&v, &[]);
    let refusals = [
        // No token at all (login CSRF from a page that cannot read ours).
        s.post_form(
            "/login",
            &form(&[("username", "alice"), ("password", PASSWORD)]),
            &[("cookie", &cookie)],
        )
        .await,
        // A token without the cookie it belongs to.
        s.post_form("/login", &body(&v.token), &[]).await,
        // Someone else's token.
        s.post_form(
            "/login",
            &body("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &[("cookie", &cookie)],
        )
        .await,
        // The right token and cookie, but the form was posted from another site.
        s.post_form(
            "/login",
            &body(&v.token),
            &[("cookie", &cookie), ("origin", "https://evil.example")],
        )
        .await,
        s.post_form(
            "/login",
            &body(&v.token),
            &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        )
        .await,
    ];
    for a in &refusals {
        assert_page(a, StatusCode::FORBIDDEN);
        assert!(
            a.header("set-cookie").is_none(),
            "no session for a forged form"
        );
        assert!(html(a).contains("This form was refused"));
    }
    // None of them reached the login use case.
    assert!(!s.event_kinds().await.contains(&"SessionStarted"));
    let metrics = s.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    assert!(
        html(&metrics).contains("tessera_security_events_total{event=\"cross_site_refused\"} 5"),
        "{}",
        html(&metrics)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_login_sets_the_api_session_and_returns_only_to_local_paths() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    let (_, v) = open_login(&s, "").await;

    let wrong = post_login(&s, &v, "alice", "not the password", "/device").await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert_eq!(
        wrong.header("location"),
        Some("/login?return_to=%2Fdevice&error=credentials")
    );
    assert!(wrong.cookie().is_none());

    let ok = post_login(&s, &v, "alice", PASSWORD, "/device?user_code=BCDF-GHJK").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.header("location"), Some("/device?user_code=BCDF-GHJK"));
    let session = ok.cookie().expect("the session cookie");
    let me = s.with_cookie(Method::GET, "/v1/me", &session).await;
    assert_eq!(me.json()["username"], "alice");
    let line = set_cookie_line(&ok, "__Host-tessera_session");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(line.contains(attr), "{line}");
    }

    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:evil.example",
    ] {
        let a = post_login(&s, &v, "alice", PASSWORD, evil).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{evil:?}");
        assert_eq!(a.header("location"), Some("/"), "{evil:?}");
        // The page offered for a bad target does not carry it either.
        let page = s
            .send(
                Method::GET,
                &format!("/login?return_to={}", encode(evil)),
                &[],
                Bytes::new(),
            )
            .await;
        assert!(
            html(&page).contains("name=\"return_to\" value=\"/\""),
            "{evil:?}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_mfa_step_is_the_api_challenge_with_its_five_attempts() {
    let s = Server::start(HttpConfig::default()).await;
    let alice = s.enrolled("alice").await;
    let (_, v) = open_login(&s, "").await;
    let a = post_login(&s, &v, "alice", PASSWORD, "/").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), Some("/login/mfa"));
    assert!(a.cookie().is_none(), "no session before the second factor");
    let line = set_cookie_line(&a, "__Host-tessera_mfa");
    assert!(
        line.contains("HttpOnly")
            && line.contains("SameSite=Strict")
            && line.contains("Max-Age=300"),
        "{line}"
    );
    let mfa = set_cookie(&a, "__Host-tessera_mfa").unwrap();
    let cookie = cookies(&v, &[("__Host-tessera_mfa", &mfa)]);

    let page = s
        .send(
            Method::GET,
            "/login/mfa",
            &[("cookie", &cookie)],
            Bytes::new(),
        )
        .await;
    assert_page(&page, StatusCode::OK);
    assert!(html(&page).contains("autocomplete=\"one-time-code\""));
    let token = form_token(&page);
    let answer = |code: String| {
        let cookie = cookie.clone();
        let token = token.clone();
        let s = &s;
        async move {
            s.post_form(
                "/login/mfa",
                &form(&[("csrf_token", &token), ("code", &code)]),
                &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
            )
            .await
        }
    };
    // The login form's token does not work here.
    let cross = s
        .post_form(
            "/login/mfa",
            &form(&[("csrf_token", &v.token), ("code", "123456")]),
            &[("cookie", &cookie)],
        )
        .await;
    assert_page(&cross, StatusCode::FORBIDDEN);

    let malformed = answer("12ab".into()).await;
    assert_eq!(
        malformed.header("location"),
        Some("/login/mfa?error=malformed")
    );
    for _ in 0..5 {
        let wrong = answer("000000".into()).await;
        assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    }
    // The challenge is dead after five wrong codes, as at /v1/login/mfa: even the right
    // code starts the login over.
    let dead = answer(s.code(&alice.secret)).await;
    assert_eq!(dead.header("location"), Some("/login?error=expired"));
    assert!(dead.cookie().is_none());
    assert!(set_cookie_line(&dead, "__Host-tessera_mfa").contains("Max-Age=0"));

    // Wrong codes count against the account as at /v1/login/mfa; once its wait is over, a
    // new login and the right code sign in.
    s.advance(16 * 60 * 1000);
    let a = post_login(&s, &v, "alice", PASSWORD, "/").await;
    let mfa = set_cookie(&a, "__Host-tessera_mfa").unwrap();
    let cookie = cookies(&v, &[("__Host-tessera_mfa", &mfa)]);
    let done = s
        .post_form(
            "/login/mfa",
            &form(&[("csrf_token", &token), ("code", &s.code(&alice.secret))]),
            &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", html(&done));
    assert_eq!(done.header("location"), Some("/"));
    let session = done.cookie().expect("signed in");
    assert_eq!(
        s.with_cookie(Method::GET, "/v1/me", &session).await.status,
        StatusCode::OK
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_logins_are_throttled_like_api_logins() {
    let s = Server::start(HttpConfig::default()).await;
    let (_, v) = open_login(&s, "").await;
    let mut limited = None;
    for i in 0..40 {
        let a = post_login(&s, &v, &format!("victim{i}"), "Leaked password 1", "/").await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
        assert_eq!(a.status, StatusCode::SEE_OTHER);
    }
    let limited = limited.expect("an address failing across many accounts is slowed");
    assert_page(&limited, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert!(html(&limited).contains("Too many attempts"));
    // The JSON API sees the same address throttle.
    let api = s.login("victim0", "Leaked password 1").await;
    assert_eq!(api.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_errors_are_pages_with_their_status() {
    let s = Server::start(HttpConfig::default()).await;
    let get_logout = s.send(Method::GET, "/logout", &[], Bytes::new()).await;
    assert_page(&get_logout, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_logout.header("allow"), Some("POST"));
    let not_form = s
        .send(
            Method::POST,
            "/login",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_page(&not_form, StatusCode::BAD_REQUEST);
    // Without a challenge in progress, the MFA page starts over.
    let no_challenge = s.send(Method::GET, "/login/mfa", &[], Bytes::new()).await;
    assert_eq!(no_challenge.status, StatusCode::SEE_OTHER);
    assert_eq!(
        no_challenge.header("location"),
        Some("/login?error=expired")
    );
    let css = s
        .send(Method::GET, "/assets/page.css", &[], Bytes::new())
        .await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_query(redirect_uri: &str, scope: &str, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "notes-app".into()),
        ("redirect_uri", redirect_uri.into()),
        ("scope", scope.into()),
        ("state", state.into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn query_of(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `username` in through the login page; returns the browser's cookies.
async fn page_session(s: &Server, v: &Visit, username: &str) -> String {
    let ok = post_login(s, v, username, PASSWORD, "/").await;
    let session = ok.cookie().expect("signed in");
    cookies(v, &[("__Host-tessera_session", &session)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_device_forms_need_their_token_from_this_site_and_session() {
    let s = Server::start(HttpConfig::default()).await;
    s.register("alice").await;
    s.register("bob").await;
    let redirect = "http://127.0.0.1:9/cb";
    crate::browser::harness::register_client(
        &s,
        "notes-app",
        "Notes App",
        redirect,
        &["openid", "notes.read"],
    )
    .await;
    let (_, v) = open_login(&s, "").await;
    let alice = page_session(&s, &v, "alice").await;
    let query = query_of(&authorize_query(redirect, "openid", "st-123"));

    // Errors before the redirect URI is trusted are pages; later ones go back to the client.
    let untrusted = s
        .send(
            Method::GET,
            &format!("/oauth/authorize?{}", query.replace("9%2Fcb", "9%2Fevil")),
            &[],
            Bytes::new(),
        )
        .await;
    assert_page(&untrusted, StatusCode::BAD_REQUEST);
    assert!(untrusted.header("location").is_none());
    let unknown = s
        .send(
            Method::GET,
            &format!("/oauth/authorize?{}", query.replace("notes-app", "nobody")),
            &[],
            Bytes::new(),
        )
        .await;
    assert_page(&unknown, StatusCode::BAD_REQUEST);
    let bad_type = s
        .send(
            Method::GET,
            &format!(
                "/oauth/authorize?{}",
                query.replace("response_type=code", "response_type=token")
            ),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(bad_type.status, StatusCode::FOUND);
    let location = bad_type.header("location").unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?error=unsupported_response_type"),
        "{location}"
    );
    assert!(location.contains("state=st-123"), "{location}");

    // Without a session: the login page, which comes back here.
    let anonymous = s
        .send(
            Method::GET,
            &format!("/oauth/authorize?{query}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(
        anonymous
            .header("location")
            .unwrap()
            .starts_with("/login?return_to=%2Foauth%2Fauthorize%3F")
    );

    let consent = s
        .send(
            Method::GET,
            &format!("/oauth/authorize?{query}"),
            &[("cookie", &alice)],
            Bytes::new(),
        )
        .await;
    assert_page(&consent, StatusCode::OK);
    assert!(html(&consent).contains("Notes App"));
    let token = form_token(&consent);
    let body = |token: &str, decision: &str| {
        let mut pairs = authorize_query(redirect, "openid", "st-123");
        pairs.push(("decision", decision.into()));
        if !token.is_empty() {
            pairs.push(("csrf_token", token.into()));
        }
        query_of(&pairs)
    };
    // Bob's session in the same browser: alice's consent token is not his.
    let bob = page_session(&s, &v, "bob").await;
    let same_site = ("sec-fetch-site", "same-origin");
    for (cookie, token, extra) in [
        (&alice, "", same_site),
        (&alice, v.token.as_str(), same_site),
        (&bob, token.as_str(), same_site),
        (&alice, token.as_str(), ("origin", "https://evil.example")),
        (&alice, token.as_str(), ("sec-fetch-site", "cross-site")),
    ] {
        let a = s
            .post_form(
                "/oauth/authorize",
                &body(token, "allow"),
                &[("cookie", cookie), extra],
            )
            .await;
        assert_page(&a, StatusCode::FORBIDDEN);
        assert!(a.header("location").is_none());
    }
    assert!(!s.event_kinds().await.contains(&"AuthorizationCodeIssued"));

    let allowed = s
        .post_form(
            "/oauth/authorize",
            &body(&token, "allow"),
            &[("cookie", &alice), same_site],
        )
        .await;
    assert_eq!(allowed.status, StatusCode::SEE_OTHER, "{}", html(&allowed));
    let location = allowed.header("location").unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?code=tac_")
            && location.contains("state=st-123"),
        "{location}"
    );
    let kinds = s.event_kinds().await;
    assert!(kinds.contains(&"ConsentGranted") && kinds.contains(&"AuthorizationCodeIssued"));

    // The device forms: the same rule.
    let device = s
        .send(Method::GET, "/device", &[("cookie", &alice)], Bytes::new())
        .await;
    assert_page(&device, StatusCode::OK);
    let forged = s
        .post_form(
            "/device",
            &form(&[("user_code", "BCDF-GHJK"), ("decision", "approve")]),
            &[("cookie", &alice), same_site],
        )
        .await;
    assert_page(&forged, StatusCode::FORBIDDEN);
    let cross = s
        .post_form(
            "/device",
            &form(&[
                ("csrf_token", &form_token(&device)),
                ("user_code", "BCDF-GHJK"),
            ]),
            &[("cookie", &alice), ("origin", "https://evil.example")],
        )
        .await;
    assert_page(&cross, StatusCode::FORBIDDEN);
    // Signed out: the device page sends the browser to sign in first, and back.
    let anonymous = s
        .send(
            Method::GET,
            "/device?user_code=BCDF-GHJK",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        anonymous.header("location"),
        Some("/login?return_to=%2Fdevice%3Fuser_code%3DBCDF-GHJK")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_must_enrol_mfa_cannot_authorize_a_client_through_the_pages() {
    let mut policy = tessera_tests::policy();
    policy.mfa.required = true;
    let s = Server::start_with_policy(HttpConfig::default(), policy).await;
    s.register("alice").await;
    let redirect = "http://127.0.0.1:9/cb";
    crate::browser::harness::register_client(&s, "notes-app", "Notes App", redirect, &["openid"])
        .await;
    let (_, v) = open_login(&s, "").await;
    let alice = page_session(&s, &v, "alice").await;
    let query = query_of(&authorize_query(redirect, "openid", "st-1"));
    let a = s
        .send(
            Method::GET,
            &format!("/oauth/authorize?{query}"),
            &[("cookie", &alice)],
            Bytes::new(),
        )
        .await;
    assert_page(&a, StatusCode::FORBIDDEN);
    assert!(html(&a).contains("two-step verification"), "{}", html(&a));
    let device = s
        .send(Method::GET, "/device", &[("cookie", &alice)], Bytes::new())
        .await;
    assert_page(&device, StatusCode::FORBIDDEN);
}
