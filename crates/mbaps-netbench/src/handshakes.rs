//! Handshakes per second, full and resumed, one connection at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use mbaps_admission::SessionLog;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ServerEvent, TlsVersions};
use mbaps_tokio::TokioClient;

use crate::pki::Pki;
use crate::throughput::median;
use mbaps_tokio::AsyncCalls;

/// One scenario's figure.
pub(crate) struct Rate {
    pub(crate) name: String,
    /// Median over the rounds.
    pub(crate) per_second: f64,
    /// Handshakes the server saw as resumed, of all it saw.
    pub(crate) resumed: u64,
    pub(crate) total: u64,
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<Vec<Rate>> {
    let scenarios = [
        ("TLS 1.3 full", TlsVersions::Tls13Only, false),
        ("TLS 1.3 resumed", TlsVersions::Tls13Only, true),
        ("TLS 1.2 full", TlsVersions::Tls12Only, false),
        ("TLS 1.2 resumed", TlsVersions::Tls12Only, true),
    ];
    let mut figures: Vec<(Vec<f64>, u64, u64)> = vec![(Vec::new(), 0, 0); scenarios.len()];
    for _ in 0..rounds {
        for ((_, versions, resumption), figure) in scenarios.iter().zip(&mut figures) {
            let (rate, resumed, total) = round(pki, *versions, *resumption, window).await?;
            figure.0.push(rate);
            figure.1 += resumed;
            figure.2 += total;
        }
    }
    Ok(scenarios
        .iter()
        .zip(figures)
        .map(|((name, ..), (rates, resumed, total))| Rate {
            name: (*name).to_owned(),
            per_second: median(&rates),
            resumed,
            total,
        })
        .collect())
}

async fn round(
    pki: &Pki,
    versions: TlsVersions,
    resumption: bool,
    window: Duration,
) -> Result<(f64, u64, u64)> {
    let resumed = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let (seen_resumed, seen_total) = (Arc::clone(&resumed), Arc::clone(&total));
    let server = pki
        .bind_server(Some(versions))
        .await?
        .max_sessions(4096)
        .on_log(move |entry| {
            if let SessionLog::Event {
                event:
                    ServerEvent::Authenticated {
                        handshake: Some(handshake),
                        ..
                    },
                ..
            } = entry
            {
                seen_total.fetch_add(1, Ordering::Relaxed);
                if handshake.resumed {
                    seen_resumed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .spawn()?;
    // One configuration for the round: its session store is what resumes.
    let config = pki.client(Some(versions), resumption)?;
    let name = ServerName::try_from("localhost")?;
    let connect = || TokioClient::connect(server.local_addr(), config.clone(), name.clone());
    // Warm up (and, for resumption, get a ticket).
    for _ in 0..5 {
        drop(connect().await?);
    }
    let counted_from = total.load(Ordering::Relaxed);
    let resumed_from = resumed.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < window {
        let client = connect().await?;
        // The server reports a session once it has verified the client
        // (TLS 1.3 client finishes first): one call proves the session up.
        client.read_holding_registers(1, 0, 1).await?;
        drop(client);
        done += 1;
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    server.shutdown().await?;
    Ok((
        rate,
        resumed.load(Ordering::Relaxed) - resumed_from,
        total.load(Ordering::Relaxed) - counted_from,
    ))
}
