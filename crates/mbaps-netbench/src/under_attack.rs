//! Admission control under load: an authenticated client's request latency
//! and a new client's time to its first answer while an attacker keeps
//! 1,000 anonymous TCP connections open (from 20 loopback addresses) and
//! keeps replacing them with new ones as fast as it can, beside the same
//! client's latency on a quiet server, in one run.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::TokioClient;
use tokio::sync::oneshot;

use crate::pki::Pki;
use crate::throughput::median;
use mbaps_tokio::AsyncCalls;

/// Anonymous connections opened and held per round.
pub(crate) const ATTACKERS: usize = 1000;

/// The figures, medians over the rounds.
pub(crate) struct UnderAttack {
    /// The authenticated client's p99 request latency, quiet server.
    pub(crate) quiet_p99: Duration,
    /// The same while the anonymous connections are opened and held.
    pub(crate) attacked_p99: Duration,
    /// A new client's connect + handshake + first answer, during the attack.
    pub(crate) first_answer: Duration,
    /// The worst first answer of the rounds.
    pub(crate) worst_first_answer: Duration,
    /// Anonymous connections opened per second during the measurement
    /// (median of the rounds).
    pub(crate) connects_per_second: f64,
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<UnderAttack> {
    let (mut quiet, mut attacked, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let round = round(pki, window).await?;
        quiet.push(round.quiet_p99.as_secs_f64());
        attacked.push(round.attacked_p99.as_secs_f64());
        first.push(round.first_answer.as_secs_f64());
        rates.push(round.connects_per_second);
    }
    let worst = first.iter().copied().fold(0.0, f64::max);
    Ok(UnderAttack {
        quiet_p99: Duration::from_secs_f64(median(&quiet)),
        attacked_p99: Duration::from_secs_f64(median(&attacked)),
        first_answer: Duration::from_secs_f64(median(&first)),
        worst_first_answer: Duration::from_secs_f64(worst),
        connects_per_second: median(&rates),
    })
}

/// One round's figures.
struct Round {
    quiet_p99: Duration,
    attacked_p99: Duration,
    first_answer: Duration,
    connects_per_second: f64,
}

async fn round(pki: &Pki, window: Duration) -> Result<Round> {
    let versions = Some(TlsVersions::Both);
    let server = pki.bind_server(versions).await?.spawn()?;
    let address = server.local_addr();
    let name = ServerName::try_from("localhost")?;
    let operator =
        TokioClient::connect(address, pki.client(versions, false)?, name.clone()).await?;
    let quiet_p99 = p99(&operator, window).await?;

    let (stop, stopped) = oneshot::channel();
    let progress = Arc::new(AtomicUsize::new(0));
    let opening = Arc::clone(&progress);
    let attack = std::thread::spawn(move || attack(address, &opening, stopped));
    let newcomer = async {
        // Once the attacker holds its connections and goes on replacing them.
        while progress.load(Ordering::Relaxed) < ATTACKERS + ATTACKERS / 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = Instant::now();
        let client = TokioClient::connect(address, pki.client(versions, false)?, name).await?;
        client.read_holding_registers(1, 0, 10).await?;
        anyhow::Ok(started.elapsed())
    };
    let (attacked_p99, first_answer) = tokio::join!(p99(&operator, window), newcomer);
    let _ = stop.send(());
    let connects_per_second = attack
        .join()
        .map_err(|_| anyhow::anyhow!("the attacker thread panicked"))??;
    server.shutdown().await?;
    Ok(Round {
        quiet_p99,
        attacked_p99: attacked_p99?,
        first_answer: first_answer.context("the new client during the attack")?,
        connects_per_second,
    })
}

/// The 99th percentile of sequential reads of 10 registers over `window`.
async fn p99(client: &TokioClient, window: Duration) -> Result<Duration> {
    let mut latencies = Vec::new();
    let end = Instant::now() + window;
    while Instant::now() < end {
        let started = Instant::now();
        client.read_holding_registers(1, 0, 10).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let index = (latencies.len() * 99).div_ceil(100).saturating_sub(1);
    latencies
        .get(index)
        .copied()
        .context("no request finished in the window")
}

/// Connects in flight at once from the attacker.
const CONCURRENT_CONNECTS: usize = 16;

/// The attacker, on a thread and runtime of its own: opens anonymous
/// connections as fast as it can (several connects in flight), holding
/// the newest `ATTACKERS` of them (the oldest is dropped for each new
/// one), until told to stop; counts them in `progress`. Returns the
/// connects per second.
fn attack(
    server: SocketAddr,
    progress: &AtomicUsize,
    mut stop: oneshot::Receiver<()>,
) -> Result<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let mut held = std::collections::VecDeque::with_capacity(ATTACKERS);
        let mut connecting = tokio::task::JoinSet::new();
        let mut opened = 0usize;
        let connect = |n: usize| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            let source = Ipv4Addr::new(127, 0, 0, 2 + (n % 20) as u8);
            socket.bind(SocketAddrV4::new(source, 0).into())?;
            socket.connect(server).await
        };
        for n in 0..CONCURRENT_CONNECTS {
            connecting.spawn(connect(n));
        }
        while let Some(done) = connecting.join_next().await {
            // A connection the server dropped already was opened all the same.
            if let Ok(Ok(stream)) = done {
                if held.len() == ATTACKERS {
                    held.pop_front();
                }
                held.push_back(stream);
            }
            opened += 1;
            progress.store(opened, Ordering::Relaxed);
            if stop.try_recv() != Err(oneshot::error::TryRecvError::Empty) {
                break;
            }
            connecting.spawn(connect(opened + CONCURRENT_CONNECTS));
        }
        Ok(opened as f64 / started.elapsed().as_secs_f64())
    })
}
