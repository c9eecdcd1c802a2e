#![doc = include_str!("engine.md")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark")]

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::{SimulatedClock, SystemClock};
use civicflow_engine::core::{self, Action, Actor, Command, Context, Event, Program, State};
use civicflow_engine::runtime::{open_step_rows, timer_kind_word, Runtime};
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{
    Commit, GroupCommitConfig, GroupCommitter, InboxQuery, InstanceRecord, NewEvent, NewTimer, OpenStepRow, Store,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Monday 2025-03-03, 09:00 in Beijing: every instant of the benchmarks is in 2025, a year the
/// bundled calendar covers.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-03T01:00:00Z").unwrap().with_timezone(&Utc)
}

fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-1"), office: role.into(), role: role.into() }
}

// ---- arguments ----

#[derive(Clone, Debug)]
struct Args {
    sections: Vec<String>,
    sqlite: bool,
    postgres: bool,
    scale: f64,
    secs: f64,
    clients: Vec<usize>,
    chain: usize,
    /// `approvals` with the global audit tree (`true`), without (`false`), or both.
    audit_log: Vec<bool>,
    /// `approvals`' instance ids in start order (as `POST /v1/instances` makes them) or by client.
    time_ids: bool,
}

/// Every section this bench has (with none named it runs the first five).
const SECTIONS: [&str; 7] = ["core", "approvals", "load", "timers", "service", "inbox", "proofs"];

/// A command line this bench cannot run: says why on standard error and exits 2.
fn usage_error(why: &str) -> ! {
    eprintln!("engine bench: {why}; see --help");
    std::process::exit(2);
}

/// An option's value, parsed, or the usage error `form` (the option as `--help` writes it).
fn value<T: FromStr>(given: Option<String>, form: &str) -> T {
    given.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage_error(&format!("expected {form}")))
}

fn args() -> Args {
    let mut a = Args {
        sections: Vec::new(),
        sqlite: true,
        postgres: true,
        scale: 1.0,
        secs: 8.0,
        clients: vec![1, 16, 256],
        chain: 50,
        audit_log: vec![true],
        time_ids: true,
    };
    let (mut only_sqlite, mut only_pg) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {} // cargo bench passes it
            "--sqlite" => only_sqlite = true,
            "--postgres" => only_pg = true,
            "--scale" => a.scale = value(it.next(), "--scale F"),
            "--chain" => a.chain = value(it.next(), "--chain N"),
            "--secs" => a.secs = value(it.next(), "--secs S"),
            "--audit-log" => {
                let list = it.next().unwrap_or_else(|| usage_error("expected --audit-log on|off|both[,…]"));
                a.audit_log = list
                    .split(',')
                    .flat_map(|w| match w {
                        "on" => vec![true],
                        "off" => vec![false],
                        "both" => vec![true, false],
                        _ => usage_error("expected --audit-log on|off|both[,…]"),
                    })
                    .collect();
            }
            "--ids" => {
                a.time_ids = match it.next().as_deref() {
                    Some("time") => true,
                    Some("client") => false,
                    _ => usage_error("expected --ids time|client"),
                }
            }
            "--clients" => {
                let list = it.next().unwrap_or_else(|| usage_error("expected --clients A,B"));
                a.clients = list.split(',').map(|n| value(Some(n.to_string()), "--clients A,B")).collect()
            }
            "--help" | "-h" => {
                print!("{}", include_str!("engine.md"));
                std::process::exit(0);
            }
            s if s.starts_with('-') => usage_error(&format!("unknown option `{s}`")),
            s if SECTIONS.contains(&s) => a.sections.push(s.to_string()),
            s => usage_error(&format!("unknown section `{s}` (sections: {})", SECTIONS.join(", "))),
        }
    }
    if only_sqlite || only_pg {
        a.sqlite = only_sqlite;
        a.postgres = only_pg;
    }
    if a.sections.is_empty() {
        a.sections = SECTIONS[..5].iter().map(|s| s.to_string()).collect();
    }
    a
}

