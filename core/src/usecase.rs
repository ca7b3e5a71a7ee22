//! Use cases: the half of each flow that runs before the writer, written once.
//!
//! Every driver of the engine (the HTTP adapter, the simulator, the integration-test
//! workload, the load tool, the operator commands) runs a use case through these functions
//! and only adapts input and output:
//!
//! ```text
//!   request ──plan (views' read lock: address pre-check, lookups)──▶ Plan (owned)
//!           ──prepare (hashing pool, no lock held: argon2, against the decoy if no account)──▶ command
//!           ──writer: decide + append──▶ reply
//! ```
//!
//! [`UseCase::plan`] is cheap and reads the views; it returns an owned plan, so no lock can
//! be held across the expensive half. [`Planned::prepare`] does the argon2 work with the
//! randomness and the work area its driver gives it. Use cases without argon2 work are plain
//! functions from the request to the command ([`refresh`], [`revocation`],
//! [`answer_challenge`], [`confirm_totp`]).

use std::net::IpAddr;

use rand_core::CryptoRng;

use crate::account::{ChangePassword, Register, email_plausible, username_key};
use crate::blocklist::RevokeAccessToken;
use crate::mfa::{AnswerMfaChallenge, ConfirmTotp, MfaAnswer, MfaKeys, TotpCode};
use crate::password::{Password, PasswordHash, WorkArea};
use crate::prepare::CheckTarget;
use crate::refresh::{RefreshTokens, RevokeRefreshToken};
use crate::session::Login;
use crate::token::verify_access_token;
use crate::{
    AccountId, Decide, Decision, Env, LoginMode, Policy, Rejection, SessionId, Timestamp, Views,
    prepare,
};

/// What the expensive half is given by its driver.
pub struct Prepare<'a> {
    /// Salts for new hashes (the OS RNG in the server, a seeded one in the simulator).
    pub rng: &'a mut dyn CryptoRng,
    /// argon2's memory, kept between hashes by the thread that runs them.
    pub area: &'a mut WorkArea,
    /// The hash checked when there is no account, so that unknown usernames cost the same.
    pub decoy: &'a PasswordHash,
    /// The policy the engine decides under.
    pub policy: &'a Policy,
}

impl std::fmt::Debug for Prepare<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepare").finish_non_exhaustive()
    }
}

/// A use case whose command needs argon2 work.
pub trait UseCase {
    /// What the cheap half found, owned so that no lock is held across the expensive half.
    type Plan: Planned;
    /// The cheap half, under the views' read lock: pre-checks and lookups.
    fn plan(self, views: &Views, now: Timestamp, policy: &Policy) -> Result<Self::Plan, Rejection>;
}

/// A planned use case, ready for its expensive half.
pub trait Planned: Send + 'static {
    /// The command it becomes.
    type Command: Decide;
    /// The expensive half: argon2, outside every lock.
    fn prepare(self, prep: Prepare<'_>) -> Result<Self::Command, Rejection>;
}

/// `POST /v1/accounts`: a new account.
#[derive(Debug)]
pub struct RegisterRequest {
    /// As typed.
    pub username: String,
    /// Optional contact address.
    pub email: Option<String>,
    /// The new password.
    pub password: Password,
    /// Where the request came from: registrations are counted and throttled per address.
    /// `None` for operator-created accounts, which are not throttled.
    pub client: Option<IpAddr>,
}

/// A registration whose address may register now, with whether the name was seen taken.
#[derive(Debug)]
pub struct RegisterPlan {
    request: RegisterRequest,
    taken: bool,
}

impl UseCase for RegisterRequest {
    type Plan = RegisterPlan;

