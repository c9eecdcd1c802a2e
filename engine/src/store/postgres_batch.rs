//! The PostgreSQL statements of a batch ([`super::batch`]): one statement per table over
//! `UNNEST`ed arrays, whatever the batch's size (one round trip each), and where two tables' or
//! two steps' writes can share a statement (data-modifying CTEs), one round trip for both.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use super::batch::{Advanced, BatchWriter, OpenStepsChange};
use super::common::{commit_time, decode_hash, map_sqlx, to_i64};
use super::due_key;
use super::log_append::LogAppend;
use super::{Commit, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};
use crate::audit::merkle::Hash;
use crate::audit::truncate_to_micros;

/// A commit transaction's connection with what its statements name besides their rows — the
/// channel its commit hints go to (issue 9.6) — and what waits to ride with a later statement:
/// the hints, a savepoint's release.
pub(super) struct PgTx<'a> {
    conn: &'a mut PgConnection,
    channel: &'a str,
    /// The hints [`BatchWriter::lock_log`] was given: sent with the events' insert, which
    /// follows, in its round trip.
    hints: Vec<String>,
    /// [`BatchWriter::release_savepoint`] was asked for and not sent yet: it goes with the next
    /// statement of the simple protocol (the next savepoint or the log's lock), in its round
    /// trip; a `COMMIT` releases it anyway.
    release_pending: bool,
}

impl<'a> PgTx<'a> {
    pub(super) fn new(conn: &'a mut PgConnection, channel: &'a str) -> Self {
        PgTx { conn, channel, hints: Vec::new(), release_pending: false }
    }
}

