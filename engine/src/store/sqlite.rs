//! The SQLite store: the embedded default, one database file.
//!
//! - Durability: `journal_mode=WAL` and `synchronous=FULL`, set explicitly on every connection,
//!   so an acknowledged commit survives power loss.
//! - No `SQLITE_BUSY` for callers: commits (one, a batch, a start) run on the store's writer
//!   thread ([`super::sqlite_writer`]), its other writes on sqlx's writer connection (a pool of
//!   one), each in a `BEGIN IMMEDIATE` transaction after taking the one write gate, so writers
//!   queue in the process instead of racing for the file lock; a `busy_timeout` covers another
//!   process (a CLI) holding the lock for a moment. Reads use a separate small pool: in WAL mode
//!   readers never block the writer.
//! - The WAL stays bounded: [`Store::checkpoint`] runs `wal_checkpoint(RESTART)`; the
//!   [`super::GroupCommitter`] calls it on an interval (whoever writes without a group
//!   committer calls it), and a passive checkpoint runs beside the commits, on a thread of its
//!   own, each time the WAL passes [`AUTOCHECKPOINT_PAGES`] pages (`sqlite_writer.rs`): a
//!   checkpoint copies each page once however many commits rewrote it since the last, so a
//!   wider window writes a hot page (an instance's row, an index's end) fewer times (issue 10:
//!   37 → 29 kB per approval at 64 clients).
//! - Temporary storage in memory (`temp_store=MEMORY`): a batch's savepoint journals each page it
//!   touches first; in a temporary file that journal reached the disk (issue 10: 58 → 37 kB per
//!   approval at 64 clients).
//! - Timers: with a single writer, a claim (one `UPDATE … RETURNING`) is atomic, so two claimers
//!   in this process never take the same timer; the fence check on fire is the same as on
//!   PostgreSQL. Due-ness is judged by the process's clock when no simulated time is given
//!   (the database is embedded, so that is the database's clock).
//! - Times are INTEGER microseconds since the epoch (UTC), JSON is TEXT.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row};

use super::common::{
    check_create, finish, lease_micros, map_migrate, map_sqlx, to_i64, to_u64, validate_commit, verify_log,
};
use super::{
    AuditCheckpointRecord, AuditEntry, AuditLeaf, AuditTree, BatchResults, CalendarYearRecord, Commit,
    IdempotencyRecord, InboxQuery, InstanceFilter, InstanceRecord, LateRecord, LateStep, MigrationPlanRecord,
    OpenStepRef, OpenStepRow, Page, PolicyRecord, PrincipalRecord, Published, SessionRecord, Store, StoreError,
    StoredEvent, TimerRecord, TokenRecord,
};

use super::batch;
#[allow(clippy::wildcard_imports, reason = "the commit path and row mappers, split out of this file")]
use super::sqlite_commit::*;
use super::sqlite_writer::{ready, Writer};
use tokio::sync::OwnedMutexGuard;

/// How long a connection waits for a lock held by another process before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A passive checkpoint runs when the WAL holds this many pages (beside the commits; SQLite's
/// own auto-checkpoint, inside a commit, on sqlx's connections): 40 MB of
/// [`PAGE_SIZE`] pages, the window it had with 4 kB ones (80 MB in a database kept at 4 kB
/// pages; SQLite's default is 1,000 pages). See the module's doc. With 10,000 pages of 2 kB, 64
/// clients wrote ~4 % more per approval.
pub const AUTOCHECKPOINT_PAGES: u32 = 20_000;

/// Prepared statements kept per connection (sqlx's default is 100): the batch's statements in
/// all their size classes and the store's others.
pub const STATEMENT_CACHE: usize = 256;

/// The number of read connections [`SqliteStore::open`] uses. Each is a thread of the driver with
/// its own page cache and statements, and each thread that allocates gets its own malloc arena:
/// four readers held 4–7 MB more at the peak than two, with no more throughput on two cores
/// (BENCHMARKS.md, "Issue 10, stop 25").
pub const DEFAULT_READERS: u32 = 2;

