//! `mbaps server` (a simulator on a register map) and `mbaps certs` (a PKI
//! for trying things out).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_admission::AdmissionLimits;
use mbaps_admission::SessionLog;
use mbaps_authz::{Policy, Role};
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{
    CrlScope, Handler, Reply, RequestContext, ServerConfig, Timers, load_certificates, load_crls,
    load_private_key,
};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_test_pki::{RoleExtension, TestPki, Validity};
use mbaps_tokio::TokioServer;

/// Run a Modbus/TCP Security server simulator on a register map.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// Address to listen on (default 127.0.0.1:802; 127.0.0.1:502 with --plain).
    #[arg(long)]
    listen: Option<String>,
    /// The server's certificate chain (PEM or DER).
    #[arg(long, required_unless_present = "plain")]
    cert: Option<PathBuf>,
    /// The server's private key.
    #[arg(long, required_unless_present = "plain")]
    key: Option<PathBuf>,
    /// The CA client certificates must chain to.
    #[arg(long, required_unless_present = "plain")]
    ca: Option<PathBuf>,
    /// Certificate revocation lists (repeatable).
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Which certificates of a client's chain the CRLs must vouch for:
    /// `chain` (every one: each CA, the root included, needs its CRL) or
    /// `end-entity` (the client's own certificate only).
    #[arg(long, value_enum, default_value = "chain", requires = "crl")]
    crl_scope: CrlScopeArg,
    /// The authorization policy (TOML, see docs/policy.md).
    #[arg(long)]
    policy: PathBuf,
    /// Authenticated sessions open at once. A newly authenticated client
    /// beyond closes the session whose peer stopped reading, else the one
    /// idle the longest; if every session is busy, the newcomer is closed.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_sessions: u32,
    /// Connections in their TLS handshake at once; beyond, the oldest
    /// pending handshake is dropped (silent or slow ones first).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_handshakes: u32,
    /// Connections in their TLS handshake at once from one address (an
    /// IPv6 /64); beyond, that address's oldest pending handshake is dropped.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_handshakes_per_address: u32,
    /// Seconds a client has to finish its TLS handshake.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    handshake_timeout: Duration,
    /// Seconds a peer has to take what the server sends it; a peer that
    /// stops reading is dropped after them.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    write_timeout: Duration,
    /// Seconds without a request before a session is closed (0: never).
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = seconds_or_never)]
    idle_timeout: IdleTimeout,
    /// Answer only these unit ids (repeatable); others get exception 0x0B.
    #[arg(long)]
    unit: Vec<u8>,
    /// Plain Modbus/TCP, without TLS: no encryption, no authentication.
    #[arg(long)]
    plain: bool,
    /// With --plain: the role every connection is authorized as (default:
    /// the NULL role, i.e. the policy's `[no_role]` rules).
    #[arg(long, requires = "plain")]
    plain_role: Option<String>,
    /// Stop after SECONDS (for scripts and tests); default: run until killed.
    #[arg(long, value_name = "SECONDS")]
    exit_after: Option<u64>,
}

/// Logs a line per request, then lets the register map answer it.
struct LoggingHandler(RegisterMap);

impl Handler for LoggingHandler {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        let result = self.0.handle(context, request, reply);
        let role = context
            .role
            .map_or("<no role>".into(), |r| format!("{:?}", r.as_str()));
        let outcome = match result {
            Ok(()) => "ok".to_owned(),
            Err(code) => format!("exception {code}"),
        };
        println!(
            "request role={role} unit={} txn={} {} -> {outcome}",
            context.unit_id,
            context.transaction_id,
            request.function()
        );
        result
    }
}

fn log(entry: &SessionLog) {
    println!("{entry}");
}

/// The longest timeout a flag takes: a day.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// A timeout in seconds (fractions allowed), above 0 and at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(value > 0.0 && value <= MAX_TIMEOUT_SECONDS) {
        return Err(format!(
            "{text} s is out of range: give more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `--crl-scope`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CrlScopeArg {
    /// Every certificate of the chain.
    Chain,
    /// The client's own certificate only.
    EndEntity,
}

/// An idle timeout: seconds, or never.
#[derive(Clone, Copy, Debug)]
struct IdleTimeout(Option<Duration>);

/// [`seconds`], or 0 for "never".
fn seconds_or_never(text: &str) -> Result<IdleTimeout, String> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(IdleTimeout(None));
    }
    seconds(text).map(|timeout| IdleTimeout(Some(timeout)))
}

