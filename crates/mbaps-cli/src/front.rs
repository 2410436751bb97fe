//! What `mbaps server` and `mbaps gateway` share: the front a client
//! meets (TLS with client certificates and the policy, or plain Modbus/TCP
//! as one role), its admission bounds and timers, and the run until Ctrl-C.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_admission::AdmissionLimits;
use mbaps_authz::{Policy, Role};
use mbaps_session::{
    CrlScope, ServerConfig, Timers, load_certificates, load_crls, load_private_key,
};
use mbaps_tokio::{IntoAnswering, TokioServer};

use crate::metrics::Metrics;

/// The front: where clients connect and how they are admitted.
#[derive(Args, Debug, Clone)]
pub(crate) struct FrontArgs {
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
    /// Plain Modbus/TCP, without TLS: no encryption, no authentication.
    #[arg(long)]
    plain: bool,
    /// With --plain: the role every connection is authorized as (default:
    /// the NULL role, i.e. the policy's `[no_role]` rules).
    #[arg(long, requires = "plain")]
    plain_role: Option<String>,
    /// Write the audit trail, one JSON object per line, to FILE (`-`:
    /// standard output): every session start and end and every request
    /// decision, with the certificate's subject and SHA-256, the role, the
    /// unit, function, addresses, decision, answer and latency.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Rotate the audit log when it would grow past BYTES (0: never; or
    /// leave rotation to logrotate with copytruncate).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 0,
        requires = "audit_log"
    )]
    audit_max_bytes: u64,
    /// Rotated audit logs kept (FILE.1 the newest).
    #[arg(
        long,
        value_name = "COUNT",
        default_value_t = 5,
        requires = "audit_log"
    )]
    audit_keep: u32,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g.
    /// 127.0.0.1:9802): requests by role, function and decision, their
    /// latency, sessions, failures and refusals by reason, and the
    /// gateway's answers and device connections.
    #[arg(long, value_name = "ADDRESS")]
    metrics: Option<String>,
    /// Log failures and refusals only (no session starts and ends, no
    /// denials).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Log every request too (by default: session starts and ends,
    /// denials, refusals and failures; never one line per allowed
    /// request). `RUST_LOG` (e.g. `RUST_LOG=mbaps_tokio=debug`) overrides
    /// both.
    #[arg(short, long)]
    verbose: bool,
    /// How log lines are written: `text`, or `json` (one object per line).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Stop after SECONDS (for scripts and tests); default: run until killed.
    #[arg(long, value_name = "SECONDS")]
    exit_after: Option<u64>,
}

/// The longest timeout a flag takes: a day.
pub(crate) const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// A timeout in seconds (fractions allowed), above 0 and at most a day.
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
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

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// One line of text per entry.
    Text,
    /// One JSON object per line.
    Json,
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

impl FrontArgs {
    /// Logs to standard output through `tracing`: the adapters' and the
    /// gateway's entries at their levels (failures and refusals warn;
    /// session starts and ends and denials are info; requests are debug).
    fn start_logging(&self) {
        let level = if self.quiet {
            "warn"
        } else if self.verbose {
            "info,mbaps=debug,mbaps_tokio=debug"
        } else {
            "info"
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        let format = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .with_target(false);
        // A second call (a test running two commands in one process) keeps
        // the first subscriber.
        let _ = match self.log_format {
            LogFormat::Text => format.try_init(),
            LogFormat::Json => format.json().try_init(),
        };
    }

    /// The front's configuration: the policy, and TLS or the plain role.
    fn config(&self) -> Result<ServerConfig> {
        let policy = Policy::load(&self.policy)?;
        let timers = Timers {
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout.0,
            ..Timers::default()
        };
        if self.plain {
            let role = self
                .plain_role
                .as_deref()
                .map(Role::new)
                .transpose()
                .context("--plain-role")?;
            return Ok(ServerConfig::plain(policy, role).timers(timers).build()?);
        }
        let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
            anyhow::bail!("--cert, --key and --ca are required (or give --plain)");
        };
        let mut crls = Vec::new();
        for path in &self.crl {
            crls.extend(load_crls(path)?);
        }
        Ok(ServerConfig::builder(
            load_certificates(ca)?,
            load_certificates(cert)?,
            load_private_key(key)?,
            policy,
        )
        .crls(crls)
        .crl_scope(match self.crl_scope {
            CrlScopeArg::Chain => CrlScope::WholeChain,
            CrlScopeArg::EndEntity => CrlScope::EndEntityOnly,
        })
        .timers(timers)
        .build()?)
    }

