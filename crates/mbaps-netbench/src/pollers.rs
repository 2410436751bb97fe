//! Many pollers: requests/s with `CONNECTIONS` TLS 1.3 connections and one
//! request in flight on each, the most common shape of a SCADA load (HMIs
//! and historians each polling one request at a time), beside one
//! connection with `client_ratio::IN_FLIGHT` in flight. The load is the
//! bare rustls generator of `client_ratio` (canned reads of 10 holding
//! registers, nothing else), against the minimal rustls echo server (the
//! TLS limit) and against `TokioServer` (TLS, authorization, the register
//! map), in interleaved rounds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mbaps_session::TlsVersions;

use crate::client_ratio::{self, bare_rate, echo_server};
use crate::pki::Pki;
use crate::throughput::median;

/// The pollers: connections, one request in flight on each.
pub(crate) const CONNECTIONS: usize = 10;

/// The figures: medians over the rounds, requests/s.
pub(crate) struct Pollers {
    /// `CONNECTIONS` × 1 against the echo server.
    pub(crate) limit_many: f64,
    /// `CONNECTIONS` × 1 against `TokioServer`.
    pub(crate) server_many: f64,
    /// 1 × `IN_FLIGHT` against the echo server.
    pub(crate) limit_pipelined: f64,
    /// 1 × `IN_FLIGHT` against `TokioServer`.
    pub(crate) server_pipelined: f64,
}

impl Pollers {
    /// The server against the TLS limit, many pollers.
    pub(crate) fn many_ratio(&self) -> f64 {
        self.server_many / self.limit_many
    }

    /// The server against the TLS limit, one pipelined connection.
    pub(crate) fn pipelined_ratio(&self) -> f64 {
        self.server_pipelined / self.limit_pipelined
    }
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<Pollers> {
    let versions = Some(TlsVersions::Tls13Only);
    let server_tls = Arc::new(
        pki.server(versions)?
            .tls()
            .context("a TLS server configuration")?
            .clone(),
    );
    let client_tls = Arc::new(
        pki.client(versions, false)?
            .tls()
            .context("a TLS client configuration")?
            .clone(),
    );
    let echo = echo_server(server_tls).await?;
    let server = pki.bind_server(versions).await?.spawn()?;
    let ours = server.local_addr();
    let pipelined = client_ratio::IN_FLIGHT;
    let (mut limit_many, mut server_many) = (Vec::new(), Vec::new());
    let (mut limit_pipelined, mut server_pipelined) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let tls = || Arc::clone(&client_tls);
        let many = bare_rate(echo, tls(), window, CONNECTIONS, 1);
        limit_many.push(many.await.context("pollers against the echo server")?);
        let many = bare_rate(ours, tls(), window, CONNECTIONS, 1);
        server_many.push(many.await.context("pollers against TokioServer")?);
        let one = bare_rate(echo, tls(), window, 1, pipelined);
        limit_pipelined.push(one.await.context("pipelined against the echo server")?);
        let one = bare_rate(ours, tls(), window, 1, pipelined);
        server_pipelined.push(one.await.context("pipelined against TokioServer")?);
    }
    server.shutdown().await?;
    Ok(Pollers {
        limit_many: median(&limit_many),
        server_many: median(&server_many),
        limit_pipelined: median(&limit_pipelined),
        server_pipelined: median(&server_pipelined),
    })
}
