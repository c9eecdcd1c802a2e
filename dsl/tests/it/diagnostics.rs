//! Golden tests of diagnostics: every file in `tests/data/err/` compiles to the exact rendered
//! text and JSON in its snapshot; every file in `tests/data/ok/` compiles with none.

use std::path::Path;

use civicflow_dsl::{compile, Code, Renderer};

fn render(path: &Path) -> String {
    let source = std::fs::read_to_string(path).unwrap_or_default();
    let name = format!("err/{}", path.file_name().and_then(|n| n.to_str()).unwrap_or_default());
    let diagnostics = match compile(&source) {
        Ok(_) => return format!("{name}: compiled without errors"),
        Err(d) => d.into_vec(),
    };
    let r = Renderer::new(&name, &source);
    let json = serde_json::to_string_pretty(&r.json(&diagnostics)).unwrap_or_default();
    format!("{}\n---- json ----\n{json}\n", r.text(&diagnostics, false))
}

#[test]
fn each_bad_policy_renders_its_diagnostics() {
    insta::glob!("../data", "err/*.cf", |path| {
        insta::assert_snapshot!(render(path));
    });
}

#[test]
fn each_good_policy_compiles_cleanly() {
    insta::glob!("../data", "ok/*.cf", |path| {
        let source = std::fs::read_to_string(path).unwrap_or_default();
        let result = compile(&source)
            .map(|c| c.warnings.len())
            .map_err(|d| Renderer::new(&path.display().to_string(), &source).text(d.as_slice(), false));
        assert_eq!(result, Ok(0), "{}", path.display());
    });
}

/// The formatter covers every construct the good policies and the bundled ones use: formatting
/// keeps the compiled policy (the same IR hash) and formatting twice changes nothing.
#[test]
fn formatting_keeps_every_good_and_bundled_policy_and_settles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [root.join("tests/data/ok"), root.join("../policies")] {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        files.extend(
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cf")),
        );
    }
    assert!(files.len() >= 14, "{files:?}");
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let before = compile(&source).map(|c| c.hash).unwrap_or_else(|_| panic!("{} compiles", path.display()));
        let once = civicflow_dsl::fmt::format_source(&source).unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
        let after = compile(&once).map(|c| c.hash).unwrap_or_else(|_| panic!("{} formatted compiles", path.display()));
        assert_eq!(after, before, "{}: formatting changed the policy", path.display());
        let twice = civicflow_dsl::fmt::format_source(&once).unwrap_or_default();
        assert_eq!(twice, once, "{}: formatting again changed it", path.display());
    }
}

/// Every diagnostic code has a golden file named after it, and its file produces that code.
#[test]
fn every_code_has_a_golden_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/err");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|it| it.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for code in Code::ALL {
        let file = names.iter().find(|n| n.starts_with(code.as_str()));
        assert!(file.is_some(), "no golden file for {code} in {}", dir.display());
        let path = dir.join(file.map(String::as_str).unwrap_or_default());
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let codes: Vec<Code> =
            compile(&source).err().map(|d| d.as_slice().iter().map(|x| x.code).collect()).unwrap_or_default();
        assert!(codes.contains(code), "{} does not report {code} (got {codes:?})", path.display());
    }
}
