//! The on-disk format: the one module that turns events, envelopes and view records into
//! bytes and back.
//!
//! bincode 2.0.1 in serde mode with one frozen configuration (little-endian, variable-length
//! integers, a size limit). The configuration, the order of `Event` variants and of every
//! field are part of the format: the golden-bytes tests below fail if any of them moves.
//! Reading goes through [`decode_event`], which dispatches on the envelope's schema version,
//! so that an older shape can be upcast on read without rewriting the log.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Serialize};
use tessera_core::account::AccountView;
use tessera_core::blocklist::{NotBefore, RevokedAccessToken};
use tessera_core::mfa::{ChallengeView, MfaView};
use tessera_core::oauth::UserCodeStrikeKey;
use tessera_core::refresh::{FamilyView, RefreshTokenView};
use tessera_core::secret::SecretDigest;
use tessera_core::session::SessionView;
use tessera_core::signing_key::PublishedKey;
use tessera_core::throttle::Strikes;
use tessera_core::view::{IdentityKey, IdentityRecord, OAuthKey, OAuthRecord};
use tessera_core::{
    AccountId, ChallengeId, Event, FamilyId, SessionId, StreamId, Timestamp, TokenId, ViewKey,
    ViewRecord,
};

/// Largest encoded value we ever write or accept: far above any real event, far below what
/// would let a corrupt length field allocate gigabytes.
pub const ENCODED_BYTES_MAX: usize = 64 * 1024;

/// Never change: every stored byte was written with it.
const CFG: Configuration<LittleEndian, Varint, Limit<ENCODED_BYTES_MAX>> =
    bincode::config::standard().with_limit::<ENCODED_BYTES_MAX>();

/// The envelope layout version, the first byte of every stored envelope.
pub const ENVELOPE_FORMAT: u8 = 1;
/// The schema version new events are written with.
pub const EVENT_SCHEMA: u16 = 1;

/// Why a value could not be turned into bytes or read back from them. Every decoding error is
/// a value, never a panic: the bytes may be damaged or hostile.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// bincode refused to encode the value (for example, it exceeds
    /// [`ENCODED_BYTES_MAX`]); the message is bincode's.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected value.
    #[error("cannot decode {what}: {why}")]
    Decode {
        /// What was being decoded ("envelope", "event", "account view", ...).
        what: &'static str,
        /// bincode's or our own account of what is wrong.
        why: String,
    },
    /// The envelope's first byte is a format this build does not know.
    #[error("unknown envelope format {0}: written by a newer Tessera?")]
    UnknownFormat(u8),
    /// The event's schema version is one this build has no decoder for.
    #[error("event {kind} has schema {schema}, which this build cannot read")]
    UnknownSchema {
        /// The event kind the envelope names.
        kind: String,
        /// The schema version it was written with.
        schema: u16,
    },
    /// A value decoded completely but bytes were left over: the record is longer than the
    /// value it should hold. Names what was being decoded.
    #[error("trailing bytes after {0}")]
    Trailing(&'static str),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, CFG).map_err(|e| CodecError::Encode(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, CFG).map_err(|e| CodecError::Decode {
            what,
            why: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(what));
    }
    Ok(value)
}

/// An event's payload bytes under the current schema ([`EVENT_SCHEMA`]): what an envelope
/// stores and the chain hash covers.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, CodecError> {
    encode(event)
}

/// Decodes an event payload written under `schema`. Schema 1 is the only one so far; an
/// upcaster for a later change goes here as another arm, turning the old shape into the
/// current `Event`.
pub fn decode_event(kind: &str, schema: u16, payload: &[u8]) -> Result<Event, CodecError> {
    match schema {
        1 => {
            let event: Event = decode(payload, "event")?;
            if event.kind() != kind {
                return Err(CodecError::Decode {
                    what: "event",
                    why: format!("payload is {}, envelope says {kind}", event.kind()),
                });
            }
            Ok(event)
        }
        _ => Err(CodecError::UnknownSchema {
            kind: kind.to_owned(),
            schema,
        }),
    }
}

