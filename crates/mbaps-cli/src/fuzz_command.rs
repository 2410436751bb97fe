//! `mbaps fuzz`: a fuzzing campaign against a device, through an
//! authenticated Modbus/TCP Security session (or plain Modbus/TCP), and
//! `mbaps fuzz --replay FILE` for one of its findings. A shell over
//! `mbaps-fuzzer`.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mbaps_authz::{FunctionSet, resolve_function_name};
use mbaps_fuzzer::{
    Options, READ_ONLY, Report, Scope, Target, TlsFiles, parse_replay, replay, run_campaign,
};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, TlsVersions, load_certificates, load_private_key};
use serde_json::json;

use crate::connect::{TlsVersion, host_part};
use crate::key_log::KeyLogFromEnv;

/// Largest replay file read, in bytes.
const MAX_REPLAY_BYTES: u64 = 16 * 1024 * 1024;

/// Fuzz a device's Modbus parser through an authenticated session.
#[derive(Args, Debug)]
#[command(after_help = "\
Writes are off by default: without --allow-writes only the functions that read are \
sent (0x01 read coils, 0x02 read discrete inputs, 0x03 read holding registers, 0x04 read \
input registers, 0x14 read file record, 0x18 read FIFO queue, 0x2B device identification, \
and the serial-line 0x07 read exception status, 0x0B and 0x0C comm event counter and log, \
0x11 report server id, and 0x08 diagnostics with its reading sub-functions only), \
malformed ones included. --allow-writes adds 0x05, 0x06, 0x0F, 0x10, 0x15, 0x16, 0x17, \
the diagnostics sub-functions that change state (0x01 restart communications, 0x03 \
change the ASCII delimiter, 0x04 listen-only mode, 0x0A and 0x14 clear counters), the \
user-defined codes and codes the specification does not define: a device may do anything \
with them, and a write can move real equipment.

Findings (each minimized and saved under --out as a replay file): crash, hang, \
disconnect, invalid_response, duplicate_response, accepted_malformed. What the \
specification allows is never one: a frame with a protocol id other than 0 discarded, a \
connection closed on a broken MBAP length or function code 0, a request to unit 0 or \
255 (unless given with --unit) left unanswered, the exceptions 0x05, 0x06, 0x0A and \
0x0B.

Exit status: 0 no finding (replay: reproduced), 1 findings (replay: not reproduced), 2 \
usage or connection errors before the campaign, 3 the device lost for good during it.")]
pub(crate) struct FuzzArgs {
    /// The device, HOST:PORT.
    #[arg(long)]
    target: String,
    /// The CA the device's certificate must chain to.
    #[arg(long, required_unless_present = "plain")]
    ca: Option<PathBuf>,
    /// Our certificate chain: its role is what the device authorizes.
    #[arg(long, required_unless_present = "plain")]
    cert: Option<PathBuf>,
    /// Our private key.
    #[arg(long, required_unless_present = "plain")]
    key: Option<PathBuf>,
    /// The name the device's certificate must carry (default: the host of
    /// --target).
    #[arg(long)]
    server_name: Option<String>,
    /// Only this TLS version.
    #[arg(long, value_enum, value_name = "VERSION")]
    tls: Option<TlsVersion>,
    /// Plain Modbus/TCP, without TLS.
    #[arg(long, conflicts_with_all = ["ca", "cert", "key", "server_name", "tls"])]
    plain: bool,
    /// Stop after SECONDS.
    #[arg(long, default_value_t = 60, value_name = "N")]
    seconds: u64,
    /// Stop after N requests (whichever comes first).
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// The seed: the same seed and options send the same inputs (default:
    /// one from the clock, printed).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// At most N requests a second (default: as fast as the device
    /// answers).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Seconds an answer is waited for.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    timeout: f64,
    /// Requests in flight at once. Inputs the device may leave unanswered
    /// (a protocol id other than 0, unit 0 or 255) are not waited for, and
    /// two ADUs in one record are a mutation of their own: with 1, a
    /// device is still sent a request while it may be answering another.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    in_flight: u16,
    /// A unit id to address (repeatable; default 1).
    #[arg(long, value_name = "N")]
    unit: Vec<u8>,
    /// A function to send: 0x10, 16, or a policy name (read, write,
    /// diagnostic, user-defined, read-holding-registers, ...; repeatable;
    /// default: every function writes allow).
    #[arg(long, value_name = "CODE")]
    function: Vec<String>,
    /// Send functions that change state too (see below).
    #[arg(long)]
    allow_writes: bool,
    /// Where replay files go.
    #[arg(long, default_value = "mbaps-fuzz-findings", value_name = "DIR")]
    out: PathBuf,
    /// One JSON document on standard output instead of the summary.
    #[arg(long)]
    json: bool,
    /// Stop at the first finding.
    #[arg(long)]
    stop_on_first: bool,
    /// Run the finding of this replay file again, and say whether it
    /// reproduced.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
}

