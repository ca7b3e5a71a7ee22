//! Tests of the WebAuthn decisions.