/// The page cache, as SQLite's `cache_size` (negative: KiB), of the connections that write
/// little: sqlx's writer connection and the checkpointer (SQLite's default is 2 MB each).
pub const SMALL_CACHE_KIB: i32 = -256;

/// The page size of a database this store creates (an existing one keeps its own: SQLite fixes
/// it when the first table is made). Every row an approval changes (its instance, timers, open
/// steps, their indexes) is on a page of its own, and a commit writes each page it touched whole
/// to the WAL: with 2 kB pages a lone commit writes 53 kB instead of 85 kB (64 clients: 13 kB
/// instead of 14), one client commits ~18 % more a second, 64 clients within the machine's spread,
/// inbox reads as fast; 1 kB pages wrote 37 kB at one client but cost 64 clients ~15 %
/// (BENCHMARKS.md, "Issue 10, stop 27").
pub const PAGE_SIZE: u32 = 2048;

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    /// The thread the commits are written on, and the gate every write takes.
    pub(super) commits: Writer,
    pub(super) readers: SqlitePool,
    /// Commits written by [`sqlite_batch`] (one statement per table), for tests and benches.
    pub(super) batched: Arc<AtomicU64>,
    /// The global tree's frontier after this store's last append (a hint, issue 12.1).
    pub(super) log_head: Arc<super::log_append::LogHead>,
}

