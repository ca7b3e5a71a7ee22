//! The hash chain: every envelope carries SHA-256(its fields ‖ the previous envelope's
//! hash), so that changing, removing or reordering any stored event breaks every hash after
//! it. `tessera verify` walks it; `serve` refuses to start on a broken one.

use crate::codec::{self, CodecError, Envelope};

/// The `prev_hash` of the first envelope.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash `e` must carry, given its fields and `prev_hash`.
pub fn expected_hash(e: &Envelope) -> Result<[u8; 32], CodecError> {
    let payload = codec::encode_event(&e.event)?;
    Ok(codec::chain_hash(&codec::hashed_bytes(e, &payload)?))
}

/// Fills in `e.hash` (and `content_hash`) after `e.prev_hash` and the fields are set.
pub fn seal(e: &mut Envelope) -> Result<(), CodecError> {
    e.hash = expected_hash(e)?;
    e.content_hash = e.hash;
    Ok(())
}

/// Where and how the chain broke.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The envelope's stored hash is not the hash of its contents: its bytes were changed
    /// after it was sealed.
    #[error("sequence {sequence}: envelope hash does not match its contents (altered)")]
    Altered {
        /// The altered envelope's sequence number.
        sequence: u64,
    },
    /// The envelope's `prev_hash` is not the hash of the envelope before it: an envelope
    /// between them was removed, or the two were reordered.
    #[error("sequence {sequence}: does not link to the envelope before it (removed or reordered)")]
    Unlinked {
        /// The sequence number of the envelope whose link is wrong.
        sequence: u64,
    },
    /// Sequence numbers skip or repeat: the log should hold `expected` here.
    #[error("sequence {sequence}: expected sequence {expected} (gap)")]
    Gap {
        /// The sequence number found.
        sequence: u64,
        /// The sequence number that should have come next.
        expected: u64,
    },
    /// The envelope could not be read or decoded at all.
    #[error("sequence {sequence}: unreadable: {why}")]
    Unreadable {
        /// The sequence number of the unreadable envelope.
        sequence: u64,
        /// What the store or the decoder reported.
        why: String,
    },
}

/// Walks envelopes in order, checking each link. Feed it every envelope from the first.
#[derive(Debug)]
pub struct ChainVerifier {
    prev_hash: [u8; 32],
    next_sequence: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS,
            next_sequence: 1,
        }
    }
}

impl ChainVerifier {
    /// A verifier that expects the envelope after `head`: for checking envelopes appended to
    /// (or imported into) a log that ends at `head`. [`ChainVerifier::default`] is the
    /// verifier after the empty log.
    pub fn after(head: crate::event_store::Head) -> Self {
        Self {
            prev_hash: head.hash,
            next_sequence: head.sequence + 1,
        }
    }

    /// Checks that `e` is the next envelope of the chain: the sequence number that follows
    /// the last one checked, a hash that matches its contents, and a `prev_hash` equal to the
    /// last envelope's hash. On success `e` becomes the last envelope checked; on an error
    /// nothing changes.
    pub fn check(&mut self, e: &Envelope) -> Result<(), ChainError> {
        if e.sequence != self.next_sequence {
            return Err(ChainError::Gap {
                sequence: e.sequence,
                expected: self.next_sequence,
            });
        }
        // `content_hash` was computed from the bytes as read (or as sealed): no re-encoding.
        if e.content_hash != e.hash {
            return Err(ChainError::Altered {
                sequence: e.sequence,
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainError::Unlinked {
                sequence: e.sequence,
            });
        }
        self.prev_hash = e.hash;
        self.next_sequence += 1;
        Ok(())
    }

    /// The hash of the last envelope checked.
    pub fn head_hash(&self) -> [u8; 32] {
        self.prev_hash
    }

    /// The sequence of the last envelope checked (or of the head it started after): with
    /// [`ChainVerifier::default`], how many envelopes were checked.
    pub fn count(&self) -> u64 {
        self.next_sequence - 1
    }
}
