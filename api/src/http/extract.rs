//! Extractors with our rejections (problems, never axum's plain text): a POST body with the hash
//! that idempotency compares, JSON and query parsing, the `Idempotency-Key` header, and the
//! guard that answers 409 while a request with the same key is still in flight.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use civicflow_engine::runtime::Idempotency;
use civicflow_engine::store::{IdempotencyRecord, StoreError};

use super::problem::ApiError;
use super::AppState;

/// The header a client names a retryable request with.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header set on a response replayed from an idempotency key.
pub const REPLAYED: &str = "idempotent-replayed";
/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 200;

/// A request body and the SHA-256 of (method, path, body): what makes two requests "the same".
pub struct Body {
    pub bytes: Bytes,
    pub hash: String,
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut hasher = Sha256::new();
        hasher.update(request.method().as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(request.uri().path().as_bytes());
        hasher.update(b"\n");
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    crate::http::codes::ProblemCode::PayloadTooLarge.as_str(),
                    "the request body is too large",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    crate::http::codes::ProblemCode::BadRequest.as_str(),
                    rejection.body_text(),
                )
            }
        })?;
        hasher.update(&bytes);
        Ok(Body { bytes, hash: hex::encode(hasher.finalize()) })
    }
}

impl Body {
    /// The body as JSON of type `T` (422 `INVALID_REQUEST` with serde's words otherwise). A
    /// string holding U+0000 is refused with its place named (`/params/姓名`): no store keeps it
    /// (PostgreSQL's text cannot), so it is bad input on every store alike.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        // JSON can carry NUL only as the escape `\u0000`; look closer only then.
        if self.bytes.windows(6).any(|w| w == b"\\u0000") {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&self.bytes) {
                if let Some(at) = nul_at(&value, String::new()) {
                    return Err(ApiError::invalid(format!(
                        "`{}` contains a NUL character (U+0000)",
                        at.escape_debug()
                    )));
                }
            }
        }
        serde_json::from_slice(&self.bytes).map_err(|e| ApiError::invalid(format!("the body is not valid: {e}")))
    }

    /// The body as UTF-8 text, without NUL characters.
    pub fn text(&self) -> Result<&str, ApiError> {
        let text = std::str::from_utf8(&self.bytes).map_err(|_| ApiError::invalid("the body is not UTF-8 text"))?;
        match text.find('\0') {
            Some(at) => {
                let line = text[..at].matches('\n').count() + 1;
                Err(ApiError::invalid(format!("the body contains a NUL character (U+0000) on line {line}")))
            }
            None => Ok(text),
        }
    }
}

/// The JSON pointer of the first string or key holding U+0000, if any.
pub fn nul_at(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value as J;
    // Iterative: a body nested thousands deep must not overflow the stack here either.
    let mut stack = vec![(value, at)];
    while let Some((v, at)) = stack.pop() {
        match v {
            J::String(s) if s.contains('\0') => return Some(if at.is_empty() { "/".into() } else { at }),
            J::Array(items) => stack.extend(items.iter().enumerate().map(|(i, x)| (x, format!("{at}/{i}")))),
            J::Object(map) => {
                for (k, x) in map {
                    let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    if k.contains('\0') {
                        return Some(here);
                    }
                    stack.push((x, here));
                }
            }
            _ => {}
        }
    }
    None
}

/// Refuses a percent-encoded NUL (`%00`) in the path or in a query parameter, naming it.
fn no_nul(parts: &Parts, in_query: bool) -> Result<(), ApiError> {
    if in_query {
        for pair in parts.uri.query().unwrap_or("").split('&') {
            if pair.contains("%00") {
                let name = pair.split('=').next().unwrap_or(pair);
                return Err(ApiError::invalid(format!("query parameter `{name}` contains a NUL character (U+0000)")));
            }
        }
    } else if parts.uri.path().contains("%00") {
        return Err(ApiError::invalid("the path contains a NUL character (U+0000)"));
    }
    Ok(())
}

/// Query parameters with a 422 problem when they do not parse.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        no_nul(parts, true)?;
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| AppQuery(q))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// Path parameters with a 422 problem when they do not parse.
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        no_nul(parts, false)?;
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| AppPath(p))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// The `Idempotency-Key` header, if any: 1 to 200 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else { return Ok(IdempotencyKey(None)) };
        let bad = || {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::http::codes::ProblemCode::InvalidIdempotencyKey.as_str(),
                format!("`Idempotency-Key` must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        };
        let text = value.to_str().map_err(|_| bad())?;
        if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        Ok(IdempotencyKey(Some(text.to_string())))
    }
}

