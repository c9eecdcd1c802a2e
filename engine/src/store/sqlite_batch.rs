//! Issue 10.3 on SQLite: a group-committed batch written with one statement per table (the
//! versions' compare-and-set, the previous hashes, the idempotency records, the events, the
//! fired, cancelled and new timers) instead of some nine statements per commit. Every statement
//! is a hand-off to the driver's worker thread, and those hand-offs, not SQLite, were where a
//! batch spent its time (BENCHMARKS.md, "Approvals through the HTTP API").
//!
//! The batch is all or nothing: [`write`] answers `None` as soon as one commit of it would be
//! refused (a version moved, a key reused, a timer's lease lost), and the caller rolls the
//! savepoint back and writes the batch commit by commit, so each commit still gets its own
//! answer. Commits that raise or release counters, spawn an instance or create their own never
//! come here.

use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};

use super::common::{chain_events, commit_time, decode_hash, map_sqlx, to_i64};
use super::sqlite_commit::{json_text, micros};
use super::{Commit, StoreError, StoredEvent};
use crate::audit::GENESIS;

/// The most rows one statement carries (SQLite allows 32,766 parameters a statement; the
/// widest row here has 9).
const ROWS_PER_STATEMENT: usize = 512;

/// Whether a commit can be written by [`write`]: counters and spawns keep their own statements.
pub(super) fn batchable(commit: &Commit) -> bool {
    commit.counters.is_empty() && commit.released.is_empty() && commit.spawn.is_none() && commit.create.is_none()
}

/// Writes `commits` (of distinct instances, each [`batchable`]) with one statement per table
/// and chunk. `Ok(None)`: some commit would be refused, and what was written must be rolled
/// back; `Err`: the statements themselves failed (the caller falls back too, and the commit by
/// commit path reports the error where it belongs).
pub(super) async fn write(
    conn: &mut SqliteConnection,
    commits: &[&Commit],
) -> Result<Option<Vec<Vec<StoredEvent>>>, StoreError> {
    if !compare_and_set_versions(conn, commits).await? {
        return Ok(None);
    }
    let Some(prevs) = previous_hashes(conn, commits).await? else {
        return Ok(None);
    };
    if !insert_idempotency(conn, commits).await? {
        return Ok(None);
    }
    let stored: Vec<Vec<StoredEvent>> = commits
        .iter()
        .zip(prevs)
        .map(|(c, prev)| chain_events(&c.instance, c.expected_version, prev, &c.events))
        .collect();
    insert_events(conn, &stored).await?;
    if !fire_timers(conn, commits).await? {
        return Ok(None);
    }
    cancel_timers(conn, commits).await?;
    insert_timers(conn, commits).await?;
    Ok(Some(stored))
}

/// `(?, ?, …), (?, ?, …)…`: `rows` tuples of `columns` placeholders.
fn tuples(rows: usize, columns: usize) -> String {
    repeat_row(rows, &format!("({})", vec!["?"; columns].join(", ")))
}

/// `row, row, …`, `rows` times.
fn repeat_row(rows: usize, row: &str) -> String {
    vec![row; rows].join(", ")
}

/// Bumps every instance's version from the one its commit expects, with its status, snapshot
/// and time; `false` when any had moved (or is gone).
async fn compare_and_set_versions(conn: &mut SqliteConnection, commits: &[&Commit]) -> Result<bool, StoreError> {
    for chunk in commits.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (id, expected, next, status, snapshot, at) AS (VALUES {})
             UPDATE instances SET version = v.next, status = v.status, snapshot = v.snapshot, updated_at = v.at
             FROM v WHERE instances.id = v.id AND instances.version = v.expected",
            tuples(chunk.len(), 6)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for commit in chunk {
            let expected = to_i64(commit.expected_version, "version")?;
            let added = to_i64(commit.events.len() as u64, "event count")?;
            query = query
                .bind(commit.instance.as_str())
                .bind(expected)
                .bind(expected + added)
                .bind(commit.status.as_str())
                .bind(json_text(&commit.snapshot)?)
                .bind(micros(commit_time(commit)));
        }
        let updated = query.execute(&mut *conn).await.map_err(map_sqlx)?.rows_affected();
        if updated != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The hash each commit's first event chains from: the genesis for a first commit, else the
/// hash of the event at the expected version (`None` if one is missing: the commit by commit
/// path names the corruption).
async fn previous_hashes(
    conn: &mut SqliteConnection,
    commits: &[&Commit],
) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
    let wanted: Vec<&&Commit> = commits.iter().filter(|c| c.expected_version > 0).collect();
    let mut found = std::collections::HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH k (instance, seq) AS (VALUES {})
             SELECT events.instance, events.hash FROM k
             JOIN events ON events.instance = k.instance AND events.seq = k.seq",
            tuples(chunk.len(), 2)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for commit in chunk {
            query = query.bind(commit.instance.as_str()).bind(to_i64(commit.expected_version, "version")?);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(map_sqlx)? {
            let instance: String = row.try_get(0).map_err(map_sqlx)?;
            let hash: String = row.try_get(1).map_err(map_sqlx)?;
            found.insert(instance, decode_hash(&hash)?);
        }
    }
    Ok(commits
        .iter()
        .map(|c| if c.expected_version == 0 { Some(GENESIS) } else { found.get(&c.instance).copied() })
        .collect())
}

