//! The pages in a real browser: Debian's Chromium, headless, driven through WebDriver by
//! its own chromedriver (fantoccini on plain HTTP to 127.0.0.1).
//!
//! Without Chromium these tests print one line saying they were skipped and how to run them,
//! and pass; with `TESSERA_REQUIRE_BROWSER=1` (as `.ci/run` sets after installing it) a
//! browser that cannot start fails them. Every test saves a screenshot of each page it sees
//! under `target/screenshots/`.

pub mod harness;
mod login;
mod oauth;
mod signin;
mod webauthn;
