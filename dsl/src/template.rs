//! Notice templates (公示, 证书) are handlebars, written by policy authors and rendered by the
//! server on every view. Handlebars parses and renders by recursion and has no bound of its own:
//! a partial that includes itself, or a few thousand nested blocks, overflows the stack and
//! aborts the whole process. [`check`] is the one judge of a template, used by the compiler
//! (diagnostics E0107, E0124–E0126) and again by the server before it renders a stored template.
//!
//! It never recurses itself: nesting is measured on the text before the parser sees it, and the
//! parsed template is walked with an explicit stack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use handlebars::template::{Parameter, Template, TemplateElement};

/// Blocks (`{{#if}}`, `{{#each}}`, `{{#*inline}}` …) and sub-expressions nested deeper than this
/// are refused (E0125). Notices of the bundled policies nest three deep.
pub const MAX_NESTING: usize = 32;

/// A template whose partials, expanded, would make more elements than this is refused (E0125):
/// each partial may be used many times, so a short text can multiply itself exponentially.
pub const MAX_EXPANDED: u64 = 100_000;

/// What is wrong with a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateProblem {
    /// Not handlebars at all (E0107): the parser's first line.
    Invalid(String),
    /// Nested deeper than [`MAX_NESTING`] (E0125).
    TooDeep { depth: usize },
    /// Its partials expand to more than [`MAX_EXPANDED`] elements (E0125).
    TooLarge,
    /// A partial that includes itself, directly or through others (E0124): the chain.
    Recursive { chain: Vec<String> },
    /// A partial named by an expression (`{{> (lookup …)}}`), which cannot be checked (E0124).
    DynamicPartial,
    /// A partial used but never defined with `{{#*inline "name"}}` (E0126).
    UnknownPartial { name: String },
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateProblem::Invalid(e) => write!(f, "not valid handlebars: {e}"),
            TemplateProblem::TooDeep { depth } => {
                write!(f, "blocks nested {depth} deep (at most {MAX_NESTING})")
            }
            TemplateProblem::TooLarge => {
                write!(f, "its partials expand to more than {MAX_EXPANDED} elements")
            }
            TemplateProblem::Recursive { chain } => write!(
                f,
                "partial `{}` includes itself{}",
                chain.first().map_or("", String::as_str),
                if chain.len() > 2 {
                    format!(" (through {})", chain[1..chain.len() - 1].join(" → "))
                } else {
                    String::new()
                }
            ),
            TemplateProblem::DynamicPartial => f.write_str("a partial named by an expression cannot be checked"),
            TemplateProblem::UnknownPartial { name } => write!(f, "partial `{name}` is not defined"),
        }
    }
}

/// Checks that `source` is a template the server can always render: valid, nested at most
/// [`MAX_NESTING`] deep, every partial defined inline and none recursive, expanding to at most
/// [`MAX_EXPANDED`] elements.
pub fn check(source: &str) -> Result<(), TemplateProblem> {
    let depth = nesting(source);
    if depth > MAX_NESTING {
        return Err(TemplateProblem::TooDeep { depth });
    }
    let template = Template::compile(source)
        .map_err(|e| TemplateProblem::Invalid(e.to_string().lines().next().unwrap_or("").to_string()))?;
    let mut partials: BTreeMap<String, Uses> = BTreeMap::new();
    let root = uses(&template, &mut partials)?;
    for name in root.partials.iter().chain(partials.values().flat_map(|u| u.partials.iter())) {
        if !partials.contains_key(name) {
            return Err(TemplateProblem::UnknownPartial { name: name.clone() });
        }
    }
    acyclic(&partials)?;
    // Elements rendered once everything is expanded, each partial counted from its definition
    // (an acyclic graph, so a memo over names in dependency order terminates).
    let mut size: BTreeMap<&str, u64> = BTreeMap::new();
    while size.len() < partials.len() {
        for (name, u) in &partials {
            if size.contains_key(name.as_str()) || !u.calls.iter().all(|c| size.contains_key(c.as_str())) {
                continue;
            }
            let total = u.calls.iter().fold(u.elements, |acc, c| acc.saturating_add(size[c.as_str()]));
            size.insert(name, total);
        }
    }
    let total = root.calls.iter().fold(root.elements, |acc, c| acc.saturating_add(size[c.as_str()]));
    if total > MAX_EXPANDED {
        return Err(TemplateProblem::TooLarge);
    }
    Ok(())
}

