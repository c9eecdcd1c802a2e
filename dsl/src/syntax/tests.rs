#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use super::*;

#[test]
fn parses_minimal_policy() {
    let f = parse("policy p { role 甲 step 一: task { by 甲 } }").expect("parses");
    assert_eq!(f.policy.name.name, "p");
    assert_eq!(f.policy.items.len(), 2);
}

#[test]
fn parses_language_reference_sample() {
    let src = include_str!("../../tests/data/ok/reference_sample.cf");
    let f = parse(src).map_err(|d| (d.message, d.span)).expect("parses");
    assert_eq!(f.policy.name.name, "election");
    assert!(f.comments.iter().any(|c| c.text.trim() == "R2.8"));
}

fn first_item(src: &str) -> Item {
    let f = parse(src).map_err(|d| (d.message, d.span)).expect("parses");
    f.policy.items.into_iter().next().expect("an item")
}

#[test]
fn spans_leave_out_trailing_blanks_and_comments() {
    let src = "policy p {\n  let x: int = 1 + 2 // 注   \r\n  // 下一行\r\n  role r\n}";
    let item = first_item(src);
    assert_eq!(&src[item.span().start..item.span().end], "let x: int = 1 + 2");
}

#[test]
fn a_comment_ending_in_a_brace_is_not_a_step_block() {
    let Item::Step(s) = first_item("policy p { step a: task // }\n }") else { panic!("a step") };
    assert!(!s.has_block);
    let Item::Step(s) = first_item("policy p { step a: task // x\n {} }") else { panic!("a step") };
    assert!(s.has_block);
}

#[test]
fn comments_know_whether_code_precedes_them_on_their_line() {
    let f = parse("// a\npolicy p { role r // b\n\t// c\n}").expect("parses");
    let flags: Vec<(String, bool)> = f.comments.into_iter().map(|c| (c.text, c.trailing)).collect();
    assert_eq!(flags, [(" a".to_string(), false), (" b".to_string(), true), (" c".to_string(), false)]);
}

#[test]
fn range_patterns_ignore_comments_inside_them() {
    let Item::Let(b) = first_item("policy p { let x: int = match a { - // c\n 3..=-1 => 1, 1 // ..=\n .. => 2 } }")
    else {
        panic!("a let")
    };
    let ExprKind::Match { arms, .. } = b.value.kind else { panic!("a match") };
    let kinds: Vec<PatternKind> = arms.into_iter().map(|a| a.pattern.kind).collect();
    assert_eq!(
        kinds,
        [
            PatternKind::Range { low: Some("-3".into()), high: Some("-1".into()) },
            PatternKind::Range { low: Some("1".into()), high: None },
        ]
    );
}

/// Each of these would exhaust the stack (pest's, the walker's or a later pass's) without a bound.
/// Run on a main thread's 8 MiB: unoptimized, the parser needs more than a test thread's 2 MiB
/// even for the 64 levels of brackets allowed (optimized, well under 512 KiB).
#[test]
fn deep_or_long_expressions_are_refused_not_overflowed() {
    std::thread::Builder::new().stack_size(8 << 20).spawn(deep_cases).expect("spawns").join().expect("no panic");
}

fn deep_cases() {
    let n = 20_000;
    let cases = [
        format!("policy p {{ let x: int = {}1 }}", "-".repeat(n)),
        format!("policy p {{ let x: bool = {}a }}", "not ".repeat(n)),
        format!("policy p {{ let x: int = 1{} }}", " + 1".repeat(n)),
        format!("policy p {{ let x: int = a{} }}", ".b".repeat(n)),
        format!("policy p {{ let x: bool = a{} }}", " < not b".repeat(n)),
        format!("policy p {{ let x: int = if a {{ 1 }}{} else {{ 2 }} }}", " else if a { 1 }".repeat(n)),
        format!("policy p {{ let x: int = {}a }}", "if ".repeat(n)),
        format!("policy p {{ let x: int = {}a }}", "match ".repeat(n)),
        format!("policy p {{ param x: {}int }}", "list\u{FEFF}<".repeat(n)),
    ];
    for src in cases {
        let code = parse(&src).map(|_| ()).map_err(|d| d.code);
        assert_eq!(code, Err(Code::E0002), "{}", &src[..60]);
    }
    let chain = format!("policy p {{ let x: int = if a {{ 1 }}{} else {{ 2 }} }}", " else if a { 1 }".repeat(100));
    assert!(parse(&chain).is_ok());
}

/// The nesting bound counts brackets only: not comparisons, not brackets in strings or comments.
#[test]
fn nesting_ignores_comparisons_strings_and_comments() {
    let many = "  let x: bool = a < b and c <= d\n".repeat(100);
    assert!(parse(&format!("policy p {{\n{many}}}")).is_ok());
    let quoted =
        format!("policy p {{ template t \"\"\"a\"b{}\"\"\" role r // {}\n}}", "(".repeat(100), "[".repeat(100));
    assert!(parse(&quoted).is_ok());
}
