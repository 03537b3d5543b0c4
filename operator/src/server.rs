//! `/healthz`, `/readyz` and `/metrics` for probes and Prometheus: a deliberately small HTTP/1.1
//! server (one request per connection, GET only) so the operator needs no web framework.
//!
//! - `/healthz`: 200 while the process serves requests.
//! - `/readyz`: 200 once the controller says it is ready — the MeshInstallation cache and the
//!   caches of the built-in managed kinds have synced and leadership is known (see
//!   [`crate::controller::run`]); 503 before.
//! - `/metrics`: [`Metrics::render`], OpenMetrics text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Content type of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves until the process ends.
pub async fn serve(addr: SocketAddr, ready: watch::Receiver<bool>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    serve_listener(TcpListener::bind(addr).await?, ready, metrics).await
}

/// Serves on a bound listener (tests bind port 0) until the process ends.
pub async fn serve_listener(
    listener: TcpListener,
    ready: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        let ready = ready.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(socket, ready, metrics)).await;
        });
    }
}

async fn handle(mut socket: TcpStream, ready: watch::Receiver<bool>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // The request line and headers; a body is never expected.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request = String::from_utf8_lossy(&buf);
    let (status, content_type, body) = respond(&request, *ready.borrow(), &metrics);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

/// Status line, content type and body for a request (pure, for tests).
pub fn respond(request: &str, ready: bool, metrics: &Metrics) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut words = request.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".to_string());
    }
    match path {
        "/healthz" | "/livez" => ("200 OK", TEXT, "ok\n".to_string()),
        "/readyz" if ready => ("200 OK", TEXT, "ok\n".to_string()),
        "/readyz" => {
            ("503 Service Unavailable", TEXT, "not ready: caches not synced or leadership not known yet\n".to_string())
        }
        "/metrics" => ("200 OK", OPENMETRICS, metrics.render()),
        _ => ("404 Not Found", TEXT, "not found: try /healthz, /readyz or /metrics\n".to_string()),
    }
}

/// A tiny HTTP GET against the server, for tests and the bench: returns status code and body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_is_503_until_ready_and_healthz_always_200() {
        let metrics = Metrics::default();
        assert_eq!(respond("GET /readyz HTTP/1.1\r\n\r\n", false, &metrics).0, "503 Service Unavailable");
        assert_eq!(respond("GET /readyz HTTP/1.1\r\n\r\n", true, &metrics).0, "200 OK");
        assert_eq!(respond("GET /healthz HTTP/1.1\r\n\r\n", false, &metrics).0, "200 OK");
        assert_eq!(respond("GET /nope HTTP/1.1\r\n\r\n", true, &metrics).0, "404 Not Found");
        assert_eq!(respond("POST /metrics HTTP/1.1\r\n\r\n", true, &metrics).0, "405 Method Not Allowed");
        let (status, content_type, body) = respond("GET /metrics?x=1 HTTP/1.1\r\n\r\n", false, &metrics);
        assert_eq!((status, content_type), ("200 OK", OPENMETRICS));
        assert!(body.contains("# TYPE meshoperator_leader gauge"), "{body}");
    }

    #[tokio::test]
    async fn serves_over_tcp_and_follows_the_ready_signal() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve_listener(listener, rx, Arc::new(Metrics::default())));
        assert_eq!(get(addr, "/readyz").await.expect("get").0, 503);
        tx.send(true).expect("send");
        assert_eq!(get(addr, "/readyz").await.expect("get").0, 200);
        let (code, body) = get(addr, "/metrics").await.expect("get");
        assert_eq!(code, 200);
        assert!(body.ends_with("# EOF\n"));
        server.abort();
    }
}