fn main() {
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("load-measure") {
        // The fresh process of the `load` section.
        let rest: Vec<String> = raw.collect();
        return runtime().block_on(load_measure(&rest));
    }
    let args = args();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "civicflow-engine bench: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    for section in args.sections.clone() {
        match section.as_str() {
            "core" => bench_core(),
            "approvals" => runtime().block_on(bench_approvals(&args)),
            "load" => runtime().block_on(bench_load(&args)),
            "timers" => runtime().block_on(bench_timers(&args)),
            "service" => runtime().block_on(bench_service(&args)),
            "inbox" => runtime().block_on(bench_inbox(&args)),
            "proofs" => runtime().block_on(bench_proofs(&args)),
            other => unreachable!("`args` admits only SECTIONS, not `{other}`"),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
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

/// `n` approval steps open at once, step `i` due in `i + 1` days: `n` pending timers per instance.
fn parallel_policy(name: &str, n: usize) -> String {
    let mut s = format!("policy {name} {{\n  timezone \"Asia/Shanghai\"\n  role 科室\n  role 监察\n");
    for i in 0..n {
        s.push_str(&format!(
            "  step s{i}: approval {{\n    by 科室\n    due {} days\n    on breach escalate 监察\n  }}\n",
            i + 1
        ));
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

// ---- stores ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

fn backends(args: &Args) -> Vec<Backend> {
    let mut out = Vec::new();
    if args.sqlite {
        out.push(Backend::Sqlite);
    }
    if args.postgres {
        out.push(Backend::Postgres);
    }
    out
}

fn pg_url() -> String {
    std::env::var("CIVICFLOW_BENCH_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into())
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CIVICFLOW_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

async fn admin() -> PgPool {
    let options = PgConnectOptions::from_str(&pg_url()).unwrap();
    PgPoolOptions::new().max_connections(1).connect_with(options).await.unwrap()
}

fn schema_name(what: &str) -> String {
    format!("cf_bench_{what}_{}", std::process::id())
}

async fn create_schema(schema: &str) {
    let admin = admin().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&admin).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
    admin.close().await;
}

async fn drop_schema(schema: &str) {
    let admin = admin().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&admin).await.unwrap();
    admin.close().await;
}

async fn pg_store(schema: &str, connections: u32, bulk: bool) -> PgStore {
    let mut options = PgConnectOptions::from_str(&pg_url()).unwrap();
    options = if bulk {
        options.options([("search_path", schema), ("synchronous_commit", "off")])
    } else {
        options.options([("search_path", schema)])
    };
    PgStore::connect_with(options, connections).await.unwrap()
}

async fn sqlite_store(path: &Path, bulk: bool) -> SqliteStore {
    let store = SqliteStore::open(path).await.unwrap();
    if bulk {
        sqlx::query("PRAGMA synchronous=OFF").execute(store.writer_pool()).await.unwrap();
    }
    store
}

/// Peak and current resident set size of this process, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn new_runtime(store: Arc<dyn Store>, clock: Arc<SimulatedClock>, node: &str) -> Arc<Runtime> {
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    Arc::new(Runtime::new(store, committer, clock, Arc::new(Calendar::chinese().unwrap()), node.into()))
}

// ---- 2. durable approvals ----

async fn bench_approvals(args: &Args) {
    println!(
        "\n## approvals: durable approvals through the runtime and its group committer \
         ({}-step chains; {} s per configuration)",
        args.chain, args.secs
    );
    for backend in backends(args) {
        for (&clients, &audit_log) in args.clients.iter().flat_map(|c| args.audit_log.iter().map(move |a| (c, a))) {
            civicflow_engine::store::benchmark_without_audit_log(!audit_log);
            let (store, cleanup): (Arc<dyn Store>, Cleanup) = match backend {
                Backend::Sqlite => {
                    let dir = bench_dir();
                    let s = sqlite_store(&dir.path().join("bench.db"), false).await;
                    (Arc::new(s.clone()), Cleanup::Sqlite(s, dir))
                }
                Backend::Postgres => {
                    let schema = schema_name("approvals");
                    create_schema(&schema).await;
                    let s = pg_store(&schema, 8, false).await;
                    (Arc::new(s.clone()), Cleanup::Postgres(s, schema))
                }
            };
            let clock = Arc::new(SimulatedClock::new(t0()));
            let rt = new_runtime(store.clone(), clock, "bench");
            rt.publish(&chain_policy("chain", args.chain)).await.unwrap();
            let span = Duration::from_secs_f64(args.secs);
            let written = write_bytes();
            let before = rt.commit_stats();
            let (count, mut latencies, elapsed, all) = run_clients(&rt, clients, args.chain, span, args.time_ids).await;
            let after = rt.commit_stats();
            let batches = (after.batches - before.batches).max(1) as f64;
            // SQLite is written by this process (WAL frames, checkpoints); PostgreSQL by its server.
            let disk = match backend {
                Backend::Sqlite => {
                    format!("; disk {:.0} B per approval", (write_bytes() - written) as f64 / all as f64)
                }
                Backend::Postgres => String::new(),
            };
            latencies.sort();
            let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
            println!(
                "{:<10} {clients:>3} clients{}: {count:>7} approvals in {:.2} s = {:>7.0} approvals/s; \
                 latency p50 {:>7.2} ms, p99 {:>7.2} ms{disk}",
                backend.name(),
                if audit_log { ", with the audit tree" } else { ", no audit tree" },
                elapsed.as_secs_f64(),
                count as f64 / elapsed.as_secs_f64(),
                pct(0.50).as_secs_f64() * 1e3,
                pct(0.99).as_secs_f64() * 1e3,
            );
            // The committer is the serial stage: its time per commit bounds throughput.
            println!(
                "{:<10} {clients:>3} clients: {:.1} commits per batch, {:.2} ms per batch, {:.0} µs of the committer per commit",
                "",
                (after.commits - before.commits) as f64 / batches,
                (after.busy_micros - before.busy_micros) as f64 / batches / 1e3,
                (after.busy_micros - before.busy_micros) as f64 / (after.commits - before.commits).max(1) as f64,
            );
            drop(rt);
            cleanup.run().await;
        }
    }
    civicflow_engine::store::benchmark_without_audit_log(false);
}

/// Runs `clients` tasks approving steps of their own instances for `span` (after a warm-up of a
/// tenth of it); returns the approvals completed in the span, their latencies, the span and
/// the approvals made in all (warm-up and the last ones included: what the disk saw).
async fn run_clients(
    rt: &Arc<Runtime>,
    clients: usize,
    chain: usize,
    span: Duration,
    time_ids: bool,
) -> (usize, Vec<Duration>, Duration, usize) {
    let started = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let warmup = span / 10;
    let begin = Instant::now();
    let from = begin + warmup;
    let until = from + span;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (rt, started) = (rt.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            let approver = actor("科室");
            let mut latencies = Vec::new();
            let mut count = 0usize;
            let mut all = 0usize;
            'outer: for k in 0.. {
                let id = if time_ids {
                    // The server's shape (`i-`, a time, random digits): a counter for the time.
                    let n = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    format!("i-{n:012x}{c:016x}")
                } else {
                    format!("c{c}-{k}")
                };
                rt.start(&id, "chain", None, &approver, BTreeMap::new(), None).await.unwrap();
                for s in 0..chain {
                    let t = Instant::now();
                    if t >= until {
                        break 'outer;
                    }
                    rt.act(&id, &approver, &format!("s{s}"), Action::Approve { comment: None }, None, None)
                        .await
                        .unwrap();
                    all += 1;
                    let done = Instant::now();
                    if t >= from && done <= until {
                        latencies.push(done - t);
                        count += 1;
                    }
                }
            }
            (count, latencies, all)
        }));
    }
    let (mut count, mut all) = (0, 0);
    let mut latencies = Vec::new();
    for t in tasks {
        let (c, l, a) = t.await.unwrap();
        count += c;
        all += a;
        latencies.extend(l);
    }
    (count, latencies, span, all)
}

