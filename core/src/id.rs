//! Identifiers. Newtypes, so an account id can never be passed where a session id belongs.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// Builds a UUIDv7 from the caller's time and randomness: time-ordered, and reproducible
/// in the simulator because neither input comes from the OS.
pub fn uuid_v7(now: Timestamp, random: [u8; 10]) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(now.as_millis(), &random).into_uuid()
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The prefix of this aggregate's stream ids.
            pub const STREAM_PREFIX: &'static str = $prefix;

            /// The stream of this aggregate's events: the prefix, `-`, and the hyphenated
            /// UUID.
            pub fn stream(self) -> StreamId {
                StreamId(format!("{}-{}", $prefix, self.0.as_hyphenated()))
            }

            /// The UUID's 16 bytes, big-endian as RFC 9562 lays them out.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// The id with these 16 UUID bytes (the inverse of `as_bytes`); any bytes are
            /// accepted.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// Parses the hyphenated form used in URLs and JSON.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::try_parse(text).ok().map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An account. Stable for the account's life, whatever its username becomes.
    AccountId,
    "account"
);
uuid_id!(
    /// A session's public id: listed and deleted by id. Not a credential; the cookie holds a
    /// separate 256-bit secret whose digest finds the session.
    SessionId,
    "session"
);

uuid_id!(
    /// A refresh-token family: every refresh token rotated from one login, and the access
    /// tokens issued alongside them. Appears in access tokens as the `fam` claim.
    FamilyId,
    "family"
);
uuid_id!(
    /// An access token's `jti`. Not a credential: the token is the signed JWT.
    TokenId,
    "access-token"
);

uuid_id!(
    /// An MFA challenge: opened by a right password for an account with MFA on, answered
    /// with a code. Not a credential: the `mfa_token` is a separate 256-bit secret.
    ChallengeId,
    "mfa-challenge"
);

uuid_id!(
    /// An API key: listed, rotated and revoked by id. Not a credential: the key itself is a
    /// separate random value whose keyed digest finds it.
    ApiKeyId,
    "apikey"
);

/// The stream an event belongs to: `<aggregate>-<id>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(pub String);

impl StreamId {
    /// The stream id as text, e.g. `account-<uuid>` or `signing-keys`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
