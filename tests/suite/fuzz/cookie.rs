//! Target: finding the session cookie in a request's `Cookie` headers
//! (`auth::session_cookie`), then looking the value up as the session path does
//! (`session::authenticate`).
//!
//! Half the cases are arbitrary header bytes, mutated from real `Cookie` headers; the other
//! half are well-formed cookie lists split over one to three headers, with near-miss names,
//! whose answer is known: the first cookie named exactly `__Host-tessera_session`.

use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::secret::SecretDigest;
use tessera_core::session::{SessionView, authenticate};
use tessera_core::{AccountId, SessionId, Timestamp, ViewKey, ViewRecord, Views};
use tessera_http::auth::{SESSION_COOKIE, session_cookie};

use super::{Bytes, Mutator, Outcome, Run, fuzz};

/// The secret of the one live session in the fixture's views.
const LIVE: &str = "tss_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Debug)]
enum Input {
    /// Raw `Cookie` header values (and an unrelated header or two).
    Raw(Vec<Bytes>),
    /// Well-formed cookies, `name=value` joined by `; `, split into headers at `splits`.
    Listed {
        pairs: Vec<(String, String)>,
        splits: Vec<usize>,
    },
}

const DICTIONARY: &[&[u8]] = &[
    b";",
    b"; ",
    b"=",
    b"\"",
    b"__Host-tessera_session",
    b"__Host-tessera_session=",
    b"__host-tessera_session=",
    b"__Host-",
    b"tss_",
    b" ",
    b"\t",
    b",",
    b"%",
    b"%3B",
    b"\xc3\xa9",
    b"\x80",
    b"\xff",
    b"==",
    b";;",
];

const NAMES: &[&str] = &[
    SESSION_COOKIE,
    "__host-tessera_session",
    "__Host-tessera_sessio",
    "__Host-tessera_session2",
    "tessera_session",
    "__Secure-tessera_session",
    "theme",
    "a",
];

fn corpus() -> Vec<Vec<u8>> {
    [
        format!("a=1; {SESSION_COOKIE}={LIVE}; b=2"),
        format!("{SESSION_COOKIE}={LIVE}"),
        format!("{SESSION_COOKIE}=\"{LIVE}\""),
        format!("{SESSION_COOKIE}=; {SESSION_COOKIE}={LIVE}"),
        format!("{SESSION_COOKIE}=tss_x; theme=dark"),
        "theme=dark; lang=en".to_owned(),
        "=; ;;=x; a".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn generate(corpus: &[Vec<u8>], rng: &mut ChaCha20Rng) -> Input {
    if rng.random_bool(0.5) {
        let mutator = Mutator {
            corpus,
            dictionary: DICTIONARY,
            max_len: 8 * 1024,
        };
        let n = rng.random_range(0..=3);
        return Input::Raw((0..n).map(|_| Bytes(mutator.input(rng))).collect());
    }
    let n = rng.random_range(0..8);
    let pairs: Vec<(String, String)> = (0..n)
        .map(|_| {
            let name = NAMES[rng.random_range(0..NAMES.len())].to_owned();
            let value = match rng.random_range(0..4) {
                0 => LIVE.to_owned(),
                1 => String::new(),
                _ => {
                    let alphabet = b"ABCxyz019-_.";
                    (0..rng.random_range(1..50))
                        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                        .collect()
                }
            };
            (name, value)
        })
        .collect();
    let mut splits: Vec<usize> = (0..rng.random_range(0..3))
        .map(|_| rng.random_range(0..=pairs.len()))
        .collect();
    splits.sort_unstable();
    Input::Listed { pairs, splits }
}

struct Fixture {
    views: Views,
    now: Timestamp,
}

impl Fixture {
    fn new() -> Self {
        let now = tessera_tests::T0;
        let id = SessionId::from_bytes([9; 16]);
        let mut views = Views::default();
        views
            .load(
                ViewKey::Session(id),
                ViewRecord::Session(SessionView {
                    id,
                    account: AccountId::from_bytes([8; 16]),
                    secret_digest: SecretDigest::of(LIVE),
                    created_at: now,
                    last_seen_at: now,
                    idle_timeout_ms: 60_000,
                    expires_at: now.plus_ms(3_600_000),
                }),
            )
            .expect("a session loads");
        Self { views, now }
    }

    /// The cookie the server finds, and whether it names the live session.
    fn find(&self, headers: &HeaderMap) -> (Option<String>, &'static str) {
        let found = session_cookie(headers);
        let label = match &found {
            None => "no session cookie",
            Some(value) => match authenticate(&self.views, value, self.now) {
                Ok(_) => "live session",
                Err(_) => "unknown session",
            },
        };
        (found, label)
    }
}

fn check(fx: &Fixture, input: &Input) -> Outcome {
    let mut headers = HeaderMap::new();
    headers.append(header::ACCEPT, HeaderValue::from_static("*/*"));
    match input {
        Input::Raw(values) => {
            let mut sent = Vec::new();
            for v in values {
                if let Ok(value) = HeaderValue::from_bytes(&v.0) {
                    if let Ok(text) = value.to_str() {
                        sent.push(text.to_owned());
                    }
                    headers.append(header::COOKIE, value);
                }
            }
            let (found, label) = fx.find(&headers);
            if let Some(value) = found {
                // Whatever is found was sent, next to the cookie's name, and is no larger.
                if !sent
                    .iter()
                    .any(|s| s.contains(SESSION_COOKIE) && s.contains(value.as_str()))
                {
                    return Err(format!("found {value:?}, which no Cookie header carries"));
                }
            }
            Ok(label)
        }
        Input::Listed { pairs, splits } => {
            let mut start = 0;
            for &end in splits.iter().chain(std::iter::once(&pairs.len())) {
                let text: Vec<String> = pairs[start..end]
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                if !text.is_empty() {
                    let value = HeaderValue::from_str(&text.join("; "))
                        .map_err(|e| format!("a well-formed cookie list is no header: {e}"))?;
                    headers.append(header::COOKIE, value);
                }
                start = end;
            }
            let expected = pairs
                .iter()
                .find(|(n, _)| n == SESSION_COOKIE)
                .map(|(_, v)| v.clone());
            let (found, label) = fx.find(&headers);
            if found != expected {
                return Err(format!("found {found:?}, expected {expected:?}"));
            }
            let live = expected.as_deref() == Some(LIVE);
            if live != (label == "live session") {
                return Err(format!("the session was {label} for {expected:?}"));
            }
            Ok(label)
        }
    }
}

/// Inputs that once broke a property, kept so they stay fixed.
fn regressions() -> Vec<Input> {
    vec![]
}

fn run(run: Run) {
    let fx = Fixture::new();
    let corpus = corpus();
    fuzz(
        run,
        &regressions(),
        |rng| generate(&corpus, rng),
        |input| check(&fx, input),
    );
}

#[test]
fn cookie_short() {
    run(Run::short("cookie"));
}

#[test]
#[ignore = "the long run: one million cases by default, see fuzz/mod.rs"]
fn cookie_long() {
    run(Run::long("cookie"));
}
