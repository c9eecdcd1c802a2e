//! Unit tests of the checker that are easier to read as assertions than as golden files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;

use crate::value::Value;
use crate::{compile, Code};

fn codes(src: &str) -> Vec<Code> {
    compile(src).err().map(|d| d.as_slice().iter().map(|x| x.code).collect()).unwrap_or_default()
}

#[test]
fn reformatting_keeps_the_hash() {
    let a = compile("policy p { role 甲 step 一: task { by 甲 } }").unwrap();
    let b = compile("// a comment\npolicy   p {\n  role 甲\n\n  step 一: task {\n    by 甲 // who\n  }\n}\n").unwrap();
    assert_eq!(a.hash, b.hash);
    let c = compile("policy p { role 甲 step 二: task { by 甲 } }").unwrap();
    assert_ne!(a.hash, c.hash);
}

#[test]
fn exact_fractions_decide_quorum_boundaries() {
    // R2.14: present must exceed 4/5 of those entitled, computed exactly.
    let src = "policy q { param 应到: int param 实到: int let 有效: bool = 实到 > 4/5 * 应到 }";
    let policy = compile(src).unwrap().policy;
    let run = |entitled: i64, present: i64| {
        let params =
            BTreeMap::from([("应到".to_string(), Value::int(entitled)), ("实到".to_string(), Value::int(present))]);
        crate::eval::derived_values(&policy, &params).unwrap()["有效"].clone()
    };
    assert_eq!(run(100, 80), Value::Bool(false));
    assert_eq!(run(100, 81), Value::Bool(true));
    assert_eq!(run(101, 80), Value::Bool(false)); // 4/5 × 101 = 80.8
    assert_eq!(run(101, 81), Value::Bool(true));
}

#[test]
fn a_missing_parameter_is_an_error_not_a_guess() {
    let policy = compile("policy q { param 户数: int let x: int = 户数 + 1 }").unwrap().policy;
    let err = crate::eval::derived_values(&policy, &BTreeMap::new()).unwrap_err();
    assert_eq!(err.to_string(), "`户数` has no value");
}

#[test]
fn procedures_are_inlined_under_the_calling_step() {
    let src = "policy p { role 甲 procedure 子 { param n: int let m: int = n * 2 step s: task { by 甲 } } step 调用: call 子 { with n = 3 } }";
    let c = compile(src).unwrap();
    let ids: Vec<&str> = c.policy.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["调用", "调用/s"]);
    let values = crate::eval::derived_values(&c.policy, &BTreeMap::new()).unwrap();
    assert_eq!(values["调用/m"], Value::int(6));
}

#[test]
fn recursive_procedures_are_refused() {
    let src = "policy p { role 甲 procedure 子 { step s: call 子 } step 调用: call 子 }";
    assert_eq!(codes(src), [Code::E0301]);
}

#[test]
fn a_phase_waiting_for_its_own_step_is_a_cycle() {
    let src = "policy p { role 甲 phase 阶段 { after 内 step 内: task { by 甲 } } }";
    assert_eq!(codes(src), [Code::E0301]);
}

#[test]
fn workday_windows_are_not_refused_on_a_guess() {
    // 10 workdays can span more than 10 calendar days; the solver must not refuse this.
    let src = "policy p { role 甲 param 始: date phase 阶段 { window 始 .. 始 + 10 workdays step 公示: publicity { by 甲 min 12 days } } }";
    assert_eq!(codes(src), []);
    // But 10 calendar days cannot hold a 12-day minimum.
    let src = "policy p { role 甲 param 始: date phase 阶段 { window 始 .. 始 + 10 days step 公示: publicity { by 甲 min 12 days } } }";
    assert_eq!(codes(src), [Code::E0402]);
}

#[test]
fn every_error_of_a_file_is_reported_in_one_run() {
    let src = include_str!("../../tests/data/err/multiple_errors.cf");
    assert_eq!(codes(src), [Code::E0201, Code::E0102, Code::E0103, Code::E0110, Code::E0105]);
}

#[test]
fn a_step_reads_another_steps_form_fields_by_name() {
    let ok = "policy p { role 甲 step 登记: task { by 甲 form { 人数: int } } step 选举: vote { by 甲 after 登记 eligible 登记.人数 elect votes > 1/2 * cast } }";
    assert_eq!(codes(ok), []);
    let bad = "policy p { role 甲 step 登记: task { by 甲 form { 人数: int } } step 选举: vote { by 甲 after 登记 eligible 登记.人 elect votes > 1/2 * cast } }";
    let d = compile(bad).unwrap_err();
    assert_eq!(d.as_slice()[0].message, "step `登记` has no form field `人`");
    assert_eq!(d.as_slice()[0].help.as_deref(), Some("did you mean `人数`?"));
}