/// One entry of the log, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope's position in the log: 1 for the first, then consecutive, no gaps.
    pub sequence: u64,
    /// The stream (aggregate) the event belongs to.
    pub stream: StreamId,
    /// The event's position in its stream: 1 for a stream's first event.
    pub stream_version: u64,
    /// When the writer recorded the event: the engine's time, which never goes backwards.
    pub recorded_at: Timestamp,
    /// The schema version the payload was written with ([`EVENT_SCHEMA`] for new events).
    pub schema: u16,
    /// The event itself.
    pub event: Event,
    /// The hash of the envelope before this one (all zero for the first).
    pub prev_hash: [u8; 32],
    /// SHA-256 over this envelope's fields and `prev_hash`: see [`crate::chain`].
    pub hash: [u8; 32],
    /// What `hash` must be, computed from the content as it was read (the stored bytes) or
    /// sealed. The chain check compares the two, so it never re-encodes an event.
    pub content_hash: [u8; 32],
}

/// The stored form of an envelope. Field order is the format, and `hash` is last: the
/// stored bytes minus their last 32 are exactly what the chain hash covers.
#[derive(Serialize)]
struct StoredEnvelope<'a> {
    format: u8,
    sequence: u64,
    stream: &'a str,
    stream_version: u64,
    recorded_at: u64,
    kind: &'a str,
    schema: u16,
    payload: &'a [u8],
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// The same layout, read back borrowing from the stored bytes (no copies of `kind` or the
/// payload).
#[derive(Deserialize)]
struct StoredEnvelopeRef<'a> {
    format: u8,
    sequence: u64,
    stream: &'a str,
    stream_version: u64,
    recorded_at: u64,
    kind: &'a str,
    schema: u16,
    payload: &'a [u8],
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// The domain-separated SHA-256 the chain uses over an envelope's hashed bytes.
pub fn chain_hash(hashed: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tessera-log-v1");
    h.update(hashed);
    h.finalize().into()
}

/// The bytes the chain hash covers: everything but the hash itself.
pub(crate) fn hashed_bytes(e: &Envelope, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    encode(&(
        ENVELOPE_FORMAT,
        e.sequence,
        e.stream.as_str(),
        e.stream_version,
        e.recorded_at.as_millis(),
        e.event.kind(),
        e.schema,
        payload,
        e.prev_hash,
    ))
}

/// An envelope's stored bytes: the format byte, the fields in a fixed order, the event
/// payload, `prev_hash` and, last, `hash`. `content_hash` is not stored: it is recomputed on
/// every read.
pub fn encode_envelope(e: &Envelope) -> Result<Vec<u8>, CodecError> {
    let payload = encode_event(&e.event)?;
    encode(&StoredEnvelope {
        format: ENVELOPE_FORMAT,
        sequence: e.sequence,
        stream: e.stream.as_str(),
        stream_version: e.stream_version,
        recorded_at: e.recorded_at.as_millis(),
        kind: e.event.kind(),
        schema: e.schema,
        payload: &payload,
        prev_hash: e.prev_hash,
        hash: e.hash,
    })
}

