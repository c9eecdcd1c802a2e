//! The words the pages show for the engine's and the API's words (issue 11.7): step kinds, act
//! and event kinds, Chinese first as an office reads them, then the API's word (which the audit
//! filter and the exports keep), or the API's word alone in English.

use super::Lang;

/// Chinese first, then the API's word; English: the API's word.
fn both(zh: Option<&str>, word: &str, lang: Lang) -> String {
    match (zh, lang) {
        (Some(zh), Lang::Zh) => format!("{zh} {word}"),
        _ => word.to_string(),
    }
}

/// A node kind as the API writes it (`approval`, `phase`, `next_cycle` …).
pub fn kind(word: &str, lang: Lang) -> String {
    let zh = match word {
        "task" => Some("任务"),
        "approval" => Some("审批"),
        "filing" => Some("备案"),
        "consultation" => Some("征求意见"),
        "publicity" => Some("公示"),
        "vote" => Some("投票"),
        "meeting" => Some("会议"),
        "phase" => Some("阶段"),
        "call" => Some("子程序"),
        "next_cycle" => Some("下一周期"),
        _ => None,
    };
    both(zh, word, lang)
}

/// An instance's status (`running`, `completed`, `rejected`, `cancelled`).
pub fn instance_status(word: &str, lang: Lang) -> String {
    let zh = match word {
        "running" => Some("进行中"),
        "completed" => Some("已办结"),
        "rejected" => Some("否决终止"),
        "cancelled" => Some("已撤销"),
        _ => None,
    };
    both(zh, word, lang)
}

/// What an act on a step was (`approve`, `complete` …).
pub fn action(word: &str, lang: Lang) -> String {
    let zh = match word {
        "approve" => Some("同意"),
        "reject" => Some("不同意"),
        "complete" => Some("办结"),
        "file" => Some("备案"),
        "opinion" => Some("提出意见"),
        "objection" => Some("提出异议"),
        "urge" => Some("催办"),
        _ => None,
    };
    both(zh, word, lang)
}

/// An event of the history, by its stored kind.
pub fn event(word: &str, lang: Lang) -> String {
    let zh = match word {
        "started" => Some("启动"),
        "expanded" => Some("分项展开"),
        "opened" => Some("开始办理"),
        "skipped" => Some("跳过"),
        "acted" => Some("办理"),
        "form_recorded" => Some("填报"),
        "vote_recorded" => Some("录入计票结果"),
        "objection_raised" => Some("提出异议"),
        "withdrawn" => Some("撤回"),
        "delegated" => Some("委托"),
        "urged" => Some("催办"),
        "completed" => Some("完成"),
        "returned" => Some("退回"),
        "deadline_set" => Some("设定时限"),
        "passed_on" => Some("推诿"),
        "reminded" => Some("到期提醒"),
        "overdue" => Some("超期"),
        "escalated" => Some("督办"),
        "notified" => Some("通报"),
        "reassigned" => Some("提级办理"),
        "window_closed" => Some("办理期限届满"),
        "deadline_awaiting_calendar" => Some("时限待日历公布"),
        "min_duration_awaiting_calendar" => Some("最短期限待日历公布"),
        "window_awaiting_calendar" => Some("时间安排待日历公布"),
        "calendar_applied" => Some("日历公布后计算"),
        "instance_completed" => Some("办结"),
        "instance_rejected" => Some("否决终止"),
        "cancelled" => Some("撤销"),
        "next_cycle_due" => Some("下一周期到期"),
        "next_cycle_opened" => Some("下一周期启动"),
        "next_cycle_refused" => Some("下一周期未能启动"),
        "bound" => Some("确定办理单位"),
        "extended" => Some("延期"),
        "extension_requested" => Some("申请延期"),
        "extension_rejected" => Some("不同意延期"),
        "transferred" => Some("转办"),
        "approver_added" => Some("加签"),
        "approver_removed" => Some("减签"),
        "copied_to" => Some("抄送"),
        "copy_read" => Some("已阅"),
        "suspended" => Some("挂起"),
        "resumed" => Some("激活"),
        "corrected" => Some("更正参数"),
        "migrated" => Some("迁移至新版本"),
        _ => None,
    };
    both(zh, word, lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_chinese_first_and_keep_the_api_word() {
        assert_eq!(kind("approval", Lang::Zh), "审批 approval");
        assert_eq!(kind("approval", Lang::En), "approval");
        assert_eq!(action("approve", Lang::Zh), "同意 approve");
        assert_eq!(event("transferred", Lang::Zh), "转办 transferred");
        assert_eq!(event("unheard_of", Lang::Zh), "unheard_of");
    }

    /// Every event kind the engine records (`Event::kind` in `engine/src/core/model.rs`) has its
    /// Chinese word.
    #[test]
    fn every_event_kind_has_its_chinese_word() {
        let src = include_str!("../../../engine/src/core/model.rs");
        let start = src.find("pub fn kind(&self) -> &'static str {").unwrap_or(src.len());
        let body = &src[start..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        let kinds: Vec<&str> = body.split("=> \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
        assert!(kinds.len() >= 42 && kinds.contains(&"migrated"), "{kinds:?}");
        for k in kinds {
            assert_ne!(event(k, Lang::Zh), k, "`{k}` has no Chinese word");
        }
    }
}
