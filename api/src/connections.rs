//! Accepting connections under limits (issue 9.2). `axum::serve` reads a request's headers for as
//! long as a client cares to send them and keeps any number of idle connections: a few thousand
//! silent sockets, unauthenticated, starve everyone. Here every connection must send its
//! headers within [`Limits::header_timeout`] (also between requests on a kept-alive connection,
//! so an idle one is closed then), its body within [`Limits::body_timeout`], and at most
//! [`Limits::max_connections`] are served at once: one more is answered at once with a 503
//! problem (`TOO_MANY_CONNECTIONS`, `Retry-After`) and closed, never left hanging. Every answer
//! says when an idle connection will be closed (`Keep-Alive: timeout=N`), so that clients let it
//! go first.
//!
//! hyper (the stack `axum::serve` uses) does the HTTP, 1.1 only (a plain-text HTTP/2 client is
//! not served: hyper's version sniffing waits for a first byte with no timeout); this module owns
//! only the accept loop, the cap and the graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// What one server accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; one more gets a 503 and is closed.
    pub max_connections: usize,
    /// A request's headers must arrive within this, counted from when the connection is ready
    /// for them (so an idle kept-alive connection is closed after it).
    pub header_timeout: Duration,
    /// A request's body must arrive within this.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 1024, header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30) }
    }
}

/// At most this many over-the-cap refusals are being written at once; past it a connection is
/// simply closed.
const MAX_REFUSING: usize = 256;

/// The refusal of a connection over the cap: a complete HTTP/1.1 response.
fn refusal() -> String {
    let code = crate::http::codes::ProblemCode::TooManyConnections.as_str();
    let body = format!(
        r#"{{"type":"urn:civicflow:problem:{code}","title":"Service Unavailable","status":503,"detail":"the server has too many open connections; try again shortly","code":"{code}"}}"#
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `app` on `listener` until `stop` turns true, then lets the connections in flight
/// finish (at most `drain`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: hyper's version detection (for h2c) waits for a first byte with no
    // timeout, which is exactly what a silent connection never sends.
    let keep_alive = keep_alive_hint(limits.header_timeout);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Ok(slot) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(slot);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let keep_alive = keep_alive.clone();
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_response(move |mut response: axum::response::Response| {
                response
                    .headers_mut()
                    .entry(hyper::header::HeaderName::from_static("keep-alive"))
                    .or_insert(keep_alive.clone());
                response
            })
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_timeout))
            .service(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {drain:?}; closing them");
    }
}

/// `Keep-Alive: timeout=N`, N the whole seconds of `header_timeout`: an idle kept-alive
/// connection is closed after that, and a client that reuses one just as it closes loses its
/// request ("other side closed"). Clients that read the hint (undici, curl's pool, browsers) let
/// theirs go a little before (seen in the peers' harness: with 64 pooled connections and 16 busy,
/// the 48 idle ones were closed under it after 10 s and a request failed).
fn keep_alive_hint(header_timeout: Duration) -> hyper::header::HeaderValue {
    // Digits after `timeout=` are always a valid header value.
    hyper::header::HeaderValue::from_str(&format!("timeout={}", header_timeout.as_secs()))
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("timeout=0"))
}

/// Answers a connection over the cap with a 503 and closes it, reading (and dropping) what the
/// client sent so that it sees the answer rather than a reset.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(refusal().as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The peer's address, for handlers and layers behind [`serve`].
pub type Peer = ConnectInfo<SocketAddr>;