/// An envelope read back from its stored bytes, with `content_hash` computed from those
/// bytes as they are (so the chain check sees any change to them). Refuses an unknown format
/// byte, an unknown schema, a malformed or truncated record and trailing bytes.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, CodecError> {
    match bytes.first() {
        Some(&ENVELOPE_FORMAT) => {}
        Some(&other) => return Err(CodecError::UnknownFormat(other)),
        None => {
            return Err(CodecError::Decode {
                what: "envelope",
                why: "empty".into(),
            });
        }
    }
    let (s, used): (StoredEnvelopeRef<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(bytes, CFG).map_err(|e| CodecError::Decode {
            what: "envelope",
            why: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(CodecError::Trailing("envelope"));
    }
    let hashed = bytes
        .get(..bytes.len().saturating_sub(32))
        .unwrap_or_default();
    Ok(Envelope {
        sequence: s.sequence,
        stream: StreamId(s.stream.to_owned()),
        stream_version: s.stream_version,
        recorded_at: Timestamp::from_millis(s.recorded_at),
        schema: s.schema,
        event: decode_event(s.kind, s.schema, s.payload)?,
        prev_hash: s.prev_hash,
        hash: s.hash,
        content_hash: if s.format == ENVELOPE_FORMAT {
            chain_hash(hashed)
        } else {
            [0; 32]
        },
    })
}

/// Which persisted view a key lives in: one sled tree each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewTree {
    /// Accounts, by account id.
    Accounts,
    /// Account ids, by normalised (lower-case) username.
    Usernames,
    /// Sessions, by session id.
    Sessions,
    /// Published signing keys, by kid.
    SigningKeys,
    /// Refresh-token families, by family id.
    Families,
    /// Refresh tokens (current or spent), by the digest of the token.
    RefreshTokens,
    /// Revoked access tokens, by jti.
    RevokedAccessTokens,
    /// Each account's not-before time for access tokens, by account id.
    NotBefore,
    /// Each account's MFA state, by account id.
    Mfa,
    /// Pending MFA challenges, by challenge id.
    MfaChallenges,
    /// Throttle strikes of accounts, by account id.
    AccountStrikes,
    /// Throttle strikes of addresses, by address (4 bytes for IPv4, 16 for IPv6).
    AddressStrikes,
    /// Registrations counted per address, by address (4 bytes for IPv4, 16 for IPv6).
    RegistrationStrikes,
    /// The OAuth records (clients, grants, codes, device authorizations, user-code strikes,
    /// revoked client tokens), by a tagged key ([`oauth_key_bytes`]).
    OAuth,
    /// API keys, by id.
    ApiKeys,
    /// Accounts still on a legacy credential, by account id.
    Legacy,
    /// External identities and spent sign-in states, by a tagged key
    /// ([`identity_key_bytes`]).
    Identities,
    /// WebAuthn credentials, by credential id (its raw bytes).
    WebauthnCredentials,
}

impl ViewTree {
    /// Every view tree, in a fixed order: a store opens one tree per entry.
    pub const ALL: [ViewTree; 18] = [
        Self::Accounts,
        Self::Usernames,
        Self::Sessions,
        Self::SigningKeys,
        Self::Families,
        Self::RefreshTokens,
        Self::RevokedAccessTokens,
        Self::NotBefore,
        Self::Mfa,
        Self::MfaChallenges,
        Self::AccountStrikes,
        Self::AddressStrikes,
        Self::RegistrationStrikes,
        Self::OAuth,
        Self::ApiKeys,
        Self::Legacy,
        Self::Identities,
        Self::WebauthnCredentials,
    ];

    /// The sled tree's name, `view.<name>`. Part of the on-disk format: never rename one.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accounts => "view.accounts",
            Self::Usernames => "view.usernames",
            Self::Sessions => "view.sessions",
            Self::SigningKeys => "view.signing_keys",
            Self::Families => "view.families",
            Self::RefreshTokens => "view.refresh_tokens",
            Self::RevokedAccessTokens => "view.revoked_access_tokens",
            Self::NotBefore => "view.not_before",
            Self::Mfa => "view.mfa",
            Self::MfaChallenges => "view.mfa_challenges",
            Self::AccountStrikes => "view.account_strikes",
            Self::AddressStrikes => "view.address_strikes",
            Self::RegistrationStrikes => "view.registration_strikes",
            Self::OAuth => "view.oauth",
            Self::ApiKeys => "view.api_keys",
            Self::Legacy => "view.legacy",
            Self::Identities => "view.identities",
            Self::WebauthnCredentials => "view.webauthn_credentials",
        }
    }

    /// The tree's position in [`ViewTree::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a view record is stored: its tree and its key bytes within the tree (ids as their
