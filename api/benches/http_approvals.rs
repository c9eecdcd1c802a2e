//! Approvals per second and their latency through the HTTP API: the server (`serve::Server`, the
//! code `civicflow serve` runs, on the default SQLite store: WAL, `synchronous=FULL`, group
//! commit) on a loopback port, and 64 concurrent clients in the same process.
//!
//! Run: `cargo bench -p civicflow --bench http_approvals` (release profile). Bounded: 64 clients ×
//! 40 instances each, started then approved once each; nothing runs longer than 10 minutes.
//!
//! Each approval is a full request: the bearer token (looked up once a second, `token_cache.rs`),
//! `Idempotency-Key`, the instance (from the runtime's cache after its start), decide, one
//! group-committed transaction (events, snapshot, idempotency record), the answer with the events. Each phase also reports the bytes the process
//! caused to be written to disk (`write_bytes` of `/proc/self/io`) per request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark binary")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::json;

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};

const CLIENTS: usize = 64;
const PER_CLIENT: usize = 40;
const POLICY: &str = "policy 审批演练 {\n  role 审批人\n  step 审批: approval { by 审批人 }\n}\n";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let run = tokio::time::timeout(Duration::from_secs(600), bench()).await;
    if run.is_err() {
        eprintln!("the benchmark did not finish within 10 minutes");
        std::process::exit(1);
    }
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Sqlite(dir.path().join("bench.db")));
    config.simulated_clock = Some(DateTime::parse_from_rfc3339("2012-03-26T09:00:00+08:00").unwrap().into());
    // The engine's speed is measured, not the rate limits (one principal sends thousands).
    config.rates = civicflow::http::limits::RateConfig::unlimited();
    config.publish_bundled = false;
    let server = Server::start(config).await.unwrap();
    let admin = server.admin_token.clone().unwrap();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let published = client.post(format!("{base}/v1/policies")).bearer_auth(&admin).body(POLICY).send().await.unwrap();
    assert_eq!(published.status(), 201);
    let token =
        create_token(server.state.store.as_ref(), "审批人甲", "街道办事处", &["审批人".to_string()]).await.unwrap();
    let token = Arc::new(token);

    // Starts (also measured), then one approval per instance.
    let before_starts = written_bytes();
    let (starts, start_secs) = phase(&client, &base, &token, |c, i| {
        (
            "/v1/instances".to_string(),
            json!({ "policy": "审批演练", "id": format!("b-{c}-{i}") }),
            format!("start-{c}-{i}"),
            201,
        )
    })
    .await;
    let start_bytes = written_bytes() - before_starts;
    const STEP: &str = "%E5%AE%A1%E6%89%B9"; // 审批
    let before_approvals = written_bytes();
    let (approvals, approve_secs) = phase(&client, &base, &token, |c, i| {
        (
            format!("/v1/instances/b-{c}-{i}/steps/{STEP}/actions"),
            json!({ "action": "approve", "comment": "同意" }),
            format!("approve-{c}-{i}"),
            200,
        )
    })
    .await;
    let approve_bytes = written_bytes() - before_approvals;
    report("start", &starts, start_secs, start_bytes);
    report("approve", &approvals, approve_secs, approve_bytes);
    server.stop().await;
}

/// Runs `CLIENTS` clients, each sending `PER_CLIENT` requests in turn; returns the latencies and
/// the wall time.
async fn phase(
    client: &reqwest::Client,
    base: &str,
    token: &Arc<String>,
    request: impl Fn(usize, usize) -> (String, serde_json::Value, String, u16) + Send + Sync + Clone + 'static,
) -> (Vec<Duration>, f64) {
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, token, request) = (client.clone(), base.to_string(), token.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PER_CLIENT);
            for i in 0..PER_CLIENT {
                let (path, body, key, status) = request(c, i);
                let t = Instant::now();
                let r = client
                    .post(format!("{base}{path}"))
                    .bearer_auth(token.as_str())
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let got = r.status().as_u16();
                let text = r.text().await.unwrap();
                latencies.push(t.elapsed());
                assert_eq!(got, status, "{path}: {text}");
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, began.elapsed().as_secs_f64())
}

/// What this process (server and clients: the clients write nothing to disk) has caused to be
/// written to storage so far: `write_bytes` of `/proc/self/io` (the WAL, checkpoints into the
/// database file).
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn report(what: &str, latencies: &[Duration], secs: f64, bytes: u64) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!(
        "{what}: {} requests from {CLIENTS} clients in {secs:.2} s = {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} bytes written to disk a request",
        sorted.len(),
        sorted.len() as f64 / secs,
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        at(1.0).as_secs_f64() * 1000.0,
        bytes as f64 / sorted.len() as f64,
    );
}
