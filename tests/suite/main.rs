//! Tessera's integration suite: one binary, one module per concern.

mod crash_recovery;
mod decide_scenarios;
mod engine_tokens;
mod http_e2e;
mod mfa_e2e;
mod mfa_props;
mod rebuild;
mod refresh_props;
mod session_props;
mod sim_smoke;
mod store_contract;
mod throttle_bound;
mod token_e2e;
