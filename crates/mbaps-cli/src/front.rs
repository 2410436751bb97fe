//! What `mbaps server` and `mbaps gateway` share: the front a client
//! meets (TLS with client certificates and the policy, or plain Modbus/TCP
//! as one role), its admission bounds and timers, and the run until Ctrl-C.

mod reload;

use crate::key_log::KeyLogFromEnv;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_admission::{AdmissionLimits, DEFAULT_WRITE_TIMEOUT, MAX_BOUND};
use mbaps_authz::{Policy, Role};
use mbaps_config::{ConfigFile, RouteSpec};
use mbaps_session::{
    CrlScope, ServerConfig, Timers, load_certificates, load_crls, load_private_key,
};
use mbaps_tokio::{IntoAnswering, TokioServer};

use mbaps_observe::Metrics;
use mbaps_observe::tap::{self, Tap, TapFormat, TapTarget};
use mbaps_observe::trail::AuditSink;

use crate::console::say;

/// Who reads the served connections' records: the trail, the metrics, the
/// tap (which needs the PDUs: with it, records carry them).
struct AuditReaders {
    trail: Option<AuditSink>,
    metrics: Option<Arc<Metrics>>,
    tap: Option<Tap>,
}

impl AuditReaders {
    /// `server`, feeding each record to every reader there is.
    fn attach(self, server: TokioServer) -> TokioServer {
        if self.trail.is_none() && self.metrics.is_none() && self.tap.is_none() {
            return server;
        }
        let with_pdus = self.tap.is_some();
        let feed = move |entry: &mbaps_admission::AuditEntry| {
            if let Some(metrics) = &self.metrics {
                metrics.audit(entry);
            }
            if let Some(trail) = &self.trail {
                trail.record(entry);
            }
            if let Some(tap) = &self.tap {
                tap.record(entry);
            }
        };
        if with_pdus {
            server.on_audit_with_pdus(feed)
        } else {
            server.on_audit(feed)
        }
    }
}

