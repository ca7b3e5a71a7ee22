//! The integration suite: one binary, one module per area.

mod http_e2e;