/// Issue 11.1: `extend by R max N` lowers to the IR, survives formatting, and needs a deadline,
/// declared roles and a `max` that allows something; a policy without it keeps its encoding.
#[test]
fn an_extension_lowers_and_needs_a_deadline_and_declared_roles() {
    let src = "policy e { role 承办 role 协调办
      step 办结: task { by 承办 due 15 workdays extend by 协调办 max 10 workdays } }";
    let policy = compile(src).unwrap().policy;
    let n = policy.node("办结").unwrap();
    assert_eq!(
        n.extend,
        Some(crate::ir::Extension {
            roles: vec!["协调办".into()],
            max: crate::ir::Span { amount: 10, unit: crate::ir::TimeUnit::Workdays },
            approved_by: Vec::new(),
        })
    );
    let formatted = crate::fmt::format_source(src).unwrap();
    assert!(formatted.contains("extend by 协调办 max 10 workdays"), "{formatted}");
    assert_eq!(compile(&formatted).unwrap().policy.node("办结").unwrap().extend, n.extend);
    let plain = compile("policy p { role 甲 step 一: task { by 甲 due 3 days } }").unwrap().policy;
    assert!(!String::from_utf8(plain.canonical_json()).unwrap().contains("\"extend\""));
    // Issue 11.1: asked for by one role, approved by another.
    let asked = "policy e { role 承办 role 分管领导
      step 办结: task { by 承办 due 15 workdays extend by 承办 max 10 workdays approved by 分管领导 } }";
    let n = compile(asked).unwrap().policy.node("办结").unwrap().extend.clone().unwrap();
    assert_eq!((n.roles, n.approved_by), (vec!["承办".to_string()], vec!["分管领导".to_string()]));
    let formatted = crate::fmt::format_source(asked).unwrap();
    assert!(formatted.contains("extend by 承办 max 10 workdays approved by 分管领导"), "{formatted}");

    let no_due = "policy e { role 承办 role 协调办 step 办结: task { by 承办 extend by 协调办 max 10 workdays } }";
    let d = compile(no_due).unwrap_err();
    assert_eq!(d.as_slice()[0].code, Code::E0110);
    assert_eq!(d.as_slice()[0].message, "`办结` may be extended but has no deadline");
    let zero = "policy e { role 承办 role 协调办 step 办结: task { by 承办 due 3 days extend by 协调办 max 0 days } }";
    assert_eq!(compile(zero).unwrap_err().as_slice()[0].message, "an extension of at most 0 allows none");
    let typo = "policy e { role 承办 role 协调办 step 办结: task { by 承办 due 3 days extend by 协调 max 5 days } }";
    let d = compile(typo).unwrap_err();
    assert_eq!((d.as_slice()[0].code, d.as_slice()[0].help.as_deref()), (Code::E0102, Some("did you mean `协调办`?")));
    let on_phase = "policy e { role 甲 phase 一 { extend by 甲 max 5 days step 二: task { by 甲 } } }";
    assert_eq!(compile(on_phase).unwrap_err().as_slice()[0].code, Code::E0109);
}

/// Issue 11.2: `transfer by R [restart]` lowers to the IR and formats back; `restart` needs a
/// limit.
#[test]
fn a_transfer_lowers_and_restart_needs_a_limit() {
    let src = "policy t { role 承办 bound by starter role 协调办
      step 办结: task { by 承办 due 15 workdays transfer by 协调办 restart } }";
    let n = compile(src).unwrap().policy.node("办结").unwrap().clone();
    assert_eq!(n.transfer, Some(crate::ir::Transfer { roles: vec!["协调办".into()], restart: true }));
    let formatted = crate::fmt::format_source(src).unwrap();
    assert!(formatted.contains("transfer by 协调办 restart"), "{formatted}");
    let kept = "policy t { role 承办 bound by starter role 协调办 step 办结: task { by 承办 transfer by 协调办 } }";
    assert_eq!(
        compile(kept).unwrap().policy.node("办结").unwrap().transfer,
        Some(crate::ir::Transfer { roles: vec!["协调办".into()], restart: false })
    );
    let no_limit =
        "policy t { role 承办 bound by starter role 协调办 step 办结: task { by 承办 transfer by 协调办 restart } }";
    let d = compile(no_limit).unwrap_err();
    assert_eq!(d.as_slice()[0].code, Code::E0110);
    assert_eq!(d.as_slice()[0].message, "`办结` restarts its limit on a transfer but has none");
    let unbound = "policy t { role 承办 role 协调办 step 办结: task { by 承办 transfer by 协调办 } }";
    let d = compile(unbound).unwrap_err();
    assert_eq!(
        (d.as_slice()[0].code, d.as_slice()[0].message.as_str()),
        (Code::E0110, "`办结` may be transferred but acts in no role bound to an office")
    );
}

