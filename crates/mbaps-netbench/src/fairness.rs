//! A shared device under a flood: behind the gateway, a device that takes
//! 20 ms per answer, one request at a time; an operator reading once every
//! 100 ms, alone and while six viewers keep 32 reads in flight each. The
//! figures are the operator's latency (p50, p99) and how often it was
//! answered busy (0x06); the physical reference is the device's own answer
//! time: the operator's wait can never be shorter, and with sessions taking
//! turns it should stay within a few of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientError, Pdu, ServerConfig, TlsVersions};
use mbaps_tokio::{
    AsyncCalls, AsyncHandler, Device, Gateway, IncomingRequest, Later, ServerHandle, TokioClient,
    TokioServer, UpstreamLimits,
};

use crate::pki::Pki;
use crate::throughput::median;

/// How long the device takes to answer.
pub(crate) const ANSWER_TIME: Duration = Duration::from_millis(20);
/// The viewers flooding, and the reads each keeps in flight.
pub(crate) const VIEWERS: usize = 6;
pub(crate) const VIEWER_IN_FLIGHT: usize = 32;
/// The operator's pace, and its reads per measurement.
const OPERATOR_PAUSE: Duration = Duration::from_millis(100);
const OPERATOR_READS: usize = 40;

/// The operator's figures, medians over the rounds.
pub(crate) struct Fairness {
    /// Alone with the device.
    pub(crate) quiet: Latency,
    /// While the viewers flood it.
    pub(crate) flooded: Latency,
    /// Viewer reads answered busy per second during the flood (their
    /// bursts past their share).
    pub(crate) viewer_busy_per_second: f64,
}

/// An operator's latency figures.
#[derive(Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Reads answered 0x06, of [`OPERATOR_READS`] per round (the most of
    /// any round).
    pub(crate) busy: usize,
}

/// A device taking [`ANSWER_TIME`] per read (register n holds n).
#[derive(Clone)]
struct SlowDevice;

impl AsyncHandler for SlowDevice {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        // The future owns what it needs: it outlives this call.
        slow_answer(request)
    }
}

async fn slow_answer(request: IncomingRequest) -> Result<Pdu, ExceptionCode> {
    tokio::time::sleep(ANSWER_TIME).await;
    let Ok(Request::ReadHoldingRegisters { address, quantity }) = request.request() else {
        return Err(ExceptionCode::IllegalFunction);
    };
    let values: Vec<u16> = (address..=u16::MAX).take(quantity.into()).collect();
    Pdu::encode_response(&Response::ReadHoldingRegisters {
        values: Registers::from_values(&values),
    })
    .map_err(|_| ExceptionCode::IllegalDataAddress)
}

pub(crate) async fn measure(pki: &Pki, rounds: usize) -> Result<Fairness> {
    let device_config =
        ServerConfig::plain(Pki::policy()?, Some(mbaps_authz::Role::new("operator")?)).build()?;
    let device = TokioServer::bind("127.0.0.1:0", device_config, Later(SlowDevice))
        .await?
        .spawn()?;
    // The gateway's defaults: one on the device's wire, 64 waiting, 16 per
    // session.
    let gateway = Gateway::to(
        Device::plain(device.local_addr().to_string()).limits(UpstreamLimits::default()),
    )?;
    let front = TokioServer::bind(
        "127.0.0.1:0",
        pki.server(Some(TlsVersions::Tls13Only))?,
        gateway,
    )
    .await?
    .spawn()?;
    let (mut quiet, mut flooded, mut busy_rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        quiet.push(operator(pki, &front).await?);
        let (latency, busy_per_second) = under_flood(pki, &front).await?;
        flooded.push(latency);
        busy_rates.push(busy_per_second);
    }
    front.shutdown().await?;
    device.shutdown().await?;
    Ok(Fairness {
        quiet: medians(&quiet),
        flooded: medians(&flooded),
        viewer_busy_per_second: median(&busy_rates),
    })
}

fn medians(rounds: &[Latency]) -> Latency {
    let of = |figure: fn(&Latency) -> Duration| {
        let seconds: Vec<f64> = rounds.iter().map(|l| figure(l).as_secs_f64()).collect();
        Duration::from_secs_f64(median(&seconds))
    };
    Latency {
        p50: of(|l| l.p50),
        p99: of(|l| l.p99),
        busy: rounds.iter().map(|l| l.busy).max().unwrap_or(0),
    }
}

/// A TLS 1.3 client of `front` with the certificate of `role`.
pub(crate) async fn connect(pki: &Pki, front: &ServerHandle, role: &str) -> Result<TokioClient> {
    Ok(TokioClient::connect(
        front.local_addr(),
        pki.client_as(role, Some(TlsVersions::Tls13Only), true)?,
        ServerName::try_from("localhost")?,
    )
    .await?)
}

/// The operator's reads, one every [`OPERATOR_PAUSE`].
async fn operator(pki: &Pki, front: &ServerHandle) -> Result<Latency> {
    let operator = connect(pki, front, "operator").await?;
    let mut waits = Vec::with_capacity(OPERATOR_READS);
    let mut busy = 0;
    for round in 0..OPERATOR_READS {
        let asked = Instant::now();
        match operator.read_holding_registers(1, round as u16, 1).await {
            Ok(_) => {}
            Err(ClientError::Exception(ExceptionCode::ServerDeviceBusy)) => busy += 1,
            Err(error) => anyhow::bail!("the operator's read {round}: {error}"),
        }
        waits.push(asked.elapsed());
        tokio::time::sleep(OPERATOR_PAUSE).await;
    }
    operator.close().await;
    waits.sort();
    let at = |fraction: f64| waits[((waits.len() - 1) as f64 * fraction).round() as usize];
    Ok(Latency {
        p50: at(0.5),
        p99: at(0.99),
        busy,
    })
}

/// [`operator`] while the viewers flood; and the viewers' busy answers
/// per second.
async fn under_flood(pki: &Pki, front: &ServerHandle) -> Result<(Latency, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let mut viewers = Vec::with_capacity(VIEWERS);
    let mut tasks = Vec::with_capacity(VIEWERS * VIEWER_IN_FLIGHT);
    for _ in 0..VIEWERS {
        let viewer = connect(pki, front, "viewer").await?;
        for _ in 0..VIEWER_IN_FLIGHT {
            let (viewer, stop, busy) = (viewer.clone(), Arc::clone(&stop), Arc::clone(&busy));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match viewer.read_holding_registers(1, 0, 1).await {
                        Ok(_) => {}
                        Err(ClientError::Exception(ExceptionCode::ServerDeviceBusy)) => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        viewers.push(viewer);
    }
    // Let the flood fill the queue first.
    tokio::time::sleep(ANSWER_TIME * 20).await;
    let started = Instant::now();
    let busy_before = busy.load(Ordering::Relaxed);
    let latency = operator(pki, front).await;
    let busy_per_second =
        (busy.load(Ordering::Relaxed) - busy_before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    for viewer in viewers {
        viewer.close().await;
    }
    Ok((latency?, busy_per_second))
}
