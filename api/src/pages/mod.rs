//! The web pages (issue 5): server-rendered HTML for offices and oversight staff, with
//! handlebars templates embedded in the binary (`api/templates/*.hbs`, registered in strict
//! mode, so a template that names a missing field fails instead of printing nothing). Chinese
//! first; `?lang=en` switches to English and is remembered in a cookie. No JavaScript.
//!
//! Sign-in is with the same bearer tokens as the API: the sign-in page takes a token, resolves it
//! through the store's token hashes and opens a session; the session cookie (`Secure`,
//! `HttpOnly`, `SameSite=Strict`) holds a random session id, never the token. Every form carries
//! the session's CSRF token, checked on every POST (the sign-in form uses a double-submit cookie,
//! there being no session yet). Sessions live in memory: a restart signs everyone out.
//!
//! One module per page: `signin`, `inbox` (and acting on a step), `instance` (list, timeline,
//! graph), `audit` (history, verification, CSV and JSON Lines export), `policies` (source with
//! highlighting, diagnostics, versions, graph), `notice` (a 公示 or certificate from the policy's
//! template), `oversight` (issue 12.6: which offices were late, as SVG charts and CSV). Actions go through the API's own handler (`http::instances::act`), so a page and
//! the API refuse the same input with the same words.

pub mod audit;
pub mod correction;
pub mod cycle;
pub mod graph;
pub mod inbox;
pub mod instance;
pub mod migrations;
pub mod notice;
pub mod oversight;
pub mod policies;
pub mod signin;
pub mod suspension;
mod through_api;
pub mod words;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Datelike, FixedOffset, Offset, Utc};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::auth::Principal;
use crate::http::problem::{ApiError, ProblemInfo};
use crate::http::AppState;
use civicflow_engine::store::SessionRecord;

/// The session cookie: a random id (never the token).
pub const SESSION_COOKIE: &str = "cf_session";
/// The sign-in form's double-submit CSRF cookie.
pub const PRESESSION_COOKIE: &str = "cf_presession";
/// The remembered language (`zh` or `en`).
pub const LANG_COOKIE: &str = "cf_lang";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Rows per page of every list.
pub const PAGE_SIZE: usize = 50;

/// The templates, embedded.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/layout.hbs")),
    ("signin", include_str!("../../templates/signin.hbs")),
    ("inbox", include_str!("../../templates/inbox.hbs")),
    ("act", include_str!("../../templates/act.hbs")),
    ("instances", include_str!("../../templates/instances.hbs")),
    ("instance", include_str!("../../templates/instance.hbs")),
    ("audit", include_str!("../../templates/audit.hbs")),
    ("policies", include_str!("../../templates/policies.hbs")),
    ("policy", include_str!("../../templates/policy.hbs")),
    ("notice", include_str!("../../templates/notice.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("check", include_str!("../../templates/check.hbs")),
    ("migrations", include_str!("../../templates/migrations.hbs")),
    ("migration", include_str!("../../templates/migration.hbs")),
    ("oversight", include_str!("../../templates/oversight.hbs")),
];

/// A signed-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub principal: Principal,
    pub csrf: String,
    expires: Instant,
    /// The SHA-256 of the token it was made from: the session lives only as long as the token
    /// does, with the same office and roles (issue 9.4).
    token_hash: String,
}

/// What the page handlers share: the API's state, the templates, the sessions.
#[derive(Clone)]
pub struct Pages {
    pub app: AppState,
    pub hbs: Arc<Handlebars<'static>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

/// Why the templates could not be registered (a bug: they are embedded).
#[derive(Debug, thiserror::Error)]
#[error("template `{name}`: {error}")]
pub struct TemplateError {
    name: &'static str,
    error: String,
}

/// The handlebars registry with every page template, in strict mode.
pub fn templates() -> Result<Handlebars<'static>, TemplateError> {
    let mut hbs = Handlebars::new();
    hbs.set_strict_mode(true);
    for (name, text) in TEMPLATES {
        hbs.register_template_string(name, *text).map_err(|e| TemplateError { name, error: e.to_string() })?;
    }
    hbs.register_partial("layout", TEMPLATES[0].1)
        .map_err(|e| TemplateError { name: "layout", error: e.to_string() })?;
    Ok(hbs)
}