    /// Cheap checks first, so that a throttled address, a malformed or a taken username
    /// never costs an argon2 hash. Registration says whether a name is taken anyway (409);
    /// the writer checks again, so two racing registrations still get one winner. A taken
    /// name from a known address still goes to the writer (without a hash), which records
    /// the refusal: harvesting taken names counts toward the address's throttle.
    fn plan(
        self,
        views: &Views,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<RegisterPlan, Rejection> {
        crate::throttle::check_registration(views, self.client, now, &policy.throttle)?;
        self.validate()?;
        let taken = views.account_by_username(&self.username).is_some();
        if taken && self.client.is_none() {
            return Err(Rejection::UsernameTaken);
        }
        Ok(RegisterPlan {
            request: self,
            taken,
        })
    }
}

impl Planned for RegisterPlan {
    type Command = Register;

    fn prepare(self, prep: Prepare<'_>) -> Result<Register, Rejection> {
        if !self.taken {
            return self.request.prepare(prep);
        }
        self.request.validate()?;
        Ok(Register {
            username: self.request.username.trim().to_owned(),
            email: self.request.email,
            password_hash: None,
            client: self.request.client,
        })
    }
}

impl RegisterRequest {
    /// The username's and email's shape. Checked by the plan and again by `prepare`, so that
    /// a driver that runs only the expensive half (to exercise the writer's own uniqueness
    /// check) cannot skip it.
    pub fn validate(&self) -> Result<(), Rejection> {
        username_key(&self.username).map_err(Rejection::InvalidUsername)?;
        if self.email.as_deref().is_some_and(|e| !email_plausible(e)) {
            return Err(Rejection::InvalidEmail);
        }
        Ok(())
    }
}

impl Planned for RegisterRequest {
    type Command = Register;

    fn prepare(self, prep: Prepare<'_>) -> Result<Register, Rejection> {
        self.validate()?;
        let password_hash = prepare::new_password(
            self.password.expose(),
            &self.username,
            self.email.as_deref(),
            prep.policy,
            prep.rng,
        )?;
        Ok(Register {
            username: self.username.trim().to_owned(),
            email: self.email,
            password_hash: Some(password_hash),
            client: self.client,
        })
    }
}

/// `POST /v1/login`: a password login.
#[derive(Debug)]
pub struct LoginRequest {
    /// As typed.
    pub username: String,
    /// As typed.
    pub password: Password,
    /// Session or tokens.
    pub mode: LoginMode,
    /// Where the request came from.
    pub client: Option<IpAddr>,
    /// The live session whose cookie the request carried, which the login ends.
    pub supersedes: Option<SessionId>,
}

/// A login whose address may try and whose account (if any) was looked up.
#[derive(Debug)]
pub struct LoginPlan {
    target: CheckTarget,
    password: Password,
    mode: LoginMode,
    client: Option<IpAddr>,
    supersedes: Option<SessionId>,
}

impl UseCase for LoginRequest {
    type Plan = LoginPlan;

    /// An address that is failing too often waits before anything else happens: no account
    /// lookup, no argon2 (the writer decides again with the same rule).
    fn plan(self, views: &Views, now: Timestamp, policy: &Policy) -> Result<LoginPlan, Rejection> {
        crate::throttle::check_address(views, self.client, now, &policy.throttle)?;
        Ok(LoginPlan {
            target: CheckTarget::of(views, views.account_by_username(&self.username), policy),
            password: self.password,
            mode: self.mode,
            client: self.client,
            supersedes: self.supersedes,
        })
    }
}

impl Planned for LoginPlan {
    type Command = Login;

    fn prepare(self, prep: Prepare<'_>) -> Result<Login, Rejection> {
        let check = prepare::check_password_in(
            self.password.expose(),
            &self.target,
            prep.decoy,
            prep.policy,
            prep.rng,
            prep.area,
        );
        Ok(Login {
            check,
            mode: self.mode,
            client: self.client,
            supersedes: self.supersedes,
        })
    }
}

/// `POST /v1/password`: the holder changes their password.
#[derive(Debug)]
pub struct ChangePasswordRequest {
    /// The authenticated holder.
    pub account: AccountId,
    /// Proves the holder knows it.
    pub current_password: Password,
    /// Must meet the policy.
    pub new_password: Password,
    /// The session the request came through, which continues under a fresh id.
    pub current_session: Option<SessionId>,
    /// Where the request came from.
    pub client: Option<IpAddr>,
}

/// A password change with the holder's account looked up.
#[derive(Debug)]
pub struct ChangePasswordPlan {
    target: CheckTarget,
    request: ChangePasswordRequest,
}

impl UseCase for ChangePasswordRequest {
    type Plan = ChangePasswordPlan;

