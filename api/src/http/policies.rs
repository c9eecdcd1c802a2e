//! Policies: publish (compile and store a version), list, versions, graph.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_dsl::Renderer;
use civicflow_engine::runtime::RuntimeError;
use civicflow_engine::store::PolicyRecord;

use super::auth::Caller;
use super::extract::{remember, replay, AppPath, AppQuery, Body, IdempotencyKey, InFlight};
use super::problem::{ApiError, Problem};
use super::AppState;

/// A published policy version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    pub name: String,
    pub title: Option<String>,
    /// The label the author wrote (`2012.1`).
    pub version: String,
    /// The content hash of the compiled graph: the version's identity.
    pub hash: String,
    pub published_at: DateTime<Utc>,
}

/// The result of publishing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Published {
    #[serde(flatten)]
    pub policy: PolicyVersion,
    /// Whether this request stored it (`false`: the same version was published before).
    pub created: bool,
}

/// A policy with every published version, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersions {
    pub name: String,
    pub versions: Vec<PolicyVersion>,
}

/// The graph's formats, for the OpenAPI document (the handler reads the word itself, so that an
/// unknown one is refused in words).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "only its schema is used")]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GraphQuery {
    /// `dot` (default), `mermaid` or `json` (the IR with its hash).
    #[param(value_type = Option<GraphFormat>, inline)]
    pub format: Option<String>,
    /// A version's hash; the latest if absent.
    pub hash: Option<String>,
}

fn version(p: &PolicyRecord) -> PolicyVersion {
    let title = p.ir.get("title").and_then(|t| t.as_str()).map(str::to_string);
    PolicyVersion {
        name: p.name.clone(),
        title,
        version: p.version_label.clone(),
        hash: p.hash.clone(),
        published_at: p.published_at,
    }
}

#[utoipa::path(
    post,
    path = "/v1/policies",
    tag = "policies",
    request_body(content = String, content_type = "text/plain", description = "The policy in the civicflow language"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result")),
    responses(
        (status = 201, description = "Compiled and published", body = Published),
        (status = 200, description = "This version was published before; nothing changed", body = Published),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Publishing needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with the same key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The policy does not compile: `diagnostics` lists every error", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    Caller(principal): Caller,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_admin("publishing a policy")?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    if let Some(done) = replay(&state, &principal.name, &key, &body).await? {
        state.metrics.inc("civicflow_commands_total", &[("command", "publish"), ("result", "replayed")]);
        return Ok(done);
    }
    let source = body.text()?;
    let published = match state.runtime.publish(source).await {
        Ok(p) => p,
        Err(RuntimeError::Invalid(diagnostics)) => {
            state.metrics.inc("civicflow_commands_total", &[("command", "publish"), ("result", "refused")]);
            let rendered = Renderer::new("policy.cf", source).json(diagnostics.as_slice());
            let mut e: ApiError = RuntimeError::Invalid(diagnostics).into();
            e.problem.diagnostics =
                Some(rendered.iter().map(|d| serde_json::to_value(d).unwrap_or_default()).collect());
            return Err(e);
        }
        Err(e) => return Err(e.into()),
    };
    state.metrics.inc("civicflow_commands_total", &[("command", "publish"), ("result", "ok")]);
    let status = if published.created { StatusCode::CREATED } else { StatusCode::OK };
    let result = Published { policy: version(&published.record), created: published.created };
    let json = serde_json::to_value(&result).map_err(|e| ApiError::internal(e.to_string()))?;
    remember(&state, &principal.name, &key, &body, status, &json).await?;
    Ok((status, Json(json)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/policies",
    tag = "policies",
    responses(
        (status = 200, description = "The latest version of every policy, by name", body = Vec<PolicyVersion>),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, Caller(_p): Caller) -> Result<Json<Vec<PolicyVersion>>, ApiError> {
    Ok(Json(state.store.list_policies().await?.iter().map(version).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/policies/{name}",
    tag = "policies",
    params(("name" = String, Path, description = "The policy's name")),
    responses(
        (status = 200, description = "Every version, oldest first", body = PolicyVersions),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn versions(
    State(state): State<AppState>,
    Caller(_p): Caller,
    AppPath(name): AppPath<String>,
) -> Result<Json<PolicyVersions>, ApiError> {
    let versions = state.store.policy_versions(&name).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found("policy", &name));
    }
    Ok(Json(PolicyVersions { name, versions: versions.iter().map(version).collect() }))
}

#[utoipa::path(
    get,
    path = "/v1/policies/{name}/graph",
    tag = "policies",
    params(("name" = String, Path, description = "The policy's name"), GraphQuery),
    responses(
        (status = 200, description = "The compiled graph: Graphviz dot, Mermaid, or the IR as JSON", content(
            (String = "text/vnd.graphviz"),
            (String = "text/plain"),
            (Object = "application/json"),
        )),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown format", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn graph(
    State(state): State<AppState>,
    Caller(_p): Caller,
    AppPath(name): AppPath<String>,
    AppQuery(q): AppQuery<GraphQuery>,
) -> Result<Response, ApiError> {
    let program = state.runtime.program(&name, q.hash.as_deref()).await?;
    Ok(match q.format.as_deref().unwrap_or("dot") {
        "dot" => {
            ([(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")], civicflow_dsl::render::dot(&program.policy))
                .into_response()
        }
        "mermaid" => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], civicflow_dsl::render::mermaid(&program.policy))
                .into_response()
        }
        "json" => Json(serde_json::json!({ "hash": program.hash, "policy": program.policy })).into_response(),
        other => return Err(ApiError::invalid(format!("unknown format `{other}`; use `dot`, `mermaid` or `json`"))),
    })
}