#[async_trait]
impl BatchWriter for PgTx<'_> {
    // The simple protocol (`raw_sql`): nothing to prepare or cache, and the
    // rollback's two statements in one round trip.
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        let sql = if std::mem::take(&mut self.release_pending) {
            "RELEASE SAVEPOINT batch; SAVEPOINT batch"
        } else {
            "SAVEPOINT batch"
        };
        sqlx::raw_sql(sql).execute(&mut *self.conn).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.release_pending = true;
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch")
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    async fn stage_together(&mut self, commits: &[&Commit]) -> Result<Option<HashMap<String, Hash>>, StoreError> {
        let mut expected = Vec::with_capacity(commits.len());
        let mut next = Vec::with_capacity(commits.len());
        for c in commits {
            let from = to_i64(c.expected_version, "version")?;
            expected.push(from);
            next.push(from + to_i64(c.events.len() as u64, "event count")?);
        }
        let keyed = super::batch::idempotency_records(commits);
        let fires = super::batch::fired_timers(commits);
        let cancel: Vec<(&str, &str)> = commits
            .iter()
            .flat_map(|c| c.cancel_timers_for_nodes.iter().map(|n| (c.instance.as_str(), n.as_str())))
            .collect();
        let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
        let late: Vec<(&str, &LateStep)> =
            commits.iter().flat_map(|c| c.late.iter().map(|r| (c.instance.as_str(), r))).collect();
        let query = sqlx::query(STAGE_TOGETHER)
            .bind(commits.iter().map(|c| c.instance.as_str()).collect::<Vec<_>>())
            .bind(expected)
            .bind(next)
            .bind(commits.iter().map(|c| c.status.as_str()).collect::<Vec<_>>())
            .bind(commits.iter().map(|c| c.snapshot.as_deref()).collect::<Vec<_>>())
            .bind(commits.iter().map(|c| commit_time(c)).collect::<Vec<_>>());
        let query = bind_fires(bind_idempotency(query, &keyed), &fires);
        let query = bind_late(bind_timers(bind_nodes(query, &cancel), &timers), &late);
        let rows = query.fetch_all(&mut *self.conn).await.map_err(map_sqlx)?;
        // Every row carries the statement's verdict: whether every version moved, every key
        // was new and every lease held.
        let Some(first) = rows.first() else { return Ok(None) };
        let passed: bool = first.try_get(2).map_err(map_sqlx)?;
        if !passed || rows.len() != commits.len() {
            return Ok(None);
        }
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let hash: Option<String> = row.try_get(1).map_err(map_sqlx)?;
            if let Some(hash) = hash {
                found.insert(row.try_get(0).map_err(map_sqlx)?, decode_hash(&hash)?);
            }
        }
        Ok(Some(found))
    }

    async fn replace_timers(&mut self, cancel: &[(&str, &str)], commits: &[&Commit]) -> Result<(), StoreError> {
        let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
        // One round trip: the cancel in a data-modifying CTE, which cannot see the rows the
        // insert adds (one snapshot for the statement), so a node's new timer stays live.
        let query = sqlx::query(
            "WITH cancelled AS (
                 UPDATE timers AS t SET state = 'cancelled'
                 FROM UNNEST($1::text[], $2::text[]) AS c (instance, node)
                 WHERE t.instance = c.instance AND t.node = c.node AND t.state IN ('pending', 'claimed'))
             INSERT INTO timers (instance, node, kind, due_at, state, fence, payload)
             SELECT instance, node, kind, due_at, 'pending', 0, payload
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[])
                  AS t (instance, node, kind, due_at, payload)",
        );
        bind_timers(bind_nodes(query, cancel), &timers).execute(&mut *self.conn).await.map_err(map_sqlx)?;
        Ok(())
    }

    async fn replace_open_steps(
        &mut self,
        nodes: &[(&str, &str)],
        rows: &[(&str, &OpenStepRow)],
    ) -> Result<(), StoreError> {
        // One round trip: the delete in a data-modifying CTE, run to its end before the first
        // row is inserted (the insert reads its count), so a node's row may come back with the
        // same key; each statement's counting trigger fires at the statement's end.
        let query = sqlx::query(
            "WITH gone AS (
                 DELETE FROM open_steps AS o USING UNNEST($1::text[], $2::text[]) AS c (instance, node)
                 WHERE o.instance = c.instance AND o.node = c.node RETURNING 1)
             INSERT INTO open_steps (instance, node, reader, due_key, overdue)
             SELECT * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bool[])
             WHERE (SELECT count(*) FROM gone) >= 0",
        );
        bind_open_steps(query, OpenStepsChange { nodes, rows }).execute(&mut *self.conn).await.map_err(map_sqlx)?;
        Ok(())
    }

    async fn advance_version(&mut self, commit: &Commit) -> Result<Advanced, StoreError> {
        let expected = to_i64(commit.expected_version, "version")?;
        let added = to_i64(commit.events.len() as u64, "event count")?;
        // Takes the row lock: a concurrent commit to this instance waits here. The hash the new
        // events chain on comes back in the same round trip.
        let row = sqlx::query(
            "WITH moved AS (
                 UPDATE instances SET version = $1, status = $2,
                        snapshot_version = CASE WHEN $3::text IS NULL THEN snapshot_version ELSE $1 END,
                        updated_at = $4
                 WHERE id = $5 AND version = $6 RETURNING id),
             snapped AS (
                 INSERT INTO snapshots (instance, body) SELECT id, $3::jsonb FROM moved WHERE $3::text IS NOT NULL
                 ON CONFLICT (instance) DO UPDATE SET body = excluded.body)
             SELECT (SELECT count(*) FROM moved), (SELECT hash FROM events WHERE instance = $5 AND seq = $6)",
        )
        .bind(expected + added)
        .bind(commit.status.as_str())
        .bind(commit.snapshot.as_deref())
        .bind(commit_time(commit))
        .bind(commit.instance.as_str())
        .bind(expected)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        let moved: i64 = row.try_get(0).map_err(map_sqlx)?;
        if moved != 1 {
            return Ok(Advanced::Refused);
        }
        let hash: Option<String> = row.try_get(1).map_err(map_sqlx)?;
        Ok(Advanced::Bumped(hash.as_deref().map(decode_hash).transpose()?))
    }

    async fn insert_idempotency(&mut self, records: &[(&Commit, &IdempotencyRecord)]) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "INSERT INTO idempotency
             (principal, idempotency_key, request_hash, response, instance, created_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                                  $6::timestamptz[])
             ON CONFLICT (principal, idempotency_key) DO NOTHING",
        );
        let inserted =
            bind_idempotency(query, records).execute(&mut *self.conn).await.map_err(map_sqlx)?.rows_affected();
        Ok(inserted == records.len() as u64)
    }

    async fn insert_events(
        &mut self,
        events: &[&StoredEvent],
        payloads: &[&str],
        log: Option<&LogAppend<'_>>,
        open_steps: OpenStepsChange<'_>,
    ) -> Result<bool, StoreError> {
        let mut seqs = Vec::with_capacity(events.len());
        let mut leaves: Vec<Option<i64>> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            seqs.push(to_i64(event.seq, "seq")?);
            leaves.push(log.and_then(|l| l.rows.get(i)).map(|r| to_i64(r.index, "audit index")).transpose()?);
        }
        // One round trip for the events, their leaves (checked against the stored tree), the
        // hints and the open steps ([`events_sql`]).
        let sql = if log.is_some() { EVENTS_WITH_LEAVES.as_str() } else { EVENTS_WITHOUT_LEAVES.as_str() };
        let mut query = sqlx::query(sql)
            .bind(events.iter().map(|e| e.instance.as_str()).collect::<Vec<_>>())
            .bind(seqs)
            .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.role.as_deref()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
            .bind(payloads)
            .bind(events.iter().map(|e| e.prev_hash.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.hash.as_str()).collect::<Vec<_>>())
            .bind(leaves);
        query = match log {
            Some(log) => bind_log(query, log)?,
            None => query
                .bind(Vec::<Vec<u8>>::new())
                .bind(Vec::<Option<Vec<u8>>>::new())
                .bind(None::<i64>)
                .bind(None::<Vec<u8>>),
        };
        let written = bind_open_steps(query.bind(self.channel).bind(&self.hints), open_steps)
            .execute(&mut *self.conn)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
        let written = log.is_none() || written == events.len() as u64;
        if written {
            // Sent: a retry after a stale frontier must not send them again.
            self.hints.clear();
        }
        Ok(written)
    }

    async fn fire_timers(&mut self, fires: &[(i64, i64, &str)]) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE timers AS t SET state = 'fired'
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS f (id, fence, instance)
             WHERE t.id = f.id AND t.fence = f.fence AND t.instance = f.instance AND t.state = 'claimed'",
        );
        let fired = bind_fires(query, fires).execute(&mut *self.conn).await.map_err(map_sqlx)?.rows_affected();
        Ok(fired == fires.len() as u64)
    }

    async fn insert_late_steps(&mut self, rows: &[(&str, &LateStep)]) -> Result<(), StoreError> {
        // A burst of deadlines breaches one step per firing: the batch's rows in one statement.
        let query = sqlx::query(
            "INSERT INTO late_steps (instance, node, role, office, due_at, late_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
             ON CONFLICT DO NOTHING",
        );
        bind_late(query, rows).execute(&mut *self.conn).await.map_err(map_sqlx)?;
        Ok(())
    }

    async fn policy_published(&mut self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let published: Option<i32> = sqlx::query_scalar("SELECT 1 FROM policies WHERE name = $1 AND hash = $2")
            .bind(name)
            .bind(hash)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)?;
        Ok(published.is_some())
    }

    async fn insert_instance_rows(&mut self, instances: &[&InstanceRecord]) -> Result<u64, StoreError> {
        // The snapshot into its own table (migration 0016), in the same statement.
        let inserted: i64 = sqlx::query_scalar(
            "WITH i AS (
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                                      $6::timestamptz[], $7::timestamptz[])
                     AS i (id, policy_name, policy_hash, status, snapshot, created_at, updated_at)),
             inserted AS (
                 INSERT INTO instances (id, policy_name, policy_hash, version, status, created_at, updated_at)
                 SELECT id, policy_name, policy_hash, 0, status, created_at, updated_at FROM i
                 ON CONFLICT (id) DO NOTHING RETURNING id),
             snapped AS (
                 INSERT INTO snapshots (instance, body) SELECT i.id, i.snapshot FROM i JOIN inserted USING (id))
             SELECT count(*) FROM inserted",
        )
        .bind(instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.policy_name.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.policy_hash.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.status.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| Json(&i.snapshot)).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| truncate_to_micros(i.created_at)).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| truncate_to_micros(i.updated_at)).collect::<Vec<_>>())
        .fetch_one(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        super::common::to_u64(inserted, "count")
    }

    async fn version_of(&mut self, instance: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT version FROM instances WHERE id = $1")
            .bind(instance)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)
    }

    async fn raise_counter_below(&mut self, key: &str, cap: i64) -> Result<bool, StoreError> {
        let raised = sqlx::query(
            "INSERT INTO counters (key, value) VALUES ($1, 1)
             ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < $2",
        )
        .bind(key)
        .bind(cap)
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        Ok(raised == 1)
    }

    async fn release_counter(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE counters SET value = value - 1 WHERE key = $1 AND value > 0")
            .bind(key)
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    async fn set_policy_hash(&mut self, instance: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET policy_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(instance)
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    /// A transaction-scoped advisory lock orders the appends of every node's transactions. The
    /// hints (`instance\tseq`, what `PgStore::commit_hints` reads) go with the events' insert,
    /// which follows; a savepoint's release waiting to be sent goes in this round trip.
    async fn lock_log(&mut self, hints: &[(&str, u64)]) -> Result<(), StoreError> {
        self.hints = hints.iter().map(|(instance, seq)| format!("{instance}\t{seq}")).collect();
        if std::mem::take(&mut self.release_pending) {
            return sqlx::raw_sql(AssertSqlSafe(format!("RELEASE SAVEPOINT batch; {LOCK_LOG}")))
                .execute(&mut *self.conn)
                .await
                .map(|_| ())
                .map_err(map_sqlx);
        }
        lock_log(self.conn).await
    }

    /// Another transaction-scoped advisory lock, one per schema, beside the log's.
    async fn lock_counters(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(1213, hashtext(current_schema()))")
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    /// Under the log's lock: a commit's append took it ([`BatchWriter::lock_log`]) and comes
    /// here only when its hint was stale (the lock again is no wait); the backfill's first
    /// append takes it here.
    async fn log_frontier(&mut self) -> Result<(u64, Vec<crate::audit::merkle::Hash>), StoreError> {
        lock_log(self.conn).await?;
        let row = sqlx::query("SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else { return Ok((0, Vec::new())) };
        let last: i64 = row.try_get("idx").map_err(map_sqlx)?;
        let peaks: Option<Vec<u8>> = row.try_get("peaks").map_err(map_sqlx)?;
        let peaks = peaks.ok_or_else(|| StoreError::Corrupt(format!("audit leaf {last} carries no frontier")))?;
        Ok((super::common::to_u64(last, "audit index")? + 1, super::log_append::peaks_from_bytes(&peaks)?))
    }

    async fn insert_log_leaves(&mut self, log: &LogAppend<'_>) -> Result<bool, StoreError> {
        let (mut idx, mut seqs) = (Vec::with_capacity(log.rows.len()), Vec::with_capacity(log.rows.len()));
        for r in &log.rows {
            idx.push(to_i64(r.index, "audit index")?);
            seqs.push(to_i64(r.seq, "seq")?);
        }
        let query = sqlx::query(AssertSqlSafe(leaves_sql([1, 2, 3, 4, 5, 6, 7])))
            .bind(idx)
            .bind(log.rows.iter().map(|r| r.instance).collect::<Vec<_>>())
            .bind(seqs);
        let written = bind_log(query, log)?.execute(&mut *self.conn).await.map_err(map_sqlx)?.rows_affected();
        Ok(written == log.rows.len() as u64)
    }
}

/// A batch's events, `$1`…`$10` one array a column.
const INSERT_EVENTS: &str =
    "INSERT INTO events (instance, seq, at, actor, role, kind, payload, prev_hash, hash, log_index)
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[],
                          $6::text[], $7::text[]::jsonb[], $8::text[], $9::text[], $10::bigint[])";

/// [`BatchWriter::stage_together`] in one round trip. The versions' compare-and-set first: the
/// rows locked first, in the order of their ids (an uncorrelated subquery, evaluated once, before
/// the update takes any row), so two nodes' batches of the same instances wait for each other
/// instead of deadlocking (the join's own order is the planner's). Then the snapshots, the
/// idempotency records (`$7`…`$12`), the fired timers (`$13`…`$15`), the cancelled (`$16`,
/// `$17`; a timer fired here is not also cancelled: two updates of one row in one statement
/// would leave either) and new timers (`$18`…`$22`) and the breaches (`$23`…`$28`) — each
/// written only if every version moved. Each row: an instance moved, the hash its events chain
/// on, and the verdict (every version moved, every key new, every lease held).
const STAGE_TOGETHER: &str = "WITH moved AS (
         UPDATE instances AS i SET version = v.next, status = v.status,
                snapshot_version = CASE WHEN v.snapshot IS NULL THEN i.snapshot_version ELSE v.next END,
                updated_at = v.at
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[])
              AS v (id, expected, next, status, snapshot, at)
         WHERE i.id = v.id AND i.version = v.expected
           AND (SELECT count(*) FROM (SELECT FROM instances WHERE id = ANY($1) ORDER BY id
                                      FOR NO KEY UPDATE) AS locked) >= 0
         RETURNING i.id, v.expected, v.snapshot),
     moved_all AS (SELECT count(*) = cardinality($1::text[]) AS yes FROM moved),
     snapped AS (
         INSERT INTO snapshots (instance, body) SELECT id, snapshot::jsonb FROM moved
         WHERE snapshot IS NOT NULL AND (SELECT yes FROM moved_all)
         ON CONFLICT (instance) DO UPDATE SET body = excluded.body RETURNING 1),
     keyed AS (
         INSERT INTO idempotency (principal, idempotency_key, request_hash, response, instance, created_at)
         SELECT * FROM UNNEST($7::text[], $8::text[], $9::text[], $10::jsonb[], $11::text[], $12::timestamptz[])
         WHERE (SELECT yes FROM moved_all)
         ON CONFLICT (principal, idempotency_key) DO NOTHING RETURNING 1),
     fired AS (
         UPDATE timers AS t SET state = 'fired'
         FROM UNNEST($13::bigint[], $14::bigint[], $15::text[]) AS f (id, fence, instance)
         WHERE t.id = f.id AND t.fence = f.fence AND t.instance = f.instance AND t.state = 'claimed'
           AND (SELECT yes FROM moved_all) RETURNING 1),
     cancelled AS (
         UPDATE timers AS t SET state = 'cancelled'
         FROM UNNEST($16::text[], $17::text[]) AS c (instance, node)
         WHERE t.instance = c.instance AND t.node = c.node AND t.state IN ('pending', 'claimed')
           AND t.id <> ALL($13::bigint[]) AND (SELECT yes FROM moved_all) RETURNING 1),
     added AS (
         INSERT INTO timers (instance, node, kind, due_at, state, fence, payload)
         SELECT instance, node, kind, due_at, 'pending', 0, payload
         FROM UNNEST($18::text[], $19::text[], $20::text[], $21::timestamptz[], $22::jsonb[])
              AS t (instance, node, kind, due_at, payload)
         WHERE (SELECT yes FROM moved_all) RETURNING 1),
     late AS (
         INSERT INTO late_steps (instance, node, role, office, due_at, late_at)
         SELECT * FROM UNNEST($23::text[], $24::text[], $25::text[], $26::text[], $27::timestamptz[],
                              $28::timestamptz[])
         WHERE (SELECT yes FROM moved_all)
         ON CONFLICT DO NOTHING RETURNING 1),
     passed AS (
         SELECT (SELECT yes FROM moved_all)
                AND (SELECT count(*) FROM keyed) = cardinality($7::text[])
                AND (SELECT count(*) FROM fired) = cardinality($13::bigint[]) AS yes)
     SELECT m.id, e.hash, (SELECT yes FROM passed)
     FROM moved m LEFT JOIN events e ON e.instance = m.id AND e.seq = m.expected";