    fn plan(
        self,
        views: &Views,
        _now: Timestamp,
        policy: &Policy,
    ) -> Result<ChangePasswordPlan, Rejection> {
        Ok(ChangePasswordPlan {
            target: CheckTarget::of(views, views.account(&self.account), policy),
            request: self,
        })
    }
}

impl Planned for ChangePasswordPlan {
    type Command = ChangePassword;

    fn prepare(self, prep: Prepare<'_>) -> Result<ChangePassword, Rejection> {
        let r = self.request;
        // The new password's problems are reported before the current one is checked.
        // The holder's own names, which the new password must not be built on; an unknown
        // account fails the current-password check below anyway.
        let (username, email) = self
            .target
            .account
            .as_ref()
            .map_or(("", None), |a| (a.username.as_str(), a.email.as_deref()));
        let new_hash = prepare::new_password(
            r.new_password.expose(),
            username,
            email,
            prep.policy,
            prep.rng,
        )?;
        let check = prepare::check_password_in(
            r.current_password.expose(),
            &self.target,
            prep.decoy,
            prep.policy,
            prep.rng,
            prep.area,
        );
        Ok(ChangePassword {
            check,
            new_hash,
            current_session: r.current_session,
            client: r.client,
        })
    }
}

/// Runs a use case's both halves in this thread, for synchronous drivers and tests.
pub fn plan_and_prepare<U: UseCase>(
    usecase: U,
    views: &Views,
    now: Timestamp,
    prep: Prepare<'_>,
) -> Result<<U::Plan as Planned>::Command, Rejection> {
    usecase.plan(views, now, prep.policy)?.prepare(prep)
}

/// `grant_type=refresh_token`: garbage, an access token or a session cookie is refused
/// before it reaches the writer.
pub fn refresh(presented: &str) -> Result<RefreshTokens, Rejection> {
    crate::refresh::presented_digest(presented)
        .map(|presented| RefreshTokens { presented })
        .ok_or(Rejection::RefreshTokenInvalid)
}

/// RFC 7009 revocation of whatever token was presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// A refresh token: its family.
    Refresh(RevokeRefreshToken),
    /// An access token, verified.
    Access(RevokeAccessToken),
}

impl Decide for Revocation {
    type Reply = ();

    fn kind(&self) -> &'static str {
        match self {
            Self::Refresh(c) => c.kind(),
            Self::Access(c) => c.kind(),
        }
    }

    fn decide(self, views: &Views, env: &mut Env<'_>) -> Decision<()> {
        match self {
            Self::Refresh(c) => c.decide(views, env),
            Self::Access(c) => c.decide(views, env),
        }
    }
}

/// The revocation a presented token asks for, or `None` when it is no token of ours (RFC
/// 7009 answers 200 all the same). The hint only says where to look first (RFC 7009 §2.1);
/// the kinds can be told apart, so it is not needed.
pub fn revocation(
    token: &str,
    views: &Views,
    now: Timestamp,
    policy: &Policy,
) -> Option<Revocation> {
    if let Some(presented) = crate::refresh::presented_digest(token) {
        return Some(Revocation::Refresh(RevokeRefreshToken { presented }));
    }
    let claims = verify_access_token(token, views.signing_keys(), now, &policy.token).ok()?;
    Some(Revocation::Access(RevokeAccessToken {
        jti: claims.jti,
        account: claims.sub,
        expires_at: claims.expires_at(),
    }))
}

