//! Reading request bodies: content type, size limit, UTF-8, strict JSON, urlencoded forms.
//!
//! The readers take any [`Body`] (the server hands them hyper's `Incoming`) and everything
//! after the bytes are in is a pure function of bytes and headers, so the fuzz targets in
//! the integration suite drive exactly the code the server runs.

use std::collections::HashSet;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Whether the request's media type (parameters aside) is `mime`, compared without case.
fn has_media_type(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime))
}

pub fn is_json(headers: &HeaderMap) -> bool {
    has_media_type(headers, "application/json")
}

pub fn is_form(headers: &HeaderMap) -> bool {
    has_media_type(headers, "application/x-www-form-urlencoded")
}

/// Reads at most `limit` bytes of body.
pub async fn read_bytes<B>(body: B, headers: &HeaderMap, limit: usize) -> Result<Bytes, Problem>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(limit))
        }
        Err(_) => Err(Problem::bad_request("the request body could not be read")),
    }
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        "Request body too large",
        format!("the body may be at most {limit} bytes"),
    )
}

/// Parses a JSON body into `T`, which should `deny_unknown_fields`.
pub async fn read_json<T: DeserializeOwned, B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
) -> Result<T, Problem>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ));
    }
    let bytes = read_bytes(body, headers, limit).await?;
    parse_json(&bytes)
}

/// Strict JSON: UTF-8, well-formed, the right fields and types.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::bad_request("the body is not valid UTF-8"))?;
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Problem::unprocessable(format!("the body does not match the schema: {e}"), vec![])
        }
        _ => Problem::bad_request(format!("the body is not well-formed JSON: {e}")),
    })
}

/// Why a form body was refused. OAuth endpoints answer these as RFC 6749 §5.2
/// `invalid_request`, so each carries its description rather than a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    NotAForm,
    Unreadable,
    Malformed,
    Repeated,
}

impl FormError {
    /// The `error_description` an OAuth client is shown.
    pub fn description(&self) -> &'static str {
        match self {
            Self::NotAForm => "send the parameters as application/x-www-form-urlencoded",
            Self::Unreadable => "the body is too large or could not be read",
            Self::Malformed => "the body is not a valid form",
            Self::Repeated => "a parameter appears more than once",
        }
    }
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for FormError {}

/// Reads an `application/x-www-form-urlencoded` body of at most `limit` bytes into its
/// parameters, in order. The media type is checked before anything is read.
pub async fn read_form<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<(String, String)>, FormError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !is_form(headers) {
        return Err(FormError::NotAForm);
    }
    let bytes = read_bytes(body, headers, limit)
        .await
        .map_err(|_| FormError::Unreadable)?;
    parse_form(&bytes)
}

/// Parses a form body, refusing a parameter given twice (RFC 6749 §3.2). Invalid UTF-8
/// in a name or value becomes U+FFFD rather than an error, as the WHATWG parser does.
///
/// Repeats are found with a set: comparing each name with all before it made a 16 KiB body
/// of four thousand short names cost millions of comparisons, on a route anyone can call.
pub fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(bytes).map_err(|_| FormError::Malformed)?;
    let mut names = HashSet::with_capacity(pairs.len());
    if !pairs.iter().all(|(name, _)| names.insert(name.as_str())) {
        return Err(FormError::Repeated);
    }
    Ok(pairs)
}

/// A JSON response. API answers are never cached: they describe credentials.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let bytes = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(_) => return Problem::internal().into_response(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
