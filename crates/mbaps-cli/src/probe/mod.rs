//! `mbaps conformance`: the checks of the conformance suite that apply to a
//! remote server under test (a PLC, a meter, a gateway), with a progress
//! line per check and a report as text or JSON.

mod checks;
mod raw;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{load_certificates, load_private_key};

use checks::{CHECKS, Outcome, Target};

/// Probe a Modbus/TCP Security server for conformance.
#[derive(Args, Debug)]
pub(crate) struct ConformanceArgs {
    /// The server under test, HOST:PORT.
    #[arg(long)]
    target: String,
    /// The CA the server's certificate must chain to.
    #[arg(long)]
    ca: PathBuf,
    /// A client certificate chain whose role may read the register.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key.
    #[arg(long)]
    key: PathBuf,
    /// A client certificate chain whose role the server must deny the
    /// read (for the exception 01 check; skipped without it).
    #[arg(long, requires = "denied_key")]
    denied_cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, requires = "denied_cert")]
    denied_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host
    /// part of --target).
    #[arg(long)]
    server_name: Option<String>,
    /// The unit id to address (0xFF for a device reached directly).
    #[arg(long, default_value_t = 1)]
    unit: u8,
    /// The holding register the checks read (nothing is ever written).
    #[arg(long, default_value_t = 0)]
    address: u16,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &ConformanceArgs) -> Result<bool> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero() && *t <= Duration::from_secs(600))
        .with_context(|| format!("--timeout {} must be in (0, 600] seconds", args.timeout))?;
    let address = args
        .target
        .to_socket_addrs()
        .with_context(|| format!("--target {:?}: expected HOST:PORT", args.target))?
        .next()
        .with_context(|| format!("--target {:?} resolves to no address", args.target))?;
    let name = match &args.server_name {
        Some(name) => name.clone(),
        None => crate::connect::host_part(&args.target).to_owned(),
    };
    let server_name = ServerName::try_from(name.clone()).with_context(|| {
        format!("{name:?} is neither a DNS name nor an IP address (use --server-name)")
    })?;
    let denied = match (&args.denied_cert, &args.denied_key) {
        (Some(cert), Some(key)) => Some((load_certificates(cert)?, load_private_key(key)?)),
        _ => None,
    };
    let target = Target {
        address,
        name: server_name,
        roots: load_certificates(&args.ca)?,
        allowed: (load_certificates(&args.cert)?, load_private_key(&args.key)?),
        denied,
        unit: args.unit,
        address_to_read: args.address,
        timeout,
    };
    eprintln!("probing {} ({address}) as {name:?}", args.target);
    let mut results = Vec::new();
    for (i, check) in CHECKS.iter().enumerate() {
        eprint!("[{:>2}/{}] {} ... ", i + 1, CHECKS.len(), check.title);
        let started = Instant::now();
        let (outcome, detail) = (check.run)(&target);
        eprintln!(
            "{} ({detail}) [{:.1} s]",
            outcome.as_str().to_uppercase(),
            started.elapsed().as_secs_f64()
        );
        results.push((check, outcome, detail));
    }
    let failed = count(&results, Outcome::Fail);
    let inconclusive = count(&results, Outcome::Inconclusive);
    if args.json {
        let report: Vec<_> = results
            .iter()
            .map(|(check, outcome, detail)| {
                serde_json::json!({
                    "id": check.id,
                    "title": check.title,
                    "requirements": check.requirements,
                    "outcome": outcome.as_str(),
                    "detail": detail,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "target": args.target,
                "checks": report,
                "failed": failed,
                "inconclusive": inconclusive,
            }))?
        );
    } else {
        println!(
            "{:<28} {:<12} {:<22} detail",
            "check", "result", "requirements"
        );
        for (check, outcome, detail) in &results {
            println!(
                "{:<28} {:<12} {:<22} {detail}",
                check.id,
                outcome.as_str(),
                check.requirements.join(" ")
            );
        }
        println!(
            "\n{} checks: {} passed, {failed} failed, {inconclusive} inconclusive, {} skipped, {} for information",
            results.len(),
            count(&results, Outcome::Pass),
            count(&results, Outcome::Skip),
            count(&results, Outcome::Info)
        );
    }
    // A check that could not conclude is no pass.
    Ok(failed == 0 && inconclusive == 0)
}

fn count(results: &[(&checks::Check, Outcome, String)], outcome: Outcome) -> usize {
    results.iter().filter(|(_, o, _)| *o == outcome).count()
}