/// Runs the command; its exit status says how it went.
pub(crate) fn run(args: &FuzzArgs) -> ExitCode {
    let outcome = match &args.replay {
        Some(file) => run_replay(args, file),
        None => run_fuzz(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("mbaps: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The device and how to reach it, from the flags.
fn target(args: &FuzzArgs) -> Result<(Target, Option<TlsFiles>)> {
    let address: SocketAddr = args
        .target
        .to_socket_addrs()
        .with_context(|| format!("--target {:?}: give HOST:PORT", args.target))?
        .next()
        .with_context(|| format!("--target {} resolves to no address", args.target))?;
    if args.plain {
        return Ok((Target { address, tls: None }, None));
    }
    let (Some(ca), Some(cert), Some(key)) = (&args.ca, &args.cert, &args.key) else {
        bail!("--ca, --cert and --key are required for Modbus/TCP Security (or give --plain)");
    };
    let config = ClientConfig::builder(
        load_certificates(ca)?,
        load_certificates(cert)?,
        load_private_key(key)?,
    )
    .versions(match args.tls {
        None => TlsVersions::Both,
        Some(TlsVersion::V12) => TlsVersions::Tls12Only,
        Some(TlsVersion::V13) => TlsVersions::Tls13Only,
    })
    .key_log_from_env()
    .build()?;
    let name = args
        .server_name
        .clone()
        .unwrap_or_else(|| host_part(&args.target).to_owned());
    let server_name = ServerName::try_from(name.clone()).with_context(|| {
        format!("{name:?} is neither a DNS name nor an IP address (use --server-name)")
    })?;
    let tls = Arc::new(config.tls().context("a TLS configuration")?.clone());
    let files = TlsFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
        server_name: name,
        version: args.tls.map(|v| match v {
            TlsVersion::V12 => "1.2".into(),
            TlsVersion::V13 => "1.3".into(),
        }),
    };
    Ok((
        Target {
            address,
            tls: Some((tls, server_name)),
        },
        Some(files),
    ))
}

/// `--timeout` as a duration.
fn timeout(args: &FuzzArgs) -> Result<Duration> {
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| (mbaps_session::MIN_TIMEOUT..=mbaps_session::MAX_TIMEOUT).contains(t));
    timeout.with_context(|| {
        format!(
            "--timeout {} s is out of range: at least 0.001 and at most 86400",
            args.timeout
        )
    })
}

/// The functions `--function` names, checked against `--allow-writes`.
fn scope(args: &FuzzArgs) -> Result<Scope> {
    let mut scope = Scope::new(args.allow_writes);
    if !args.unit.is_empty() {
        scope.units = args.unit.clone();
    }
    if args.function.is_empty() {
        return Ok(scope);
    }
    let mut functions = FunctionSet::new();
    for given in &args.function {
        let codes = function_codes(given)?;
        for code in codes.iter() {
            if !args.allow_writes && !READ_ONLY.contains(&code) {
                bail!(
                    "--function {given}: 0x{code:02X} may change the device's state; give --allow-writes to send it"
                );
            }
            functions.insert(code);
        }
    }
    scope.functions = functions;
    Ok(scope)
}

/// A `--function` value: `0x10`, `16`, or a policy name.
fn function_codes(given: &str) -> Result<FunctionSet> {
    let number = match given
        .strip_prefix("0x")
        .or_else(|| given.strip_prefix("0X"))
    {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => given.parse::<u8>().ok(),
    };
    match number {
        Some(0) => bail!("--function 0: function code 0 does not exist (1 to 255)"),
        Some(code) => Ok(FunctionSet::of(&[code])),
        None => resolve_function_name(given).with_context(|| {
            format!(
                "--function {given:?}: give a code (0x10, 16) or a policy name (read, write, diagnostic, user-defined, read-holding-registers, ...)"
            )
        }),
    }
}

fn run_fuzz(args: &FuzzArgs) -> Result<u8> {
    let (target, tls_files) = target(args)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut options = Options::new(target.clone());
    options.tls_files = tls_files;
    options.scope = scope(args)?;
    options.seed = seed;
    options.duration = Some(Duration::from_secs(args.seconds));
    options.requests = args.requests;
    options.rate = args.rate;
    options.timeout = timeout(args)?;
    options.in_flight = usize::from(args.in_flight);
    options.out = args.out.clone();
    options.stop_on_first = args.stop_on_first;
    if !target.address.ip().is_loopback() {
        eprintln!(
            "warning: fuzzing {} ({}), not a loopback address: inputs may crash or stall the device{}",
            args.target,
            target.address,
            if args.allow_writes {
                ", and writes are ON"
            } else {
                ""
            }
        );
    }
    if args.seed.is_none() && !args.json {
        println!("seed {seed}");
    }
    let terminal = std::io::stderr().is_terminal();
    let report = run_campaign(&options, &mut |progress| {
        if terminal {
            let rate = progress.requests as f64 / progress.elapsed.as_secs_f64().max(0.001);
            eprint!(
                "\r{} requests, {rate:.0}/s, {} findings, {} device restarts ",
                progress.requests, progress.findings, progress.restarts
            );
            let _ = std::io::stderr().flush();
        }
    });
    if terminal {
        eprintln!();
    }
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("mbaps: error: {error}");
            return Ok(2);
        }
    };
    if args.json {
        println!("{}", report_json(&report));
    } else {
        print_summary(args, &report);
    }
    if let Some(why) = &report.lost {
        eprintln!("mbaps: the device was lost: {why}");
        return Ok(3);
    }
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}

