//! Render time of the web pages at size: 1,000 instances (1,000 open approvals in one office's
//! inbox) and one instance with 500+ events (urged 500 times), on the server `civicflow serve`
//! runs (SQLite, loopback). Each page is fetched 30 times after a warm-up; the median and the
//! slowest are printed, with the page's size. Pages are paginated (50 rows; 100 events).
//!
//! Run: `cargo bench -p civicflow --bench pages_render` (release profile).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark binary")]

use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::json;

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};

const INSTANCES: usize = 1000;
const URGES: usize = 500;
const RUNS: usize = 30;
const POLICY: &str =
    "policy 页面压测 {\n  role 审批人\n  step 审批: approval { by 审批人 due 5 workdays urge by 审批人 }\n}\n";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if tokio::time::timeout(Duration::from_secs(600), bench()).await.is_err() {
        eprintln!("the benchmark did not finish within 10 minutes");
        std::process::exit(1);
    }
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Sqlite(dir.path().join("bench.db")));
    config.simulated_clock = Some(DateTime::parse_from_rfc3339("2012-03-26T09:00:00+08:00").unwrap().into());
    // The engine's speed is measured, not the rate limits (one principal sends thousands).
    config.rates = civicflow::http::limits::RateConfig::unlimited();
    let server = Server::start(config).await.unwrap();
    let admin = server.admin_token.clone().unwrap();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.post(format!("{base}/v1/policies")).bearer_auth(&admin).body(POLICY).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let token =
        create_token(server.state.store.as_ref(), "审批人甲", "街道办事处", &["审批人".to_string()]).await.unwrap();

    // 1,000 instances, 32 requests at a time.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for chunk in (0..INSTANCES).collect::<Vec<_>>().chunks(INSTANCES / 32) {
        let (client, base, token, chunk) = (client.clone(), base.clone(), token.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                let r = client
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(&token)
                    .json(&json!({ "policy": "页面压测", "id": format!("p-{i:04}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // One instance with 500 more events.
    let step = enc("审批");
    for _ in 0..URGES {
        let r = client
            .post(format!("{base}/v1/instances/p-0000/steps/{step}/actions"))
            .bearer_auth(&token)
            .json(&json!({ "action": "urge", "comment": "请尽快办理" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let events = server.state.store.events("p-0000", 0, 10_000).await.unwrap().len();
    eprintln!("set-up: {INSTANCES} instances, p-0000 with {events} events, in {:.1} s", t0.elapsed().as_secs_f64());

    // Sign in.
    let form = client.get(format!("{base}/signin")).send().await.unwrap();
    let pre = form.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let nonce = pre.split_once('=').unwrap().1.to_string();
    let r = client
        .post(format!("{base}/signin"))
        .header("cookie", &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={nonce}&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();

    println!("| page | median ms | slowest ms | KiB |");
    println!("|---|---:|---:|---:|");
    for path in [
        "/inbox".to_string(),
        "/inbox?page=20".into(),
        "/instances?page=10".into(),
        "/instances/p-0000".into(),
        "/instances/p-0000/audit".into(),
        "/instances/p-0000/audit?page=5".into(),
        format!("/instances/p-0000/audit?kind=urged&office={}", enc("审批人甲")),
        "/instances/p-0000/audit.csv".into(),
        format!("/act?instance=p-0000&step={step}"),
        "/policies/election".into(),
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for run in 0..=RUNS {
            let t = Instant::now();
            let r = client.get(format!("{base}{path}")).header("cookie", &session).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            size = r.bytes().await.unwrap().len();
            if run > 0 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| `{path}` | {:.1} | {:.1} | {:.0} |",
            times[times.len() / 2],
            times[times.len() - 1],
            size as f64 / 1024.0
        );
    }
    server.stop().await;
}
