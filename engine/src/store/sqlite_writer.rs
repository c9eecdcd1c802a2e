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
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};

use rusqlite::Connection;
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::sqlite::{AUTOCHECKPOINT_PAGES, BUSY_TIMEOUT, SMALL_CACHE_KIB, STATEMENT_CACHE};
use super::StoreError;

/// What runs on the writer's thread: the connection, `None` once the store is closed.
type Job = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

/// The handle to the writer's thread. Cloning it is cheap; the thread ends (and its connection
/// closes) when the last handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    gate: Arc<Mutex<()>>,
    checkpoints: Arc<CheckpointCounters>,
}

/// The checkpointer's window and what it has done, shared by the writer's handles and threads.
#[derive(Debug)]
pub(super) struct CheckpointCounters {
    /// The WAL's size, in pages, from which the writer asks for a checkpoint.
    pub window: AtomicU32,
    /// Checkpoints the checkpointer has run.
    pub done: AtomicU64,
}

impl Writer {
    /// Opens the database file at `path` (migrated already, in WAL mode) with the store's
    /// durability settings, and starts the thread.
    pub fn open(path: &Path) -> Result<Writer, StoreError> {
        let conn = connect(path)?;
        // A batch's statements come in ten size classes each (`sqlite_batch.rs`): all kept.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The commits no longer checkpoint themselves (after `wal_autocheckpoint`, which would
        // replace this hook): the checkpointer does, beside them.
        conn.wal_hook(Some(note_wal_pages));
        let counters =
            Arc::new(CheckpointCounters { window: AtomicU32::new(AUTOCHECKPOINT_PAGES), done: AtomicU64::new(0) });
        let checkpoints = Checkpointer::open(path, counters.clone())?;
        let shared = counters.clone();
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("civicflow-sqlite-writer".into())
            .spawn(move || {
                let mut conn = Some(conn);
                let mut checkpoints = Some(checkpoints);
                for job in queue {
                    job(&mut conn);
                    if conn.is_none() {
                        // Closed: the checkpointer ends too.
                        checkpoints = None;
                    } else if WAL_PAGES.get() >= shared.window.load(Ordering::Relaxed) {
                        if let Some(checkpointer) = &checkpoints {
                            checkpointer.wake();
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(Arc::new(e)))?;
        Ok(Writer { jobs, gate: Arc::default(), checkpoints: counters })
    }

    /// The checkpointer's window and count.
    pub fn checkpoints(&self) -> &CheckpointCounters {
        &self.checkpoints
    }

    /// The right to write: held by a job from before it is queued until its transaction ends, and
    /// by the store's writes through sqlx for the length of theirs. First come, first served.
    pub async fn gate(&self) -> OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Runs `job` on the writer's thread, after the writes queued before it.
    /// [`StoreError::Unavailable`] once the store is closed, as sqlx's closed pools answer.
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
                None => Err(closed()),
            };
            drop(gate);
            // A caller that stopped waiting has nothing to be told.
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }

    /// Closes the connection once the jobs queued before are done; later ones get
    /// [`StoreError::Unavailable`].
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

/// A connection to the database file at `path` with the store's durability settings, its
/// commits never checkpointing the WAL themselves.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(map_rusqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_rusqlite)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 0;",
    )
    .map_err(map_rusqlite)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).map_err(map_rusqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!("the SQLite writer found journal mode `{mode}`, not WAL")));
    }
    Ok(conn)
}

thread_local! {
    /// The pages in the WAL after the writer thread's last commit ([`note_wal_pages`]): each
    /// store's writer is a thread of its own.
    static WAL_PAGES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// SQLite's hook after each commit to the WAL, on the committing thread.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(u32::try_from(pages).unwrap_or(0));
    Ok(())
}

/// Checkpoints the WAL on a thread and connection of its own, beside the commits.
///
/// SQLite's auto-checkpoint runs inside the `COMMIT` that finds the WAL past
/// [`AUTOCHECKPOINT_PAGES`]: that commit copies some 20,000 pages into the database file and
/// syncs it while every caller of its batch, and every batch queued behind it, waits. A
/// `PASSIVE` checkpoint on another connection copies the same pages while the writer goes on
/// appending; once it has caught up, the writer's next transaction starts the WAL over. The
/// store's periodic `wal_checkpoint(RESTART)` ([`super::GroupCommitter`]) still bounds the WAL
/// if the commits ever outrun it.
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn open(path: &Path, counters: Arc<CheckpointCounters>) -> Result<Checkpointer, StoreError> {
        let conn = connect(path)?;
        // A checkpoint copies frames through a buffer of its own, not the page cache.
        conn.execute_batch(&format!("PRAGMA cache_size = {SMALL_CACHE_KIB}")).map_err(map_rusqlite)?;
        // One wake-up waiting at most: the writer asks after every commit past the threshold.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("civicflow-sqlite-checkpointer".into())
            .spawn(move || {
                for () in woken {
                    // A failed checkpoint leaves the WAL longer until the next; the commits are
                    // not affected, and the periodic RESTART reports to no one either.
                    if conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).is_ok() {
                        counters.done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(Arc::new(e)))?;
        Ok(Checkpointer { wake })
    }

    /// Asks for a checkpoint, unless one is asked for already.
    fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

/// What a write on a closed store (or a writer thread that ended) fails with.
fn closed() -> StoreError {
    StoreError::Unavailable(Arc::new(std::io::Error::other("the SQLite store's writer is closed")))
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