/// The page routes (merged into the application by `http::app`).
pub fn router(app: AppState) -> Router {
    let hbs = match templates() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "the page templates do not register; pages are off");
            return Router::new();
        }
    };
    let pages = Pages { app, hbs: Arc::new(hbs), sessions: Default::default() };
    Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/inbox", get(inbox::page))
        .route("/act", get(inbox::act_page).post(inbox::act_submit))
        .route("/instances", get(instance::list))
        .route("/instances/{id}", get(instance::page))
        .route("/instances/{id}/next-cycle", post(cycle::submit))
        .route("/instances/{id}/suspend", post(suspension::suspend))
        .route("/instances/{id}/resume", post(suspension::resume))
        .route("/instances/{id}/corrections", post(correction::submit))
        .route("/migrations", get(migrations::page).post(migrations::plan))
        .route("/migrations/{id}", get(migrations::show))
        .route("/migrations/{id}/apply", post(migrations::apply))
        .route("/instances/{id}/audit", get(audit::page))
        .route("/instances/{id}/audit.csv", get(audit::csv))
        .route("/instances/{id}/audit.jsonl", get(audit::jsonl))
        .route("/instances/{id}/notice", get(notice::page))
        .route("/oversight", get(oversight::page))
        .route("/oversight.csv", get(oversight::csv))
        .route("/policies", get(policies::list))
        .route("/policies/check", post(policies::check))
        .route("/policies/{name}", get(policies::page))
        .with_state(pages)
        .layer(axum::middleware::from_fn(lang_switch))
}

impl Pages {
    /// A new session for `principal`, made from the token whose hash is `token_hash`, kept in
    /// the store (issue 9.6: a restart or another node keeps it); at most so many per principal,
    /// the oldest ending first (issue 9.3).
    async fn new_session(&self, principal: Principal, token_hash: String) -> Result<Session, ApiError> {
        let session = Session {
            id: random_hex(32)?,
            principal,
            csrf: random_hex(32)?,
            expires: Instant::now() + SESSION_TTL,
            token_hash,
        };
        let now = Utc::now();
        let record = SessionRecord {
            id_hash: crate::http::auth::token_hash(&session.id),
            principal: session.principal.name.clone(),
            office: session.principal.office.clone(),
            roles: session.principal.roles.clone(),
            token_hash: session.token_hash.clone(),
            csrf: session.csrf.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(SESSION_TTL).unwrap_or(chrono::Duration::hours(8)),
        };
        let cap = self.app.limiter.config.sessions_per_principal.max(1);
        self.app.store.put_session(record, cap).await?;
        self.remember(&session);
        Ok(session)
    }

