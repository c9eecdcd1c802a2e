//! What a store fails with: [`StoreError`], each variant with a stable code.

use std::sync::Arc;

use crate::audit::VerifyError;

/// A type-erased, cloneable error source (a database driver's error, say).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

/// Everything a store can fail with. Each variant has a stable code ([`StoreError::code`]);
/// messages never contain SQL. Driver errors are kept as the `source` for logs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The instance is no longer at the expected version: reload and decide again.
    #[error("the instance changed meanwhile: it is now at version {current}")]
    Conflict {
        /// The instance's current version.
        current: u64,
    },
    /// The fired timer is no longer claimed with this fence (its lease passed to another node,
    /// or it was cancelled or fired).
    #[error("timer {timer} is no longer held under fence {fence}")]
    TimerLost {
        /// The timer id.
        timer: i64,
        /// The fence the commit named.
        fence: i64,
    },
    /// The idempotency key was already used by this principal.
    #[error("idempotency key `{key}` was already used by `{principal}`")]
    DuplicateKey {
        /// The principal.
        principal: String,
        /// The key.
        key: String,
    },
    /// No instance with this id.
    #[error("no instance `{id}`")]
    InstanceNotFound {
        /// The instance id.
        id: String,
    },
    /// An instance with this id exists already.
    #[error("instance `{id}` already exists")]
    InstanceExists {
        /// The instance id.
        id: String,
    },
    /// No such policy version.
    #[error("no policy `{name}` with hash `{hash}`")]
    PolicyNotFound {
        /// The policy name.
        name: String,
        /// The policy hash.
        hash: String,
    },
    /// The request breaks the store's contract (a caller bug).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The instance's audit chain does not verify.
    #[error(transparent)]
    ChainBroken(#[from] VerifyError),
    /// The database cannot be reached (connection refused, pool timed out or closed).
    #[error("the database is unavailable")]
    Unavailable(#[source] ErrorSource),
    /// The database aborted the transaction for a reason that a retry may clear (serialization
    /// failure, deadlock, busy).
    #[error("the database asked for a retry")]
    Transient(#[source] ErrorSource),
    /// Stored data does not decode (a bad JSON text, an out-of-range number).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("the database failed")]
    Database(#[source] ErrorSource),
    /// Applying the schema migrations failed.
    #[error("the database schema could not be migrated")]
    Migration(#[source] ErrorSource),
    /// The group committer's task has stopped.
    #[error("the commit queue is closed")]
    Closed,
    /// A counter is at its cap (R3.7): another commit took the last place; decide again.
    #[error("counter `{key}` is at its cap of {cap}")]
    CounterFull {
        /// The counter.
        key: String,
        /// Its cap.
        cap: u64,
    },
    /// The database refused a value as data (PostgreSQL's class 22, e.g. a NUL character in
    /// text, 22021, or a number out of range, 22003): the request's fault, never retried.
    #[error("the database refused a value: {0}")]
    BadValue(String),
}

impl StoreError {
    /// The stable code of this error, e.g. `STORE001`.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "STORE001",
            StoreError::TimerLost { .. } => "STORE002",
            StoreError::DuplicateKey { .. } => "STORE003",
            StoreError::InstanceNotFound { .. } => "STORE004",
            StoreError::InstanceExists { .. } => "STORE005",
            StoreError::PolicyNotFound { .. } => "STORE006",
            StoreError::Invalid(_) => "STORE007",
            StoreError::ChainBroken(_) => "STORE008",
            StoreError::Unavailable(_) => "STORE009",
            StoreError::Transient(_) => "STORE010",
            StoreError::Corrupt(_) => "STORE011",
            StoreError::Database(_) => "STORE012",
            StoreError::Migration(_) => "STORE013",
            StoreError::Closed => "STORE014",
            StoreError::CounterFull { .. } => "STORE015",
            StoreError::BadValue(_) => "STORE016",
        }
    }
}