/// The deepest nesting of blocks and parenthesised sub-expressions, read from the text (the
/// parser itself recurses, so a template is measured before it is parsed). Comments are skipped.
fn nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut rest = source;
    while let Some(at) = rest.find("{{") {
        rest = &rest[at + 2..];
        let inner = rest.trim_start_matches(['{', '~']);
        if let Some(comment) = inner.strip_prefix('!') {
            let end = if comment.starts_with("--") { "--}}" } else { "}}" };
            rest = comment.find(end).map_or("", |e| &comment[e + end.len()..]);
            continue;
        }
        let Some(close) = inner.find("}}") else { break };
        let tag = &inner[..close];
        if tag.starts_with('#') || (tag.starts_with('^') && tag.len() > 1) {
            depth += 1;
        } else if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        // Sub-expressions: `(…)` inside the tag (string literals cannot hold `}}` here).
        let mut parens = 0usize;
        for c in tag.chars() {
            match c {
                '(' => {
                    parens += 1;
                    max = max.max(depth + parens);
                }
                ')' => parens = parens.saturating_sub(1),
                _ => {}
            }
        }
        max = max.max(depth);
        rest = &inner[close + 2..];
    }
    max
}

/// What one template body (the whole template, or one inline partial) uses.
#[derive(Default)]
struct Uses {
    /// Elements in the body itself.
    elements: u64,
    /// Partials included, once per inclusion.
    calls: Vec<String>,
    /// The same, as a set.
    partials: BTreeSet<String>,
}

/// Walks `template` with an explicit stack; inline partial definitions are recorded in
/// `defined` with their own uses, everything else counts towards the body it is in.
fn uses(template: &Template, defined: &mut BTreeMap<String, Uses>) -> Result<Uses, TemplateProblem> {
    let mut root = Uses::default();
    // (the body's owner: None for the root, the partial's name otherwise; the elements).
    let mut stack: Vec<(Option<String>, &Template)> = vec![(None, template)];
    while let Some((owner, t)) = stack.pop() {
        for element in &t.elements {
            let body = match &owner {
                None => &mut root,
                Some(name) => defined.entry(name.clone()).or_default(),
            };
            body.elements += 1;
            match element {
                TemplateElement::HelperBlock(h)
                | TemplateElement::Expression(h)
                | TemplateElement::HtmlExpression(h) => {
                    for inner in [&h.template, &h.inverse].into_iter().flatten() {
                        stack.push((owner.clone(), inner));
                    }
                }
                TemplateElement::DecoratorBlock(d) | TemplateElement::DecoratorExpression(d) => {
                    let is_inline = matches!(&d.name, Parameter::Name(n) if n == "inline");
                    match (is_inline, d.params.first(), &d.template) {
                        (true, Some(Parameter::Literal(serde_json::Value::String(name))), Some(inner)) => {
                            defined.entry(name.clone()).or_default();
                            stack.push((Some(name.clone()), inner));
                        }
                        (_, _, Some(inner)) => stack.push((owner.clone(), inner)),
                        _ => {}
                    }
                }
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    let name = match &d.name {
                        Parameter::Name(n) => n.clone(),
                        Parameter::Literal(serde_json::Value::String(s)) => s.clone(),
                        _ => return Err(TemplateProblem::DynamicPartial),
                    };
                    let body = match &owner {
                        None => &mut root,
                        Some(n) => defined.entry(n.clone()).or_default(),
                    };
                    body.calls.push(name.clone());
                    body.partials.insert(name);
                    if let Some(inner) = &d.template {
                        stack.push((owner.clone(), inner));
                    }
                }
                // Text and comments; the enum is non-exhaustive.
                _ => {}
            }
        }
    }
    Ok(root)
}