/// The front: where clients connect and how they are admitted. Every
/// flag but `--config` may instead be a key of the configuration file
/// (the same name, `_` for `-`); a flag given overrides its key.
#[derive(Args, Debug, Clone)]
pub(crate) struct FrontArgs {
    /// A configuration file (TOML; see examples/server.toml and
    /// examples/gateway.toml): what the flags hold, and for `mbaps
    /// gateway` the routes. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:802; 127.0.0.1:502 with --plain).
    #[arg(long)]
    listen: Option<String>,
    /// The server's certificate chain (PEM or DER).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The server's private key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The CA client certificates must chain to.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Certificate revocation lists (repeatable).
    #[arg(long)]
    crl: Vec<PathBuf>,
    /// Which certificates of a client's chain the CRLs must vouch for:
    /// `chain` (every one: each CA, the root included, needs its CRL;
    /// the default) or `end-entity` (the client's own certificate only).
    #[arg(long, value_enum)]
    crl_scope: Option<CrlScopeArg>,
    /// The authorization policy (TOML, see docs/policy.md).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Authenticated sessions open at once (default 64). A newly
    /// authenticated client beyond closes the session whose peer stopped
    /// reading, else the one idle the longest; if every session is busy,
    /// the newcomer is closed.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_BOUND as i64))]
    max_sessions: Option<u32>,
    /// Connections in their TLS handshake at once (default 32); beyond, a
    /// pending handshake is dropped (silent or slow ones first).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_BOUND as i64))]
    max_handshakes: Option<u32>,
    /// Connections in their TLS handshake at once from one address (an
    /// IPv6 /64; default 8); beyond, that address's oldest pending
    /// handshake is dropped.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_BOUND as i64))]
    max_handshakes_per_address: Option<u32>,
    /// Seconds a client has to finish its TLS handshake (default 10).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    handshake_timeout: Option<Duration>,
    /// Seconds a peer has to take what the server sends it (default 10);
    /// a peer that stops reading is dropped after them.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    write_timeout: Option<Duration>,
    /// Seconds without a request before a session is closed (0: never;
    /// default 300).
    #[arg(long, value_name = "SECONDS", value_parser = seconds_or_never)]
    idle_timeout: Option<IdleTimeout>,
    /// Plain Modbus/TCP, without TLS: no encryption, no authentication.
    #[arg(long)]
    plain: bool,
    /// With --plain: the role every connection is authorized as (default:
    /// the NULL role, i.e. the policy's `[no_role]` rules).
    #[arg(long)]
    plain_role: Option<String>,
    /// Write the audit trail, one JSON object per line, to FILE (`-`:
    /// standard output): every session start and end and every request
    /// decision, with the certificate's subject and SHA-256, the role, the
    /// unit, function, addresses, decision, answer and latency.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Rotate the audit log when it would grow past BYTES (0, the
    /// default: never; or leave rotation to logrotate with copytruncate).
    #[arg(long, value_name = "BYTES")]
    audit_max_bytes: Option<u64>,
    /// Rotated audit logs kept (FILE.1 the newest; default 5).
    #[arg(long, value_name = "COUNT")]
    audit_keep: Option<u32>,
    /// Write what the front lets through to FILE as the plain Modbus/TCP
    /// capture an IDS would have seen without TLS (pcapng: a synthesized
    /// TCP connection per session, each packet annotated with the role,
    /// the certificate's SHA-256 and subject, and the decision). `-`:
    /// standard output (the program's own lines then go to standard
    /// error); a FIFO: for a live reader (`tshark -i FIFO`), which may
    /// come and go. The file holds plaintext process data: it is created
    /// mode 0600.
    #[arg(long, value_name = "FILE")]
    tap: Option<PathBuf>,
    /// The server's port in the tap's capture (default 502, so that IDS
    /// rules and dissectors work unchanged).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    tap_port: Option<u16>,
    /// The tap's format: `pcapng` (the default, with comments) or `pcap`
    /// (classic, without comments, for tools that read only that).
    #[arg(long, value_enum)]
    tap_format: Option<TapFormatArg>,
    /// Rotate the tap's file when it would grow past BYTES (0, the
    /// default: never; else at least 65536); each file is a capture on its
    /// own.
    #[arg(long, value_name = "BYTES", value_parser = tap_max_bytes)]
    tap_max_bytes: Option<u64>,
    /// Rotated tap files kept (FILE.1 the newest; 1 to 1000, default 5).
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..=i64::from(tap::MAX_KEEP)))]
    tap_keep: Option<u32>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g.
    /// 127.0.0.1:9802): requests by role, function and decision, their
    /// latency, sessions, failures and refusals by reason, and the
    /// gateway's answers and device connections.
    #[arg(long, value_name = "ADDRESS")]
    metrics: Option<String>,
    /// Log failures and refusals only (no session starts and ends, no
    /// denials). Key: `log = "quiet"`.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Log every request too (by default: session starts and ends,
    /// denials, refusals and failures; never one line per allowed
    /// request). `RUST_LOG` (e.g. `RUST_LOG=mbaps_tokio=debug`) overrides
    /// both. Key: `log = "verbose"`.
    #[arg(short, long)]
    verbose: bool,
    /// How log lines are written: `text` (the default), or `json` (one
    /// object per line).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Stop after SECONDS (for scripts and tests); default: run until killed.
    #[arg(long, value_name = "SECONDS")]
    exit_after: Option<u64>,
}

/// The front's settings: the flags over the configuration file over the
/// defaults, checked.
#[derive(Debug, Clone)]
pub(crate) struct Front {
    /// What it was resolved from, to resolve again on SIGHUP.
    args: FrontArgs,
    /// The gateway's routes from the file.
    pub(crate) routes: Vec<RouteSpec>,
    listen: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    crl: Vec<PathBuf>,
    crl_scope: CrlScopeArg,
    policy: PathBuf,
    max_sessions: usize,
    max_handshakes: usize,
    max_handshakes_per_address: usize,
    handshake_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: IdleTimeout,
    plain: bool,
    plain_role: Option<String>,
    audit_log: Option<PathBuf>,
    audit_max_bytes: u64,
    audit_keep: u32,
    tap: Option<TapTarget>,
    metrics: Option<String>,
    quiet: bool,
    verbose: bool,
    log_format: LogFormat,
    exit_after: Option<u64>,
}

