//! Errors as `application/problem+json` (RFC 9457) with a stable `code`: one [`ApiError`] type,
//! converted from the engine's refusals and errors here, at the edge.
//!
//! Codes: the core's refusals keep theirs (`F001`…, the class decides the status: 403, 409,
//! 422); the API adds its own words (`AUTH_MISSING`, `IDEMPOTENCY_KEY_REUSED` …, listed on
//! [`ApiError`]'s constructors). Converting to a response is free of side effects: the
//! middleware in `http/mod.rs` logs every problem with the principal and counts it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_engine::core::{Refusal, RefusalClass};
use civicflow_engine::runtime::RuntimeError;
use civicflow_engine::store::StoreError;

use super::instances::InstanceView;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem report (RFC 9457) with civicflow's stable `code`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem kind: `urn:civicflow:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the status.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in the rule's words (for a refusal: the rule's message).
    pub detail: String,
    /// The stable code: `F006`, `AUTH_MISSING`, `POLICY_INVALID` …
    pub code: String,
    /// The DOMAIN.md rule a form rule names (`R2.4`), when its message starts with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The instance's current state, when an action came too late or too early (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<InstanceView>>,
    /// The compiler's diagnostics, when a policy does not compile (422, `POLICY_INVALID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub diagnostics: Option<Vec<serde_json::Value>>,
}

/// What the logging middleware learns about a problem response (a response extension).
#[derive(Clone, Debug)]
pub struct ProblemInfo {
    pub code: String,
    pub detail: String,
    /// An internal cause to log and never to send (a database error).
    pub internal: Option<String>,
}

/// An error of the API, rendered as a [`Problem`].
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub problem: Problem,
    pub internal: Option<String>,
    /// `Retry-After` seconds, for 409 busy and 503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError {
            status,
            problem: Problem {
                kind: format!("urn:civicflow:problem:{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_string(),
                status: status.as_u16(),
                rule: rule_of(&detail),
                detail,
                code: code.to_string(),
                state: None,
                diagnostics: None,
            },
            internal: None,
            retry_after: None,
        }
    }

    /// 401 `AUTH_MISSING`: no bearer token.
    pub fn auth_missing() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            crate::http::codes::ProblemCode::AuthMissing.as_str(),
            "this request needs `Authorization: Bearer <token>`",
        )
    }

    /// 401 `AUTH_INVALID`: a token that is not (or no longer) known.
    pub fn auth_invalid() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            crate::http::codes::ProblemCode::AuthInvalid.as_str(),
            "the bearer token is not valid",
        )
    }

    /// 403 `ADMIN_REQUIRED`.
    pub fn admin_required(what: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            crate::http::codes::ProblemCode::AdminRequired.as_str(),
            format!("{what} needs the `admin` role"),
        )
    }

    /// 422 `INVALID_REQUEST`: a body or parameter that does not have the documented shape.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::http::codes::ProblemCode::InvalidRequest.as_str(),
            detail,
        )
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            crate::http::codes::ProblemCode::NotFound.as_str(),
            format!("no {what} `{id}`"),
        )
    }

    /// 500 `INTERNAL`: the cause is logged, never sent.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::http::codes::ProblemCode::Internal.as_str(),
            "internal error; it has been logged",
        );
        e.internal = Some(cause.into());
        e
    }

    pub fn with_state(mut self, state: InstanceView) -> Self {
        self.problem.state = Some(Box::new(state));
        self
    }

    pub fn code(&self) -> &str {
        &self.problem.code
    }
}

