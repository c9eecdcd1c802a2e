//! Group commit: one task takes the commits that arrive together and writes them with one
//! [`Store::commit_many`] call (one transaction, one fsync), answering each caller on its own
//! channel. With N callers waiting, the cost of the durable write is shared N ways, so
//! throughput is not bounded by one fsync per command.
//!
//! A store whose transactions can write side by side ([`Store::batches_in_flight`]: PostgreSQL)
//! gets the next batch while one is being written, of other instances than those it holds.
//!
//! The task also runs [`Store::checkpoint`] on an interval (for SQLite, `wal_checkpoint(RESTART)`
//! keeps the WAL bounded); it runs between batches, so it never races a batch of its own.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant, MissedTickBehavior};

use super::{Commit, Store, StoreError, StoredEvent};

/// Settings of a [`GroupCommitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// The most commits in one batch.
    pub max_batch: usize,
    /// How many commits may wait in the queue before callers wait to enqueue (backpressure).
    pub queue: usize,
    /// How often to call [`Store::checkpoint`]; `None` never.
    pub checkpoint_every: Option<Duration>,
}

/// A handle to the group-commit task. Cloning it is cheap; the task ends when the last handle is
/// dropped, after it has answered every commit already queued.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Job>,
    stats: Arc<Counters>,
}

/// What the task has done so far ([`GroupCommitter::stats`]): the committer is the one serial
/// stage of every write, so its busy time per commit bounds throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Batches written ([`Store::commit_many`] calls).
    pub batches: u64,
    /// Commits in them.
    pub commits: u64,
    /// Time spent inside [`Store::commit_many`], in microseconds (summed over the batches: two
    /// written side by side count twice).
    pub busy_micros: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    commits: AtomicU64,
    busy_micros: AtomicU64,
}

/// The commit's result, and the commit itself given back: its caller's task frees it, not the
/// committer, whose time every caller waits on (freeing a batch's events was ~17 % of the
/// committer's own CPU at 64 clients).
type Reply = oneshot::Sender<(Result<Vec<StoredEvent>, StoreError>, Commit)>;

#[derive(Debug)]
struct Job {
    commit: Commit,
    reply: Reply,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig { max_batch: 256, queue: 4096, checkpoint_every: Some(Duration::from_secs(60)) }
    }
}

impl GroupCommitter {
    /// Starts the task on the current tokio runtime. The handle returned with it ends when the
    /// last [`GroupCommitter`] is dropped and the queue is drained.
    pub fn spawn(store: Arc<dyn Store>, config: GroupCommitConfig) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(Counters::default());
        let task = tokio::spawn(run(store, config, rx, stats.clone()));
        (GroupCommitter { queue: tx, stats }, task)
    }

    /// The batches written so far, the commits in them and the time they took.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            commits: self.stats.commits.load(Ordering::Relaxed),
            busy_micros: self.stats.busy_micros.load(Ordering::Relaxed),
        }
    }

    /// Commits through the next batch; the result is exactly what [`Store::commit`] would give.
    pub async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { commit, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_or(Err(StoreError::Closed), |(result, _commit)| result)
    }
}

async fn run(store: Arc<dyn Store>, config: GroupCommitConfig, mut rx: mpsc::Receiver<Job>, stats: Arc<Counters>) {
    let max_batch = config.max_batch.max(1);
    let room = store.batches_in_flight().max(1);
    // An interval that never ticks when checkpoints are off keeps one select below.
    let period = config.checkpoint_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let checkpoints = config.checkpoint_every.is_some();
    let mut writing = FuturesUnordered::new();
    let mut queue = Queue { held: VecDeque::new(), busy: HashSet::new(), side_by_side: room > 1 };
    let mut open = true;
    loop {
        while writing.len() < room {
            let batch = queue.next_batch(&mut rx, max_batch);
            if batch.is_empty() {
                break;
            }
            writing.push(write(store.clone(), batch, stats.clone(), queue.side_by_side));
        }
        if !open && writing.is_empty() && queue.held.is_empty() {
            break;
        }
        tokio::select! {
            job = rx.recv(), if open && writing.len() < room => match job {
                Some(job) => queue.held.push_back(job),
                None => open = false,
            },
            Some(instances) = writing.next(), if !writing.is_empty() => queue.release(instances),
            _ = ticker.tick(), if checkpoints && writing.is_empty() => {
                // A failed checkpoint leaves the WAL longer until the next one; commits are not
                // affected, so there is no one to report it to here.
                let _ = store.checkpoint().await;
            }
        }
    }
}

/// The commits waiting for a batch: those of an instance that a batch being written holds wait
/// for it to end (two batches in flight never share an instance, so neither waits for the
/// other's row locks, and an instance's commits keep their order). Counters, which commits of
/// any instance share, are the store's to order (`BatchWriter::lock_counters`).
struct Queue {
    held: VecDeque<Job>,
    busy: HashSet<String>,
    /// Whether batches can be in flight side by side: with one at a time (SQLite) no instance is
    /// ever busy when a batch is formed, and the committer (the serial stage) keeps no set.
    side_by_side: bool,
}

impl Queue {
    /// The next batch: the held commits whose instances are free, then those queued since, up to
    /// `max` (empty: nothing to write now).
    fn next_batch(&mut self, rx: &mut mpsc::Receiver<Job>, max: usize) -> Vec<Job> {
        let mut batch = Vec::new();
        // Instances with a commit left waiting in this pass: their later commits wait too.
        let mut blocked: HashSet<String> = HashSet::new();
        let mut take = |job: Job, batch: &mut Vec<Job>, held: &mut VecDeque<Job>| {
            let instance = &job.commit.instance;
            if batch.len() < max && !self.busy.contains(instance) && !blocked.contains(instance) {
                batch.push(job);
            } else {
                blocked.insert(instance.clone());
                held.push_back(job);
            }
        };
        let mut held = VecDeque::new();
        for job in std::mem::take(&mut self.held) {
            take(job, &mut batch, &mut held);
        }
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => take(job, &mut batch, &mut held),
                Err(_) => break,
            }
        }
        self.held = held;
        if self.side_by_side {
            self.busy.extend(batch.iter().map(|job| job.commit.instance.clone()));
        }
        batch
    }

    fn release(&mut self, instances: Vec<String>) {
        for instance in instances {
            self.busy.remove(&instance);
        }
    }
}

/// Writes a batch, answers its callers, and gives back the instances it held (`held`: when the
/// queue keeps them).
async fn write(store: Arc<dyn Store>, batch: Vec<Job>, stats: Arc<Counters>, held: bool) -> Vec<String> {
    let (commits, replies): (Vec<Commit>, Vec<Reply>) = batch.into_iter().map(|job| (job.commit, job.reply)).unzip();
    let instances: Vec<String> = if held { commits.iter().map(|c| c.instance.clone()).collect() } else { Vec::new() };
    let began = std::time::Instant::now();
    let n = commits.len();
    let (results, commits) = store.commit_many(commits).await;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.commits.fetch_add(n as u64, Ordering::Relaxed);
    stats.busy_micros.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
    // A store whose writer failed with the batch has no commits to give back.
    let mut commits = commits.into_iter();
    for (reply, result) in replies.into_iter().zip(results) {
        // A caller that stopped waiting has nothing to be told.
        let _ = reply.send((result, commits.next().unwrap_or_default()));
    }
    instances
}
