//! Target: the request body readers (`body::read_form` for `/oauth/*`, `body::read_json`
//! for `/v1/*`, and `body::read_bytes` under both), driven end to end with arbitrary
//! headers and bodies delivered whole, in chunks, or cut off by an error.
//!
//! The bodies never wait, so one poll of the reader's future finishes it: no runtime.

use std::collections::{HashSet, VecDeque};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes as Chunk;
use hyper::HeaderMap;
use hyper::StatusCode;
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderValue};
use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use serde_json::Value;
use tessera_http::body::{FormError, is_form, is_json, read_bytes, read_form, read_json};

use super::{Bytes, Mutator, Outcome, Run, fuzz};

/// The server's default limit, and the smallest a configuration may set.
const LIMITS: [usize; 2] = [16 * 1024, 1024];

/// A request body that hands out its chunks at once, then maybe fails.
struct Chunks {
    chunks: VecDeque<Chunk>,
    fail: bool,
}

impl Body for Chunks {
    type Data = Chunk;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunk>, std::io::Error>>> {
        let this = self.get_mut();
        Poll::Ready(match this.chunks.pop_front() {
            Some(chunk) => Some(Ok(Frame::data(chunk))),
            None if this.fail => {
                this.fail = false;
                Some(Err(std::io::Error::other("connection reset")))
            }
            None => None,
        })
    }
}

/// Polls a future that cannot wait to its end.
fn finish<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err("a reader waited on a body that never waits".into()),
    }
}

#[derive(Debug)]
struct Input {
    json: bool,
    content_type: Option<Bytes>,
    content_length: Vec<Bytes>,
    body: Bytes,
    /// Where the body is cut into chunks.
    cuts: Vec<usize>,
    fail: bool,
    limit: usize,
}

impl Input {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self
            .content_type
            .as_ref()
            .and_then(|t| HeaderValue::from_bytes(&t.0).ok())
        {
            headers.insert(header::CONTENT_TYPE, value);
        }
        for length in &self.content_length {
            if let Ok(value) = HeaderValue::from_bytes(&length.0) {
                headers.append(header::CONTENT_LENGTH, value);
            }
        }
        headers
    }

    fn body(&self) -> Chunks {
        let mut chunks = VecDeque::new();
        let mut start = 0;
        for &cut in self.cuts.iter().chain(std::iter::once(&self.body.0.len())) {
            let cut = cut.clamp(start, self.body.0.len());
            chunks.push_back(Chunk::copy_from_slice(&self.body.0[start..cut]));
            start = cut;
        }
        Chunks {
            chunks,
            fail: self.fail,
        }
    }
}

const FORM_DICTIONARY: &[&[u8]] = &[
    b"&",
    b"=",
    b"+",
    b"%",
    b"%2",
    b"%ZZ",
    b"%00",
    b"%26",
    b"%3D",
    b"%C3%A9",
    b"%C3",
    b"%FF",
    b"%E2%82%AC",
    b"\xc3\xa9",
    b"\xff",
    b"grant_type=",
    b"refresh_token=",
    b"token=",
    b"token_type_hint=",
    b"&&",
    b"==",
    b"a=1&a=2",
];

const JSON_DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"1e400",
    b"-0",
    b"18446744073709551616",
    b"1.5e-400",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"\\udc00\\ud800\"",
    b"\\",
    b"\\u",
    b"\xc3\xa9",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\"username\":",
    b"\"password\":",
    b"\"extra\":1,",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":{\"a\":",
];

const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    " application/x-www-form-urlencoded ;",
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/jsonx",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
];

