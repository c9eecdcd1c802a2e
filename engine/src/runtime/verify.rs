//! Issue 12.3: verification never trusts the stored state. The hash chain says the events are
//! those written; this says the instance's row — its snapshot, status and version — is what
//! those events make: the events are replayed from the first and the result compared with what
//! is stored, naming the first field that differs. An administrator who edits a snapshot (a form
//! value, an open step marked done) is caught here, though the chain still holds.

use serde_json::Value;

use crate::core::{self, Event};

use super::{status_word, Runtime, RuntimeError};

/// Where the stored state differs from the replay of the instance's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMismatch {
    /// `snapshot.nodes.审核.status`, `status` or `version`.
    pub field: String,
    /// What the replay gives.
    pub expected: String,
    /// What is stored.
    pub found: String,
    /// The version the compared state is at.
    pub at_version: u64,
}

impl std::fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the stored state differs from the replay of its first {} events at `{}`: the events give {}, the row holds {}",
            self.at_version, self.field, self.expected, self.found
        )
    }
}

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
                serde_json::from_value(e.payload.clone())
                    .map(|ev| (ev, e.at))
                    .map_err(|x| RuntimeError::Corrupt(format!("event {} of `{id}`: {x}", e.seq)))
            })
            .collect::<Result<_, _>>()?;
        let count = events.len() as u64;
        if count != record.version {
            return Ok(Some(StateMismatch {
                field: "version".into(),
                expected: count.to_string(),
                found: record.version.to_string(),
                at_version: count,
            }));
        }
        // The record as the store serves it: its snapshot with the events after it folded in.
        let now = core::replay(events.iter().map(|(e, at)| (e, *at)));
        if !record.snapshot.is_null() {
            let replayed = serde_json::to_value(&now).map_err(|e| RuntimeError::Corrupt(e.to_string()))?;
            if let Some((path, expected, found)) = first_difference("snapshot", &replayed, &record.snapshot) {
                return Ok(Some(StateMismatch { field: path, expected, found, at_version: count }));
            }
        }
        let status = status_word(now.status);
        if status != record.status {
            return Ok(Some(StateMismatch {
                field: "status".into(),
                expected: status.to_string(),
                found: record.status.clone(),
                at_version: count,
            }));
        }
        Ok(None)
    }
}

/// The first place (a dotted path, `[i]` for an array's element) where `found` differs from
/// `expected`, with both values there as JSON text.
fn first_difference(path: &str, expected: &Value, found: &Value) -> Option<(String, String, String)> {
    match (expected, found) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                first_difference(&format!("{path}.{k}"), x, y)
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y))
        }
        (x, y) if x == y => None,
        (x, y) => Some((path.to_string(), x.to_string(), y.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::first_difference;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let replayed =
            json!({ "nodes": { "审核": { "status": "open", "acts": [1, 2] }, "受理": { "status": "done" } } });
        let forged = json!({ "nodes": { "审核": { "status": "done", "acts": [1, 2] }, "受理": { "status": "done" } } });
        assert_eq!(
            first_difference("snapshot", &replayed, &forged),
            Some(("snapshot.nodes.审核.status".into(), "\"open\"".into(), "\"done\"".into()))
        );
        let longer =
            json!({ "nodes": { "审核": { "status": "open", "acts": [1, 2, 3] }, "受理": { "status": "done" } } });
        assert_eq!(
            first_difference("snapshot", &replayed, &longer),
            Some(("snapshot.nodes.审核.acts".into(), "[1,2]".into(), "[1,2,3]".into()))
        );
        assert_eq!(first_difference("snapshot", &replayed, &replayed), None);
    }
}