/// The bytes this process caused to be written to storage so far (`write_bytes` of
/// `/proc/self/io`; 0 where it cannot be read).
fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

enum Cleanup {
    Sqlite(SqliteStore, tempfile::TempDir),
    Postgres(PgStore, String),
}

impl Cleanup {
    async fn run(self) {
        match self {
            Cleanup::Sqlite(s, dir) => {
                s.close().await;
                drop(dir);
            }
            Cleanup::Postgres(s, schema) => {
                s.close().await;
                drop_schema(&schema).await;
            }
        }
    }
}

// ---- bulk set-up ----

/// The first commit of an instance started at `now`, as the runtime would make it.
struct Template {
    events: Vec<NewEvent>,
    snapshot: serde_json::Value,
    status: String,
    timers: Vec<NewTimer>,
    open_steps: Vec<OpenStepRow>,
    at: DateTime<Utc>,
}

fn template(ctx: Context, now: DateTime<Utc>) -> Template {
    let who = actor("科室");
    let command = Command::Start { actor: who.clone(), params: BTreeMap::new() };
    let events: Vec<Event> = core::decide(ctx, &State::new(), &command, now).unwrap();
    let mut state = State::new();
    for e in &events {
        core::apply(&mut state, e, now);
    }
    Template {
        events: events
            .iter()
            .map(|e| NewEvent {
                at: now,
                actor: who.principal.clone(),
                role: Some(who.role.clone()),
                kind: e.kind().to_string(),
                payload: serde_json::to_value(e).unwrap().into(),
            })
            .collect(),
        snapshot: serde_json::to_value(&state).unwrap(),
        status: state.status.word().to_string(),
        timers: core::pending_timers(ctx, &state)
            .into_iter()
            .map(|t| NewTimer {
                instance: String::new(),
                node: t.node.clone(),
                kind: timer_kind_word(t.kind).to_string(),
                due_at: t.at,
                payload: serde_json::json!({ "kind": t.kind, "at": t.at }),
            })
            .collect(),
        open_steps: open_step_rows(core::open_steps(ctx.program, &state)),
        at: now,
    }
}

