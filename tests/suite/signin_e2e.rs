//! Sign in with an external provider, end to end over real HTTP on 127.0.0.1: a second
//! Tessera server is the upstream OAuth 2 provider (its login page, its consent page, its
//! token endpoint and GET /v1/me as the user-info endpoint), and a small cookie-keeping
//! client plays the browser. Every fault the rules name is tried here: missing, forged and
//! replayed states, another browser's state, another provider's code, an e-mail collision,
//! the last way to sign in, an unknown provider, a disabled account, `link_only`, the
//! account's MFA, and an upstream that is down or too slow.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tessera_http::HttpConfig;
use tessera_http::admin::clients::{self, AddClient};
use tessera_http::config::{ClientSecret, UpstreamConfig};
use tessera_http::upstream::ClientLimits;
use tessera_tests::PASSWORD;
use tessera_tests::server::{Answer, Server};

/// A browser: cookies per host (attributes ignored: every host here is loopback), and
/// redirects followed by hand so that each step can be looked at.
struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    jar: HashMap<String, BTreeMap<String, String>>,
}

fn authority_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

fn html(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden fields of the page's first form.
fn hidden_fields(a: &Answer) -> Vec<(String, String)> {
    let page = html(a);
    let mut out = Vec::new();
    for piece in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = piece.split_once('"').expect("a name");
        let value = rest
            .split_once("value=\"")
            .and_then(|(_, v)| v.split_once('"'))
            .map_or("", |(v, _)| v);
        if !out.iter().any(|(n, _): &(String, String)| n == name) {
            out.push((name.to_owned(), unescape(value)));
        }
    }
    out
}

impl Browser {
    fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            jar: HashMap::new(),
        }
    }

    fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jar.get(&authority_of(url))?.get(name).cloned()
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Answer {
        let host = authority_of(url);
        let mut req = Request::builder().method(method).uri(url);
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", line.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .expect("answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let jar = self.jar.entry(host).or_default();
        for line in headers.get_all("set-cookie").iter() {
            let line = line.to_str().unwrap_or("");
            let Some((name, value)) = line.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if value.is_empty() || line.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        self.send(Method::GET, url, &[], String::new()).await
    }

    async fn post_form(&mut self, url: &str, pairs: &[(String, String)]) -> Answer {
        let origin = format!("http://{}", authority_of(url));
        let body = serde_urlencoded::to_string(pairs).expect("form");
        self.send(
            Method::POST,
            url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &origin),
                ("sec-fetch-site", "same-origin"),
            ],
            body,
        )
        .await
    }

    /// Follows redirects from `a` (answered for `from`) until a page, another status, or a
    /// redirect whose target `stop` accepts.
    async fn follow(
        &mut self,
        mut a: Answer,
        mut from: String,
        stop: &dyn Fn(&str) -> bool,
    ) -> (Answer, String) {
        for _ in 0..12 {
            if !matches!(a.status, StatusCode::FOUND | StatusCode::SEE_OTHER) {
                break;
            }
            let location = a.header("location").expect("a location").to_owned();
            let next = if location.starts_with("http") {
                location
            } else {
                format!("http://{}{location}", authority_of(&from))
            };
            if stop(&next) {
                return (a, next);
            }
            a = self.get(&next).await;
            from = next;
        }
        (a, from)
    }
}

/// The pair of servers: `up` is the upstream provider, `down` signs in through it.
struct Pair {
    up: Server,
    down: Server,
}

fn provider(name: &str, up: &Server, client_id: &str) -> UpstreamConfig {
    UpstreamConfig::tessera(
        name,
        &format!("Tessera {name}"),
        &format!("http://{}", up.addr),
        client_id,
        None,
    )
}

/// A listener that accepts and never answers: an upstream that hangs.
fn hanging_upstream() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