/// 16 bytes, names and kids as UTF-8, digests as their 32 bytes, addresses as 4 or 16 bytes).
/// [`decode_view_key`] reverses it.
pub fn view_key(key: &ViewKey) -> (ViewTree, Vec<u8>) {
    match key {
        ViewKey::Account(id) => (ViewTree::Accounts, id.as_bytes().to_vec()),
        ViewKey::Username(name) => (ViewTree::Usernames, name.as_bytes().to_vec()),
        ViewKey::Session(id) => (ViewTree::Sessions, id.as_bytes().to_vec()),
        ViewKey::SigningKey(kid) => (ViewTree::SigningKeys, kid.as_bytes().to_vec()),
        ViewKey::Family(id) => (ViewTree::Families, id.as_bytes().to_vec()),
        ViewKey::RefreshToken(digest) => (ViewTree::RefreshTokens, digest.0.to_vec()),
        ViewKey::RevokedAccessToken(jti) => {
            (ViewTree::RevokedAccessTokens, jti.as_bytes().to_vec())
        }
        ViewKey::NotBefore(id) => (ViewTree::NotBefore, id.as_bytes().to_vec()),
        ViewKey::Mfa(id) => (ViewTree::Mfa, id.as_bytes().to_vec()),
        ViewKey::Challenge(id) => (ViewTree::MfaChallenges, id.as_bytes().to_vec()),
        ViewKey::AccountStrikes(id) => (ViewTree::AccountStrikes, id.as_bytes().to_vec()),
        ViewKey::AddressStrikes(ip) => (ViewTree::AddressStrikes, ip_bytes(ip)),
        ViewKey::RegistrationStrikes(ip) => (ViewTree::RegistrationStrikes, ip_bytes(ip)),
        ViewKey::OAuth(k) => (ViewTree::OAuth, oauth_key_bytes(k)),
        ViewKey::ApiKey(id) => (ViewTree::ApiKeys, id.as_bytes().to_vec()),
        ViewKey::Legacy(id) => (ViewTree::Legacy, id.as_bytes().to_vec()),
        ViewKey::Identity(k) => (ViewTree::Identities, identity_key_bytes(k)),
        ViewKey::WebauthnCredential(id) => (ViewTree::WebauthnCredentials, id.0.clone()),
    }
}

/// An OAuth record's key bytes: a tag, then the fields (ids as 16 bytes, digests as 32,
/// client ids as UTF-8 last, addresses as 4 or 16 bytes).
pub fn oauth_key_bytes(key: &OAuthKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    match key {
        OAuthKey::Client(id) => {
            out.push(0);
            out.extend_from_slice(id.as_bytes());
        }
        OAuthKey::Grant(account, id) => {
            out.push(1);
            out.extend_from_slice(account.as_bytes());
            out.extend_from_slice(id.as_bytes());
        }
        OAuthKey::Code(d) => {
            out.push(2);
            out.extend_from_slice(&d.0);
        }
        OAuthKey::Device(d) => {
            out.push(3);
            out.extend_from_slice(&d.0);
        }
        OAuthKey::UserCodeStrikes(UserCodeStrikeKey::Session(s)) => {
            out.extend_from_slice(&[4, 0]);
            out.extend_from_slice(s.as_bytes());
        }
        OAuthKey::UserCodeStrikes(UserCodeStrikeKey::Address(ip)) => {
            out.extend_from_slice(&[4, 1]);
            out.extend_from_slice(&ip_bytes(ip));
        }
        OAuthKey::RevokedClientToken(jti) => {
            out.push(5);
            out.extend_from_slice(jti.as_bytes());
        }
    }
    out
}

fn decode_oauth_key(bytes: &[u8]) -> Result<OAuthKey, CodecError> {
    let bad = || CodecError::Decode {
        what: "OAuth view key",
        why: "unknown tag or wrong length".into(),
    };
    let (tag, rest) = bytes.split_first().ok_or_else(bad)?;
    Ok(match tag {
        0 => OAuthKey::Client(utf8(rest)?),
        1 => {
            let (id, client) = rest.split_at_checked(16).ok_or_else(bad)?;
            OAuthKey::Grant(AccountId::from_bytes(fixed(id)?), utf8(client)?)
        }
        2 => OAuthKey::Code(SecretDigest(fixed(rest)?)),
        3 => OAuthKey::Device(SecretDigest(fixed(rest)?)),
        4 => match rest.split_first() {
            Some((0, s)) => OAuthKey::UserCodeStrikes(UserCodeStrikeKey::Session(
                SessionId::from_bytes(fixed(s)?),
            )),
            Some((1, ip)) => OAuthKey::UserCodeStrikes(UserCodeStrikeKey::Address(ip_from(ip)?)),
            _ => return Err(bad()),
        },
        5 => OAuthKey::RevokedClientToken(TokenId::from_bytes(fixed(rest)?)),
        _ => return Err(bad()),
    })
}

