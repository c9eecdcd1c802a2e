//! Compile-time benchmark: each bundled policy, and a generated policy with 10,000 steps.
//!
//! Run: `cargo bench -p civicflow-dsl --bench compile` (release build). Prints the median and
//! the fastest of several runs; figures go into BENCHMARKS.md.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// A policy of `phases` phases with `per_phase` steps each, chained by `after`, each phase with
/// a dated window, every step with a role, a deadline, a reminder and a validated form — the
/// shapes the bundled procedures use, at a scale no real procedure reaches.
fn generated(phases: usize, per_phase: usize) -> String {
    let mut s = String::from("policy 生成 {\n  role 办事处\n  role 领导小组\n  param 户数: int\n");
    s.push_str("  let 代表: int = if 户数 <= 1500 { 50 } else { 50 + floor((户数 - 1500) / 100) }\n");
    let start = chrono::NaiveDate::from_ymd_opt(2008, 1, 1).unwrap_or_default();
    for p in 0..phases {
        let from = start + chrono::Duration::days((p * 3 * per_phase) as i64);
        let to = from + chrono::Duration::days((3 * per_phase) as i64 - 1);
        let _ = writeln!(s, "  phase 阶段{p} {{\n    window {from} .. {to}");
        if p > 0 {
            let _ = writeln!(s, "    after 阶段{}", p - 1);
        }
        for i in 0..per_phase {
            let _ = writeln!(s, "    step 步骤{p}_{i}: approval {{\n      by 办事处, 领导小组\n      rule any");
            if i > 0 {
                let _ = writeln!(s, "      after 步骤{p}_{}", i - 1);
            }
            s.push_str("      min 1 days\n      due 2 workdays\n      remind 1 workdays before\n      on breach escalate 领导小组\n");
            s.push_str(
                "      form {\n        人数: int\n        require 人数 >= 代表 else \"人数不足\"\n      }\n    }\n",
            );
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

fn measure(name: &str, source: &str, runs: usize) {
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut nodes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        match civicflow_dsl::compile(source) {
            Ok(c) => nodes = c.policy.nodes.len(),
            Err(d) => {
                eprintln!("{name}: does not compile: {:?}", d.as_slice().first().map(|x| &x.message));
                return;
            }
        }
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let min = times[0];
    println!(
        "{name:<28} {:>7} bytes {nodes:>6} nodes   median {:>9.3} ms   min {:>9.3} ms   ({runs} runs)",
        source.len(),
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|it| {
            it.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "cf")).collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap_or_default();
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        measure(&name, &src, 50);
    }
    measure("generated 1,000 steps", &generated(10, 100), 10);
    measure("generated 10,000 steps", &generated(100, 100), 5);
}
