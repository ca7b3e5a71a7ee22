//! The engine: one writer thread in front of an [`EventStore`].
//!
//! ```text
//! callers ──submit──▶ bounded queue ──▶ writer: take a batch ─▶ decide + apply each command
//!                                             ─▶ append all events and view changes atomically
//!                                             ─▶ one durable sync for the batch ─▶ answer all
//! ```
//! One writer means no lost update and no race between two commands on one aggregate;
//! batching means one fsync serves every command in the batch (group commit). Reads take the
//! views' read lock and never wait for the disk.
//!
//! Views are updated in memory before the batch is durable. That is safe because nothing is
//! answered before the sync, and every command that depends on state is decided by this same
//! writer after the previous batch's sync. If a sync fails, memory is ahead of the disk: the
//! engine stops taking commands (every later submit answers [`EngineError::Storage`]) and a
//! restart reloads the views from the durable store.
//!
//! Operators read the running log beside the writer, never through it:
//! [`Engine::log_reader`] reads the store's log from any thread up to a durable head, and
//! [`Engine::subscribe`] tells a follower when the head moves and when the engine stopped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use rand_core::CryptoRng;
use tessera_core::event::Pending;
use tessera_core::password::{PasswordHash, WorkArea};
use tessera_core::usecase::{Planned, Prepare, UseCase};
use tessera_core::{Decide, Env, Policy, Rejection, Reply, StreamId, Timestamp, ViewKey, Views};
use tokio::sync::{oneshot, watch};

use crate::event_store::{AppendBatch, EventStore, Head, LogReader, NewEvent, Role};
use crate::replay;

/// Where the engine gets the time. The server passes the wall clock, the simulator a virtual
/// one.
pub trait Clock: Send + Sync {
    /// The current time. It may step backwards (an NTP correction); the engine never lets its
    /// own time follow it back.
    fn now(&self) -> Timestamp;
}

/// How the writer batches and what it checks.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most commands decided and synced together.
    pub batch_commands_max: usize,
    /// Commands waiting beyond this are refused with [`EngineError::Overloaded`].
    pub queue_commands_max: usize,
    /// Check the views' invariants after every batch (tests and the simulator).
    pub check_invariants: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_commands_max: 512,
            queue_commands_max: 8192,
            check_invariants: cfg!(debug_assertions),
        }
    }
}

/// Why the engine did not answer a command with an [`Outcome`]. [`Overloaded`],
/// [`NotLeader`] and [`Unavailable`] are temporary; the others mean the engine takes no more
/// commands until the process restarts.
///
/// [`Overloaded`]: EngineError::Overloaded
/// [`NotLeader`]: EngineError::NotLeader
/// [`Unavailable`]: EngineError::Unavailable
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// The writer's queue held [`EngineConfig::queue_commands_max`] commands already; the
    /// command was not taken and may be retried.
    #[error("the writer's queue is full; retry shortly")]
    Overloaded,
    /// The engine was shut down, or its writer thread is gone: the command was not taken, or
    /// its answer was lost with the writer.
    #[error("the engine has stopped")]
    Stopped,
    /// This node follows a log that several nodes share, and another node holds the writer
    /// lease: the command was not taken. Send it to the leader (its advertised address, when
    /// known) or retry shortly.
    #[error("this node follows the log; changes are made by the leader")]
    NotLeader {
        /// The address the leader advertised with its lease, when one is known.
        leader: Option<String>,
    },
    /// The shared log's database cannot be reached right now, or the node is reloading its
    /// views after a batch whose outcome it had to learn from the log: the command was not
    /// taken; retry shortly.
    #[error("the log's database cannot be reached right now; retry shortly")]
    Unavailable,
    /// An append or sync failed. Memory may be ahead of the disk, so the engine answers every
    /// later command with this error; a restart reloads the durable state. The message is
    /// the store's.
    #[error("storage failed, so the engine stopped to protect the log; restart it: {0}")]
    Storage(String),
    /// Applying a decided event broke a view invariant (a bug in the core): the engine
    /// stopped before appending the batch. The message names the invariant.
    #[error("invariant violated, so the engine stopped: {0}")]
    Invariant(String),
}