    /// Ends a session, in the store and in this node's cache.
    async fn drop_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
        if let Err(e) = self.app.store.delete_session(&crate::http::auth::token_hash(id)).await {
            tracing::warn!(error = %e, "a session could not be deleted");
        }
    }

    /// This node's copy of a session it has checked, for the layout of an error page.
    fn remember(&self, session: &Session) {
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            sessions.insert(session.id.clone(), session.clone());
        }
    }

    /// The session named by the request's cookie, if it is live, as last checked (for the
    /// layout of an error page).
    fn cached_session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let sessions = self.sessions.lock().ok()?;
        sessions.get(&id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// The session named by the request's cookie, from the store (any node made it), if it is
    /// live and its token still is: a token revoked or expired, or its principal's office or
    /// roles changed, ends the session at once (issue 9.4). Two store reads per page.
    pub async fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let record = self.app.store.get_session(&crate::http::auth::token_hash(&id)).await.ok().flatten()?;
        let current = self.app.store.principal_by_token_hash(&record.token_hash).await.ok().flatten();
        match current {
            Some(p) if p.office == record.office && p.roles == record.roles => {
                let left = (record.expires_at - Utc::now()).to_std().unwrap_or_default();
                let session = Session {
                    id,
                    principal: Principal { name: record.principal, office: record.office, roles: record.roles },
                    csrf: record.csrf,
                    expires: Instant::now() + left,
                    token_hash: record.token_hash,
                };
                self.remember(&session);
                Some(session)
            }
            _ => {
                self.drop_session(&id).await;
                None
            }
        }
    }

    /// The session, or a redirect to the sign-in page.
    pub async fn require(&self, headers: &HeaderMap) -> Result<Session, Response> {
        self.session(headers).await.ok_or_else(|| Redirect::to("/signin").into_response())
    }

    /// The session, with the form's CSRF token checked (403 otherwise).
    pub async fn require_post(&self, headers: &HeaderMap, form: &[(String, String)]) -> Result<Session, Response> {
        let session = self.require(headers).await?;
        let given = field(form, "csrf").unwrap_or_default();
        if !same(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(self.error(
                headers,
                StatusCode::FORBIDDEN,
                crate::http::codes::ProblemCode::Csrf.as_str(),
                "csrf_failed",
                None,
            ));
        }
        Ok(session)
    }

    /// Renders a page inside the layout.
    pub fn render(&self, headers: &HeaderMap, template: &str, session: Option<&Session>, page: Value) -> Response {
        self.render_status(headers, StatusCode::OK, template, session, page)
    }

    pub fn render_status(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        template: &str,
        session: Option<&Session>,
        page: Value,
    ) -> Response {
        let lang = lang(headers);
        let data = json!({
            "lang": lang.code(),
            "t": lang.words(),
            "user": session.map(|s| json!({
                "name": s.principal.name,
                "office": s.principal.office,
                "roles": s.principal.roles.join("、"),
                "admin": s.principal.is_admin(),
            })),
            "csrf": session.map(|s| s.csrf.clone()),
            "page": page,
        });
        match self.hbs.render(template, &data) {
            Ok(html) => html_response(status, html),
            Err(e) => {
                tracing::error!(template, error = %e, "a page did not render");
                let mut r = html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>civicflow</title><p>internal error; it has been logged</p>".into(),
                );
                mark_problem(&mut r, crate::http::codes::ProblemCode::Internal.as_str(), "a page did not render");
                r
            }
        }
    }

    /// An error page (the status, a code and a message).
    pub fn error(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        code: &str,
        word: &str,
        detail: Option<&str>,
    ) -> Response {
        let lang = lang(headers);
        let words = lang.words();
        let message = words.get(word).and_then(Value::as_str).unwrap_or(word).to_string();
        let session = self.cached_session(headers);
        let mut r = self.render_status(
            headers,
            status,
            "error",
            session.as_ref(),
            json!({ "status": status.as_u16(), "code": code, "message": message, "detail": detail }),
        );
        mark_problem(&mut r, code, detail.unwrap_or(&message));
        r
    }

    /// An API error as an error page.
    pub fn api_error(&self, headers: &HeaderMap, e: ApiError) -> Response {
        if e.status.is_server_error() {
            tracing::error!(code = %e.problem.code, internal = e.internal.as_deref().unwrap_or(""), "page failed");
        }
        let detail = e.problem.detail.clone();
        self.error(headers, e.status, &e.problem.code.clone(), "error", Some(&detail))
    }
}

/// Marks a page's error response so the API's `observe` middleware logs and counts it but keeps
/// the HTML (it turns responses without this mark into problem JSON).
pub fn mark_problem(response: &mut Response, code: &str, detail: &str) {
    response.extensions_mut().insert(ProblemInfo { code: code.into(), detail: detail.into(), internal: None });
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The language of a request: `?lang=` first, then the cookie, then Chinese.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn words(self) -> serde_json::Map<String, Value> {
        WORDS
            .iter()
            .map(|(k, zh, en)| (k.to_string(), Value::String(if self == Lang::Zh { zh } else { en }.to_string())))
            .collect()
    }
}

pub fn lang(headers: &HeaderMap) -> Lang {
    if let Some(q) = headers.get("x-civicflow-lang").and_then(|v| v.to_str().ok()) {
        return if q == "en" { Lang::En } else { Lang::Zh };
    }
    match cookie(headers, LANG_COOKIE).as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    }
}