async fn pair() -> Pair {
    let up = Server::start(HttpConfig::default()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let down_addr = listener.local_addr().expect("addr");
    let mut secrets = HashMap::new();
    for (id, only) in [("down-app", None), ("down-app-b", Some("tess-b"))] {
        let redirects = ["tess", "tess-b", "down", "slow"]
            .iter()
            .filter(|p| only.is_none_or(|o| o == **p))
            .map(|p| format!("http://{down_addr}/v1/login/{p}/callback"))
            .collect();
        let done = clients::add(
            &up.engine,
            &up.app.mfa_keys,
            AddClient {
                client_id: id.into(),
                name: Some(format!("Down {id}")),
                public: false,
                redirect_uris: redirects,
                grant_types: vec!["authorization_code".into()],
                scopes: vec!["profile".into()],
                operator: "test".into(),
            },
        )
        .await
        .expect("registers");
        secrets.insert(
            id,
            done.client_secret
                .expect("confidential")
                .as_str()
                .to_owned(),
        );
    }
    let mut b = provider("tess-b", &up, "down-app-b");
    b.first_sign_in = tessera_core::identity::FirstSignIn::LinkOnly;
    let mut down_provider = provider("down", &up, "down-app");
    down_provider.token_url = Some("http://127.0.0.1:1/token".into());
    let mut slow = provider("slow", &up, "down-app");
    slow.token_url = Some(format!("http://{}/token", hanging_upstream()));
    let mut upstreams = vec![provider("tess", &up, "down-app"), b, down_provider, slow];
    for p in &mut upstreams {
        p.client_secret = Some(ClientSecret(secrets[p.client_id.as_str()].clone()));
    }
    let config = HttpConfig {
        upstream_limits: ClientLimits {
            connect_timeout_ms: 500,
            total_timeout_ms: 1_500,
            body_bytes_max: 64 * 1024,
        },
        upstreams,
        ..HttpConfig::default()
    };
    let down = Server::start_on(listener, config, tessera_tests::policy()).await;
    Pair { up, down }
}

impl Pair {
    fn down_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.down.addr)
    }

    /// Starts a sign-in with `provider` in `b`, and goes through the upstream's login (as
    /// `username`) and consent pages; returns the callback URL the upstream sent the browser
    /// to, not yet followed.
    async fn to_callback(&self, b: &mut Browser, provider: &str, username: &str) -> String {
        self.to_callback_from(b, &format!("/v1/login/{provider}"), username)
            .await
    }

    /// [`Pair::to_callback`] from a start path of the caller's (with its `return_to`).
    async fn to_callback_from(&self, b: &mut Browser, path: &str, username: &str) -> String {
        let start = self.down_url(path);
        let a = b.get(&start).await;
        assert_eq!(a.status, StatusCode::FOUND, "{}", html(&a));
        assert!(b.cookie(&start, "__Host-tessera_signin").is_some());
        self.via_upstream(b, a, start, username).await
    }

    /// From the redirect `a` (answered for `from`) to the provider, through its login and
    /// consent pages, to the callback URL it sends the browser to.
    async fn via_upstream(
        &self,
        b: &mut Browser,
        a: Answer,
        from: String,
        username: &str,
    ) -> String {
        let callback = |u: &str| u.contains("/callback");
        let (mut a, mut at) = b.follow(a, from, &callback).await;
        for _ in 0..4 {
            if callback(&at) {
                return at;
            }
            let page = html(&a);
            assert_eq!(a.status, StatusCode::OK, "{page}");
            let mut fields = hidden_fields(&a);
            let action = if page.contains("name=\"password\"") {
                fields.push(("username".into(), username.into()));
                fields.push(("password".into(), PASSWORD.into()));
                format!("http://{}/login", self.up.addr)
            } else if page.contains("name=\"decision\"") {
                fields.push(("decision".into(), "allow".into()));
                format!("http://{}/oauth/authorize", self.up.addr)
            } else {
                panic!("an unexpected upstream page: {page}");
            };
            let posted = b.post_form(&action, &fields).await;
            (a, at) = b.follow(posted, action, &callback).await;
        }
        panic!("never reached the callback");
    }

    /// The whole sign-in: through the upstream, then the callback followed to its end.
    async fn sign_in(&self, b: &mut Browser, provider: &str, username: &str) -> (Answer, String) {
        let callback = self.to_callback(b, provider, username).await;
        let a = b.get(&callback).await;
        (a, callback)
    }

    /// POST /v1/identities/tess-b with `bearer`, through the upstream as dave-up, and the
    /// callback's answer.
    async fn link_as(&self, bearer: &str) -> Answer {
        let mut d = Browser::new();
        let link = d
            .send(
                Method::POST,
                &self.down_url("/v1/identities/tess-b"),
                &[("authorization", &format!("Bearer {bearer}"))],
                String::new(),
            )
            .await;
        assert_eq!(link.status, StatusCode::FOUND, "{}", html(&link));
        let callback = self
            .via_upstream(
                &mut d,
                link,
                self.down_url("/v1/identities/tess-b"),
                "dave-up",
            )
            .await;
        d.get(&callback).await
    }

    async fn me(&self, b: &mut Browser) -> serde_json::Value {
        let a = b.get(&self.down_url("/v1/me")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", html(&a));
        a.json()
    }
}