/// A batch's events with what goes with them: the leaves (`$11`…`$14`, [`bind_log`]; with
/// `leaves`, the events written only if every leaf was), then the hints (`$15`, `$16`:
/// `instance\tseq`, what `PgStore::commit_hints` reads, to the channel) and the open steps
/// replaced (`$17`, `$18` the nodes whose rows go, `$19`…`$23` the rows), both only when the
/// events are written. Without `leaves` (the benchmark's comparison) the leaves' parameters are
/// bound and unused. The open steps' delete runs to its end before the first row is inserted
/// (the insert reads its count), so a node's row may come back with the same key; the counting
/// triggers fire at the statement's end.
fn events_sql(leaves: bool) -> String {
    let (with_leaves, written) = if leaves {
        (
            format!("leaves AS ({} RETURNING 1),", leaves_sql([10, 1, 2, 11, 12, 13, 14])),
            "(SELECT count(*) FROM leaves) = cardinality($1::text[])",
        )
    } else {
        ("unused AS (SELECT $11::bytea[], $12::bytea[], $13::bigint, $14::bytea),".to_owned(), "true")
    };
    format!(
        "WITH {with_leaves}
              hinted AS (SELECT count(pg_notify($15, hint)) AS n FROM unnest($16::text[]) AS hint
                         WHERE {written}),
              gone AS (DELETE FROM open_steps AS o USING UNNEST($17::text[], $18::text[]) AS c (instance, node)
                       WHERE o.instance = c.instance AND o.node = c.node AND {written} RETURNING 1),
              opened AS (INSERT INTO open_steps (instance, node, reader, due_key, overdue)
                         SELECT * FROM UNNEST($19::text[], $20::text[], $21::text[], $22::bigint[], $23::bool[])
                         WHERE (SELECT count(*) FROM gone) >= 0 AND {written} RETURNING 1)
         {INSERT_EVENTS} WHERE (SELECT n FROM hinted) >= 0 AND (SELECT count(*) FROM opened) >= 0 AND {written}"
    )
}

