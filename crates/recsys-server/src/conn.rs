//! The HTTP/1 connection loop behind [`crate::serve`]: a connection limit, header-read and
//! idle timeouts, graceful shutdown, and JSON bodies for the errors hyper answers by itself.
//!
//! `axum::serve` has no such knobs, so connections are accepted here and handed to hyper's
//! HTTP/1 connection builder. Each socket is wrapped in a [`GuardedIo`] that knows (through
//! a per-connection [`Activity`] shared with the service) whether a request is in progress:
//!
//! * **idle**: no request in progress and no byte of the next one received — the read
//!   fails with `TimedOut` after [`ServerConfig::idle_timeout`](crate::ServerConfig)
//!   without traffic either way (a response still being written is traffic);
//! * **header**: the first byte of a request arrived but the head is not complete — the
//!   read fails after [`ServerConfig::header_timeout`](crate::ServerConfig), counted from
//!   that first byte (a client sending one byte per second is closed);
//! * **busy**: a request is being answered — no read deadline; a write that makes no
//!   progress for the idle timeout fails (a client that stops reading its response).
//!
//! hyper answers unparsable request heads itself (414 for a long URI, 431 for too many or
//! too large headers, 400 for garbage) with an empty body; the wrapper recognises such a
//! response (an error status without a content type, written while no request is in
//! progress — every response of the router carries a content type) and writes a JSON body
//! in the documented error shape instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::{status_code_name, ServerError};
use crate::metrics::Metrics;
use crate::state::AppState;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

/// Request counters of one connection, shared by its service (which counts) and its
/// socket wrapper (which reads them to know whether a request is in progress).
#[derive(Debug, Default)]
struct Activity {
    /// Requests handed to the router.
    started: AtomicU64,
    /// Requests whose response the router has produced (or that were cancelled).
    finished: AtomicU64,
    /// The connection task, when it waits for the socket while a request is in progress:
    /// woken when the request finishes so the idle deadline starts (hyper does not read
    /// the socket again after writing a response until it becomes readable).
    reader: Mutex<Option<std::task::Waker>>,
    /// Why the server closed the connection (0: it did not; else `Shed as u8 + 1`).
    shed: std::sync::atomic::AtomicU8,
}

impl Activity {
    fn busy(&self) -> bool {
        self.started.load(Ordering::Acquire) != self.finished.load(Ordering::Acquire)
    }
}

/// Marks a request finished when dropped (also when the connection drops mid-request).
struct Finish(Arc<Activity>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
        let waiting = self
            .0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

/// Logs a kind of event at most once per interval, with the count since the last line.
#[derive(Debug)]
struct Throttled {
    last: Mutex<Option<std::time::Instant>>,
    pending: AtomicU64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Throttled {
            last: Mutex::new(None),
            pending: AtomicU64::new(0),
        }
    }

    /// Counts one event; returns how many to report now (0: stay quiet).
    fn hit(&self) -> u64 {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return 0;
        }
        *last = Some(std::time::Instant::now());
        self.pending.swap(0, Ordering::Relaxed)
    }
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Shed {
    Idle,
    Header,
    Write,
}

impl Shed {
    fn as_str(self) -> &'static str {
        match self {
            Shed::Idle => "idle",
            Shed::Header => "slow request head",
            Shed::Write => "response not read",
        }
    }
}

/// The socket of one connection, with the deadlines described in the module docs.
struct GuardedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    limits: Limits,
    /// `activity.finished` when the current idle phase began.
    phase: u64,
    /// A byte of the next request arrived in this phase (the header deadline runs).
    request_started: bool,
    /// When the current read phase ends.
    read_deadline: Instant,
    read_sleep: Pin<Box<Sleep>>,
    /// When a write last made progress: an idle phase only ends after `idle` without
    /// traffic either way (a slow but steady download of a response is not idle).
    last_write: Option<Instant>,
    /// When a stalled write gives up (set while writes return `Pending`).
    write_deadline: Option<Instant>,
    write_sleep: Option<Pin<Box<Sleep>>>,
    /// A JSON error response being written in place of hyper's empty one: the bytes, how
    /// many are written, and how many bytes of hyper's buffer it stands for.
    rewrite: Option<(Vec<u8>, usize, usize)>,
}

