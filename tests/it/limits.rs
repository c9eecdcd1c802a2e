//! Issue 9.2: idle and silent connections cannot starve the server. Hundreds of connections that
//! send nothing (or headers that never end) leave `/healthz` answering; the silent ones are
//! closed after the header timeout; one connection over the cap is answered 503
//! `TOO_MANY_CONNECTIONS` with `Retry-After` at once, never left hanging.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use civicflow::connections::Limits;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::store::sqlite::SqliteStore;

/// One raw HTTP/1.1 exchange on a fresh connection: the status line and the body, within 10 s.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text.lines().next().unwrap_or("").to_string();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("an answer within 10 s")
}

/// Waits (at most 10 s) for the server to close `s`: a read returns end of file or a reset.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_do_not_starve_the_server_and_the_cap_refuses_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store)));
    config.publish_bundled = false;
    config.limits =
        Limits { max_connections: 300, header_timeout: Duration::from_secs(2), body_timeout: Duration::from_secs(2) };
    let server = Server::start(config).await.unwrap();
    let addr = server.addr;

    // 250 silent connections, and 20 that start a request and never finish its headers.
    let mut silent = Vec::new();
    for _ in 0..250 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ").await.unwrap();
        silent.push(s);
    }
    // The server still answers.
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");

    // Over the cap (300): 30 more are served (29 while `get` holds none), the next are refused
    // with a problem, at once.
    for _ in 0..30 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "TOO_MANY_CONNECTIONS");
    assert_eq!(problem["status"], 503);

    // Every silent connection is closed after the header timeout, and the server answers again.
    for s in &mut silent {
        assert!(closed_by_server(s).await, "a silent connection is closed by the server");
    }
    let (status, _) = get(addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Every answer says when the server closes an idle kept-alive connection (the header
    // timeout), so that a client's pool lets it go first instead of sending a request into it
    // as it closes.
    let client = reqwest::Client::new();
    let answer = client.get(format!("http://{addr}/healthz")).send().await.unwrap();
    assert_eq!(answer.headers().get("keep-alive").map(|v| v.to_str().unwrap()), Some("timeout=2"));
    let refused = client.get(format!("http://{addr}/v1/instances")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers().get("keep-alive").map(|v| v.to_str().unwrap()), Some("timeout=2"));
    drop((answer, refused, client));

    // A body that never arrives is cut off too (body timeout), the connection freed.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/policies HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\npolicy")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server gives up on a body that never arrives");
    server.stop().await;
}

// ---- issue 9.3: rate limits and caps ----

use civicflow::http::limits::{Rate, RateConfig};

/// A server whose limits are all generous but the ones `tight` sets.
async fn limited(tight: impl FnOnce(&mut RateConfig)) -> (Server, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store)));
    config.publish_bundled = false;
    let mut rates = RateConfig::unlimited();
    tight(&mut rates);
    config.rates = rates;
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    (server, dir, base)
}