/// [`events_sql`], made once each: every commit's statement.
static EVENTS_WITH_LEAVES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| events_sql(true));
static EVENTS_WITHOUT_LEAVES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| events_sql(false));

/// The leaves' insert with its parameters numbered `p`: the arrays of indexes, instances, seqs,
/// leaf hashes and peaks, then the check — the last leaf's index (NULL: the tree must be empty)
/// and the peaks it must carry.
fn leaves_sql(p: [u8; 7]) -> String {
    format!(
        "INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks)
         SELECT * FROM UNNEST(${}::bigint[], ${}::text[], ${}::bigint[], ${}::bytea[], ${}::bytea[])
         WHERE CASE WHEN ${}::bigint IS NULL THEN NOT EXISTS (SELECT 1 FROM audit_leaves)
               ELSE EXISTS (SELECT 1 FROM (SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1) l
                            WHERE l.idx = ${5} AND l.peaks = ${6}::bytea) END",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Idempotency records, six arrays: principals, keys, request hashes, responses, instances,
/// times.
fn bind_idempotency<'q>(query: Query<'q>, records: &[(&'q Commit, &'q IdempotencyRecord)]) -> Query<'q> {
    query
        .bind(records.iter().map(|r| r.1.principal.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.1.key.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.1.request_hash.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| Json(&r.1.response)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.0.instance.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| commit_time(r.0)).collect::<Vec<_>>())
}

