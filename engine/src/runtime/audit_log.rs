//! Issue 12.1: the global Merkle tree covers every event, those written before it existed too:
//! a database from before it has them appended once, oldest first, before the node serves (as
//! the open-step table is built). Commits landing meanwhile append their own events in their own
//! transactions; the tree's row orders the two.

use std::sync::Arc;
use std::time::Duration;

use super::{Runtime, RuntimeError};
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::store::AuditCheckpointRecord;

/// Events appended a transaction.
const BACKFILL_CHUNK: u32 = 2_000;

impl Runtime {
    /// Appends the events written before the tree existed; `progress` is told how many so far.
    /// Returns how many (0 for a database that had none, or was done before).
    pub async fn build_audit_log(&self, mut progress: impl FnMut(u64)) -> Result<u64, RuntimeError> {
        let mut done = 0;
        loop {
            let n = self.store.backfill_audit_log(BACKFILL_CHUNK).await?;
            done += n;
            if n > 0 {
                progress(done);
            }
            if n < u64::from(BACKFILL_CHUNK) {
                return Ok(done);
            }
        }
    }
}

/// Issue 12.2: when the server signs a checkpoint of the global tree: once `events` leaves were
/// appended since the last, or `interval` after the last when fewer were, whichever comes first;
/// never when the tree did not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub events: u64,
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy { events: 1_000, interval: Duration::from_secs(10) }
    }
}

impl Runtime {
    /// The latest signed checkpoint, if one was made.
    pub async fn latest_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, RuntimeError> {
        Ok(self.store.latest_audit_checkpoint().await?)
    }

    /// Signs and stores a checkpoint of the tree as its leaves stand, when it grew since the last
    /// one (`None` when it did not). The root is computed from the stored leaves, not taken from
    /// the frontier a commit kept, and the leaves must still make the last checkpoint's tree: a
    /// log rewritten or cut under the server is refused ([`RuntimeError::Corrupt`]), never
    /// signed.
    pub async fn make_checkpoint(&self, signer: &NoteSigner) -> Result<Option<AuditCheckpointRecord>, RuntimeError> {
        let tree = self.store.audit_tree().await?;
        let last = self.store.latest_audit_checkpoint().await?;
        if let Some(last) = &last {
            if last.size > tree.size {
                return Err(RuntimeError::Corrupt(format!(
                    "the audit log has {} leaves, fewer than the {} of its last signed checkpoint",
                    tree.size, last.size
                )));
            }
            if self.audit_root_at(last.size).await? != last.root {
                return Err(RuntimeError::Corrupt(format!(
                    "the audit log's first {} leaves no longer make the root of its last signed checkpoint",
                    last.size
                )));
            }
            if last.size == tree.size {
                return Ok(None);
            }
        }
        let root = self.audit_root_at(tree.size).await?;
        if root != tree.root {
            return Err(RuntimeError::Corrupt(format!(
                "the audit log's frontier does not match its {} leaves",
                tree.size
            )));
        }
        let checkpoint = Checkpoint { origin: signer.name().to_owned(), size: tree.size, root };
        let note = checkpoint.sign(signer).map_err(|e| RuntimeError::Corrupt(format!("cannot sign: {e}")))?;
        let record = AuditCheckpointRecord {
            size: tree.size,
            root,
            note,
            made_at: crate::audit::truncate_to_micros(self.clock.now()),
        };
        if self.store.put_audit_checkpoint(record.clone()).await? {
            Ok(Some(record))
        } else {
            // Another node signed this size first: its note stands.
            Ok(self.store.latest_audit_checkpoint().await?)
        }
    }

    /// Signs checkpoints as `policy` says until `stop` resolves; looks at the tree every second
    /// (or every `interval` when shorter). A failure is tried again at the next look and logged
    /// when it changes, or once a minute while it lasts (a log rewritten under the server stays
    /// refused, and would otherwise fill the log every second).
    pub async fn checkpoint_loop(
        self: Arc<Self>,
        signer: Arc<NoteSigner>,
        policy: CheckpointPolicy,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let tick = policy.interval.min(Duration::from_secs(1)).max(Duration::from_millis(10));
        let mut last_made = std::time::Instant::now();
        let mut last_error: Option<(String, std::time::Instant)> = None;
        let mut report = |e: RuntimeError| {
            let text = e.to_string();
            let repeat =
                last_error.as_ref().is_some_and(|(t, at)| *t == text && at.elapsed() < Duration::from_secs(60));
            if !repeat {
                eprintln!("audit checkpoints: {text}");
                last_error = Some((text, std::time::Instant::now()));
            }
        };
        loop {
            let due = async {
                let tree = self.store.audit_tree().await?;
                let last = self.store.latest_audit_checkpoint().await?.map_or(0, |c| c.size);
                let grown = tree.size.saturating_sub(last);
                Ok::<_, RuntimeError>(grown > 0 && (grown >= policy.events || last_made.elapsed() >= policy.interval))
            };
            match due.await {
                Ok(true) => match self.make_checkpoint(&signer).await {
                    Ok(_) => last_made = std::time::Instant::now(),
                    Err(e) => report(e),
                },
                Ok(false) => {}
                Err(e) => report(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
