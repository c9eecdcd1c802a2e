//! The HTTP API (v1) of DESIGN.md, with axum: JSON in and out, errors as
//! `application/problem+json` with a stable code, bearer-token authentication, and an OpenAPI
//! document generated from the handlers' annotations (utoipa): the router and the document are
//! built from the same list of handlers (`utoipa_axum::routes!`), so they cannot diverge.
//!
//! One module per resource (`policies`, `instances`, `inbox`, `history`, `calendar`, `events`,
//! `admin`); `auth` (tokens, principals, the `/v1` middleware), `extract` (bodies, queries,
//! idempotency) and `problem` (errors) serve them all. Engine types are converted to the DTOs of
//! each module here, at the edge.
//!
//! Every problem response (4xx, 5xx) passes the `observe` middleware, which logs it with the
//! principal's name (never a token), counts it by code, and turns axum's own plain-text errors
//! (unknown route, wrong method, body too large) into problems.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod calendars;
pub mod codes;
pub mod contract;
pub mod corrections;
pub mod events;
pub mod extract;
pub mod history;
pub mod inbox;
pub mod instance_id;
pub mod instances;
pub mod limits;
pub mod migrations;
pub mod oversight;
pub mod personal;
pub mod policies;
pub mod problem;
pub mod suspension;
pub mod token_cache;
pub mod tokens;
pub mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{Store, StoredEvent};

use crate::metrics::Metrics;

use self::auth::PrincipalName;
use self::extract::InFlightSet;
use self::problem::{ApiError, Problem, ProblemInfo};

/// The largest request body accepted (a policy text is the largest thing sent).
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler shares, behind one `Arc`: axum clones the state for each extractor and
/// middleware of every request, and as a struct of ten `Arc`s and channel ends each clone and
/// drop was ten atomic updates on lines both workers share (~3 % of their CPU under 64 clients,
/// BENCHMARKS.md, issue 10, stop 31). The fields are read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct Shared {
    pub runtime: Arc<Runtime>,
    /// The store the runtime uses (measured; feeds `committed`).
    pub store: Arc<dyn Store>,
    /// The simulated clock, when the server runs on one.
    pub simulated: Option<Arc<SimulatedClock>>,
    /// Every committed event, for the SSE stream.
    pub committed: broadcast::Sender<StoredEvent>,
    pub metrics: Arc<Metrics>,
    /// Idempotency keys of requests in flight.
    pub inflight: InFlightSet,
    /// Becomes `true` when the server shuts down (ends the event streams).
    pub shutdown: watch::Receiver<bool>,
    /// Rate limits and caps (issue 9.3).
    pub limiter: Arc<limits::Limiter>,
    /// Principals by token hash, for a moment (issue 10.4).
    pub tokens: Arc<token_cache::TokenCache>,
    /// Issue 12.2: the public key of the audit checkpoints, served at `/v1/audit/key`.
    pub audit_key: Arc<civicflow_engine::audit::note::NoteVerifier>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "civicflow",
        description = "Run public-administration procedures written as policies: publish policies, start instances, act on steps, read and verify their history. Errors are `application/problem+json` with a stable `code`."
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "policies", description = "Compile and publish policies; their versions and graphs"),
        (name = "instances", description = "Start instances, read their state, act on steps"),
        (name = "inbox", description = "What the caller may act on"),
        (name = "history", description = "The audit chain"),
        (name = "audit", description = "The global audit log: its signing key, signed checkpoints, inclusion and consistency proofs (RFC 9162, C2SP tlog-checkpoint)"),
        (name = "events", description = "Live events"),
        (name = "admin", description = "The simulated clock"),
        (name = "oversight", description = "Which offices were late, on which procedures, how often, over time"),
        (name = "migrations", description = "Move running instances to a new version of their policy: plan, review, apply"),
        (name = "service", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `civicflow token create` (or the admin token printed at first start)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The router and the OpenAPI document, built from the same handlers.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .routes(routes!(policies::publish, policies::list))
        .routes(routes!(policies::versions))
        .routes(routes!(policies::graph))
        .routes(routes!(instances::start, instances::list))
        .routes(routes!(instances::get))
        .routes(routes!(instances::act))
        .routes(routes!(instances::next_cycle))
        .routes(routes!(suspension::suspend))
        .routes(routes!(suspension::resume))
        .routes(routes!(corrections::correct))
        .routes(routes!(migrations::plan))
        .routes(routes!(migrations::get_plan))
        .routes(routes!(migrations::apply))
        .routes(routes!(calendar::calendar))
        .routes(routes!(history::history))
        .routes(routes!(history::verify))
        .routes(routes!(audit::inclusion))
        .routes(routes!(audit::consistency))
        .routes(routes!(audit::event_proof))
        .routes(routes!(oversight::lateness))
        .routes(routes!(oversight::lateness_csv))
        .routes(routes!(inbox::inbox))
        .routes(routes!(events::stream_events))
        .routes(routes!(admin::clock, admin::advance_clock))
        .routes(routes!(calendars::list_calendars))
        .routes(routes!(calendars::add_calendar))
        .routes(routes!(tokens::list_tokens, tokens::create))
        .routes(routes!(tokens::revoke))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_principal));
    // Open to anyone, as a witness runs: the audit log's key and latest checkpoint (issue 12.2).
    let service = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(audit::key))
        .routes(routes!(audit::checkpoint));
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(v1).merge(service).split_for_parts();
    (router.with_state(state), openapi)
}

