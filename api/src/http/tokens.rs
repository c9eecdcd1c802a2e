//! Tokens through the API (issue 9.4), for the admin: list them (never their text), create one
//! with an expiry, revoke a principal's tokens (all, or one by its id). A revoked or expired
//! token is refused at once (401), and the web sessions made from it end with it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_engine::store::TokenRecord;

use super::auth::{create_token_until, Caller, TokenError};
use super::extract::{AppPath, AppQuery, Body};
use super::problem::{ApiError, Problem};
use super::AppState;

/// A token as listed: its id is the first 12 hex digits of its SHA-256.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub principal: String,
    pub office: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// `null`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        TokenView {
            id: t.id,
            principal: t.principal,
            office: t.office,
            roles: t.roles,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// A token to create: for a principal (created, or its office and roles replaced; its other
/// tokens then carry the new roles, and its web sessions end).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schema(min_length = 1)]
    pub name: String,
    #[schema(min_length = 1)]
    pub office: String,
    #[schema(min_items = 1)]
    pub roles: Vec<String>,
    /// When it stops working (RFC 3339, in the future); absent: never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The new token: shown once, only its hash is kept.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub principal: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a revocation did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub principal: String,
    pub revoked: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Only the token with this id (12 hex digits); absent: every token of the principal.
    #[param(pattern = "^[0-9a-f]{12}$")]
    pub id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/tokens",
    tag = "admin",
    responses(
        (status = 200, description = "Every token, by principal", body = [TokenView]),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_tokens(State(state): State<AppState>, Caller(p): Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    p.require_admin("listing tokens")?;
    Ok(Json(state.store.list_tokens().await?.into_iter().map(TokenView::from).collect()))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    tag = "admin",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the token is shown this once", body = CreatedToken),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An empty name, office or role list, or an expiry not in the future", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    body: Body,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    p.require_admin("creating tokens")?;
    let request: CreateToken = body.json()?;
    let (name, office) = (request.name.trim(), request.office.trim());
    if name.is_empty() || office.is_empty() || request.roles.iter().all(|r| r.trim().is_empty()) {
        return Err(ApiError::invalid("`name`, `office` and at least one of `roles` are required"));
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::invalid("`expires_at` must be in the future"));
    }
    let roles: Vec<String> = request.roles.iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
    let token = create_token_until(state.store.as_ref(), name, office, &roles, request.expires_at).await.map_err(
        |e| match e {
            TokenError::Store(s) => ApiError::from(s),
            other => ApiError::internal(other.to_string()),
        },
    )?;
    // Its roles or office may have been replaced: its other tokens are read again.
    state.tokens.forget_principal(name);
    Ok((StatusCode::CREATED, Json(CreatedToken { token, principal: name.to_string(), expires_at: request.expires_at })))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tokens/{principal}",
    tag = "admin",
    params(("principal" = String, Path, description = "The principal's name"), RevokeQuery),
    responses(
        (status = 200, description = "Revoked; refused from now on, web sessions ended", body = Revoked),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An id that is not 12 hex digits", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(p): Caller,
    AppPath(principal): AppPath<String>,
    AppQuery(q): AppQuery<RevokeQuery>,
) -> Result<Json<Revoked>, ApiError> {
    p.require_admin("revoking tokens")?;
    let revoked = state.store.revoke_tokens(&principal, q.id.as_deref()).await.map_err(|e| match e {
        civicflow_engine::store::StoreError::Invalid(m) => ApiError::invalid(m),
        other => other.into(),
    })?;
    state.tokens.forget_principal(&principal);
    if revoked == 0 {
        let what = match &q.id {
            Some(id) => format!("{principal}/{id}"),
            None => principal.clone(),
        };
        return Err(ApiError::not_found("token of", &what));
    }
    Ok(Json(Revoked { principal, revoked }))
}