/// `?lang=zh|en` on any page: remembered in a cookie and applied to this request (through an
/// internal header the handlers read).
pub async fn lang_switch(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let asked = request.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| match kv {
            "lang=en" => Some("en"),
            "lang=zh" => Some("zh"),
            _ => None,
        })
    });
    request.headers_mut().remove("x-civicflow-lang");
    if let Some(l) = asked {
        request.headers_mut().insert("x-civicflow-lang", HeaderValue::from_static(l));
    }
    let mut response = next.run(request).await;
    if let Some(l) = asked {
        let cookie = format!("{LANG_COOKIE}={l}; Path=/; Max-Age=31536000; SameSite=Lax; Secure");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The words of the pages: key, Chinese, English.
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "civicflow 政务流程", "civicflow"),
    ("inbox", "收件箱", "Inbox"),
    ("instances", "办理事项", "Instances"),
    ("policies", "工作方案", "Policies"),
    ("signin", "登录", "Sign in"),
    ("signout", "退出", "Sign out"),
    ("token", "令牌", "Token"),
    (
        "signin_help",
        "请输入您的办理令牌(由管理员用 civicflow token create 生成)。",
        "Enter your token (made by an administrator with civicflow token create).",
    ),
    ("signin_failed", "令牌无效,请重新输入。", "The token is not valid."),
    (
        "csrf_failed",
        "表单已过期或来源不明,请刷新页面后重试。",
        "The form has expired or did not come from this site; reload the page and try again.",
    ),
    ("error", "出错了", "Something went wrong"),
    ("not_found", "没有找到", "Not found"),
    ("instance", "事项", "Instance"),
    ("policy", "方案", "Policy"),
    ("step", "环节", "Step"),
    ("kind", "类型", "Kind"),
    ("role", "身份", "Role"),
    ("due", "办理时限", "Due"),
    ("window", "时间安排", "Window"),
    ("overdue", "已超期", "Overdue"),
    ("escalated", "已督办", "Escalated"),
    ("urge", "催办", "Urge"),
    ("extend", "延期", "Extend the deadline"),
    ("transfer", "转办", "Transfer"),
    ("transfer_to", "转交单位", "To office"),
    ("migrations", "版本迁移", "Migrations"),
    ("migrations_note", "把某一方案运行中的事项迁移到新版本:先生成迁移计划并审阅,确认后再执行。未列入计划的事项保持原版本。", "Move a policy's running instances to a new version: make a plan, review it, then apply it. Instances not in the plan keep their version."),
    ("from_version", "原版本", "From version"),
    ("to_version", "新版本", "To version"),
    ("renames", "环节更名(每行 原=新)", "Renamed steps (OLD=NEW, one per line)"),
    ("make_plan", "生成迁移计划", "Make the plan"),
    ("migration_plan", "迁移计划", "Migration plan"),
    ("renamed", "更名", "Renamed"),
    ("removed", "删除", "Removed"),
    ("added", "新增", "Added"),
    ("moves", "可迁移", "Moves"),
    ("migration_refused", "不能迁移", "Refused"),
    ("opens", "迁移后开始办理", "Opens"),
    ("apply_note", "执行后,每个事项单独迁移并记入其历史;被拒绝的事项保持原版本。可重复执行以续完中断的迁移。", "Each instance moves in a commit of its own, recorded in its history; refused ones keep their version. Apply again to resume."),
    ("apply_plan", "执行迁移", "Apply the plan"),
    ("migrated_now", "本次迁移", "Moved now"),
    ("migrated_before", "此前已迁移", "Moved before"),
    ("gone", "已不在原版本运行", "No longer on the old version"),
    ("extension_asked", "延期申请待审批", "An extension waits for approval"),
    ("approve_extension", "同意延期", "Approve the extension"),
    ("reject_extension", "不同意延期", "Refuse the extension"),
    ("return_to", "退回", "Return"),
    ("delegate", "委托", "Delegate"),
    ("delegate_to", "委托给", "Delegate to"),
    ("withdraw", "撤回", "Withdraw"),
    (
        "withdraw_note",
        "撤回本人在此环节的办理(他人尚未接续办理前)。",
        "Take back your act on this step (before anyone acts after it).",
    ),
    ("copy", "抄送", "Copy for information"),
    ("copy_to", "抄送单位", "Copied to"),
    ("copies", "抄送记录", "Copies"),
    ("copied", "抄送", "Copied to you"),
    (
        "copied_note",
        "此环节抄送本单位知悉,阅后请点“已阅”。",
        "This step was copied to your office for information; mark it read once read.",
    ),
    ("mark_read", "已阅", "Mark read"),
    ("read", "阅知", "Read"),
    ("unread", "未阅", "Unread"),
    ("add_approver", "加签", "Add an approver"),
    ("remove_approver", "减签", "Remove an approver"),
    ("suspended", "已挂起", "Suspended"),
    ("suspended_since", "挂起时间", "Since"),
    ("suspend", "挂起", "Suspend"),
    ("correct", "更正参数", "Correct a parameter"),
    ("correct_value", "更正为", "Corrected value"),
    ("now_value", "现值", "Now"),
    ("resume", "激活(恢复办理)", "Resume"),
    ("extend_amount", "延长", "Extend by"),
    ("extend_left", "最多还可延长", "At most left"),
    ("status", "状态", "Status"),
    ("act", "办理", "Act"),
    ("nothing", "暂无待办事项。", "Nothing to act on."),
    ("approve", "同意", "Approve"),
    ("reject", "不同意(退回)", "Reject"),
    ("reason", "理由", "Reason"),
    ("comment", "意见", "Comment"),
    ("file", "备案", "File"),
    ("complete", "办结", "Complete"),
    ("report", "办理情况", "Report"),
    ("opinion", "意见", "Opinion"),
    ("give_opinion", "提交意见", "Give opinion"),
    ("objection", "异议", "Objection"),
    ("raise_objection", "提出异议", "Raise an objection"),
    ("enter_vote", "录入计票结果", "Enter the vote"),
    ("present", "到会人数", "Present"),
    ("cast", "投票人数", "Ballots cast"),
    ("invalid", "无效票", "Invalid ballots"),
    ("tallies", "得票(每行:姓名 票数)", "Votes (one per line: name count)"),
    ("submit_form", "提交表单", "Submit the form"),
    ("refused", "不予受理", "Refused"),
    ("done", "已办理", "Recorded"),
    ("timeline", "时间线", "Timeline"),
    ("steps_done", "已完成", "done"),
    ("steps_open", "办理中", "open"),
    ("today", "今天", "Today"),
    ("graph", "流程图", "Graph"),
    ("acts", "办理记录", "Who acted when"),
    ("audit", "审计记录", "Audit trail"),
    ("verify_ok", "记录链校验通过", "The chain verifies"),
    ("verify_bad", "记录链校验失败", "The chain does not verify"),
    ("log", "签名日志", "Signed log"),
    ("oversight", "超时监督", "Lateness oversight"),
    ("period_from", "起始日", "From"),
    ("period_to", "截止日", "To"),
    ("breaches", "超时次数", "Deadlines breached"),
    ("breaches_truncated", "超过十万条,仅统计前十万条", "over 100,000: only the first 100,000 are counted"),
    ("late_by_office", "按单位", "By office"),
    ("late_by_policy", "按事项", "By procedure"),
    ("late_by_week", "按周", "By week"),
    ("late_by_office_policy", "单位 × 事项", "Office × procedure"),
    ("late_office", "单位", "Office"),
    ("log_checkpoint", "最新签名检查点覆盖的记录数:", "Latest signed checkpoint, events covered:"),
    ("log_key", "公钥", "public key"),
    ("log_none", "尚无签名检查点", "No signed checkpoint yet"),
    ("log_in", "已收录", "included, leaf"),
    ("log_pending", "待下次签名", "awaiting the next checkpoint, leaf"),
    ("log_out", "不在签名日志中(内容已被改动或缺失)", "not in the signed log (changed or missing)"),
    ("export", "导出", "Export"),
    ("office", "办理人 / 机关", "Actor / office"),
    ("all", "全部", "All"),
    ("filter", "筛选", "Filter"),
    ("seq", "序号", "Seq"),
    ("at", "时间", "Time"),
    ("actor", "办理人", "Actor"),
    ("event", "记录", "Event"),
    ("hash", "哈希", "Hash"),
    ("prev", "上一页", "Previous"),
    ("next", "下一页", "Next"),
    ("page", "页", "Page"),
    ("of", "共", "of"),
    ("source", "源文本", "Source"),
    ("diagnostics", "校验结果", "Diagnostics"),
    ("no_diagnostics", "没有错误或警告。", "No errors or warnings."),
    ("versions", "版本", "Versions"),
    ("published", "发布时间", "Published"),
    ("notice", "公示 / 证书", "Notice"),
    ("no_template", "该方案没有公示或证书模板。", "This policy has no notice template."),
    ("back", "返回", "Back"),
    ("started", "开始时间", "Started"),
    ("cycle", "周期", "Cycle"),
    ("previous_cycle", "上一周期", "Previous cycle"),
    ("next_cycle", "下一周期", "Next cycle due"),
    ("next_cycle_awaiting", "待启动,负责:", "to be started by"),
    ("next_cycle_refused", "未能自动开启:", "could not open:"),
    ("start_next_cycle", "启动下一周期", "Start the next cycle"),
    ("opened", "开始", "Opened"),
    ("closed", "完成", "Closed"),
    ("late", "超期", "late"),
    ("params", "参数", "Parameters"),
    ("language", "English", "中文"),
    ("awaiting", "等待", "Awaiting"),
    ("total", "总数", "Total"),
    ("check_draft", "校验草稿(不发布)", "Check a draft (nothing is published)"),
    ("check", "校验", "Check"),
];

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    })
}

