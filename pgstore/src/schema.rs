//! The tables, and the SQL every node runs against them.
//!
//! ```text
//! tessera_meta   one row (id = 1): format, head sequence and hash, fencing token, leader
//! tessera_log    sequence → stream, stream version, envelope bytes (as sled stores them)
//! tessera_views  (tree, key) → record (the persisted views, written with each batch)
//! ```
//!
//! The head sequence in `tessera_meta` is the counter that numbers the log: a batch locks
//! the row, reads the head, inserts the rows after it and moves the head, all in one
//! transaction. Sequences are never taken from a database sequence, which would number rows
//! before they commit and let a follower that reads `sequence > last` skip one that commits
//! late.

/// Layout version of the tables, stored in `tessera_meta.format`.
pub const SCHEMA_FORMAT: i32 = 1;

/// Transaction-level advisory lock every batch takes first: the appends of the whole log
/// are serialized, whatever connection they come from.
pub const APPEND_LOCK: i64 = 0x7465_7373_6572_6101;

/// Session-level advisory lock the writer holds for as long as it leads.
pub const LEASE_LOCK: i64 = 0x7465_7373_6572_6102;

/// Serializes the creation of the tables by nodes starting together.
pub const SCHEMA_LOCK: i64 = 0x7465_7373_6572_6103;

/// The channel a batch notifies on commit: a wake-up for followers, never the data.
pub const CHANNEL: &str = "tessera_log";

/// Creates the tables when they are missing (idempotent; run under [`SCHEMA_LOCK`]).
pub const CREATE: &str = "
CREATE TABLE IF NOT EXISTS tessera_meta (
    id smallint PRIMARY KEY CHECK (id = 1),
    format integer NOT NULL,
    sequence bigint NOT NULL,
    hash bytea NOT NULL,
    fence bigint NOT NULL,
    leader text,
    views_dirty boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS tessera_log (
    sequence bigint PRIMARY KEY,
    stream text NOT NULL,
    stream_version bigint NOT NULL,
    envelope bytea NOT NULL,
    UNIQUE (stream, stream_version)
);
CREATE TABLE IF NOT EXISTS tessera_views (
    tree smallint NOT NULL,
    key bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tree, key)
);
";

/// The one meta row of an empty log.
pub const INIT_META: &str =
    "INSERT INTO tessera_meta (id, format, sequence, hash, fence, leader, views_dirty)
     VALUES (1, $1, 0, $2, 0, NULL, false) ON CONFLICT (id) DO NOTHING";

/// Reads the head, fence and format without locking.
pub const READ_META: &str =
    "SELECT format, sequence, hash, fence, leader, views_dirty FROM tessera_meta WHERE id = 1";

/// The first statement of every batch: the append lock, then the counter row, locked.
pub const LOCK_HEAD: &str = "SELECT pg_advisory_xact_lock($1), sequence, hash, fence
     FROM tessera_meta WHERE id = 1 FOR UPDATE";

/// Inserts a batch's envelopes in one statement.
pub const INSERT_LOG: &str = "INSERT INTO tessera_log (sequence, stream, stream_version, envelope)
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[])";

/// Writes a batch's changed view records.
pub const UPSERT_VIEWS: &str = "INSERT INTO tessera_views (tree, key, record)
     SELECT * FROM UNNEST($1::smallint[], $2::bytea[], $3::bytea[])
     ON CONFLICT (tree, key) DO UPDATE SET record = EXCLUDED.record";

/// Removes a batch's deleted view records.
pub const DELETE_VIEWS: &str = "DELETE FROM tessera_views v
     USING UNNEST($1::smallint[], $2::bytea[]) AS d(tree, key)
     WHERE v.tree = d.tree AND v.key = d.key";

/// Moves the head at the end of a batch, and wakes the followers on commit.
pub const MOVE_HEAD: &str = "UPDATE tessera_meta SET sequence = $1, hash = $2 WHERE id = 1";

/// Wakes the followers when the transaction commits.
pub const NOTIFY: &str = "SELECT pg_notify('tessera_log', $1)";

/// A stream's current version.
pub const STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(stream_version), 0) FROM tessera_log WHERE stream = $1";

/// A stream's envelopes in order.
pub const READ_STREAM: &str =
    "SELECT sequence, envelope FROM tessera_log WHERE stream = $1 ORDER BY stream_version";

/// A page of the log.
pub const READ_PAGE: &str = "SELECT sequence, envelope FROM tessera_log
     WHERE sequence >= $1 AND sequence <= $2 ORDER BY sequence LIMIT $3";

/// Every view record, in key order.
pub const READ_VIEWS: &str = "SELECT tree, key, record FROM tessera_views ORDER BY tree, key";

/// Takes the lease: the next fencing token, and this node's address for the others.
pub const TAKE_FENCE: &str = "UPDATE tessera_meta SET fence = fence + 1, leader = $1 WHERE id = 1
     RETURNING fence, sequence, hash";
