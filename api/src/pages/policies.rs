//! Policies: the list, and one policy's source with syntax highlighting (spans made here, on the
//! server), its diagnostics (the compiler's warnings, rendered as `civicflow check` prints them),
//! its versions, and its graph.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use civicflow_dsl::diag::Renderer;

use super::{enc, esc, local, Pages};

pub async fn list(State(pages): State<Pages>, headers: HeaderMap) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let all = match pages.app.store.list_policies().await {
        Ok(p) => p,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let tz = super::shanghai();
    let rows: Vec<Value> = all
        .iter()
        .map(|p| {
            json!({
                "name": p.name, "version": p.version_label, "hash": p.hash.get(..12).unwrap_or(&p.hash),
                "published": local(Some(p.published_at), tz), "href": format!("/policies/{}", enc(&p.name)),
            })
        })
        .collect();
    pages.render(&headers, "policies", Some(&session), json!({ "items": rows }))
}

#[derive(Deserialize)]
pub struct VersionQuery {
    pub hash: Option<String>,
}

pub async fn page(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let versions = match pages.app.store.policy_versions(&name).await {
        Ok(v) => v,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let chosen = match q.hash.as_deref() {
        Some(h) => versions.iter().find(|v| v.hash == h),
        None => versions.last(),
    };
    let Some(chosen) = chosen else {
        return pages.error(
            &headers,
            StatusCode::NOT_FOUND,
            crate::http::codes::ProblemCode::NotFound.as_str(),
            "not_found",
            Some(&name),
        );
    };
    let file = format!("{name}.cf");
    let renderer = Renderer::new(&file, &chosen.source);
    let (diagnostics, svg) = match civicflow_dsl::compile(&chosen.source) {
        Ok(c) => {
            let text = if c.warnings.is_empty() { String::new() } else { renderer.text(&c.warnings, false) };
            (text, super::graph::svg(&c.policy, &[], &[]))
        }
        Err(d) => (renderer.text(d.as_slice(), false), String::new()),
    };
    let tz = super::shanghai();
    let page = json!({
        "name": name,
        "version": chosen.version_label,
        "hash": chosen.hash,
        "source": highlight(&chosen.source),
        "diagnostics": diagnostics,
        "svg": svg,
        "versions": versions.iter().rev().map(|v| json!({
            "version": v.version_label, "hash": v.hash.get(..12).unwrap_or(&v.hash),
            "published": local(Some(v.published_at), tz),
            "href": format!("/policies/{}?hash={}", enc(&name), enc(&v.hash)),
            "current": v.hash == chosen.hash,
        })).collect::<Vec<_>>(),
    });
    pages.render(&headers, "policy", Some(&session), page)
}

/// `POST /policies/check`: a draft's diagnostics (rendered as `civicflow check` prints them) and
/// its highlighted source, without publishing anything.
pub async fn check(State(pages): State<Pages>, headers: HeaderMap, Form(f): Form<Vec<(String, String)>>) -> Response {
    let session = match pages.require_post(&headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let source = super::field(&f, "source").unwrap_or_default().replace("\r\n", "\n");
    let renderer = Renderer::new("draft.cf", &source);
    let (ok, diagnostics, svg) = match civicflow_dsl::compile(&source) {
        Ok(c) => (true, renderer.text(&c.warnings, false), super::graph::svg(&c.policy, &[], &[])),
        Err(d) => (false, renderer.text(d.as_slice(), false), String::new()),
    };
    let page =
        json!({ "ok": ok, "diagnostics": diagnostics, "svg": svg, "source": highlight(&source), "text": source });
    let status = if ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let mut r = pages.render_status(&headers, status, "check", Some(&session), page);
    if !ok {
        super::mark_problem(
            &mut r,
            crate::http::codes::ProblemCode::PolicyInvalid.as_str(),
            "a draft checked on the policies page has errors",
        );
    }
    r
}

/// The language's keywords (highlighted as such).
const KEYWORDS: &[&str] = &[
    "policy",
    "procedure",
    "title",
    "version",
    "timezone",
    "calendar",
    "param",
    "let",
    "role",
    "phase",
    "step",
    "window",
    "after",
    "by",
    "due",
    "form",
    "require",
    "else",
    "match",
    "call",
    "with",
    "on",
    "breach",
    "escalate",
    "quorum",
    "elect",
    "eligible",
    "seats",
    "min",
    "days",
    "workdays",
    "template",
    "rule",
    "when",
    "for",
    "in",
    "if",
    "then",
    "and",
    "or",
    "not",
    "true",
    "false",
    "rejected",
    "objection",
    "return",
    "remind",
    "before",
    "notify",
    "roll",
    "every",
    "years",
    "months",
    "sequence",
    "all",
    "any",
    "of",
    "task",
    "approval",
    "filing",
    "consultation",
    "publicity",
    "vote",
    "meeting",
    "int",
    "decimal",
    "text",
    "date",
    "bool",
    "list",
    "record",
    "ceil",
    "floor",
    "len",
];

/// The source as HTML with `<span class>` around comments, strings, numbers and keywords.
pub fn highlight(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() * 2);
    let mut i = 0;
    let span = |out: &mut String, class: &str, text: &str| {
        out.push_str(&format!("<span class=\"{class}\">{}</span>", esc(text)));
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
            span(&mut out, "c", &chars[i..end].iter().collect::<String>());
            i = end;
        } else if c == '"' {
            let triple = chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'"');
            let end = if triple {
                let mut j = i + 3;
                while j + 2 < chars.len() && !(chars[j] == '"' && chars[j + 1] == '"' && chars[j + 2] == '"') {
                    j += 1;
                }
                (j + 3).min(chars.len())
            } else {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                (j + 1).min(chars.len())
            };
            span(&mut out, "s", &chars[i..end].iter().collect::<String>());
            i = end;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '-' || chars[j] == '.') {
                j += 1;
            }
            span(&mut out, "n", &chars[i..j].iter().collect::<String>());
            i = j;
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if KEYWORDS.contains(&word.as_str()) {
                span(&mut out, "k", &word);
            } else {
                out.push_str(&esc(&word));
            }
            i = j;
        } else {
            out.push_str(&esc(&c.to_string()));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlighting_marks_and_escapes() {
        let h = highlight("step 审批: approval { by 街道 } // <注释>\nlet x = \"a<b\" 12");
        assert!(h.contains("<span class=\"k\">step</span>"));
        assert!(h.contains("<span class=\"c\">// &lt;注释&gt;</span>"));
        assert!(h.contains("<span class=\"s\">&quot;a&lt;b&quot;</span>"));
        assert!(h.contains("<span class=\"n\">12</span>"));
        assert!(h.contains("审批"));
    }
}
