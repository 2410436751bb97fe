//! `mbaps-netbench reads ADDRESS DIR IN_FLIGHT SECONDS`: the Rust
//! `TokioClient`'s reads of 10 holding registers per second against a
//! server started by someone else, with the viewer's credentials of `DIR`
//! (as `mbaps certs` writes them). The Python bindings' benchmark
//! (`bindings/python/bench/reads.py`) runs it beside `mbaps.Client` and
//! pymodbus against one `mbaps server`, so that the three are measured
//! side by side; it prints the figure alone on standard output.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, load_certificates, load_private_key};
use mbaps_tokio::{AsyncCalls, TokioClient};

use crate::throughput::{load, yield_count};

/// Runs the measurement the arguments describe.
pub(crate) fn run(mut args: impl Iterator<Item = String>) -> Result<()> {
    let usage = "usage: mbaps-netbench reads ADDRESS DIR IN_FLIGHT SECONDS";
    let (Some(address), Some(dir), Some(in_flight), Some(seconds), None) = (
        args.next(),
        args.next(),
        args.next(),
        args.next(),
        args.next(),
    ) else {
        bail!("{usage}");
    };
    let in_flight: usize = in_flight.parse().context("IN_FLIGHT")?;
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    if !(1..=256).contains(&in_flight) || !(0.05..=600.0).contains(&seconds) {
        bail!("IN_FLIGHT is 1 to 256 and SECONDS 0.05 to 600\n{usage}");
    }
    let dir = Path::new(&dir);
    let config = ClientConfig::builder(
        load_certificates(&dir.join("ca.pem"))?,
        load_certificates(&dir.join("client-viewer-chain.pem"))?,
        load_private_key(&dir.join("client-viewer.key"))?,
    )
    .max_outstanding(in_flight.max(16))
    .build()?;
    // The certificate is checked for the host, as the other clients do.
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(host, _)| host);
    let server_name = ServerName::try_from(host.to_owned())?;
    // The runtime every other figure of this crate is taken on.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rate = runtime.block_on(async {
        let client = TokioClient::connect(address.as_str(), config, server_name).await?;
        load(in_flight, Duration::from_secs_f64(seconds), |_| {
            let client = client.clone();
            async move {
                while client
                    .read_holding_registers(1, 0, 10)
                    .await
                    .is_ok_and(|values| values.len() == 10)
                {
                    yield_count().await;
                }
            }
        })
        .await
    })?;
    println!("{rate:.0}");
    Ok(())
}
