//! The world: the real engine (core, writer, sled store in a temporary folder) under a
//! virtual clock and seeded randomness, plus the faults the seed asks for. Scenarios act on
//! it through the same calls the HTTP adapter makes.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::rngs::ChaCha20Rng;
use tessera_core::password::WorkArea;
use tessera_core::refresh::TokensIssued;
use tessera_core::session::{SessionIssued, SessionView, authenticate, touch_due};
use tessera_core::usecase::{
    ChangePasswordRequest, LoginRequest, Planned, RegisterRequest, UseCase,
};
use tessera_core::{AccountId, Command, LoginMode, Policy, Rejection, Reply, Timestamp};
use tessera_storage::engine::EngineConfig;
use tessera_storage::fault::{FaultPoint, FaultyStore};
use tessera_storage::replay;
use tessera_storage::{Engine, EngineError, EventStore, SledOptions, SledStore};

use tessera_core::session::StepUp;
use tessera_core::webauthn::{CredentialId, CredentialKind};
use tessera_webauthn::CeremonyId;

use crate::authenticator::{Authenticator, Gesture};
use crate::clock::SimClock;
use crate::marks::Marks;
use crate::seed;
use crate::{Failure, FailureKind};

/// A crash the seed planned: the Nth append of the current incarnation fails at `point`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct CrashPlan {
    pub at_append: u64,
    #[serde(serialize_with = "point_name")]
    pub point: FaultPoint,
}

fn point_name<S: serde::Serializer>(p: &FaultPoint, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match p {
        FaultPoint::BeforeWrite => "before-write",
        FaultPoint::AfterWrite => "after-write",
    })
}

/// What an MFA enrolment leaves with its holder: the TOTP secret and the backup codes.
pub type Enrolled = (Vec<u8>, Vec<String>);