/// `POST /v1/login/mfa`: a string that is no `mfa_token` never reaches the writer.
pub fn answer_challenge(
    mfa_token: &str,
    answer: MfaAnswer,
    keys: MfaKeys,
    client: Option<IpAddr>,
    supersedes: Option<SessionId>,
) -> Result<AnswerMfaChallenge, Rejection> {
    let presented =
        crate::mfa::presented_challenge_digest(mfa_token).ok_or(Rejection::MfaChallengeInvalid)?;
    Ok(AnswerMfaChallenge {
        presented,
        answer,
        keys,
        client,
        supersedes,
    })
}

/// `POST /v1/mfa/totp/confirm`: a code that is not six digits never reaches the writer.
pub fn confirm_totp(
    account: AccountId,
    code: &str,
    keys: MfaKeys,
    client: Option<IpAddr>,
) -> Result<ConfirmTotp, Rejection> {
    Ok(ConfirmTotp {
        account,
        code: TotpCode::parse(code)?,
        keys,
        client,
    })
}

/// A sensitive action's command whose step-up can be the password re-entered in the
/// request ([`StepUpRequest`]).
pub trait NeedsStepUp: Decide + Send + std::fmt::Debug + 'static {
    /// The account the action is for: the password is checked against its hash.
    fn account(&self) -> AccountId;
    /// Replaces the command's step-up.
    fn set_step_up(&mut self, step_up: crate::session::StepUp);
}

macro_rules! needs_step_up {
    ($($ty:ty),*) => {$(
        impl NeedsStepUp for $ty {
            fn account(&self) -> AccountId {
                self.account
            }
            fn set_step_up(&mut self, step_up: crate::session::StepUp) {
                self.step_up = step_up;
            }
        }
    )*};
}

needs_step_up!(
    crate::mfa::StartTotpEnrolment,
    crate::webauthn::RegisterCredential,
    crate::mfa::DisableTotp,
    crate::mfa::ReplaceBackupCodes,
    crate::session::RevokeSession,
    crate::blocklist::SignOutEverywhere,
    crate::apikey::CreateApiKey,
    crate::apikey::RotateApiKey
);

/// A sensitive action with the password re-entered in the request: the password is checked
/// with argon2 off the writer, as a login's is, and the command carries the check
/// ([`crate::session::StepUp::Password`]); the writer decides it as a login would (a wrong
/// password is a failed login, and a throttled account is refused).
#[derive(Debug)]
pub struct StepUpRequest<C> {
    /// The sensitive action.
    pub command: C,
    /// As typed.
    pub password: Password,
    /// Where the request came from.
    pub client: Option<IpAddr>,
    /// The second factor given with the password, for an account with MFA on.
    pub second_factor: Option<crate::mfa::SecondFactor>,
}

/// A step-up with the account looked up.
#[derive(Debug)]
pub struct StepUpPlan<C> {
    target: CheckTarget,
    request: StepUpRequest<C>,
}

impl<C: NeedsStepUp> UseCase for StepUpRequest<C> {
    type Plan = StepUpPlan<C>;

    /// The address throttle first, as for a login: a failing address waits before argon2.
    fn plan(
        self,
        views: &Views,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<StepUpPlan<C>, Rejection> {
        crate::throttle::check_address(views, self.client, now, &policy.throttle)?;
        Ok(StepUpPlan {
            target: CheckTarget::of(views, views.account(&self.command.account()), policy),
            request: self,
        })
    }
}

impl<C: NeedsStepUp> Planned for StepUpPlan<C> {
    type Command = C;

