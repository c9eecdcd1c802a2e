//! Issue 10.3: the SQLite store's commits on a thread of their own.
//!
//! sqlx runs each SQLite statement on its driver's worker thread and hands every one over and
//! back (a channel, a wake-up, the arguments copied into `Arc`s): with a batch's ten-odd
//! statements that was ~70 % on top of SQLite's own work in the one serial stage of every write
//! (BENCHMARKS.md, "Issue 10, stop 28"). Here one connection (rusqlite, the same SQLite library
//! sqlx links) lives on one thread; a commit, a batch or a rebuild of a derived table is handed
//! over once, as a job, and its statements run there synchronously, prepared once and bound
//! straight from the commits.
//!
//! The store's other writes (policies, principals, timer claims, …) still go through sqlx's
//! writer connection. Both take the [`Writer::gate`] first, so the process never has two write
//! transactions racing for SQLite's lock (which would make one sleep in the busy handler).

use std::future::Future;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};

use rusqlite::Connection;
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::sqlite::{AUTOCHECKPOINT_PAGES, BUSY_TIMEOUT, STATEMENT_CACHE};
use super::StoreError;

/// What runs on the writer's thread: the connection, `None` once the store is closed.
type Job = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

/// The handle to the writer's thread. Cloning it is cheap; the thread ends (and its connection
/// closes) when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    gate: Arc<Mutex<()>>,
}

impl Writer {
    /// Opens the database file at `path` (migrated already, in WAL mode) with the store's
    /// durability settings, and starts the thread.
    pub fn open(path: &Path) -> Result<Writer, StoreError> {
        let conn = Connection::open(path).map_err(map_rusqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_rusqlite)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};"
        ))
        .map_err(map_rusqlite)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(map_rusqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!("the SQLite writer found journal mode `{mode}`, not WAL")));
        }
        // A batch's statements come in ten size classes each (`sqlite_batch.rs`): all kept.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("civicflow-sqlite-writer".into())
            .spawn(move || {
                let mut conn = Some(conn);
                for job in queue {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Unavailable(Arc::new(e)))?;
        Ok(Writer { jobs, gate: Arc::default() })
    }

    /// The right to write: held by a job from before it is queued until its transaction ends, and
    /// by the store's writes through sqlx for the length of theirs. First come, first served.
    pub async fn gate(&self) -> OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Runs `job` on the writer's thread, after the writes queued before it.
    /// [`StoreError::Closed`] once the store is closed.
    pub async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let gate = self.gate().await;
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => job(conn),
                None => Err(StoreError::Closed),
            };
            drop(gate);
            // A caller that stopped waiting has nothing to be told.
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }

    /// Closes the connection once the jobs queued before are done; later ones get
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            conn.take();
            let _ = done.send(());
        });
        if self.jobs.send(job).is_ok() {
            let _ = closed.await;
        }
    }
}

/// `f` in a write transaction (`BEGIN IMMEDIATE`): committed when it succeeds, rolled back when
/// it fails.
pub(super) fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_rusqlite)?;
    match f(conn) {
        Ok(value) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(value),
            Err(e) => {
                // A failed COMMIT may leave the transaction open (SQLITE_BUSY): end it.
                let _ = conn.execute_batch("ROLLBACK");
                Err(map_rusqlite(e))
            }
        },
        Err(err) => {
            // The error that matters is the first.
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// The result of the flow of [`super::batch`] over the writer's connection: its
/// [`super::batch::BatchWriter`] methods run their statements synchronously and never wait, so
/// the future is ready when first polled.
pub(super) fn ready<T>(flow: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut flow = std::pin::pin!(flow);
    match flow.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Invalid("a statement of the SQLite writer waited".into())),
    }
}

/// A rusqlite error as the store's: busy or locked is [`StoreError::Transient`], a value that
/// does not decode is [`StoreError::Corrupt`].
pub(super) fn map_rusqlite(err: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(ref failure, _)
            if matches!(failure.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StoreError::Transient(Arc::new(err))
        }
        E::FromSqlConversionFailure(..) | E::IntegralValueOutOfRange(..) | E::InvalidColumnType(..) => {
            StoreError::Corrupt(err.to_string())
        }
        E::SqliteFailure(ref failure, _) if failure.code == rusqlite::ErrorCode::CannotOpen => {
            StoreError::Unavailable(Arc::new(err))
        }
        other => StoreError::Database(Arc::new(other)),
    }
}
