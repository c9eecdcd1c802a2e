//! The audit trail: an instance's whole history (paginated), filterable by office (actor or
//! role) and kind, the result of verifying its chain, and exports as CSV and JSON Lines (with the
//! same filters, every column of the chain: seq, time, actor, role, kind, payload, hashes).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use civicflow_engine::audit::merkle::{self, Hash};
use civicflow_engine::audit::{self, ChainedEvent};
use civicflow_engine::store::StoredEvent;

use crate::http::history::EventView;
use crate::http::problem::ApiError;

use super::{enc, local, Pager, Pages, Session};

/// Events per page of the trail.
const EVENTS_PER_PAGE: usize = 100;
/// Events read per store call.
const CHUNK: u32 = 1000;

#[derive(Deserialize)]
pub struct AuditQuery {
    pub office: Option<String>,
    pub kind: Option<String>,
    pub page: Option<usize>,
}

impl AuditQuery {
    fn office(&self) -> Option<&str> {
        self.office.as_deref().filter(|s| !s.is_empty())
    }
    fn kind(&self) -> Option<&str> {
        self.kind.as_deref().filter(|s| !s.is_empty())
    }
    fn keeps(&self, e: &StoredEvent) -> bool {
        self.office().is_none_or(|o| e.actor == o || e.role.as_deref() == Some(o))
            && self.kind().is_none_or(|k| e.kind == k)
    }
    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(o) = self.office() {
            s.push_str(&format!("&office={}", enc(o)));
        }
        if let Some(k) = self.kind() {
            s.push_str(&format!("&kind={}", enc(k)));
        }
        s
    }
}

/// Every event of an instance, in order.
async fn all_events(pages: &Pages, id: &str) -> Result<Vec<StoredEvent>, ApiError> {
    if pages.app.store.load_instance(id).await?.is_none() {
        return Err(ApiError::not_found("instance", id));
    }
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let chunk = pages.app.store.events(id, after, CHUNK).await?;
        let n = chunk.len();
        out.extend(chunk);
        if n < CHUNK as usize {
            return Ok(out);
        }
    }
}

/// The session and the instance's events as its principal may read them: personal values
/// redacted in the payloads unless of a bound office or oversight (R6.2); hashes stay as stored.
async fn load(pages: &Pages, headers: &HeaderMap, id: &str) -> Result<(Session, Vec<StoredEvent>), Response> {
    load_hashed(pages, headers, id).await.map(|(s, e, _)| (s, e))
}

/// [`load`], with each event's leaf hash taken before any redaction (what the log holds).
async fn load_hashed(
    pages: &Pages,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Session, Vec<StoredEvent>, Vec<Hash>), Response> {
    let session = pages.require(headers).await?;
    let mut events = all_events(pages, id).await.map_err(|e| pages.api_error(headers, e))?;
    let leaves = events.iter().map(|e| merkle::leaf_hash(&audit::encode(&e.fields()))).collect();
    let redactor = crate::http::personal::redactor(&pages.app, id, &session.principal)
        .await
        .map_err(|e| pages.api_error(headers, e))?;
    if let Some(program) = redactor {
        for e in &mut events {
            crate::http::personal::redact_payload(&program, &e.kind, std::sync::Arc::make_mut(&mut e.payload));
        }
    }
    Ok((session, events, leaves))
}