/// Fired timers, three arrays: ids, fences, instances.
fn bind_fires<'q>(query: Query<'q>, fires: &[(i64, i64, &'q str)]) -> Query<'q> {
    query
        .bind(fires.iter().map(|f| f.0).collect::<Vec<_>>())
        .bind(fires.iter().map(|f| f.1).collect::<Vec<_>>())
        .bind(fires.iter().map(|f| f.2).collect::<Vec<_>>())
}

/// `(instance, node)` pairs, two arrays.
fn bind_nodes<'q>(query: Query<'q>, nodes: &[(&'q str, &'q str)]) -> Query<'q> {
    query.bind(nodes.iter().map(|n| n.0).collect::<Vec<_>>()).bind(nodes.iter().map(|n| n.1).collect::<Vec<_>>())
}

/// New timers, five arrays: instances, nodes, kinds, due instants, payloads.
fn bind_timers<'q>(query: Query<'q>, timers: &[&'q super::NewTimer]) -> Query<'q> {
    query
        .bind(timers.iter().map(|t| t.instance.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| t.node.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| truncate_to_micros(t.due_at)).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| Json(&t.payload)).collect::<Vec<_>>())
}

/// Breaches, six arrays: instances, nodes, roles, offices, due and late instants.
fn bind_late<'q>(query: Query<'q>, rows: &[(&'q str, &'q LateStep)]) -> Query<'q> {
    query
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.node.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.role.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.office.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| truncate_to_micros(r.1.due_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| truncate_to_micros(r.1.late_at)).collect::<Vec<_>>())
}

