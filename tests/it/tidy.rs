//! Architecture invariants of ARCHITECTURE.md, checked by reading the sources (rust-analyzer's
//! tidy tests): the one-way dependency rule and the purity of the language crate and of the
//! engine's core.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The names in a manifest's `[dependencies]` table (not dev-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_deps = t == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = t.split_once(['=', '.']) {
                if !name.trim().is_empty() && !name.trim().starts_with('#') {
                    out.push(name.trim().to_string());
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_language_crate_does_no_io_and_knows_no_server() {
    let deps = dependencies(&read("dsl/Cargo.toml"));
    for forbidden in ["tokio", "sqlx", "axum", "tower", "hyper", "reqwest", "civicflow-engine", "civicflow"] {
        assert!(!deps.contains(&forbidden.to_string()), "dsl/Cargo.toml depends on `{forbidden}`");
    }
    for f in rust_files(&root().join("dsl/src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for needle in ["std::fs", "std::net", "SystemTime", "Utc::now", "Local::now", "std::env"] {
                assert!(!line.contains(needle), "{}:{}: `{needle}` in the language crate", f.display(), i + 1);
            }
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    // api → engine → dsl; policies depend on nothing at run time.
    let dsl = dependencies(&read("dsl/Cargo.toml"));
    assert!(!dsl.iter().any(|d| d.starts_with("civicflow")), "dsl depends on {dsl:?}");
    let engine = dependencies(&read("engine/Cargo.toml"));
    assert!(!engine.contains(&"civicflow".to_string()), "engine depends on the api crate");
    assert!(!engine.contains(&"civicflow-policies".to_string()), "engine depends on the bundled policies");
    let policies = dependencies(&read("policies/Cargo.toml"));
    assert!(policies.is_empty(), "policies has run-time dependencies: {policies:?}");
}

/// Test modules (`tests.rs`, `prop.rs`) may read the environment (proptest settings).
fn is_test_module(f: &Path) -> bool {
    f.file_name().is_some_and(|n| n == "tests.rs" || n == "prop.rs")
}

#[test]
fn the_engine_core_reads_no_clock_and_does_no_io() {
    for f in rust_files(&root().join("engine/src/core")) {
        if is_test_module(&f) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for needle in
                ["sqlx", "tokio", "SystemTime", "Utc::now", "Local::now", "std::fs", "std::net", "rand::", "std::env"]
            {
                assert!(!line.contains(needle), "{}:{}: `{needle}` in the pure core", f.display(), i + 1);
            }
        }
    }
}

#[test]
fn every_module_file_says_what_it_is_for() {
    for dir in ["dsl/src", "engine/src", "api/src"] {
        for f in rust_files(&root().join(dir)) {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name == "tests.rs" || f.components().any(|c| c.as_os_str() == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.trim_start().starts_with("//!"), "{} does not start with a `//!` module comment", f.display());
        }
    }
}

/// Issue 9: the API's problem codes come from one registry (`api/src/http/codes.rs`), never a
/// string literal elsewhere (`IDEMPOTENCY_KEY_REUSED` was built twice).
#[test]
fn problem_codes_come_from_the_registry() {
    let mut literal = Vec::new();
    for f in rust_files(&root().join("api/src")) {
        if f.ends_with("codes.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for code in civicflow::http::codes::ProblemCode::ALL {
            if text.contains(&format!("\"{}\"", code.as_str())) {
                literal.push(format!("{}: \"{}\"", f.display(), code.as_str()));
            }
        }
    }
    assert!(literal.is_empty(), "problem codes written as literals:\n{}", literal.join("\n"));
}

/// The codes a `code()` function returns, in the order written: every `=> "PREFIX…"` literal.
fn codes_in(source: &str, prefix: &str) -> Vec<String> {
    let needle = format!("=> \"{prefix}");
    source
        .match_indices(&needle)
        .map(|(at, _)| {
            let rest = &source[at + 4..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// The `## CODE` headings of a page.
fn headings(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Issue 9: each family of codes has one registry and its page. The core's refusal codes (`F…`,
/// formerly `R…`, which read like DOMAIN rule ids) are in docs/refusals.md, the store's in
/// docs/store-errors.md: every code once, each with its page section, no section for a code that
/// is gone.
#[test]
fn every_refusal_and_store_code_has_its_page() {
    for (source, prefix, page) in [
        ("engine/src/core/refusal.rs", "F0", "docs/refusals.md"),
        ("engine/src/store/error.rs", "STORE0", "docs/store-errors.md"),
    ] {
        let codes = codes_in(&read(source), prefix);
        assert!(codes.len() >= 16, "{source}: found only {codes:?}");
        let unique: std::collections::BTreeSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len(), "{source}: a code twice in {codes:?}");
        let documented: std::collections::BTreeSet<String> = headings(&read(page)).into_iter().collect();
        let codes: std::collections::BTreeSet<String> = codes.into_iter().collect();
        assert_eq!(
            codes.difference(&documented).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "codes of {source} without a section in {page}"
        );
        assert_eq!(
            documented.difference(&codes).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "sections of {page} for codes {source} no longer has"
        );
    }
    // Each refusal's section keeps its old code as an alias.
    let refusals = read("docs/refusals.md");
    for code in codes_in(&read("engine/src/core/refusal.rs"), "F0") {
        let section = refusals.split(&format!("## {code}\n")).nth(1).unwrap();
        assert!(section.trim_start().starts_with(&format!("Alias `R{}`", &code[1..])), "{code} names its alias");
    }
}