/// Publishes `source` and creates `n` instances `i<k>` with `create_instance`, `concurrency` at a
/// time; instance `k` starts `k % starts` minutes after [`t0`]. Returns the policy's name.
async fn bulk_create(store: Arc<dyn Store>, source: &str, n: usize, starts: usize, concurrency: usize) -> String {
    let clock = Arc::new(SimulatedClock::new(t0()));
    let rt = new_runtime(store.clone(), clock, "setup");
    let published = rt.publish(source).await.unwrap().record;
    let program = rt.program(&published.name, Some(&published.hash)).await.unwrap();
    let calendar = rt.calendar();
    let ctx = Context { program: &program, calendar: &calendar };
    let templates: Arc<Vec<Template>> =
        Arc::new((0..starts).map(|k| template(ctx, t0() + TimeDelta::minutes(k as i64))).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (store, templates, done) = (store.clone(), templates.clone(), done.clone());
        let (name, hash) = (published.name.clone(), published.hash.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = w;
            while k < n {
                let t = &templates[k % templates.len()];
                let id = format!("i{k}");
                let record = InstanceRecord {
                    id: id.clone(),
                    policy_name: name.clone(),
                    policy_hash: hash.clone(),
                    version: 0,
                    status: t.status.clone(),
                    snapshot: t.snapshot.clone(),
                    snapshot_version: 0,
                    created_at: t.at,
                    updated_at: t.at,
                };
                let commit = Commit {
                    instance: id.clone(),
                    expected_version: 0,
                    events: t.events.clone(),
                    status: t.status.clone(),
                    snapshot: Some(t.snapshot.to_string()),
                    new_timers: t.timers.iter().map(|x| NewTimer { instance: id.clone(), ..x.clone() }).collect(),
                    open_step_nodes: t.open_steps.iter().map(|r| r.node.clone()).collect(),
                    open_step_rows: t.open_steps.clone(),
                    cancel_timers_for_nodes: Vec::new(),
                    fire: None,
                    idempotency: None,
                    ..Commit::default()
                };
                store.create_instance(record, commit).await.unwrap();
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 20_000 == 0 {
                    eprintln!("  … {d} instances created ({:.0} s)", began.elapsed().as_secs_f64());
                }
                k += concurrency;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    published.name
}

// ---- 3. a large store at start-up ----

const TIMERS_PER_INSTANCE: usize = 10;

async fn bench_load(args: &Args) {
    let n = ((100_000.0 * args.scale) as usize).max(1);
    println!(
        "\n## load: {n} instances with {} pending timers; first claim and first load in a fresh process",
        n * TIMERS_PER_INSTANCE
    );
    for backend in backends(args) {
        let source = parallel_policy("parallel", TIMERS_PER_INSTANCE);
        let began = Instant::now();
        let (target, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = bench_dir();
                let path = dir.path().join("bench.db");
                let s = sqlite_store(&path, true).await;
                bulk_create(Arc::new(s.clone()), &source, n, 1_000, 4).await;
                s.wal_checkpoint().await.unwrap();
                s.close().await;
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                println!(
                    "SQLite: created in {:.1} s, database file {:.0} MiB",
                    began.elapsed().as_secs_f64(),
                    mib(size)
                );
                (path.display().to_string(), Cleanup::Sqlite(sqlite_store(&path, false).await, dir))
            }
            Backend::Postgres => {
                let schema = schema_name("load");
                create_schema(&schema).await;
                let s = pg_store(&schema, 8, true).await;
                bulk_create(Arc::new(s.clone()), &source, n, 1_000, 8).await;
                s.close().await;
                let admin = admin().await;
                sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {schema}.timers"))).execute(&admin).await.unwrap();
                sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {schema}.instances"))).execute(&admin).await.unwrap();
                admin.close().await;
                println!("PostgreSQL: created in {:.1} s", began.elapsed().as_secs_f64());
                (schema.clone(), Cleanup::Postgres(pg_store(&schema, 1, false).await, schema))
            }
        };
        let kind = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["load-measure", kind, &target, &n.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "the measuring process failed: {status}");
        cleanup.run().await;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The fresh process of the `load` section: `load-measure <sqlite|postgres> <path|schema> <n>`.
async fn load_measure(args: &[String]) {
    let (hwm0, rss0) = rss();
    let n: usize = args[2].parse().unwrap();
    let t = Instant::now();
    let store: Arc<dyn Store> = match args[0].as_str() {
        "sqlite" => Arc::new(SqliteStore::open(&args[1]).await.unwrap()),
        _ => Arc::new(pg_store(&args[1], 8, false).await),
    };
    let opened = t.elapsed();
    // Past the first two deadlines of every instance (steps due in 1 and 2 days, at the end of
    // 2025-03-04 and 2025-03-05 local): 2n timers are due.
    let clock = Arc::new(SimulatedClock::new(t0() + TimeDelta::days(3)));
    let rt = new_runtime(store.clone(), clock.clone(), "measure");
    let t = Instant::now();
    let claimed =
        store.claim_due_timers("measure", Some(clock_now(&clock)), Duration::from_secs(30), 256).await.unwrap();
    let first_claim = t.elapsed();
    let id = format!("i{}", n / 2);
    let t = Instant::now();
    let (_, state) = rt.load(&id).await.unwrap();
    let first_load = t.elapsed();
    let t = Instant::now();
    for k in 0..100 {
        rt.load(&format!("i{}", (k * 7919) % n)).await.unwrap();
    }
    let hundred = t.elapsed();
    let (hwm1, rss1) = rss();
    println!(
        "{:<10} open {:>7.1} ms; first claim_due_timers {:>7.1} ms ({} claimed of {} due); first load {:>6.2} ms \
         ({} nodes), 100 more loads {:>6.1} ms; peak RSS {hwm0:.1} MiB before, {hwm1:.1} MiB after \
         (RSS {rss0:.1} → {rss1:.1} MiB)",
        if args[0] == "sqlite" { "SQLite" } else { "PostgreSQL" },
        opened.as_secs_f64() * 1e3,
        first_claim.as_secs_f64() * 1e3,
        claimed.len(),
        2 * n,
        first_load.as_secs_f64() * 1e3,
        state.nodes.len(),
        hundred.as_secs_f64() * 1e3,
    );
}

fn clock_now(clock: &SimulatedClock) -> DateTime<Utc> {
    civicflow_engine::clock::Clock::now(clock)
}

// ---- 4. a burst of due timers ----

/// `n` instances of a one-step policy started at t0 (their `n` deadline timers due in the same
/// instant), bulk-created; the stores to fire them with: one on SQLite, two nodes' on PostgreSQL.
async fn burst_stores(backend: Backend, n: usize) -> (Vec<Arc<dyn Store>>, Cleanup) {
    // One step due in one day: every instance started at t0 has its deadline at the same instant.
    let source = parallel_policy("burst", 1);
    match backend {
        Backend::Sqlite => {
            let dir = bench_dir();
            let path = dir.path().join("bench.db");
            let s = sqlite_store(&path, true).await;
            bulk_create(Arc::new(s.clone()), &source, n, 1, 4).await;
            s.wal_checkpoint().await.unwrap();
            s.close().await;
            let s = sqlite_store(&path, false).await;
            (vec![Arc::new(s.clone())], Cleanup::Sqlite(s, dir))
        }
        Backend::Postgres => {
            let schema = schema_name("timers");
            create_schema(&schema).await;
            let s = pg_store(&schema, 8, true).await;
            bulk_create(Arc::new(s.clone()), &source, n, 1, 8).await;
            s.close().await;
            let admin = admin().await;
            sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {schema}.timers"))).execute(&admin).await.unwrap();
            admin.close().await;
            // Two nodes: two stores (two pools), two runtimes.
            let a = pg_store(&schema, 8, false).await;
            let b = pg_store(&schema, 8, false).await;
            (vec![Arc::new(a.clone()), Arc::new(b)], Cleanup::Postgres(a, schema))
        }
    }
}

async fn bench_timers(args: &Args) {
    let n = ((100_000.0 * args.scale) as usize).max(1);
    println!("\n## timers: {n} timers due in the same second, fired by fire_due loops");
    for backend in backends(args) {
        let (stores, cleanup) = burst_stores(backend, n).await;
        let clock = Arc::new(SimulatedClock::new(t0() + TimeDelta::days(2)));
        let began = Instant::now();
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            let rt = new_runtime(store.clone(), clock.clone(), &format!("node-{i}"));
            tasks.push(tokio::spawn(async move {
                let mut fired = 0;
                loop {
                    let k = rt.fire_due(1024, Duration::from_secs(60)).await.unwrap();
                    if k == 0 {
                        return fired;
                    }
                    fired += k;
                }
            }));
        }
        let mut per_node = Vec::new();
        for t in tasks {
            per_node.push(t.await.unwrap());
        }
        let elapsed = began.elapsed();
        let fired: usize = per_node.iter().sum();
        assert_eq!(fired, n, "every timer fired once");
        println!(
            "{:<10} {} runtime(s): {fired} timers fired in {:.2} s = {:.0} timers/s (per runtime: {per_node:?})",
            backend.name(),
            stores.len(),
            elapsed.as_secs_f64(),
            fired as f64 / elapsed.as_secs_f64(),
        );
        drop(stores);
        cleanup.run().await;
    }
}

// ---- 5. the timer service on the wall clock ----

/// Issue 10.5: how long after their due instant the timer service (`Runtime::timer_loop`, as
/// `civicflow serve` runs it, real clock, interval 10 s) has fired a burst of timers: the set-up
/// of `timers`, then every pending timer's `due_at` moved to 3 s from now.
async fn bench_service(args: &Args) {
    let n = ((100_000.0 * args.scale) as usize).max(1);
    println!("\n## service: {n} timers due at one wall-clock instant, fired by the timer service");
    for backend in backends(args) {
        let (stores, cleanup) = burst_stores(backend, n).await;
        let due = Utc::now() + TimeDelta::seconds(3);
        // The timers not fired yet (pending or claimed), counted in the database.
        let live_timers = || async {
            let sql = "SELECT COUNT(*) FROM timers WHERE state IN ('pending', 'claimed')";
            match &cleanup {
                Cleanup::Sqlite(s, _) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.reader_pool()).await.unwrap(),
                Cleanup::Postgres(s, _) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await.unwrap(),
            }
        };
        match &cleanup {
            Cleanup::Sqlite(s, _) => {
                sqlx::query("UPDATE timers SET due_at = ? WHERE state = 'pending'")
                    .bind(due.timestamp_micros())
                    .execute(s.writer_pool())
                    .await
                    .unwrap();
            }
            Cleanup::Postgres(s, _) => {
                sqlx::query("UPDATE timers SET due_at = $1 WHERE state = 'pending'")
                    .bind(due)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (mut loops, mut runtimes) = (Vec::new(), Vec::new());
        for (i, store) in stores.iter().enumerate() {
            let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
            let calendar = Arc::new(Calendar::chinese().unwrap());
            let rt =
                Arc::new(Runtime::new(store.clone(), committer, Arc::new(SystemClock), calendar, format!("node-{i}")));
            runtimes.push(rt.clone());
            loops.push(tokio::spawn(rt.timer_loop(Duration::from_secs(10), stopped.clone())));
        }
        // Progress from the committers' own counts (written batches, in this process): counting
        // the live timers in the database every 5 ms read up to every timer each time and took
        // the database's CPU from what it measured (at 100,000 on PostgreSQL, a sequential scan
        // of the table 200 times a second). The database confirms the end.
        let committed = || runtimes.iter().map(|rt: &Arc<Runtime>| rt.commit_stats().commits).sum::<u64>() as usize;
        let mut first = None;
        loop {
            let done = committed();
            if done > 0 && first.is_none() {
                first = Some(Utc::now());
            }
            // A refused commit counts too: past `n`, the database says whether all fired.
            if done >= n && live_timers().await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let done = Utc::now();
        let after = |at: DateTime<Utc>| (at - due).num_microseconds().unwrap_or(0) as f64 / 1e6;
        println!(
            "{:<10} {} node(s): first fired {:.3} s after due, all {n} fired {:.3} s after due (checked every 1 ms)",
            backend.name(),
            stores.len(),
            first.map_or(f64::NAN, after),
            after(done),
        );
        for (i, rt) in runtimes.iter().enumerate() {
            let s = rt.commit_stats();
            println!(
                "  node-{i}: {} commits in {} batches ({:.1} a batch), committer busy {:.3} s ({:.0} µs a commit)",
                s.commits,
                s.batches,
                s.commits as f64 / s.batches.max(1) as f64,
                s.busy_micros as f64 / 1e6,
                s.busy_micros as f64 / s.commits.max(1) as f64,
            );
        }
        assert_eq!(live_timers().await, 0, "no timer left");
        let fired: i64 = match &cleanup {
            Cleanup::Sqlite(s, _) => sqlx::query_scalar("SELECT COUNT(*) FROM timers WHERE state = 'fired'")
                .fetch_one(s.reader_pool())
                .await
                .unwrap(),
            Cleanup::Postgres(s, _) => sqlx::query_scalar("SELECT COUNT(*) FROM timers WHERE state = 'fired'")
                .fetch_one(s.pool())
                .await
                .unwrap(),
        };
        assert_eq!(fired as usize, n, "every timer fired once");
        stop.send(true).unwrap();
        for l in loops {
            l.await.unwrap();
        }
        drop(stores);
        cleanup.run().await;
    }
}

// ---- 6. an office's inbox ----

/// One step, due in 5 working days: every instance is one open step of 科室.
const ONE_STEP: &str = "policy inbox {\n  timezone \"Asia/Shanghai\"\n  role 科室\n  role 监察\n  step s0: approval {\n    by 科室\n    due 5 workdays\n    on breach escalate 监察\n  }\n}\n";

async fn bench_inbox(args: &Args) {
    let n = ((100_000.0 * args.scale) as usize).max(1);
    println!("\n## inbox: an office with {n} open steps (one per instance); a page read from the open-step table and its instances loaded");
    for backend in backends(args) {
        let began = Instant::now();
        let (store, cleanup): (Arc<dyn Store>, Cleanup) = match backend {
            Backend::Sqlite => {
                let dir = bench_dir();
                let path = dir.path().join("bench.db");
                let s = sqlite_store(&path, true).await;
                bulk_create(Arc::new(s.clone()), ONE_STEP, n, 1_000, 4).await;
                s.wal_checkpoint().await.unwrap();
                s.close().await;
                let s = sqlite_store(&path, false).await;
                (Arc::new(s.clone()), Cleanup::Sqlite(s, dir))
            }
            Backend::Postgres => {
                let schema = schema_name("inbox");
                create_schema(&schema).await;
                let s = pg_store(&schema, 8, true).await;
                bulk_create(Arc::new(s.clone()), ONE_STEP, n, 1_000, 8).await;
                s.close().await;
                let admin = admin().await;
                sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {schema}.open_steps")))
                    .execute(&admin)
                    .await
                    .unwrap();
                sqlx::query(AssertSqlSafe(format!("VACUUM ANALYZE {schema}.instances"))).execute(&admin).await.unwrap();
                admin.close().await;
                let s = pg_store(&schema, 4, false).await;
                (Arc::new(s.clone()), Cleanup::Postgres(s, schema))
            }
        };
        println!("{backend:?}: {n} instances created in {:.1} s", began.elapsed().as_secs_f64());
        let last_page = (n as u32).div_ceil(50);
        let readers = core::Reader::keys_of("科室-1", "科室", &["科室".to_string()]);
        // Where page 999 ends: page 1000 read by cursor from there.
        let before = InboxQuery { readers: readers.clone(), page: 999.min(last_page), page_size: 50, after: None };
        let cursor = store.inbox(&before).await.unwrap().items.last().map(civicflow_engine::store::InboxCursor::after);
        for (what, page, size, after) in [
            ("first page of 50", 1, 50, None),
            ("page 1000 of 50", 1_000.min(last_page), 50, None),
            ("page 1000 of 50 by cursor", 1, 50, cursor),
            ("first page of 1000", 1, 1_000, None),
        ] {
            let query = InboxQuery { readers: readers.clone(), page, page_size: size, after };
            let (mut times, mut reads) = (Vec::new(), Vec::new());
            let mut listed = 0;
            for _ in 0..200 {
                let t = Instant::now();
                let found = store.inbox(&query).await.unwrap();
                reads.push(t.elapsed());
                let ids: Vec<String> = found.items.iter().map(|r| r.instance.clone()).collect();
                let loaded = store.load_instances(&ids).await.unwrap();
                times.push(t.elapsed());
                assert_eq!((loaded.len(), found.total), (found.items.len(), n as u64));
                listed = found.items.len();
            }
            times.sort();
            reads.sort();
            let ms = |v: &[Duration], q: usize| v[v.len() * q / 100].as_secs_f64() * 1e3;
            println!(
                "{backend:?} {what}: {listed} steps of {n}, p50 {:.2} ms, p99 {:.2} ms (the table's read alone: p50 {:.2} ms, p99 {:.2} ms)",
                ms(&times, 50),
                ms(&times, 99),
                ms(&reads, 50),
                ms(&reads, 99)
            );
        }
        cleanup.run().await;
    }
}

// ---- proofs ----

/// The synthetic leaf `i` of the proofs bench: SHA-256 of its index as 8 big-endian bytes
/// (PostgreSQL computes the same with `sha256(int8send(i))`).
fn bench_leaf(i: u64) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(i.to_be_bytes()).into()
}

/// Fills `audit_leaves` with `n` synthetic leaves (the proofs read nothing else), the last one
/// carrying the frontier as a commit would leave it.
async fn fill_leaves(backend: Backend, store: &dyn Store, n: u64, raw: &Cleanup) {
    let mut frontier = civicflow_engine::audit::merkle::Frontier::new();
    for i in 0..n {
        frontier.push(bench_leaf(i));
    }
    let peaks = frontier.peaks().concat();
    match (backend, raw) {
        (Backend::Sqlite, Cleanup::Sqlite(s, _)) => {
            let pool = s.writer_pool();
            let mut tx = pool.begin().await.unwrap();
            for start in (0..n).step_by(5_000) {
                let end = (start + 5_000).min(n);
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks) ",
                );
                q.push_values(start..end, |mut b, i| {
                    b.push_bind(i as i64).push_bind("bench").push_bind(i as i64 + 1).push_bind(bench_leaf(i).to_vec());
                    b.push_bind(if i + 1 == n { Some(peaks.clone()) } else { None });
                });
                q.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        (Backend::Postgres, Cleanup::Postgres(s, _)) => {
            sqlx::query(
                "INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks)
                 SELECT i, 'bench', i + 1, sha256(int8send(i)), NULL FROM generate_series(0, $1 - 1) AS i",
            )
            .bind(n as i64)
            .execute(s.pool())
            .await
            .unwrap();
            sqlx::query("ALTER TABLE audit_leaves DISABLE TRIGGER audit_leaves_append_only")
                .execute(s.pool())
                .await
                .unwrap();
            sqlx::query("UPDATE audit_leaves SET peaks = $1 WHERE idx = $2")
                .bind(peaks)
                .bind(n as i64 - 1)
                .execute(s.pool())
                .await
                .unwrap();
            sqlx::query("ALTER TABLE audit_leaves ENABLE TRIGGER audit_leaves_append_only")
                .execute(s.pool())
                .await
                .unwrap();
        }
        _ => unreachable!(),
    }
    assert_eq!(store.audit_tree().await.unwrap().size, n);
}

async fn bench_proofs(args: &Args) {
    use civicflow_engine::audit::merkle::{verify_consistency, verify_inclusion};
    let n = (1_000_000.0 * args.scale) as u64;
    println!("\n## proofs: a global audit tree of {n} leaves (issue 12.3)");
    for backend in backends(args) {
        let (store, cleanup): (Arc<dyn Store>, Cleanup) = match backend {
            Backend::Sqlite => {
                let dir = bench_dir();
                let s = sqlite_store(&dir.path().join("bench.db"), true).await;
                (Arc::new(s.clone()), Cleanup::Sqlite(s, dir))
            }
            Backend::Postgres => {
                let schema = schema_name("proofs");
                create_schema(&schema).await;
                let s = pg_store(&schema, 4, true).await;
                (Arc::new(s.clone()), Cleanup::Postgres(s, schema))
            }
        };
        let t = Instant::now();
        fill_leaves(backend, store.as_ref(), n, &cleanup).await;
        println!("{:<10} {n} leaves written in {:.1} s (set-up)", backend.name(), t.elapsed().as_secs_f64());
        let rt = new_runtime(store.clone(), Arc::new(SimulatedClock::new(t0())), "proofs");
        let mut frontier = civicflow_engine::audit::merkle::Frontier::new();
        for i in 0..n {
            frontier.push(bench_leaf(i));
        }
        let root = frontier.root();
        let t = Instant::now();
        let first = rt.audit_inclusion_proof(n / 3, n).await.unwrap();
        let cold = t.elapsed();
        assert!(verify_inclusion(&bench_leaf(n / 3), n / 3, n, &first, &root));
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let (mut inclusion, mut sizes) = (Vec::new(), Vec::new());
        for _ in 0..1_000 {
            let i = next(n);
            let t = Instant::now();
            let proof = rt.audit_inclusion_proof(i, n).await.unwrap();
            inclusion.push(t.elapsed());
            sizes.push(proof.len());
            assert!(verify_inclusion(&bench_leaf(i), i, n, &proof, &root));
        }
        let t = Instant::now();
        for _ in 0..1_000 {
            assert!(verify_inclusion(&bench_leaf(n / 3), n / 3, n, &first, &root));
        }
        let verify_us = t.elapsed().as_secs_f64() * 1e6 / 1_000.0;
        let (mut consistency, mut csizes) = (Vec::new(), Vec::new());
        let mut roots = civicflow_engine::audit::merkle::Frontier::new();
        let firsts: Vec<u64> = {
            let mut f: Vec<u64> = (0..50).map(|_| 1 + next(n - 1)).collect();
            f.sort_unstable();
            f
        };
        let mut first_roots = Vec::new();
        let mut at = 0;
        for &m in &firsts {
            while at < m {
                roots.push(bench_leaf(at));
                at += 1;
            }
            first_roots.push(roots.root());
        }
        for round in 0..20 {
            for (k, &m) in firsts.iter().enumerate() {
                let t = Instant::now();
                let proof = rt.audit_consistency_proof(m, n).await.unwrap();
                consistency.push(t.elapsed());
                csizes.push(proof.len());
                if round == 0 {
                    assert!(verify_consistency(m, n, &proof, &first_roots[k], &root));
                }
            }
        }
        let pct = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
        };
        let avg = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
        println!(
            "{:<10} first inclusion proof (reads every leaf once): {:.0} ms; then inclusion p50 {:.3} ms, p99 {:.3} ms, \
             {:.1} hashes ({:.0} B) on average, verified in {:.1} µs; consistency p50 {:.3} ms, p99 {:.3} ms, {:.1} hashes",
            backend.name(),
            cold.as_secs_f64() * 1e3,
            pct(&mut inclusion, 0.5),
            pct(&mut inclusion, 0.99),
            avg(&sizes),
            avg(&sizes) * 32.0,
            verify_us,
            pct(&mut consistency, 0.5),
            pct(&mut consistency, 0.99),
            avg(&csizes),
        );
        // A checkpoint: the root recomputed from the leaves (the subtrees the proofs read are
        // remembered), checked against the frontier, signed.
        let signer = civicflow_engine::audit::note::NoteSigner::from_seed("bench", [1; 32]).unwrap();
        let t = Instant::now();
        rt.make_checkpoint(&signer).await.unwrap();
        let first_cp = t.elapsed();
        println!("{:<10} first checkpoint of the {n} leaves: {:.0} ms", backend.name(), first_cp.as_secs_f64() * 1e3);
        drop(rt);
        cleanup.run().await;
    }
}