impl GuardedIo {
    fn new(stream: TcpStream, activity: Arc<Activity>, limits: Limits) -> Self {
        let deadline = Instant::now() + limits.idle;
        GuardedIo {
            stream,
            activity,
            limits,
            phase: 0,
            request_started: false,
            read_deadline: deadline,
            read_sleep: Box::pin(tokio::time::sleep_until(deadline)),
            last_write: None,
            write_deadline: None,
            write_sleep: None,
            rewrite: None,
        }
    }

    fn timed_out(&mut self, why: Shed) -> io::Error {
        self.activity.shed.store(why as u8 + 1, Ordering::Release);
        io::Error::new(io::ErrorKind::TimedOut, why.as_str())
    }

    /// Counts a write that could not proceed; fails once writes stalled for the idle
    /// timeout.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let deadline = *self
            .write_deadline
            .get_or_insert_with(|| Instant::now() + self.limits.idle);
        let sleep = self
            .write_sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.timed_out(Shed::Write)));
        }
        Poll::Pending
    }

    /// Writes `first` (the start of what hyper writes), replacing hyper's own empty error
    /// responses; `total` is how many bytes hyper offers.
    fn poll_write_checked(
        &mut self,
        cx: &mut Context<'_>,
        first: &[u8],
        total: usize,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none() && !self.activity.busy() {
            if let Some(json) = json_for_hyper_error(first) {
                self.rewrite = Some((json, 0, total));
            }
        }
        if let Some((bytes, written, stands_for)) = &mut self.rewrite {
            while *written < bytes.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        *written += n;
                        self.write_deadline = None;
                        self.last_write = Some(Instant::now());
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return self.write_stalled(cx),
                }
            }
            // hyper closes the connection after its error response: whatever it offers
            // counts as written.
            let _ = stands_for;
            return Poll::Ready(Ok(total));
        }
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Pending => self.write_stalled(cx),
            ready => {
                self.write_deadline = None;
                self.last_write = Some(Instant::now());
                ready
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let finished = this.activity.finished.load(Ordering::Acquire);
        if finished != this.phase {
            // A response was produced: a new idle phase begins.
            this.phase = finished;
            this.request_started = false;
            this.read_deadline = Instant::now() + this.limits.idle;
        }
        let busy = this.activity.busy();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !busy && !this.request_started {
                    this.request_started = true;
                    this.read_deadline = Instant::now() + this.limits.header;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if busy => {
                let mut reader = this
                    .activity
                    .reader
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *reader = Some(cx.waker().clone());
                }
                drop(reader);
                if !this.activity.busy() {
                    // Finished meanwhile: poll again to start the idle deadline.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Pending => {
                let deadline = match this.last_write {
                    Some(at) if !this.request_started => {
                        this.read_deadline.max(at + this.limits.idle)
                    }
                    _ => this.read_deadline,
                };
                if this.read_sleep.deadline() != deadline {
                    this.read_sleep.as_mut().reset(deadline);
                }
                if this.read_sleep.as_mut().poll(cx).is_ready() {
                    let why = if this.request_started {
                        Shed::Header
                    } else if this.write_deadline.is_some() {
                        // Quiet because the client does not read what is written.
                        Shed::Write
                    } else {
                        Shed::Idle
                    };
                    return Poll::Ready(Err(this.timed_out(why)));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_write_checked(cx, buf, buf.len(), |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first: &[u8] = bufs.iter().find(|b| !b.is_empty()).map_or(&[], |b| b);
        let total = bufs.iter().map(|b| b.len()).sum();
        this.poll_write_checked(cx, first, total, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// When `head` is the start of an error response without a content type (what hyper
/// writes for a request head it cannot parse), the JSON response to send instead.
fn json_for_hyper_error(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = head[..end].to_ascii_lowercase();
    if headers.windows(14).any(|w| w == b"\ncontent-type:") {
        return None;
    }
    let message = match status {
        400 => "the request could not be parsed as HTTP/1.1",
        414 => "the request line is too long (the URI is limited to 64 KiB; ids to far less)",
        431 => "the request headers are too large or too many (at most 100 headers)",
        505 => "only HTTP/1.0 and HTTP/1.1 are served",
        _ => "the request could not be handled",
    };
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = serde_json::json!({ "error": message, "code": status_code_name(status) });
    let body = body.to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// What a connection beyond the limit is told before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 72\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":\"too many connections: try again shortly\",\"code\":\"unavailable\"}";

/// Accepts connections until `shutdown` completes, then lets every connection finish its
/// request in flight and returns.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (close_tx, close_rx) = watch::channel(false);
    let metrics = state.metrics();
    let refused_log = Throttled::new();
    let shed_log = Arc::new(Throttled::new());
    let accept_log = Throttled::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                metrics
                    .connections
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                let n = accept_log.hit();
                if n > 0 {
                    tracing::warn!(%error, failures = n, "accepting a connection failed (e.g. no file descriptor left); retrying");
                }
                // EMFILE and friends do not go away at once: do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connections.refused.fetch_add(1, Ordering::Relaxed);
            let _ = stream.try_write(TOO_MANY);
            drop(stream);
            let n = refused_log.hit();
            if n > 0 {
                tracing::warn!(
                    limit = limits.max_connections,
                    refused = n,
                    "connection limit reached: new connections are answered 503 and closed"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics.connections.accepted.fetch_add(1, Ordering::Relaxed);
        metrics.connections.open.fetch_add(1, Ordering::Relaxed);
        let app = app.clone();
        let state = state.clone();
        let shed_log = Arc::clone(&shed_log);
        let close = close_rx.clone();
        tokio::spawn(async move {
            let metrics = state.metrics();
            connection(stream, app, metrics, &shed_log, limits, close).await;
            metrics.connections.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    // Stop accepting (the socket closes), tell every connection to finish, wait for them.
    drop(listener);
    drop(close_rx);
    let _ = close_tx.send(true);
    close_tx.closed().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: Router,
    metrics: &Metrics,
    shed_log: &Throttled,
    limits: Limits,
    mut close: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let io = GuardedIo::new(stream, Arc::clone(&activity), limits);
    let counted = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let activity = &counted;
        activity.started.fetch_add(1, Ordering::AcqRel);
        let finish = Finish(Arc::clone(activity));
        let app = app.clone();
        async move {
            let response = tower::ServiceExt::oneshot(app, request.map(Body::new)).await;
            drop(finish);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Deadlines are GuardedIo's (hyper's own header timeout would also cut idle
    // keep-alive connections at the header limit).
    builder.header_read_timeout(None).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = close.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    // hyper reports a failed read on an idle connection as a clean end: the reason is
    // taken from the socket wrapper.
    let shed = match activity.shed.load(Ordering::Acquire) {
        1 => Some((Shed::Idle, &metrics.connections.idle_closed)),
        2 => Some((Shed::Header, &metrics.connections.header_closed)),
        3 => Some((Shed::Write, &metrics.connections.write_closed)),
        _ => None,
    };
    match (shed, result) {
        (Some((why, counter)), _) => {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason = why.as_str(), "connection closed by the server");
            let n = shed_log.hit();
            if n > 0 {
                tracing::info!(
                    closed = n,
                    header_timeout_ms = limits.header.as_millis() as u64,
                    idle_timeout_ms = limits.idle.as_millis() as u64,
                    "closed connections that were idle, sent their request too slowly or did not read their response"
                );
            }
        }
        (None, Err(error)) => tracing::debug!(%error, "connection ended with an error"),
        (None, Ok(())) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_errors_become_json() {
        let head =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(json_for_hyper_error(head).unwrap()).unwrap();
        assert!(
            json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{json}"
        );
        let body = json.split("\r\n\r\n").nth(1).unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["code"], "request_header_fields_too_large");
        assert!(json.contains(&format!("content-length: {}\r\n", body.len())));
        // Responses of the router carry a content type and are left alone.
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(json_for_hyper_error(ours).is_none());
        assert!(json_for_hyper_error(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(json_for_hyper_error(b"{\"a\":1}").is_none());
    }

    #[test]
    fn too_many_is_a_complete_response() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        let _: serde_json::Value = serde_json::from_str(body).unwrap();
    }
}