/// Where the world's store lives.
#[derive(Debug)]
enum Folder {
    Temporary(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl Folder {
    fn path(&self) -> &std::path::Path {
        match self {
            Self::Temporary(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

/// The call did not complete: the engine crashed under it and was reopened from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crashed;

pub struct World {
    pub seed: u64,
    pub step: u64,
    pub clock: Arc<SimClock>,
    pub policy: Policy,
    pub marks: Marks,
    dir: Folder,
    /// A PostgreSQL database to keep the log in instead of sled in `dir`.
    postgres: Option<String>,
    engine: Engine,
    incarnation: u32,
    crashes: VecDeque<CrashPlan>,
    salts: ChaCha20Rng,
    /// argon2's memory, kept between hashes as a hashing thread keeps it.
    area: WorkArea,
    /// (sequence, hash) of the head after every acknowledged change.
    acknowledged: Vec<(u64, [u8; 32])>,
    /// What happened lately, for a failure report.
    pub recent: VecDeque<String>,
    /// Clock drift, parts per million (0 without skew).
    pub drift_ppm: u64,
    /// The signing key, from the seed; recorded in the log at start, as `serve` does.
    signer: tessera_core::signing_key::Signer,
    auditor: Option<Auditor>,
    /// The MFA sealing key, from the seed, as `serve` keeps it outside the log.
    mfa_keys: tessera_core::mfa::MfaKeys,
    /// The WebAuthn relying party at [`WEBAUTHN_ORIGIN`] and its pending ceremonies, as
    /// `serve` keeps them in memory (they are not in the log, so a crash keeps them here).
    webauthn: tessera_webauthn::Ceremonies,
}

/// The public URL the simulated browsers know the server by: the WebAuthn origin, and the
/// host its relying-party id.
pub const WEBAUTHN_ORIGIN: &str = "https://tessera.test";

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.seed)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

const RECENT_MAX: usize = 16;
const PERSISTED_EVERY: u64 = 25;

/// A shadow of the views, folded from the log one envelope at a time, and the chain walk.
#[derive(Default)]
struct Auditor {
    chain: tessera_storage::chain::ChainVerifier,
    shadow: tessera_core::Views,
    next: u64,
}

impl Auditor {
    fn catch_up(
        &mut self,
        store: &dyn EventStore,
        views: &tessera_core::Views,
        persisted: bool,
    ) -> Result<(), String> {
        views
            .check_invariants()
            .map_err(|e| format!("views: {e}"))?;
        let mut touched = Vec::new();
        for item in store.read_from(self.next.max(1)) {
            let e = item.map_err(|e| format!("reading the log: {e}"))?;
            self.chain
                .check(&e)
                .map_err(|e| format!("hash chain: {e}"))?;
            touched.clear();
            self.shadow
                .apply(e.recorded_at, &e.event, &mut touched)
                .map_err(|err| format!("fold at {}: {err}", e.sequence))?;
            self.next = e.sequence + 1;
        }
        let head = store.head();
        if head.sequence != self.chain.count() || head.hash != self.chain.head_hash() {
            return Err("the store's head is not the end of the chain".into());
        }
        if self.shadow != *views {
            return Err("live views differ from a fold of the log".into());
        }
        if persisted {
            let diffs =
                replay::compare(&self.shadow, store).map_err(|e| format!("compare: {e}"))?;
            if let Some(first) = diffs.first() {
                return Err(format!(
                    "{} persisted view records differ from a fold of the log, first {:?}",
                    diffs.len(),
                    first.key
                ));
            }
        }
        Ok(())
    }
}

impl World {
    /// A new world. With `keep`, the store lives in that folder and stays after the run (for
    /// `tessera replay`); otherwise in a temporary one.
    pub fn new(
        seed: u64,
        policy: Policy,
        crashes: Vec<CrashPlan>,
        keep: Option<std::path::PathBuf>,
    ) -> Result<Self, Failure> {
        Self::new_on(seed, policy, crashes, keep, None)
    }

    /// [`World::new`] with the log in the PostgreSQL database `postgres` (empty) when given:
    /// the same seed writes the same log, byte for byte, on either backend.
    pub fn new_on(
        seed: u64,
        policy: Policy,
        crashes: Vec<CrashPlan>,
        keep: Option<std::path::PathBuf>,
        postgres: Option<String>,
    ) -> Result<Self, Failure> {
        let dir = match keep {
            Some(path) => {
                std::fs::create_dir_all(&path).map_err(|e| {
                    Failure::new(
                        seed,
                        0,
                        FailureKind::Crash,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                Folder::Kept(path)
            }
            None => Folder::Temporary(tempfile::tempdir().map_err(|e| {
                Failure::new(seed, 0, FailureKind::Crash, format!("temp dir: {e}"))
            })?),
        };
        let clock = Arc::new(SimClock::default());
        let mut crashes: VecDeque<CrashPlan> = crashes.into();
        let engine = start_engine(
            seed,
            0,
            dir.path(),
            postgres.as_deref(),
            &policy,
            clock.clone(),
            crashes.pop_front(),
        )?;
        let key_seed: [u8; 32] = rand::RngExt::random(&mut seed::stream(seed, "signing-key"));
        let signer = tessera_core::signing_key::Signer::from_seed(&key_seed)
            .map_err(|e| Failure::new(seed, 0, FailureKind::Crash, format!("signing key: {e}")))?;
        let add = signer.add_command();
        let mfa_master: [u8; 32] = rand::RngExt::random(&mut seed::stream(seed, "mfa-key"));
        let mfa_keys = tessera_core::mfa::MfaKeys::from_master(&mfa_master);
        let webauthn = tessera_webauthn::Ceremonies::new(
            WEBAUTHN_ORIGIN,
            "Tessera",
            tessera_webauthn::Limits::default(),
        )
        .map_err(|e| Failure::new(seed, 0, FailureKind::Crash, e.to_string()))?;
        let mut world = Self {
            seed,
            step: 0,
            clock,
            policy,
            marks: Marks::default(),
            dir,
            postgres,
            engine,
            incarnation: 0,
            crashes,
            salts: seed::stream(seed, "salts"),
            area: WorkArea::default(),
            acknowledged: Vec::new(),
            recent: VecDeque::new(),
            drift_ppm: 0,
            auditor: None,
            signer,
            mfa_keys,
            webauthn,
        };
        world.execute(add)?;
        Ok(world)
    }

    pub fn now(&self) -> Timestamp {
        self.engine.now()
    }

    pub fn note(&mut self, what: String) {
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(what);
    }

    pub fn fail(&self, kind: FailureKind, why: impl Into<String>) -> Failure {
        let mut f = Failure::new(self.seed, self.step, kind, why);
        f.recent = self.recent.iter().cloned().collect();
        f
    }

    /// Runs a command through the writer, as the HTTP adapter does. A storage failure is a
    /// crash: the engine is reopened from disk and checked, and the caller gets `None` (its
    /// outcome is unknown, as a client's is when the connection drops).
    pub fn execute(
        &mut self,
        command: impl Into<Command>,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        let command = command.into();
        let kind = command.kind();
        match self.engine.execute_blocking(command) {
            Ok(outcome) => {
                let head = self.engine.head();
                if outcome.sequence > 0
                    && self
                        .acknowledged
                        .last()
                        .is_none_or(|(s, _)| *s != head.sequence)
                {
                    self.acknowledged.push((head.sequence, head.hash));
                }
                self.note(format!("{kind} -> {}", describe(&outcome.reply)));
                Ok(Some(outcome.reply))
            }
            Err(EngineError::Storage(why)) => {
                self.note(format!("{kind} -> crash ({why})"));
                self.recover()?;
                self.marks.hit("engine crashed and recovered");
                Ok(None)
            }
            Err(e) => Err(self.fail(FailureKind::Crash, format!("engine failed: {e}"))),
        }
    }

    /// Runs a use case as every driver does: the plan and the argon2 work (with the seeded
    /// salts), then the writer through [`World::execute`]. A refusal before the writer is
    /// `Some(Err(_))`, as an HTTP client sees it.
    pub fn run<U: UseCase>(
        &mut self,
        usecase: U,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure>
    where
        <U::Plan as Planned>::Command: Into<Command>,
    {
        match self.prepare(usecase) {
            Ok(command) => self.execute(command),
            Err(r) => Ok(Some(Err(r))),
        }
    }

    /// A use case's halves before the writer, as [`World::run`] runs them: the plan, then
    /// the argon2 work with the seeded salts.
    pub fn prepare<U: UseCase>(
        &mut self,
        usecase: U,
    ) -> Result<<U::Plan as Planned>::Command, Rejection> {
        self.engine
            .prepare_here(usecase, &mut self.salts, &mut self.area)
    }

    /// The server keys (which also digest OAuth client secrets).
    pub fn mfa_keys(&self) -> &tessera_core::mfa::MfaKeys {
        &self.mfa_keys
    }

    /// The engine the world drives, for checks that compare drivers.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reopens the store from disk after a crash and checks that every acknowledged change
    /// is still there, byte for byte, and that the chain and the views are sound.
    fn recover(&mut self) -> Result<(), Failure> {
        self.engine.shutdown();
        self.incarnation += 1;
        let plan = self.crashes.pop_front();
        let path = self.dir.path().to_owned();
        {
            let store = open_when_released(&path, self.postgres.as_deref())
                .map_err(|e| self.fail(FailureKind::Crash, format!("reopen after crash: {e}")))?;
            for (sequence, hash) in &self.acknowledged {
                let found = store.read_from(*sequence).next().and_then(Result::ok);
                if found.as_ref().map(|e| (e.sequence, e.hash)) != Some((*sequence, *hash)) {
                    return Err(self.fail(
                        FailureKind::Invariant,
                        format!("acknowledged sequence {sequence} lost or changed across a crash"),
                    ));
                }
            }
            replay::verify(&store, &mut |_| {}).map_err(|e| {
                self.fail(
                    FailureKind::Invariant,
                    format!("hash chain after crash: {e}"),
                )
            })?;
        }
        self.engine = start_engine(
            self.seed,
            self.incarnation,
            &path,
            self.postgres.as_deref(),
            &self.policy,
            self.clock.clone(),
            plan,
        )?;
        Ok(())
    }

    pub fn register(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<Option<AccountId>, Failure> {
        let request = || RegisterRequest {
            username: username.to_owned(),
            email: None,
            password: password.into(),
            client: None,
        };
        match self.run(request())? {
            Some(Ok(Reply::Registered { account, .. })) => Ok(Some(account)),
            Some(Err(r @ (Rejection::WeakPassword(_) | Rejection::InvalidUsername(_)))) => {
                Err(self.fail(
                    FailureKind::Crash,
                    format!("simulator made an invalid registration: {r}"),
                ))
            }
            Some(_) => Ok(None),
            // A crash made the outcome unknown: a client would look, and try again if the
            // account is not there (after a crash before the write, it is not).
            None => match self.account_id(username) {
                Some(account) => Ok(Some(account)),
                None => match self.run(request())? {
                    Some(Ok(Reply::Registered { account, .. })) => Ok(Some(account)),
                    _ => Ok(None),
                },
            },
        }
    }

    /// A password login in session mode, with the password check done as `serve` does it.
    /// `Ok(None)`: the engine crashed under the call.
    pub fn login(
        &mut self,
        username: &str,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<Option<Result<SessionIssued, Rejection>>, Failure> {
        match self.login_any(username, password, client, LoginMode::Session)? {
            Some(Ok(Reply::LoggedIn(issued))) => Ok(Some(Ok(issued))),
            Some(Ok(other)) => {
                Err(self.fail(FailureKind::Crash, format!("login answered {other:?}")))
            }
            Some(Err(r)) => Ok(Some(Err(r))),
            None => Ok(None),
        }
    }

    /// Presents a session cookie value, as a request to GET /v1/me does.
    pub fn use_session(&mut self, secret: &str) -> Result<Result<SessionView, Rejection>, Failure> {
        let now = self.now();
        let session = match authenticate(&self.engine.views(), secret, now) {
            Ok(s) => s.clone(),
            Err(r) => return Ok(Err(r)),
        };
        if touch_due(&session, now, self.policy.session.touch_interval_ms)
            && let Some(Err(r)) =
                self.execute(Command::from(tessera_core::session::TouchSession {
                    session: session.id,
                }))?
        {
            return Ok(Err(r));
        }
        Ok(Ok(session))
    }

    /// A password login in token mode. `Ok(None)`: the engine crashed under the call.
    pub fn login_tokens(
        &mut self,
        username: &str,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<Option<Result<TokensIssued, Rejection>>, Failure> {
        match self.login_any(username, password, client, LoginMode::Token)? {
            Some(Ok(Reply::TokensIssued(issued))) => Ok(Some(Ok(issued))),
            Some(Ok(other)) => Err(self.fail(
                FailureKind::Crash,
                format!("expected tokens, got {other:?}"),
            )),
            Some(Err(r)) => Ok(Some(Err(r))),
            None => Ok(None),
        }
    }

    fn tokens_reply(
        &mut self,
        command: Command,
    ) -> Result<Option<Result<TokensIssued, Rejection>>, Failure> {
        match self.execute(command)? {
            Some(Ok(Reply::TokensIssued(issued))) => Ok(Some(Ok(issued))),
            Some(Ok(other)) => Err(self.fail(
                FailureKind::Crash,
                format!("expected tokens, got {other:?}"),
            )),
            Some(Err(r)) => Ok(Some(Err(r))),
            None => Ok(None),
        }
    }

    /// POST /oauth/token with a refresh token, as the HTTP adapter does it.
    pub fn refresh(
        &mut self,
        presented: &str,
    ) -> Result<Option<Result<TokensIssued, Rejection>>, Failure> {
        let Some(digest) = tessera_core::refresh::presented_digest(presented) else {
            return Ok(Some(Err(Rejection::RefreshTokenInvalid)));
        };
        self.tokens_reply(Command::from(tessera_core::refresh::RefreshTokens {
            presented: digest,
        }))
    }

    /// Two commands submitted before either is answered: the writer orders them, first
    /// first. `None` for a command whose outcome a crash made unknown.
    #[allow(clippy::type_complexity)]
    pub fn race(
        &mut self,
        first: Command,
        second: Command,
    ) -> Result<
        (
            Option<Result<Reply, Rejection>>,
            Option<Result<Reply, Rejection>>,
        ),
        Failure,
    > {
        // One message, one batch: the outcome cannot depend on how threads were scheduled.
        let mut receivers = self
            .engine
            .submit_all(vec![first, second])
            .unwrap_or_default()
            .into_iter();
        let mut wait = || match receivers.next().map(|rx| rx.blocking_recv()) {
            Some(Ok(Ok(outcome))) => Some(outcome.reply),
            _ => None,
        };
        let ra = wait();
        let rb = wait();
        if self.engine.failure().is_some() {
            self.note("race -> crash".into());
            self.recover()?;
            self.marks.hit("engine crashed and recovered");
        } else {
            let head = self.engine.head();
            if self
                .acknowledged
                .last()
                .is_none_or(|(s, _)| *s != head.sequence)
            {
                self.acknowledged.push((head.sequence, head.hash));
            }
        }
        Ok((ra, rb))
    }

    /// POST /v1/accounts from `client`, whatever it answers (a taken name, the address
    /// throttle, a weak password).
    pub fn register_from(
        &mut self,
        username: &str,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        self.run(RegisterRequest {
            username: username.to_owned(),
            email: None,
            password: password.into(),
            client: Some(client),
        })
    }

    /// A password login in either mode, whatever it answers (MFA challenges included).
    pub fn login_any(
        &mut self,
        username: &str,
        password: &str,
        client: std::net::IpAddr,
        mode: LoginMode,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        self.run(LoginRequest {
            username: username.to_owned(),
            password: password.into(),
            mode,
            client: Some(client),
            supersedes: None,
        })
    }

    /// POST /v1/login/mfa.
    pub fn answer_mfa(
        &mut self,
        mfa_token: &str,
        answer: tessera_core::mfa::MfaAnswer,
        client: std::net::IpAddr,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        let Some(presented) = tessera_core::mfa::presented_challenge_digest(mfa_token) else {
            return Ok(Some(Err(Rejection::MfaChallengeInvalid)));
        };
        self.execute(Command::from(tessera_core::mfa::AnswerMfaChallenge {
            presented,
            answer,
            keys: self.mfa_keys.clone(),
            client: Some(client),
            supersedes: None,
        }))
    }

    /// The WebAuthn relying party, for a scenario that plays the browser's part.
    pub fn webauthn(&self) -> &tessera_webauthn::Ceremonies {
        &self.webauthn
    }

    /// Registers a passkey made by `authenticator` for `account`, as
    /// `POST /v1/webauthn/register/start` and `/finish` do for a holder who has just logged
    /// in: the ceremony, then core's decision with the login as the step-up. The credential
    /// id, or `None` if a crash got in the way.
    pub fn register_passkey(
        &mut self,
        account: AccountId,
        authenticator: &mut Authenticator,
        rng: &mut ChaCha20Rng,
        logged_in_at: Timestamp,
    ) -> Result<Option<CredentialId>, Failure> {
        let now = self.now();
        let started = self
            .webauthn
            .start_registration(&self.engine.views(), account, CredentialKind::Passkey, now)
            .map_err(|e| self.fail(FailureKind::Crash, format!("registration start: {e}")))?;
        let response = authenticator
            .register_json(rng, &started.options, &Gesture::new(WEBAUTHN_ORIGIN))
            .map_err(|e| self.fail(FailureKind::Crash, format!("authenticator: {e}")))?;
        let credential = self
            .webauthn
            .finish_registration(&started.ceremony, account, &response, now)
            .map_err(|e| self.fail(FailureKind::Crash, format!("registration finish: {e}")))?;
        let command = tessera_core::webauthn::RegisterCredential {
            account,
            name: "Simulated passkey".into(),
            credential,
            step_up: StepUp::At(Some(logged_in_at)),
        };
        match self.execute(Command::from(command))? {
            Some(Ok(Reply::CredentialRegistered(done))) => Ok(Some(done.id)),
            Some(other) => Err(self.fail(
                FailureKind::Crash,
                format!("passkey registration answered {other:?}"),
            )),
            None => Ok(None),
        }
    }

    /// POST /v1/login/webauthn/start: a passwordless login ceremony.
    pub fn start_passkey_login(&mut self) -> Result<tessera_webauthn::Started, Failure> {
        let now = self.now();
        self.webauthn
            .start_login(now)
            .map_err(|e| self.fail(FailureKind::Crash, format!("passkey login start: {e}")))
    }

    /// POST /v1/login/webauthn/finish in token mode: the ceremony checks the assertion,
    /// then core decides. A ceremony's refusal is `Some(Err(_))`, as a client sees it.
    pub fn finish_passkey_login(
        &mut self,
        ceremony: &CeremonyId,
        credential: &serde_json::Value,
        client: std::net::IpAddr,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        let now = self.now();
        let context = tessera_webauthn::LoginContext {
            client: Some(client),
            supersedes: None,
        };
        let command = self.webauthn.passkey_login_command(
            &self.engine.views(),
            ceremony,
            credential,
            now,
            LoginMode::Token,
            context,
        );
        match command {
            Ok(command) => self.execute(Command::from(command)),
            Err(e) => {
                self.note(format!("passkey login -> ceremony refused ({e})"));
                Ok(Some(Err(e.rejection())))
            }
        }
    }

    /// POST /v1/login/mfa with a credential: the second-factor ceremony bound to the
    /// challenge, then core's decision, where a refused assertion counts as a wrong code.
    /// `answer` plays the browser: it gets the request options and returns the response.
    pub fn answer_mfa_with_credential(
        &mut self,
        mfa_token: &str,
        client: std::net::IpAddr,
        answer: impl FnOnce(&serde_json::Value) -> Option<serde_json::Value>,
    ) -> Result<Option<Result<Reply, Rejection>>, Failure> {
        let Some(presented) = tessera_core::mfa::presented_challenge_digest(mfa_token) else {
            return Ok(Some(Err(Rejection::MfaChallengeInvalid)));
        };
        let now = self.now();
        let challenge = self.engine.views().challenge_by_digest(&presented).cloned();
        let Some(challenge) = challenge else {
            return Ok(Some(Err(Rejection::MfaChallengeInvalid)));
        };
        let started = match self
            .webauthn
            .start_second_factor(&self.engine.views(), &challenge, now)
        {
            Ok(started) => started,
            Err(e) => return Ok(Some(Err(e.rejection()))),
        };
        let Some(response) = answer(&started.options) else {
            return Ok(Some(Err(Rejection::WebauthnCeremonyInvalid)));
        };
        let context = tessera_webauthn::LoginContext {
            client: Some(client),
            supersedes: None,
        };
        let answer = match self.webauthn.second_factor_command(
            &self.engine.views(),
            presented,
            &started.ceremony,
            &response,
            now,
            context,
        ) {
            Ok(answer) => answer,
            Err(rejection) => return Ok(Some(Err(rejection))),
        };
        if let Some(e) = &answer.refused {
            self.note(format!("second factor -> ceremony refused ({e})"));
        }
        self.execute(Command::from(answer.command))
    }

    /// Turns TOTP on for the account, as its holder would: the TOTP secret and the backup
    /// codes, or `None` if a crash got in the way.
    pub fn enable_mfa(&mut self, username: &str) -> Result<Option<Enrolled>, Failure> {
        let Some(account) = self
            .engine
            .views()
            .account_by_username(username)
            .map(|a| a.id)
        else {
            return Ok(None);
        };
        let started = self.execute(Command::from(tessera_core::mfa::StartTotpEnrolment {
            account,
            keys: self.mfa_keys.clone(),
            // The holder enrols right after proving who they are.
            step_up: (Some(self.now())).into(),
        }))?;
        let Some(Ok(Reply::TotpEnrolmentStarted(e))) = started else {
            return Ok(None);
        };
        let secret = data_encoding::BASE32_NOPAD
            .decode(e.secret_base32.as_bytes())
            .map_err(|_| self.fail(FailureKind::Crash, "enrolment secret is not base32"))?;
        let code = tessera_core::mfa::totp_code_at(&secret, self.now()).unwrap_or_default();
        let code = tessera_core::mfa::TotpCode::parse(&code)
            .map_err(|r| self.fail(FailureKind::Crash, format!("own code refused: {r}")))?;
        let confirmed = self.execute(Command::from(tessera_core::mfa::ConfirmTotp {
            account,
            code,
            keys: self.mfa_keys.clone(),
            client: None,
        }))?;
        let Some(Ok(Reply::TotpEnabled { backup_codes })) = confirmed else {
            return Ok(None);
        };
        let codes = backup_codes
            .expose()
            .into_iter()
            .map(str::to_owned)
            .collect();
        // The confirming step is spent; the holder's next code is a step later.
        self.advance(30_000);
        Ok(Some((secret, codes)))
    }

    pub fn account_id(&self, username: &str) -> Option<AccountId> {
        self.engine
            .views()
            .account_by_username(username)
            .map(|a| a.id)
    }

    /// Whether the account has MFA on.
    pub fn mfa_enabled(&self, username: &str) -> bool {
        let views = self.engine.views();
        views
            .account_by_username(username)
            .is_some_and(|a| views.mfa_status(&a.id, self.now()).enabled)
    }

    /// Milliseconds the account must wait before its next login counts (throttling).
    pub fn account_wait_ms(&self, username: &str) -> u64 {
        let views = self.engine.views();
        views.account_by_username(username).map_or(0, |a| {
            tessera_core::throttle::account_wait_ms(
                &views,
                &a.id,
                self.now(),
                &self.policy.throttle,
            )
        })
    }

    /// The API-key digest key the world's server would load from its key store.
    pub fn api_key_pepper(&self) -> tessera_core::apikey::ApiKeyPepper {
        tessera_core::apikey::ApiKeyPepper::from_key(&[0x51; 32])
    }

    /// Authenticates a presented API key as GET /v1/api-keys/whoami does.
    pub fn authenticate_api_key(
        &self,
        presented: &str,
    ) -> Result<tessera_core::ApiKeyId, tessera_core::apikey::KeyRefusal> {
        let views = self.engine.views();
        tessera_core::apikey::authenticate(
            &views,
            presented,
            &self.api_key_pepper(),
            &self.policy.api_keys.vendor,
            self.now(),
            None,
            tessera_core::apikey::KeyRoute {
                live_only: false,
                scope: None,
            },
        )
        .map(|k| k.id)
        .map_err(|(r, _)| r)
    }

    /// The policy the world's engine runs under.
    pub fn policy(&self) -> &tessera_core::Policy {
        &self.policy
    }

    /// Signs access-token claims with the world's key, as the HTTP adapter does.
    pub fn sign(&self, claims: &tessera_core::token::AccessClaims) -> String {
        self.signer.sign(claims).unwrap_or_default()
    }

    /// Verifies a bearer token as GET /v1/me does: signature and claims, then the blocklist.
    pub fn verify_bearer(
        &self,
        token: &str,
    ) -> Result<tessera_core::token::AccessClaims, tessera_core::token::TokenRejection> {
        let now = self.now();
        let views = self.engine.views();
        let claims = tessera_core::token::verify_access_token(
            token,
            views.signing_keys(),
            now,
            &self.policy.token,
        )?;
        tessera_core::blocklist::check_not_revoked(&views, &claims, now)?;
        Ok(claims)
    }

    /// Whether a refresh family still mints, from the views (presenting a token would spend
    /// it).
    pub fn family_live(&self, family: &tessera_core::FamilyId) -> bool {
        let now = self.now();
        self.engine
            .views()
            .family(family)
            .is_some_and(|f| f.is_live(now))
    }

    /// The kid of the signing key, for forging tokens that name it.
    pub fn kid(&self) -> String {
        self.signer.kid().to_owned()
    }

    /// The published public key, as the JWKS gives it to anyone.
    pub fn public_key(&self) -> [u8; 32] {
        *self.signer.public_key()
    }

    /// Whether the cookie value would be accepted right now, without touching anything.
    pub fn accepts(&self, secret: &str) -> bool {
        authenticate(&self.engine.views(), secret, self.now()).is_ok()
    }

    pub fn logout(&mut self, secret: &str) -> Result<bool, Failure> {
        let Ok(session) = authenticate(&self.engine.views(), secret, self.now()).cloned() else {
            return Ok(false);
        };
        Ok(matches!(
            self.execute(Command::from(tessera_core::session::Logout {
                session: session.id
            }))?,
            Some(Ok(_))
        ))
    }

    /// `Ok(None)`: crashed, outcome unknown; `Ok(Some(Err(_)))`: refused.
    #[allow(clippy::type_complexity)]
    pub fn change_password(
        &mut self,
        username: &str,
        current: &str,
        new: &str,
        via: Option<&str>,
    ) -> Result<Option<Result<Option<SessionIssued>, Rejection>>, Failure> {
        let Some(account) = self.account_id(username) else {
            return Ok(Some(Err(Rejection::InvalidCredentials)));
        };
        let current_session = via.and_then(|s| {
            authenticate(&self.engine.views(), s, self.now())
                .ok()
                .map(|v| v.id)
        });
        let request = ChangePasswordRequest {
            account,
            current_password: current.into(),
            new_password: new.into(),
            current_session,
            client: None,
        };
        Ok(match self.run(request)? {
            Some(Ok(Reply::PasswordChanged { session })) => Some(Ok(session)),
            Some(Err(Rejection::WeakPassword(_))) => {
                return Err(self.fail(FailureKind::Crash, "simulator chose a weak password"));
            }
            Some(Ok(other)) => {
                return Err(self.fail(
                    FailureKind::Crash,
                    format!("password change answered {other:?}"),
                ));
            }
            Some(Err(r)) => Some(Err(r)),
            None => None,
        })
    }

    /// Whether `candidate` is the account's password now (after a crash left it unknown).
    pub fn password_is(&mut self, username: &str, candidate: &str) -> Result<bool, Failure> {
        let account = self.engine.views().account_by_username(username).cloned();
        let Some(account) = account else {
            return Ok(false);
        };
        Ok(matches!(
            tessera_core::password::verify(candidate, &account.password_hash, &self.policy.argon2),
            tessera_core::password::Verification::Match { .. }
        ))
    }

    /// Ends one of the account's sessions, as DELETE /v1/sessions/{id} does. `false` if it
    /// was refused or the outcome is unknown.
    pub fn revoke(
        &mut self,
        account: AccountId,
        session: tessera_core::SessionId,
    ) -> Result<bool, Failure> {
        Ok(matches!(
            self.execute(Command::from(tessera_core::session::RevokeSession {
                account,
                session,
                // The holder re-authenticates for the sensitive action.
                step_up: (Some(self.now())).into(),
            }))?,
            Some(Ok(_))
        ))
    }

    /// Moves the virtual clock forward by `ms`, with the drift the seed chose.
    pub fn advance(&mut self, ms: u64) {
        let drifted = ms.saturating_add(ms.saturating_mul(self.drift_ppm) / 1_000_000);
        self.clock.advance(drifted);
    }

    /// The audit run after every step: the views' own invariants, the hash chain, and that
    /// the live views equal a fold of the log. The fold and the chain walk are incremental
    /// (a shadow folded from every envelope once, in order), so a step costs what it wrote;
    /// the persisted view trees are compared with the fold every `PERSISTED_EVERY` steps and
    /// by `audit_full`.
    pub fn audit(&mut self) -> Result<(), Failure> {
        let full = self.step.is_multiple_of(PERSISTED_EVERY);
        self.audit_with(full)
    }

    /// The audit, including the persisted views, whatever the step.
    pub fn audit_full(&mut self) -> Result<(), Failure> {
        self.audit_with(true)
    }

    fn audit_with(&mut self, persisted: bool) -> Result<(), Failure> {
        let mut auditor = self.auditor.take().unwrap_or_default();
        let result = self.engine.inspect(move |store, views| {
            let verdict = auditor.catch_up(store, views, persisted);
            (auditor, verdict)
        });
        match result {
            Ok((auditor, Ok(()))) => {
                self.auditor = Some(auditor);
                Ok(())
            }
            Ok((_, Err(why))) => Err(self.fail(FailureKind::Invariant, why)),
            Err(e) => Err(self.fail(
                FailureKind::Crash,
                format!(
                    "audit: {e} (incarnation {}, engine failure {:?})",
                    self.incarnation,
                    self.engine.failure()
                ),
            )),
        }
    }

    /// The log's head: its length and the hash that stands for every byte of it.
    pub fn head(&self) -> tessera_storage::Head {
        self.engine.head()
    }

    pub fn shutdown(self) -> tessera_storage::Head {
        let head = self.engine.head();
        self.engine.shutdown();
        head
    }
}

fn describe(reply: &Result<Reply, Rejection>) -> String {
    match reply {
        Ok(Reply::Registered { username, .. }) => format!("registered {username}"),
        Ok(Reply::LoggedIn(issued)) => format!("session {}", issued.session),
        Ok(other) => format!("{other:?}"),
        Err(r) => format!("refused: {r}"),
    }
}

/// Opens the store. The simulated crash is a process crash, which sled's flush survives; the
/// fdatasync that guards against power loss would only slow a thousand seeds down.
fn open_when_released(
    path: &std::path::Path,
    postgres: Option<&str>,
) -> Result<Box<dyn EventStore>, tessera_storage::OpenError> {
    if let Some(url) = postgres {
        // Opened as a store only this process writes: the lease is taken at the first
        // append, and the engine never follows.
        return tessera_pgstore::PgStore::open(tessera_pgstore::PgOptions::new(url))
            .map(|s| Box::new(SoleWriter(s)) as Box<dyn EventStore>);
    }
    SledStore::open(
        path,
        SledOptions {
            fdatasync: false,
            ..SledOptions::default()
        },
    )
    .map(|s| Box::new(s) as Box<dyn EventStore>)
}

/// A PostgreSQL store driven as the only writer: the simulator's crashes stop the engine and
/// reopen the store, as they do with sled, instead of the engine following the log.
#[derive(Debug)]
struct SoleWriter(tessera_pgstore::PgStore);

impl EventStore for SoleWriter {
    fn head(&self) -> tessera_storage::Head {
        self.0.head()
    }
    fn stream_version(
        &self,
        stream: &tessera_core::StreamId,
    ) -> Result<u64, tessera_storage::ReadError> {
        self.0.stream_version(stream)
    }
    fn append(
        &mut self,
        batch: tessera_storage::AppendBatch,
    ) -> Result<Vec<tessera_storage::Envelope>, tessera_storage::AppendError> {
        self.0.append(batch)
    }
    fn read_stream(
        &self,
        stream: &tessera_core::StreamId,
    ) -> Result<Vec<tessera_storage::Envelope>, tessera_storage::ReadError> {
        self.0.read_stream(stream)
    }
    fn read_from(
        &self,
        from: u64,
    ) -> Box<dyn Iterator<Item = Result<tessera_storage::Envelope, tessera_storage::ReadError>> + '_>
    {
        self.0.read_from(from)
    }
    fn view_records(
        &self,
    ) -> Box<
        dyn Iterator<
                Item = Result<
                    (tessera_core::ViewKey, tessera_core::ViewRecord),
                    tessera_storage::ReadError,
                >,
            > + '_,
    > {
        self.0.view_records()
    }
    fn views_trusted(&self) -> Result<bool, tessera_storage::ReadError> {
        self.0.views_trusted()
    }
    fn replace_views(
        &mut self,
        records: Vec<(tessera_core::ViewKey, tessera_core::ViewRecord)>,
    ) -> Result<(), tessera_storage::AppendError> {
        self.0.replace_views(records)
    }
    fn log_reader(&self) -> Box<dyn tessera_storage::LogReader> {
        self.0.log_reader()
    }
}

fn start_engine(
    seed: u64,
    incarnation: u32,
    path: &std::path::Path,
    postgres: Option<&str>,
    policy: &Policy,
    clock: Arc<SimClock>,
    crash: Option<CrashPlan>,
) -> Result<Engine, Failure> {
    let store = open_when_released(path, postgres)
        .map_err(|e| Failure::new(seed, 0, FailureKind::Crash, format!("open store: {e}")))?;
    let (nth, point) = crash.map_or((u64::MAX, FaultPoint::BeforeWrite), |c| {
        (c.at_append, c.point)
    });
    let store = FaultyStore::new(store, nth, point);
    let rng = seed::stream(seed, &format!("engine-{incarnation}"));
    let config = EngineConfig {
        check_invariants: true,
        ..EngineConfig::default()
    };
    Engine::start(
        Box::new(store),
        policy.clone(),
        clock,
        Box::new(rng),
        config,
    )
    .map_err(|e| Failure::new(seed, 0, FailureKind::Crash, format!("start engine: {e}")))
}
