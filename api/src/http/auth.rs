//! Bearer tokens and principals.
//!
//! A token is 32 random bytes from the operating system (`getrandom`) written as `cf_` and 64
//! hex digits; the store keeps only its SHA-256 ([`token_hash`]), so a leaked database does not
//! leak a usable token. A principal belongs to an office and has roles; it acts on a step only
//! in a role the step names (the core refuses otherwise, F006), and publishing policies and
//! moving the simulated clock need the `admin` role.
//!
//! [`require_principal`] is the middleware of every `/v1` route: it resolves the token, puts
//! the [`Principal`] in the request's extensions for the [`Caller`] extractor, and its name
//! (never the token) in the response's, for the log.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use civicflow_engine::store::{PrincipalRecord, Store, StoreError};

use super::problem::ApiError;
use super::AppState;

/// The role that may publish policies and move the simulated clock.
pub const ADMIN_ROLE: &str = "admin";

/// The longest token accepted for a lookup (ours are 67 characters).
const MAX_TOKEN_LEN: usize = 256;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub office: String,
    pub roles: Vec<String>,
}

/// The principal's name in a response's extensions, for the log.
#[derive(Clone, Debug)]
pub struct PrincipalName(pub String);

/// Extracts the principal that [`require_principal`] authenticated.
pub struct Caller(pub Principal);

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }

    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::admin_required(what))
        }
    }
}

impl From<PrincipalRecord> for Principal {
    fn from(p: PrincipalRecord) -> Self {
        Principal { name: p.name, office: p.office, roles: p.roles }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().map(Caller).ok_or_else(ApiError::auth_missing)
    }
}

/// A new token: `cf_` and 64 hex digits of operating-system randomness (256 bits).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("cf_{}", hex::encode(bytes)))
}

/// What the store keeps of a token: its SHA-256 in lower-case hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for a principal (creating the principal, or replacing its office and roles)
/// and returns the token, which is not stored anywhere.
pub async fn create_token(store: &dyn Store, name: &str, office: &str, roles: &[String]) -> Result<String, TokenError> {
    create_token_until(store, name, office, roles, None).await
}

/// [`create_token`], for a token that stops working at `expires_at` (issue 9.4).
pub async fn create_token_until(
    store: &dyn Store,
    name: &str,
    office: &str,
    roles: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> Result<String, TokenError> {
    let token = new_token().map_err(|e| TokenError::Random(e.to_string()))?;
    let principal = PrincipalRecord {
        name: name.to_string(),
        office: office.to_string(),
        roles: roles.to_vec(),
        created_at: Utc::now(),
    };
    store.create_token(principal, &token_hash(&token), expires_at).await?;
    Ok(token)
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the operating system gave no randomness: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The middleware of the `/v1` routes: 401 without a valid bearer token.
pub async fn require_principal(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<super::limits::PeerIp>().map(|p| p.0);
    // A failed authentication counts against the address; past its limit the answer is 429.
    let refuse = |e: ApiError| match ip.and_then(|ip| state.limiter.failed_auth(ip)) {
        Some(limited) if e.status == axum::http::StatusCode::UNAUTHORIZED => limited.into_response(),
        _ => e.into_response(),
    };
    let token = match bearer(&request) {
        Ok(t) => t,
        Err(e) => return refuse(e),
    };
    let hash = token_hash(&token);
    let principal = match state.tokens.get(&hash) {
        Some(p) => Principal::from(p),
        None => match state.store.principal_by_token_hash(&hash).await {
            Ok(Some(p)) => {
                state.tokens.put(&hash, p.clone());
                Principal::from(p)
            }
            Ok(None) => return refuse(ApiError::auth_invalid()),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if let Err(e) = state.limiter.principal(&principal.name) {
        return e.into_response();
    }
    let name = principal.name.clone();
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(PrincipalName(name));
    response
}

fn bearer(request: &Request) -> Result<String, ApiError> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Err(ApiError::auth_missing());
    };
    let text = value.to_str().map_err(|_| ApiError::auth_invalid())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(ApiError::auth_invalid)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::auth_invalid());
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_as_sha256() {
        let (a, b) = (new_token().unwrap_or_default(), new_token().unwrap_or_default());
        assert!(!a.is_empty());
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        assert!(a.starts_with("cf_"));
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a[3..]));
        // SHA-256 of "abc".
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
