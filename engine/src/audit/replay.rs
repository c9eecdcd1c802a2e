//! Issue 12.3: a stored state checked against the replay of its events — by the server
//! (`Runtime::check_stored_state`) and by the offline verifier of a bundle (`audit::bundle`) alike:
//! the events replayed from the first, the result compared with the row, the first field that
//! differs named. Pure.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::core::{self, Event};

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

/// Compares a row — its `version`, `status` and `snapshot` (`Null`: not kept) — with the replay
/// of `events` (the instance's, from the first): `None` when they agree.
pub fn check_state(
    events: &[(Event, DateTime<Utc>)],
    version: u64,
    status: &str,
    snapshot: &Value,
) -> Option<StateMismatch> {
    let count = events.len() as u64;
    if count != version {
        return Some(StateMismatch {
            field: "version".into(),
            expected: count.to_string(),
            found: version.to_string(),
            at_version: count,
        });
    }
    let now = core::replay(events.iter().map(|(e, at)| (e, *at)));
    if !snapshot.is_null() {
        let replayed = serde_json::to_value(&now).unwrap_or(Value::Null);
        if let Some((path, expected, found)) = first_difference("snapshot", &replayed, snapshot) {
            return Some(StateMismatch { field: path, expected, found, at_version: count });
        }
    }
    let word = now.status.word();
    (word != status).then(|| StateMismatch {
        field: "status".into(),
        expected: word.to_string(),
        found: status.to_string(),
        at_version: count,
    })
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