    fn prepare(self, prep: Prepare<'_>) -> Result<C, Rejection> {
        let r = self.request;
        let check = prepare::check_password_in(
            r.password.expose(),
            &self.target,
            prep.decoy,
            prep.policy,
            prep.rng,
            prep.area,
        );
        let mut command = r.command;
        command.set_step_up(crate::session::StepUp::Password {
            check,
            client: r.client,
            second_factor: r.second_factor,
        });
        Ok(command)
    }
}

/// `tessera import users`: one account from a legacy table. The hash was read and checked
/// for shape by [`crate::legacy::LegacyHash::parse`]; an MD5 is wrapped in argon2id here,
/// off the writer.
#[derive(Debug)]
pub struct ImportRequest {
    /// As the table had it.
    pub username: String,
    /// Optional contact address.
    pub email: Option<String>,
    /// The legacy hash.
    pub hash: crate::legacy::LegacyHash,
    /// The legacy system's last login, if the table said.
    pub last_active_at: Option<Timestamp>,
}

impl UseCase for ImportRequest {
    type Plan = Self;

    /// A malformed or taken username never costs an argon2 hash: an import run again after
    /// a crash skips what it already imported at the price of a lookup.
    fn plan(self, views: &Views, _now: Timestamp, _policy: &Policy) -> Result<Self, Rejection> {
        username_key(&self.username).map_err(Rejection::InvalidUsername)?;
        if self.email.as_deref().is_some_and(|e| !email_plausible(e)) {
            return Err(Rejection::InvalidEmail);
        }
        if views.account_by_username(&self.username).is_some() {
            return Err(Rejection::UsernameTaken);
        }
        Ok(self)
    }
}

impl Planned for ImportRequest {
    type Command = crate::migration::ImportAccount;

    fn prepare(self, prep: Prepare<'_>) -> Result<Self::Command, Rejection> {
        let mut salt = [0u8; 16];
        prep.rng.fill_bytes(&mut salt);
        // Policy validation at start-up guarantees argon2 accepts the parameters.
        let password_hash = self
            .hash
            .into_stored(salt, &prep.policy.argon2, prep.area)
            .map_err(|_| Rejection::WeakPassword(Vec::new()))?;
        Ok(crate::migration::ImportAccount {
            username: self.username.trim().to_owned(),
            email: self.email,
            password_hash,
            last_active_at: self.last_active_at,
        })
    }
}

/// `POST /v1/password/reset`: a new password with a reset token the sunset issued.
pub struct ResetPasswordRequest {
    /// As presented; zeroed on drop and never shown by `Debug`.
    pub reset_token: zeroize::Zeroizing<String>,
    /// Must meet the policy.
    pub new_password: Password,
    /// Where the request came from.
    pub client: Option<IpAddr>,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPasswordRequest")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A reset whose token names a retired account, with the holder's names (the new password
/// must not be built on them).
#[derive(Debug)]
pub struct ResetPasswordPlan {
    presented: crate::secret::SecretDigest,
    username: String,
    email: Option<String>,
    new_password: Password,
    client: Option<IpAddr>,
}

impl UseCase for ResetPasswordRequest {
    type Plan = ResetPasswordPlan;

    /// A token that is not one, was never issued, was spent or replaced, or has expired is
    /// refused before any hashing, all alike.
    fn plan(
        self,
        views: &Views,
        now: Timestamp,
        _policy: &Policy,
    ) -> Result<ResetPasswordPlan, Rejection> {
        let presented = crate::migration::presented_reset_digest(&self.reset_token)
            .ok_or(Rejection::ResetTokenInvalid)?;
        let account = crate::migration::reset_account(views, &presented, now)
            .and_then(|id| views.account(&id))
            .ok_or(Rejection::ResetTokenInvalid)?;
        Ok(ResetPasswordPlan {
            presented,
            username: account.username.clone(),
            email: account.email.clone(),
            new_password: self.new_password,
            client: self.client,
        })
    }
}

impl Planned for ResetPasswordPlan {
    type Command = crate::migration::ResetPassword;

    fn prepare(self, prep: Prepare<'_>) -> Result<Self::Command, Rejection> {
        let new_hash = prepare::new_password(
            self.new_password.expose(),
            &self.username,
            self.email.as_deref(),
            prep.policy,
            prep.rng,
        )?;
        Ok(crate::migration::ResetPassword {
            presented: self.presented,
            new_hash,
            client: self.client,
        })
    }
}