/// The status, the `Retry-After` header and the problem's code of a reply.
async fn reply(r: reqwest::Response) -> (u16, Option<String>, String) {
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, retry, body["code"].as_str().unwrap_or("").to_string())
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_limited_and_health_still_answers() {
    let (server, _dir, base) = limited(|r| r.per_address = Rate { period: MINUTE, burst: 10 }).await;
    let client = reqwest::Client::new();
    for _ in 0..10 {
        assert_eq!(client.get(format!("{base}/openapi.json")).send().await.unwrap().status(), 200);
    }
    let (status, retry, code) = reply(client.get(format!("{base}/openapi.json")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    // One cell comes back a minute after the first was spent: 60 s at most, at least 1.
    let seconds: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_slowed_down_then_refused_and_a_good_one_still_works() {
    let (server, _dir, base) = limited(|r| r.auth_failures = Rate { period: MINUTE, burst: 5 }).await;
    let admin = server.admin_token.clone().unwrap();
    let client = reqwest::Client::new();
    for i in 0..5 {
        let r = client.get(format!("{base}/v1/policies")).bearer_auth(format!("cf_guess{i}")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let (status, retry, code) =
        reply(client.get(format!("{base}/v1/policies")).bearer_auth("cf_guess5").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert!(retry.is_some());
    // A request without any token counts as a failure too.
    assert_eq!(client.get(format!("{base}/v1/policies")).send().await.unwrap().status(), 429);
    assert_eq!(client.get(format!("{base}/v1/policies")).bearer_auth(&admin).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_is_limited_wherever_it_calls_from() {
    let (server, _dir, base) = limited(|r| r.per_principal = Rate { period: MINUTE, burst: 5 }).await;
    let admin = server.admin_token.clone().unwrap();
    for _ in 0..5 {
        // A new client (a new connection) each time: the limit follows the principal.
        let r = reqwest::Client::new().get(format!("{base}/v1/policies")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = reqwest::Client::new().get(format!("{base}/v1/policies")).bearer_auth(&admin).send().await.unwrap();
    let (status, retry, code) = reply(r).await;
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    assert!(retry.is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_principal_and_in_all_and_given_back_on_close() {
    let (server, _dir, base) = limited(|r| {
        r.streams_per_principal = 2;
        r.streams_total = 3;
    })
    .await;
    let admin = server.admin_token.clone().unwrap();
    let store = server.state.store.clone();
    let other = civicflow::http::auth::create_token(store.as_ref(), "王", "街道", &["街道".to_string()]).await.unwrap();
    let client = reqwest::Client::new();
    let open = |token: String| {
        let client = client.clone();
        let url = format!("{base}/v1/events");
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let first = open(admin.clone()).await;
    let second = open(admin.clone()).await;
    assert_eq!((first.status(), second.status()), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    let (status, retry, code) = reply(open(admin.clone()).await).await;
    assert_eq!((status, code.as_str(), retry.as_deref()), (429, "STREAMS_LIMITED", Some("5")));
    let third = open(other.clone()).await;
    assert_eq!(third.status(), 200);
    let (status, _, code) = reply(open(other.clone()).await).await;
    assert_eq!((status, code.as_str()), (429, "STREAMS_LIMITED"), "the server's cap of 3");
    assert_eq!(server.state.limiter.streams_open(), 3);
    // Closing streams gives their places back.
    drop((first, second, third));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.state.limiter.streams_open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.state.limiter.streams_open(), 0);
    assert_eq!(open(admin).await.status(), 200);
    server.stop().await;
}

// ---- issue 9.4: tokens that expire and can be revoked ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_created_with_an_expiry_and_revoked_through_the_admin_api() {
    let (server, _dir, base) = limited(|_| {}).await;
    let admin = server.admin_token.clone().unwrap();
    let client = reqwest::Client::new();
    let post =
        |body: serde_json::Value| client.post(format!("{base}/v1/admin/tokens")).bearer_auth(&admin).json(&body).send();
    // An expiry in the past, or no roles: 422, nothing made.
    let (status, _, code) =
        reply(post(serde_json::json!({ "name": "王", "office": "街道", "roles": ["街道"], "expires_at": "2020-01-01T00:00:00Z" })).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "INVALID_REQUEST"));
    let (status, _, _) =
        reply(post(serde_json::json!({ "name": "王", "office": "街道", "roles": [] })).await.unwrap()).await;
    assert_eq!(status, 422);
    let until = chrono::Utc::now() + chrono::Duration::days(30);
    let made = post(serde_json::json!({ "name": "王", "office": "街道", "roles": ["街道"], "expires_at": until }))
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: serde_json::Value = made.json().await.unwrap();
    let wang = made["token"].as_str().unwrap().to_string();
    assert_eq!(client.get(format!("{base}/v1/inbox")).bearer_auth(&wang).send().await.unwrap().status(), 200);
    // Only the admin lists and makes tokens.
    assert_eq!(client.get(format!("{base}/v1/admin/tokens")).bearer_auth(&wang).send().await.unwrap().status(), 403);
    let listed: serde_json::Value =
        client.get(format!("{base}/v1/admin/tokens")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    let row = rows.iter().find(|r| r["principal"] == "王").unwrap();
    assert_eq!(row["id"].as_str().unwrap().len(), 12);
    assert_eq!(row["office"], "街道");
    let listed_until: chrono::DateTime<chrono::Utc> = serde_json::from_value(row["expires_at"].clone()).unwrap();
    assert_eq!(listed_until.timestamp_micros(), until.timestamp_micros());
    assert!(!listed.to_string().contains(&wang), "the token's text is never listed");
    // Revoking one by a wrong id: 404, 422 for a malformed id; then all of them: 401 at once.
    let revoke = |path: String| client.delete(format!("{base}{path}")).bearer_auth(&admin).send();
    assert_eq!(revoke("/v1/admin/tokens/%E7%8E%8B?id=000000000000".into()).await.unwrap().status(), 404);
    assert_eq!(revoke("/v1/admin/tokens/%E7%8E%8B?id=xyz".into()).await.unwrap().status(), 422);
    let id = row["id"].as_str().unwrap();
    let done: serde_json::Value =
        revoke(format!("/v1/admin/tokens/%E7%8E%8B?id={id}")).await.unwrap().json().await.unwrap();
    assert_eq!(done, serde_json::json!({ "principal": "王", "revoked": 1 }));
    assert_eq!(client.get(format!("{base}/v1/inbox")).bearer_auth(&wang).send().await.unwrap().status(), 401);
    server.stop().await;
}
