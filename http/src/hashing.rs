//! The bounded argon2 pool.
//!
//! Password hashing is deliberately slow (tens of milliseconds, 19 MiB each at OWASP
//! parameters). It runs on tokio's blocking threads, never on the async workers, at most
//! `hash_workers` at a time, and at most `hash_queue_max` admitted at once: beyond that the
//! caller gets [`Busy`] (503 with Retry-After) instead of joining an unbounded pile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rand_core::CryptoRng;
use tessera_core::password::WorkArea;
use tokio::sync::Semaphore;

thread_local! {
    static AREA: std::cell::RefCell<WorkArea> = std::cell::RefCell::new(WorkArea::default());
}

/// The pool is full, or a hash job died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is at capacity")]
pub struct Busy;

#[derive(Debug)]
pub struct Hashing {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
    admitted_max: usize,
    pub rejected: AtomicU64,
    pub completed: AtomicU64,
}

struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hashing {
    pub fn new(workers: usize, admitted_max: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(workers.max(1))),
            admitted: AtomicUsize::new(0),
            admitted_max: admitted_max.max(1),
            rejected: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    /// Jobs admitted right now (running or waiting).
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Runs `job` on a blocking thread with the OS RNG and the thread's argon2 work area,
    /// once a worker is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Busy>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn CryptoRng, &mut WorkArea) -> T + Send + 'static,
    {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.admitted_max {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Busy);
        }
        let _admission = Admission(&self.admitted);
        let _permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        let result = tokio::task::spawn_blocking(move || {
            let mut rng = crate::system::os_rng();
            // Each blocking thread keeps its argon2 memory between jobs (it is released when
            // tokio retires an idle thread), so a hash does not allocate and fault in 19 MiB.
            AREA.with_borrow_mut(|area| job(&mut rng, area))
        })
        .await
        .map_err(|_| Busy)?;
        self.completed.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_instead_of_queueing() {
        let pool = Arc::new(Hashing::new(1, 2));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |_, _| {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                })
                .await
            })
        };
        started.await.expect("the first job runs");
        // One running, one waiting for the worker: admitted. A third: refused at once.
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|_, _| 2).await })
        };
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|_, _| 3).await, Err(Busy));
        assert_eq!(pool.rejected.load(Ordering::Relaxed), 1);
        release.send(()).expect("first job waits");
        assert_eq!(first.await.expect("joins"), Ok(()));
        assert_eq!(second.await.expect("joins"), Ok(2));
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.run(|_, _| 4).await, Ok(4));
    }

    #[test]
    fn busy_is_a_503_with_retry_after() {
        let resp = crate::problem::Problem::from(Busy).into_response();
        assert_eq!(resp.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }
}