impl FrontArgs {
    /// Whether a tap was asked for on the command line (the serial
    /// server, which has no TCP front, refuses it).
    pub(crate) fn tap_given(&self) -> bool {
        self.tap.is_some()
    }

    /// The flags over the configuration file (read now) over the defaults.
    pub(crate) fn resolve(&self) -> Result<Front> {
        let file = match &self.config {
            Some(path) => mbaps_config::load(path)?,
            None => ConfigFile::default(),
        };
        let f = file.front;
        let plain = self.plain || f.plain.unwrap_or(false);
        let cert = self.cert.clone().or(f.cert);
        let key = self.key.clone().or(f.key);
        let ca = self.ca.clone().or(f.ca);
        if !plain && (cert.is_none() || key.is_none() || ca.is_none()) {
            anyhow::bail!(
                "--cert, --key and --ca are required (or cert, key and ca in --config), or --plain"
            );
        }
        let policy = self
            .policy
            .clone()
            .or(f.policy)
            .context("--policy is required (or policy in --config)")?;
        let plain_role = self.plain_role.clone().or(f.plain_role);
        if plain_role.is_some() && !plain {
            anyhow::bail!("--plain-role is for --plain: a TLS client's role is in its certificate");
        }
        let crl = if self.crl.is_empty() {
            f.crl
        } else {
            self.crl.clone()
        };
        let crl_scope = match (self.crl_scope, f.crl_scope.as_deref()) {
            (Some(scope), _) => scope,
            (None, Some("end-entity")) => CrlScopeArg::EndEntity,
            (None, _) => CrlScopeArg::Chain,
        };
        let audit_log = self.audit_log.clone().or(f.audit_log);
        let audit_max_bytes = self.audit_max_bytes.or(f.audit_max_bytes);
        let audit_keep = self.audit_keep.or(f.audit_keep);
        if audit_log.is_none() && (audit_max_bytes.is_some() || audit_keep.is_some()) {
            anyhow::bail!("--audit-max-bytes and --audit-keep are for --audit-log");
        }
        let tap = self.tap.clone().or(f.tap);
        let tap_port = self.tap_port.or(f.tap_port);
        let tap_format = match (self.tap_format, f.tap_format.as_deref()) {
            (Some(format), _) => Some(format),
            (None, Some("pcap")) => Some(TapFormatArg::Pcap),
            (None, Some(_)) => Some(TapFormatArg::Pcapng),
            (None, None) => None,
        };
        let tap_max_bytes = self.tap_max_bytes.or(f.tap_max_bytes);
        let tap_keep = self.tap_keep.or(f.tap_keep);
        let tap = match tap {
            Some(path) => {
                if path.as_os_str() == "-" && audit_log.as_deref() == Some(Path::new("-")) {
                    anyhow::bail!(
                        "--tap - and --audit-log - both want standard output: give one of them a file"
                    );
                }
                if path.as_os_str() != "-" && audit_log.as_deref() == Some(path.as_path()) {
                    anyhow::bail!(
                        "--tap and --audit-log are both {}: give each its own file",
                        path.display()
                    );
                }
                // The capture never holds key material.
                if std::env::var_os("SSLKEYLOGFILE").is_some_and(|keys| Path::new(&keys) == path) {
                    anyhow::bail!(
                        "--tap {} is SSLKEYLOGFILE's file: the capture must not hold TLS secrets",
                        path.display()
                    );
                }
                Some(TapTarget {
                    path,
                    port: tap_port.unwrap_or(tap::DEFAULT_PORT),
                    format: match tap_format {
                        Some(TapFormatArg::Pcap) => TapFormat::Pcap,
                        _ => TapFormat::Pcapng,
                    },
                    max_bytes: tap_max_bytes.unwrap_or(0),
                    keep: tap_keep.unwrap_or(tap::DEFAULT_KEEP),
                    queue: tap::DEFAULT_QUEUE,
                })
            }
            None if tap_port.is_some()
                || tap_format.is_some()
                || tap_max_bytes.is_some()
                || tap_keep.is_some() =>
            {
                anyhow::bail!(
                    "--tap-port, --tap-format, --tap-max-bytes and --tap-keep are for --tap"
                )
            }
            None => None,
        };
        if tap.as_ref().is_some_and(|tap| tap.path.as_os_str() == "-") {
            crate::console::give_stdout_to_tap();
        }
        let (quiet, verbose) = match (self.quiet, self.verbose, f.log.as_deref()) {
            (false, false, Some("quiet")) => (true, false),
            (false, false, Some("verbose")) => (false, true),
            (quiet, verbose, _) => (quiet, verbose),
        };
        let (bounds, timers) = (AdmissionLimits::default(), Timers::default());
        let log_format = match (self.log_format, f.log_format.as_deref()) {
            (Some(format), _) => format,
            (None, Some("json")) => LogFormat::Json,
            (None, _) => LogFormat::Text,
        };
        Ok(Front {
            args: self.clone(),
            routes: file.routes,
            listen: self.listen.clone().or(f.listen),
            cert,
            key,
            ca,
            crl,
            crl_scope,
            policy,
            // The defaults are the libraries': written once, there.
            max_sessions: self
                .max_sessions
                .or(f.max_sessions)
                .map_or(bounds.max_sessions, |n| n as usize),
            max_handshakes: self
                .max_handshakes
                .or(f.max_handshakes)
                .map_or(bounds.max_handshakes, |n| n as usize),
            max_handshakes_per_address: self
                .max_handshakes_per_address
                .or(f.max_handshakes_per_address)
                .map_or(bounds.max_handshakes_per_address, |n| n as usize),
            handshake_timeout: self
                .handshake_timeout
                .or(f.handshake_timeout)
                .unwrap_or(timers.handshake_timeout),
            write_timeout: self
                .write_timeout
                .or(f.write_timeout)
                .unwrap_or(DEFAULT_WRITE_TIMEOUT),
            idle_timeout: self
                .idle_timeout
                .or(f.idle_timeout.map(IdleTimeout))
                .unwrap_or(IdleTimeout(timers.idle_timeout)),
            plain,
            plain_role,
            audit_log,
            audit_max_bytes: audit_max_bytes.unwrap_or(0),
            audit_keep: audit_keep.unwrap_or(mbaps_observe::trail::DEFAULT_KEEP),
            tap,
            metrics: self.metrics.clone().or(f.metrics),
            quiet,
            verbose,
            log_format,
            exit_after: self.exit_after,
        })
    }
}