/// A form field's value.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Compares two secrets without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes in hex.
pub fn random_hex(n: usize) -> Result<String, ApiError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// An instant in the policy's time zone, to the minute.
pub fn local(at: Option<DateTime<Utc>>, offset: FixedOffset) -> Option<String> {
    at.map(|t| t.with_timezone(&offset).format("%Y-%m-%d %H:%M").to_string())
}

/// R0.2: a deadline waiting for a year's working-day calendar, in the page's language:
/// 待2027年日历公布 / awaiting the 2027 calendar.
pub fn awaiting_calendar(year: i32, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("待{year}年日历公布"),
        Lang::En => format!("awaiting the {year} calendar"),
    }
}

/// The due date as an office reads it (issue 11.7): its last day, to 24:00, with the working
/// days left from today through it (`3月28日（周三）24:00前，剩3个工作日`); past it, the last day
/// alone; or the year whose calendar it waits for (R0.2). A deadline that does not fall at
/// midnight is written to the minute.
pub fn due_text(
    at: Option<DateTime<Utc>>,
    awaiting: Option<i32>,
    offset: FixedOffset,
    lang: Lang,
    calendar: &civicflow_engine::calendar::Calendar,
    now: DateTime<Utc>,
) -> Option<String> {
    let Some(at) = at else { return awaiting.map(|y| awaiting_calendar(y, lang)) };
    let local_at = at.with_timezone(&offset);
    let midnight = local_at.time() == chrono::NaiveTime::MIN;
    // 24:00 of the last day is 00:00 of the next.
    let last = if midnight {
        local_at.date_naive().pred_opt().unwrap_or(local_at.date_naive())
    } else {
        local_at.date_naive()
    };
    let weekday = |d: chrono::NaiveDate| d.weekday().num_days_from_monday() as usize;
    let time = if midnight { "24:00".to_string() } else { local_at.format("%H:%M").to_string() };
    let mut text = match lang {
        Lang::Zh => {
            const DAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
            format!("{}月{}日（周{}）{time}前", last.month(), last.day(), DAYS[weekday(last)])
        }
        Lang::En => format!("by {time} {}", last.format("%a %-d %b %Y")),
    };
    if now < at {
        let today = now.with_timezone(&offset).date_naive();
        // The working days from today through the last day, today included.
        let left = today.pred_opt().and_then(|before| calendar.workdays_between(before, last).ok());
        if let Some(left) = left {
            text.push_str(&match lang {
                Lang::Zh => format!("，剩{left}个工作日"),
                Lang::En => format!(", {left} working day{} left", if left == 1 { "" } else { "s" }),
            });
        }
    }
    Some(text)
}

