//! `docs/diagnostics.md` is generated from the code registry and the golden files, so it cannot
//! drift: this test fails when it is out of date. Regenerate with
//! `UPDATE_DOCS=1 cargo test -p civicflow-dsl --test it docs`.

use std::path::Path;

use civicflow_dsl::{compile, Code, Renderer};

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let err_dir = root.join("tests/data/err");
    let mut files: Vec<String> = std::fs::read_dir(&err_dir)
        .map(|it| it.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = String::from(
        "# Diagnostic codes\n\n\
         Every problem `civicflow check` (and `POST /v1/policies`) reports has a stable code. \
         `civicflow explain CODE` prints the same text. This page is generated from \
         `dsl/src/diag.rs` and the golden files in `dsl/tests/data/err/` by \
         `UPDATE_DOCS=1 cargo test -p civicflow-dsl --test it docs`.\n\n\
         | code | meaning |\n|---|---|\n",
    );
    for c in Code::ALL {
        out.push_str(&format!("| [{0}](#{1}) | {2} |\n", c.as_str(), c.as_str().to_lowercase(), c.title()));
    }
    for c in Code::ALL {
        out.push_str(&format!("\n## {}\n\n{}\n\n{}\n", c.as_str(), c.title(), c.explanation()));
        if let Some(f) = files.iter().find(|f| f.starts_with(c.as_str())) {
            let source = std::fs::read_to_string(err_dir.join(f)).unwrap_or_default();
            let name = f.clone();
            let text = match compile(&source) {
                Ok(_) => String::new(),
                Err(d) => {
                    let mine: Vec<_> = d.as_slice().iter().filter(|x| x.code == *c).cloned().collect();
                    Renderer::new(&name, &source).text(&mine[..mine.len().min(1)], false)
                }
            };
            out.push_str(&format!("\nExample (`dsl/tests/data/err/{f}`):\n\n```text\n{}```\n", text));
        }
    }
    out
}

#[test]
fn diagnostics_doc_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let expected = generate();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/diagnostics.md is out of date; run UPDATE_DOCS=1 cargo test -p civicflow-dsl --test it docs"
    );
}
