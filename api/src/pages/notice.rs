//! Notices: a publicity notice (公示) or a certificate, rendered from the policy's template with
//! the instance's data — its parameters and derived values, every recorded form field, and for a
//! vote the elected (`当选人名单`). One rendering per step that names a template.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use handlebars::Handlebars;
use serde_json::{json, Value};

use civicflow_dsl::value::to_json;

use super::Pages;

pub async fn page(State(pages): State<Pages>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (record, mut core) = match pages.app.runtime.load(&id).await {
        Ok(x) => x,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let program = match pages.app.runtime.program(&record.policy_name, Some(&record.policy_hash)).await {
        Ok(p) => p,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    // R6.2: a template's personal fields render as [个人信息] unless bound office or oversight.
    if crate::http::personal::must_redact(&program, &core, &session.principal) {
        civicflow_engine::core::personal::redact_state(&program, &mut core);
    }
    let mut base = serde_json::Map::new();
    for (k, v) in core.params.iter().chain(core.values.iter()) {
        base.insert(k.clone(), to_json(v));
    }
    for n in core.nodes.values() {
        for (k, v) in n.form.iter().flatten() {
            base.insert(k.clone(), to_json(v));
        }
    }
    let hbs = notice_registry();
    let mut notices: Vec<Value> = Vec::new();
    for (key, n) in &core.nodes {
        let Some(def) = program.node(&n.def) else { continue };
        let Some(name) = def.template.as_deref() else { continue };
        let Some(t) = program.policy.templates.iter().find(|t| t.name == name) else { continue };
        let mut data = base.clone();
        for (k, v) in n.form.iter().flatten() {
            data.insert(k.clone(), to_json(v));
        }
        if let Some(v) = &n.vote {
            data.insert("当选人名单".into(), json!(v.elected));
        }
        data.insert("instance".into(), json!(id));
        let text = render_notice(&hbs, &t.source, &Value::Object(data));
        notices.push(json!({
            "step": key, "template": name, "status": crate::http::instances::word(&n.status), "text": text.trim(),
        }));
    }
    let page = json!({
        "id": id,
        "instance_href": format!("/instances/{}", super::enc(&id)),
        "notices": notices,
    });
    pages.render(&headers, "notice", Some(&session), page)
}

/// At most this much text per notice (a `{{#each}}` over a long list may legitimately be long;
/// a notice of a megabyte is not one).
pub const MAX_NOTICE_BYTES: usize = 1 << 20;

/// The registry notices render with: plain text, no escaping (the page template escapes).
pub fn notice_registry() -> Handlebars<'static> {
    let mut hbs = Handlebars::new();
    hbs.register_escape_fn(handlebars::no_escape);
    hbs
}

/// Renders a policy's notice template. A stored template is judged again before rendering
/// (`civicflow_dsl::template::check`: a policy stored before that check existed, or by a
/// bypassed compiler, must not take the server down), and the output stops at
/// [`MAX_NOTICE_BYTES`]. What cannot be rendered is shown in parentheses, never a crash.
pub fn render_notice(hbs: &Handlebars<'static>, source: &str, data: &Value) -> String {
    if let Err(problem) = civicflow_dsl::template::check(source) {
        return format!("(the template cannot be rendered: {problem})");
    }
    let mut out = Capped { bytes: Vec::new() };
    match hbs.render_template_to_write(source, data, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out.bytes).into_owned(),
        Err(_) if out.bytes.len() >= MAX_NOTICE_BYTES => {
            format!("(the notice is longer than {} bytes and is not shown)", MAX_NOTICE_BYTES)
        }
        Err(e) => format!("({e})"),
    }
}

/// A writer that refuses to grow past [`MAX_NOTICE_BYTES`].
struct Capped {
    bytes: Vec<u8>,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_NOTICE_BYTES {
            self.bytes.resize(MAX_NOTICE_BYTES, 0);
            return Err(std::io::Error::other("notice too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// Renders on a thread with a tokio worker's default stack (2 MiB), where the attack used to
    /// overflow and abort the whole process.
    fn on_a_worker_stack(source: &str, data: Value) -> String {
        let source = source.to_string();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || render_notice(&notice_registry(), &source, &data))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_recursive_partial_is_refused_not_rendered() {
        let text = on_a_worker_stack(r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#, json!({}));
        assert_eq!(text, "(the template cannot be rendered: partial `p` includes itself)");
    }

    #[test]
    fn two_thousand_nested_blocks_are_refused_not_rendered() {
        let deep = format!("{}x{}", "{{#if a}}".repeat(2000), "{{/if}}".repeat(2000));
        let text = on_a_worker_stack(&deep, json!({ "a": true }));
        assert_eq!(text, "(the template cannot be rendered: blocks nested 2000 deep (at most 32))");
    }

    #[test]
    fn the_output_stops_at_its_cap() {
        // 2,000 names of 1 kB each: 2 MB of notice from a valid template.
        let names: Vec<String> = (0..2000).map(|i| format!("{i:0>1000}")).collect();
        let text = on_a_worker_stack("{{#each names}}{{this}}{{/each}}", json!({ "names": names }));
        assert_eq!(text, "(the notice is longer than 1048576 bytes and is not shown)");
        let short = on_a_worker_stack("{{#each names}}{{this}}、{{/each}}", json!({ "names": ["甲", "乙"] }));
        assert_eq!(short, "甲、乙、");
    }
}
