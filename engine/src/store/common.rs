//! Helpers shared by the SQLite and PostgreSQL stores: commit checks, chaining, conversions,
//! error mapping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    due_key, due_of_key, Commit, InstanceFilter, InstanceRecord, NewEvent, StoreError, StoredEvent, MAX_PAGE_SIZE,
};
use crate::audit::{self, merkle, ChainedEvent, VerifyError};

/// Checks what the database cannot: the commit's own consistency.
pub(super) fn validate_commit(commit: &Commit) -> Result<(), StoreError> {
    if commit.instance.is_empty() {
        return Err(StoreError::Invalid("the commit names no instance".into()));
    }
    if let Some(event) = commit.events.iter().find(|e| e.kind.is_empty()) {
        return Err(StoreError::Invalid(format!(
            "an event of `{}` has an empty kind (actor `{}`)",
            commit.instance, event.actor
        )));
    }
    if let Some(instance) = &commit.create {
        check_create(instance, commit)?;
    }
    if let Some(spawn) = &commit.spawn {
        check_create(&spawn.instance, &spawn.first)?;
        if spawn.first.spawn.is_some() || spawn.first.create.is_some() || spawn.instance.id == commit.instance {
            return Err(StoreError::Invalid(format!("instance `{}` spawns itself or a chain", commit.instance)));
        }
        validate_commit(&spawn.first)?;
    }
    if let Some(timer) = commit.new_timers.iter().find(|t| t.instance != commit.instance) {
        return Err(StoreError::Invalid(format!(
            "a timer of instance `{}` in a commit to `{}`",
            timer.instance, commit.instance
        )));
    }
    Ok(())
}

/// The time a commit records as the instance's `updated_at`.
pub(super) fn commit_time(commit: &Commit) -> DateTime<Utc> {
    audit::truncate_to_micros(commit.events.iter().map(|e| e.at).max().unwrap_or_else(Utc::now))
}

/// Numbers and chains new events after the event with seq `version` and hash `prev`; with each,
/// its leaf in the global tree (issue 12.1). Each event is encoded once, from its payload's
/// canonical text made by the caller ([`super::EventPayload`]), for both hashes.
pub(super) fn chain_events(
    instance: &str,
    version: u64,
    prev: [u8; 32],
    events: &[NewEvent],
) -> (Vec<StoredEvent>, Vec<merkle::Hash>) {
    let mut prev = prev;
    let mut seq = version;
    let mut leaves = Vec::with_capacity(events.len());
    let stored = events
        .iter()
        .map(|e| {
            seq += 1;
            let mut stored = StoredEvent {
                instance: instance.to_owned(),
                seq,
                at: audit::truncate_to_micros(e.at),
                actor: e.actor.clone(),
                role: e.role.clone().filter(|r| !r.is_empty()),
                kind: e.kind.clone(),
                payload: e.payload.shared(),
                prev_hash: hex::encode(prev),
                hash: String::new(),
            };
            let encoding = audit::encode_with_payload(&stored.fields(), e.payload.canonical());
            let hash = audit::event_hash_of_encoding(&prev, &encoding);
            leaves.push(merkle::leaf_hash(&encoding));
            stored.hash = hex::encode(hash);
            prev = hash;
            stored
        })
        .collect();
    (stored, leaves)
}

/// Decodes a stored hex hash.
pub(super) fn decode_hash(hex_hash: &str) -> Result<[u8; 32], StoreError> {
    hex::decode(hex_hash)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("`{hex_hash}` is not a SHA-256 hash")))
}

/// Verifies a full log against the instance's version.
pub(super) fn verify_log(version: u64, events: &[StoredEvent]) -> Result<u64, StoreError> {
    audit::verify(events)?;
    let count = events.len() as u64;
    if count != version {
        return Err(StoreError::ChainBroken(VerifyError {
            seq: count.min(version) + 1,
            field: audit::VerifyField::Seq,
            expected: (count.min(version) + 1).to_string(),
            found: if count < version { "missing".into() } else { (version + 1).to_string() },
        }));
    }
    Ok(count)
}

/// Checks a page request.
pub(super) fn page_bounds(filter: &InstanceFilter) -> Result<(i64, i64), StoreError> {
    limit_offset(filter.page, filter.page_size)
}

/// `LIMIT` and `OFFSET` of a page, or why the page cannot be.
pub(super) fn limit_offset(page: u32, page_size: u32) -> Result<(i64, i64), StoreError> {
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(StoreError::Invalid(format!(
            "page {page} of size {page_size}: pages count from 1, sizes from 1 to {MAX_PAGE_SIZE}"
        )));
    }
    let limit = i64::from(page_size);
    Ok((limit, (i64::from(page) - 1) * limit))
}

/// An inbox page's rows to read from each key (`limit`) and to skip (`offset`): the page's, or
/// none skipped after a cursor (which reads page 1 only).
pub(super) fn inbox_window(query: &super::InboxQuery) -> Result<(i64, i64), StoreError> {
    let (limit, offset) = limit_offset(query.page, query.page_size)?;
    match (&query.after, query.page) {
        (None, _) => Ok((limit, offset)),
        (Some(_), 1) => Ok((limit, 0)),
        (Some(_), page) => Err(StoreError::Invalid(format!("page {page} after a step: a cursor reads one page on"))),
    }
}

