//! The PostgreSQL store: for several nodes sharing one database.
//!
//! - A connection pool; every commit is one `READ COMMITTED` transaction. The version check is
//!   an `UPDATE … WHERE version = $expected`: it takes the instance row's lock, so a concurrent
//!   commit to the same instance waits, then sees the new version and fails with
//!   [`StoreError::Conflict`].
//! - Timers are claimed with `FOR UPDATE SKIP LOCKED`, so nodes claiming at the same time take
//!   disjoint sets; due-ness is judged by the database's `now()` unless a simulated time is given.
//! - The tables live in the first schema of the connection's `search_path` (the tests give each
//!   run its own schema this way).
//! - Times are `timestamptz` (microseconds), JSON is `jsonb`.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::Row;

/// The LISTEN/NOTIFY channel of commit hints (issue 9.6), followed by `.` and the schema.
const COMMIT_CHANNEL: &str = "civicflow_commits";
/// The channel of principals whose tokens or roles changed (issue 10.4), followed by `.` and
/// the schema.
const PRINCIPAL_CHANNEL: &str = "civicflow_principals";

/// A channel name for a schema: an identifier, at most 63 bytes (pg_notify refuses a longer one).
fn channel_name(base: &str, schema: &str) -> String {
    let mut channel = format!("{base}.{schema}");
    while channel.len() > 63 {
        channel.pop();
    }
    channel
}

use super::common::{
    check_create, finish, lease_micros, map_migrate, map_sqlx, to_i64, to_u64, validate_commit, verify_log,
};
use super::{
    AuditCheckpointRecord, AuditEntry, AuditLeaf, AuditTree, BatchResults, CalendarYearRecord, Commit, CommitHint,
    IdempotencyRecord, InboxQuery, InstanceFilter, InstanceRecord, LateRecord, LateStep, MigrationPlanRecord,
    OpenStepRef, OpenStepRow, Page, PolicyRecord, PrincipalRecord, Published, SessionRecord, Store, StoreError,
    StoredEvent, TimerRecord, TokenRecord,
};
use crate::audit::truncate_to_micros;

use super::batch;
use super::postgres_batch::PgTx;
#[allow(clippy::wildcard_imports, reason = "the commit path and row mappers, split out of this file")]
use super::postgres_commit::*;

/// The pool size [`PgStore::connect`] uses.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// The LISTEN/NOTIFY channel of commit hints: one per schema, since channels are shared by
    /// the whole database (issue 9.6).
    channel: String,
    /// The channel of principals whose tokens or roles changed.
    principal_channel: String,
    /// Commits written by [`batch::write`] (one statement per table), for tests and benches.
    batched: Arc<AtomicU64>,
    /// The global tree's frontier after this store's last append (a hint, issue 12.1).
    pub(super) log_head: Arc<super::log_append::LogHead>,
    /// Where group-committed batches are written (a thread of their own).
    writer: super::postgres_writer::PgWriter,
}

/// How a write transaction begins (issue 10). Its statements find their rows by key, but their
/// plans are cached on each connection — generic plans, made after five runs from the
/// statistics of that moment — and on a store still small when a connection first ran them,
/// sequential scans and hash joins won and stayed: each batch then read every instance row,
/// every live timer and every open step. The engine bench (64 clients, 6 s, `pg_stat_user_tables`)
/// counted 4.3 M instance rows read by ~2,200 sequential scans and 10.8 M entries of the live
/// timers' index read by ~1,100 scans; PostgreSQL spent ~350 µs of CPU an approval. With these
/// off a plan takes each row through its index whatever a table's size (~200 µs an approval,
/// +37 % approvals/s over 5 s, ×2 over 20 s; BENCHMARKS.md, issue 10, stop 32). `SET LOCAL` ends with the transaction,
/// so reads keep the planner's defaults, and the settings ride in `BEGIN`'s round trip. Off, a
/// plan's kind is only priced out, never forbidden: a statement with no other way still runs.
pub(super) const BEGIN_WRITE: &str = "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
     SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