/// Open-step rows replaced, seven arrays: the nodes' instances and nodes whose rows go, then the
/// rows' instances, nodes, readers, due keys and overdue flags.
fn bind_open_steps<'q>(query: Query<'q>, change: OpenStepsChange<'q>) -> Query<'q> {
    let rows = change.rows;
    bind_nodes(query, change.nodes)
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.node.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.reader.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| due_key(r.1.due_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.overdue).collect::<Vec<_>>())
}

/// A log's leaf hashes, peaks and check, in that order.
fn bind_log<'q>(query: Query<'q>, log: &LogAppend<'_>) -> Result<Query<'q>, StoreError> {
    let last = log.after.as_ref().map(|(last, _)| to_i64(*last, "audit index")).transpose()?;
    Ok(query
        .bind(log.rows.iter().map(|r| r.leaf.to_vec()).collect::<Vec<_>>())
        .bind(log.rows.iter().map(|r| r.peaks.clone()).collect::<Vec<_>>())
        .bind(last)
        .bind(log.after.as_ref().map(|(_, peaks)| peaks.clone())))
}

/// The statement that takes [`lock_log`]'s lock.
const LOCK_LOG: &str = "SELECT pg_advisory_xact_lock(1212, hashtext(current_schema()))";

/// Issue 12.1: the audit log's transaction-scoped advisory lock, one per schema (nodes sharing a
/// database share a schema; tests on one database each use their own).
pub(super) async fn lock_log(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(LOCK_LOG).execute(&mut *conn).await.map_err(map_sqlx)?;
    Ok(())
}