    /// On SIGHUP: the policy, certificate, key, CA and CRLs read again and
    /// put in force ([`mbaps_tokio::Reloader`]); a file with a mistake is
    /// logged and the running configuration stays. Logged with what
    /// changed.
    #[cfg(unix)]
    fn reload_on_hangup(&self, reloader: mbaps_tokio::Reloader) -> Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        let front = self.clone();
        tokio::spawn(async move {
            let mut files = front.fingerprints();
            while hangups.recv().await.is_some() {
                match front.config() {
                    Ok(config) => {
                        let now = front.fingerprints();
                        let changed: Vec<&str> = now
                            .iter()
                            .zip(&files)
                            .filter(|(new, old)| new != old)
                            .map(|((name, _), _)| *name)
                            .collect();
                        reloader.reload(config);
                        files = now;
                        if changed.is_empty() {
                            tracing::info!("reloaded on SIGHUP: no file changed");
                        } else {
                            tracing::info!("reloaded on SIGHUP: {} changed", changed.join(", "));
                        }
                    }
                    Err(error) => tracing::error!(
                        "reload on SIGHUP failed, the running configuration stays: {error:#}"
                    ),
                }
            }
        });
        Ok(())
    }

    /// Each file the configuration is read from, with a digest of what it
    /// holds now (a file that cannot be read: `None`).
    fn fingerprints(&self) -> Vec<(&'static str, Option<u64>)> {
        use std::hash::{Hash, Hasher};
        let digest = |path: &PathBuf| {
            std::fs::read(path).ok().map(|bytes| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                hasher.finish()
            })
        };
        let optional = |path: &Option<PathBuf>| path.as_ref().and_then(digest);
        let crls = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            self.crl
                .iter()
                .map(digest)
                .for_each(|d| d.hash(&mut hasher));
            Some(hasher.finish())
        };
        vec![
            ("policy", digest(&self.policy)),
            ("certificate", optional(&self.cert)),
            ("key", optional(&self.key)),
            ("CA", optional(&self.ca)),
            ("CRLs", crls),
        ]
    }

    /// Serves with what `answering` makes (within the runtime, so that it
    /// may start tasks) until Ctrl-C or `--exit-after`; `what` follows the
    /// kind of front in the first line (`listening on ADDRESS (KIND...)`,
    /// which scripts wait for).
    pub(crate) fn run<A: IntoAnswering>(
        &self,
        what: &str,
        answering: impl FnOnce(Option<Arc<Metrics>>) -> Result<A>,
    ) -> Result<bool> {
        self.start_logging();
        let config = self.config()?;
        let limits = AdmissionLimits {
            max_sessions: self.max_sessions as usize,
            max_handshakes: self.max_handshakes as usize,
            max_handshakes_per_address: self.max_handshakes_per_address as usize,
        };
        let listen = self.listen.clone().unwrap_or_else(|| {
            if self.plain {
                "127.0.0.1:502"
            } else {
                "127.0.0.1:802"
            }
            .into()
        });
        let (audit, audit_writer) = match self.audit_log.clone() {
            Some(path) => {
                let (sink, writer) = crate::audit_log::start(crate::audit_log::AuditTarget {
                    path,
                    max_bytes: self.audit_max_bytes,
                    keep: self.audit_keep,
                })?;
                (Some(sink), Some(writer))
            }
            None => (None, None),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let metrics = match &self.metrics {
            Some(address) => {
                let metrics = Arc::new(Metrics::new());
                let bound = crate::metrics::serve(address, Arc::clone(&metrics))?;
                println!("metrics on http://{bound}/metrics");
                Some(metrics)
            }
            None => None,
        };
        let served: Result<()> = runtime.block_on(async {
            let mut server = TokioServer::bind(&listen, config, answering(metrics.clone())?)
                .await
                .with_context(|| format!("listening on {listen}"))?
                .admission(limits)
                .write_timeout(self.write_timeout);
            // The audit entries feed the trail and the metrics alike.
            match (audit, metrics.clone()) {
                (Some(sink), Some(metrics)) => {
                    server = server.on_audit(move |entry| {
                        metrics.audit(entry);
                        sink.record(entry);
                    });
                }
                (Some(sink), None) => server = server.on_audit(move |entry| sink.record(entry)),
                (None, Some(metrics)) => {
                    server = server.on_audit(move |entry| metrics.audit(entry))
                }
                (None, None) => {}
            }
            if let Some(metrics) = metrics {
                server = server.on_log(move |entry| metrics.session_log(entry));
            }
            let kind = if self.plain {
                "plain Modbus/TCP (no TLS)"
            } else {
                "Modbus/TCP Security (TLS)"
            };
            println!(
                "listening on {} ({kind}{what}); policy {}",
                server.local_addr()?,
                self.policy.display()
            );
            #[cfg(unix)]
            self.reload_on_hangup(server.reloader())?;
            let exit_after = self.exit_after;
            server
                .serve(async move {
                    // Ctrl-C or SIGTERM (a service manager's stop), or the
                    // time given: answer what was received, close sessions.
                    let after = async {
                        match exit_after {
                            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = stop_requested() => println!("shutting down"),
                        () = after => {}
                    }
                })
                .await?;
            Ok(())
        });
        // The sessions and their audit sinks are gone with the runtime:
        // the writer empties its queue, then ends.
        drop(runtime);
        if let Some(writer) = audit_writer {
            writer.finish();
        }
        served?;
        Ok(true)
    }
}

/// Completes on Ctrl-C, or (on Unix) on SIGTERM.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
