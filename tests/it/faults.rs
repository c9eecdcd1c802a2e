//! Issue 9 (prove): faults a client meets on the wire. A lost acknowledgement — the client's
//! connection cut after the act it sent with an `Idempotency-Key` was committed, before it read
//! the answer — and its retry: the act is recorded once, and the retry gets the first answer. On
//! SQLite and PostgreSQL. A token revoked through one node, refused by the others at once
//! (PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use civicflow::http::limits::RateConfig;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::Store;

const POLICY: &str = r#"
policy 断线重试 {
  role 街道
  step 甲: task { by 街道 }
  step 乙: task { by 街道 after 甲 }
}"#;

async fn lost_acknowledgement(store: Arc<dyn Store>) {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(store));
    config.publish_bundled = false;
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let admin = server.admin_token.clone().unwrap();
    let street =
        civicflow::http::auth::create_token(server.state.store.as_ref(), "王", "街道", &["街道".into()]).await.unwrap();
    let client = reqwest::Client::new();
    assert_eq!(
        client.post(format!("{base}/v1/policies")).bearer_auth(&admin).body(POLICY).send().await.unwrap().status(),
        201
    );
    let started = client
        .post(format!("{base}/v1/instances"))
        .bearer_auth(&street)
        .json(&json!({ "policy": "断线重试", "id": "断线-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);

    // The act is sent whole; the client never reads the answer: its connection is cut once the
    // act is committed (seen through another connection), as when an acknowledgement is lost.
    let body = json!({ "action": "complete", "comment": "已办" }).to_string();
    let path = "/v1/instances/%E6%96%AD%E7%BA%BF-1/steps/%E7%94%B2/actions";
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {street}\r\nidempotency-key: act-1\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let history = |client: reqwest::Client| {
        let url = format!("{base}/v1/instances/%E6%96%AD%E7%BA%BF-1/history");
        let token = street.clone();
        async move {
            let h: Value = client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            h["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut landed = false;
    while tokio::time::Instant::now() < deadline {
        if history(client.clone()).await.iter().any(|k| k == "acted") {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed, "the act was committed");
    drop(socket);
    // The retry: the same key, the same body.
    let retry = client
        .post(format!("{base}{path}"))
        .bearer_auth(&street)
        .header("idempotency-key", "act-1")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = retry.status();
    let replayed = retry.headers().get("idempotent-replayed").is_some();
    let retry_text = retry.text().await.unwrap();
    assert_eq!(status, 200, "{retry_text}");
    let answer: Value = serde_json::from_str(&retry_text).unwrap();
    assert_eq!(answer["replayed"], true, "the retry gets the first answer");
    assert!(replayed, "marked `idempotent-replayed`");
    let kinds_of = |a: &Value| a["events"].as_array().unwrap().iter().map(|e| e["kind"].clone()).collect::<Vec<_>>();
    assert_eq!(kinds_of(&answer), vec![json!("acted"), json!("completed"), json!("opened")], "{answer}");
    let kinds = history(client.clone()).await;
    assert_eq!(kinds.iter().filter(|k| *k == "acted").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "completed").count(), 1, "{kinds:?}");
    // And again: still once.
    let again = client
        .post(format!("{base}{path}"))
        .bearer_auth(&street)
        .header("idempotency-key", "act-1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["replayed"], true);
    assert_eq!(history(client).await, kinds);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_is_answered_by_the_retry_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    lost_acknowledgement(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_is_answered_by_the_retry_on_postgres() {
    let Some(schema) = crate::pg::fresh_schema("faults", "faults", "lost_ack").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    lost_acknowledgement(Arc::new(store.clone())).await;
    schema.drop_with(store).await;
}

/// Issue 9.6: the event stream reaches the clients of every node. Two servers share one
/// PostgreSQL database; a client streams from node B while an office acts through node A: the
/// events arrive at B (PostgreSQL's NOTIFY is the hint, the store the truth), once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_reaches_the_clients_of_every_node_on_postgres() {
    let Some(schema) = crate::pg::fresh_schema("faults", "faults", "sse_nodes").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    let start = |store: Arc<dyn Store>| async move {
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(store));
        config.publish_bundled = false;
        Server::start(config).await.unwrap()
    };
    let node_a = start(Arc::new(store.clone())).await;
    let node_b = start(Arc::new(store.clone())).await;
    let (a, b) = (format!("http://{}", node_a.addr), format!("http://{}", node_b.addr));
    let admin_token = node_a.admin_token.clone().unwrap();
    let street = civicflow::http::auth::create_token(&store, "王", "街道", &["街道".into()]).await.unwrap();
    let client = reqwest::Client::new();
    assert_eq!(
        client.post(format!("{a}/v1/policies")).bearer_auth(&admin_token).body(POLICY).send().await.unwrap().status(),
        201
    );
    let started = client
        .post(format!("{a}/v1/instances"))
        .bearer_auth(&street)
        .json(&json!({ "policy": "断线重试", "id": "两节点-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);

    let mut stream = client.get(format!("{b}/v1/events")).bearer_auth(&street).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let acted = client
        .post(format!("{a}/v1/instances/%E4%B8%A4%E8%8A%82%E7%82%B9-1/steps/%E7%94%B2/actions"))
        .bearer_auth(&street)
        .json(&json!({ "action": "complete", "comment": "已办" }))
        .send()
        .await
        .unwrap();
    assert_eq!(acted.status(), 200);
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("event: opened") {
            match stream.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "node A's commit did not reach node B's stream: {seen}");
    // The act's three events, in order, each once (ids are `<instance>/<seq>`). The start's two
    // may come first: its notification can reach node B after B's stream opened.
    let ids: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .skip_while(|id| ["两节点-1/1", "两节点-1/2"].contains(id))
        .collect();
    assert_eq!(ids, ["两节点-1/3", "两节点-1/4", "两节点-1/5"], "{seen}");
    // Then an act through node B itself: its own events follow, once each, after A's.
    let acted = client
        .post(format!("{b}/v1/instances/%E4%B8%A4%E8%8A%82%E7%82%B9-1/steps/%E4%B9%99/actions"))
        .bearer_auth(&street)
        .json(&json!({ "action": "complete", "comment": "已办" }))
        .send()
        .await
        .unwrap();
    assert_eq!(acted.status(), 200);
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("event: instance_completed") {
            match stream.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{seen}");
    // Node A's hint of B's commit reaches A; B's own hint back to B adds nothing twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(Some(bytes))) =
        tokio::time::timeout(Duration::from_millis(200), stream.chunk()).await.map(Result::ok)
    {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    let ids: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .skip_while(|id| ["两节点-1/1", "两节点-1/2"].contains(id))
        .collect();
    assert_eq!(ids, ["两节点-1/3", "两节点-1/4", "两节点-1/5", "两节点-1/6", "两节点-1/7", "两节点-1/8"], "{seen}");
    drop(stream);
    node_a.stop().await;
    node_b.stop().await;
    schema.drop_with(store).await;
}

/// Issue 9.6: the simulated clock of a rehearsal is shared. Two servers on one PostgreSQL
/// database; the admin moves the clock through node A; node B's clock follows (within its timer
/// interval), and a node started later joins at that time, not at its own start instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_clock_is_shared_by_the_nodes_on_postgres() {
    let Some(schema) = crate::pg::fresh_schema("faults", "faults", "shared_clock").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
    let start = |store: Arc<dyn Store>, from: &str| {
        let from = at(from);
        async move {
            let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(store));
            config.publish_bundled = false;
            config.simulated_clock = Some(from);
            config.timer_interval = Duration::from_millis(100);
            Server::start(config).await.unwrap()
        }
    };
    let node_a = start(Arc::new(store.clone()), "2026-03-02T09:00:00+08:00").await;
    let node_b = start(Arc::new(store.clone()), "2026-03-02T09:00:00+08:00").await;
    let admin_token = node_a.admin_token.clone().unwrap();
    let client = reqwest::Client::new();
    let moved = client
        .post(format!("http://{}/v1/admin/clock", node_a.addr))
        .bearer_auth(&admin_token)
        .json(&json!({ "advance_to": "2026-03-05T09:00:00+08:00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let now_of = |addr: std::net::SocketAddr| {
        let client = client.clone();
        let token = admin_token.clone();
        async move {
            let v: Value = client
                .get(format!("http://{addr}/v1/admin/clock"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            at(v["now"].as_str().unwrap())
        }
    };
    let target = at("2026-03-05T09:00:00+08:00");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while now_of(node_b.addr).await != target && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now_of(node_b.addr).await, target, "node B follows node A's clock");
    // A node started later, asking for an earlier instant, joins the rehearsal's time.
    let node_c = start(Arc::new(store.clone()), "2026-03-01T09:00:00+08:00").await;
    assert_eq!(now_of(node_c.addr).await, target);
    for node in [node_a, node_b, node_c] {
        node.stop().await;
    }
    schema.drop_with(store).await;
}

/// Issue 9 (prove): SQLite under 32 concurrent writers (each its own client and connection):
/// no client ever sees the database busy (no 503, no 409), every command lands, and the WAL
/// stays bounded (checkpoints keep up: ~140 MB written, the WAL at most its window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_32_concurrent_writers_never_see_busy_and_the_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("civicflow.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store)));
    config.publish_bundled = false;
    config.rates = RateConfig::unlimited(); // the limits are not what this is about
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let admin = server.admin_token.clone().unwrap();
    let street =
        civicflow::http::auth::create_token(server.state.store.as_ref(), "王", "街道", &["街道".into()]).await.unwrap();
    let client = reqwest::Client::new();
    assert_eq!(
        client.post(format!("{base}/v1/policies")).bearer_auth(&admin).body(POLICY).send().await.unwrap().status(),
        201
    );

    const WRITERS: usize = 32;
    // Enough to write the WAL's checkpoint window more than twice over (~100 MB), so a bounded
    // WAL shows that checkpoints kept up.
    const EACH: usize = 60;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (base, token) = (base.clone(), street.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            for i in 0..EACH {
                let id = format!("w{w}-{i}");
                let r = client
                    .post(format!("{base}/v1/instances"))
                    .bearer_auth(&token)
                    .json(&json!({ "policy": "断线重试", "id": id }))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
                for step in ["%E7%94%B2", "%E4%B9%99"] {
                    let r = client
                        .post(format!("{base}/v1/instances/{id}/steps/{step}/actions"))
                        .bearer_auth(&token)
                        .json(&json!({ "action": "complete" }))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    assert_eq!(statuses.len(), WRITERS * EACH * 3);
    let failed: Vec<&u16> = statuses.iter().filter(|s| !matches!(s, 200 | 201)).collect();
    assert!(failed.is_empty(), "statuses other than 200/201: {failed:?}");
    let listed: Value = client
        .get(format!("{base}/v1/instances?status=completed&page_size=1"))
        .bearer_auth(&street)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], WRITERS * EACH, "{listed}");
    // 5,760 commits: the WAL is checkpointed as it goes, passively every
    // `AUTOCHECKPOINT_PAGES` pages (4,096 bytes and a 24-byte header each), plus one batch.
    let wal = std::fs::metadata(dir.path().join("civicflow.db-wal")).map(|m| m.len()).unwrap_or(0);
    let bound = u64::from(civicflow_engine::store::sqlite::AUTOCHECKPOINT_PAGES) * 4_120 + (4 << 20);
    assert!(wal < bound, "the WAL grew to {wal} bytes (bound {bound})");
    server.stop().await;
}

/// Issue 10.4: a revocation made through one node reaches the token cache of every node on
/// PostgreSQL at once (the database's notification), not after the cache's TTL: node B trusts
/// a token it read for an hour here, so only the notification can make it refuse the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_node_is_refused_by_the_others_on_postgres() {
    let Some(schema) = crate::pg::fresh_schema("faults", "faults", "revoke_nodes").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    let start = |store: Arc<dyn Store>| async move {
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(store));
        config.publish_bundled = false;
        config.token_cache_ttl = Duration::from_secs(3600);
        Server::start(config).await.unwrap()
    };
    let node_a = start(Arc::new(store.clone())).await;
    let node_b = start(Arc::new(store.clone())).await;
    let (a, b) = (format!("http://{}", node_a.addr), format!("http://{}", node_b.addr));
    let admin = node_a.admin_token.clone().unwrap();
    let street = civicflow::http::auth::create_token(&store, "王", "街道", &["街道".into()]).await.unwrap();
    let client = reqwest::Client::new();
    let inbox_on_b = || client.get(format!("{b}/v1/inbox")).bearer_auth(&street).send();
    // Node B reads the token once: from now on it trusts its cached answer.
    assert_eq!(inbox_on_b().await.unwrap().status(), 200);
    assert_eq!(inbox_on_b().await.unwrap().status(), 200);
    let revoked = client.delete(format!("{a}/v1/admin/tokens/%E7%8E%8B")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.json::<Value>().await.unwrap(), json!({ "principal": "王", "revoked": 1 }));
    // The notification arrives in milliseconds; the bound is a minute's fraction of the hour.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut status = inbox_on_b().await.unwrap().status();
    while status == 200 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = inbox_on_b().await.unwrap().status();
    }
    assert_eq!(status, 401, "node B still trusts the revoked token");
    for node in [node_a, node_b] {
        node.stop().await;
    }
    schema.drop_with(store).await;
}