/// Stores every commit's idempotency record; `false` when a key was already taken.
async fn insert_idempotency(conn: &mut SqliteConnection, commits: &[&Commit]) -> Result<bool, StoreError> {
    let keyed: Vec<&&Commit> = commits.iter().filter(|c| c.idempotency.is_some()).collect();
    for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO idempotency (principal, idempotency_key, request_hash, response, instance, created_at)
             VALUES {} ON CONFLICT (principal, idempotency_key) DO NOTHING",
            tuples(chunk.len(), 6)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for commit in chunk {
            let Some(idem) = &commit.idempotency else { continue };
            query = query
                .bind(idem.principal.as_str())
                .bind(idem.key.as_str())
                .bind(idem.request_hash.as_str())
                .bind(json_text(&idem.response)?)
                .bind(commit.instance.as_str())
                .bind(micros(commit_time(commit)));
        }
        let inserted = query.execute(&mut *conn).await.map_err(map_sqlx)?.rows_affected();
        if inserted != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn insert_events(conn: &mut SqliteConnection, stored: &[Vec<StoredEvent>]) -> Result<(), StoreError> {
    let events: Vec<&StoredEvent> = stored.iter().flatten().collect();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO events (instance, seq, at, actor, role, kind, payload, prev_hash, hash) VALUES {}",
            tuples(chunk.len(), 9)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for event in chunk {
            query = query
                .bind(event.instance.as_str())
                .bind(to_i64(event.seq, "seq")?)
                .bind(micros(event.at))
                .bind(event.actor.as_str())
                .bind(event.role.as_deref())
                .bind(event.kind.as_str())
                .bind(json_text(&event.payload)?)
                .bind(event.prev_hash.as_str())
                .bind(event.hash.as_str());
        }
        query.execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    Ok(())
}

/// Marks the timers the commits fire as fired, under their fences; `false` when a lease was
/// lost (the timer is no longer claimed with that fence by that instance).
async fn fire_timers(conn: &mut SqliteConnection, commits: &[&Commit]) -> Result<bool, StoreError> {
    let fires: Vec<(i64, i64, &str)> =
        commits.iter().filter_map(|c| c.fire.map(|(timer, fence)| (timer, fence, c.instance.as_str()))).collect();
    for chunk in fires.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH f (id, fence, instance) AS (VALUES {})
             UPDATE timers SET state = 'fired' FROM f
             WHERE timers.id = f.id AND timers.fence = f.fence AND timers.instance = f.instance
               AND timers.state = 'claimed'",
            tuples(chunk.len(), 3)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (timer, fence, instance) in chunk {
            query = query.bind(*timer).bind(*fence).bind(*instance);
        }
        let fired = query.execute(&mut *conn).await.map_err(map_sqlx)?.rows_affected();
        if fired != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Cancels the live timers of the nodes the commits name (before their new timers exist).
async fn cancel_timers(conn: &mut SqliteConnection, commits: &[&Commit]) -> Result<(), StoreError> {
    let nodes: Vec<(&str, &str)> = commits
        .iter()
        .flat_map(|c| c.cancel_timers_for_nodes.iter().map(|n| (c.instance.as_str(), n.as_str())))
        .collect();
    for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH c (instance, node) AS (VALUES {})
             UPDATE timers SET state = 'cancelled' FROM c
             WHERE timers.instance = c.instance AND timers.node = c.node
               AND timers.state IN ('pending', 'claimed')",
            tuples(chunk.len(), 2)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (instance, node) in chunk {
            query = query.bind(*instance).bind(*node);
        }
        query.execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    Ok(())
}

async fn insert_timers(conn: &mut SqliteConnection, commits: &[&Commit]) -> Result<(), StoreError> {
    let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
    for chunk in timers.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO timers (instance, node, kind, due_at, state, fence, payload) VALUES {}",
            repeat_row(chunk.len(), "(?, ?, ?, ?, 'pending', 0, ?)")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for timer in chunk {
            query = query
                .bind(timer.instance.as_str())
                .bind(timer.node.as_str())
                .bind(timer.kind.as_str())
                .bind(micros(timer.due_at))
                .bind(json_text(&timer.payload)?);
        }
        query.execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    Ok(())
}