/// How a read of rows by their keys begins (issue 10): the same plans priced out as in
/// [`BEGIN_WRITE`], read only. The timer service's load of 256 instances (`id = ANY($1)`) was a
/// sequential scan of every instance, each row compared with each of the 256 keys: 8–26 ms a
/// load with 10,000 instances (`auto_explain`, BENCHMARKS.md, issue 10, stop 32).
pub(super) const BEGIN_KEYED_READ: &str = "BEGIN READ ONLY; SET LOCAL enable_seqscan = off; \
     SET LOCAL enable_bitmapscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

impl PgStore {
    /// Connects to a URL such as `postgres://postgres@127.0.0.1:5432/civicflow` and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(map_sqlx)?;
        PgStore::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with explicit options (for example a `search_path` in `options`) and migrates.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_sqlx)?;
        PgStore::from_pool(pool).await
    }

    /// Uses an existing pool; runs the migrations (under PostgreSQL's advisory lock, so nodes
    /// starting together migrate once).
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(map_migrate)?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await.map_err(map_sqlx)?;
        let channel = channel_name(COMMIT_CHANNEL, &schema);
        let principal_channel = channel_name(PRINCIPAL_CHANNEL, &schema);
        let (batched, log_head) = (Arc::<AtomicU64>::default(), Arc::<super::log_append::LogHead>::default());
        let options = (*pool.connect_options()).clone();
        let writer =
            super::postgres_writer::PgWriter::start(options, channel.clone(), batched.clone(), log_head.clone())?;
        Ok(PgStore { pool, channel, principal_channel, batched, log_head, writer })
    }

    /// How many commits this store has written in batches with one statement per table (issue
    /// 10.3) rather than one by one (see `SqliteStore::batched_commits`).
    pub fn batched_commits(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// The pool, for maintenance and tests. Writing events through it bypasses the store's
    /// guarantees.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction ([`BEGIN_WRITE`]).
    pub(super) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin_with(BEGIN_WRITE).await.map_err(map_sqlx)
    }

    /// The commit path's statements (`batch::BatchWriter`) over `conn`, in its transaction.
    pub(super) fn batch_writer<'a>(&'a self, conn: &'a mut sqlx::PgConnection) -> PgTx<'a> {
        PgTx::new(conn, &self.channel)
    }

    /// The notifications of `channel`, each read by `parse` (what it cannot read is skipped),
    /// on a listener connection of their own. The task ends with its receiver (the server
    /// stopped) or with the pool (closed): the connection goes back then, so closing the pool
    /// never waits on it. `recv` reconnects on its next call after an error.
    async fn listen<T: Send + 'static>(
        &self,
        channel: &str,
        capacity: usize,
        parse: impl Fn(&str) -> Option<T> + Send + 'static,
    ) -> Result<tokio::sync::mpsc::Receiver<T>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await.map_err(map_sqlx)?;
        listener.listen(channel).await.map_err(map_sqlx)?;
        let (send, receive) = tokio::sync::mpsc::channel(capacity);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = listener.recv() => next,
                    () = send.closed() => return,
                };
                match next {
                    Ok(n) => {
                        let Some(item) = parse(n.payload()) else { continue };
                        if send.send(item).await.is_err() {
                            return;
                        }
                    }
                    Err(_) if pool.is_closed() => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Ok(receive)
    }

    /// Tells every node listening (`principal_changes`) that `principal`'s tokens or roles
    /// changed, when `tx` commits (a rolled-back change tells nothing).
    pub(super) async fn notify_principal(
        &self,
        tx: &mut sqlx::PgConnection,
        principal: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.principal_channel)
            .bind(principal)
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn publish_policy(&self, policy: PolicyRecord) -> Result<Published, StoreError> {
        let mut tx = self.begin().await?;
        let result = async {
            let inserted = sqlx::query(
                "INSERT INTO policies (name, hash, version_label, source, ir, published_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, hash) DO NOTHING",
            )
            .bind(&policy.name)
            .bind(&policy.hash)
            .bind(&policy.version_label)
            .bind(&policy.source)
            .bind(Json(&policy.ir))
            .bind(truncate_to_micros(policy.published_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            let row = sqlx::query(
                "SELECT name, hash, version_label, source, ir, published_at
                 FROM policies WHERE name = $1 AND hash = $2",
            )
            .bind(&policy.name)
            .bind(&policy.hash)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            Ok(Published { record: policy_row(&row)?, created: inserted == 1 })
        }
        .await;
        finish(tx, result).await
    }

    async fn get_policy(&self, name: &str, hash: Option<&str>) -> Result<Option<PolicyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, hash, version_label, source, ir, published_at FROM policies
             WHERE name = $1 AND ($2::text IS NULL OR hash = $2)
             ORDER BY id DESC LIMIT 1",
        )
        .bind(name)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(policy_row).transpose()
    }

    async fn latest_policy_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM policies WHERE name = $1 ORDER BY id DESC LIMIT 1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (name) name, hash, version_label, source, ir, published_at
             FROM policies ORDER BY name, id DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(policy_row).collect()
    }

    async fn policy_versions(&self, name: &str) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, hash, version_label, source, ir, published_at
             FROM policies WHERE name = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(policy_row).collect()
    }

    async fn create_instance(&self, instance: InstanceRecord, first: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        check_create(&instance, &first)?;
        validate_commit(&first)?;
        let mut tx = self.begin().await?;
        let result = batch::insert_instance(&mut self.batch_writer(&mut tx), &self.log_head, &instance, &first).await;
        finish(tx, result).await
    }

    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        validate_commit(&commit)?;
        let mut tx = self.begin().await?;
        let result = batch::apply_commit(&mut self.batch_writer(&mut tx), &self.log_head, &commit).await;
        finish(tx, result).await
    }

    async fn commit_many(&self, commits: Vec<Commit>) -> BatchResults {
        self.writer.commit_many(commits).await
    }

    /// Two: a batch writes its rows while the one before holds the audit log's lock, appends
    /// and waits for its commit to be durable (`batch::UnderLock`); three were no faster
    /// (BENCHMARKS.md, stop 31).
    fn batches_in_flight(&self) -> usize {
        2
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        value.map_or(Ok(0), |v| to_u64(v, "counter"))
    }

    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        self.read_instance(id).await
    }

    async fn load_instances(&self, ids: &[String]) -> Result<Vec<InstanceRecord>, StoreError> {
        self.read_instances(ids).await
    }

    async fn load_states(&self, ids: &[String]) -> Result<Vec<super::LoadedState>, StoreError> {
        self.read_states(ids).await
    }

    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>, StoreError> {
        self.read_instance_page(filter).await
    }

    async fn inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError> {
        self.read_inbox(query).await
    }

    async fn open_steps_built(&self) -> Result<bool, StoreError> {
        self.are_open_steps_built().await
    }

    async fn put_open_steps(&self, instance: &str, version: u64, rows: &[OpenStepRow]) -> Result<bool, StoreError> {
        self.write_open_steps(instance, version, rows).await
    }

    async fn mark_open_steps_built(&self) -> Result<(), StoreError> {
        self.note_open_steps_built().await
    }

    async fn events(&self, instance: &str, after_seq: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, seq, at, actor, role, kind, payload, prev_hash, hash FROM events
             WHERE instance = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(instance)
        .bind(to_i64(after_seq, "seq")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(event_row).collect()
    }

    async fn events_until(&self, instance: &str, at: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, seq, at, actor, role, kind, payload, prev_hash, hash FROM events
             WHERE instance = $1 AND seq < COALESCE(
                 (SELECT MIN(seq) FROM events WHERE instance = $1 AND at > $2),
                 9223372036854775807)
             ORDER BY seq",
        )
        .bind(instance)
        .bind(at)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(event_row).collect()
    }

    async fn get_idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT principal, idempotency_key, request_hash, response FROM idempotency
             WHERE principal = $1 AND idempotency_key = $2",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            Ok(IdempotencyRecord {
                principal: row.try_get("principal").map_err(map_sqlx)?,
                key: row.try_get("idempotency_key").map_err(map_sqlx)?,
                request_hash: row.try_get("request_hash").map_err(map_sqlx)?,
                response: row.try_get("response").map_err(map_sqlx)?,
            })
        })
        .transpose()
    }

    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // Each MIN walks its partial index (`timers_due`, `timers_lease`) to its first entry.
        sqlx::query_scalar(
            "SELECT LEAST((SELECT MIN(due_at) FROM timers WHERE state = 'pending'),
                          (SELECT MIN(lease_until) FROM timers WHERE state = 'claimed'))",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx)
    }

    async fn claim_due_timers(
        &self,
        owner: &str,
        now: Option<DateTime<Utc>>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        // Each kind of claimable timer is taken earliest first through its own partial index
        // and cut at `limit` before the two are merged: one `WHERE … OR …` made PostgreSQL scan
        // and sort every due timer on each claim (a burst of 100,000 due timers: a sequential
        // scan and an on-disk sort per claim). Rows locked here but not picked are released
        // when the statement ends.
        let rows = sqlx::query(
            "WITH pending AS (
                 SELECT id, due_at FROM timers
                 WHERE state = 'pending' AND due_at <= COALESCE($2::timestamptz, now())
                 ORDER BY due_at, id
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED),
             expired AS (
                 SELECT id, due_at FROM timers
                 WHERE state = 'claimed' AND lease_until <= COALESCE($2::timestamptz, now())
                 ORDER BY due_at, id
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED),
             due AS (
                 SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) claimable
                 ORDER BY due_at, id
                 LIMIT $4)
             UPDATE timers t
             SET state = 'claimed',
                 lease_owner = $1,
                 lease_until = COALESCE($2::timestamptz, now()) + $3::bigint * interval '1 microsecond',
                 fence = t.fence + 1
             FROM due WHERE t.id = due.id
             RETURNING t.id, t.instance, t.node, t.kind, t.due_at, t.state, t.lease_owner,
                       t.lease_until, t.fence, t.payload",
        )
        .bind(owner)
        .bind(now.map(truncate_to_micros))
        .bind(lease_micros(lease)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let mut timers = rows.iter().map(timer_row).collect::<Result<Vec<_>, _>>()?;
        timers.sort_by_key(|t| (t.due_at, t.id));
        Ok(timers)
    }

    async fn pending_timers(&self, instance: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, instance, node, kind, due_at, state, lease_owner, lease_until, fence,
                    payload
             FROM timers WHERE instance = $1 AND state IN ('pending', 'claimed')
             ORDER BY due_at, id",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(timer_row).collect()
    }

    async fn verify(&self, instance: &str) -> Result<u64, StoreError> {
        // One snapshot, so the version and the log are seen at the same point.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(map_sqlx)?;
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM instances WHERE id = $1")
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let Some(version) = version else {
            return Err(StoreError::InstanceNotFound { id: instance.to_owned() });
        };
        let rows = sqlx::query(
            "SELECT instance, seq, at, actor, role, kind, payload, prev_hash, hash FROM events
             WHERE instance = $1 ORDER BY seq",
        )
        .bind(instance)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        tx.rollback().await.map_err(map_sqlx)?;
        let events = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>()?;
        verify_log(to_u64(version, "version")?, &events)
    }

    async fn create_token(
        &self,
        principal: PrincipalRecord,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.insert_token(principal, token_hash, expires_at).await
    }

    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        self.read_principal_by_token_hash(token_hash).await
    }

    async fn put_calendar_year(&self, year: CalendarYearRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calendar_years (year, body, added_at, added_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (year) DO UPDATE SET body = excluded.body, added_at = excluded.added_at,
             added_by = excluded.added_by",
        )
        .bind(year.year)
        .bind(&year.body)
        .bind(truncate_to_micros(year.added_at))
        .bind(&year.added_by)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_sqlx)
    }

    async fn put_migration_plan(&self, plan: MigrationPlanRecord) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO migration_plans (id, policy, from_hash, to_hash, body, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&plan.id)
        .bind(&plan.policy)
        .bind(&plan.from_hash)
        .bind(&plan.to_hash)
        .bind(&plan.body)
        .bind(truncate_to_micros(plan.created_at))
        .bind(&plan.created_by)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!("a migration plan `{}` exists already", plan.id)))
        }
    }

    async fn audit_tree(&self) -> Result<AuditTree, StoreError> {
        self.read_audit_tree().await
    }

    async fn backfill_audit_log(&self, limit: u32) -> Result<u64, StoreError> {
        self.append_backfill(limit).await
    }

    async fn audit_leaves(&self, from: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError> {
        self.read_audit_leaves(from, limit).await
    }

    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.read_audit_entries(from, limit).await
    }

    async fn audit_leaves_of(&self, instance: &str) -> Result<Vec<AuditLeaf>, StoreError> {
        self.read_audit_leaves_of(instance).await
    }

    async fn event_leaf_indexes(&self, instance: &str) -> Result<Vec<(u64, Option<u64>)>, StoreError> {
        self.read_event_leaf_indexes(instance).await
    }

    async fn put_audit_checkpoint(&self, checkpoint: AuditCheckpointRecord) -> Result<bool, StoreError> {
        self.insert_audit_checkpoint(checkpoint).await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, StoreError> {
        self.read_latest_audit_checkpoint().await
    }

    async fn late_steps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LateRecord>, StoreError> {
        self.read_late_steps(from, to, limit).await
    }

    async fn late_steps_built(&self) -> Result<bool, StoreError> {
        self.read_late_steps_built().await
    }

    async fn instances_with_breaches(&self) -> Result<Vec<String>, StoreError> {
        self.read_instances_with_breaches().await
    }

    async fn put_late_steps(&self, instance: &str, rows: &[LateStep]) -> Result<(), StoreError> {
        self.write_late_steps(instance, rows).await
    }

    async fn mark_late_steps_built(&self) -> Result<(), StoreError> {
        self.write_late_steps_built().await
    }

    async fn migration_plan(&self, id: &str) -> Result<Option<MigrationPlanRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, policy, from_hash, to_hash, body, created_at, created_by FROM migration_plans WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            Ok(MigrationPlanRecord {
                id: row.try_get("id").map_err(map_sqlx)?,
                policy: row.try_get("policy").map_err(map_sqlx)?,
                from_hash: row.try_get("from_hash").map_err(map_sqlx)?,
                to_hash: row.try_get("to_hash").map_err(map_sqlx)?,
                body: row.try_get("body").map_err(map_sqlx)?,
                created_at: row.try_get("created_at").map_err(map_sqlx)?,
                created_by: row.try_get("created_by").map_err(map_sqlx)?,
            })
        })
        .transpose()
    }

    async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError> {
        let rows = sqlx::query("SELECT year, body, added_at, added_by FROM calendar_years ORDER BY year")
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(CalendarYearRecord {
                    year: row.try_get("year").map_err(map_sqlx)?,
                    body: row.try_get("body").map_err(map_sqlx)?,
                    added_at: row.try_get("added_at").map_err(map_sqlx)?,
                    added_by: row.try_get("added_by").map_err(map_sqlx)?,
                })
            })
            .collect()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read_tokens().await
    }

    async fn revoke_tokens(&self, principal: &str, id: Option<&str>) -> Result<u64, StoreError> {
        self.delete_tokens(principal, id).await
    }

    async fn put_session(&self, session: SessionRecord, cap: usize) -> Result<(), StoreError> {
        self.insert_session(session, cap).await
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.read_session(id_hash).await
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.remove_session(id_hash).await
    }

    async fn commit_hints(&self) -> Result<Option<tokio::sync::mpsc::Receiver<CommitHint>>, StoreError> {
        // Hints lost while the listener reconnects are lost: the stream is a convenience, the
        // log is the record.
        let parse = |payload: &str| {
            let (instance, after) = payload.split_once('\t')?;
            Some(CommitHint { instance: instance.to_string(), after: after.parse().ok()? })
        };
        self.listen(&self.channel, 4096, parse).await.map(Some)
    }

    async fn principal_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        // A change lost while the listener reconnects is covered by the token cache's TTL.
        self.listen(&self.principal_channel, 1024, |name: &str| Some(name.to_string())).await.map(Some)
    }

    async fn advance_simulated_clock(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO simulated_clock (id, now) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET now = GREATEST(simulated_clock.now, excluded.now) RETURNING now",
        )
        .bind(truncate_to_micros(to))
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx)
    }

    async fn simulated_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query_scalar("SELECT now FROM simulated_clock WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.read_principals().await
    }

    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency
             (principal, idempotency_key, request_hash, response, instance, created_at)
             VALUES ($1, $2, $3, $4, '', now()) ON CONFLICT (principal, idempotency_key) DO NOTHING",
        )
        .bind(&record.principal)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(Json(&record.response))
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::DuplicateKey { principal: record.principal, key: record.key });
        }
        Ok(())
    }
}

// ---- the commit, inside a transaction ----
