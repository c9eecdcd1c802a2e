//! Issue 12.1: a transaction's events appended to the global Merkle tree — each one's leaf at
//! the next index, the frontier moved on — in the commit's own statements, over the
//! [`BatchWriter`]: the frontier a store remembers after its last append ([`LogHead`], a hint
//! checked in the insert's statement) and the rows an append writes ([`LogAppend`]).

use super::batch::{BatchWriter, OpenStepsChange};
use super::{StoreError, StoredEvent};
use crate::audit::merkle::{self, Frontier, Hash};
use crate::audit::ChainedEvent;

/// Off only in the engine benchmark's comparison of the commit path with and without the tree
/// ([`benchmark_without_audit_log`]); never in a server.
static AUDIT_LOG_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For the engine benchmark only (issue 12.1, "approvals/s with and without the tree, one
/// run"): commits in this process stop (`true`) or resume (`false`) appending to the global
/// tree. A database written meanwhile has events no checkpoint covers; never use it in a
/// server or a test.
#[doc(hidden)]
pub fn benchmark_without_audit_log(off: bool) {
    AUDIT_LOG_OFF.store(off, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the benchmark turned the tree off ([`benchmark_without_audit_log`]).
pub(super) fn audit_log_off() -> bool {
    AUDIT_LOG_OFF.load(std::sync::atomic::Ordering::Relaxed)
}

/// Issue 12.1: the global tree's frontier (size and peaks) after this store's last append — a
/// hint that spares each commit a read before its append. Never trusted: the append writes its
/// leaves only if the stored last leaf still carries exactly these peaks at this size, checked
/// in the insert's own statement, and reads the frontier again when it does not (another node
/// appended, or the transaction that appended rolled back).
#[derive(Debug, Default)]
pub(super) struct LogHead(std::sync::Mutex<Option<(u64, Vec<Hash>)>>);

impl LogHead {
    fn get(&self) -> Option<(u64, Vec<Hash>)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, frontier: Option<(u64, Vec<Hash>)>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = frontier;
    }
}

/// Issue 12.1: the events appended, in this order, to the global Merkle tree — each one's leaf
/// at the next index, the frontier moved on (O(log n) hashes a leaf), in the commit's
/// transaction — and, with [`Append::EventsToo`], the events written with their leaves' indexes
/// in the same statement where the store can (no round trip of the tree's own).
pub(super) async fn append_to_log<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    events: &[&StoredEvent],
    what: Append<'_>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    if audit_log_off() {
        if let Append::EventsToo { payloads, open_steps, .. } = what {
            w.insert_events(events, payloads, None, open_steps).await?;
        }
        return Ok(());
    }
    let computed: Vec<Hash>;
    let leaves = match what {
        Append::EventsToo { leaves, .. } => leaves,
        Append::LeavesOnly => {
            computed = events.iter().map(|e| merkle::leaf_hash(&crate::audit::encode(&e.fields()))).collect();
            &computed
        }
    };
    let hinted = head.get();
    let fresh = hinted.is_none();
    let frontier = match hinted {
        Some(frontier) => frontier,
        None => w.log_frontier().await?,
    };
    let (log, mut after) = LogAppend::of(events, leaves, frontier)?;
    let mut written = write_append(w, events, &log, what).await?;
    if !written && !fresh {
        // The hint was stale: the frontier as stored now, under the log's lock.
        let (log, now) = LogAppend::of(events, leaves, w.log_frontier().await?)?;
        written = write_append(w, events, &log, what).await?;
        after = now;
    }
    if !written {
        head.set(None);
        return Err(StoreError::Corrupt("the audit tree's last leaf moved while this transaction held the log".into()));
    }
    head.set(Some(after));
    Ok(())
}

/// What [`append_to_log`] writes: the leaves and the events (a commit: with its payloads' stored
/// text and its leaves, from [`super::common::chain_events`]), or the leaves alone (the events written before
/// the tree, appended once: their leaves computed here).
#[derive(Debug, Clone, Copy)]
pub(super) enum Append<'a> {
    EventsToo { payloads: &'a [&'a str], leaves: &'a [Hash], open_steps: OpenStepsChange<'a> },
    LeavesOnly,
}

async fn write_append<W: BatchWriter + ?Sized>(
    w: &mut W,
    events: &[&StoredEvent],
    log: &LogAppend<'_>,
    what: Append<'_>,
) -> Result<bool, StoreError> {
    match what {
        Append::EventsToo { payloads, open_steps, .. } => {
            w.insert_events(events, payloads, Some(log), open_steps).await
        }
        Append::LeavesOnly => w.insert_log_leaves(log).await,
    }
}

/// Leaves to append after the stored tree's last leaf `after` (its index and the peaks it
/// carries; `None`: the tree is empty), which the store checks in the insert's own statement.
pub(super) struct LogAppend<'a> {
    /// One for each event, in order.
    pub rows: Vec<LogLeaf<'a>>,
    pub after: Option<(u64, Vec<u8>)>,
}

impl<'a> LogAppend<'a> {
    /// The rows for `events` (their `leaves`) after the frontier `(size, peaks)`, and the
    /// frontier after them.
    fn of(
        events: &[&'a StoredEvent],
        leaves: &[Hash],
        (size, peaks): (u64, Vec<Hash>),
    ) -> Result<(LogAppend<'a>, (u64, Vec<Hash>)), StoreError> {
        let after = size.checked_sub(1).map(|last| (last, peaks.concat()));
        let mut frontier = Frontier::from_parts(size, peaks)
            .ok_or_else(|| StoreError::Corrupt(format!("the audit tree's peaks do not fit its size {size}")))?;
        let mut rows = Vec::with_capacity(events.len());
        for (e, &leaf) in events.iter().zip(leaves) {
            rows.push(LogLeaf { index: frontier.size(), instance: e.instance.as_str(), seq: e.seq, leaf, peaks: None });
            frontier.push(leaf);
        }
        if let Some(last) = rows.last_mut() {
            last.peaks = Some(frontier.peaks().concat());
        }
        Ok((LogAppend { rows, after }, (frontier.size(), frontier.peaks().to_vec())))
    }
}

/// A row of `audit_leaves`: the event, its leaf hash at its index, and — on the last leaf a
/// commit appends — the frontier after it.
pub(super) struct LogLeaf<'a> {
    pub index: u64,
    pub instance: &'a str,
    pub seq: u64,
    pub leaf: Hash,
    pub peaks: Option<Vec<u8>>,
}

/// Peaks as stored: 32 bytes each, largest first.
pub(super) fn peaks_from_bytes(bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!("the audit tree's peaks are {} bytes", bytes.len())));
    }
    Ok(bytes
        .chunks(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}
