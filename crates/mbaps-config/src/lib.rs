//! # mbaps-config
//!
//! The configuration file of `mbaps server --config` and `mbaps gateway
//! --config`: the front's settings (top-level keys named as the flags are:
//! `listen`, `cert`, `key`, `ca`, `crl`, `policy`, the bounds and timers,
//! `audit_log`, `tap`, `metrics`, `log`; see `examples/server.toml`) and, for the
//! gateway, which unit ids go to which device, how each device is reached
//! (plain Modbus/TCP, Modbus/TCP Security with the gateway's certificate,
//! RTU frames over TCP, or a serial line), and its limits. The keys mean what the commands' flags
//! mean. Every mistake is reported with its line and column, as the policy
//! file's are.
//!
//! ```toml
//! # Applies to every route that does not say otherwise (optional).
//! [defaults]
//! in_flight = 1      # requests on the wire to a device at once, 1..=16
//! queue = 64         # requests waiting per device; one more is answered 0x06
//! queue_per_session = 16  # of those, from one front session (default: a quarter of queue)
//! timeout = 3        # seconds from a request's arrival to its answer (0x0B after)
//!
//! [[route]]
//! units = "1-10"               # a unit id, or a range "first-last"
//! upstream = "10.0.0.5:502"    # host:port of a plain Modbus/TCP device
//!
//! [[route]]
//! units = 20
//! upstream = "10.0.0.6:502"
//! unit_id = 1                  # the unit id the device is addressed with
//! timeout = 1.5
//!
//! [[route]]
//! units = "30-31"
//! upstream = "10.0.0.9:802"    # a Modbus/TCP Security device
//! tls = { cert = "gateway-chain.pem", key = "gateway.key", ca = "ca.pem", server_name = "meter-9" }
//!
//! [[route]]
//! units = "40-47"
//! rtu_over_tcp = "10.0.0.12:4001"  # RTU frames over TCP (a serial converter)
//! retries = 1                      # reads without a valid answer go again once
//!
//! [[route]]
//! units = "50-59"
//! serial = "/dev/ttyUSB0"          # Modbus RTU on the gateway's own port
//! baud = 19200                     # default 19200
//! parity = "even"                  # none, even (default) or odd
//! stop_bits = 1                    # 1 (default) or 2
//! turnaround = 100                 # ms after a broadcast (unit 0)
//! ```
//!
//! Routes that name the same `upstream` (or the same serial port) share its
//! connection and queue; their limits, TLS and line settings must then
//! agree. An RTU route carries one request at a time (`in_flight` 1). Relative paths are
//! relative to the file's folder.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mbaps_authz::{Listing, Problem, line_column};
use mbaps_session::upstream::rtu::{MAX_RETRIES, RtuOptions};
use mbaps_session::upstream::serial_line::{Parity, SerialLine, StopBits};
use mbaps_session::upstream::{MAX_UPSTREAM_IN_FLIGHT, MAX_UPSTREAM_QUEUE, UpstreamLimits};
use serde::Deserialize;
use toml::{Spanned, Value};

/// Largest configuration file accepted, in bytes.
pub const MAX_CONFIG_FILE_BYTES: usize = 256 * 1024;
/// The longest timeout accepted, in seconds: a day
/// ([`mbaps_session::MAX_TIMEOUT`]).
pub const MAX_TIMEOUT_SECONDS: f64 = mbaps_session::MAX_TIMEOUT.as_secs_f64();
/// The shortest timeout accepted, in seconds: 1 ms
/// ([`mbaps_session::MIN_TIMEOUT`]).
pub const MIN_TIMEOUT_SECONDS: f64 = mbaps_session::MIN_TIMEOUT.as_secs_f64();

/// A configuration file, checked: what `mbaps server` and `mbaps gateway`
/// take from it (every key means what the flag of its name means; a flag
/// given overrides its key), and the gateway's routes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigFile {
    /// The front's settings.
    pub front: FrontSettings,
    /// The routes, in file order; no two take the same unit id. Only
    /// `mbaps gateway` takes routes.
    pub routes: Vec<RouteSpec>,
}

