//! The HTTP adapter: hyper 1 on tokio, in front of the engine.
//!
//! # What this crate owns
//! Parsing and validating requests, turning them into core commands or view queries, and
//! mapping replies to HTTP: RFC 9457 problem+json errors, cookie rules, CSRF checks, limits
//! (body size, header and request timeouts, connection count, the bounded argon2 pool),
//! `/healthz`, `/metrics`, graceful shutdown, and the browser [`pages`] (sign-in, MFA, OAuth
//! consent, device approval) over the same use cases as the JSON routes. It also owns [`system`], the one place the
//! wall clock and the OS random source are read.
//!
//! # What this crate must not do
//! Decide. No rule about accounts, passwords or sessions lives here: a handler that needs a
//! decision asks the engine, and a handler that needs a check calls the core.
//!
//! # How to drive it
//! Build an [`App`] around a running [`tessera_storage::Engine`], then [`server::start`] it on
//! a listener address; [`server::ServerHandle::shutdown`] drains and stops.

pub mod admin;
pub mod apikey;
pub mod app;
pub mod auth;
pub mod body;
pub mod cluster;
pub mod config;
pub mod hashing;
pub mod leak;
pub mod metrics;
pub mod pages;
pub mod problem;
pub mod routes;
pub mod security_log;
pub mod server;
pub mod signin;
pub mod signing;
pub mod system;
pub mod time;
pub mod upstream;

pub use app::App;
pub use config::HttpConfig;
pub use server::{ServerHandle, start, start_on};
