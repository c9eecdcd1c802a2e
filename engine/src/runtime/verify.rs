//! Issue 12.3: verification never trusts the stored state. The hash chain says the events are
//! those written; this says the instance's row — its snapshot, status and version — is what
//! those events make: the events are replayed from the first and the result compared with what
//! is stored, naming the first field that differs. An administrator who edits a snapshot (a form
//! value, an open step marked done) is caught here, though the chain still holds.

use crate::audit::replay::{check_state, StateMismatch};
use crate::core::Event;

use super::{Runtime, RuntimeError};

impl Runtime {
    /// Replays the instance's events and compares the state the store serves (its snapshot with
    /// the events after it folded in), its status and version with them: `None` when they agree.
    pub async fn check_stored_state(&self, id: &str) -> Result<Option<StateMismatch>, RuntimeError> {
        let record = self
            .store
            .load_instance(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { what: "instance", id: id.to_string() })?;
        let stored = self.store.events_until(id, chrono::DateTime::<chrono::Utc>::MAX_UTC).await?;
        // Read after the row: a commit landing between the two reads adds events the row has not
        // seen. The log is append-only, so the row's version is a prefix of it.
        let seen = usize::try_from(record.version).unwrap_or(usize::MAX).min(stored.len());
        let events: Vec<(Event, chrono::DateTime<chrono::Utc>)> = stored[..seen]
            .iter()
            .map(|e| {
                <Event as serde::Deserialize>::deserialize(&*e.payload)
                    .map(|ev| (ev, e.at))
                    .map_err(|x| RuntimeError::Corrupt(format!("event {} of `{id}`: {x}", e.seq)))
            })
            .collect::<Result<_, _>>()?;
        // The record as the store serves it: its snapshot with the events after it folded in.
        Ok(check_state(&events, record.version, &record.status, &record.snapshot))
    }
}
