//! Issue 12.1: the global Merkle tree covers every event, those written before it existed too:
//! a database from before it has them appended once, oldest first, before the node serves (as
//! the open-step table is built). Commits landing meanwhile append their own events in their own
//! transactions; the tree's row orders the two.

use super::{Runtime, RuntimeError};

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
