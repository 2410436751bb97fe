//! `--metrics ADDRESS`: Prometheus (OpenMetrics) text at `/metrics`, from
//! the audit entries (requests by role, function and decision; their
//! latency; sessions), the session log (handshake failures and refusals by
//! reason) and, for the gateway, each device's failures and connection
//! changes. `prometheus-client` keeps and encodes the figures; hyper
//! serves them on the runtime that serves Modbus, bounded (see [`serve`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mbaps_admission::AuditEntry;
use mbaps_admission::{EvictionReason, HandshakeBound, SessionLog};
use mbaps_codec::function_name;
use mbaps_session::upstream::LinkEvent;
use mbaps_session::{CloseReason, ServerEvent, SessionError};
use mbaps_tokio::GatewayLog;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// Label sets: names fixed; values borrowed where they can be (function
/// names, decisions), so that counting a request allocates little.
type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// The figures, shared by the sessions (which count) and the endpoint
/// (which encodes them).
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Histogram,
    sessions_started: Counter,
    sessions_open: Gauge<i64, AtomicI64>,
    handshake_failures: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    gateway_answers: Family<Labels, Counter>,
    gateway_links: Family<Labels, Counter>,
    gateway_latency: Family<Labels, Histogram, fn() -> Histogram>,
}

/// 50 us to about 1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mbaps");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests decided, by role, function and decision (allowed, denied, rejected)",
            requests.clone(),
        );
        let latency = latency_histogram();
        registry.register(
            "request_duration_seconds",
            "From a request's decoding to its answer",
            latency.clone(),
        );
        let sessions_started = Counter::default();
        registry.register(
            "sessions_started",
            "Sessions authenticated",
            sessions_started.clone(),
        );
        let sessions_open = Gauge::<i64, AtomicI64>::default();
        registry.register("sessions_open", "Sessions open", sessions_open.clone());
        let handshake_failures = Family::<Labels, Counter>::default();
        registry.register(
            "session_failures",
            "Sessions that failed (a handshake refused, an alert, a timeout), by reason",
            handshake_failures.clone(),
        );
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "refusals",
            "Connections and sessions closed by admission control, by reason",
            refusals.clone(),
        );
        let gateway_answers = Family::<Labels, Counter>::default();
        registry.register(
            "gateway_answers",
            "Requests the gateway answered itself, by device and exception",
            gateway_answers.clone(),
        );
        let gateway_links = Family::<Labels, Counter>::default();
        registry.register(
            "gateway_connections",
            "Changes of a device's connection (up, unreachable, failed, lost)",
            gateway_links.clone(),
        );
        let gateway_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "gateway_upstream_duration_seconds",
            "From a request's hand-over to its device to the device's answer, by device",
            gateway_latency.clone(),
        );
        Metrics {
            registry,
            gateway_latency,
            requests,
            latency,
            sessions_started,
            sessions_open,
            handshake_failures,
            refusals,
            gateway_answers,
            gateway_links,
        }
    }

    /// Counts an audit entry.
    pub(crate) fn audit(&self, entry: &AuditEntry) {
        match entry {
            AuditEntry::SessionStarted { .. } => {
                self.sessions_started.inc();
                self.sessions_open.inc();
            }
            AuditEntry::SessionEnded { .. } => {
                self.sessions_open.dec();
            }
            AuditEntry::Request { record, .. } => {
                // The NULL role is the empty label: no real role is empty.
                let role = record
                    .role
                    .as_ref()
                    .map_or(Cow::Borrowed(""), |r| Cow::Owned(r.as_str().to_owned()));
                let function = function_name(record.function).map_or_else(
                    || Cow::Owned(format!("0x{:02X}", record.function)),
                    Cow::Borrowed,
                );
                self.requests
                    .get_or_create(&vec![
                        ("role", role),
                        ("function", function),
                        ("decision", Cow::Borrowed(record.verdict.label())),
                    ])
                    .inc();
                self.latency.observe(record.latency().as_secs_f64());
            }
            _ => {}
        }
    }

    /// Counts a session log entry: failures and refusals.
    pub(crate) fn session_log(&self, entry: &SessionLog) {
        let (family, reason) = match entry {
            SessionLog::Failed { error, .. } => (&self.handshake_failures, failure_reason(error)),
            SessionLog::Refused { .. } => (&self.refusals, "session_bound"),
            SessionLog::Evicted { reason, .. } => (
                &self.refusals,
                match reason {
                    EvictionReason::Stalled { .. } => "evicted_stalled",
                    EvictionReason::Idle { .. } => "evicted_idle",
                },
            ),
            SessionLog::HandshakeDropped { bound, .. } => (
                &self.refusals,
                match bound {
                    HandshakeBound::Global { .. } => "handshake_bound",
                    HandshakeBound::PerAddress { .. } => "handshake_bound_per_address",
                },
            ),
            SessionLog::Event {
                event: ServerEvent::Closed(CloseReason::WriteTimeout(_)),
                ..
            } => (&self.refusals, "write_timeout"),
            _ => return,
        };
        family
            .get_or_create(&vec![("reason", Cow::Borrowed(reason))])
            .inc();
    }

    /// Counts a gateway log entry.
    pub(crate) fn gateway_log(&self, entry: &GatewayLog) {
        match entry {
            GatewayLog::Answered {
                device, failure, ..
            } => {
                let exception = failure.as_ref().map_or(0x0A, |f| f.exception() as u8);
                let device = device.as_deref().unwrap_or("(no route)").to_owned();
                self.gateway_answers
                    .get_or_create(&vec![
                        ("device", Cow::Owned(device)),
                        ("exception", Cow::Owned(format!("0x{exception:02X}"))),
                    ])
                    .inc();
            }
            GatewayLog::Link { device, event } => {
                let event = match event {
                    LinkEvent::Up => "up",
                    LinkEvent::Unreachable => "unreachable",
                    LinkEvent::Failed(_) => "failed",
                    LinkEvent::Lost(_) => "lost",
                    LinkEvent::Flapping { .. } => "flapping",
                    LinkEvent::DroppedAnswer { .. } => "dropped_answer",
                };
                self.gateway_links
                    .get_or_create(&vec![
                        ("device", Cow::Owned(device.to_string())),
                        ("event", Cow::Borrowed(event)),
                    ])
                    .inc();
            }
            _ => {}
        }
    }

    /// Counts a device's answer time.
    pub(crate) fn upstream_latency(&self, device: &str, latency: std::time::Duration) {
        self.gateway_latency
            .get_or_create(&vec![("device", Cow::Owned(device.to_owned()))])
            .observe(latency.as_secs_f64());
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// A short, bounded name for why a session failed.
fn failure_reason(error: &SessionError) -> &'static str {
    match error {
        SessionError::Tls(_) => "tls",
        SessionError::HandshakeTimeout(_) => "handshake_timeout",
        SessionError::NoLongerAccepted(_) => "certificate_no_longer_accepted",
        SessionError::Framing(_) => "framing",
        _ => "other",
    }
}

