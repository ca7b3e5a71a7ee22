//! Tessera's integration suite: one binary (one link, one run), one module per concern.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: helpers outside #[test] functions stop the test loudly at the step that failed"
)]

mod admin;
mod api_keys;
mod browser;
mod crash_recovery;
mod decide_scenarios;
mod drivers;
mod engine_tokens;
mod fuzz;
mod http_e2e;
mod legacy;
mod mfa_e2e;
mod mfa_props;
mod oauth_e2e;
mod online_ops;
mod openapi;
mod pages;
mod pg_faults;
mod pg_order;
mod rebuild;
mod refresh_props;
mod session_props;
mod signin_e2e;
mod sim_smoke;
mod step_up;
mod store_contract;
mod throttle_bound;
mod token_e2e;
mod upstream;
mod webauthn;
