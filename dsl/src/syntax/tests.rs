use super::*;

#[test]
fn parses_minimal_policy() {
    let f = parse("policy p { role 甲 step 一: task { by 甲 } }").expect("parses");
    assert_eq!(f.policy.name.name, "p");
    assert_eq!(f.policy.items.len(), 2);
}
