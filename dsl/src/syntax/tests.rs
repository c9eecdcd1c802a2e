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
