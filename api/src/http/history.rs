//! An instance's history: its events with their chain hashes, and the verification of the chain.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_engine::store::{StoreError, StoredEvent};

use super::auth::Caller;
use super::extract::{AppPath, AppQuery};
use super::problem::{ApiError, Problem};
use super::AppState;

/// The most events one history page returns.
const MAX_EVENTS: u32 = 1000;

/// One recorded event, as stored in the audit chain.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub instance: String,
    /// Position in the instance's log, from 1.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The principal that acted (`timer` for a deadline or a window).
    pub actor: String,
    pub role: Option<String>,
    /// `started`, `opened`, `acted`, `completed`, `overdue` …
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The previous event's hash (64 zeros for the first), lower-case hex.
    pub prev_hash: String,
    /// SHA-256 over the previous hash and this event's canonical encoding.
    pub hash: String,
}

/// A page of history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub instance: String,
    pub events: Vec<EventView>,
    /// The `after` to ask for the next page, if there may be one.
    pub next_after: Option<u64>,
}

/// The verification of an instance's chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    pub instance: String,
    /// Whether every event recomputes to its stored hash and the chain has no gap.
    pub ok: bool,
    /// How many events were checked (when it verifies).
    pub events: Option<u64>,
    /// The first event that does not match.
    pub first_bad_seq: Option<u64>,
    /// What does not match: `seq`, `prev_hash` or `hash` of the event `first_bad_seq`; or, the
    /// chain holding, where the stored state differs from the replay of the events
    /// (`snapshot.nodes.审核.status`, `status`, `version`).
    pub field: Option<String>,
    pub expected: Option<String>,
    pub found: Option<String>,
    /// In words.
    pub message: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Events after this seq (default 0: from the first; at most 2^63 − 1).
    #[param(maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// At most this many events (1 to 1000, default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl From<&StoredEvent> for EventView {
    fn from(e: &StoredEvent) -> Self {
        EventView {
            instance: e.instance.clone(),
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            role: e.role.clone(),
            kind: e.kind.clone(),
            payload: (*e.payload).clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}/history",
    tag = "history",
    params(("id" = String, Path, description = "The instance id"), HistoryQuery),
    responses(
        (status = 200, description = "Events in order, with their hashes", body = History),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let limit = q.limit.unwrap_or(MAX_EVENTS);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ApiError::invalid(format!("`limit` is 1 to {MAX_EVENTS}")));
    }
    // Sequence numbers are stored as signed 64-bit integers.
    if q.after.is_some_and(|a| a > i64::MAX as u64) {
        return Err(ApiError::invalid(format!("`after` is 0 to {}", i64::MAX)));
    }
    if state.store.load_instance(&id).await?.is_none() {
        return Err(ApiError::not_found("instance", &id));
    }
    let events = state.store.events(&id, q.after.unwrap_or(0), limit).await?;
    let next_after = (events.len() == limit as usize).then(|| events.last().map(|e| e.seq)).flatten();
    let mut views: Vec<EventView> = events.iter().map(EventView::from).collect();
    // R6.2: personal values redacted in the payloads shown; the hashes stay those stored.
    let (record, core) = state.runtime.load(&id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    if super::personal::must_redact(&program, &core, &principal) {
        for v in &mut views {
            super::personal::redact_payload(&program, &v.kind, &mut v.payload);
        }
    }
    Ok(Json(History { instance: id, events: views, next_after }))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}/history/verify",
    tag = "history",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The verification result: `ok`, or the first bad event", body = Verification),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<Verification>, ApiError> {
    verification(&state, &id).await.map(Json)
}

/// The chain checked, then the stored state against the replay of the events (issue 12.3: the
/// snapshot is never trusted): the first fault found, or how many events verify.
pub async fn verification(state: &AppState, id: &str) -> Result<Verification, ApiError> {
    let n = match state.store.verify(id).await {
        Ok(n) => n,
        Err(StoreError::ChainBroken(e)) => {
            return Ok(Verification {
                instance: id.to_string(),
                ok: false,
                events: None,
                first_bad_seq: Some(e.seq),
                field: Some(e.field.to_string()),
                expected: Some(e.expected.clone()),
                found: Some(e.found.clone()),
                message: e.to_string(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = state.runtime.check_stored_state(id).await? {
        return Ok(Verification {
            instance: id.to_string(),
            ok: false,
            events: Some(n),
            first_bad_seq: None,
            message: m.to_string(),
            field: Some(m.field),
            expected: Some(m.expected),
            found: Some(m.found),
        });
    }
    Ok(Verification {
        instance: id.to_string(),
        ok: true,
        events: Some(n),
        first_bad_seq: None,
        field: None,
        expected: None,
        found: None,
        message: format!("{n} events verify, and the stored state is their replay"),
    })
}
