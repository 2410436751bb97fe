//! The gateway's cost: read 10 holding registers through `Gateway` (a TLS
//! 1.3 front with roles, a plain upstream) against the same requests sent
//! directly (plain) to the plain server behind it; 1 and 16 in flight on
//! one client, and 10 clients (one call each in flight) sharing the
//! gateway's one upstream connection. The physical references of one more
//! hop on the same cores: the same TLS 1.3 requests through a bare
//! TLS-terminating proxy (rustls in front with the gateway's certificate
//! and client authentication, plaintext bytes copied both ways to the same
//! device: no parsing, no authorization, a connection per client), the
//! reference of any TLS gateway; and the same plain requests through a
//! bare TCP proxy (tokio's `copy_bidirectional`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::rustls::{self, ServerConnection};
use mbaps_tokio::{AsyncCalls, Device, Gateway, TokioClient, TokioServer, UpstreamLimits};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::pki::Pki;
use crate::throughput::{load, median, yield_count};

/// Which way the requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Plain, to the server.
    Direct,
    /// TLS 1.3, through the gateway.
    Gateway,
    /// TLS 1.3, through a bare TLS-terminating proxy.
    TlsProxy,
    /// Plain, through a bare TCP proxy.
    Proxy,
}

/// The paths of a group, in order: its scenarios are consecutive.
const GROUP: usize = 4;

/// The scenarios: (name, clients, calls in flight per client, path), in
/// groups of [`GROUP`]: direct, the gateway, the TLS proxy, the TCP proxy.
pub(crate) const SCENARIOS: [(&str, usize, usize, Path); 12] = [
    ("direct, 1 in flight", 1, 1, Path::Direct),
    ("gateway, 1 in flight", 1, 1, Path::Gateway),
    ("bare TLS proxy, 1 in flight", 1, 1, Path::TlsProxy),
    ("bare TCP proxy, 1 in flight", 1, 1, Path::Proxy),
    ("direct, 16 in flight", 1, 16, Path::Direct),
    ("gateway, 16 in flight", 1, 16, Path::Gateway),
    ("bare TLS proxy, 16 in flight", 1, 16, Path::TlsProxy),
    ("bare TCP proxy, 16 in flight", 1, 16, Path::Proxy),
    ("direct, 10 clients", 10, 1, Path::Direct),
    ("gateway, 10 clients", 10, 1, Path::Gateway),
    ("bare TLS proxy, 10 clients", 10, 1, Path::TlsProxy),
    ("bare TCP proxy, 10 clients", 10, 1, Path::Proxy),
];

/// The first scenario of each group: 1 in flight, 16 in flight, 10
/// clients.
pub(crate) const GROUPS: [(&str, usize); 3] = [
    ("1 in flight", 0),
    ("16 in flight", GROUP),
    ("10 clients", 2 * GROUP),
];

/// Requests/s of each scenario, medians over the rounds, in
/// [`SCENARIOS`]' order.
pub(crate) struct GatewayRates {
    pub(crate) per_second: Vec<f64>,
}

impl GatewayRates {
    /// The gateway over direct for the scenario group starting at `direct`.
    pub(crate) fn ratio(&self, direct: usize) -> f64 {
        self.per_second[direct + 1] / self.per_second[direct]
    }

    /// The gateway over the bare TLS proxy, the same group: the figure
    /// that counts (both terminate TLS and forward to the same device).
    pub(crate) fn tls_proxy_ratio(&self, direct: usize) -> f64 {
        self.per_second[direct + 1] / self.per_second[direct + 2]
    }