impl IdempotencyKey {
    /// The runtime's idempotency for this key and body.
    pub fn with(&self, body: &Body) -> Option<Idempotency> {
        self.0.as_ref().map(|key| Idempotency { key: key.clone(), request_hash: body.hash.clone() })
    }
}

/// The keys of requests being handled, per principal.
pub type InFlightSet = Arc<Mutex<HashSet<(String, String)>>>;

/// Held while a request with an idempotency key runs; a second request with the same key meanwhile
/// is 409 `IDEMPOTENCY_IN_FLIGHT`. Released when dropped.
#[derive(Debug)]
pub struct InFlight {
    set: InFlightSet,
    entry: Option<(String, String)>,
}

impl InFlight {
    pub fn begin(set: &InFlightSet, principal: &str, key: &IdempotencyKey) -> Result<InFlight, ApiError> {
        let Some(key) = &key.0 else { return Ok(InFlight { set: set.clone(), entry: None }) };
        let entry = (principal.to_string(), key.clone());
        let mut keys = set.lock().map_err(|_| ApiError::internal("the in-flight set is poisoned"))?;
        if !keys.insert(entry.clone()) {
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                crate::http::codes::ProblemCode::IdempotencyInFlight.as_str(),
                format!("a request with idempotency key `{key}` is still being handled; retry when it has answered"),
            );
            e.retry_after = Some(1);
            return Err(e);
        }
        Ok(InFlight { set: set.clone(), entry: Some(entry) })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let (Some(entry), Ok(mut keys)) = (self.entry.take(), self.set.lock()) {
            keys.remove(&entry);
        }
    }
}

/// A response remembered under an idempotency key for an endpoint that commits to no instance
/// (publishing a policy, moving the clock).
#[derive(Serialize, Deserialize)]
struct Remembered {
    status: u16,
    body: serde_json::Value,
}

/// The remembered response for this key, or 422 if the key was used for another request.
pub async fn replay(
    state: &AppState,
    principal: &str,
    key: &IdempotencyKey,
    body: &Body,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = &key.0 else { return Ok(None) };
    let Some(record) = state.store.get_idempotency(principal, key).await? else { return Ok(None) };
    if record.request_hash != body.hash {
        return Err(key_reused(key));
    }
    let remembered: Remembered = serde_json::from_value(record.response)
        .map_err(|e| ApiError::internal(format!("remembered response of key `{key}`: {e}")))?;
    let status = StatusCode::from_u16(remembered.status).unwrap_or(StatusCode::OK);
    Ok(Some(replayed((status, axum::Json(remembered.body)).into_response())))
}

/// Remembers a response under its key (a concurrent twin that stored first wins; then this is a
/// replay of it, and the same answer).
pub async fn remember(
    state: &AppState,
    principal: &str,
    key: &IdempotencyKey,
    body: &Body,
    status: StatusCode,
    response: &serde_json::Value,
) -> Result<(), ApiError> {
    let Some(key) = &key.0 else { return Ok(()) };
    let record = IdempotencyRecord {
        principal: principal.to_string(),
        key: key.clone(),
        request_hash: body.hash.clone(),
        response: serde_json::to_value(Remembered { status: status.as_u16(), body: response.clone() })
            .map_err(|e| ApiError::internal(e.to_string()))?,
    };
    match state.store.put_idempotency(record).await {
        Ok(()) | Err(StoreError::DuplicateKey { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// 422 `IDEMPOTENCY_KEY_REUSED`.
pub fn key_reused(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        crate::http::codes::ProblemCode::IdempotencyKeyReused.as_str(),
        format!("idempotency key `{key}` was used for a different request"),
    )
}

/// Marks a response as a replay.
pub fn replayed(mut response: Response) -> Response {
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_flight_is_409_until_its_request_answers() {
        let set = InFlightSet::default();
        let key = IdempotencyKey(Some("k".into()));
        let first = InFlight::begin(&set, "王主任", &key);
        assert!(first.is_ok());
        let second = InFlight::begin(&set, "王主任", &key);
        assert!(
            matches!(&second, Err(e) if e.status == StatusCode::CONFLICT && e.code() == crate::http::codes::ProblemCode::IdempotencyInFlight.as_str()),
            "{second:?}"
        );
        // Keys are per principal; no key, no guard.
        assert!(InFlight::begin(&set, "李书记", &key).is_ok());
        assert!(InFlight::begin(&set, "王主任", &IdempotencyKey(None)).is_ok());
        drop(first);
        assert!(InFlight::begin(&set, "王主任", &key).is_ok());
    }
}
