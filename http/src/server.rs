//! The accept loop: connection limit, header and request timeouts, graceful shutdown.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use crate::App;
use crate::problem::Problem;
use crate::routes::{self, Ctx, Reply};
use crate::security_log::{Occurrence, SecurityEvent};

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// Records API-key usage every interval, and once more when stopped.
    usage: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl ServerHandle {
    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), and
    /// returns. The engine is still running: the caller shuts it down after this, so that
    /// every answered request's events are durable (they are before they are answered).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
        // After the last request: the final usage counters are recorded before the caller
        // stops the engine.
        if let Some((stop, task)) = self.usage.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Waits until the server stops by itself (it does not, unless its task fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves `app` until [`ServerHandle::shutdown`].
pub async fn start(app: Arc<App>, listen: SocketAddr) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(listen).await?;
    serve_on(app, listener)
}

/// Serves `app` on a listener bound earlier (so that the address, and with it the public
/// URL, was known before the engine started), until [`ServerHandle::shutdown`].
pub async fn start_on(
    app: Arc<App>,
    listener: std::net::TcpListener,
) -> std::io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    serve_on(app, TcpListener::from_std(listener)?)
}

fn serve_on(app: Arc<App>, listener: TcpListener) -> std::io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel();
    let (usage_stop, usage_stopped) = oneshot::channel();
    let usage = tokio::spawn(crate::apikey::usage_recorder(app.clone(), usage_stopped));
    let task = tokio::spawn(accept_loop(app, listener, stopped));
    Ok(ServerHandle {
        local_addr,
        stop: Some(stop),
        task,
        usage: Some((usage_stop, usage)),
    })
}

async fn accept_loop(app: Arc<App>, listener: TcpListener, mut stopped: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.connections_max));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(app.config.header_timeout_ms))
        .max_buf_size(16 * 1024)
        .max_headers(64)
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors or similar: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            app.metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(crate::cluster::handle(&app, peer, req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    let drain = Duration::from_millis(app.config.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}

/// One request: route, run with a deadline, record metrics, never leak an internal error.
pub async fn handle(app: &App, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let started = crate::system::monotonic();
    let route = routes::classify(req.method(), req.uri().path());
    let client = crate::auth::client_address(peer, req.headers(), &app.config);
    let deadline = Duration::from_millis(app.config.request_timeout_ms);
    let result = match host_problem(&req) {
        Some(problem) => Ok(Err(problem)),
        None => {
            tokio::time::timeout(deadline, routes::dispatch(Ctx { app, peer }, route, req)).await
        }
    };
    let mut resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(problem)) => {
            if problem.slug == "cross-site-request" {
                app.metrics
                    .cross_site_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(note) = problem.security {
                security_event(app, client, note.event, note.reason);
            }
            render(route, problem)
        }
        Err(_) => {
            app.metrics
                .request_timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            render(route, Problem::timeout())
        }
    };
    // No answer is ever sniffed into another type (a JSON error rendered as HTML).
    resp.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    if resp.status() == http::StatusCode::TOO_MANY_REQUESTS {
        security_event(app, client, SecurityEvent::Throttled, route.name());
    }
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    app.metrics.record(route, resp.status().as_u16(), micros);
    resp
}

/// An error in the form its route speaks: a page for the browser pages, problem+json for
/// the API.
fn render(route: crate::metrics::Route, problem: Problem) -> Reply {
    if route.is_page() {
        crate::pages::error_page(problem)
    } else {
        problem.into_response()
    }
}

/// Writes (within the bound) and counts a security event whose account is not known.
fn security_event(app: &App, client: IpAddr, event: SecurityEvent, reason: &'static str) {
    app.metrics.security.record(
        app.engine.now().as_millis(),
        Occurrence {
            event,
            client,
            account: None,
            client_id: None,
            reason,
        },
    );
}

/// RFC 9112 section 3.2: an HTTP/1.1 request without a Host header, or any request with
/// more than one, is answered 400. Two Host headers are how a request smuggles a second
/// authority past a proxy that reads the other one.
fn host_problem(req: &Request<Incoming>) -> Option<Problem> {
    let hosts = req.headers().get_all(http::header::HOST).iter().count();
    let needs_host = req.version() != http::Version::HTTP_10;
    match hosts {
        0 if needs_host => Some(Problem::bad_request("the request has no Host header")),
        0 | 1 => None,
        _ => Some(Problem::bad_request(
            "the request has more than one Host header",
        )),
    }
}