/// Refuses a partial reachable from itself, naming the chain (depth-first, iterative).
fn acyclic(partials: &BTreeMap<String, Uses>) -> Result<(), TemplateProblem> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in partials.keys() {
        if mark.contains_key(start.as_str()) {
            continue;
        }
        // The path being explored, each with the index of its next callee.
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        mark.insert(start, Mark::Open);
        while let Some((name, next)) = path.last_mut() {
            let callees: Vec<&str> =
                partials.get(*name).map_or(Vec::new(), |u| u.partials.iter().map(String::as_str).collect());
            if let Some(callee) = callees.get(*next).copied() {
                *next += 1;
                match mark.get(callee) {
                    Some(Mark::Open) => {
                        let from = path.iter().position(|(n, _)| *n == callee).unwrap_or(0);
                        let mut chain: Vec<String> = path[from..].iter().map(|(n, _)| n.to_string()).collect();
                        chain.push(callee.to_string());
                        return Err(TemplateProblem::Recursive { chain });
                    }
                    Some(Mark::Done) => {}
                    None => {
                        mark.insert(callee, Mark::Open);
                        path.push((callee, 0));
                    }
                }
            } else {
                mark.insert(name, Mark::Done);
                path.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_bundled_kinds_of_template_pass() {
        let notice = "公示\n{{#each 名单}}{{this}}{{#if @last}}。{{else}}、{{/if}}{{/each}}\n{{#*inline \"签\"}}{{街道}}{{/inline}}{{> 签}}";
        assert_eq!(check(notice), Ok(()));
    }

    #[test]
    fn a_partial_including_itself_is_refused_with_its_chain() {
        assert_eq!(
            check(r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#),
            Err(TemplateProblem::Recursive { chain: vec!["p".into(), "p".into()] })
        );
        let mutual = r#"{{#*inline "a"}}x{{> b}}{{/inline}}{{#*inline "b"}}{{#if y}}{{> a}}{{/if}}{{/inline}}{{> a}}"#;
        let problem = check(mutual).unwrap_err();
        assert_eq!(problem, TemplateProblem::Recursive { chain: vec!["a".into(), "b".into(), "a".into()] });
        assert_eq!(problem.to_string(), "partial `a` includes itself (through b)");
    }

    #[test]
    fn nesting_is_measured_before_parsing() {
        let deep = |n: usize| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        assert_eq!(check(&deep(MAX_NESTING)), Ok(()));
        assert_eq!(check(&deep(MAX_NESTING + 1)), Err(TemplateProblem::TooDeep { depth: MAX_NESTING + 1 }));
        // Two thousand, as in the attack: refused without a parse (which would recurse).
        assert_eq!(check(&deep(2000)), Err(TemplateProblem::TooDeep { depth: 2000 }));
        let subexpr = format!("{{{{x {}y{}}}}}", "(f ".repeat(40), ")".repeat(40));
        assert_eq!(check(&subexpr), Err(TemplateProblem::TooDeep { depth: 40 }));
        // A comment's braces do not count.
        assert_eq!(check(&format!("{{{{!-- {} --}}}}ok", "{{#if a}}".repeat(100))), Ok(()));
    }

    #[test]
    fn partials_that_multiply_are_bounded() {
        // Each level includes the one below ten times: 10^6 elements from a few lines.
        let mut src = String::from(r#"{{#*inline "p0"}}x{{/inline}}"#);
        for i in 1..=6 {
            src.push_str(&format!(
                r#"{{{{#*inline "p{i}"}}}}{}{{{{/inline}}}}"#,
                format!("{{{{> p{}}}}}", i - 1).repeat(10)
            ));
        }
        src.push_str("{{> p6}}");
        assert_eq!(check(&src), Err(TemplateProblem::TooLarge));
        let small = src.replace("{{> p6}}", "{{> p4}}");
        assert_eq!(check(&small), Ok(()));
    }

    #[test]
    fn partials_must_be_defined_and_named_plainly() {
        assert_eq!(check("{{> 落款}}"), Err(TemplateProblem::UnknownPartial { name: "落款".into() }));
        assert_eq!(check(r#"{{> (lookup this "p")}}"#), Err(TemplateProblem::DynamicPartial));
        assert!(matches!(check("{{#if a}}"), Err(TemplateProblem::Invalid(_))));
    }
}