/// The front's settings of a configuration file: each `None` (or empty)
/// when the file does not give it. Paths are relative to the file's
/// folder once [`load`]ed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrontSettings {
    /// `listen`: the address to listen on.
    pub listen: Option<String>,
    /// `cert`: the server's certificate chain.
    pub cert: Option<PathBuf>,
    /// `key`: its private key.
    pub key: Option<PathBuf>,
    /// `ca`: the CA client certificates must chain to.
    pub ca: Option<PathBuf>,
    /// `crl`: certificate revocation lists.
    pub crl: Vec<PathBuf>,
    /// `crl_scope`: `"chain"` or `"end-entity"`.
    pub crl_scope: Option<String>,
    /// `policy`: the authorization policy.
    pub policy: Option<PathBuf>,
    /// `max_sessions`.
    pub max_sessions: Option<u32>,
    /// `max_handshakes`.
    pub max_handshakes: Option<u32>,
    /// `max_handshakes_per_address`.
    pub max_handshakes_per_address: Option<u32>,
    /// `handshake_timeout`, seconds.
    pub handshake_timeout: Option<Duration>,
    /// `write_timeout`, seconds.
    pub write_timeout: Option<Duration>,
    /// `idle_timeout`, seconds; `Some(None)` for 0: never.
    pub idle_timeout: Option<Option<Duration>>,
    /// `plain`: plain Modbus/TCP, without TLS.
    pub plain: Option<bool>,
    /// `plain_role`.
    pub plain_role: Option<String>,
    /// `audit_log`: a file, or `-`.
    pub audit_log: Option<PathBuf>,
    /// `audit_max_bytes`.
    pub audit_max_bytes: Option<u64>,
    /// `audit_keep`.
    pub audit_keep: Option<u32>,
    /// `tap`: the plaintext capture for an IDS: a file, a FIFO, or `-`.
    pub tap: Option<PathBuf>,
    /// `tap_port`: the server's port in the capture.
    pub tap_port: Option<u16>,
    /// `tap_format`: `"pcapng"` or `"pcap"`.
    pub tap_format: Option<String>,
    /// `tap_max_bytes`.
    pub tap_max_bytes: Option<u64>,
    /// `tap_keep`.
    pub tap_keep: Option<u32>,
    /// `metrics`: the address of `/metrics`.
    pub metrics: Option<String>,
    /// `log`: `"quiet"`, `"normal"` or `"verbose"`.
    pub log: Option<String>,
    /// `log_format`: `"text"` or `"json"`.
    pub log_format: Option<String>,
}

/// One route of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// The unit ids it takes.
    pub units: RangeInclusive<u8>,
    /// The device, and how it is reached.
    pub device: DeviceSpec,
    /// The unit id the device is addressed with, if not the request's.
    pub rewrite_unit: Option<u8>,
    /// The device's limits (the timeout and queue among them).
    pub limits: UpstreamLimits,
}

/// How a route's device is reached: one of the keys `upstream`,
/// `rtu_over_tcp` and `serial`.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceSpec {
    /// `upstream = "host:port"`: Modbus/TCP, plain, or Modbus/TCP Security
    /// with `tls`.
    Modbus {
        /// The device's `host:port`.
        upstream: String,
        /// Modbus/TCP Security to the device, or plain Modbus/TCP (`None`).
        tls: Option<TlsSpec>,
    },
    /// `rtu_over_tcp = "host:port"`: RTU frames over TCP, to an
    /// Ethernet-to-serial converter.
    RtuOverTcp {
        /// The converter's `host:port`.
        address: String,
        /// `turnaround`, `retries`, `retry_writes`.
        rtu: RtuOptions,
    },
    /// `serial = "/dev/ttyUSB0"` with `baud`, `parity`, `stop_bits`: a
    /// serial line.
    Serial {
        /// The port and its settings.
        line: SerialLine,
        /// `turnaround`, `retries`, `retry_writes`.
        rtu: RtuOptions,
    },
}

impl DeviceSpec {
    /// The address or the port, for messages and to tell devices apart.
    pub fn name(&self) -> String {
        match self {
            DeviceSpec::Modbus { upstream, .. } => upstream.clone(),
            DeviceSpec::RtuOverTcp { address, .. } => address.clone(),
            DeviceSpec::Serial { line, .. } => line.path.display().to_string(),
        }
    }

    /// The TLS settings, for a Modbus/TCP Security device.
    pub fn tls(&self) -> Option<&TlsSpec> {
        match self {
            DeviceSpec::Modbus { tls, .. } => tls.as_ref(),
            DeviceSpec::RtuOverTcp { .. } | DeviceSpec::Serial { .. } => None,
        }
    }
}

