//! How fast `mbaps fuzz` drives a device: a campaign (reads only, 4 in
//! flight) against `mbaps server` over TLS 1.3 (the device, in a process
//! of its own, as a device is), beside the reference of a client reading
//! at the same depth from the same server (`TokioClient`, 4 calls in
//! flight on one connection), in interleaved rounds. The fuzzer should not
//! be the bottleneck of a campaign: target at least 0.8 of the client's
//! rate. Each of the fuzzer's batches ends with its liveness read and is
//! judged before the next goes out.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mbaps_fuzzer::{Options, Scope, Target, run_campaign};
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_tokio::{AsyncCalls, TokioClient};

use crate::pki::Pki;
use crate::throughput::{load, median, yield_count};

/// Requests in flight, for both.
pub(crate) const IN_FLIGHT: usize = 4;

/// Requests a second, medians over the rounds.
pub(crate) struct FuzzerRate {
    pub(crate) fuzzer_per_second: f64,
    pub(crate) client_per_second: f64,
}

impl FuzzerRate {
    /// The fuzzer over the client.
    pub(crate) fn ratio(&self) -> f64 {
        self.fuzzer_per_second / self.client_per_second
    }
}

pub(crate) async fn measure(pki: &Pki, window: Duration, rounds: usize) -> Result<FuzzerRate> {
    let versions = Some(TlsVersions::Tls13Only);
    let dir = std::env::temp_dir().join(format!("mbaps-netbench-fuzz-{}", std::process::id()));
    pki.pki.write_to(&dir)?;
    std::fs::write(dir.join("policy.toml"), crate::pki::POLICY)?;
    let (server, address) =
        crate::operations::start(&crate::operations::mbaps_binary()?, &dir, &["-q"])?;
    let config = pki.client(versions, true)?;
    let tls = Arc::new(config.tls().context("a TLS configuration")?.clone());
    let (mut fuzzer, mut client) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let target = Target {
            address,
            tls: Some((Arc::clone(&tls), ServerName::try_from("localhost")?)),
        };
        let mut options = Options::new(target);
        options.seed = round as u64;
        options.duration = Some(window);
        options.in_flight = IN_FLIGHT;
        options.scope = Scope::new(false);
        options.out = std::env::temp_dir().join("mbaps-netbench-fuzz-findings");
        let report =
            tokio::task::spawn_blocking(move || run_campaign(&options, &mut |_| {})).await??;
        anyhow::ensure!(
            report.findings.is_empty(),
            "the fuzzer found something in mbaps server: {:?}",
            report.findings
        );
        fuzzer.push(report.requests as f64 / report.elapsed.as_secs_f64());
        let reader =
            TokioClient::connect(address, config.clone(), ServerName::try_from("localhost")?)
                .await?;
        let rate = load(IN_FLIGHT, window, |_| {
            let reader = reader.clone();
            async move {
                while reader.read_holding_registers(1, 0, 10).await.is_ok() {
                    yield_count().await;
                }
            }
        })
        .await?;
        reader.close().await;
        client.push(rate);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(FuzzerRate {
        fuzzer_per_second: median(&fuzzer),
        client_per_second: median(&client),
    })
}