    /// The bare TCP proxy over direct, the same group.
    pub(crate) fn proxy_ratio(&self, direct: usize) -> f64 {
        self.per_second[direct + 3] / self.per_second[direct]
    }
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<GatewayRates> {
    let device = pki.bind_server(None).await?.spawn()?;
    // The gateway keeps up to 16 requests on the wire to the device.
    let limits = UpstreamLimits {
        in_flight: 16,
        queue: 256,
        ..UpstreamLimits::default()
    };
    let gateway = Gateway::to(Device::plain(device.local_addr().to_string()).limits(limits))?;
    let front = TokioServer::bind(
        "127.0.0.1:0",
        pki.server(Some(TlsVersions::Tls13Only))?,
        gateway,
    )
    .await?
    .spawn()?;
    let proxy = bare_proxy(device.local_addr()).await?;
    let front_tls = pki.server(Some(TlsVersions::Tls13Only))?;
    let front_tls = Arc::new(front_tls.tls().context("a TLS configuration")?.clone());
    let tls_proxy = bare_tls_proxy(device.local_addr(), front_tls).await?;
    let mut measured = vec![Vec::new(); SCENARIOS.len()];
    for _ in 0..rounds {
        for (index, &(_, clients, in_flight, path)) in SCENARIOS.iter().enumerate() {
            let (target, versions) = match path {
                Path::Direct => (device.local_addr(), None),
                Path::Gateway => (front.local_addr(), Some(TlsVersions::Tls13Only)),
                Path::TlsProxy => (tls_proxy, Some(TlsVersions::Tls13Only)),
                Path::Proxy => (proxy, None),
            };
            measured[index].push(rate(pki, target, versions, clients, in_flight, window).await?);
        }
    }
    front.shutdown().await?;
    device.shutdown().await?;
    Ok(GatewayRates {
        per_second: measured.iter().map(|rounds| median(rounds)).collect(),
    })
}

/// A TCP proxy to `server` that copies bytes both ways and nothing else.
async fn bare_proxy(server: SocketAddr) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(server).await else {
                    return;
                };
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Ok(address)
}

/// A TLS-terminating proxy to `server`: rustls with `tls` in front (the
/// gateway's certificate, client certificates required), the plaintext
/// copied both ways, nothing parsed. A task per connection, each woken by
/// whichever side has bytes.
async fn bare_tls_proxy(server: SocketAddr, tls: Arc<rustls::ServerConfig>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let tls = Arc::clone(&tls);
            tokio::spawn(async move {
                let _ = tls_pipe(inbound, server, tls).await;
            });
        }
    });
    Ok(address)
}

async fn tls_pipe(
    mut inbound: TcpStream,
    server: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
) -> Result<()> {
    let mut outbound = TcpStream::connect(server).await?;
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let mut conn = ServerConnection::new(tls)?;
    let (mut from_client, mut from_server) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut plaintext, mut ciphertext) = (Vec::new(), Vec::new());
    loop {
        crate::client_ratio::send_tls(&mut conn, &mut inbound, &mut ciphertext).await?;
        tokio::select! {
            read = inbound.readable() => {
                read?;
                let n = match inbound.try_read(&mut from_client) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                };
                let mut input = &from_client[..n];
                while !input.is_empty() {
                    conn.read_tls(&mut input)?;
                    conn.process_new_packets()?;
                    let mut reader = conn.reader();
                    loop {
                        let start = plaintext.len();
                        plaintext.resize(start + 4096, 0);
                        match reader.read(&mut plaintext[start..]) {
                            Ok(n) if n > 0 => plaintext.truncate(start + n),
                            _ => {
                                plaintext.truncate(start);
                                break;
                            }
                        }
                    }
                }
                if !plaintext.is_empty() {
                    outbound.write_all(&plaintext).await?;
                    plaintext.clear();
                }
            }
            read = outbound.readable() => {
                read?;
                match outbound.try_read(&mut from_server) {
                    Ok(0) => return Ok(()),
                    Ok(n) => conn.writer().write_all(&from_server[..n])?,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// `clients` connections to `server`, `in_flight` call loops on each.
async fn rate(
    pki: &Pki,
    server: SocketAddr,
    versions: Option<TlsVersions>,
    clients: usize,
    in_flight: usize,
    window: Duration,
) -> Result<f64> {
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = TokioClient::connect(
            server,
            pki.client(versions, true)?,
            ServerName::try_from("localhost")?,
        )
        .await?;
        // A plain connection is a session once it has asked something
        // (until then it is a pending handshake, bounded per address).
        client.read_holding_registers(1, 0, 10).await?;
        connected.push(client);
    }
    let rate = load(clients * in_flight, window, |worker| {
        let client = connected[worker % clients].clone();
        async move {
            loop {
                let values = client.read_holding_registers(1, 0, 10).await;
                if !values.is_ok_and(|v| v.len() == 10) {
                    return;
                }
                yield_count().await;
            }
        }
    })
    .await;
    for client in &connected {
        client.close().await;
    }
    rate
}