/// How the gateway authenticates to a Modbus/TCP Security device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSpec {
    /// The gateway's certificate chain (its role is what the device
    /// authorizes).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA the device's certificate must chain to.
    pub ca: PathBuf,
    /// The name the device's certificate must carry (default: the host of
    /// `upstream`).
    pub server_name: String,
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read the gateway file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file has mistakes: every one is listed.
    #[error("{}", Listing { origin, problems })]
    Invalid {
        /// The file's path.
        origin: String,
        /// Every mistake, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigFileError {
    /// The mistakes, if the file was read but is wrong.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigFileError::Invalid { problems, .. } => problems,
            ConfigFileError::Io { .. } => &[],
        }
    }
}

/// Reads and checks a configuration file; relative TLS paths are taken from the
/// file's folder.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigFileError> {
    let io = |source| ConfigFileError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    let origin = path.display().to_string();
    if size > MAX_CONFIG_FILE_BYTES as u64 {
        return Err(ConfigFileError::Invalid {
            origin,
            problems: vec![too_long(size)],
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut file =
        parse(&text).map_err(|problems| ConfigFileError::Invalid { origin, problems })?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let relative = |path: &mut PathBuf| {
        if path.is_relative() && path.as_os_str() != "-" {
            *path = folder.join(&*path);
        }
    };
    for route in &mut file.routes {
        match &mut route.device {
            DeviceSpec::Modbus { tls: Some(tls), .. } => {
                for path in [&mut tls.cert, &mut tls.key, &mut tls.ca] {
                    relative(path);
                }
            }
            DeviceSpec::Serial { line, .. } => relative(&mut line.path),
            DeviceSpec::Modbus { tls: None, .. } | DeviceSpec::RtuOverTcp { .. } => {}
        }
    }
    let front = &mut file.front;
    for path in [
        &mut front.cert,
        &mut front.key,
        &mut front.ca,
        &mut front.policy,
        &mut front.audit_log,
        &mut front.tap,
    ]
    .into_iter()
    .flatten()
    {
        relative(path);
    }
    front.crl.iter_mut().for_each(relative);
    Ok(file)
}

fn too_long(size: u64) -> Problem {
    Problem {
        line: 1,
        column: 1,
        message: format!(
            "the file is {size} bytes long; at most {MAX_CONFIG_FILE_BYTES} are accepted"
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    listen: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    ca: Option<Spanned<String>>,
    crl: Option<Spanned<Vec<Spanned<String>>>>,
    crl_scope: Option<Spanned<String>>,
    policy: Option<Spanned<String>>,
    max_sessions: Option<Spanned<i64>>,
    max_handshakes: Option<Spanned<i64>>,
    max_handshakes_per_address: Option<Spanned<i64>>,
    handshake_timeout: Option<Spanned<Value>>,
    write_timeout: Option<Spanned<Value>>,
    idle_timeout: Option<Spanned<Value>>,
    plain: Option<Spanned<bool>>,
    plain_role: Option<Spanned<String>>,
    audit_log: Option<Spanned<String>>,
    audit_max_bytes: Option<Spanned<i64>>,
    audit_keep: Option<Spanned<i64>>,
    tap: Option<Spanned<String>>,
    tap_port: Option<Spanned<i64>>,
    tap_format: Option<Spanned<String>>,
    tap_max_bytes: Option<Spanned<i64>>,
    tap_keep: Option<Spanned<i64>>,
    metrics: Option<Spanned<String>>,
    log: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    defaults: Option<Spanned<SettingsDoc>>,
    #[serde(default)]
    route: Vec<Spanned<RouteDoc>>,
}

/// The keys a route and `[defaults]` share.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsDoc {
    in_flight: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
    queue_per_session: Option<Spanned<i64>>,
    timeout: Option<Spanned<Value>>,
    tls: Option<Spanned<TlsDoc>>,
    turnaround: Option<Spanned<Value>>,
    retries: Option<Spanned<i64>>,
    retry_writes: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    units: Spanned<Value>,
    upstream: Option<Spanned<String>>,
    rtu_over_tcp: Option<Spanned<String>>,
    serial: Option<Spanned<String>>,
    baud: Option<Spanned<i64>>,
    parity: Option<Spanned<String>>,
    stop_bits: Option<Spanned<i64>>,
    unit_id: Option<Spanned<i64>>,
    in_flight: Option<Spanned<i64>>,
    queue: Option<Spanned<i64>>,
    queue_per_session: Option<Spanned<i64>>,
    timeout: Option<Spanned<Value>>,
    tls: Option<Spanned<TlsDoc>>,
    turnaround: Option<Spanned<Value>>,
    retries: Option<Spanned<i64>>,
    retry_writes: Option<Spanned<bool>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TlsDoc {
    cert: Spanned<String>,
    key: Spanned<String>,
    ca: Spanned<String>,
    server_name: Option<Spanned<String>>,
}

/// The limit keys of a route or of `[defaults]`.
#[derive(Clone, Copy)]
struct Settings<'a> {
    in_flight: Option<&'a Spanned<i64>>,
    queue: Option<&'a Spanned<i64>>,
    queue_per_session: Option<&'a Spanned<i64>>,
    timeout: Option<&'a Spanned<Value>>,
}

/// The RTU keys of a route or of `[defaults]`.
#[derive(Clone, Copy)]
struct RtuKeys<'a> {
    turnaround: Option<&'a Spanned<Value>>,
    retries: Option<&'a Spanned<i64>>,
    retry_writes: Option<&'a Spanned<bool>>,
}

impl RouteDoc {
    fn rtu_keys(&self) -> RtuKeys<'_> {
        RtuKeys {
            turnaround: self.turnaround.as_ref(),
            retries: self.retries.as_ref(),
            retry_writes: self.retry_writes.as_ref(),
        }
    }

    fn settings(&self) -> Settings<'_> {
        Settings {
            in_flight: self.in_flight.as_ref(),
            queue: self.queue.as_ref(),
            queue_per_session: self.queue_per_session.as_ref(),
            timeout: self.timeout.as_ref(),
        }
    }
}

