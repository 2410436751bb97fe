//! Requests per second: read 10 holding registers on loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::TokioClient;
use tokio_modbus::client::Reader;

use crate::pki::Pki;
use mbaps_tokio::AsyncCalls;

/// The transports measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Tls13,
    Tls12,
    Plain,
    TokioModbus,
}

impl Transport {
    pub(crate) const ALL: [Transport; 4] = [
        Transport::Tls13,
        Transport::Tls12,
        Transport::Plain,
        Transport::TokioModbus,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tls13 => "mbaps TLS 1.3",
            Transport::Tls12 => "mbaps TLS 1.2",
            Transport::Plain => "mbaps plain TCP",
            Transport::TokioModbus => "tokio-modbus plain TCP",
        }
    }

    fn versions(self) -> Option<TlsVersions> {
        match self {
            Transport::Tls13 => Some(TlsVersions::Tls13Only),
            Transport::Tls12 => Some(TlsVersions::Tls12Only),
            Transport::Plain | Transport::TokioModbus => None,
        }
    }
}

/// One scenario's figure.
pub(crate) struct Rate {
    pub(crate) transport: Transport,
    pub(crate) in_flight: usize,
    /// Median over the rounds.
    pub(crate) per_second: f64,
    pub(crate) rounds: Vec<f64>,
}

const ADDRESS: u16 = 0;
const QUANTITY: u16 = 10;

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<Vec<Rate>> {
    let mut rates: Vec<Rate> = Vec::new();
    for transport in Transport::ALL {
        for in_flight in [1, 16] {
            rates.push(Rate {
                transport,
                in_flight,
                per_second: 0.0,
                rounds: Vec::new(),
            });
        }
    }
    // Interleaved: round 1 of every scenario, then round 2, ...
    for _ in 0..rounds {
        for rate in &mut rates {
            let measured = match rate.transport {
                Transport::TokioModbus => tokio_modbus_rate(rate.in_flight, window).await,
                transport => mbaps_rate(pki, transport, rate.in_flight, window).await,
            }
            .with_context(|| {
                format!(
                    "{} with {} in flight",
                    rate.transport.name(),
                    rate.in_flight
                )
            })?;
            rate.rounds.push(measured);
        }
    }
    for rate in &mut rates {
        rate.per_second = median(&rate.rounds);
    }
    Ok(rates)
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Our server and client: one connection, `in_flight` tasks calling on it.
async fn mbaps_rate(
    pki: &Pki,
    transport: Transport,
    in_flight: usize,
    window: Duration,
) -> Result<f64> {
    let versions = transport.versions();
    let server = pki.bind_server(versions).await?.spawn()?;
    let client = TokioClient::connect(
        server.local_addr(),
        pki.client(versions, true)?,
        ServerName::try_from("localhost")?,
    )
    .await?;
    let rate = load(in_flight, window, |_| {
        let client = client.clone();
        async move {
            loop {
                let values = client.read_holding_registers(1, ADDRESS, QUANTITY).await;
                if !values.is_ok_and(|v| v.len() == usize::from(QUANTITY)) {
                    return;
                }
                yield_count().await;
            }
        }
    })
    .await;
    drop(client);
    server.shutdown().await?;
    rate
}

/// tokio-modbus's server and client. Its client has one request in flight
/// per connection (`&mut self` calls), so `in_flight` connections are used.
async fn tokio_modbus_rate(in_flight: usize, window: Duration) -> Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let on_connected = |stream, peer| async move {
            tokio_modbus::server::tcp::accept_tcp_connection(stream, peer, |_| Ok(Some(Counting)))
        };
        let _ = server.serve(&on_connected, |_| {}).await;
    });
    let mut contexts = Vec::new();
    for _ in 0..in_flight {
        contexts.push(connect_tokio_modbus(address).await?);
    }
    let contexts: Vec<_> = contexts.into_iter().map(tokio::sync::Mutex::new).collect();
    let contexts = Arc::new(contexts);
    let rate = load(in_flight, window, |i| {
        let contexts = Arc::clone(&contexts);
        async move {
            let mut context = contexts[i].lock().await;
            loop {
                match context.read_holding_registers(ADDRESS, QUANTITY).await {
                    Ok(Ok(values)) if values.len() == usize::from(QUANTITY) => {}
                    _ => return,
                }
                yield_count().await;
            }
        }
    })
    .await;
    server.abort();
    rate
}

async fn connect_tokio_modbus(address: SocketAddr) -> Result<tokio_modbus::client::Context> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    Ok(tokio_modbus::client::tcp::attach(stream))
}

/// tokio-modbus's service: registers hold their address, as in
/// [`mbaps_simulator::Tables::preset`].
struct Counting;

impl tokio_modbus::server::Service for Counting {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        std::future::ready(match request {
            tokio_modbus::Request::ReadHoldingRegisters(address, quantity) => {
                let end = address.checked_add(quantity);
                match end {
                    Some(end) => Ok(tokio_modbus::Response::ReadHoldingRegisters(
                        (address..end).collect(),
                    )),
                    None => Err(tokio_modbus::ExceptionCode::IllegalDataAddress),
                }
            }
            _ => Err(tokio_modbus::ExceptionCode::IllegalFunction),
        })
    }
}

tokio::task_local! {
    static COUNT: Arc<AtomicU64>;
}

/// Counts one finished call of the current worker.
pub(crate) async fn yield_count() {
    COUNT.with(|count| count.fetch_add(1, Ordering::Relaxed));
}

/// Runs `workers` call loops, lets them warm up, then counts the calls
/// finished within `window`.
pub(crate) async fn load<F, W>(workers: usize, window: Duration, worker: W) -> Result<f64>
where
    W: Fn(usize) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..workers {
        let calls = worker(i);
        let stopped_early = Arc::clone(&stopped);
        tasks.push(tokio::spawn(COUNT.scope(Arc::clone(&count), async move {
            calls.await;
            stopped_early.store(true, Ordering::Relaxed);
        })));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let before = count.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let after = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for task in tasks {
        task.abort();
    }
    if stopped.load(Ordering::Relaxed) {
        return Err(anyhow!("a call failed during the measurement"));
    }
    Ok((after - before) as f64 / elapsed.as_secs_f64())
}
