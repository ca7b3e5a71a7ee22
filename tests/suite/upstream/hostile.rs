//! Upstreams that misbehave, as real TCP servers on 127.0.0.1 writing HTTP/1.1 by hand (so
//! they can stall, trickle or flood): every case ends in its own typed error, within the
//! limits, with nothing secret and nothing verbatim from the upstream in the message.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_http::config::ClientSecret;
use tessera_http::upstream::{
    ClientLimits, CodeExchange, Credentials, ExchangeError, FetchError, OAuthErrorCode,
    RootCertStore, TokenAuthMethod, UpstreamClient, UpstreamToken, UpstreamUrl, UrlError,
    UserInfoError, UserInfoMapping, exchange_code, fetch_user_info,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{client, client_with};

const SECRET: &str = "client-secret-never-shown";

/// Serves every connection with `handle`, which gets the request's head and body.
async fn raw_server<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream, String, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move {
                let (head, body) = read_request(&mut stream).await;
                handle(stream, head, body).await;
            });
        }
    });
    addr
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return (String::new(), Vec::new());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    (head, body)
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &str,
) {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

fn url(addr: SocketAddr, path: &str) -> UpstreamUrl {
    UpstreamUrl::parse(&format!("http://{addr}{path}")).unwrap()
}

fn exchange<'a>(token_endpoint: &'a UpstreamUrl, secret: &'a ClientSecret) -> CodeExchange<'a> {
    CodeExchange {
        token_endpoint,
        client_id: "tessera",
        client_secret: secret,
        auth_method: TokenAuthMethod::ClientSecretBasic,
        code: "the-code",
        redirect_uri: "http://127.0.0.1:9/callback",
        code_verifier: "the-verifier-the-verifier-the-verifier-0123",
    }
}

fn limits(total_timeout_ms: u64) -> ClientLimits {
    ClientLimits {
        connect_timeout_ms: 500,
        total_timeout_ms,
        body_bytes_max: 64 * 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_fails_within_the_total_timeout() {
    let addr = raw_server(|stream, _, _| async move {
        // Holds the connection open and says nothing.
        let _open = stream;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    // The error's kind shows the client's own timeout ended it (the server would hold on
    // for 30 s, then close); the outer bound only keeps a hang from stalling the suite.
    let error = tokio::time::timeout(
        Duration::from_secs(25),
        client_with(limits(700)).get(&url(addr, "/user"), Credentials::None),
    )
    .await
    .expect("it never hangs")
    .unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::TimedOut {
                timeout_ms: 700,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("did not answer within 700 ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_counts_against_the_total_timeout() {
    let addr = raw_server(|mut stream, _, _| async move {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{";
        let _ = stream.write_all(head.as_bytes()).await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await;
    // Without the total timeout the body would end short after 10 s: another error.
    let error = tokio::time::timeout(
        Duration::from_secs(25),
        client_with(limits(800)).get(&url(addr, "/jwks"), Credentials::None),
    )
    .await
    .expect("it never hangs")
    .unwrap_err();
    assert!(matches!(error, FetchError::TimedOut { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_refused_at_the_limit_without_being_read_whole() {
    // Declared: refused on the headers alone.
    let declared = raw_server(|mut stream, _, _| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let error = client()
        .get(&url(declared, "/user"), Credentials::None)
        .await
        .unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { .. }), "{error}");

    // Chunked, no length: read up to the limit, then the connection is dropped.
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let streamed = raw_server(move |mut stream, _, _| {
        let counter = counter.clone();
        async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, "x".repeat(1 << 20));
            for _ in 0..256 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                counter.fetch_add(1 << 20, Ordering::SeqCst);
            }
        }
    })
    .await;
    let error = client_with(limits(5_000))
        .get(&url(streamed, "/user"), Credentials::None)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "127.0.0.1:{} answered more than 65536 bytes",
            streamed.port()
        )
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 32 << 20,
        "the upstream got to send {sent} bytes of 256 MiB: the client kept reading"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_is_named_as_unreachable() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = client()
        .get(
            &url(addr, "/.well-known/openid-configuration"),
            Credentials::None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FetchError::Unreachable {
            host: format!("127.0.0.1:{}", addr.port()),
            reason: "connection refused".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_error_answers_become_typed_errors() {
    let addr = raw_server(|mut stream, head, _| async move {
        if head.starts_with("POST /token ") {
            let body = r#"{"error":"invalid_grant","error_description":"The code has expired.\n<script>x</script>"}"#;
            respond(&mut stream, "400 Bad Request", "application/json", body).await;
        } else {
            // GitHub's way: 200 with an error field.
            let body = r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#;
            respond(&mut stream, "200 OK", "application/json", body).await;
        }
    })
    .await;
    let secret = ClientSecret(SECRET.into());
    let token_url = url(addr, "/token");
    let error = exchange_code(&client(), &exchange(&token_url, &secret))
        .await
        .unwrap_err();
    let ExchangeError::OAuth { error: oauth, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(oauth.code, OAuthErrorCode::InvalidGrant);
    let text = error.to_string();
    assert!(
        text.contains("invalid_grant") && !text.contains('\n'),
        "{text}"
    );
    assert!(!text.contains(SECRET));

    let github_url = url(addr, "/login/oauth/access_token");
    let github = exchange_code(&client(), &exchange(&github_url, &secret))
        .await
        .unwrap_err();
    assert!(
        matches!(&github, ExchangeError::OAuth { error, .. } if error.code.as_str().contains("bad_verification_code")),
        "{github}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_and_error_statuses_are_quoted_short_and_escaped() {
    let addr = raw_server(|mut stream, head, _| async move {
        let page = format!("<html>\u{1b}[2J{}</html>", "lorem ipsum ".repeat(200));
        if head.starts_with("POST") {
            respond(&mut stream, "200 OK", "text/html", &page).await;
        } else {
            respond(&mut stream, "502 Bad Gateway", "text/html", &page).await;
        }
    })
    .await;
    let secret = ClientSecret(SECRET.into());
    let token_url = url(addr, "/token");
    let error = exchange_code(&client(), &exchange(&token_url, &secret))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ExchangeError::Fetch(FetchError::NotJson { .. })),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.len() < 400 && !text.contains('\u{1b}'), "{text}");

    let token = UpstreamToken::new("gho_access_token_value".into());
    let user = fetch_user_info(
        &client(),
        &url(addr, "/user"),
        &token,
        &UserInfoMapping::github(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &user,
            UserInfoError::Fetch(FetchError::Status { status: 502, .. })
        ),
        "{user}"
    );
    assert!(!user.to_string().contains("gho_access_token_value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authentication_goes_as_configured() {
    let (seen, mut requests) = mpsc::unbounded_channel::<(String, String)>();
    let addr = raw_server(move |mut stream, head, body| {
        let seen = seen.clone();
        async move {
            let _ = seen.send((head, String::from_utf8_lossy(&body).into_owned()));
            let body = r#"{"access_token":"at-1","token_type":"bearer","scope":"read:user"}"#;
            respond(&mut stream, "200 OK", "application/json", body).await;
        }
    })
    .await;
    let secret = ClientSecret("s3cr:t+/".into());
    let endpoint = url(addr, "/token");
    let mut basic = exchange(&endpoint, &secret);
    let tokens = exchange_code(&client(), &basic).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "at-1");
    assert!(
        !format!("{tokens:?}").contains("at-1"),
        "Debug hides tokens"
    );
    assert!(
        !format!("{basic:?}").contains("s3cr"),
        "Debug hides the secret"
    );
    let (head, body) = requests.recv().await.unwrap();
    // RFC 6749 §2.3.1: each part form-encoded, then Basic.
    let expected = data_encoding::BASE64.encode(b"tessera:s3cr%3At%2B%2F");
    assert!(
        head.contains(&format!("authorization: Basic {expected}")),
        "{head}"
    );
    assert!(body.contains("grant_type=authorization_code"));
    assert!(body.contains("code_verifier=the-verifier"));
    assert!(!body.contains("client_secret"));

    basic.auth_method = TokenAuthMethod::ClientSecretPost;
    exchange_code(&client(), &basic).await.unwrap();
    let (head, body) = requests.recv().await.unwrap();
    assert!(!head.to_ascii_lowercase().contains("authorization:"));
    assert!(body.contains("client_id=tessera") && body.contains("client_secret=s3cr%3At%2B%2F"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_named_as_such() {
    // A plain-HTTP server behind an https URL: the handshake cannot succeed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            respond(&mut stream, "200 OK", "application/json", "{}").await;
        }
    });
    let https = UpstreamUrl::parse(&format!("https://127.0.0.1:{}/jwks", addr.port())).unwrap();
    let error = client().get(&https, Credentials::None).await.unwrap_err();
    assert!(matches!(error, FetchError::Tls { .. }), "{error} {error:?}");
}

#[test]
fn plain_http_is_refused_off_loopback() {
    for bad in [
        "http://192.0.2.10/token",
        "http://idp.example.com/.well-known/openid-configuration",
        "http://[2001:db8::1]/jwks",
    ] {
        assert!(
            matches!(UpstreamUrl::parse(bad), Err(UrlError::NotHttps(_))),
            "{bad}"
        );
    }
    let message = UpstreamUrl::parse("http://192.0.2.10/token")
        .unwrap_err()
        .to_string();
    assert!(message.contains("must use https"), "{message}");
}

/// An https upstream on 127.0.0.1 with a certificate from the test authority in tests/tls
/// (valid for 127.0.0.1 and localhost until 2126).
async fn tls_server() -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = read_request(&mut tls).await;
                respond(&mut tls, "200 OK", "application/json", r#"{"keys":[]}"#).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn test_authority() -> RootCertStore {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tls/ca.pem");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_reached_with_a_trusted_root_and_refused_without() {
    let addr = tls_server().await;
    let trusting = UpstreamClient::with_roots(ClientLimits::default(), test_authority()).unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let jwks = UpstreamUrl::parse(&format!("https://{host}:{}/jwks", addr.port())).unwrap();
        let answer = trusting.get(&jwks, Credentials::None).await.unwrap();
        assert_eq!(answer.status, 200, "{host}");
        assert_eq!(&answer.body[..], br#"{"keys":[]}"#);
    }

    // The same server, to a client that does not trust its authority.
    let jwks = UpstreamUrl::parse(&format!("https://127.0.0.1:{}/jwks", addr.port())).unwrap();
    let error = client().get(&jwks, Credentials::None).await.unwrap_err();
    let FetchError::Tls { reason, .. } = &error else {
        panic!("{error}")
    };
    assert!(reason.contains("UnknownIssuer"), "{error}");
}
