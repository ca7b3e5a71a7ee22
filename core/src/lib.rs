//! The Tessera domain: every rule about accounts, passwords and sessions, as pure functions.
//!
//! # What this crate owns
//! - The commands a caller can ask for ([`Command`]), the events that record what happened
//!   ([`Event`]), and the refusals a caller can get ([`Rejection`], with stable numeric codes).
//! - [`decide()`]: given the current [`Views`], a command and an [`Env`], the [`Decision`] —
//!   the events to append and the reply. A decision may record events *and* refuse (a failed
//!   login is a fact the log keeps even though the caller gets an error).
//! - [`Views::apply`]: folds one recorded event into the views. Views are a pure function of
//!   the log, so they can be rebuilt and compared at any time.
//! - Tokens: the signing-key set and [`signing_key::Signer`], access-token claims and their
//!   pure verification ([`token::verify_access_token`]), rotating refresh families with
//!   reuse detection ([`refresh`]), and the [`blocklist`] check on verified claims. Signing
//!   and verifying run outside the writer; only issuing claims and rotation are decided.
//! - MFA ([`mfa`]): TOTP enrolment with sealed secrets, backup codes, the login challenge
//!   with its attempt limit; login throttling per account and per address ([`throttle`]).
//! - The CPU-heavy, order-independent work that runs before a decision ([`prepare`]):
//!   hashing and verifying passwords with argon2id.
//!
//! # What this crate must not do
//! No clock, no OS randomness, no files, no sockets, no threads, no async. Time and randomness
//! arrive through [`Env`]; the workspace `clippy.toml` bans the usual ways around that. The
//! same code therefore runs under the server, the deterministic simulator and property tests.
//!
//! # How to drive it
//! 1. Build the command with its use case ([`usecase`]): the plan reads the views (pre-checks,
//!    lookups), then the argon2 half runs wherever CPU is cheap, outside every lock.
//! 2. Serially, per command: `let d = command.decide(&views, &mut env)`; append `d.events`
//!    durably; `views.apply(at, &event, &mut touched)` for each; then hand `d.reply` (the use
//!    case's own reply type) to the caller. The storage crate's writer does exactly this, in
//!    batches.
//!
//! ```
//! use rand::SeedableRng;
//! use tessera_core::usecase::{Planned, Prepare, RegisterRequest, UseCase};
//! use tessera_core::password::{WorkArea, decoy_hash};
//! use tessera_core::{Decide, Env, Policy, Timestamp, Views};
//!
//! let policy = Policy::fast_for_tests();
//! let mut views = Views::for_policy(&policy);
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(7);
//!
//! // The use case: cheap checks against the views, then argon2.
//! let request = RegisterRequest {
//!     username: "alice".into(),
//!     email: None,
//!     password: "Correct horse 9 battery".into(),
//!     client: None,
//! };
//! let decoy = decoy_hash(&policy.argon2)?;
//! let register = request.plan(&views, now, &policy)?.prepare(Prepare {
//!     rng: &mut rng,
//!     area: &mut WorkArea::default(),
//!     decoy: &decoy,
//!     policy: &policy,
//! })?;
//!
//! // The decision, then its events folded into the views.
//! let decision = register.decide(&views, &mut Env::new(now, &mut rng, &policy));
//! let mut touched = Vec::new();
//! for pending in &decision.events {
//!     views.apply(now, &pending.event, &mut touched)?;
//! }
//! let registered = decision.reply?;
//! assert_eq!(views.account_by_username("ALICE").map(|a| a.id), Some(registered.account));
//! views.check_records(&touched)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod account;
pub mod apikey;
pub mod blocklist;
pub mod command;
pub mod csrf;
pub mod decide;
pub mod env;
pub mod event;
pub mod id;
pub mod identity;
pub mod invariant;
pub mod legacy;
pub mod mfa;
pub mod migration;
pub mod oauth;
pub mod password;
pub mod policy;
pub mod prepare;
pub mod refresh;
pub mod rejection;
pub mod secret;
pub mod session;
pub mod signing_key;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod throttle;
pub mod time;
pub mod token;
pub mod usecase;
pub mod view;
pub mod webauthn;

pub use command::{
    AccountCommand, ApiKeyCommand, Command, IdentityCommand, KeyCommand, LoginMode, MfaCommand,
    MigrationCommand, OAuthCommand, PasswordCheck, SessionCommand, TokenCommand, WebauthnCommand,
};
pub use decide::{Decide, Decision, Reply, decide};
pub use env::Env;
pub use event::{
    Actor, Event, FamilyRevokeReason, LoginFailure, Pending, RegistrationOutcome, SessionEndReason,
};
pub use id::{AccountId, ApiKeyId, ChallengeId, FamilyId, SessionId, StreamId, TokenId};
pub use policy::{Policy, TokenPolicy};
pub use rejection::Rejection;
pub use time::Timestamp;
pub use token::{AccessClaims, TokenRejection};
pub use view::{ViewKey, ViewRecord, Views};
