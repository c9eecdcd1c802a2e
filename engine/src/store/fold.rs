//! Reading an instance as of its last event (issue 10.1).
//!
//! A commit writes the instance's snapshot only every [`super::SNAPSHOT_EVERY`] events (and at its
//! first and last): the stored snapshot is the state as of `snapshot_version`. A read folds the
//! events after it into it with the core's `apply` (pure, the one the runtime decided with), so
//! every record a store returns holds the state as of its `version`, whatever the snapshot's age.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{InstanceRecord, LoadedState, StoreError};
use crate::core::{self, Event, State};

/// An event of a tail as a fold needs it: parsed from its stored text straight into the core's
/// type (not through a `serde_json::Value`, and without its chain hashes).
pub(super) struct TailEvent {
    pub instance: String,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
}

impl TailEvent {
    /// From a row's columns; `payload` is the event's stored JSON text.
    pub(super) fn parse(instance: String, seq: u64, at: DateTime<Utc>, payload: &str) -> Result<TailEvent, StoreError> {
        let event = serde_json::from_str(payload)
            .map_err(|e| StoreError::Corrupt(format!("instance `{instance}`: event {seq}: {e}")))?;
        Ok(TailEvent { instance, seq, at, event })
    }
}

/// What to read for the records whose snapshot is older than their version:
/// `(instance, snapshot_version, version)`, the events `snapshot_version < seq <= version`.
pub(super) fn wanted<'a>(records: impl IntoIterator<Item = &'a InstanceRecord>) -> Vec<(&'a str, u64, u64)> {
    records
        .into_iter()
        .filter(|r| r.snapshot_version < r.version)
        .map(|r| (r.id.as_str(), r.snapshot_version, r.version))
        .collect()
}

/// Folds `tails` (the events [`wanted`] named, in any order) into the records' snapshots.
/// A missing or extra event is [`StoreError::Corrupt`]: the record would be wrong.
pub(super) fn fold_tails(records: &mut [InstanceRecord], tails: Vec<TailEvent>) -> Result<(), StoreError> {
    let mut by_instance = by_instance(tails);
    for record in records.iter_mut().filter(|r| r.snapshot_version < r.version) {
        let corrupt = |what: String| StoreError::Corrupt(format!("instance `{}`: {what}", record.id));
        let mut state: State = serde_json::from_value(std::mem::take(&mut record.snapshot))
            .map_err(|e| corrupt(format!("snapshot of version {}: {e}", record.snapshot_version)))?;
        fold_state(record, &mut state, by_instance.remove(&record.id).unwrap_or_default())?;
        record.snapshot = serde_json::to_value(&state).map_err(|e| corrupt(format!("state: {e}")))?;
    }
    Ok(())
}

/// A row's record (its `snapshot` `Null`) and its snapshot's text, parsed.
pub(super) fn loaded(record: InstanceRecord, snapshot: &str) -> Result<LoadedState, StoreError> {
    let state: State = serde_json::from_str(snapshot).map_err(|e| {
        StoreError::Corrupt(format!("instance `{}`: snapshot of version {}: {e}", record.id, record.snapshot_version))
    })?;
    Ok(LoadedState { record, state, snapshot_bytes: snapshot.len() })
}

/// [`fold_tails`] of loaded states.
pub(super) fn fold_loaded(loaded: &mut [LoadedState], tails: Vec<TailEvent>) -> Result<(), StoreError> {
    let mut by_instance = by_instance(tails);
    for l in loaded.iter_mut().filter(|l| l.record.snapshot_version < l.record.version) {
        fold_state(&l.record, &mut l.state, by_instance.remove(&l.record.id).unwrap_or_default())?;
    }
    Ok(())
}

fn by_instance(tails: Vec<TailEvent>) -> HashMap<String, Vec<TailEvent>> {
    let mut by_instance: HashMap<String, Vec<TailEvent>> = HashMap::new();
    for e in tails {
        by_instance.entry(e.instance.clone()).or_default().push(e);
    }
    by_instance
}

/// Brings `state`, `record`'s snapshot as of its `snapshot_version`, to the record's version with
/// `tail` (that instance's events after the snapshot, in any order).
fn fold_state(record: &InstanceRecord, state: &mut State, mut tail: Vec<TailEvent>) -> Result<(), StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("instance `{}`: {what}", record.id));
    if state.version != record.snapshot_version {
        return Err(corrupt(format!(
            "the snapshot of version {} holds version {}",
            record.snapshot_version, state.version
        )));
    }
    tail.sort_by_key(|e| e.seq);
    for stored in tail {
        if stored.seq != state.version + 1 || stored.seq > record.version {
            return Err(corrupt(format!("event {} follows version {}", stored.seq, state.version)));
        }
        core::apply(state, &stored.event, stored.at);
    }
    if state.version != record.version {
        return Err(corrupt(format!("events {}..={} are missing", state.version + 1, record.version)));
    }
    Ok(())
}