/// A unit of time as an office reads it (`个工作日`, `working days`).
pub fn unit_text(unit: civicflow_dsl::ir::TimeUnit, lang: Lang) -> &'static str {
    use civicflow_dsl::ir::TimeUnit;
    match (unit, lang) {
        (TimeUnit::Workdays, Lang::Zh) => "个工作日",
        (TimeUnit::Days, Lang::Zh) => "天",
        (TimeUnit::Months, Lang::Zh) => "个月",
        (TimeUnit::Years, Lang::Zh) => "年",
        (TimeUnit::Workdays, Lang::En) => "working days",
        (TimeUnit::Days, Lang::En) => "days",
        (TimeUnit::Months, Lang::En) => "months",
        (TimeUnit::Years, Lang::En) => "years",
    }
}

/// Asia/Shanghai (+08:00), for lists that span policies.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| Utc.fix()))
}

/// Page numbers for a list of `total` rows.
#[derive(Serialize)]
pub struct Pager {
    pub page: usize,
    pub pages: usize,
    pub total: usize,
    pub prev: Option<usize>,
    pub next: Option<usize>,
}

impl Pager {
    pub fn new(page: Option<usize>, total: usize, size: usize) -> Pager {
        let pages = total.div_ceil(size).max(1);
        let page = page.unwrap_or(1).clamp(1, pages);
        Pager { page, pages, total, prev: (page > 1).then(|| page - 1), next: (page < pages).then(|| page + 1) }
    }

