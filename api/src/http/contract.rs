//! What every operation answers besides its own responses, written into the OpenAPI document
//! once instead of on each handler (issue 9.7: the contract is the behaviour, checked by
//! schemathesis in `tests/it/contract.rs`).
//!
//! - Every operation may be refused by the rate limits (429 `RATE_LIMITED`, `Retry-After`), and
//!   by a busy or unreachable store or a full server (503).
//! - Every operation that takes a parameter or a body may answer 422 naming what it refuses
//!   ([`super::extract`]: a NUL character, a malformed number or instant, a bad
//!   `Idempotency-Key`).
//! - No text the API takes may contain a NUL character (U+0000): PostgreSQL cannot store one, so
//!   both stores refuse it alike. Every free string in a parameter or a request body says so with
//!   a `pattern`.
//! - `Idempotency-Key` is 1 to [`super::extract::MAX_KEY_LEN`] visible ASCII characters.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::codes::ProblemCode;
use super::extract::MAX_KEY_LEN;

/// A string without U+0000 (ECMA-262 regular expression, as JSON Schema reads it).
pub const NO_NUL: &str = "^[^\\u0000]*$";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The document served at `/openapi.json`: the handlers' document with the shared answers and
/// constraints added.
pub fn document(openapi: &utoipa::openapi::OpenApi) -> Value {
    complete(serde_json::to_value(openapi).unwrap_or_else(|_| json!({})))
}

/// [`document`] on the document as JSON.
fn complete(mut doc: Value) -> Value {
    let mut requested = BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                    operation(op);
                    if let Some(body) = op.get("requestBody") {
                        refs(body, &mut requested);
                    }
                }
            }
        }
    }
    // The schemas requests carry, and those they name, refuse NUL; answers may quote a refused
    // request's words, so their schemas are left as they are.
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        let mut todo: Vec<String> = requested.iter().cloned().collect();
        while let Some(name) = todo.pop() {
            if let Some(schema) = schemas.get(&name) {
                let mut more = BTreeSet::new();
                refs(schema, &mut more);
                for m in more {
                    if requested.insert(m.clone()) {
                        todo.push(m);
                    }
                }
            }
        }
        for name in &requested {
            if let Some(schema) = schemas.get_mut(name) {
                forbid_nul(schema);
            }
        }
    }
    doc
}

/// The component schemas `value` names with `$ref`.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) =
                map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.insert(name.to_string());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn operation(op: &mut Map<String, Value>) {
    let takes_input = op.get("requestBody").is_some()
        || op.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            let header = p.get("in").and_then(Value::as_str) == Some("header");
            let key = p.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case("Idempotency-Key"));
            if let Some(schema) = p.get_mut("schema") {
                if header && key {
                    *schema = json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_KEY_LEN,
                        "pattern": format!("^[!-~]{{1,{MAX_KEY_LEN}}}$"),
                    });
                } else {
                    forbid_nul(schema);
                }
            }
        }
    }
    if let Some(content) = op.get_mut("requestBody").and_then(|b| b.get_mut("content")).and_then(Value::as_object_mut) {
        for media in content.values_mut() {
            if let Some(schema) = media.get_mut("schema") {
                forbid_nul(schema);
            }
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    if takes_input {
        responses.entry("422").or_insert_with(|| {
            problem("A parameter, header or body the server refuses (a NUL character, a number or instant out of range, a bad `Idempotency-Key`); `detail` names it", None)
        });
    }
    responses.entry("429").or_insert_with(|| {
        problem(
            &format!("`{}`: {}", ProblemCode::RateLimited.as_str(), ProblemCode::RateLimited.explain().1),
            Some("Seconds to wait before trying again"),
        )
    });
    responses.entry("503").or_insert_with(|| {
        problem(
            "The store is busy or unreachable, or the server serves as many connections as it may; try again after `Retry-After` seconds",
            Some("Seconds to wait before trying again"),
        )
    });
}

/// A problem+json response; with `retry`, a `Retry-After` header.
fn problem(description: &str, retry: Option<&str>) -> Value {
    let mut r = json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    if let Some(retry) = retry {
        r["headers"] = json!({"Retry-After": {"description": retry, "schema": {"type": "integer", "minimum": 0}}});
    }
    r
}

/// Adds [`NO_NUL`] to every string schema in `schema` that has no format, enumeration or
/// pattern of its own.
fn forbid_nul(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            if is_string && !["format", "enum", "pattern", "const"].iter().any(|k| map.contains_key(*k)) {
                map.insert("pattern".into(), Value::String(NO_NUL.into()));
            }
            for v in map.values_mut() {
                forbid_nul(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_refuse_nul_and_every_operation_documents_the_shared_answers() {
        let doc = json!({
            "paths": {"/v1/x/{id}": {"post": {
                "parameters": [
                    {"name": "id", "in": "path", "schema": {"type": "string"}},
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": ["string", "null"]}},
                    {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                ],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/B"}}}},
                "responses": {"200": {"description": "ok"}, "422": {"description": "mine"}},
            }}, "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}}},
            "components": {"schemas": {
                "B": {"type": "object", "properties": {
                    "name": {"type": "string"}, "kind": {"type": "string", "enum": ["a"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "inner": {"$ref": "#/components/schemas/C"},
                }},
                "C": {"type": "object", "properties": {"note": {"type": "string"}}},
                "Problem": {"type": "object", "properties": {"detail": {"type": "string"}}},
            }},
        });
        let out = complete(doc);
        let op = &out["paths"]["/v1/x/{id}"]["post"];
        assert_eq!(op["parameters"][0]["schema"]["pattern"], NO_NUL);
        assert_eq!(op["parameters"][1]["schema"]["pattern"], "^[!-~]{1,200}$");
        assert_eq!(op["parameters"][1]["schema"]["maxLength"], 200);
        assert!(op["parameters"][2]["schema"].get("pattern").is_none(), "a date-time has its own format");
        assert_eq!(op["responses"]["422"]["description"], "mine", "a handler's own 422 is kept");
        assert_eq!(op["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"], "integer");
        assert!(op["responses"]["503"].is_object());
        let health = &out["paths"]["/healthz"]["get"]["responses"];
        assert!(health.get("422").is_none(), "no input, no 422");
        assert!(health["429"].is_object());
        let b = &out["components"]["schemas"]["B"]["properties"];
        assert_eq!(b["name"]["pattern"], NO_NUL);
        assert_eq!(b["tags"]["items"]["pattern"], NO_NUL);
        assert!(b["kind"].get("pattern").is_none());
        let schemas = &out["components"]["schemas"];
        assert_eq!(schemas["C"]["properties"]["note"]["pattern"], NO_NUL, "named by a request's schema");
        assert!(schemas["Problem"]["properties"]["detail"].get("pattern").is_none(), "an answer may quote input");
    }
}