/// Collects the mistakes with their positions.
struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, message: String) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem {
            line,
            column,
            message,
        });
    }

    /// A whole number within `range`, or a report naming `key`.
    fn number(
        &mut self,
        key: &str,
        value: &Spanned<i64>,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let number = *value.get_ref();
        if range.contains(&number) {
            Some(number)
        } else {
            self.report(
                value.span(),
                format!(
                    "{key} is {number}: it must be {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    /// The front's keys, each checked.
    fn front(&mut self, doc: &FileDoc) -> FrontSettings {
        let text = |value: &Option<Spanned<String>>| value.as_ref().map(|v| v.get_ref().clone());
        let path =
            |value: &Option<Spanned<String>>| value.as_ref().map(|v| PathBuf::from(v.get_ref()));
        // The admission bounds' range is mbaps_admission's.
        let max_bound = mbaps_admission::MAX_BOUND as i64;
        let mut bound = |key: &str, value: &Option<Spanned<i64>>| {
            value
                .as_ref()
                .and_then(|v| self.number(key, v, 1..=max_bound))
                .map(|n| n as u32)
        };
        let max_sessions = bound("max_sessions", &doc.max_sessions);
        let max_handshakes = bound("max_handshakes", &doc.max_handshakes);
        let max_handshakes_per_address = bound(
            "max_handshakes_per_address",
            &doc.max_handshakes_per_address,
        );
        let audit_keep = bound("audit_keep", &doc.audit_keep);
        let tap_keep = doc
            .tap_keep
            .as_ref()
            .and_then(|v| self.number("tap_keep", v, 1..=1_000))
            .map(|n| n as u32);
        let tap_port = doc
            .tap_port
            .as_ref()
            .and_then(|v| self.number("tap_port", v, 1..=i64::from(u16::MAX)))
            .map(|n| n as u16);
        let tap_max_bytes = doc.tap_max_bytes.as_ref().and_then(|v| {
            let bytes = *v.get_ref();
            if bytes == 0 || bytes >= 65_536 {
                Some(bytes as u64)
            } else {
                self.report(
                    v.span(),
                    format!("tap_max_bytes is {bytes}: give 0 (never rotate) or at least 65536"),
                );
                None
            }
        });
        let audit_max_bytes = doc
            .audit_max_bytes
            .as_ref()
            .and_then(|v| self.number("audit_max_bytes", v, 0..=i64::MAX))
            .map(|n| n as u64);
        let handshake_timeout = doc
            .handshake_timeout
            .as_ref()
            .and_then(|v| self.timeout("handshake_timeout", v));
        let write_timeout = doc
            .write_timeout
            .as_ref()
            .and_then(|v| self.timeout("write_timeout", v));
        let idle_timeout = doc.idle_timeout.as_ref().and_then(|v| match v.get_ref() {
            Value::Integer(0) => Some(None),
            Value::Float(x) if *x == 0.0 => Some(None),
            _ => self.timeout("idle_timeout", v).map(Some),
        });
        let mut one_of = |key: &str, value: &Option<Spanned<String>>, allowed: &[&str]| {
            let value = value.as_ref()?;
            if allowed.contains(&value.get_ref().as_str()) {
                Some(value.get_ref().clone())
            } else {
                self.report(
                    value.span(),
                    format!(
                        "{key} is {:?}: it must be one of {allowed:?}",
                        value.get_ref()
                    ),
                );
                None
            }
        };
        let crl_scope = one_of("crl_scope", &doc.crl_scope, &["chain", "end-entity"]);
        let log = one_of("log", &doc.log, &["quiet", "normal", "verbose"]);
        let log_format = one_of("log_format", &doc.log_format, &["text", "json"]);
        let tap_format = one_of("tap_format", &doc.tap_format, &["pcapng", "pcap"]);
        FrontSettings {
            listen: text(&doc.listen),
            cert: path(&doc.cert),
            key: path(&doc.key),
            ca: path(&doc.ca),
            crl: doc
                .crl
                .as_ref()
                .map(|list| {
                    list.get_ref()
                        .iter()
                        .map(|p| PathBuf::from(p.get_ref()))
                        .collect()
                })
                .unwrap_or_default(),
            crl_scope,
            policy: path(&doc.policy),
            max_sessions,
            max_handshakes,
            max_handshakes_per_address,
            handshake_timeout,
            write_timeout,
            idle_timeout,
            plain: doc.plain.as_ref().map(|v| *v.get_ref()),
            plain_role: text(&doc.plain_role),
            audit_log: path(&doc.audit_log),
            audit_max_bytes,
            audit_keep,
            tap: path(&doc.tap),
            tap_port,
            tap_format,
            tap_max_bytes,
            tap_keep,
            metrics: text(&doc.metrics),
            log,
            log_format,
        }
    }

    /// `base` with the keys given set; whether all of them were right.
    fn limits(&mut self, keys: Settings<'_>, base: UpstreamLimits) -> (UpstreamLimits, bool) {
        let mut limits = base;
        let mut ok = true;
        if let Some(value) = keys.in_flight {
            match self.number("in_flight", value, 1..=MAX_UPSTREAM_IN_FLIGHT as i64) {
                Some(n) => limits.in_flight = n as usize,
                None => ok = false,
            }
        }
        if let Some(value) = keys.queue {
            match self.number("queue", value, 1..=MAX_UPSTREAM_QUEUE as i64) {
                Some(n) => limits.queue = n as usize,
                None => ok = false,
            }
        }
        if let Some(value) = keys.queue_per_session {
            // Within the queue as finally set, which the same table may give.
            match self.number("queue_per_session", value, 1..=limits.queue as i64) {
                Some(n) => limits.queue_per_session = Some(n as usize),
                None => ok = false,
            }
        } else if let (Some(share), Some(queue)) = (limits.queue_per_session, keys.queue)
            && share > limits.queue
        {
            self.report(
                queue.span(),
                format!(
                    "queue is {}: it must be at least the queue_per_session of [defaults], {share}",
                    limits.queue
                ),
            );
            ok = false;
        }
        if let Some(value) = keys.timeout {
            match self.timeout("timeout", value) {
                Some(timeout) => limits.timeout = timeout,
                None => ok = false,
            }
        }
        (limits, ok)
    }

    /// A number of seconds from [`MIN_TIMEOUT_SECONDS`] to
    /// [`MAX_TIMEOUT_SECONDS`], or a report naming `key`.
    fn timeout(&mut self, key: &str, value: &Spanned<Value>) -> Option<Duration> {
        let seconds = match value.get_ref() {
            Value::Integer(n) => *n as f64,
            Value::Float(x) => *x,
            other => {
                self.report(
                    value.span(),
                    format!(
                        "{key} is {}: give a number of seconds, such as 3 or 1.5",
                        Shown(other)
                    ),
                );
                return None;
            }
        };
        if (MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
            Some(Duration::from_secs_f64(seconds))
        } else {
            self.report(
                value.span(),
                format!(
                    "{key} is {seconds} s: it must be at least {MIN_TIMEOUT_SECONDS} (1 ms) and at most {MAX_TIMEOUT_SECONDS}"
                ),
            );
            None
        }
    }

    /// `base` with the RTU keys given set; whether all of them were right.
    fn rtu_options(&mut self, keys: RtuKeys<'_>, base: RtuOptions) -> (RtuOptions, bool) {
        let mut options = base;
        let mut ok = true;
        if let Some(value) = keys.turnaround {
            // Milliseconds, as --turnaround.
            let millis = match value.get_ref() {
                Value::Integer(n) => Some(*n as f64),
                Value::Float(x) => Some(*x),
                _ => None,
            };
            let max = mbaps_session::MAX_TIMEOUT.as_millis() as f64;
            match millis {
                Some(ms) if (1.0..=max).contains(&ms) => {
                    options.turnaround = Duration::from_secs_f64(ms / 1000.0)
                }
                _ => {
                    self.report(
                        value.span(),
                        format!(
                            "turnaround is {}: give milliseconds, 1 to {max} (a day)",
                            Shown(value.get_ref())
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let Some(value) = keys.retries {
            match self.number("retries", value, 0..=i64::from(MAX_RETRIES)) {
                Some(n) => options.retries = n as u8,
                None => ok = false,
            }
        }
        if let Some(value) = keys.retry_writes {
            options.retry_writes = *value.get_ref();
        }
        (options, ok)
    }

    /// How the route's device is reached: exactly one of `upstream`,
    /// `rtu_over_tcp` and `serial`, with the keys that go with it.
    fn device(
        &mut self,
        route: &Spanned<RouteDoc>,
        defaults: &SettingsDoc,
        rtu: RtuOptions,
    ) -> Option<DeviceSpec> {
        let doc = route.get_ref();
        let given: Vec<&str> = [
            ("upstream", doc.upstream.is_some()),
            ("rtu_over_tcp", doc.rtu_over_tcp.is_some()),
            ("serial", doc.serial.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        if given.len() != 1 {
            self.report(
                route.span(),
                format!(
                    "a route gives its device with exactly one of upstream, rtu_over_tcp and serial; this one gives {}",
                    if given.is_empty() { "none".to_owned() } else { given.join(" and ") }
                ),
            );
            return None;
        }
        let serial_keys = [
            ("baud", doc.baud.as_ref().map(|v| v.span())),
            ("parity", doc.parity.as_ref().map(|v| v.span())),
            ("stop_bits", doc.stop_bits.as_ref().map(|v| v.span())),
        ];
        if doc.serial.is_none() {
            for (key, span) in serial_keys {
                if let Some(span) = span {
                    self.report(
                        span,
                        format!("{key} is a serial line's setting: it goes with serial"),
                    );
                }
            }
        }
        if doc.upstream.is_none()
            && let Some(tls) = &doc.tls
        {
            self.report(
                tls.span(),
                "tls goes with upstream: RTU devices (rtu_over_tcp, serial) speak no TLS".into(),
            );
        }
        if let Some(upstream) = &doc.upstream {
            let address = self.address("upstream", upstream)?;
            let tls = match doc.tls.as_ref().or(defaults.tls.as_ref()) {
                Some(tls) => Some(self.tls(tls.get_ref(), &address)?),
                None => None,
            };
            return Some(DeviceSpec::Modbus {
                upstream: address,
                tls,
            });
        }
        if let Some(address) = &doc.rtu_over_tcp {
            let address = self.address("rtu_over_tcp", address)?;
            return Some(DeviceSpec::RtuOverTcp { address, rtu });
        }
        let path = doc.serial.as_ref()?;
        if path.get_ref().is_empty() {
            self.report(
                path.span(),
                "serial is empty: give the port's path, such as \"/dev/ttyUSB0\"".into(),
            );
            return None;
        }
        let mut line = SerialLine::new(path.get_ref());
        let mut ok = true;
        if let Some(baud) = &doc.baud {
            match self.number("baud", baud, 1..=i64::from(u32::MAX)) {
                Some(n) => line.baud = n as u32,
                None => ok = false,
            }
        }
        if let Some(parity) = &doc.parity {
            match parity.get_ref().parse::<Parity>() {
                Ok(value) => line.parity = value,
                Err(message) => {
                    self.report(parity.span(), message);
                    ok = false;
                }
            }
        }
        if let Some(stop_bits) = &doc.stop_bits {
            match StopBits::from_count(*stop_bits.get_ref() as u64)
                .filter(|_| *stop_bits.get_ref() >= 0)
            {
                Some(value) => line.stop_bits = value,
                None => {
                    self.report(
                        stop_bits.span(),
                        format!("stop_bits is {}: it must be 1 or 2", stop_bits.get_ref()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(DeviceSpec::Serial { line, rtu })
    }

    fn units(&mut self, value: &Spanned<Value>) -> Option<RangeInclusive<u8>> {
        let unit = |n: i64| u8::try_from(n).ok();
        let range = match value.get_ref() {
            Value::Integer(n) => unit(*n).map(|u| u..=u),
            Value::String(text) => match text.split_once('-') {
                Some((first, last)) => {
                    let first = first.trim().parse().ok().and_then(unit);
                    let last = last.trim().parse().ok().and_then(unit);
                    match (first, last) {
                        (Some(first), Some(last)) if first <= last => Some(first..=last),
                        _ => None,
                    }
                }
                None => text.trim().parse().ok().and_then(unit).map(|u| u..=u),
            },
            _ => None,
        };
        if range.is_none() {
            self.report(
                value.span(),
                format!(
                    "units is {}: give a unit id 0 to 255, or a range such as \"1-10\" (first <= last)",
                    Shown(value.get_ref())
                ),
            );
        }
        range
    }

    fn address(&mut self, key: &str, value: &Spanned<String>) -> Option<String> {
        let text = value.get_ref().trim();
        let port_ok = text.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if port_ok {
            Some(text.to_owned())
        } else {
            self.report(
                value.span(),
                format!("{key} is {text:?}: give host:port, such as \"10.0.0.5:502\""),
            );
            None
        }
    }

    fn tls(&mut self, doc: &TlsDoc, upstream: &str) -> Option<TlsSpec> {
        let mut path = |key: &str, value: &Spanned<String>| {
            if value.get_ref().is_empty() {
                self.report(
                    value.span(),
                    format!("tls.{key} is empty: give a file path"),
                );
                None
            } else {
                Some(PathBuf::from(value.get_ref()))
            }
        };
        let cert = path("cert", &doc.cert);
        let key = path("key", &doc.key);
        let ca = path("ca", &doc.ca);
        let server_name = match &doc.server_name {
            Some(name) if name.get_ref().is_empty() => {
                self.report(name.span(), "tls.server_name is empty".into());
                None
            }
            Some(name) => Some(name.get_ref().clone()),
            None => Some(host_of(upstream).to_owned()),
        };
        Some(TlsSpec {
            cert: cert?,
            key: key?,
            ca: ca?,
            server_name: server_name?,
        })
    }
}

/// A value of the file as the engineer wrote it, for messages.
struct Shown<'a>(&'a Value);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(text) => write!(f, "{text:?}"),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Datetime(d) => write!(f, "{d}"),
            Value::Array(_) => f.write_str("a list"),
            Value::Table(_) => f.write_str("a table"),
        }
    }
}

/// The host of `host:port` (without the brackets of an IPv6 address): the
/// server name a TLS device's certificate must carry unless one is given.
pub fn host_of(upstream: &str) -> &str {
    let host = upstream.rsplit_once(':').map_or(upstream, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Parses and checks a configuration file's text, reporting every mistake.
pub fn parse(text: &str) -> Result<ConfigFile, Vec<Problem>> {
    if text.len() > MAX_CONFIG_FILE_BYTES {
        return Err(vec![too_long(text.len() as u64)]);
    }
    let doc: FileDoc = toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let (line, column) = line_column(text, span.start);
        vec![Problem {
            line,
            column,
            message: error.message().trim_end().to_owned(),
        }]
    })?;
    let mut checker = Checker {
        text,
        problems: Vec::new(),
    };
    let front = checker.front(&doc);
    let empty = SettingsDoc::default();
    let defaults = doc.defaults.as_ref().map_or(&empty, |d| d.get_ref());
    // The defaults are checked once; a mistake there is one mistake.
    let (base, _) = checker.limits(
        Settings {
            in_flight: defaults.in_flight.as_ref(),
            queue: defaults.queue.as_ref(),
            queue_per_session: defaults.queue_per_session.as_ref(),
            timeout: defaults.timeout.as_ref(),
        },
        UpstreamLimits::default(),
    );
    let (rtu_base, _) = checker.rtu_options(
        RtuKeys {
            turnaround: defaults.turnaround.as_ref(),
            retries: defaults.retries.as_ref(),
            retry_writes: defaults.retry_writes.as_ref(),
        },
        RtuOptions::default(),
    );
    let mut routes = Vec::with_capacity(doc.route.len());
    // Unit id to the span of the route that took it first.
    let mut taken: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
    // Device to the index of its first route, to check that routes
    // sharing a device (or a bus) agree.
    let mut devices: BTreeMap<String, usize> = BTreeMap::new();
    for spanned in &doc.route {
        let route = spanned.get_ref();
        let units = checker.units(&route.units);
        let rewrite_unit = route
            .unit_id
            .as_ref()
            .and_then(|v| checker.number("unit_id", v, 0..=255))
            .map(|n| n as u8);
        let (limits, limits_ok) = checker.limits(route.settings(), base);
        let (rtu, rtu_ok) = checker.rtu_options(route.rtu_keys(), rtu_base);
        let device = checker.device(spanned, defaults, rtu);
        let is_rtu = route.serial.is_some() || route.rtu_over_tcp.is_some();
        let pipelined = is_rtu && limits.in_flight != 1;
        let broadcast = match (&route.unit_id, rewrite_unit) {
            (Some(value), Some(unit))
                if is_rtu && !mbaps_codec::rtu::SERVER_UNITS.contains(&unit) =>
            {
                checker.report(
                    value.span(),
                    format!(
                        "unit_id is {unit}: on an RTU route it must be a server's address, 1 to 247 (0 would make every request a broadcast to the whole bus)"
                    ),
                );
                true
            }
            _ => false,
        };
        if !is_rtu {
            for (key, span) in [
                ("turnaround", route.turnaround.as_ref().map(|v| v.span())),
                ("retries", route.retries.as_ref().map(|v| v.span())),
                (
                    "retry_writes",
                    route.retry_writes.as_ref().map(|v| v.span()),
                ),
            ] {
                if let Some(span) = span {
                    checker.report(
                        span,
                        format!(
                            "{key} is an RTU line's setting: it goes with serial or rtu_over_tcp"
                        ),
                    );
                }
            }
        }
        if pipelined {
            let span = route
                .in_flight
                .as_ref()
                .or(defaults.in_flight.as_ref())
                .map_or(spanned.span(), |v| v.span());
            checker.report(
                span,
                format!(
                    "in_flight is {}: an RTU route (serial or rtu_over_tcp) carries one request at a time",
                    limits.in_flight
                ),
            );
        }
        if let Some(units) = &units {
            let span = route.units.span();
            if let Some(unit) = units.clone().find(|u| taken.contains_key(u)) {
                let (line, column) = taken[&unit];
                checker.report(
                    span.clone(),
                    format!("unit {unit} is routed already, by the route at {line}:{column}"),
                );
            } else {
                let at = line_column(text, span.start);
                taken.extend(units.clone().map(|u| (u, at)));
            }
        }
        let (Some(units), Some(device), true, true, false, false) =
            (units, device, limits_ok, rtu_ok, pipelined, broadcast)
        else {
            continue;
        };
        let spec = RouteSpec {
            units,
            device,
            rewrite_unit,
            limits,
        };
        match devices.get(&spec.device.name()) {
            Some(&first) => {
                let first: &RouteSpec = &routes[first];
                if (first.limits, &first.device) != (spec.limits, &spec.device) {
                    checker.report(
                        spanned.span(),
                        format!(
                            "{} is shared with an earlier route whose limits, tls or line settings differ: routes to one device or bus share its connection, so they must agree",
                            spec.device.name()
                        ),
                    );
                    continue;
                }
            }
            None => {
                devices.insert(spec.device.name(), routes.len());
            }
        }
        routes.push(spec);
    }
    if checker.problems.is_empty() {
        Ok(ConfigFile { front, routes })
    } else {
        checker.problems.sort_by_key(|p| (p.line, p.column));
        Err(checker.problems)
    }
}

#[cfg(test)]
mod tests;
