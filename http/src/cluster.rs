//! Several nodes on one shared log (the PostgreSQL backend): where a request is answered.
//!
//! ```text
//! request ─▶ Tessera-Min-Sequence newer than the views? ─ wait (≤ 2 s) ─▶ 503 if still behind
//!         ─▶ a change, and this node follows? ─▶ forward to the leader (503 if none known)
//!         ─▶ answered here, from the views ─▶ a GET that needed the writer? ─▶ the leader
//!         ─▶ Tessera-Sequence: the log position the answer reflects
//! ```
//!
//! Reads (bearer verification, introspection, session lookups, JWKS) never leave the node:
//! its views follow the log. Changes go to the one writer. A client that wrote echoes the
//! `Tessera-Sequence` of the answer as `Tessera-Min-Sequence`, and any node then answers it
//! only once its views include that write (read-your-writes).
//!
//! With a store only this process writes (sled), none of this applies and requests go
//! straight to [`crate::server::handle`].

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tessera_storage::Role;

use crate::App;
use crate::metrics::Route;
use crate::problem::Problem;
use crate::routes::{self, Reply};

/// The log position an answer reflects: after a change, at or past the change itself.
pub const SEQUENCE_HEADER: &str = "tessera-sequence";

/// Sent by a client: answer only once the views include the log through this sequence.
pub const MIN_SEQUENCE_HEADER: &str = "tessera-min-sequence";

/// Marks a request a follower forwarded, so that it is never forwarded twice (a stale
/// leader record naming a node that no longer leads).
pub const FORWARDED_HEADER: &str = "tessera-forwarded";

/// How long a node waits for its views to reach a client's `Tessera-Min-Sequence`.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// How long a forwarded request may take at the leader.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers that describe one connection, not the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

type Forwarder = Client<HttpConnector, Full<Bytes>>;

fn forwarder() -> &'static Forwarder {
    static CLIENT: OnceLock<Forwarder> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Client::builder(TokioExecutor::new()).build(connector)
    })
}

/// Answers one request on a node of a shared log; see the module's picture.
pub async fn handle(app: &App, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    if !app.engine.is_shared() {
        return crate::server::handle(app, peer, req).await;
    }
    if let Some(min) = min_sequence(req.headers())
        && !app.engine.reached(min, CATCH_UP_WAIT).await
    {
        return stamped(
            app,
            Problem::unavailable(format!(
                "this node's views have not reached sequence {min} yet; retry shortly"
            ))
            .into_response(),
        );
    }
    let route = routes::classify(req.method(), req.uri().path());
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let leader = match app.engine.role() {
        Role::Leader => return stamped(app, crate::server::handle(app, peer, req).await),
        Role::Follower { leader } => leader,
    };
    if is_change(req.method(), route) {
        return match leader {
            Some(addr) if !forwarded => forward(app, peer, &addr, req).await,
            _ => no_leader(),
        };
    }
    // A read may still need the writer (recording a session's activity); such a GET is
    // answered 503 here and is then asked of the leader, with the same headers.
    let again = (req.method() == Method::GET && !forwarded)
        .then(|| (req.uri().clone(), req.headers().clone()));
    let resp = crate::server::handle(app, peer, req).await;
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && let (Some((uri, headers)), Role::Follower { leader: Some(addr) }) =
            (again, app.engine.role())
    {
        let req = outgoing(Method::GET, &uri, &headers, peer, &addr, Bytes::new());
        return send(req).await;
    }
    stamped(app, resp)
}

/// Whether the request may change state: everything but GET, HEAD and introspection.
fn is_change(method: &Method, route: Route) -> bool {
    !(method == Method::GET || method == Method::HEAD || route == Route::Introspect)
}

fn min_sequence(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(MIN_SEQUENCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Adds the log position this node's answer reflects.
fn stamped(app: &App, mut resp: Reply) -> Reply {
    if let Ok(v) = HeaderValue::from_str(&app.engine.head_sequence().to_string()) {
        resp.headers_mut().insert(SEQUENCE_HEADER, v);
    }
    resp
}

fn no_leader() -> Reply {
    Problem::unavailable("no node holds the writer lease right now; retry shortly").into_response()
}

/// Sends the whole request to the leader and relays its answer.
async fn forward(app: &App, peer: SocketAddr, leader: &str, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let bytes = match crate::body::read_bytes(body, &parts.headers, app.config.body_bytes_max).await
    {
        Ok(b) => b,
        Err(problem) => return problem.into_response(),
    };
    let req = outgoing(
        parts.method,
        &parts.uri,
        &parts.headers,
        peer,
        leader,
        bytes,
    );
    send(req).await
}

/// The request as the leader gets it: same method, path, headers and body, minus the
/// connection's own headers, with the client's address appended to `X-Forwarded-For` (the
/// leader believes it only if this node is one of its `http.trusted_proxies`).
fn outgoing(
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: SocketAddr,
    leader: &str,
    body: Bytes,
) -> Option<Request<Full<Bytes>>> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target: Uri = format!("http://{leader}{path}").parse().ok()?;
    let mut req = Request::builder().method(method).uri(target);
    let out = req.headers_mut()?;
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != http::header::CONTENT_LENGTH {
            out.append(name.clone(), value.clone());
        }
    }
    let client = peer.ip().to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {client}"),
        None => client,
    };
    out.insert("x-forwarded-for", HeaderValue::from_str(&chain).ok()?);
    out.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    req.body(Full::new(body)).ok()
}

async fn send(req: Option<Request<Full<Bytes>>>) -> Reply {
    let Some(req) = req else {
        return no_leader();
    };
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, async {
        let resp = forwarder().request(req).await.ok()?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.ok()?.to_bytes();
        Some(Reply::from_parts(parts, Full::new(bytes)))
    })
    .await;
    match answer {
        Ok(Some(mut resp)) => {
            for name in HOP_BY_HOP {
                resp.headers_mut().remove(name);
            }
            resp
        }
        _ => {
            tracing::warn!("the leader did not answer a forwarded request");
            Problem::unavailable("the writer did not answer; retry shortly").into_response()
        }
    }
}