use mbaps_config::{MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS};

/// `--tap-max-bytes`: 0 (never), or at least [`tap::MIN_MAX_BYTES`].
fn tap_max_bytes(text: &str) -> Result<u64, String> {
    let bytes: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if bytes != 0 && bytes < tap::MIN_MAX_BYTES {
        return Err(format!(
            "{bytes} bytes is too small: give 0 (never rotate) or at least {}",
            tap::MIN_MAX_BYTES
        ));
    }
    Ok(bytes)
}

/// A timeout in seconds (fractions allowed), from 1 ms to a day (the
/// configuration file's range).
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&value) {
        return Err(format!(
            "{text} s is out of range: give at least {MIN_TIMEOUT_SECONDS} (1 ms) and at most {MAX_TIMEOUT_SECONDS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One line of text per entry.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--tap-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TapFormatArg {
    /// pcapng, with a comment on every packet.
    Pcapng,
    /// Classic pcap, without comments.
    Pcap,
}

/// `--crl-scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CrlScopeArg {
    /// Every certificate of the chain.
    Chain,
    /// The client's own certificate only.
    EndEntity,
}

/// An idle timeout: seconds, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IdleTimeout(Option<Duration>);

/// [`seconds`], or 0 for "never".
fn seconds_or_never(text: &str) -> Result<IdleTimeout, String> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(IdleTimeout(None));
    }
    seconds(text).map(|timeout| IdleTimeout(Some(timeout)))
}