fn assert_error_page(a: &Answer, status: StatusCode, text: &str) {
    let page = html(a);
    assert_eq!(a.status, status, "{page}");
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.contains(text), "{text:?} not in {page}");
    assert!(!page.contains("127.0.0.1"), "no internals: {page}");
}

async fn register(s: &Server, username: &str, email: &str) {
    let a = s
        .post_json(
            "/v1/accounts",
            json!({"username": username, "password": PASSWORD, "email": email}),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", html(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sign_in_creates_an_account_and_a_replayed_callback_is_refused() {
    let p = pair().await;
    register(&p.up, "octo", "octo@up.example").await;
    let login = html(&Browser::new().get(&p.down_url("/login")).await);
    assert!(
        login.contains("href=\"/v1/login/tess\"") && login.contains("Sign in with Tessera tess"),
        "{login}"
    );

    let mut b = Browser::new();
    let (a, callback) = p.sign_in(&mut b, "tess", "octo").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    assert_eq!(a.header("location"), Some("/"));
    assert!(b.cookie(&callback, "__Host-tessera_session").is_some());
    assert!(
        b.cookie(&callback, "__Host-tessera_signin").is_none(),
        "spent"
    );
    let me = p.me(&mut b).await;
    assert_eq!(me["username"], "octo");
    assert_eq!(me["email"], "octo@up.example");
    let listed = b.get(&p.down_url("/v1/identities")).await.json();
    assert_eq!(listed[0]["provider"], "tess");
    let kinds = p.down.event_kinds().await;
    assert!(kinds.contains(&"ExternalAccountCreated") && kinds.contains(&"ExternalSignInRecorded"));

    // The same callback again, even with the cookie it came with: refused.
    let mut replay = Browser::new();
    let start = p.down_url("/v1/login/tess");
    let mut attacker = Browser::new();
    let fresh = p.to_callback(&mut attacker, "tess", "octo").await;
    let sealed = attacker
        .cookie(&start, "__Host-tessera_signin")
        .expect("cookie");
    // A HEAD (a link checker, a prefetch) neither runs nor spends the callback.
    let head = attacker
        .send(Method::HEAD, &fresh, &[], String::new())
        .await;
    assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.header("allow"), Some("GET"));
    let first = attacker.get(&fresh).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    replay
        .jar
        .entry(authority_of(&start))
        .or_default()
        .insert("__Host-tessera_signin".into(), sealed);
    let again = replay.get(&fresh).await;
    assert_error_page(&again, StatusCode::BAD_REQUEST, "already completed");

    // A sign-in started on the OAuth authorize request's sign-in page goes back to it.
    let authorize = "/oauth/authorize?response_type=code&client_id=notes";
    let page = b
        .get(&p.down_url(&format!(
            "/login?return_to={}",
            authorize.replace('?', "%3F").replace('&', "%26").replace('=', "%3D")
        )))
        .await;
    let button =
        "/v1/login/tess?return_to=%2Foauth%2Fauthorize%3Fresponse_type%3Dcode%26client_id%3Dnotes";
    assert!(
        html(&page).contains(&button.replace('&', "&amp;")),
        "{}",
        html(&page)
    );
    let mut c = Browser::new();
    let callback = p.to_callback_from(&mut c, button, "octo").await;
    let a = c.get(&callback).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    assert_eq!(a.header("location"), Some(authorize));

    // A second sign-in finds the same account.
    let mut other = Browser::new();
    let (a, _) = p.sign_in(&mut other, "tess", "octo").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(p.me(&mut other).await["id"], me["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_foreign_and_cross_provider_states_are_refused() {
    let p = pair().await;
    register(&p.up, "mallory", "m@up.example").await;
    let mut victim = Browser::new();
    let callback = p.to_callback(&mut victim, "tess", "mallory").await;
    let (base, query) = callback.split_once('?').expect("a query");

    // No cookie at all: a callback this browser never started (login CSRF).
    let mut stranger = Browser::new();
    let a = stranger.get(&callback).await;
    assert_error_page(&a, StatusCode::BAD_REQUEST, "not started in this browser");
    // Another browser's sign-in: its own cookie does not match this state.
    let mut other = Browser::new();
    other.get(&p.down_url("/v1/login/tess")).await;
    let a = other.get(&callback).await;
    assert_error_page(&a, StatusCode::BAD_REQUEST, "cannot be completed");
    // A forged state with the right cookie.
    let code = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("a code");
    let a = victim
        .get(&format!("{base}?code={code}&state=forged"))
        .await;
    assert_error_page(&a, StatusCode::BAD_REQUEST, "cannot be completed");
    // No state.
    let a = victim.get(&format!("{base}?code={code}")).await;
    assert_error_page(&a, StatusCode::BAD_REQUEST, "cannot be completed");
    // The code and state of one provider at another provider's callback.
    let crossed = callback.replace("/v1/login/tess/callback", "/v1/login/tess-b/callback");
    let a = victim.get(&crossed).await;
    assert_error_page(&a, StatusCode::BAD_REQUEST, "cannot be completed");
    assert!(
        !p.down
            .event_kinds()
            .await
            .contains(&"ExternalSignInRecorded")
    );
    // The failures counted against the address like failed logins.
    assert!(
        p.down
            .event_kinds()
            .await
            .contains(&"UnknownAccountLoginFailed")
    );

    // An unknown provider is a 404 page.
    let a = victim.get(&p.down_url("/v1/login/nope")).await;
    assert_error_page(&a, StatusCode::NOT_FOUND, "Page not found");
    let a = victim
        .get(&p.down_url("/v1/login/nope/callback?code=x&state=y"))
        .await;
    assert_error_page(&a, StatusCode::NOT_FOUND, "Page not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_of_a_local_account_is_never_linked_and_link_only_refuses_a_first_sign_in() {
    let p = pair().await;
    register(&p.down, "carol", "carol@example.com").await;
    register(&p.up, "carol-up", "Carol@Example.com").await;
    let mut b = Browser::new();
    let (a, _) = p.sign_in(&mut b, "tess", "carol-up").await;
    assert_error_page(&a, StatusCode::CONFLICT, "Sign in to that account with its");
    assert!(
        !p.down
            .event_kinds()
            .await
            .contains(&"ExternalAccountCreated")
    );

    register(&p.up, "newbie", "newbie@up.example").await;
    let mut b = Browser::new();
    let (a, _) = p.sign_in(&mut b, "tess-b", "newbie").await;
    assert_error_page(
        &a,
        StatusCode::FORBIDDEN,
        "No account is linked to this identity",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_unlinking_the_last_way_in_a_disabled_account_and_mfa() {
    let p = pair().await;
    register(&p.up, "erin", "erin@up.example").await;
    // A first sign-in: an account with no password, whose only way in is this identity.
    let mut b = Browser::new();
    let (a, _) = p.sign_in(&mut b, "tess", "erin").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    let origin = format!("http://{}", p.down.addr);
    let unlink = b
        .send(
            Method::DELETE,
            &p.down_url("/v1/identities/tess"),
            &[("origin", &origin)],
            String::new(),
        )
        .await;
    assert_eq!(unlink.status, StatusCode::CONFLICT, "{}", html(&unlink));
    assert_eq!(unlink.json()["code"], 8010);

    // A password account with MFA links the identity through the provider.
    let dave = p.down.enrolled("dave").await;
    register(&p.up, "dave-up", "dave@up.example").await;
    let linked = p.link_as(&dave.bearer).await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", html(&linked));
    assert!(
        p.down
            .event_kinds()
            .await
            .contains(&"ExternalIdentityLinked")
    );

    // Signing in with the linked identity (a link_only provider) still asks for dave's code.
    let mut e = Browser::new();
    let (a, _) = p.sign_in(&mut e, "tess-b", "dave-up").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    assert!(
        a.header("location")
            .is_some_and(|l| l.starts_with("/login/mfa")),
        "{:?}",
        a.header("location")
    );
    assert!(
        e.cookie(&p.down_url("/"), "__Host-tessera_session")
            .is_none()
    );
    assert!(e.cookie(&p.down_url("/"), "__Host-tessera_mfa").is_some());

    // The same identity cannot be linked to a second account.
    let frank = p.down.enrolled("frank").await;
    let refused = p.link_as(&frank.bearer).await;
    assert_error_page(&refused, StatusCode::CONFLICT, "another account");

    // A disabled account cannot sign in externally.
    let erin = p.me(&mut b).await["id"].as_str().expect("id").to_owned();
    p.down
        .engine
        .execute(tessera_core::account::DisableAccount {
            account: tessera_core::AccountId::parse(&erin).expect("uuid"),
            by: tessera_core::Actor::Operator { name: "t".into() },
        })
        .await
        .expect("runs")
        .reply
        .expect("disabled");
    let mut g = Browser::new();
    let (a, _) = p.sign_in(&mut g, "tess", "erin").await;
    assert_error_page(&a, StatusCode::FORBIDDEN, "disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_or_hangs_gives_a_clear_page_within_the_timeout() {
    let p = pair().await;
    for provider in ["down", "slow"] {
        let mut b = Browser::new();
        let start = p.down_url(&format!("/v1/login/{provider}"));
        let a = b.get(&start).await;
        assert_eq!(a.status, StatusCode::FOUND);
        let location = a.header("location").expect("to the provider");
        let state = location
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("state="))
            .expect("a state");
        // The page comes within the client's timeout (1.5 s here), never a hang.
        let a = tokio::time::timeout(
            Duration::from_secs(10),
            b.get(&p.down_url(&format!(
                "/v1/login/{provider}/callback?code=abc&state={state}"
            ))),
        )
        .await
        .unwrap_or_else(|_| panic!("{provider}: no answer"));
        assert_error_page(&a, StatusCode::BAD_GATEWAY, "did not answer");
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the external provider stamps its tokens with the wall clock"
)]
fn wall_clock() -> tessera_core::Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tessera_core::Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap())
}

/// Starts a sign-in with `corp` in `b` and completes the provider's login as `login`; the
/// callback URL, not yet followed.
async fn oidc_sign_in(
    b: &mut Browser,
    op: &tessera_tests::oidc_provider::OidcProvider,
    down: std::net::SocketAddr,
    login: &str,
) -> String {
    let a = b
        .get(&format!("http://{down}/v1/login/corp?return_to=/"))
        .await;
    assert_eq!(a.status, StatusCode::FOUND, "{}", html(&a));
    let authorization = a.header("location").expect("to the provider").to_owned();
    assert!(authorization.contains("code_challenge_method=S256"));
    assert!(authorization.contains("nonce="));
    op.sign_in(
        &authorization,
        &format!("http://{down}/v1/login/corp/callback"),
        login,
    )
    .await
}

/// Sign in through an independent OpenID Connect provider (npm `oidc-provider`): discovery,
/// the code exchange, the ID token against its keys; a key rotation at the provider; and
/// a callback replayed after it succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_through_an_openid_connect_provider_survives_its_key_rotation() {
    use tessera_tests::oidc_provider::{CLIENT_ID, CLIENT_SECRET, OidcProvider, Options};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let down_addr = listener.local_addr().expect("addr");
    let callback_prefix = format!("http://{down_addr}/v1/login/corp/callback");
    let Some(mut op) = OidcProvider::start(Options::new(&callback_prefix)).await else {
        return;
    };
    let corp = UpstreamConfig {
        trusted_for_mfa: true,
        ..UpstreamConfig::oidc(
            "corp",
            "Corp SSO",
            &op.issuer,
            CLIENT_ID,
            Some(ClientSecret(CLIENT_SECRET.into())),
        )
    };
    let config = HttpConfig {
        upstreams: vec![corp],
        ..HttpConfig::default()
    };
    let down = Server::start_on(listener, config, tessera_tests::policy()).await;
    // The provider stamps its tokens with the wall clock: the server's clock goes there.
    down.advance(wall_clock().since(tessera_tests::T0));
    let url = |path: &str| format!("http://{down_addr}{path}");

    let mut b = Browser::new();
    let callback = oidc_sign_in(&mut b, &op, down_addr, "alice").await;
    let a = b.get(&callback).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    let me = b.get(&url("/v1/me")).await;
    assert_eq!(me.status, StatusCode::OK, "{}", html(&me));
    let alice = me.json()["id"].clone();

    // The same callback again in the same browser: spent.
    let mut replay = Browser::new();
    replay.jar = b.jar.clone();
    replay
        .jar
        .get_mut(&authority_of(&callback))
        .expect("cookies")
        .remove("__Host-tessera_session");
    let again = replay.get(&callback).await;
    assert!(again.status == StatusCode::BAD_REQUEST, "{}", html(&again));

    // An account with MFA links a corp identity. The provider is trusted for MFA, but its
    // ID token says only `pwd`: signing in with it still asks for the account's code.
    let dave = down.enrolled("dave").await;
    let mut d = Browser::new();
    let link = d
        .send(
            Method::POST,
            &url("/v1/identities/corp"),
            &[("authorization", &format!("Bearer {}", dave.bearer))],
            String::new(),
        )
        .await;
    assert_eq!(link.status, StatusCode::FOUND, "{}", html(&link));
    let authorization = link.header("location").expect("to the provider").to_owned();
    let callback = op
        .sign_in(
            &authorization,
            &format!("http://{down_addr}/v1/login/corp/callback"),
            "dave-corp",
        )
        .await;
    let linked = d.get(&callback).await;
    assert_eq!(linked.status, StatusCode::SEE_OTHER, "{}", html(&linked));
    let mut e = Browser::new();
    let callback = oidc_sign_in(&mut e, &op, down_addr, "dave-corp").await;
    let a = e.get(&callback).await;
    assert!(
        a.header("location")
            .is_some_and(|l| l.starts_with("/login/mfa")),
        "{:?} {}",
        a.header("location"),
        html(&a)
    );

    // The provider rotates its key: the next ID token has an unknown kid, the cache
    // refetches the key set once, and the same subject finds the same account.
    op.rotate_key().await;
    // An unknown kid refetches the key set at most once per 30 s (the cache's floor).
    down.advance(31_000);
    let mut c = Browser::new();
    let callback = oidc_sign_in(&mut c, &op, down_addr, "alice").await;
    let a = c.get(&callback).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", html(&a));
    let me = c.get(&url("/v1/me")).await;
    assert_eq!(me.json()["id"], alice);
    down.stop().await;
}
