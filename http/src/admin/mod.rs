//! The admin interface: HTTP/1 over a Unix domain socket inside the data folder, for the
//! operator commands of `tessera` while the server runs (sled admits one process, so they
//! cannot open the store themselves then).
//!
//! It is never reachable from the public listener: its own accept loop on its own socket,
//! and the public router has no admin routes. Access is the socket's owner only, checked
//! twice: the folder `<data>/admin` is 0700 and the socket 0600 (file modes), and every
//! connection's peer credentials must name the server's own user id (so a mode loosened by
//! hand, or a descriptor passed to another user, is still refused). The server learns its
//! own uid from the socket file it just created, which needs no unsafe call.

pub mod clients;
pub mod log;
pub mod migration;
pub mod ops;
mod routes;

use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::App;
use crate::problem::Problem;

/// The socket's path relative to the data folder.
pub const SOCKET_RELATIVE: &str = "admin/admin.sock";

/// Where the admin socket of the server on `data` lives.
pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET_RELATIVE)
}

/// How the admin socket decides who may use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdminOptions {
    /// The user id every peer must have. `None` (production): the owner of the socket file
    /// the server just created, which is the server's own uid. Tests set another one to show
    /// that a peer of another user is refused.
    pub expected_uid: Option<u32>,
}

/// Why the admin socket could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot prepare the admin socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another server already answers on {0}; stop it first (one server per data folder)")]
    InUse(PathBuf),
}

/// A running admin socket.
#[derive(Debug)]
pub struct AdminHandle {
    /// The socket's path.
    pub path: PathBuf,
    /// The user id peers must have.
    pub expected_uid: u32,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl AdminHandle {
    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), and removes
    /// the socket file, so that the next command opens the data folder directly without a
    /// stale-socket notice.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "could not remove the admin socket");
        }
    }
}

/// Whether a peer with `peer_uid` (none when the OS did not say) may use the socket.
pub fn peer_allowed(expected_uid: u32, peer_uid: Option<u32>) -> bool {
    peer_uid == Some(expected_uid)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdminError + '_ {
    move |source| AdminError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `<data>/admin` (0700), binds `<data>/admin/admin.sock` (0600) and serves the
/// admin routes on it until [`AdminHandle::shutdown`]. A socket file left by a killed server
/// (nothing answers on it) is replaced; one a live server answers on is refused.
pub async fn start_admin(
    app: Arc<App>,
    data: &Path,
    options: AdminOptions,
) -> Result<AdminHandle, AdminError> {
    let path = socket_path(data);
    let dir = data.join("admin");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    // The folder may predate this start with looser modes: the socket's safety rests on it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
    if path.exists() {
        match tokio::net::UnixStream::connect(&path).await {
            Ok(_) => return Err(AdminError::InUse(path)),
            Err(_) => std::fs::remove_file(&path).map_err(io(&path))?,
        }
    }
    let listener = UnixListener::bind(&path).map_err(io(&path))?;
    // Right after bind: until now the mode came from the umask (the 0700 folder covered it).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io(&path))?;
    let owner = std::fs::metadata(&path).map_err(io(&path))?.uid();
    let expected_uid = options.expected_uid.unwrap_or(owner);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(app, listener, expected_uid, stopped));
    Ok(AdminHandle {
        path,
        expected_uid,
        stop: Some(stop),
        task,
    })
}

async fn accept_loop(
    app: Arc<App>,
    listener: UnixListener,
    expected_uid: u32,
    mut stopped: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(app.config.header_timeout_ms))
        .max_buf_size(16 * 1024)
        .max_headers(64)
        .keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
        let allowed = peer_allowed(expected_uid, peer_uid);
        if !allowed {
            app.metrics.admin_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer_uid = ?peer_uid,
                expected_uid,
                "admin socket: refused a peer of another user"
            );
        }
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move {
                app.metrics.admin_requests.fetch_add(1, Ordering::Relaxed);
                let resp = if allowed {
                    routes::handle(&app, req).await
                } else {
                    forbidden().into_response().map(log::AdminBody::Full)
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let drain = Duration::from_millis(app.config.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin connections still open after the drain timeout; closing them");
    }
}

fn forbidden() -> Problem {
    Problem::new(
        http::StatusCode::FORBIDDEN,
        "admin-peer-refused",
        "Forbidden",
        "the admin socket answers only the user the server runs as",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_uid_is_allowed() {
        assert!(peer_allowed(1000, Some(1000)));
        assert!(!peer_allowed(1000, Some(1001)));
        assert!(!peer_allowed(0, Some(1000)));
        // Root is not special: the server's own user only.
        assert!(!peer_allowed(1000, Some(0)));
        // Credentials the OS did not give are a refusal, not a pass.
        assert!(!peer_allowed(1000, None));
    }

    #[test]
    fn the_socket_lives_in_the_admin_folder() {
        assert_eq!(
            socket_path(Path::new("/srv/tessera")),
            PathBuf::from("/srv/tessera/admin/admin.sock")
        );
    }
}