/// What a command came to, once its events (if any) are durable.
#[derive(Debug)]
pub struct Outcome<R = Reply> {
    /// The use case's reply, or why it was refused.
    pub reply: Result<R, Rejection>,
    /// When the writer decided it.
    pub recorded_at: Timestamp,
    /// The log's last sequence after the batch that carried it.
    pub sequence: u64,
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Commands the writer took from its queue, whatever their outcome.
    pub commands: AtomicU64,
    /// Batches appended to the store (batches that wrote nothing are not counted).
    pub batches: AtomicU64,
    /// Events appended to the log.
    pub events_appended: AtomicU64,
    /// Durable syncs of the store: one per appended batch.
    pub durable_syncs: AtomicU64,
    /// Commands refused with [`EngineError::Overloaded`] because the queue was full.
    pub overloaded: AtomicU64,
    /// Failed logins and wrong MFA codes recorded (what throttling counts).
    pub failures_recorded: AtomicU64,
    /// Attacks the engine recognised and recorded: refresh-token reuse.
    pub detections: AtomicU64,
}

impl EngineMetrics {
    fn count_security_events(&self, events: &[NewEvent]) {
        use tessera_core::Event;
        for e in events {
            match e.event {
                Event::LoginFailed { .. }
                | Event::UnknownAccountLoginFailed { .. }
                | Event::MfaCodeFailed { .. } => {
                    self.failures_recorded.fetch_add(1, Ordering::Relaxed);
                }
                Event::RefreshTokenReused { .. } => {
                    self.detections.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}

type Inspection = Box<dyn FnOnce(&dyn EventStore, &Views) + Send>;

/// A command waiting for the writer, with the channel its typed outcome goes back on.
trait Job: Send {
    /// Decides the command; the reply waits in the returned answer until the batch is
    /// durable.
    fn decide(self: Box<Self>, views: &Views, env: &mut Env<'_>)
    -> (Vec<Pending>, Box<dyn Answer>);
    /// The command was never decided: the engine failed first.
    fn fail(self: Box<Self>, error: EngineError);
}

/// A decided command's reply, held until its batch is durable (or failed).
trait Answer: Send {
    fn send(self: Box<Self>, sequence: u64);
    fn fail(self: Box<Self>, error: EngineError);
}

type ReplyTx<C> = oneshot::Sender<Result<Outcome<<C as Decide>::Reply>, EngineError>>;

struct Queued<C: Decide> {
    command: C,
    reply: ReplyTx<C>,
}

struct Decided<R> {
    reply: Result<R, Rejection>,
    recorded_at: Timestamp,
    tx: oneshot::Sender<Result<Outcome<R>, EngineError>>,
}

impl<C: Decide> Job for Queued<C> {
    fn decide(
        self: Box<Self>,
        views: &Views,
        env: &mut Env<'_>,
    ) -> (Vec<Pending>, Box<dyn Answer>) {
        let recorded_at = env.now;
        let decision = self.command.decide(views, env);
        let answer = Decided {
            reply: decision.reply,
            recorded_at,
            tx: self.reply,
        };
        (decision.events, Box::new(answer))
    }

    fn fail(self: Box<Self>, error: EngineError) {
        let _ = self.reply.send(Err(error));
    }
}

impl<R: Send + 'static> Answer for Decided<R> {
    fn send(self: Box<Self>, sequence: u64) {
        let _ = self.tx.send(Ok(Outcome {
            reply: self.reply,
            recorded_at: self.recorded_at,
            sequence,
        }));
    }

    fn fail(self: Box<Self>, error: EngineError) {
        let _ = self.tx.send(Err(error));
    }
}

enum Msg {
    Job(Box<dyn Job>),
    /// Several commands decided in order within one batch (see [`Engine::submit_all`]).
    Jobs(Vec<Box<dyn Job>>),
    /// Runs on the writer between batches, so the store and the views it sees agree.
    Inspect(Inspection),
    /// The shared log may have moved (a notification): follow it now.
    Wake,
    Shutdown(oneshot::Sender<()>),
}

struct Shared {
    views: RwLock<Views>,
    failed: Mutex<Option<EngineError>>,
    stopped: AtomicBool,
    metrics: EngineMetrics,
    head: Mutex<Head>,
    /// Publishes every durable head to [`Engine::subscribe`]rs. Taken (dropped) when the
    /// writer stops or fails, which ends every subscription.
    head_tx: Mutex<Option<watch::Sender<Head>>>,
    /// Reads the log beside the writer, taken from the store before the writer took it.
    /// Released with the store when the writer ends: a reader keeps the store open (for
    /// sled, the folder's lock), and a stopped engine must let its folder be reopened.
    log_reader: Mutex<Option<Arc<dyn LogReader>>>,
    /// The latest time handed out; the engine's time never goes backwards, even when the
    /// clock does (an NTP step back must not revive an expired session).
    time_floor: AtomicU64,
    /// This node's part in writing the log; always the leader of a store it alone writes.
    role: Mutex<Role>,
    /// Set by a shared store while its database cannot be reached.
    unreachable: Option<Arc<AtomicBool>>,
    /// Set while the writer must reload its views from the shared log before it decides
    /// again (after a batch it could not append).
    reloading: AtomicBool,
}

impl Shared {
    /// Records a new durable head for [`Engine::head`] and every subscriber.
    fn publish_head(&self, head: Head) {
        *self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
        if let Some(tx) = self
            .head_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            tx.send_replace(head);
        }
    }

    /// Ends every subscription: the writer takes no more commands.
    fn close_subscriptions(&self) {
        self.head_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Lets go of the engine's log reader (readers already handed out stay usable).
    fn release_log_reader(&self) {
        self.log_reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Why a command would be refused before it is queued, if it would.
    fn refusal(&self) -> Option<EngineError> {
        if self.reloading.load(Ordering::Acquire)
            || self
                .unreachable
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Acquire))
        {
            return Some(EngineError::Unavailable);
        }
        match &*self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Role::Leader => None,
            Role::Follower { leader } => Some(EngineError::NotLeader {
                leader: leader.clone(),
            }),
        }
    }

    fn set_role(&self, role: Role) {
        let mut current = self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != role {
            tracing::info!(?role, "role changed");
            *current = role;
        }
    }

    fn now(&self, clock: &dyn Clock) -> Timestamp {
        let now = clock.now().as_millis();
        Timestamp::from_millis(self.time_floor.fetch_max(now, Ordering::AcqRel).max(now))
    }
}

/// A handle to the running engine. Cheap to clone; every clone talks to the same writer.
#[derive(Clone)]
pub struct Engine {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
    /// What a password is checked against when the username names no account.
    decoy: Arc<PasswordHash>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Why a use case run by [`Engine::run_blocking`] produced no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseCaseError {
    /// Refused before the writer: a pre-check, the input, or the password policy.
    #[error(transparent)]
    Refused(#[from] Rejection),
    /// The engine could not take or finish the command.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The reply type of the command a use case becomes.
pub type UseCaseReply<U> = <<<U as UseCase>::Plan as Planned>::Command as Decide>::Reply;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("head", &self.head_sequence())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the persisted views from `store` and starts the writer thread.
    pub fn start(
        store: Box<dyn EventStore>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        rng: Box<dyn CryptoRng + Send>,
        config: EngineConfig,
    ) -> Result<Self, replay::ReplayError> {
        let mut store = store;
        let views = if store.views_trusted()? {
            let mut views = replay::load_views_into(Views::for_policy(&policy), store.as_ref())?;
            // A bound smaller than the one the stored views were kept under evicts in memory
            // only: the stored records stay until their address fails again or is forgotten
            // by time. Rebuilds under the new bound differ from the old history there.
            let evicted = views.set_address_capacity(policy.throttle.addresses_max);
            if !evicted.is_empty() {
                tracing::info!(
                    evicted = evicted.len(),
                    "throttle address records over the bound"
                );
            }
            views
        } else {
            tracing::warn!(
                "stored views were being replaced when the process stopped; rebuilding them from the log"
            );
            let rebuilt =
                replay::rebuild_into(Views::for_policy(&policy), store.as_ref(), &mut |_| {})?;
            let records = rebuilt
                .keys()
                .into_iter()
                .filter_map(|k| rebuilt.record(&k).map(|r| (k, r)))
                .collect();
            store
                .replace_views(records)
                .map_err(|e| replay::ReplayError::Read(crate::ReadError::Io(e.to_string())))?;
            rebuilt
        };
        let head = store.head();
        let follow = store.follow_interval();
        let log_reader: Arc<dyn LogReader> = Arc::from(store.log_reader());
        let (head_tx, _) = watch::channel(head);
        let last_at = match store.read_from(head.sequence.max(1)).next() {
            Some(e) => e?.recorded_at,
            None => Timestamp::default(),
        };
        let (tx, rx) = mpsc::sync_channel(config.queue_commands_max);
        if follow.is_some() {
            // A wake-up only; a full queue means the writer is busy and will follow soon.
            let wake = tx.clone();
            store.set_waker(Box::new(move || {
                let _ = wake.try_send(Msg::Wake);
            }));
        }
        let unreachable = store.unreachable_flag();
        let shared = Arc::new(Shared {
            views: RwLock::new(views),
            failed: Mutex::new(None),
            stopped: AtomicBool::new(false),
            metrics: EngineMetrics::default(),
            head: Mutex::new(head),
            head_tx: Mutex::new(Some(head_tx)),
            log_reader: Mutex::new(Some(log_reader)),
            time_floor: AtomicU64::new(last_at.as_millis()),
            // A node on a shared log follows until its first look at the lease says more.
            role: Mutex::new(if follow.is_some() {
                Role::Follower { leader: None }
            } else {
                Role::Leader
            }),
            unreachable,
            reloading: AtomicBool::new(false),
        });
        let decoy = tessera_core::password::decoy_hash(&policy.argon2)
            .map_err(|e| replay::ReplayError::Policy(e.to_string()))?;
        let policy = Arc::new(policy);
        let writer = Writer {
            store,
            rng,
            clock: clock.clone(),
            policy: policy.clone(),
            config,
            shared: shared.clone(),
            follow,
        };
        let thread = std::thread::Builder::new()
            .name("tessera-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| {
                replay::ReplayError::Read(crate::ReadError::Io(format!(
                    "cannot start the writer thread: {e}"
                )))
            })?;
        Ok(Self {
            tx,
            shared,
            clock,
            policy,
            decoy: Arc::new(decoy),
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues `command`. Refuses at once when the queue is full or the engine has stopped.
    #[allow(clippy::type_complexity)]
    pub fn submit<C: Decide>(
        &self,
        command: C,
    ) -> Result<oneshot::Receiver<Result<Outcome<C::Reply>, EngineError>>, EngineError> {
        if let Some(e) = self.failure().or_else(|| self.shared.refusal()) {
            return Err(e);
        }
        let (reply, rx) = oneshot::channel();
        match self
            .tx
            .try_send(Msg::Job(Box::new(Queued { command, reply })))
        {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.shared
                    .metrics
                    .overloaded
                    .fetch_add(1, Ordering::Relaxed);
                Err(EngineError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(EngineError::Stopped),
        }
    }

    /// Queues several commands as one message: they are decided in order, in one batch,
    /// before anything queued after them. The simulator uses it to stage a race whose
    /// batching does not depend on thread timing.
    #[allow(clippy::type_complexity)]
    pub fn submit_all<C: Decide>(
        &self,
        commands: Vec<C>,
    ) -> Result<Vec<oneshot::Receiver<Result<Outcome<C::Reply>, EngineError>>>, EngineError> {
        if let Some(e) = self.failure().or_else(|| self.shared.refusal()) {
            return Err(e);
        }
        let (jobs, receivers): (Vec<Box<dyn Job>>, Vec<_>) = commands
            .into_iter()
            .map(|command| {
                let (reply, rx) = oneshot::channel();
                (Box::new(Queued { command, reply }) as Box<dyn Job>, rx)
            })
            .unzip();
        match self.tx.try_send(Msg::Jobs(jobs)) {
            Ok(()) => Ok(receivers),
            Err(TrySendError::Full(_)) => Err(EngineError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(EngineError::Stopped),
        }
    }

    /// Submits and waits, for async callers.
    pub async fn execute<C: Decide>(&self, command: C) -> Result<Outcome<C::Reply>, EngineError> {
        self.submit(command)?
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Submits and waits, for synchronous callers (CLI, simulator). Must not be called from
    /// inside an async runtime.
    pub fn execute_blocking<C: Decide>(
        &self,
        command: C,
    ) -> Result<Outcome<C::Reply>, EngineError> {
        self.submit(command)?
            .blocking_recv()
            .map_err(|_| EngineError::Stopped)?
    }

    /// The cheap half of a use case, under the views' read lock (released before it
    /// returns, so the expensive half never runs under it).
    pub fn plan<U: UseCase>(&self, usecase: U) -> Result<U::Plan, Rejection> {
        let now = self.now();
        let views = self.views();
        usecase.plan(&views, now, &self.policy)
    }

    /// The hash checked when a username names no account; computed once per engine.
    pub fn decoy(&self) -> Arc<PasswordHash> {
        self.decoy.clone()
    }

    /// Shares the policy with work that outlives a borrow of the engine (the hashing pool).
    pub fn shared_policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    /// Runs a use case to its outcome in this thread: the plan, the argon2 work here with
    /// `rng` and `area`, then the writer. For synchronous drivers (the CLI, the simulator,
    /// tests); the HTTP adapter runs the same halves with the argon2 work on its pool. Must
    /// not be called from inside an async runtime.
    pub fn run_blocking<U: UseCase>(
        &self,
        usecase: U,
        rng: &mut dyn CryptoRng,
        area: &mut WorkArea,
    ) -> Result<Outcome<UseCaseReply<U>>, UseCaseError> {
        let command = self.prepare_here(usecase, rng, area)?;
        Ok(self.execute_blocking(command)?)
    }

    /// Both halves of a use case before the writer, in this thread: the plan, then the
    /// argon2 work with `rng` and `area`. The command it returns goes to the writer next.
    pub fn prepare_here<U: UseCase>(
        &self,
        usecase: U,
        rng: &mut dyn CryptoRng,
        area: &mut WorkArea,
    ) -> Result<<U::Plan as Planned>::Command, Rejection> {
        self.plan(usecase)?.prepare(Prepare {
            rng,
            area,
            decoy: &self.decoy,
            policy: &self.policy,
        })
    }

    /// A read lock on the current views. Hold it briefly: the writer waits for it.
    pub fn views(&self) -> RwLockReadGuard<'_, Views> {
        // A poisoned lock means the writer panicked mid-apply; the views may be half-updated,
        // but a reader can only see them, and `failure()` already reports the engine down.
        self.shared
            .views
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current time as decisions see it: the clock, but never earlier than a time already
    /// handed out.
    pub fn now(&self) -> Timestamp {
        self.shared.now(self.clock.as_ref())
    }

    /// The last durable sequence and its chain hash.
    pub fn head(&self) -> Head {
        *self
            .shared
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A reader of the log for other threads (verify, follow, backup), which never waits for
    /// the writer. Read only up to a durable head ([`Engine::head`], [`Engine::subscribe`]):
    /// past it the reader may see a batch that is still being made durable.
    ///
    /// The reader keeps the store open (for sled, the folder's lock) until it is dropped, so
    /// drop it when done. Once the writer has ended (shutdown, or every handle dropped), the
    /// engine hands out no more readers: [`EngineError::Stopped`]. After a failed append the
    /// writer still runs, and readers are still handed out: the log up to the last durable
    /// head is intact and can be backed up.
    pub fn log_reader(&self) -> Result<Arc<dyn LogReader>, EngineError> {
        self.shared
            .log_reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(EngineError::Stopped)
    }

    /// Watches the durable head: the receiver holds the head as of this call (marked seen)
    /// and wakes after every batch the writer makes durable. When the engine stops (a
    /// shutdown, a failed append, an invariant violation, or every handle dropped) the
    /// sender is dropped, so `changed()` fails once the last head was seen:
    /// [`Engine::failure`] then says why. Subscribing to a stopped engine gives a receiver
    /// that is already closed, holding the last durable head.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        let tx = self
            .shared
            .head_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match tx.as_ref() {
            Some(tx) => tx.subscribe(),
            None => watch::channel(self.head()).1,
        }
    }

    /// Runs `f` on the writer thread between batches, with the store and the views, and
    /// returns what it returns. For audits, the simulator and tests: the writer waits for it.
    pub fn inspect<R, F>(&self, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn EventStore, &Views) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Inspection = Box::new(move |store, views| {
            let _ = tx.send(f(store, views));
        });
        self.tx
            .send(Msg::Inspect(job))
            .map_err(|_| EngineError::Stopped)?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)
    }

    /// This node's part in writing the log: the leader, or a follower (with the leader's
    /// address when known).
    pub fn role(&self) -> Role {
        self.shared
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the log is shared with other nodes (and this node may follow).
    pub fn is_shared(&self) -> bool {
        self.shared.unreachable.is_some()
    }

    /// Waits until the views include the log through `sequence` (read-your-writes for a
    /// client that wrote through another node), at most `within`. `false` if they did not
    /// get there in time, or the engine stopped.
    pub async fn reached(&self, sequence: u64, within: std::time::Duration) -> bool {
        let mut heads = self.subscribe();
        if heads.borrow().sequence >= sequence {
            return true;
        }
        matches!(
            tokio::time::timeout(within, heads.wait_for(|h| h.sequence >= sequence)).await,
            Ok(Ok(_))
        )
    }

    /// The policy every command is decided under, fixed when the engine started.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The engine's counters, for `/metrics`.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.shared.metrics
    }

    /// The last sequence made durable.
    pub fn head_sequence(&self) -> u64 {
        self.head().sequence
    }

    /// Why the engine stopped taking commands, if it did.
    pub fn failure(&self) -> Option<EngineError> {
        if let Some(e) = self
            .shared
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Some(e);
        }
        self.shared
            .stopped
            .load(Ordering::Acquire)
            .then_some(EngineError::Stopped)
    }

    /// Finishes the batch in hand, answers it, and stops the writer. Commands queued behind
    /// the shutdown are answered [`EngineError::Stopped`]. Idempotent.
    pub fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).is_ok() {
            let _ = wait.blocking_recv();
        }
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

struct Writer {
    store: Box<dyn EventStore>,
    rng: Box<dyn CryptoRng + Send>,
    clock: Arc<dyn Clock>,
    policy: Arc<Policy>,
    config: EngineConfig,
    shared: Arc<Shared>,
    /// How often to follow a shared log when nothing wakes the writer; `None` for a store
    /// only this process writes.
    follow: Option<std::time::Duration>,
}

impl Drop for Writer {
    /// However the writer ends (a shutdown, every handle dropped, a panic unwinding), nothing
    /// will be appended again: followers end instead of waiting.
    fn drop(&mut self) {
        self.shared.close_subscriptions();
        self.shared.release_log_reader();
    }
}

impl Writer {
    /// The next message; on a shared log, follows it whenever nothing arrives for the follow
    /// interval. `None` when every handle is gone.
    fn next_message(&mut self, rx: &Receiver<Msg>) -> Option<Msg> {
        let Some(every) = self.follow else {
            return rx.recv().ok();
        };
        loop {
            match rx.recv_timeout(every) {
                Ok(msg) => return Some(msg),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // The store's listener holds a sender too, so every engine handle being
                    // gone shows here, not as a disconnection.
                    if Arc::strong_count(&self.shared) <= 1 {
                        return None;
                    }
                    self.follow_log();
                }
            }
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut jobs = Vec::with_capacity(self.config.batch_commands_max);
        if self.follow.is_some() {
            self.follow_log();
        }
        while let Some(first) = self.next_message(&rx) {
            let mut shutdown = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Job(job) => jobs.push(job),
                    Msg::Jobs(list) => jobs.extend(list),
                    Msg::Inspect(inspect) => {
                        // Decide what came before it first, so the inspection sees it.
                        if !jobs.is_empty() {
                            self.process(std::mem::take(&mut jobs));
                        }
                        let views = self
                            .shared
                            .views
                            .read()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        inspect(self.store.as_ref(), &views);
                    }
                    Msg::Wake => {
                        if !jobs.is_empty() {
                            self.process(std::mem::take(&mut jobs));
                        }
                        self.follow_log();
                    }
                    Msg::Shutdown(done) => {
                        shutdown = Some(done);
                        break;
                    }
                }
                if jobs.len() < self.config.batch_commands_max {
                    // Empty or disconnected: decide what we have.
                    next = rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.process(std::mem::take(&mut jobs));
            }
            if let Some(done) = shutdown {
                self.shared.stopped.store(true, Ordering::Release);
                self.shared.close_subscriptions();
                self.shared.release_log_reader();
                drop(rx);
                let _ = done.send(());
                return;
            }
        }
    }

    fn fail(&self, error: EngineError) {
        tracing::error!(%error, "engine stopped");
        *self
            .shared
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
        // Nothing will be appended again: followers end instead of waiting.
        self.shared.close_subscriptions();
    }

    fn current_failure(&self) -> Option<EngineError> {
        self.shared
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn process(&mut self, jobs: Vec<Box<dyn Job>>) {
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        metrics
            .commands
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        if let Some(e) = self.current_failure().or_else(|| self.shared.refusal()) {
            for job in jobs {
                job.fail(e.clone());
            }
            return;
        }
        let (batch, answers) = match self.decide_batch(jobs) {
            Ok(decided) => decided,
            Err(error) => {
                self.fail(error);
                return;
            }
        };
        if let Err(error) = check_batch(&batch) {
            self.fail(error.clone());
            for answer in answers {
                answer.fail(error.clone());
            }
            return;
        }
        let sequence = if batch.events.is_empty() && batch.views.is_empty() {
            self.store.head().sequence
        } else {
            let events = batch.events.len() as u64;
            // Counted before the append; on failure the engine stops, so nothing reads them.
            metrics.count_security_events(&batch.events);
            match self.store.append(batch) {
                Ok(_) => {
                    metrics.batches.fetch_add(1, Ordering::Relaxed);
                    metrics.durable_syncs.fetch_add(1, Ordering::Relaxed);
                    metrics.events_appended.fetch_add(events, Ordering::Relaxed);
                    let head = self.store.head();
                    self.shared.publish_head(head);
                    head.sequence
                }
                Err(e) if self.follow.is_some() => {
                    // The views hold the batch but the log may not: reload them from the
                    // shared log before deciding again, and tell the callers to retry.
                    let error = match e {
                        crate::AppendError::Deposed { .. } => {
                            self.shared.set_role(Role::Follower { leader: None });
                            EngineError::NotLeader { leader: None }
                        }
                        _ => EngineError::Unavailable,
                    };
                    tracing::warn!(error = %e, "batch not appended; reloading the views from the log");
                    self.shared.reloading.store(true, Ordering::Release);
                    for answer in answers {
                        answer.fail(error.clone());
                    }
                    self.follow_log();
                    return;
                }
                Err(e) => {
                    let error = EngineError::Storage(e.to_string());
                    self.fail(error.clone());
                    for answer in answers {
                        answer.fail(error.clone());
                    }
                    return;
                }
            }
        };
        for answer in answers {
            answer.send(sequence);
        }
    }

    /// Looks at a shared log: reloads the views first if a batch failed, then folds what
    /// other nodes appended and takes the lease if it is free. An unreachable database is
    /// logged once and retried at the next look; a broken chain stops the engine.
    fn follow_log(&mut self) {
        if self.current_failure().is_some() {
            return;
        }
        if self.shared.reloading.load(Ordering::Acquire) {
            match replay::load_views_into(Views::for_policy(&self.policy), self.store.as_ref()) {
                Ok(views) => {
                    *self
                        .shared
                        .views
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = views;
                    self.shared.reloading.store(false, Ordering::Release);
                    self.shared.publish_head(self.store.head());
                    tracing::info!(
                        head = self.store.head().sequence,
                        "views reloaded from the log"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the views yet");
                    return;
                }
            }
        }
        match self.store.follow() {
            Ok(followed) => {
                if let Err(e) = self.fold(&followed.envelopes) {
                    self.fail(e);
                    return;
                }
                self.shared.set_role(followed.role);
            }
            Err(crate::FollowError::Unreachable(why)) => {
                tracing::debug!(%why, "the shared log cannot be reached; serving from the views");
            }
            Err(e) => self.fail(EngineError::Storage(e.to_string())),
        }
    }

    /// Applies envelopes another node appended to the views, and publishes the new head.
    fn fold(&self, envelopes: &[crate::Envelope]) -> Result<(), EngineError> {
        let Some(last) = envelopes.last() else {
            return Ok(());
        };
        {
            let mut views = self
                .shared
                .views
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut touched = Vec::new();
            for e in envelopes {
                touched.clear();
                views
                    .apply(e.recorded_at, &e.event, &mut touched)
                    .map_err(|err| {
                        EngineError::Invariant(format!("sequence {}: {err}", e.sequence))
                    })?;
            }
        }
        self.shared
            .time_floor
            .fetch_max(last.recorded_at.as_millis(), Ordering::AcqRel);
        self.shared.publish_head(Head {
            sequence: last.sequence,
            hash: last.hash,
        });
        Ok(())
    }

    /// Decides every job in order against the views, applying each decision's events before
    /// the next job is decided. On failure every job of the batch, decided or not, is
    /// answered with the error, and nothing of the batch is appended.
    fn decide_batch(
        &mut self,
        jobs: Vec<Box<dyn Job>>,
    ) -> Result<(AppendBatch, Vec<Box<dyn Answer>>), EngineError> {
        let shared = self.shared.clone();
        let mut views = shared
            .views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut batch = AppendBatch::default();
        let mut touched: Vec<ViewKey> = Vec::new();
        let mut versions: std::collections::HashMap<StreamId, u64> =
            std::collections::HashMap::new();
        let mut answers: Vec<Box<dyn Answer>> = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter();
        let mut failure = None;
        for job in jobs.by_ref() {
            let now = self.shared.now(self.clock.as_ref());
            let mut env = Env::new(now, self.rng.as_mut(), &self.policy);
            let (events, answer) = job.decide(&views, &mut env);
            answers.push(answer);
            if let Err(e) = self.stage(
                &mut views,
                now,
                events,
                &mut versions,
                &mut touched,
                &mut batch,
            ) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none() && self.config.check_invariants {
            failure = views.check_invariants().err().map(EngineError::Invariant);
        }
        if let Some(e) = failure {
            for answer in answers {
                answer.fail(e.clone());
            }
            for job in jobs {
                job.fail(e.clone());
            }
            return Err(e);
        }
        touched.sort();
        touched.dedup();
        // Assertions that stay on in production, paired: the records the batch touched,
        // here after they were applied, and the batch itself before it is appended.
        if let Err(why) = views.check_records(&touched) {
            let e = EngineError::Invariant(why);
            for answer in answers {
                answer.fail(e.clone());
            }
            return Err(e);
        }
        batch.views = touched
            .into_iter()
            .map(|k| {
                let record = views.record(&k);
                (k, record)
            })
            .collect();
        Ok((batch, answers))
    }

    /// Applies one decision's events to the views and adds them to the batch, each with the
    /// version its stream must be at.
    fn stage(
        &self,
        views: &mut Views,
        now: Timestamp,
        events: Vec<Pending>,
        versions: &mut std::collections::HashMap<StreamId, u64>,
        touched: &mut Vec<ViewKey>,
        batch: &mut AppendBatch,
    ) -> Result<(), EngineError> {
        for pending in events {
            let expected = match versions.get(&pending.stream) {
                Some(v) => *v,
                None => self
                    .store
                    .stream_version(&pending.stream)
                    .map_err(|e| EngineError::Storage(e.to_string()))?,
            };
            views
                .apply(now, &pending.event, touched)
                .map_err(|e| EngineError::Invariant(e.to_string()))?;
            versions.insert(pending.stream.clone(), expected + 1);
            batch.events.push(NewEvent {
                stream: pending.stream,
                expected_version: expected,
                recorded_at: now,
                event: pending.event,
            });
        }
        Ok(())
    }
}

/// The second half of the writer's paired assertion: the batch as it goes to the store.
/// Every record sits under a key of its kind, each stream's versions follow on from one
/// another, and time does not go backwards within the batch.
fn check_batch(batch: &AppendBatch) -> Result<(), EngineError> {
    let fail = |why: String| Err(EngineError::Invariant(why));
    if let Some((key, _)) = batch
        .views
        .iter()
        .find(|(key, record)| record.as_ref().is_some_and(|r| !key.holds(r)))
    {
        return fail(format!(
            "the batch writes a record of another kind under {key:?}"
        ));
    }
    let mut next: std::collections::HashMap<&StreamId, u64> = std::collections::HashMap::new();
    let mut last_at = None;
    for e in &batch.events {
        if let Some(expected) = next.get(&e.stream)
            && *expected != e.expected_version
        {
            return fail(format!(
                "stream {} expects version {} after {}",
                e.stream, e.expected_version, expected
            ));
        }
        next.insert(&e.stream, e.expected_version + 1);
        if last_at.is_some_and(|at| e.recorded_at < at) {
            return fail(format!(
                "time goes backwards within the batch on {}",
                e.stream
            ));
        }
        last_at = Some(e.recorded_at);
    }
    Ok(())
}

#[cfg(test)]
mod batch_checks {
    use super::*;
    use tessera_core::event::Event;

    fn event(stream: &str, expected_version: u64, at: u64) -> NewEvent {
        NewEvent {
            stream: StreamId(stream.into()),
            expected_version,
            recorded_at: Timestamp::from_millis(at),
            event: Event::UnknownAccountLoginFailed { client: None },
        }
    }

    #[test]
    fn a_sound_batch_passes() {
        let batch = AppendBatch {
            events: vec![event("a", 3, 10), event("a", 4, 10), event("b", 0, 11)],
            views: vec![],
        };
        assert_eq!(check_batch(&batch), Ok(()));
    }

    #[test]
    fn a_version_gap_stops_the_writer() {
        let batch = AppendBatch {
            events: vec![event("a", 3, 10), event("a", 5, 10)],
            views: vec![],
        };
        assert!(matches!(
            check_batch(&batch),
            Err(EngineError::Invariant(_))
        ));
    }

    #[test]
    fn time_going_backwards_stops_the_writer() {
        let batch = AppendBatch {
            events: vec![event("a", 0, 10), event("b", 0, 9)],
            views: vec![],
        };
        assert!(matches!(
            check_batch(&batch),
            Err(EngineError::Invariant(_))
        ));
    }

    #[test]
    fn a_record_under_a_key_of_another_kind_stops_the_writer() {
        let batch = AppendBatch {
            events: vec![],
            views: vec![(
                ViewKey::NotBefore(tessera_core::AccountId::from_bytes([0; 16])),
                Some(tessera_core::ViewRecord::Username(
                    tessera_core::AccountId::from_bytes([0; 16]),
                )),
            )],
        };
        assert!(matches!(
            check_batch(&batch),
            Err(EngineError::Invariant(_))
        ));
    }
}