/// Issue 12.5: where each shown event stands in the signed log, checked here: its content's
/// leaf proved to be in the latest checkpoint's tree (`in`), appended after it (`pending`), or
/// neither (`out`: its content changed, or it is not in the log). With the checkpoint's summary.
async fn log_inclusion(
    pages: &Pages,
    id: &str,
    shown: &[(u64, Hash)],
) -> Result<(Value, std::collections::HashMap<u64, (&'static str, Option<u64>)>), ApiError> {
    let mut out = std::collections::HashMap::new();
    let Some(cp) = pages.app.runtime.latest_checkpoint().await? else {
        return Ok((Value::Null, out));
    };
    let indexes = crate::http::audit::leaf_indexes(&pages.app, id).await?;
    // The shown events signed already, proved together.
    let signed: Vec<(u64, &Hash, u64)> = shown
        .iter()
        .filter_map(|(seq, leaf)| indexes.get(seq).filter(|&&i| i < cp.size).map(|&i| (*seq, leaf, i)))
        .collect();
    let indexes_signed: Vec<u64> = signed.iter().map(|(_, _, i)| *i).collect();
    let proofs = pages.app.runtime.audit_inclusion_proofs(&indexes_signed, cp.size).await?;
    for ((seq, leaf, index), proof) in signed.iter().zip(&proofs) {
        let holds = merkle::verify_inclusion(leaf, *index, cp.size, proof, &cp.root);
        out.insert(*seq, (if holds { "in" } else { "out" }, Some(*index)));
    }
    for (seq, _) in shown {
        if !out.contains_key(seq) {
            let pending = indexes.get(seq).map(|&i| ("pending", Some(i)));
            out.insert(*seq, pending.unwrap_or(("out", None)));
        }
    }
    let summary = json!({ "size": cp.size, "made_at": local(Some(cp.made_at), super::shanghai()), "key": pages.app.audit_key.to_key_text() });
    Ok((summary, out))
}

pub async fn page(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (session, events, leaves) = match load_hashed(&pages, &headers, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let verification = match crate::http::history::verification(&pages.app, &id).await {
        Ok(v) => json!({ "ok": v.ok, "message": v.message, "events": v.events }),
        Err(e) => return pages.api_error(&headers, e),
    };
    let mut offices: Vec<&str> =
        events.iter().flat_map(|e| [Some(e.actor.as_str()), e.role.as_deref()]).flatten().collect();
    offices.sort_unstable();
    offices.dedup();
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let kept: Vec<(&StoredEvent, &Hash)> = events.iter().zip(&leaves).filter(|(e, _)| q.keeps(e)).collect();
    let pager = Pager::new(q.page, kept.len(), EVENTS_PER_PAGE);
    let tz = super::shanghai();
    let lang = super::lang(&headers);
    let shown = &kept[pager.range(EVENTS_PER_PAGE)];
    let (checkpoint, inclusion) =
        match log_inclusion(&pages, &id, &shown.iter().map(|(e, l)| (e.seq, **l)).collect::<Vec<_>>()).await {
            Ok(x) => x,
            Err(e) => return pages.api_error(&headers, e),
        };
    let rows: Vec<Value> = shown
        .iter()
        .map(|(e, _)| {
            let payload = e.payload.to_string();
            let (log, leaf) = inclusion.get(&e.seq).copied().unwrap_or(("out", None));
            json!({
                "log_status": log, "in_log": log == "in", "pending": log == "pending", "leaf": leaf,
                "seq": e.seq, "at": local(Some(e.at), tz), "actor": e.actor, "role": e.role,
                "kind": super::words::event(&e.kind, lang),
                "payload": if payload.chars().count() > 160 { format!("{}…", payload.chars().take(160).collect::<String>()) } else { payload },
                "hash": e.hash.get(..12).unwrap_or(&e.hash), "full_hash": e.hash,
            })
        })
        .collect();
    let office = q.office().unwrap_or_default().to_string();
    let kind = q.kind().unwrap_or_default().to_string();
    let page = json!({
        "id": id,
        "instance_href": format!("/instances/{}", enc(&id)),
        "verification": verification,
        "checkpoint": checkpoint,
        "events": rows,
        "total": events.len(),
        "shown": kept.len(),
        "offices": offices.iter().map(|o| json!({ "name": o, "selected": *o == office })).collect::<Vec<_>>(),
        "kinds": kinds.iter().map(|k| json!({ "name": k, "text": super::words::event(k, lang), "selected": *k == kind })).collect::<Vec<_>>(),
        "pager": pager,
        "suffix": q.suffix(),
        "csv_href": format!("/instances/{}/audit.csv?{}", enc(&id), q.suffix().trim_start_matches('&')),
        "jsonl_href": format!("/instances/{}/audit.jsonl?{}", enc(&id), q.suffix().trim_start_matches('&')),
    });
    pages.render(&headers, "audit", Some(&session), page)
}

fn download(content_type: &'static str, filename: String, body: String) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A CSV field, quoted when it needs to be (RFC 4180); a leading `=`, `+`, `-`, `@`, tab, CR or
/// LF is prefixed with `'` so a spreadsheet does not run it as a formula (OWASP's CSV injection
/// list: a tab or a line break before `=` still starts a formula in some spreadsheets).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r', '\n']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The id as a safe file name.
fn file_name(id: &str, ext: &str) -> String {
    let safe: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{safe}-audit.{ext}")
}

pub async fn csv(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (_, events) = match load(&pages, &headers, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut out = String::from("seq,at,actor,role,kind,payload,prev_hash,hash\r\n");
    for e in events.iter().filter(|e| q.keeps(e)) {
        let row = [
            e.seq.to_string(),
            e.at.to_rfc3339(),
            e.actor.clone(),
            e.role.clone().unwrap_or_default(),
            e.kind.clone(),
            e.payload.to_string(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        out.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    download("text/csv; charset=utf-8", file_name(&id, "csv"), out)
}

pub async fn jsonl(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (_, events) = match load(&pages, &headers, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut out = String::new();
    for e in events.iter().filter(|e| q.keeps(e)) {
        out.push_str(&serde_json::to_string(&EventView::from(e)).unwrap_or_default());
        out.push('\n');
    }
    download("application/jsonl; charset=utf-8", file_name(&id, "jsonl"), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
        assert_eq!(csv_field("\n=HYPERLINK(1)"), "\"'\n=HYPERLINK(1)\"");
        assert_eq!(csv_field("a\tb"), "a\tb");
        assert_eq!(file_name("a/b", "csv"), "a_b-audit.csv");
    }
}