/// Connections the endpoint serves at once; a newcomer beyond closes the
/// oldest, so that idle or slow connections cannot keep a scraper out.
pub(crate) const MAX_METRICS_CONNECTIONS: usize = 16;
/// Time a client has to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a whole connection may take, request and answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's smallest read buffer: a request head longer is refused (431).
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Binds `address` for `/metrics` (on the running runtime); returns the
/// listener, whose address is the one bound (for `:0`).
pub(crate) async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("serving metrics on {address}"))
}

/// Serves `/metrics` from `listener` on a task of the running runtime:
/// HTTP/1 by hyper, one request per connection, at most
/// [`MAX_METRICS_CONNECTIONS`] at once, each with a header and a whole
/// connection timeout. It runs in the process that serves Modbus, so
/// nothing a client of it does may grow it.
pub(crate) fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let mut open: VecDeque<AbortHandle> = VecDeque::with_capacity(MAX_METRICS_CONNECTIONS);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("metrics endpoint: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            open.retain(|connection| !connection.is_finished());
            if open.len() >= MAX_METRICS_CONNECTIONS
                && let Some(oldest) = open.pop_front()
            {
                oldest.abort();
            }
            let metrics = Arc::clone(&metrics);
            let connection = tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = answer(&metrics, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let serving = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .max_buf_size(MAX_REQUEST_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serving).await;
            });
            open.push_back(connection.abort_handle());
        }
    });
}

/// `GET /metrics` (or `HEAD`): the figures; another path 404, another
/// method 405.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the metrics are read with GET\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