/// A rule id such as `R2.4` at the start of a rule's message.
fn rule_of(detail: &str) -> Option<String> {
    // A refusal's message may start with the step (`step `x`: R2.4 …`): look at each word.
    detail.split([' ', ':']).find_map(|w| {
        let rest = w.strip_prefix('R')?;
        let (major, minor) = rest.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(major) && digits(minor)).then(|| w.to_string())
    })
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r.class() {
            RefusalClass::Forbidden => StatusCode::FORBIDDEN,
            RefusalClass::Conflict => StatusCode::CONFLICT,
            RefusalClass::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, r.code(), r.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::InstanceNotFound { id } => ApiError::not_found("instance", id),
            StoreError::PolicyNotFound { name, hash } => ApiError::not_found("policy", &format!("{name}@{hash}")),
            StoreError::InstanceExists { id } => ApiError::new(
                StatusCode::CONFLICT,
                crate::http::codes::ProblemCode::InstanceExists.as_str(),
                format!("instance `{id}` already exists"),
            ),
            StoreError::BadValue(detail) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::http::codes::ProblemCode::InvalidRequest.as_str(),
                format!("a value was refused by the database: {detail}"),
            ),
            StoreError::Unavailable(_) | StoreError::Transient(_) | StoreError::Closed => {
                let mut a = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string());
                a.internal = Some(format!("{e}: {:?}", std::error::Error::source(&e)));
                a.retry_after = Some(1);
                a
            }
            _ => {
                let mut a = ApiError::internal(format!("{} {e}: {:?}", e.code(), std::error::Error::source(&e)));
                a.problem.code = e.code().to_string();
                a.problem.kind = format!("urn:civicflow:problem:{}", e.code());
                a
            }
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Refused(r) => r.into(),
            RuntimeError::Invalid(d) => {
                let n = d.as_slice().len();
                let mut a = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    crate::http::codes::ProblemCode::PolicyInvalid.as_str(),
                    format!("the policy has {n} error{}", if n == 1 { "" } else { "s" }),
                );
                a.problem.rule = None;
                a
            }
            RuntimeError::NotFound { what, id } => ApiError::not_found(what, &id),
            RuntimeError::KeyReused { key } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::http::codes::ProblemCode::IdempotencyKeyReused.as_str(),
                format!("idempotency key `{key}` was used for a different request"),
            ),
            RuntimeError::Busy => {
                let mut a = ApiError::new(
                    StatusCode::CONFLICT,
                    crate::http::codes::ProblemCode::Busy.as_str(),
                    "the instance is busy; try again",
                );
                a.retry_after = Some(1);
                a
            }
            RuntimeError::Corrupt(m) => ApiError::internal(format!("CORRUPT {m}")),
            // Issue 12.3: a proof of a leaf or tree the log does not have (yet): not found.
            RuntimeError::OutOfRange(m) => {
                ApiError::new(StatusCode::NOT_FOUND, crate::http::codes::ProblemCode::NotFound.as_str(), m)
            }
            RuntimeError::Store(s) => s.into(),
            // A year's file that cannot be added (CAL003, CAL004, CAL006): 422 with its words.
            RuntimeError::Calendar(c) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, c.code(), c.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = ProblemInfo {
            code: self.problem.code.clone(),
            detail: self.problem.detail.clone(),
            internal: self.internal,
        };
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response.extensions_mut().insert(info);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_found_at_the_start_of_a_word() {
        assert_eq!(rule_of("step `制定工作方案`: R2.4 党组织委员职数不在职数范围内").as_deref(), Some("R2.4"));
        assert_eq!(rule_of("R2.14 quorum").as_deref(), Some("R2.14"));
        assert_eq!(rule_of("role `x` may not act on step `y`"), None);
        assert_eq!(rule_of("F006"), None);
    }

    #[test]
    fn refusal_classes_become_statuses() {
        let forbidden: ApiError = Refusal::NotEntitled { node: "a".into(), role: "b".into(), allowed: vec![] }.into();
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        assert_eq!(forbidden.code(), "F006");
        let conflict: ApiError = Refusal::StepNotOpen { node: "a".into(), status: "done".into() }.into();
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        let invalid: ApiError = Refusal::ReasonRequired { action: "reject".into() }.into();
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
