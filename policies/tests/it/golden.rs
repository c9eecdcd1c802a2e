//! Every bundled policy compiles with no diagnostics, and its compiled graph (IR JSON with its
//! content hash, and the dot drawing) is pinned by a snapshot: a change to the compiler or a
//! policy shows up here for review.

use civicflow_dsl::{compile, Renderer};
use civicflow_policies::BUNDLED;

fn compiled(name: &str, source: &str) -> civicflow_dsl::Compiled {
    match compile(source) {
        Ok(c) => c,
        Err(d) => panic!("{name} does not compile:\n{}", Renderer::new(name, source).text(d.as_slice(), false)),
    }
}

#[test]
fn every_bundled_policy_compiles_cleanly() {
    for b in BUNDLED {
        let c = compiled(b.file, b.source);
        assert!(c.warnings.is_empty(), "{}: {:?}", b.file, c.warnings);
        assert_eq!(c.policy.name, b.name);
    }
}

#[test]
fn compiled_graphs_are_pinned() {
    for b in BUNDLED {
        let c = compiled(b.file, b.source);
        let json = serde_json::to_string_pretty(&serde_json::json!({ "hash": c.hash, "policy": c.policy })).unwrap();
        insta::assert_snapshot!(format!("{}.ir", b.name), json);
        insta::assert_snapshot!(format!("{}.dot", b.name), civicflow_dsl::render::dot(&c.policy));
    }
}

#[test]
fn every_bundled_policy_can_run() {
    // The time zone is one the engine accepts and every node has an id the engine can index.
    for b in BUNDLED {
        let c = compiled(b.file, b.source);
        civicflow_engine::core::Program::new(c.policy, c.hash).unwrap();
    }
}

#[test]
fn every_bundled_policy_is_in_canonical_format() {
    for b in BUNDLED {
        let formatted = civicflow_dsl::fmt::format_source(b.source).unwrap();
        assert!(formatted == b.source, "{} is not formatted: run `civicflow fmt policies/{}`", b.file, b.file);
    }
}