    pub fn range(&self, size: usize) -> std::ops::Range<usize> {
        let start = (self.page - 1) * size;
        start..(start + size).min(self.total)
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for HTML or SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_registers_in_strict_mode() {
        let hbs = templates();
        assert!(hbs.is_ok(), "{:?}", hbs.err());
    }

    #[test]
    fn both_languages_have_every_word() {
        for (k, zh, en) in WORDS {
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
        let mut keys: Vec<&str> = WORDS.iter().map(|w| w.0).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "a word is listed twice");
    }

    #[test]
    fn cookies_and_pages() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; cf_session=abc; cf_lang=en"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(lang(&h), Lang::En);
        let p = Pager::new(Some(3), 120, 50);
        assert_eq!((p.page, p.pages, p.prev, p.next), (3, 3, Some(2), None));
        assert_eq!(p.range(50), 100..120);
        assert_eq!(enc("a/b 选"), "a%2Fb%20%E9%80%89");
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }

    /// Issue 11.7: a deadline reads as its last day, to 24:00, with the working days left (2012:
    /// the weekend 03-31, 04-01 is worked, 清明 04-02 … 04-04 is not).
    #[test]
    fn a_deadline_reads_as_its_last_day_with_the_working_days_left() {
        let calendar = civicflow_engine::calendar::Calendar::chinese().unwrap_or_default();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default();
        let due = Some(t("2012-04-05T16:00:00Z")); // 24:00 of Thursday 04-05
        let monday = t("2012-03-26T10:00:00+08:00");
        let zh = due_text(due, None, shanghai(), Lang::Zh, &calendar, monday);
        // 03-26 … 03-30, the make-up weekend 03-31 and 04-01, then 04-05.
        assert_eq!(zh.as_deref(), Some("4月5日（周四）24:00前，剩8个工作日"));
        let en = due_text(due, None, shanghai(), Lang::En, &calendar, monday);
        assert_eq!(en.as_deref(), Some("by 24:00 Thu 5 Apr 2012, 8 working days left"));
        let past = due_text(due, None, shanghai(), Lang::Zh, &calendar, t("2012-04-06T09:00:00+08:00"));
        assert_eq!(past.as_deref(), Some("4月5日（周四）24:00前"));
        let at_ten = due_text(Some(t("2012-04-05T02:00:00Z")), None, shanghai(), Lang::Zh, &calendar, monday);
        assert_eq!(at_ten.as_deref(), Some("4月5日（周四）10:00前，剩8个工作日"));
        assert_eq!(
            due_text(None, Some(2027), shanghai(), Lang::Zh, &calendar, monday).as_deref(),
            Some("待2027年日历公布")
        );
    }
}
