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