/// The campaign as one JSON document.
fn report_json(report: &Report) -> serde_json::Value {
    let findings: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "kind": f.kind.label(),
                "function": f.function.map(|c| format!("0x{c:02X}")),
                "replay": f.replay.display().to_string(),
                "summary": f.summary,
                "requests": f.requests,
            })
        })
        .collect();
    json!({
        "requests": report.requests,
        "seconds": report.elapsed.as_secs_f64(),
        "seed": report.seed.to_string(),
        "restarts": report.restarts,
        "lost": report.lost,
        "findings": findings,
    })
}

fn print_summary(args: &FuzzArgs, report: &Report) {
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "fuzzed {} for {seconds:.1} s: {} requests ({:.0}/s), seed {}, {} device restarts",
        args.target,
        report.requests,
        report.requests as f64 / seconds.max(0.001),
        report.seed,
        report.restarts
    );
    if report.findings.is_empty() {
        println!("no finding");
        return;
    }
    println!("{} finding(s):", report.findings.len());
    for finding in &report.findings {
        let function = finding
            .function
            .map_or(String::new(), |c| format!(" 0x{c:02X}"));
        println!(
            "  {}{function}: {}\n    replay: mbaps fuzz --replay {} --target {} (... the same TLS flags); {} request(s)",
            finding.kind,
            finding.summary,
            finding.replay.display(),
            args.target,
            finding.requests
        );
    }
}

fn run_replay(args: &FuzzArgs, file: &PathBuf) -> Result<u8> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > MAX_REPLAY_BYTES {
        bail!(
            "{} is {size} bytes; a replay file is at most {MAX_REPLAY_BYTES}",
            file.display()
        );
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let found = parse_replay(&text).with_context(|| file.display().to_string())?;
    let (target, _) = target(args)?;
    let replayed = match replay(&target, &found) {
        Ok(replayed) => replayed,
        Err(error) => {
            eprintln!("mbaps: error: {error}");
            return Ok(2);
        }
    };
    if args.json {
        println!(
            "{}",
            json!({ "reproduced": replayed.reproduced, "kind": found.kind.label() })
        );
    } else if replayed.reproduced {
        println!("reproduced: {} ({})", found.kind, found.summary);
    } else {
        println!("not reproduced: {} ({})", found.kind, found.summary);
        for verdict in &replayed.verdicts {
            println!("  found instead: {}: {}", verdict.kind, verdict.summary);
        }
    }
    Ok(if replayed.reproduced { 0 } else { 1 })
}