/// Issue 11.2: `approvers by R from A, B` lowers on an approval step and formats back; it
/// applies to approval steps only.
#[test]
fn approvers_lower_on_an_approval_step_only() {
    let src = "policy a { role 甲 role 乙 role 财政科 role 分管领导
      step 会签: approval { by 甲, 乙 rule all approvers by 分管领导 from 财政科 } }";
    let n = compile(src).unwrap().policy.node("会签").unwrap().clone();
    assert_eq!(
        n.approvers,
        Some(crate::ir::ApproverChanges {
            roles: vec!["分管领导".into()], pool: vec!["财政科".into()], max: None
        })
    );
    let formatted = crate::fmt::format_source(src).unwrap();
    assert!(formatted.contains("approvers by 分管领导 from 财政科"), "{formatted}");
    let on_task = "policy a { role 甲 role 乙 step 办: task { by 甲 approvers by 乙 from 甲 } }";
    assert_eq!(compile(on_task).unwrap_err().as_slice()[0].code, Code::E0109);
    // `max N` bounds the approvers; below the step's own it allows nothing.
    let bounded = src.replace("from 财政科 }", "from 财政科 max 3 }");
    let n = compile(&bounded).unwrap().policy.node("会签").unwrap().clone();
    assert_eq!(n.approvers.and_then(|a| a.max), Some(3));
    assert!(crate::fmt::format_source(&bounded).unwrap().contains("approvers by 分管领导 from 财政科 max 3"));
    let too_few = src.replace("from 财政科 }", "from 财政科 max 1 }");
    let e = compile(&too_few).unwrap_err();
    assert_eq!(
        (e.as_slice()[0].code, e.as_slice()[0].message.as_str()),
        (Code::E0110, "`会签` has 2 approvers but may have at most 1")
    );
}

/// Issue 11.3: `may suspend` on a role lowers to the IR and survives formatting; a policy
/// without it keeps its encoding.
#[test]
fn a_role_that_may_suspend_lowers_and_formats() {
    let src = "policy s { role 承办 role 协调办 \"协调办公室\" may suspend step 一: task { by 承办 } }";
    let policy = compile(src).unwrap().policy;
    let may: Vec<(&str, bool)> = policy.roles.iter().map(|r| (r.name.as_str(), r.may_suspend)).collect();
    assert_eq!(may, [("承办", false), ("协调办", true)]);
    let formatted = crate::fmt::format_source(src).unwrap();
    assert!(formatted.contains("role 协调办 \"协调办公室\" may suspend\n"), "{formatted}");
    let plain = compile("policy p { role 甲 step 一: task { by 甲 } }").unwrap().policy;
    assert!(!String::from_utf8(plain.canonical_json()).unwrap().contains("may_suspend"));
    // Issue 11.4: `may correct`, alone or with `suspend`.
    let src = "policy c { role 甲 may correct role 乙 may suspend, correct step 一: task { by 甲 } }";
    let policy = compile(src).unwrap().policy;
    let may: Vec<(bool, bool)> = policy.roles.iter().map(|r| (r.may_suspend, r.may_correct)).collect();
    assert_eq!(may, [(false, true), (true, true)]);
    let formatted = crate::fmt::format_source(src).unwrap();
    assert!(
        formatted.contains("role 甲 may correct\n") && formatted.contains("role 乙 may suspend, correct\n"),
        "{formatted}"
    );
    assert!(!String::from_utf8(plain.canonical_json()).unwrap().contains("may_correct"));
}

/// Issue 8: `may return`, `urge by` and `owned` lower to the IR; a policy without them keeps the
/// encoding it had (no new keys), so its hash does not move.
#[test]
fn declared_returns_lower_and_leave_other_policies_unchanged() {
    let src = "policy d { role 民生办 role 首办部门 role 领导
      step 分流: task { by 民生办 }
      step 办结: task { by 首办部门 after 分流 owned due 15 workdays on breach escalate 领导
        may return 分流 by 首办部门 urge by 民生办 } }";
    let policy = compile(src).unwrap().policy;
    let n = policy.node("办结").unwrap();
    assert_eq!(n.returns, [crate::ir::ReturnRule { targets: vec!["分流".into()], roles: vec!["首办部门".into()] }]);
    assert_eq!(n.urge_by, ["民生办"]);
    assert!(n.owned);
    let plain = compile("policy p { role 甲 step 一: task { by 甲 } }").unwrap().policy;
    let json = String::from_utf8(plain.canonical_json()).unwrap();
    for key in ["\"returns\"", "\"urge_by\"", "\"owned\"", "may_return"] {
        assert!(!json.contains(key), "{key} in {json}");
    }
    // An unknown target or role gets a did-you-mean; `owned` needs a limit.
    let bad = "policy b { role 民生办 role 首办部门
      step 分流: task { by 民生办 }
      step 办结: task { by 首办部门 after 分流 owned may return 分留 by 首办部 } }";
    let diags = compile(bad).unwrap_err();
    let text: Vec<(Code, String)> =
        diags.as_slice().iter().map(|d| (d.code, d.help.clone().unwrap_or_default())).collect();
    assert!(text.contains(&(Code::E0103, "did you mean `分流`?".into())), "{text:?}");
    assert!(text.contains(&(Code::E0102, "did you mean `首办部门`?".into())), "{text:?}");
    assert!(codes(bad).contains(&Code::E0110), "{text:?}");
}