impl Front {
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
            .with_writer(|| -> Box<dyn std::io::Write> {
                if crate::console::stdout_taken() {
                    Box::new(std::io::stderr())
                } else {
                    Box::new(std::io::stdout())
                }
            })
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
        .key_log_from_env()
        .build()?)
    }

    /// On SIGHUP: the configuration file and the files it names read
    /// again, and what a reload may change put in force
    /// ([`mbaps_tokio::Reloader`]); see [`reload`] for what needs a
    /// restart and what is refused. A file with a mistake or a refused
    /// change is logged and the running configuration stays, whole.
    #[cfg(unix)]
    fn reload_on_hangup(&self, reloader: mbaps_tokio::Reloader, tap: Option<Tap>) -> Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        let mut running = self.clone();
        let mut files = reload::Contents::of(self);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // The tap's path is opened again whatever else happens: an
                // outside rotation moved the file away.
                if let Some(tap) = &tap {
                    tap.reopen();
                }
                // The configuration file too: its paths may point elsewhere.
                let new = match running.args.resolve() {
                    Ok(new) => new,
                    Err(error) => {
                        tracing::error!(
                            "reload on SIGHUP failed, the running configuration stays: {error:#}"
                        );
                        continue;
                    }
                };
                let new_files = reload::Contents::of(&new);
                let changes = reload::Changes::between(&running, &files, &new, &new_files);
                if !changes.refused.is_empty() {
                    tracing::error!(
                        "reload on SIGHUP refused, the running configuration stays: {}",
                        changes.refused.join("; ")
                    );
                    continue;
                }
                let config = match new.config() {
                    Ok(config) => config,
                    Err(error) => {
                        tracing::error!(
                            "reload on SIGHUP failed, the running configuration stays: {error:#}"
                        );
                        continue;
                    }
                };
                for key in &changes.needs_restart {
                    tracing::warn!(
                        "reload on SIGHUP: {key} changed, but needs a restart: not applied"
                    );
                }
                reloader.reload(config);
                running = running.with_applied(&new);
                files = new_files;
                if changes.applied.is_empty() {
                    tracing::info!("reloaded on SIGHUP: nothing that a reload applies changed");
                } else {
                    tracing::info!("reloaded on SIGHUP: {} changed", changes.applied.join(", "));
                }
            }
        });
        Ok(())
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
            max_sessions: self.max_sessions,
            max_handshakes: self.max_handshakes,
            max_handshakes_per_address: self.max_handshakes_per_address,
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
                let (sink, writer) =
                    mbaps_observe::trail::start(mbaps_observe::trail::AuditTarget {
                        path,
                        max_bytes: self.audit_max_bytes,
                        keep: self.audit_keep,
                    })?;
                (Some(sink), Some(writer))
            }
            None => (None, None),
        };
        let metrics = self.metrics.as_ref().map(|_| Arc::new(Metrics::new()));
        let (tap, tap_writer) = match self.tap.clone() {
            Some(target) => {
                let counted = metrics.clone();
                let on_drop = counted.map(|metrics| -> tap::DropObserver {
                    Arc::new(move |why, count| metrics.tap_dropped(why, count))
                });
                let (tap, writer) = tap::start(target.clone(), on_drop)
                    .with_context(|| format!("--tap {}", target.path.display()))?;
                (Some(tap), Some(writer))
            }
            None => (None, None),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let served: Result<()> = runtime.block_on(async {
            let metrics = match (&self.metrics, metrics) {
                (Some(address), Some(metrics)) => {
                    let listener = crate::metrics::bind(address).await?;
                    say!("metrics on http://{}/metrics", listener.local_addr()?);
                    crate::metrics::serve(listener, Arc::clone(&metrics));
                    Some(metrics)
                }
                _ => None,
            };
            let mut server = TokioServer::bind(&listen, config, answering(metrics.clone())?)
                .await
                .with_context(|| format!("listening on {listen}"))?
                .admission(limits)
                .write_timeout(self.write_timeout);
            // The audit entries feed the trail, the metrics and the tap alike.
            let readers = AuditReaders {
                trail: audit,
                metrics: metrics.clone(),
                tap: tap.clone(),
            };
            server = readers.attach(server);
            if let Some(metrics) = metrics {
                server = server.on_log(move |entry| metrics.session_log(entry));
            }
            let kind = if self.plain {
                "plain Modbus/TCP (no TLS)"
            } else {
                "Modbus/TCP Security (TLS)"
            };
            say!(
                "listening on {} ({kind}{what}); policy {}",
                server.local_addr()?,
                self.policy.display()
            );
            #[cfg(unix)]
            self.reload_on_hangup(server.reloader(), tap.clone())?;
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
                        () = stop_requested() => say!("shutting down"),
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
        drop(tap);
        if let Some(writer) = tap_writer {
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
