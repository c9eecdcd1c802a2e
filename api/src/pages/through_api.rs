//! A form on an instance's page sent through the API's own handler (the next cycle, 挂起/激活):
//! the request body as the API reads it, and the page's answer — back to the instance page, or
//! the page again with the refusal's words and what was entered.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::http::extract::Body;
use crate::http::problem::{ApiError, Problem};

use super::{enc, Pages, Session};

/// `request` as the body of `POST path`, hashed as the API hashes a request (method, path, body)
/// for its idempotency records.
pub(super) fn body(path: &str, request: &Value) -> Body {
    let bytes = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
    let hash = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("POST\n{path}\n").as_bytes());
        h.update(&bytes);
        hex::encode(h.finalize())
    };
    Body { bytes, hash }
}

/// The page's answer to the handler's: the instance page on success; on a refusal, the instance
/// page again with the problem and what was entered (`f`).
pub(super) async fn answer(
    pages: &Pages,
    headers: &HeaderMap,
    session: &Session,
    id: &str,
    f: &[(String, String)],
    result: Result<Response, ApiError>,
) -> Response {
    let (status, problem): (StatusCode, Problem) = match result {
        Ok(response) if response.status().is_success() => {
            return Redirect::to(&format!("/instances/{}", enc(id))).into_response();
        }
        Ok(response) => {
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            match serde_json::from_slice::<Problem>(&body) {
                Ok(p) => (status, p),
                Err(_) => {
                    let code = crate::http::codes::ProblemCode::Error.as_str();
                    return pages.error(headers, status, code, "error", None);
                }
            }
        }
        Err(e) if e.status.is_server_error() => return pages.api_error(headers, e),
        Err(e) => (e.status, e.problem),
    };
    super::instance::render(pages, headers, session, id, status, Some((&problem, f))).await
}