/// An identity record's key bytes: tag 0, the provider name, a zero byte, then the subject
/// (a provider name never holds a zero byte, so the first one ends it); or tag 1 and a
/// state's 32-byte digest.
pub fn identity_key_bytes(key: &IdentityKey) -> Vec<u8> {
    match key {
        IdentityKey::Link(provider, subject) => {
            let mut out = Vec::with_capacity(2 + provider.len() + subject.len());
            out.push(0);
            out.extend_from_slice(provider.as_bytes());
            out.push(0);
            out.extend_from_slice(subject.as_bytes());
            out
        }
        IdentityKey::SpentState(d) => {
            let mut out = Vec::with_capacity(33);
            out.push(1);
            out.extend_from_slice(&d.0);
            out
        }
    }
}

fn decode_identity_key(bytes: &[u8]) -> Result<IdentityKey, CodecError> {
    let bad = || CodecError::Decode {
        what: "identity view key",
        why: "unknown tag or no separator".into(),
    };
    match bytes.split_first().ok_or_else(bad)? {
        (0, rest) => {
            let at = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
            let (provider, subject) = rest.split_at(at);
            let subject = subject.get(1..).ok_or_else(bad)?;
            Ok(IdentityKey::Link(utf8(provider)?, utf8(subject)?))
        }
        (1, rest) => Ok(IdentityKey::SpentState(SecretDigest(fixed(rest)?))),
        _ => Err(bad()),
    }
}

/// An address as a key: 4 bytes for IPv4, 16 for IPv6, so the length says which.
fn ip_bytes(ip: &std::net::IpAddr) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn ip_from(bytes: &[u8]) -> Result<std::net::IpAddr, CodecError> {
    match bytes.len() {
        4 => Ok(std::net::IpAddr::from(fixed::<4>(bytes)?)),
        _ => Ok(std::net::IpAddr::from(fixed::<16>(bytes)?)),
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], CodecError> {
    bytes.try_into().map_err(|_| CodecError::Decode {
        what: "view key",
        why: format!("{} bytes, want {N}", bytes.len()),
    })
}

fn utf8(bytes: &[u8]) -> Result<String, CodecError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| CodecError::Decode {
        what: "view key",
        why: e.to_string(),
    })
}

/// The view key stored as `bytes` in `tree`: the reverse of [`view_key`]. Refuses bytes of
/// the wrong length for the tree and names that are not UTF-8.
pub fn decode_view_key(tree: ViewTree, bytes: &[u8]) -> Result<ViewKey, CodecError> {
    Ok(match tree {
        ViewTree::Accounts => ViewKey::Account(AccountId::from_bytes(fixed(bytes)?)),
        ViewTree::Sessions => ViewKey::Session(SessionId::from_bytes(fixed(bytes)?)),
        ViewTree::Usernames => ViewKey::Username(utf8(bytes)?),
        ViewTree::SigningKeys => ViewKey::SigningKey(utf8(bytes)?),
        ViewTree::Families => ViewKey::Family(FamilyId::from_bytes(fixed(bytes)?)),
        ViewTree::RefreshTokens => ViewKey::RefreshToken(SecretDigest(fixed(bytes)?)),
        ViewTree::RevokedAccessTokens => {
            ViewKey::RevokedAccessToken(TokenId::from_bytes(fixed(bytes)?))
        }
        ViewTree::NotBefore => ViewKey::NotBefore(AccountId::from_bytes(fixed(bytes)?)),
        ViewTree::Mfa => ViewKey::Mfa(AccountId::from_bytes(fixed(bytes)?)),
        ViewTree::MfaChallenges => ViewKey::Challenge(ChallengeId::from_bytes(fixed(bytes)?)),
        ViewTree::AccountStrikes => ViewKey::AccountStrikes(AccountId::from_bytes(fixed(bytes)?)),
        ViewTree::AddressStrikes => ViewKey::AddressStrikes(ip_from(bytes)?),
        ViewTree::RegistrationStrikes => ViewKey::RegistrationStrikes(ip_from(bytes)?),
        ViewTree::OAuth => ViewKey::OAuth(decode_oauth_key(bytes)?),
        ViewTree::ApiKeys => ViewKey::ApiKey(tessera_core::ApiKeyId::from_bytes(fixed(bytes)?)),
        ViewTree::Legacy => ViewKey::Legacy(AccountId::from_bytes(fixed(bytes)?)),
        ViewTree::Identities => ViewKey::Identity(decode_identity_key(bytes)?),
        ViewTree::WebauthnCredentials => {
            ViewKey::WebauthnCredential(tessera_core::webauthn::CredentialId(bytes.to_vec()))
        }
    })
}

