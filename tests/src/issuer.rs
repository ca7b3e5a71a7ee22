//! A provider's signing side for the ID-token tests and the benchmark: signing keys made
//! at run time (RSA 2048, P-256, Ed25519, with aws-lc-rs), ID tokens signed with them by
//! jsonwebtoken, and a small real HTTP server on 127.0.0.1 that publishes the discovery
//! document and the key set, counts the key-set requests, and can rotate its keys.
//!
//! The end-to-end tests use an independent provider ([`crate::oidc_provider`]); this one
//! exists where a test must craft the faulty tokens a real provider never issues.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use bytes::Bytes;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A private signing key, its public JWK and the algorithm it signs with.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public half as a JWK (with `kid`, `alg` and `use`).
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64u(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

impl SigningKey {
    /// A fresh RSA 2048 key signing `alg` (RS256 or PS256).
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("an RSA key");
        let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().expect("PKCS#8");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            BASE64.encode(der.as_ref())
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA signing key");
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero();
        let e = public.exponent().big_endian_without_leading_zero();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "kid": kid, "alg": format!("{alg:?}"),
            "n": b64u(n), "e": b64u(e),
        });
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn ec(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
        let der = pair.to_pkcs8v1().expect("PKCS#8");
        let encoding = EncodingKey::from_ec_der(der.as_ref());
        let point = pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "kid": kid, "alg": "ES256",
            "x": b64u(x), "y": b64u(y),
        });
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding,
            jwk,
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("an Ed25519 key");
        let der = pair.to_pkcs8v1().expect("PKCS#8");
        let encoding = EncodingKey::from_ed_der(der.as_ref());
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid, "alg": "EdDSA",
            "x": b64u(pair.public_key().as_ref()),
        });
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding,
            jwk,
        }
    }

    /// `claims` signed with this key, the header naming its `kid` and `alg`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signs")
    }
}

/// The claims of a good ID token from `issuer` for `client_id` with `nonce`, issued at
/// `now_secs` and valid for five minutes.
pub fn id_token_claims(issuer: &str, client_id: &str, nonce: &str, now_secs: u64) -> Value {
    json!({
        "iss": issuer,
        "sub": "248289761001",
        "aud": client_id,
        "exp": now_secs + 300,
        "iat": now_secs,
        "nonce": nonce,
        "email": "jane@example.test",
        "email_verified": true,
        "name": "Jane Doe",
        "preferred_username": "jane",
        "amr": ["pwd", "mfa"],
        "acr": "urn:example:loa:2",
    })
}

struct Published {
    keys: Vec<Value>,
    cache_control: Option<String>,
}

/// A local issuer: discovery and JWKS over HTTP on 127.0.0.1. Stops when dropped.
pub struct LocalIssuer {
    pub addr: SocketAddr,
    published: Arc<Mutex<Published>>,
    jwks_requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LocalIssuer {
    /// Starts serving `keys`' public halves.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let published = Arc::new(Mutex::new(Published {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            cache_control: Some("public, max-age=600".into()),
        }));
        let jwks_requests = Arc::new(AtomicU64::new(0));
        let task = {
            let published = published.clone();
            let jwks_requests = jwks_requests.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let published = published.clone();
                    let jwks_requests = jwks_requests.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let answer = answer(addr, &req, &published, &jwks_requests);
                            async move { Ok::<_, Infallible>(answer) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            addr,
            published,
            jwks_requests,
            task,
        }
    }

    /// The issuer identifier (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The key-set URL.
    pub fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Publishes exactly `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.published.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// The `Cache-Control` of the key set (`None`: no header).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.published.lock().unwrap().cache_control = value.map(str::to_owned);
    }

    /// Requests for the key set so far.
    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(Ordering::SeqCst)
    }
}

fn answer(
    addr: SocketAddr,
    req: &Request<hyper::body::Incoming>,
    published: &Mutex<Published>,
    jwks_requests: &AtomicU64,
) -> Response<Full<Bytes>> {
    let base = format!("http://{addr}");
    let (body, cache_control) = match req.uri().path() {
        "/.well-known/openid-configuration" => (
            json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/auth"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/me"),
                "jwks_uri": format!("{base}/jwks"),
                "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
                "code_challenge_methods_supported": ["S256"],
            }),
            None,
        ),
        "/jwks" => {
            jwks_requests.fetch_add(1, Ordering::SeqCst);
            let p = published.lock().unwrap();
            (json!({ "keys": p.keys }), p.cache_control.clone())
        }
        _ => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
    };
    let mut response = Response::builder().header("content-type", "application/json");
    if let Some(cc) = cache_control {
        response = response.header("cache-control", cc);
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
