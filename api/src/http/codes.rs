//! The problem codes of the API's own refusals: one registry, as `diag::Code` is for the
//! compiler's. A problem's `code` is one of these, a core refusal's code (`F…`, from
//! `engine::core::Refusal::code`), or a store error's (`STORE…`). Each has its page in
//! `docs/problems.md`, generated from [`ProblemCode::ALL`] and checked by a test.

/// A problem code of the API layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemCode {
    AuthMissing,
    AuthInvalid,
    AdminRequired,
    InvalidRequest,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    Internal,
    PolicyInvalid,
    IdempotencyKeyReused,
    IdempotencyInFlight,
    InvalidIdempotencyKey,
    InstanceExists,
    Busy,
    RoleNotHeld,
    NotARoleOfPolicy,
    ClockNotSimulated,
    ClockBackwards,
    RateLimited,
    StreamsLimited,
    TooManyConnections,
    Csrf,
    Error,
}

impl ProblemCode {
    /// Every code, in the order of `docs/problems.md`.
    pub const ALL: &'static [ProblemCode] = &[
        ProblemCode::AuthMissing,
        ProblemCode::AuthInvalid,
        ProblemCode::AdminRequired,
        ProblemCode::InvalidRequest,
        ProblemCode::BadRequest,
        ProblemCode::NotFound,
        ProblemCode::MethodNotAllowed,
        ProblemCode::UnsupportedMediaType,
        ProblemCode::PayloadTooLarge,
        ProblemCode::Internal,
        ProblemCode::PolicyInvalid,
        ProblemCode::IdempotencyKeyReused,
        ProblemCode::IdempotencyInFlight,
        ProblemCode::InvalidIdempotencyKey,
        ProblemCode::InstanceExists,
        ProblemCode::Busy,
        ProblemCode::RoleNotHeld,
        ProblemCode::NotARoleOfPolicy,
        ProblemCode::ClockNotSimulated,
        ProblemCode::ClockBackwards,
        ProblemCode::RateLimited,
        ProblemCode::StreamsLimited,
        ProblemCode::TooManyConnections,
        ProblemCode::Csrf,
        ProblemCode::Error,
    ];

    /// The code as it appears in a problem (`"code"`, and `urn:civicflow:problem:CODE`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemCode::AuthMissing => "AUTH_MISSING",
            ProblemCode::AuthInvalid => "AUTH_INVALID",
            ProblemCode::AdminRequired => "ADMIN_REQUIRED",
            ProblemCode::InvalidRequest => "INVALID_REQUEST",
            ProblemCode::BadRequest => "BAD_REQUEST",
            ProblemCode::NotFound => "NOT_FOUND",
            ProblemCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ProblemCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ProblemCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ProblemCode::Internal => "INTERNAL",
            ProblemCode::PolicyInvalid => "POLICY_INVALID",
            ProblemCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ProblemCode::IdempotencyInFlight => "IDEMPOTENCY_IN_FLIGHT",
            ProblemCode::InvalidIdempotencyKey => "INVALID_IDEMPOTENCY_KEY",
            ProblemCode::InstanceExists => "INSTANCE_EXISTS",
            ProblemCode::Busy => "BUSY",
            ProblemCode::RoleNotHeld => "ROLE_NOT_HELD",
            ProblemCode::NotARoleOfPolicy => "NOT_A_ROLE_OF_POLICY",
            ProblemCode::ClockNotSimulated => "CLOCK_NOT_SIMULATED",
            ProblemCode::ClockBackwards => "CLOCK_BACKWARDS",
            ProblemCode::RateLimited => "RATE_LIMITED",
            ProblemCode::StreamsLimited => "STREAMS_LIMITED",
            ProblemCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            ProblemCode::Csrf => "CSRF",
            ProblemCode::Error => "ERROR",
        }
    }

    /// The HTTP status it comes with, and what it means and what to do, for its page.
    pub const fn explain(self) -> (u16, &'static str) {
        match self {
            ProblemCode::AuthMissing => (401, "The request has no `Authorization: Bearer <token>` header."),
            ProblemCode::AuthInvalid => (401, "The bearer token is not (or no longer) valid: unknown, revoked or expired. Ask the admin for a new one (`civicflow token create`)."),
            ProblemCode::AdminRequired => (403, "Publishing policies, moving the simulated clock, adding calendar years and managing tokens need the `admin` role."),
            ProblemCode::InvalidRequest => (422, "A body, path or query parameter that does not have the documented shape: the detail names the field (a NUL character, a number out of range, an unknown field …)."),
            ProblemCode::BadRequest => (400, "The request could not be read at all (a body that is not what its content type says)."),
            ProblemCode::NotFound => (404, "No such instance, policy, step, token or route."),
            ProblemCode::MethodNotAllowed => (405, "The resource exists but does not take this method."),
            ProblemCode::UnsupportedMediaType => (415, "The body's content type is not one the endpoint reads (JSON, or plain text for a policy)."),
            ProblemCode::PayloadTooLarge => (413, "The body is larger than 1 MiB."),
            ProblemCode::Internal => (500, "A fault of the server; it has been logged with its cause, which the answer never carries."),
            ProblemCode::PolicyInvalid => (422, "The policy does not compile: `diagnostics` lists each error with its code (`civicflow explain CODE`)."),
            ProblemCode::IdempotencyKeyReused => (422, "This `Idempotency-Key` was used by the same principal for a different request; use a new key."),
            ProblemCode::IdempotencyInFlight => (409, "A request with the same `Idempotency-Key` is being answered; retry after `Retry-After`."),
            ProblemCode::InvalidIdempotencyKey => (422, "An `Idempotency-Key` is 1 to 200 visible ASCII characters."),
            ProblemCode::InstanceExists => (409, "An instance with this id exists already."),
            ProblemCode::Busy => (409, "The instance kept changing under the request; retry after `Retry-After`."),
            ProblemCode::RoleNotHeld => (403, "The request names a role the principal does not hold."),
            ProblemCode::NotARoleOfPolicy => (403, "None of the principal's roles is a role of the policy."),
            ProblemCode::ClockNotSimulated => (409, "The server runs on the system clock; only a server started with `--simulated-clock` can move time."),
            ProblemCode::ClockBackwards => (422, "The simulated clock moves forward only."),
            ProblemCode::RateLimited => (429, "Too many requests from this address or with this principal's token, or too many failed sign-ins from this address; wait `Retry-After` seconds."),
            ProblemCode::StreamsLimited => (429, "Too many event streams open for this principal, or on the server; close one first."),
            ProblemCode::TooManyConnections => (503, "The server serves as many connections as it may (`--max-connections`); the connection is closed; retry after `Retry-After`."),
            ProblemCode::Csrf => (403, "A page form without the session's CSRF token (an old page, or a forged form); load the page again."),
            ProblemCode::Error => (500, "A page could not be shown after a refusal; the refusal itself is in the instance's page."),
        }
    }
}

/// `docs/problems.md`, from [`ProblemCode::ALL`].
pub fn problems_doc() -> String {
    let mut out = String::from(
        "# Problem codes of the API\n\n<!-- generated from api/src/http/codes.rs by a test; do not edit by hand -->\n\n\
         Every error answer is `application/problem+json` with a `code`: one of the codes below, a \
         refusal of the core (`F…`, formerly `R…`: see docs/refusals.md; with the DOMAIN `rule` when the refusal names one), or a store \
         error (`STORE…`, see docs/store-errors.md).\n\n| code | status | meaning |\n|---|---|---|\n",
    );
    for code in ProblemCode::ALL {
        let (status, meaning) = code.explain();
        out.push_str(&format!("| `{}` | {status} | {meaning} |\n", code.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn every_code_is_listed_once_and_has_its_page() {
        let names: std::collections::BTreeSet<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ProblemCode::ALL.len(), "no code twice");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/problems.md");
        let expected = problems_doc();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/problems.md is out of date; run UPDATE_DOCS=1 cargo test -p civicflow --lib codes"
        );
    }
}
