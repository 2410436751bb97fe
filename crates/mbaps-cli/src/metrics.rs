//! `--metrics ADDRESS`: the figures of [`mbaps_observe::Metrics`] as
//! Prometheus (OpenMetrics) text at `/metrics`, served by hyper on the
//! runtime that serves Modbus, bounded (see [`serve`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mbaps_observe::Metrics;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

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