pub(crate) fn server(args: &ServerArgs) -> Result<bool> {
    let policy = Policy::load(&args.policy)?;
    let timers = Timers {
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout.0,
        ..Timers::default()
    };
    let limits = AdmissionLimits {
        max_sessions: args.max_sessions as usize,
        max_handshakes: args.max_handshakes as usize,
        max_handshakes_per_address: args.max_handshakes_per_address as usize,
    };
    let config = if args.plain {
        let role = args
            .plain_role
            .as_deref()
            .map(Role::new)
            .transpose()
            .context("--plain-role")?;
        ServerConfig::plain(policy, role).timers(timers).build()?
    } else {
        let (Some(cert), Some(key), Some(ca)) = (&args.cert, &args.key, &args.ca) else {
            anyhow::bail!("--cert, --key and --ca are required (or give --plain)");
        };
        let mut crls = Vec::new();
        for path in &args.crl {
            crls.extend(load_crls(path)?);
        }
        ServerConfig::builder(
            load_certificates(ca)?,
            load_certificates(cert)?,
            load_private_key(key)?,
            policy,
        )
        .crls(crls)
        .crl_scope(match args.crl_scope {
            CrlScopeArg::Chain => CrlScope::WholeChain,
            CrlScopeArg::EndEntity => CrlScope::EndEntityOnly,
        })
        .timers(timers)
        .build()?
    };
    let mut map = RegisterMap::new(Tables::preset());
    if !args.unit.is_empty() {
        map = map.only_units(&args.unit);
    }
    let listen = args.listen.clone().unwrap_or_else(|| {
        if args.plain {
            "127.0.0.1:502"
        } else {
            "127.0.0.1:802"
        }
        .into()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = TokioServer::bind(&listen, config, LoggingHandler(map))
            .await
            .with_context(|| format!("listening on {listen}"))?
            .admission(limits)
            .write_timeout(args.write_timeout)
            .on_log(log);
        let kind = if args.plain {
            "plain Modbus/TCP (no TLS)"
        } else {
            "Modbus/TCP Security (TLS)"
        };
        println!(
            "listening on {} ({kind}); policy {}",
            server.local_addr()?,
            args.policy.display()
        );
        let exit_after = args.exit_after;
        server
            .serve(async move {
                match exit_after {
                    Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                    None => {
                        // Ctrl-C: answer what was received, close sessions.
                        let _ = tokio::signal::ctrl_c().await;
                        println!("shutting down");
                    }
                }
            })
            .await?;
        Ok(true)
    })
}

/// Make a CA, a server certificate and client certificates with roles.
#[derive(Args, Debug)]
pub(crate) struct CertsArgs {
    /// The folder to write to (created if missing).
    #[arg(long, default_value = "mbaps-certs")]
    out: PathBuf,
    /// A client role to issue a certificate for (repeatable; default:
    /// operator and viewer).
    #[arg(long)]
    role: Vec<String>,
}

pub(crate) fn certs(args: &CertsArgs) -> Result<bool> {
    let pki = TestPki::generate(std::time::SystemTime::now()).context("generating certificates")?;
    let mut written = pki.write_to(&args.out)?;
    let mut described: Vec<(String, String)> = Vec::new();
    for role in &args.role {
        Role::new(role).with_context(|| format!("--role {role:?}"))?;
        let client =
            pki.issue_client(role, RoleExtension::Role(role.clone()), Validity::Current)?;
        let file = |suffix: &str| args.out.join(format!("client-role-{role}{suffix}"));
        for (path, contents) in [
            (file(".pem"), &client.cert_pem),
            (file("-chain.pem"), &client.chain_pem),
            (file(".key"), &client.key_pem),
        ] {
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            described.push((name, format!("client with the role {role:?}")));
            written.push(path);
        }
    }
    println!("written to {}:", args.out.display());
    for path in &written {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = described
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
            .or_else(|| pki.describe(&name))
            .unwrap_or_default();
        println!("  {name:<36} {what}");
    }
    println!(
        "\nTry: mbaps server --cert {0}/server-chain.pem --key {0}/server.key --ca {0}/ca.pem --policy examples/policy.toml",
        args.out.display()
    );
    println!(
        "     mbaps read holding 0 10 --cert {0}/client-viewer-chain.pem --key {0}/client-viewer.key --ca {0}/ca.pem --server-name localhost",
        args.out.display()
    );
    Ok(true)
}
