//! Issue 22, item 2: slow clients must not hold connections (and file descriptors) for ever. A
//! body that stops arriving is cut at `server.body_timeout_seconds` (1 s here) with a 408 and a
//! closed connection, while the probes and other clients keep being answered. The deadline is
//! tested as a mechanism (the connection ends, well within a generous bound), not as a latency.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_with};

/// Sends a request's headers announcing 100 bytes of body, and one byte of it; then waits.
async fn slow_body(app: &TestApp, path: &str, content_type: &str) -> TcpStream {
    let mut s = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n{{");
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// What the server sends before it closes the connection; panics if it is still open after
/// `bound`.
async fn answer_then_close(mut s: TcpStream, bound: Duration, what: &str) -> String {
    let mut out = Vec::new();
    match tokio::time::timeout(bound, s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        // a reset is a close too
        Ok(Err(e)) => assert!(matches!(e.kind(), std::io::ErrorKind::ConnectionReset), "{what}: {e}"),
        Err(_) => panic!("{what}: the connection is still open after {bound:?} (deadline 1 s)"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn a_body_that_stops_arriving_is_cut_and_probes_keep_answering() {
    let app = spawn_with(|s| s.server.body_timeout_seconds = 1).await;
    // an established client, before the slow ones
    assert_eq!(app.http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
    // every way a body is read: the native token endpoint (our reader), a JSON extractor, a
    // dialect's reader, and a route that may answer before reading it
    // (Medods' /generate refuses a caller without its key before reading: any answer, but
    // the connection must end all the same)
    let cases = [
        ("/oauth/token", "application/x-www-form-urlencoded", "408"),
        ("/v1/users", "application/json", "408"),
        ("/api/token/", "application/json", "408"),
        ("/generate", "application/json", "401"),
    ];
    let mut slow = vec![];
    for (path, ct, expected) in cases {
        slow.push((path, expected, slow_body(&app, path, ct).await));
    }
    // while they hang, the probes and the established client answer
    let live = reqwest::Client::new().get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(app.http.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
    for (path, expected, s) in slow {
        let answer = answer_then_close(s, Duration::from_secs(15), path).await;
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert!(answer.is_empty() || status == expected, "{path}: a {expected} or nothing, then the close: {answer}");
        if expected == "408" {
            assert!(answer.contains("body_timeout"), "{path}: {answer}");
        }
    }
    assert_eq!(app.http.get(app.url("/health/live")).send().await.unwrap().status(), 200);
}

/// A body that arrives in full, slowly but within the deadline, is served as usual.
async fn a_body_that_arrives_within_the_deadline_is_served() {
    let app = spawn_with(|s| s.server.body_timeout_seconds = 5).await;
    let body = br#"{"email":"slow@example.com","password":"correct horse battery"}"#;
    let mut s = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(&body[10..]).await.unwrap();
    let answer = answer_then_close(s, Duration::from_secs(15), "a whole body").await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// An idle keep-alive connection is closed after `server.keep_alive_seconds`.
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_with(|s| s.server.keep_alive_seconds = 1).await;
    let mut s = TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let answer = answer_then_close(s, Duration::from_secs(15), "an idle keep-alive connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "answered, then closed when idle: {answer}");
}

crate::both_backends!(
    a_body_that_stops_arriving_is_cut_and_probes_keep_answering,
    a_body_that_arrives_within_the_deadline_is_served,
    an_idle_keep_alive_connection_is_closed
);