/// The cursor's place in the open-step index, `(due_key, instance, node)`.
pub(super) fn cursor_key(cursor: &super::InboxCursor) -> (i64, &str, &str) {
    (due_key(cursor.due_at), cursor.instance.as_str(), cursor.node.as_str())
}

/// Converts a stored non-negative integer.
pub(super) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
}

/// Converts a version or seq for the database.
pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} is out of range")))
}

/// Converts a lease to microseconds.
pub(super) fn lease_micros(lease: Duration) -> Result<i64, StoreError> {
    i64::try_from(lease.as_micros()).map_err(|_| StoreError::Invalid(format!("lease {lease:?} is out of range")))
}

pub(super) fn map_sqlx(err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match err {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::Protocol(_) => {
            StoreError::Unavailable(Arc::new(err))
        }
        E::Database(ref db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (with extended codes, the low byte). Only for
            // SQLite's errors: PostgreSQL's SQLSTATEs are digits too (22021 & 0xff is 5).
            #[cfg(feature = "sqlite")]
            let sqlite_busy = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && code.parse::<i64>().map(|c| matches!(c & 0xff, 5 | 6)).unwrap_or(false);
            #[cfg(not(feature = "sqlite"))]
            let sqlite_busy = false;
            #[cfg(feature = "postgres")]
            let postgres = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
            #[cfg(not(feature = "postgres"))]
            let postgres = false;
            // PostgreSQL: 40001 serialization failure, 40P01 deadlock.
            if (postgres && (code == "40001" || code == "40P01")) || sqlite_busy {
                StoreError::Transient(Arc::new(err))
            } else if postgres && code.starts_with("22") {
                StoreError::BadValue(db.message().to_string())
            } else {
                StoreError::Database(Arc::new(err))
            }
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Corrupt(err.to_string())
        }
        other => StoreError::Database(Arc::new(other)),
    }
}

pub(super) fn map_migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Migration(Arc::new(err))
}

/// The order in which a batch applies its commits: by instance id, stably (see
/// [`super::Store::commit_many`]).
pub(super) fn instance_order(commits: &[Commit]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..commits.len()).collect();
    order.sort_by(|&a, &b| commits[a].instance.cmp(&commits[b].instance));
    order
}

/// Checks the arguments of [`super::Store::create_instance`].
pub(super) fn check_create(instance: &InstanceRecord, first: &Commit) -> Result<(), StoreError> {
    if instance.version != 0 || first.expected_version != 0 || first.instance != instance.id {
        return Err(StoreError::Invalid(format!(
            "a new instance starts at version 0 with a first commit to itself \
             (instance `{}` at {}, commit to `{}` at {})",
            instance.id, instance.version, first.instance, first.expected_version
        )));
    }
    Ok(())
}

/// Checks a token hash for [`super::Store::create_principal`]: 64 lower-case hex digits.
pub(super) fn check_token_hash(hash: &str) -> Result<(), StoreError> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(StoreError::Invalid("a token hash is the SHA-256 of the token in 64 lower-case hex digits".into()));
    }
    Ok(())
}

/// Checks a principal for [`super::Store::create_principal`].
pub(super) fn check_principal(principal: &super::PrincipalRecord) -> Result<(), StoreError> {
    if principal.name.trim().is_empty() || principal.office.trim().is_empty() {
        return Err(StoreError::Invalid("a principal needs a name and an office".into()));
    }
    if principal.roles.is_empty() || principal.roles.iter().any(|r| r.trim().is_empty()) {
        return Err(StoreError::Invalid(format!("principal `{}` needs at least one role", principal.name)));
    }
    Ok(())
}

/// The `LIKE` pattern of a token id ([`super::TOKEN_ID_LEN`] hex digits), or of every token.
pub(super) fn token_prefix(id: Option<&str>) -> Result<String, StoreError> {
    match id {
        None => Ok("%".into()),
        Some(id)
            if id.len() == super::TOKEN_ID_LEN
                && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(format!("{id}%"))
        }
        Some(id) => {
            Err(StoreError::Invalid(format!("a token id is {} lower-case hex digits, not `{id}`", super::TOKEN_ID_LEN)))
        }
    }
}

/// One page of an inbox from each reader key's first `offset + limit` rows (each in
/// `(due_key, instance, node)` order, as the tuple is): merged, each step once, the page cut out. The rows of one
/// step share its `due_key`, so its copies sort side by side.
pub(super) fn inbox_page(
    mut rows: Vec<(i64, String, String)>,
    offset: i64,
    limit: i64,
) -> Result<Vec<super::OpenStepRef>, StoreError> {
    rows.sort();
    rows.dedup();
    rows.into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(key, instance, node)| Ok(super::OpenStepRef { instance, node, due_at: due_of_key(key)? }))
        .collect()
}

/// Commits on success, rolls back on failure.
pub(super) async fn finish<DB: sqlx::Database, T>(
    tx: sqlx::Transaction<'static, DB>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(map_sqlx)?;
            Ok(value)
        }
        Err(err) => {
            // The error that matters is the first; a failed rollback ends with the connection.
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}
