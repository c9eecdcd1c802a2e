//! The memory a `State` takes, measured beside the instance cache's estimate of it.
//!
//! `cargo run --release -p civicflow-engine --example state_size`: for chains of 1, 5 and 50
//! approvals, just started, parses 50,000 states from one snapshot and prints the growth of the
//! resident set per state, the estimate ([`civicflow_engine::runtime::estimated_bytes`]) and
//! the snapshot's JSON length. Linux only (reads `/proc/self/statm`).

use civicflow_engine::core::State;
use civicflow_engine::runtime::estimated_bytes;
use civicflow_engine::sim::Simulation;

fn resident_bytes() -> Result<usize, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| format!("/proc/self/statm: {e}"))?;
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).ok_or("statm unreadable")?;
    Ok(pages * 4096)
}

fn main() -> Result<(), String> {
    const COPIES: usize = 50_000;
    for steps in [1usize, 5, 50] {
        let mut src = String::from("policy chain {\n  role 科室\n");
        for i in 0..steps {
            let after = if i > 0 { format!(" after s{}", i - 1) } else { String::new() };
            src.push_str(&format!("  step s{i}: approval {{ by 科室{after} }}\n"));
        }
        src.push('}');
        let mut sim = Simulation::new(&src, "2026-05-07 09:00").map_err(|e| e.to_string())?;
        sim.start(&[]).map_err(|e| e.to_string())?;
        let text = serde_json::to_string(&sim.state).map_err(|e| e.to_string())?;
        let before = resident_bytes()?;
        let states = (0..COPIES)
            .map(|_| serde_json::from_str::<State>(&text).map_err(|e| e.to_string()))
            .collect::<Result<Vec<State>, String>>()?;
        let measured = resident_bytes()?.saturating_sub(before) / states.len();
        let estimate = estimated_bytes(sim.state.nodes.len(), text.len());
        println!(
            "{steps:>3} steps: {measured:>6} B a state measured, {estimate:>6} B estimated (snapshot {} B of JSON)",
            text.len()
        );
    }
    Ok(())
}
