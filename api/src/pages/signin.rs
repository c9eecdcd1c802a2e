//! Sign-in with a bearer token; the session cookie holds a random id, never the token.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use serde_json::json;

use civicflow_engine::store::PrincipalRecord;

use crate::http::auth::{token_hash, Principal};
use crate::http::limits::PeerIp;

use super::{cookie, field, random_hex, same, Pages, PRESESSION_COOKIE, SESSION_COOKIE};

/// The longest token looked up.
const MAX_TOKEN_LEN: usize = 256;

pub async fn page(State(pages): State<Pages>, headers: HeaderMap) -> Response {
    form(&pages, &headers, StatusCode::OK, false)
}

fn form(pages: &Pages, headers: &HeaderMap, status: StatusCode, failed: bool) -> Response {
    let nonce = match random_hex(32) {
        Ok(n) => n,
        Err(e) => return pages.api_error(headers, e),
    };
    let mut r = pages.render_status(headers, status, "signin", None, json!({ "nonce": nonce, "failed": failed }));
    if failed {
        super::mark_problem(
            &mut r,
            crate::http::codes::ProblemCode::AuthInvalid.as_str(),
            "sign-in with a token that is not valid",
        );
    }
    let cookie = format!("{PRESESSION_COOKIE}={nonce}; Path=/signin; Secure; HttpOnly; SameSite=Strict; Max-Age=3600");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn submit(
    State(pages): State<Pages>,
    peer: Option<Extension<PeerIp>>,
    headers: HeaderMap,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let given = field(&f, "csrf").unwrap_or_default();
    let expected = cookie(&headers, PRESESSION_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(given.as_bytes(), expected.as_bytes()) {
        return pages.error(
            &headers,
            StatusCode::FORBIDDEN,
            crate::http::codes::ProblemCode::Csrf.as_str(),
            "csrf_failed",
            None,
        );
    }
    // Issue 9.3: failed sign-ins count against the address; past the limit, 429 and a wait.
    let failed = |pages: &Pages, headers: &HeaderMap| match peer
        .as_ref()
        .and_then(|Extension(PeerIp(ip))| pages.app.limiter.failed_auth(*ip))
    {
        Some(limited) => pages.api_error(headers, limited),
        None => form(pages, headers, StatusCode::UNAUTHORIZED, true),
    };
    let token = field(&f, "token").unwrap_or_default().trim().to_string();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return failed(&pages, &headers);
    }
    let principal: PrincipalRecord = match pages.app.store.principal_by_token_hash(&token_hash(&token)).await {
        Ok(Some(p)) => p,
        Ok(None) => return failed(&pages, &headers),
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let session = match pages.new_session(Principal::from(principal), token_hash(&token)).await {
        Ok(s) => s,
        Err(e) => return pages.api_error(&headers, e),
    };
    let mut r = Redirect::to("/inbox").into_response();
    let cookie = format!("{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=28800", session.id);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{PRESESSION_COOKIE}=; Path=/signin; Max-Age=0")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn signout(State(pages): State<Pages>, headers: HeaderMap, Form(f): Form<Vec<(String, String)>>) -> Response {
    let session = match pages.require_post(&headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    pages.drop_session(&session.id).await;
    let mut r = Redirect::to("/signin").into_response();
    if let Ok(v) =
        HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
