//! Issue 10: PostgreSQL's group-committed batches written from a thread of their own, on a
//! single-threaded tokio runtime with a pool of its own (two connections: the two batches in
//! flight, `Store::batches_in_flight`).
//!
//! A batch is six round trips (ten before stop 32), each answer from PostgreSQL waking the
//! batch's task. On the server's runtime that task waits behind the runnable tasks of every client
//! and request, on the two cores PostgreSQL shares; here nothing else runs. At 64 clients the engine bench wrote 10 %
//! more approvals a second this way; at one client the difference is within the machine's spread
//! (a batch of one written on the caller's runtime instead was tried: no faster; BENCHMARKS.md,
//! issue 10, stop 31). The store's other statements keep its main pool.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::common::{map_sqlx, validate_commit};
use super::log_append::LogHead;
use super::postgres_batch::PgTx;
use super::{BatchResults, Commit, StoreError, StoredEvent};

/// A batch handed to the thread, and where its answers go.
struct Job {
    commits: Vec<Commit>,
    reply: oneshot::Sender<BatchResults>,
}

/// The handle to the commit thread; the thread ends when the last handle is dropped, after the
/// batches it holds.
#[derive(Debug, Clone)]
pub(super) struct PgWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("commits", &self.commits.len()).finish()
    }
}

/// What a batch needs of the store: its connections and the state its commits share with the
/// store's other writes.
pub(super) struct BatchTarget {
    pub pool: PgPool,
    /// The LISTEN/NOTIFY channel of commit hints (issue 9.6).
    pub channel: String,
    /// Commits written by `batch::write` (one statement per table), for tests and benches.
    pub batched: Arc<AtomicU64>,
    /// The global tree's frontier after this store's last append (a hint, issue 12.1).
    pub log_head: Arc<LogHead>,
}

/// Connections the thread keeps: one for each batch in flight.
const CONNECTIONS: u32 = 2;

impl PgWriter {
    /// Starts the thread; its connections (`options`, as the store's) open on first use.
    pub(super) fn start(
        options: PgConnectOptions,
        channel: String,
        batched: Arc<AtomicU64>,
        log_head: Arc<LogHead>,
    ) -> Result<PgWriter, StoreError> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(Arc::new(e)))?;
        std::thread::Builder::new()
            .name("civicflow-pg-commits".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let pool = PgPoolOptions::new()
                        .max_connections(CONNECTIONS)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_lazy_with(options);
                    let target = Arc::new(BatchTarget { pool, channel, batched, log_head });
                    let mut writing = tokio::task::JoinSet::new();
                    while let Some(job) = queue.recv().await {
                        let target = target.clone();
                        writing.spawn(async move {
                            let results = target.write_batch(&job.commits).await;
                            // A caller that stopped waiting has nothing to be told.
                            let _ = job.reply.send((results, job.commits));
                        });
                        // Finished batches' tasks are taken as they end.
                        while writing.try_join_next().is_some() {}
                    }
                    while writing.join_next().await.is_some() {}
                    target.pool.close().await;
                });
            })
            .map_err(|e| StoreError::Unavailable(Arc::new(e)))?;
        Ok(PgWriter { jobs })
    }

    /// Writes a batch on the thread.
    pub(super) async fn commit_many(&self, commits: Vec<Commit>) -> BatchResults {
        let n = commits.len();
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = self.jobs.send(Job { commits, reply }) {
            return (vec![Err(StoreError::Closed); n], refused.0.commits);
        }
        answer.await.unwrap_or_else(|_| (vec![Err(StoreError::Closed); n], Vec::new()))
    }
}

impl BatchTarget {
    /// A transaction for commits, a write transaction (`postgres::BEGIN_WRITE`). The audit
    /// log's lock (issue 12.1) is taken at its end (`batch::UnderLock`), not with `BEGIN`: there
    /// it made every commit transaction of every node wait for the one before, whole.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin_with(super::postgres::BEGIN_WRITE).await.map_err(map_sqlx)
    }

    /// [`super::Store::commit_many`]: the batch in one transaction.
    async fn write_batch(&self, commits: &[Commit]) -> Vec<Result<Vec<StoredEvent>, StoreError>> {
        let n = commits.len();
        if n == 0 {
            return Vec::new();
        }
        let mut tx = match self.begin().await {
            Ok(tx) => tx,
            Err(e) => return vec![Err(e); n],
        };
        // Issue 9.6: the commits' hints to every node's event stream go with the log's lock
        // (`BatchWriter::lock_log`), delivered by PostgreSQL at commit, not at all on a rollback.
        let mut w = PgTx::new(&mut tx, &self.channel);
        let results = if let [only] = commits {
            // A batch of one (a quiet moment): its own transaction is all the savepoint it
            // needs, two statements fewer than `write_all`'s one-by-one path.
            match validate_commit(only) {
                Err(e) => Err(e),
                Ok(()) => batch::apply_commit(&mut w, &self.log_head, only).await,
            }
            .map(|events| vec![Some(Ok(events))])
        } else {
            // Issue 10.3: one flow for both stores (`batch.rs`).
            batch::write_all(&mut w, &self.log_head, commits, &self.batched).await
        };
        let results = match results {
            Ok(answers) => answers,
            Err(fatal) => {
                let _ = tx.rollback().await;
                return vec![Err(fatal); n];
            }
        };
        let committed = tx.commit().await.map_err(map_sqlx);
        batch::settle(results, committed)
    }
}