fn forms() -> Vec<Vec<u8>> {
    [
        "grant_type=refresh_token&refresh_token=tsr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "token=eyJhbGciOiJFZERTQSJ9.e30.AAAA&token_type_hint=access_token",
        "token=tsr_x%2By&client_id=tessera&scope=openid+profile",
        "a=%E2%82%AC&b=&c&=d",
        "",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn jsons() -> Vec<Vec<u8>> {
    [
        r#"{"username":"alice","password":"Correct horse 9 battery"}"#,
        r#"{"current_password":"a","new_password":"b"}"#,
        r#"{"code":"123456","mfa_token":"tsm_x"}"#,
        r#"{"session":"01890a5d-ac96-774b-bcce-b302099a8057"}"#,
        r#"{"username":"\u00e9\ud83d\ude00","password":"x","extra":[1,2.5,null,true,{}]}"#,
        "[]",
        "\"\"",
    ]
    .into_iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn generate(forms: &[Vec<u8>], jsons: &[Vec<u8>], rng: &mut ChaCha20Rng) -> Input {
    let json = rng.random_bool(0.5);
    let limit = LIMITS[rng.random_range(0..LIMITS.len())];
    let body = Mutator {
        corpus: if json { jsons } else { forms },
        dictionary: if json {
            JSON_DICTIONARY
        } else {
            FORM_DICTIONARY
        },
        max_len: limit + 64,
    }
    .input(rng);
    let content_type = match rng.random_range(0..10) {
        0 => None,
        1 => Some(
            Mutator {
                corpus: &CONTENT_TYPES
                    .iter()
                    .map(|t| t.as_bytes().to_vec())
                    .collect::<Vec<_>>(),
                dictionary: &[b";", b" ", b"/", b"\t", b"\xff"],
                max_len: 80,
            }
            .input(rng),
        ),
        // Mostly the right type, so the bytes get parsed.
        2..=7 => Some(
            if json {
                CONTENT_TYPES[4]
            } else {
                CONTENT_TYPES[0]
            }
            .into(),
        ),
        _ => Some(CONTENT_TYPES[rng.random_range(0..CONTENT_TYPES.len())].into()),
    };
    let content_length = match rng.random_range(0..8) {
        0..=2 => vec![],
        3 => vec![body.len().to_string().into_bytes()],
        4 => vec![(limit + 1).to_string().into_bytes()],
        5 => vec![
            [
                "-1",
                "+5",
                " 7",
                "99999999999999999999999",
                "0x10",
                "",
                "1,1",
                "١",
            ][rng.random_range(0..8)]
            .as_bytes()
            .to_vec(),
        ],
        6 => vec![b"10".to_vec(), b"1000000".to_vec()],
        _ => vec![rng.random_range(0..limit * 2).to_string().into_bytes()],
    };
    let cuts = (0..rng.random_range(0..4))
        .map(|_| rng.random_range(0..=body.len()))
        .collect::<Vec<_>>();
    let mut cuts = cuts;
    cuts.sort_unstable();
    Input {
        json,
        content_type: content_type.map(Bytes),
        content_length: content_length.into_iter().map(Bytes).collect(),
        body: Bytes(body),
        cuts,
        fail: rng.random_bool(0.05),
        limit,
    }
}

/// The first `Content-Length` as the reader reads it, if it parses.
fn declared(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn check(input: &Input) -> Outcome {
    let headers = input.headers();
    let body = &input.body.0;
    let over =
        body.len() > input.limit || declared(&headers).is_some_and(|n| n > input.limit as u64);

    // The byte reader under both: all of the body, or 413, or a read error.
    match finish(read_bytes(input.body(), &headers, input.limit))? {
        Ok(bytes) => {
            if over || input.fail || bytes.as_ref() != body.as_slice() {
                return Err(format!(
                    "read {} bytes (over: {over}, failed: {})",
                    bytes.len(),
                    input.fail
                ));
            }
        }
        Err(p) if p.status == StatusCode::PAYLOAD_TOO_LARGE && over => {}
        Err(p) if p.status == StatusCode::BAD_REQUEST && input.fail && !over => {}
        Err(p) => return Err(format!("read_bytes answered {} {}", p.status, p.detail)),
    }

    if input.json {
        let value: Result<Value, _> = finish(read_json(input.body(), &headers, input.limit))?;
        match value {
            Ok(_) => {
                if !is_json(&headers) || over || input.fail || std::str::from_utf8(body).is_err() {
                    return Err("read_json accepted a body it must refuse".into());
                }
                Ok("json accepted")
            }
            Err(p) => match p.status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE if !is_json(&headers) => Ok("json: media type"),
                StatusCode::PAYLOAD_TOO_LARGE if over => Ok("json: too large"),
                StatusCode::BAD_REQUEST => Ok("json: malformed"),
                StatusCode::UNPROCESSABLE_ENTITY => Ok("json: schema"),
                s => Err(format!("read_json answered {s}: {}", p.detail)),
            },
        }
    } else {
        match finish(read_form(input.body(), &headers, input.limit))? {
            Ok(pairs) => {
                if !is_form(&headers) || over || input.fail {
                    return Err("read_form accepted a body it must refuse".into());
                }
                let mut names = HashSet::new();
                if !pairs.iter().all(|(k, _)| names.insert(k.as_str())) {
                    return Err(format!("a repeated name got through: {pairs:?}"));
                }
                // Percent-decoding only shrinks; each bad UTF-8 byte becomes 3 (U+FFFD).
                let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
                if size > 3 * body.len() {
                    return Err(format!("{size} bytes of pairs from {} of body", body.len()));
                }
                Ok("form accepted")
            }
            Err(FormError::NotAForm) if !is_form(&headers) => Ok("form: media type"),
            Err(FormError::Unreadable) if over || input.fail => Ok("form: unreadable"),
            Err(FormError::Malformed) => Ok("form: malformed"),
            Err(FormError::Repeated) => Ok("form: repeated"),
            Err(e) => Err(format!("read_form refused with {e:?}")),
        }
    }
}

/// Inputs that once broke a property or sit at a known hazard, kept so they stay handled.
fn regressions() -> Vec<Input> {
    let whole = |json: bool, body: Vec<u8>| Input {
        json,
        content_type: Some(Bytes(CONTENT_TYPES[if json { 4 } else { 0 }].into())),
        content_length: vec![],
        body: Bytes(body),
        cuts: vec![],
        fail: false,
        limit: LIMITS[0],
    };
    // Four thousand distinct short names in 16 KiB: the repeat check was pairwise, millions
    // of comparisons for one request.
    let mut names = Vec::new();
    for i in 0u32.. {
        if names.len() > LIMITS[0] - 8 {
            break;
        }
        names.extend_from_slice(format!("{i:x}&").as_bytes());
    }
    vec![
        whole(false, names),
        // Nesting far past serde_json's recursion limit: refused, not a stack overflow.
        whole(true, b"[".repeat(LIMITS[0])),
        whole(true, b"{\"a\":".repeat(LIMITS[0] / 5)),
    ]
}

fn run(run: Run) {
    let (forms, jsons) = (forms(), jsons());
    fuzz(
        run,
        &regressions(),
        |rng| generate(&forms, &jsons, rng),
        check,
    );
}

#[test]
fn body_short() {
    run(Run::short("body"));
}

#[test]
#[ignore = "the long run: one million cases by default, see fuzz/mod.rs"]
fn body_long() {
    run(Run::long("body"));
}
