//! `serve` over real loopback sockets: idle and slow-header connections are closed, the
//! connection limit refuses extra connections while existing clients keep being answered,
//! errors hyper answers by itself (414, 431) have JSON bodies, a panicking handler answers
//! 500 on a connection that stays usable, and shutdown is graceful.
//!
//! Timeouts here are short so the tests are quick; the generous `HANG` limits only detect
//! a connection that is never closed (they are not speed goals).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use recsys_server::{check_admin_exposure, serve, AppState, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for something that must happen (a hang detector, not a speed goal).
const HANG: Duration = Duration::from_secs(20);

struct Server {
    address: std::net::SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), recsys_server::ServerError>>,
}

async fn start(state: AppState) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    Server {
        address,
        state,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.unwrap()
    }

    /// The connection metrics as `/metrics` renders them.
    fn connection_metrics(&self) -> String {
        let mut out = String::new();
        self.state.metrics().render_connections(&mut out);
        out
    }

    fn counter(&self, name: &str) -> String {
        self.connection_metrics()
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (at most [`HANG`]) until the metric line `name` has the value `value`;
    /// `what` says what went wrong if it never does.
    async fn wait_for_counter(&self, name: &str, value: u64, what: &str) {
        let deadline = Instant::now() + HANG;
        while !self.counter(name).ends_with(&format!(" {value}")) {
            assert!(
                Instant::now() < deadline,
                "{what}: {}",
                self.connection_metrics()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A response read from a raw socket.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} / {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one response (head, then `content-length` bytes of body).
async fn read_response(stream: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = tokio::time::timeout(HANG, stream.read(&mut chunk))
            .await
            .expect("no response within the hang limit")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(HANG, stream.read(&mut chunk))
            .await
            .expect("body not complete within the hang limit")
            .ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Raw { status, head, body })
}

async fn request(stream: &mut TcpStream, path: &str) -> Option<Raw> {
    let text = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(text.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Waits until the server closes `stream` (EOF or reset); panics after [`HANG`].
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(HANG, stream.read(&mut chunk)).await {
            Err(_) => panic!("the server kept the connection open for {HANG:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let server = start(state(short_timeouts())).await;
    // Connected, never sent a byte.
    let mut silent = server.connect().await;
    let waited = closed_by_server(&mut silent).await;
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Kept alive after an answer, then idle.
    let mut kept = server.connect().await;
    assert_eq!(request(&mut kept, "/health").await.unwrap().status, 200);
    closed_by_server(&mut kept).await;
    assert!(
        server
            .counter("recsys_http_connections_closed_total{reason=\"idle\"}")
            .ends_with(" 2"),
        "{}",
        server.counter("recsys_http_connections_closed_total{reason=\"idle\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    // A long idle limit: only the header limit can close this connection.
    let server = start(state(ServerConfig {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(3600),
        ..ServerConfig::default()
    }))
    .await;
    let mut slow = server.connect().await;
    let started = Instant::now();
    let writer = async {
        // One byte every 50 ms, never finishing the head.
        for b in b"GET /health HTTP/1.1\r\nx-slow: ".iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(started.elapsed() < HANG, "slow client never cut off");
        }
    };
    writer.await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(server
        .counter("recsys_http_connections_closed_total{reason=\"header_timeout\"}")
        .ends_with(" 1"));
    // A normal client is unaffected.
    let mut normal = server.connect().await;
    assert_eq!(request(&mut normal, "/health").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_new_connections_are_refused_and_clients_keep_answers() {
    let server = start(state(ServerConfig {
        max_connections: 4,
        ..ServerConfig::default()
    }))
    .await;
    let mut client = server.connect().await;
    assert_eq!(request(&mut client, "/health").await.unwrap().status, 200);
    // Three idle sockets fill the limit; twenty more are refused.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(server.connect().await);
    }
    // Let the server accept them before the extra ones arrive.
    server
        .wait_for_counter("recsys_http_connections_open", 4, "never 4 open")
        .await;
    for _ in 0..20 {
        let mut extra = server.connect().await;
        let answer = read_response(&mut extra).await.expect("a 503 answer");
        assert_eq!(answer.status, 503);
        assert_eq!(answer.json()["code"], "unavailable");
        closed_by_server(&mut extra).await;
    }
    assert!(server
        .counter("recsys_http_connections_refused_total")
        .ends_with(" 20"));
    // The existing client still gets answers.
    for _ in 0..5 {
        let a = request(&mut client, "/health").await.unwrap();
        assert_eq!(a.status, 200);
        let ready = request(&mut client, "/ready").await.unwrap();
        assert_eq!(ready.status, 200);
    }
    // A slot freed is a slot usable.
    drop(idle.pop());
    let deadline = Instant::now() + HANG;
    loop {
        let mut again = server.connect().await;
        match request(&mut again, "/health").await {
            Some(a) if a.status == 200 => break,
            _ => assert!(Instant::now() < deadline, "the freed slot was never reused"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_hyper_answers_itself_have_json_bodies() {
    let server = start(state(ServerConfig::default())).await;
    // A 100 KB id: URI too long.
    let mut s = server.connect().await;
    let path = format!("/recommendations/{}", "7".repeat(100_000));
    let a = request(&mut s, &path).await.expect("an answer");
    assert_eq!(a.status, 414, "{}", a.head);
    assert_eq!(a.json()["code"], "uri_too_long");
    assert!(a.json()["error"].is_string());
    // A header flood.
    let mut s = server.connect().await;
    let mut text = String::from("GET /health HTTP/1.1\r\nhost: x\r\n");
    for i in 0..300 {
        text.push_str(&format!("x-flood-{i}: {}\r\n", "y".repeat(50)));
    }
    text.push_str("\r\n");
    s.write_all(text.as_bytes()).await.unwrap();
    let a = read_response(&mut s).await.expect("an answer");
    assert_eq!(a.status, 431, "{}", a.head);
    assert_eq!(a.json()["code"], "request_header_fields_too_large");
    // Garbage.
    let mut s = server.connect().await;
    s.write_all(b"\x01\x02 nonsense\r\n\r\n").await.unwrap();
    let a = read_response(&mut s).await.expect("an answer");
    assert_eq!(a.status, 400, "{}", a.head);
    assert_eq!(a.json()["code"], "bad_request");
    // And the server still answers normally, with a content type on every error.
    let mut s = server.connect().await;
    let a = request(&mut s, "/nope").await.unwrap();
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "not_found");
    let a = request(&mut s, "/health").await.unwrap();
    assert_eq!(a.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish_and_stops() {
    let mut server = start(state(ServerConfig::default())).await;
    let mut idle = server.connect().await;
    let mut client = server.connect().await;
    assert_eq!(request(&mut client, "/health").await.unwrap().status, 200);
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(HANG, &mut server.task)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    assert!(result.is_ok());
    closed_by_server(&mut idle).await;
    assert!(TcpStream::connect(server.address).await.is_err());
}

#[test]
fn admin_routes_beyond_loopback_need_a_token() {
    let config = ServerConfig {
        admin_routes: true,
        ..ServerConfig::default()
    };
    // Checked on addresses only: nothing is bound beyond loopback.
    let everywhere: std::net::SocketAddr = "0.0.0.0:8002".parse().unwrap();
    let loopback: std::net::SocketAddr = "127.0.0.1:8002".parse().unwrap();
    let error = check_admin_exposure(&config, everywhere).unwrap_err();
    assert!(error.to_string().contains("--admin-token"), "{error}");
    assert!(check_admin_exposure(&config, loopback).is_ok());
    let with_token = ServerConfig {
        admin_token: Some("a-long-random-token".into()),
        ..config
    };
    assert!(check_admin_exposure(&with_token, everywhere).is_ok());
    assert!(check_admin_exposure(&ServerConfig::default(), everywhere).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_contradictory_configuration() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig {
        default_n: 1000,
        max_n: 100,
        ..ServerConfig::default()
    };
    let error = serve(listener, state(config), async {}).await.unwrap_err();
    assert!(error.to_string().contains("--default-n"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_connection_keeps_working() {
    let server = start(state_with_source(
        Arc::new(PanickingSource),
        ServerConfig {
            cache_capacity: 0,
            ..ServerConfig::default()
        },
    ))
    .await;
    let mut s = server.connect().await;
    let a = request(&mut s, "/similar-products?userId=2&n=3")
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["code"], "internal");
    // Same connection, next request.
    assert_eq!(request(&mut s, "/health").await.unwrap().status, 200);
}

/// Size of `big.jpg` in [`downloading`].
const BIG_IMAGE: usize = 16 * 1024 * 1024;

/// A server (`config`, serving images from a folder of its own named after `name` that
/// holds a [`BIG_IMAGE`]-byte `big.jpg`), that folder (for the test to remove), and a
/// connection that has asked for `big.jpg`.
async fn downloading(name: &str, config: ServerConfig) -> (Server, std::path::PathBuf, TcpStream) {
    let images = std::env::temp_dir().join(format!("recsys-server-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("big.jpg"), vec![7u8; BIG_IMAGE]).unwrap();
    let server = start(state(ServerConfig {
        image_dir: Some(images.clone()),
        ..config
    }))
    .await;
    let mut s = server.connect().await;
    s.write_all(b"GET /image/big.jpg HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    (server, images, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_download_outlives_the_idle_timeout() {
    let size = BIG_IMAGE;
    let (server, images, mut s) = downloading(
        "download",
        ServerConfig {
            idle_timeout: Duration::from_millis(300),
            header_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    )
    .await;
    // Read 256 KiB every 40 ms: the whole download takes several idle timeouts, but bytes
    // keep flowing.
    let started = Instant::now();
    let mut received = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    while received < size {
        let n = tokio::time::timeout(HANG, s.read(&mut chunk))
            .await
            .expect("download stalled")
            .unwrap();
        if n == 0 {
            break;
        }
        received += n;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&images);
    assert!(received > size, "cut after {received} bytes in {elapsed:?}");
    assert!(elapsed > Duration::from_millis(600), "{elapsed:?}");
    // The client reads its response: the connection was not shed for a stalled write.
    assert!(server
        .counter("recsys_http_connections_closed_total{reason=\"write_stalled\"}")
        .ends_with(" 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_its_response_is_disconnected() {
    let (server, images, _s) = downloading(
        "stalled",
        ServerConfig {
            idle_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    )
    .await;
    // Never read: the socket buffers fill up and the server's writes stall.
    server
        .wait_for_counter(
            "recsys_http_connections_closed_total{reason=\"write_stalled\"}",
            1,
            "a stalled response held its connection",
        )
        .await;
    assert!(server
        .counter("recsys_http_connections_open")
        .ends_with(" 0"));
    let _ = std::fs::remove_dir_all(&images);
}
