//! The admin socket's client: HTTP/1 over the Unix socket a running `tessera serve` keeps in
//! its data folder (`<data>/admin/admin.sock`). Operator commands use it when a server runs
//! (sled admits one process, so they could not open the store), and open the folder directly
//! when none does.
//!
//! [`AdminClient::send`] hands back the response with its body unread, so a streaming GET
//! (chunked JSON lines) can read it frame by frame; [`AdminClient::call`] reads a whole JSON
//! answer.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::Failure;
use crate::ops::CommandError;

/// How long a command waits for the head of an answer: longer than any server-side request
/// timeout a configuration should set, so that the server's own 408 comes first.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection to a running server's admin socket.
#[derive(Debug)]
pub struct AdminClient {
    path: PathBuf,
    sender: http1::SendRequest<Full<Bytes>>,
}

/// What a server answered with an error status: its problem+json body.
#[derive(Debug, serde::Deserialize)]
pub struct ProblemBody {
    pub status: u16,
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<ProblemField>,
}

/// One entry of a problem's `errors`.
#[derive(Debug, serde::Deserialize)]
pub struct ProblemField {
    pub detail: String,
}

/// Connects to the server running on `data`, if one answers. A socket file nobody answers on
/// (left by a killed server) is reported on stderr and treated as no server.
pub async fn connect(data: &Path) -> Result<Option<AdminClient>, Failure> {
    let path = tessera_http::admin::socket_path(data);
    if !path.exists() {
        return Ok(None);
    }
    let stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            eprintln!(
                "no server answers on {}; opening the data folder directly",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(Failure(format!(
                "cannot connect to the admin socket {}: {e}",
                path.display()
            )));
        }
    };
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure(format!("admin socket {}: {e}", path.display())))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away; either way
        // the request in flight reports it.
        let _ = conn.await;
    });
    Ok(Some(AdminClient { path, sender }))
}

impl AdminClient {
    /// Sends one request and returns the response with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<Incoming>, Failure> {
        self.send_within(method, path, body, ANSWER_WITHIN).await
    }

    /// [`AdminClient::send`] waiting up to `within` for the head of the answer: a backup or a
    /// verification of a long log answers only when it is done.
    pub async fn send_within(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        within: std::time::Duration,
    ) -> Result<http::Response<Incoming>, Failure> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "tessera-admin");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(Failure::new)?;
        // A server that accepts but never answers (stopped, not killed) must not hang the
        // operator's shell: the head of the answer comes within this bound or the command
        // fails. The body is read by the caller, which may stream it.
        let sender = &mut self.sender;
        let exchange = async {
            sender.ready().await?;
            sender.send_request(req).await
        };
        match tokio::time::timeout(within, exchange).await {
            Ok(answer) => answer.map_err(|e| self.lost(&e)),
            Err(_) => Err(Failure(format!(
                "the server on {} did not answer within {} s",
                self.path.display(),
                within.as_secs()
            ))),
        }
    }

    /// The error for a connection that broke mid-answer.
    pub fn lost(&self, e: &hyper::Error) -> Failure {
        Failure(format!(
            "the server on {} stopped answering: {e}",
            self.path.display()
        ))
    }

    /// Sends one request with an optional JSON body and reads a JSON answer; an error status
    /// becomes [`CommandError::Problem`].
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, CommandError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(Failure::new)?;
        self.exchange(method, path, body).await
    }

    /// [`AdminClient::call`] with a body already encoded (a password's, which the caller
    /// wipes).
    pub async fn call_raw<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, CommandError> {
        self.exchange(method, path, Some(body)).await
    }

    /// [`AdminClient::call`] waiting up to `within` for the answer.
    pub async fn call_within<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        within: std::time::Duration,
    ) -> Result<T, CommandError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(Failure::new)?;
        self.exchange_within(method, path, body, within).await
    }

    async fn exchange<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, CommandError> {
        self.exchange_within(method, path, body, ANSWER_WITHIN)
            .await
    }

    async fn exchange_within<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        within: std::time::Duration,
    ) -> Result<T, CommandError> {
        let resp = self.send_within(method, path, body, within).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.lost(&e))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Failure(format!("unexpected answer from the admin socket: {e}")).into()
            });
        }
        match serde_json::from_slice::<ProblemBody>(&bytes) {
            Ok(problem) => Err(CommandError::Problem(problem)),
            Err(_) => Err(Failure(format!(
                "the admin socket answered {}",
                StatusCode::as_u16(&status)
            ))
            .into()),
        }
    }
}
