//! Engine benchmarks, one section per measurement. Figures go into BENCHMARKS.md with the
//! command that produced them and the conditions of the machine.
//!
//! Run (release build): `cargo bench -p civicflow-engine --bench engine -- [section…] [options]`.
//!
//! Sections (none given: all, in this order):
//!
//! - `core`: events/s of `decide` + `apply` through chains of approvals, no I/O;

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark")]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::core::{self, Action, Actor, Command, Context, Program, State};

/// Monday 2025-03-03, 09:00 in Beijing: every instant of the benchmarks is in 2025, a year the
/// bundled calendar covers.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-03T01:00:00Z").unwrap().with_timezone(&Utc)
}

fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-1"), office: role.into(), role: role.into() }
}

// ---- arguments ----

fn sections() -> Vec<String> {
    let mut sections = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bench" => {} // cargo bench passes it
            s if s.starts_with("--") => panic!("unknown option {s}"),
            s => sections.push(s.to_string()),
        }
    }
    if sections.is_empty() {
        sections.push("core".to_string());
    }
    sections
}

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "civicflow-engine bench: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    for section in sections() {
        match section.as_str() {
            "core" => bench_core(),
            other => panic!("unknown section `{other}` (core)"),
        }
    }
}

// ---- policies ----

/// `n` approval steps in a chain, each with a deadline in working days.
fn chain_policy(name: &str, n: usize) -> String {
    let mut s = format!("policy {name} {{\n  timezone \"Asia/Shanghai\"\n  role 科室\n  role 监察\n");
    for i in 0..n {
        s.push_str(&format!("  step s{i}: approval {{\n    by 科室\n"));
        if i > 0 {
            s.push_str(&format!("    after s{}\n", i - 1));
        }
        s.push_str("    due 5 workdays\n    on breach escalate 监察\n  }\n");
    }
    s.push_str("}\n");
    s
}

fn program(source: &str) -> Program {
    let compiled = civicflow_dsl::compile(source).unwrap_or_else(|d| panic!("{:?}", d.as_slice().first()));
    Program::new(compiled.policy, compiled.hash).unwrap()
}

// ---- 1. the pure core ----

fn bench_core() {
    println!("\n## core: decide + apply through a chain of approvals (no I/O)");
    let calendar = Calendar::chinese().unwrap();
    let approver = actor("科室");
    // (chain length, instances): about the same number of commands for each length.
    for (steps, instances) in [(10usize, 5_000usize), (100, 500), (1_000, 50)] {
        let program = program(&chain_policy("chain", steps));
        let ctx = Context { program: &program, calendar: &calendar };
        let mut events = 0u64;
        let mut commands = 0u64;
        let started = Instant::now();
        for i in 0..instances {
            let mut now = t0() + TimeDelta::minutes(i as i64 % 600);
            let mut state = State::new();
            let start = Command::Start { actor: approver.clone(), params: BTreeMap::new() };
            let run = |state: &mut State, command: &Command, now| {
                let out = core::decide(ctx, state, command, now).unwrap();
                for e in &out {
                    core::apply(state, e, now);
                }
                out.len() as u64
            };
            events += run(&mut state, &start, now);
            commands += 1;
            for s in 0..steps {
                now += TimeDelta::minutes(1);
                let approve = Command::Act {
                    actor: approver.clone(),
                    node: format!("s{s}"),
                    action: Action::Approve { comment: None },
                    comment: None,
                };
                events += run(&mut state, &approve, now);
                commands += 1;
            }
            assert_eq!(state.status, core::Status::Completed);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "chain of {steps:>5} steps: {instances:>5} instances, {commands:>7} commands, {events:>7} events \
             in {secs:>6.2} s: {:>9.0} events/s, {:>9.0} commands/s, {:>7.1} µs/command",
            events as f64 / secs,
            commands as f64 / secs,
            secs * 1e6 / commands as f64
        );
    }
}