/// What `wal_checkpoint(RESTART)` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Whether the checkpoint could not finish because a reader or writer held the WAL.
    pub busy: bool,
    /// Frames in the WAL.
    pub log_frames: i64,
    /// Frames copied back into the database.
    pub checkpointed_frames: i64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        SqliteStore::open_with(options, DEFAULT_READERS).await
    }

    /// Opens a database from a URL such as `sqlite://civicflow.db` and migrates it.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(map_sqlx)?.create_if_missing(true);
        SqliteStore::open_with(options, DEFAULT_READERS).await
    }

    /// Opens with explicit options; the durability settings (WAL, `synchronous=FULL`, busy
    /// timeout, foreign keys) are set over whatever `options` say. A database that will not go
    /// into WAL mode (an in-memory one) is refused.
    pub async fn open_with(options: SqliteConnectOptions, readers: u32) -> Result<Self, StoreError> {
        let options = options
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            // A batch's statements come in ten size classes each (`sqlite_batch.rs`): all kept.
            .statement_cache_capacity(STATEMENT_CACHE)
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            // The commits have their own connection (`sqlite_writer.rs`); this one's writes are
            // few and small (policies, principals, timer claims): a small page cache.
            .connect_with(options.clone().pragma("cache_size", SMALL_CACHE_KIB.to_string()))
            .await
            .map_err(map_sqlx)?;
        // An in-memory database cannot be in WAL mode (and each pool would see its own).
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&writer).await.map_err(map_sqlx)?;
        if !mode.eq_ignore_ascii_case("wal") {
            writer.close().await;
            return Err(StoreError::Invalid(format!(
                "the SQLite store needs a database file in WAL mode, got journal mode `{mode}`"
            )));
        }
        let migrator = sqlx::migrate!("./migrations/sqlite");
        super::sqlite_upgrade::announce(&writer, &migrator, options.get_filename()).await?;
        migrator.run(&writer).await.map_err(map_migrate)?;
        let commits = match Writer::open(options.get_filename()) {
            Ok(commits) => commits,
            Err(e) => {
                writer.close().await;
                return Err(e);
            }
        };
        let readers = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.create_if_missing(false))
            .await
            .map_err(map_sqlx)?;
        Ok(SqliteStore { writer, commits, readers, batched: Arc::default(), log_head: Arc::default() })
    }

    /// Runs `PRAGMA wal_checkpoint(RESTART)` on the writer connection.
    pub async fn wal_checkpoint(&self) -> Result<CheckpointStats, StoreError> {
        let _gate = self.commits.gate().await;
        let row = sqlx::query("PRAGMA wal_checkpoint(RESTART)").fetch_one(&self.writer).await.map_err(map_sqlx)?;
        let busy: i64 = row.try_get(0).map_err(map_sqlx)?;
        Ok(CheckpointStats {
            busy: busy != 0,
            log_frames: row.try_get(1).map_err(map_sqlx)?,
            checkpointed_frames: row.try_get(2).map_err(map_sqlx)?,
        })
    }

    /// The writer pool (one connection), for maintenance and tests. Writing events through it
    /// bypasses the store's guarantees.
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// How many commits this store has written in batches with one statement per table (issue
    /// 10.3) rather than one by one: a batch falls back to one by one when a commit of it is
    /// refused, or holds counters or a spawn.
    pub fn batched_commits(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// The WAL's size, in pages, from which a checkpoint runs beside the commits (default
    /// [`AUTOCHECKPOINT_PAGES`]; see `sqlite_writer.rs`). For tests and benches.
    pub fn set_checkpoint_window(&self, pages: u32) {
        self.commits.checkpoints().window.store(pages.max(1), Ordering::Relaxed);
    }

    /// How many checkpoints have run beside the commits.
    pub fn background_checkpoints(&self) -> u64 {
        self.commits.checkpoints().done.load(Ordering::Relaxed)
    }

    /// The read pool.
    pub fn reader_pool(&self) -> &SqlitePool {
        &self.readers
    }

    /// Closes both pools, waiting for connections in use, and the writer thread's connection
    /// after the writes queued on it.
    pub async fn close(&self) {
        self.readers.close().await;
        self.commits.close().await;
        self.writer.close().await;
    }

    /// A write transaction on sqlx's writer connection, with the write gate held: keep the gate
    /// until the transaction ends.
    pub(super) async fn begin_write(
        &self,
    ) -> Result<(OwnedMutexGuard<()>, sqlx::Transaction<'static, sqlx::Sqlite>), StoreError> {
        let gate = self.commits.gate().await;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_sqlx)?;
        Ok((gate, tx))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn publish_policy(&self, policy: PolicyRecord) -> Result<Published, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let result = async {
            let inserted = sqlx::query(
                "INSERT INTO policies (name, hash, version_label, source, ir, published_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name, hash) DO NOTHING",
            )
            .bind(&policy.name)
            .bind(&policy.hash)
            .bind(&policy.version_label)
            .bind(&policy.source)
            .bind(json_text(&policy.ir)?)
            .bind(micros(policy.published_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            let row = sqlx::query(
                "SELECT name, hash, version_label, source, ir, published_at
                 FROM policies WHERE name = ? AND hash = ?",
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
        let row = match hash {
            Some(hash) => {
                sqlx::query(
                    "SELECT name, hash, version_label, source, ir, published_at
                 FROM policies WHERE name = ? AND hash = ?",
                )
                .bind(name)
                .bind(hash)
                .fetch_optional(&self.readers)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT name, hash, version_label, source, ir, published_at
                 FROM policies WHERE name = ? ORDER BY id DESC LIMIT 1",
                )
                .bind(name)
                .fetch_optional(&self.readers)
                .await
            }
        }
        .map_err(map_sqlx)?;
        row.as_ref().map(policy_row).transpose()
    }

    async fn latest_policy_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM policies WHERE name = ? ORDER BY id DESC LIMIT 1")
            .bind(name)
            .fetch_optional(&self.readers)
            .await
            .map_err(map_sqlx)
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, hash, version_label, source, ir, published_at FROM policies p
             WHERE id = (SELECT MAX(id) FROM policies q WHERE q.name = p.name)
             ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(policy_row).collect()
    }

    async fn policy_versions(&self, name: &str) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, hash, version_label, source, ir, published_at
             FROM policies WHERE name = ? ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(policy_row).collect()
    }

    async fn create_instance(&self, instance: InstanceRecord, first: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        check_create(&instance, &first)?;
        validate_commit(&first)?;
        self.write_with(move |w, head| ready(batch::insert_instance(w, head, &instance, &first))).await
    }

    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        self.commit_one(commit).await.0
    }

    async fn commit_many(&self, mut commits: Vec<Commit>) -> BatchResults {
        let n = commits.len();
        if n == 0 {
            return (Vec::new(), commits);
        }
        if n == 1 {
            // A batch of one (a quiet moment): its own transaction is all the savepoint it
            // needs, two statements fewer than `write_all`'s one-by-one path.
            let (result, only) = self.commit_one(commits.remove(0)).await;
            return (vec![result], vec![only]);
        }
        self.write_batch(commits).await
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let value: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.readers)
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
             WHERE instance = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(instance)
        .bind(to_i64(after_seq, "seq")?)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(event_row).collect()
    }

    async fn events_until(&self, instance: &str, at: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, seq, at, actor, role, kind, payload, prev_hash, hash FROM events
             WHERE instance = ? AND seq < COALESCE(
                 (SELECT MIN(seq) FROM events WHERE instance = ? AND at > ?),
                 9223372036854775807)
             ORDER BY seq",
        )
        .bind(instance)
        .bind(instance)
        .bind(micros(at))
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(event_row).collect()
    }

    async fn get_idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT principal, idempotency_key, request_hash, response FROM idempotency
             WHERE principal = ? AND idempotency_key = ?",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(&self.readers)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            Ok(IdempotencyRecord {
                principal: row.try_get("principal").map_err(map_sqlx)?,
                key: row.try_get("idempotency_key").map_err(map_sqlx)?,
                request_hash: row.try_get("request_hash").map_err(map_sqlx)?,
                response: parse_json(&row, "response")?,
            })
        })
        .transpose()
    }

    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // Each MIN walks its partial index (`timers_due`, `timers_lease`) to its first entry.
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM (SELECT MIN(due_at) AS t FROM timers WHERE state = 'pending'
                                 UNION ALL
                                 SELECT MIN(lease_until) FROM timers WHERE state = 'claimed')",
        )
        .fetch_one(&self.readers)
        .await
        .map_err(map_sqlx)?;
        at.map(|v| from_micros(v, "due_at")).transpose()
    }

    async fn claim_due_timers(
        &self,
        owner: &str,
        now: Option<DateTime<Utc>>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        let now = micros(now.unwrap_or_else(Utc::now));
        let until = now.saturating_add(lease_micros(lease)?);
        let (_gate, mut tx) = self.begin_write().await?;
        let result = async {
            // Each kind of claimable timer is taken earliest first through its own partial
            // index and cut at `limit` before the two are merged: one `WHERE … OR …` would read
            // and sort every due timer on each claim (a burst of 100,000 due timers made each
            // claim sort all of them).
            let rows = sqlx::query(
                "UPDATE timers
                 SET state = 'claimed', lease_owner = ?, lease_until = ?, fence = fence + 1
                 WHERE id IN (
                     SELECT id FROM (
                         SELECT id, due_at FROM (
                             SELECT id, due_at FROM timers
                             WHERE state = 'pending' AND due_at <= ?
                             ORDER BY due_at, id LIMIT ?)
                         UNION ALL
                         SELECT id, due_at FROM (
                             SELECT id, due_at FROM timers
                             WHERE state = 'claimed' AND lease_until <= ?
                             ORDER BY due_at, id LIMIT ?))
                     ORDER BY due_at, id LIMIT ?)
                 RETURNING id, instance, node, kind, due_at, state, lease_owner, lease_until,
                           fence, payload",
            )
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(i64::from(limit))
            .bind(now)
            .bind(i64::from(limit))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            let mut timers = rows.iter().map(timer_row).collect::<Result<Vec<_>, _>>()?;
            timers.sort_by_key(|t| (t.due_at, t.id));
            Ok(timers)
        }
        .await;
        finish(tx, result).await
    }

    async fn pending_timers(&self, instance: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, instance, node, kind, due_at, state, lease_owner, lease_until, fence,
                    payload
             FROM timers WHERE instance = ? AND state IN ('pending', 'claimed')
             ORDER BY due_at, id",
        )
        .bind(instance)
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(timer_row).collect()
    }

    async fn verify(&self, instance: &str) -> Result<u64, StoreError> {
        // One read transaction, so the version and the log are seen at the same point.
        let mut conn = self.readers.acquire().await.map_err(map_sqlx)?;
        let mut tx = conn.begin().await.map_err(map_sqlx)?;
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM instances WHERE id = ?")
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let Some(version) = version else {
            return Err(StoreError::InstanceNotFound { id: instance.to_owned() });
        };
        let rows = sqlx::query(
            "SELECT instance, seq, at, actor, role, kind, payload, prev_hash, hash FROM events
             WHERE instance = ? ORDER BY seq",
        )
        .bind(instance)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        tx.rollback().await.map_err(map_sqlx)?;
        let events = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>()?;
        verify_log(to_u64(version, "version")?, &events)
    }

    /// One server per SQLite file: nothing to hear from other nodes.
    async fn commit_hints(&self) -> Result<Option<tokio::sync::mpsc::Receiver<super::CommitHint>>, StoreError> {
        Ok(None)
    }

    /// SQLite cannot notify: the CLI's revocations reach a running server within its token
    /// cache's TTL.
    async fn principal_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        Ok(None)
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        self.wal_checkpoint().await.map(|_| ())
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
        let (_gate, mut tx) = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO calendar_years (year, body, added_at, added_by) VALUES (?, ?, ?, ?)
             ON CONFLICT (year) DO UPDATE SET body = excluded.body, added_at = excluded.added_at,
             added_by = excluded.added_by",
        )
        .bind(year.year)
        .bind(&year.body)
        .bind(micros(year.added_at))
        .bind(&year.added_by)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(map_sqlx);
        finish(tx, result).await
    }

    async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError> {
        let rows = sqlx::query("SELECT year, body, added_at, added_by FROM calendar_years ORDER BY year")
            .fetch_all(&self.readers)
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(CalendarYearRecord {
                    year: row.try_get("year").map_err(map_sqlx)?,
                    body: row.try_get("body").map_err(map_sqlx)?,
                    added_at: time_at(row, "added_at")?,
                    added_by: row.try_get("added_by").map_err(map_sqlx)?,
                })
            })
            .collect()
    }

    async fn put_migration_plan(&self, plan: MigrationPlanRecord) -> Result<(), StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO migration_plans (id, policy, from_hash, to_hash, body, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&plan.id)
        .bind(&plan.policy)
        .bind(&plan.from_hash)
        .bind(&plan.to_hash)
        .bind(&plan.body)
        .bind(micros(plan.created_at))
        .bind(&plan.created_by)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)
        .and_then(|r| {
            if r.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::Invalid(format!("a migration plan `{}` exists already", plan.id)))
            }
        });
        finish(tx, result).await
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
            "SELECT id, policy, from_hash, to_hash, body, created_at, created_by FROM migration_plans WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            Ok(MigrationPlanRecord {
                id: row.try_get("id").map_err(map_sqlx)?,
                policy: row.try_get("policy").map_err(map_sqlx)?,
                from_hash: row.try_get("from_hash").map_err(map_sqlx)?,
                to_hash: row.try_get("to_hash").map_err(map_sqlx)?,
                body: row.try_get("body").map_err(map_sqlx)?,
                created_at: time_at(&row, "created_at")?,
                created_by: row.try_get("created_by").map_err(map_sqlx)?,
            })
        })
        .transpose()
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

    async fn advance_simulated_clock(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO simulated_clock (id, now) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET now = max(now, excluded.now) RETURNING now",
        )
        .bind(micros(to))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx)
        .and_then(|now| from_micros(now, "now"));
        finish(tx, result).await
    }

    async fn simulated_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now: Option<i64> = sqlx::query_scalar("SELECT now FROM simulated_clock WHERE id = 1")
            .fetch_optional(&self.readers)
            .await
            .map_err(map_sqlx)?;
        now.map(|n| from_micros(n, "now")).transpose()
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.read_principals().await
    }

    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<(), StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let result = async {
            let inserted = sqlx::query(
                "INSERT INTO idempotency
                 (principal, idempotency_key, request_hash, response, instance, created_at)
                 VALUES (?, ?, ?, ?, '', ?) ON CONFLICT (principal, idempotency_key) DO NOTHING",
            )
            .bind(&record.principal)
            .bind(&record.key)
            .bind(&record.request_hash)
            .bind(json_text(&record.response)?)
            .bind(micros(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::DuplicateKey { principal: record.principal.clone(), key: record.key.clone() });
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }
}

// ---- the commit, inside a transaction ----
