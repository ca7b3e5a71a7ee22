//! Tessera's integration suite: one binary, one module per concern (style.md section 7).

mod crash_recovery;
mod decide_scenarios;
mod fuzz;
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