/// A view record's stored bytes (the record alone; the tree and key say what it is).
pub fn encode_view_record(record: &ViewRecord) -> Result<Vec<u8>, CodecError> {
    match record {
        ViewRecord::Account(a) => encode(a),
        ViewRecord::Username(id) => encode(id),
        ViewRecord::Session(s) => encode(s),
        ViewRecord::SigningKey(k) => encode(k),
        ViewRecord::Family(f) => encode(f),
        ViewRecord::RefreshToken(t) => encode(t),
        ViewRecord::RevokedAccessToken(r) => encode(r),
        ViewRecord::NotBefore(nb) => encode(nb),
        ViewRecord::Mfa(m) => encode(m),
        ViewRecord::Challenge(c) => encode(c),
        ViewRecord::Strikes(s) => encode(s),
        ViewRecord::OAuth(r) => encode(r),
        ViewRecord::ApiKey(k) => encode(k),
        ViewRecord::Legacy(l) => encode(l),
        ViewRecord::Identity(r) => encode(r),
        ViewRecord::WebauthnCredential(c) => encode(c),
    }
}

/// The view record stored as `bytes` in `tree`: the reverse of [`encode_view_record`].
/// The strikes trees all hold [`ViewRecord::Strikes`].
pub fn decode_view_record(tree: ViewTree, bytes: &[u8]) -> Result<ViewRecord, CodecError> {
    Ok(match tree {
        ViewTree::Accounts => ViewRecord::Account(decode::<AccountView>(bytes, "account view")?),
        ViewTree::Usernames => ViewRecord::Username(decode::<AccountId>(bytes, "username view")?),
        ViewTree::Sessions => ViewRecord::Session(decode::<SessionView>(bytes, "session view")?),
        ViewTree::SigningKeys => {
            ViewRecord::SigningKey(decode::<PublishedKey>(bytes, "signing key view")?)
        }
        ViewTree::Families => ViewRecord::Family(decode::<FamilyView>(bytes, "family view")?),
        ViewTree::RefreshTokens => {
            ViewRecord::RefreshToken(decode::<RefreshTokenView>(bytes, "refresh token view")?)
        }
        ViewTree::RevokedAccessTokens => {
            ViewRecord::RevokedAccessToken(decode::<RevokedAccessToken>(
                bytes,
                "revoked access token view",
            )?)
        }
        ViewTree::NotBefore => {
            ViewRecord::NotBefore(decode::<NotBefore>(bytes, "not-before view")?)
        }
        ViewTree::Mfa => ViewRecord::Mfa(decode::<MfaView>(bytes, "MFA view")?),
        ViewTree::MfaChallenges => {
            ViewRecord::Challenge(decode::<ChallengeView>(bytes, "MFA challenge view")?)
        }
        ViewTree::AccountStrikes | ViewTree::AddressStrikes | ViewTree::RegistrationStrikes => {
            ViewRecord::Strikes(decode::<Strikes>(bytes, "strikes view")?)
        }
        ViewTree::OAuth => ViewRecord::OAuth(decode::<OAuthRecord>(bytes, "OAuth view")?),
        ViewTree::ApiKeys => ViewRecord::ApiKey(decode::<tessera_core::apikey::ApiKeyView>(
            bytes,
            "API key view",
        )?),
        ViewTree::Legacy => ViewRecord::Legacy(decode::<tessera_core::legacy::LegacyView>(
            bytes,
            "legacy view",
        )?),
        ViewTree::Identities => {
            ViewRecord::Identity(decode::<IdentityRecord>(bytes, "identity view")?)
        }
        ViewTree::WebauthnCredentials => {
            ViewRecord::WebauthnCredential(decode::<tessera_core::webauthn::CredentialView>(
                bytes,
                "WebAuthn credential view",
            )?)
        }
    })
}

#[cfg(test)]
mod golden;