/// The whole application: the API, `/openapi.json`, limits, logs.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = router(state.clone());
    let openapi = Arc::new(contract::document(&openapi));
    router
        .route("/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .merge(crate::pages::router(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), limits::by_address))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::from_fn_with_state(state, observe))
        .layer(TraceLayer::new_for_http())
}

/// Health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "The server and its store answer", body = Health),
        (status = 503, description = "The store does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.load_instance("healthz").await?;
    Ok(Json(Health { status: "ok".into() }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    // The instance cache counts for itself (issue 10.1); its figures are read when asked for.
    let cache = state.runtime.cache_stats();
    let m = &state.metrics;
    m.set("civicflow_instance_cache_entries", &[], cache.entries as f64);
    m.set("civicflow_instance_cache_bytes", &[], cache.bytes as f64);
    m.set("civicflow_instance_cache_lookups_total", &[("result", "hit")], cache.hits as f64);
    m.set("civicflow_instance_cache_lookups_total", &[("result", "miss")], cache.misses as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render()).into_response()
}

/// Logs and counts every problem; turns axum's plain-text errors into problems.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let status = response.status();
    state.metrics.inc("civicflow_http_responses_total", &[("status", status.as_str())]);
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if response.extensions().get::<ProblemInfo>().is_none() {
        response = as_problem(response).await;
    }
    let principal = response.extensions().get::<PrincipalName>().map_or("-", |p| p.0.as_str()).to_string();
    if let Some(info) = response.extensions().get::<ProblemInfo>() {
        state.metrics.inc("civicflow_refusals_total", &[("code", info.code.as_str())]);
        if status.is_server_error() {
            tracing::error!(
                %method, %path, status = status.as_u16(), code = %info.code, %principal,
                internal = info.internal.as_deref().unwrap_or(""), "request failed"
            );
        } else {
            tracing::info!(
                %method, %path, status = status.as_u16(), code = %info.code, %principal, detail = %info.detail,
                "request refused"
            );
        }
    }
    response
}

/// A problem in place of a plain error response from axum or tower-http.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (crate::http::codes::ProblemCode::NotFound.as_str(), "no such resource".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            crate::http::codes::ProblemCode::MethodNotAllowed.as_str(),
            "this resource does not take this method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            crate::http::codes::ProblemCode::PayloadTooLarge.as_str(),
            format!("the request body is over {MAX_BODY} bytes"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (crate::http::codes::ProblemCode::UnsupportedMediaType.as_str(), "unsupported content type".to_string())
        }
        s if s.is_server_error() => {
            (crate::http::codes::ProblemCode::Internal.as_str(), "internal error; it has been logged".to_string())
        }
        _ => (crate::http::codes::ProblemCode::BadRequest.as_str(), "the request is not valid".to_string()),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut problem = ApiError::new(status, code, detail);
    if status.is_server_error() {
        problem.internal = text.ok();
    }
    let mut out = problem.into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}
