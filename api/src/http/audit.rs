//! Issue 12.2–12.3: the global audit log over HTTP, for auditors and witnesses.
//!
//! - `GET /v1/audit/key`: the checkpoints' public key, as signed-note verifier-key text.
//! - `GET /v1/audit/checkpoint`: the latest signed checkpoint (C2SP tlog-checkpoint note).
//! - `GET /v1/audit/proof/inclusion?index=I&size=N`: the audit path of leaf I in the tree of N.
//! - `GET /v1/audit/proof/consistency?first=M&second=N`: the tree of M is a prefix of that of N.
//! - `GET /v1/instances/{id}/history/{seq}/proof[?size=N]`: where an event is in the tree, with
//!   the proof of it in the latest checkpoint (or the tree of N).
//!
//! The key and the checkpoint are open to anyone (they say how large the log is and its root,
//! nothing of its content); proofs carry leaf hashes, from which a guess at an event's content
//! could be confirmed, so they ask for a token as the histories do. Hashes are base64, as the
//! checkpoint writes its root.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_engine::audit::merkle::Hash;
use civicflow_engine::audit::note::base64_encode;

use super::auth::Caller;
use super::codes::ProblemCode;
use super::extract::{AppPath, AppQuery};
use super::problem::{ApiError, Problem};
use super::AppState;

/// The proof that a leaf is in a tree.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The leaf's index in the tree (from 0, in commit order).
    pub index: u64,
    /// The size of the tree the proof is for.
    pub size: u64,
    /// The event the leaf is.
    pub instance: String,
    pub seq: u64,
    /// The leaf hash, SHA-256(0x00 ‖ the event's canonical encoding), base64.
    pub leaf: String,
    /// The audit path, nearest the leaf first, base64 (RFC 9162 §2.1.3).
    pub hashes: Vec<String>,
    /// The signed checkpoint of that size, when one was made (what the root is checked against).
    pub checkpoint: Option<String>,
}

/// The proof that one tree is a prefix of another.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub first: u64,
    pub second: u64,
    /// RFC 9162 §2.1.4, base64.
    pub hashes: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The leaf's index, from 0.
    pub index: u64,
    /// The tree's size (default: the latest checkpoint's).
    pub size: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The smaller tree's size (at least 1).
    #[param(minimum = 1)]
    pub first: u64,
    /// The larger tree's size (default: the latest checkpoint's).
    pub second: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventProofQuery {
    /// The tree's size (default: the latest checkpoint's).
    pub size: Option<u64>,
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| base64_encode(h)).collect()
}

#[utoipa::path(
    get,
    path = "/v1/audit/key",
    tag = "audit",
    responses((status = 200, description = "The checkpoints' public key: `NAME+HASH+BASE64` (signed-note verifier key)", content_type = "text/plain", body = String))
)]
pub async fn key(State(state): State<AppState>) -> Response {
    text(format!("{}\n", state.audit_key.to_key_text()))
}

#[utoipa::path(
    get,
    path = "/v1/audit/checkpoint",
    tag = "audit",
    responses(
        (status = 200, description = "The latest signed checkpoint: origin, tree size, root (base64), a blank line, the signature", content_type = "text/plain", body = String),
        (status = 404, description = "No checkpoint was signed yet", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let latest = state.runtime.latest_checkpoint().await?;
    let latest = latest.ok_or_else(|| ApiError::not_found("checkpoint", "latest"))?;
    Ok(text(latest.note))
}

/// The size a proof is for: the one asked, or the latest checkpoint's.
async fn size_or_latest(state: &AppState, size: Option<u64>) -> Result<(u64, Option<String>), ApiError> {
    let latest = state.runtime.latest_checkpoint().await?;
    match (size, latest) {
        (Some(size), Some(cp)) if cp.size == size => Ok((size, Some(cp.note))),
        (Some(size), _) => Ok((size, None)),
        (None, Some(cp)) => Ok((cp.size, Some(cp.note))),
        (None, None) => Err(ApiError::not_found("checkpoint", "latest")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/audit/proof/inclusion",
    tag = "audit",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The leaf and its audit path", body = InclusionProof),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such leaf in a tree of that size, no tree of that size yet, or no checkpoint yet", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn inclusion(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    AppQuery(q): AppQuery<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    let (size, checkpoint) = size_or_latest(&state, q.size).await?;
    inclusion_of(&state, q.index, size, checkpoint).await.map(Json)
}

async fn inclusion_of(
    state: &AppState,
    index: u64,
    size: u64,
    checkpoint: Option<String>,
) -> Result<InclusionProof, ApiError> {
    let hashes = state.runtime.audit_inclusion_proof(index, size).await?;
    let leaf = state.store.audit_leaves(index, 1).await?.into_iter().next();
    let leaf = leaf.filter(|l| l.index == index).ok_or_else(|| ApiError::not_found("leaf", &index.to_string()))?;
    Ok(InclusionProof {
        index,
        size,
        instance: leaf.instance,
        seq: leaf.seq,
        leaf: base64_encode(&leaf.leaf),
        hashes: b64(&hashes),
        checkpoint,
    })
}

#[utoipa::path(
    get,
    path = "/v1/audit/proof/consistency",
    tag = "audit",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The consistency proof", body = ConsistencyProof),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such proof: `first` above `second`, `second` above the tree, or no checkpoint yet", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn consistency(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    AppQuery(q): AppQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let (second, _) = size_or_latest(&state, q.second).await?;
    let hashes = state.runtime.audit_consistency_proof(q.first, second).await?;
    Ok(Json(ConsistencyProof { first: q.first, second, hashes: b64(&hashes) }))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}/history/{seq}/proof",
    tag = "audit",
    params(
        ("id" = String, Path, description = "The instance id"),
        ("seq" = u64, Path, description = "The event's seq"),
        EventProofQuery,
    ),
    responses(
        (status = 200, description = "Where the event is in the global tree, and the proof", body = InclusionProof),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event in the log, not yet in a tree of that size, or no checkpoint yet", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn event_proof(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    AppPath((id, seq)): AppPath<(String, u64)>,
    AppQuery(q): AppQuery<EventProofQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    let (size, checkpoint) = size_or_latest(&state, q.size).await?;
    let index = *leaf_indexes(&state, &id)
        .await?
        .get(&seq)
        .ok_or_else(|| ApiError::not_found("event", &format!("{id}/{seq}")))?;
    if index >= size {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ProblemCode::NotFound.as_str(),
            format!("event {seq} of `{id}` is leaf {index} of the log, not yet in the tree of {size}"),
        ));
    }
    let proof = inclusion_of(&state, index, size, checkpoint).await?;
    if (proof.instance.as_str(), proof.seq) != (id.as_str(), seq) {
        // The row named another event's leaf: the database was edited; the proof would mislead.
        return Err(ApiError::not_found("event in the log", &format!("{id}/{seq}")));
    }
    Ok(Json(proof))
}

/// Where each of an instance's events is in the global tree, by seq: from the events' rows (by
/// primary key) when they all say, else from the log itself (read whole).
pub async fn leaf_indexes(state: &AppState, id: &str) -> Result<std::collections::HashMap<u64, u64>, ApiError> {
    let said = state.store.event_leaf_indexes(id).await?;
    if said.iter().all(|(_, index)| index.is_some()) {
        return Ok(said.into_iter().filter_map(|(seq, index)| index.map(|i| (seq, i))).collect());
    }
    Ok(state.store.audit_leaves_of(id).await?.into_iter().map(|l| (l.seq, l.index)).collect())
}
