//! Tessera's integration suite: one binary, one module per concern (style.md section 7).

mod crash_recovery;
mod decide_scenarios;
mod rebuild;
mod store_contract;
