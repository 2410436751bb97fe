//! A Modbus/TCP Security gateway: an [`AsyncHandler`] that forwards each
//! request the front authorized to the device its unit id routes to, and
//! returns the device's answer.
//!
//! ```text
//!  front sessions (TokioServer: TLS + roles, or plain + one role)
//!     │ authorized request (R-16: per request, with the client's role)
//!     ▼
//!  Gateway ── unit id ──► route ──► device task ── one connection ──► device
//!                                   (Upstream: bounded queue, in-flight limit,
//!                                    transaction ids remapped, reconnect)
//! ```
//!
//! Given to [`TokioServer::bind`](crate::TokioServer::bind) as it is, a
//! gateway takes each request from its front session straight to the
//! device's queue, and the device's task sends the answer back to the
//! session: no task per request. A request whose session has ended when
//! its answer comes is still recorded, with that answer, on the audit
//! trail (a write the device carried out for a client that had gone).
//!
//! Front sessions share one connection per device. Every request gets
//! exactly one answer: the device's; 0x06 when the device's queue is full;
//! 0x0A when no route or no connection reaches the device; 0x0B when it
//! does not answer in time, the connection is lost with the request on
//! the wire, or its answer is not for the request (another function, unit
//! or transaction id: never passed on). Each failure is logged with the
//! role, unit, function and address range.
//!
//! ```no_run
//! # async fn run(front: mbaps_session::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use mbaps_tokio::{Device, Gateway, TokioServer};
//!
//! let gateway = Gateway::builder()
//!     .route(0..=255, Device::plain("10.0.0.5:502"), None)
//!     .on_log(|entry| println!("{entry}"))
//!     .start()?;
//! let server = TokioServer::bind("0.0.0.0:802", front, gateway).await?.spawn()?;
//! # Ok(()) }
//! ```

mod device;

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use mbaps_authz::Target;
use mbaps_authz::{LoggedRole, Role};
use mbaps_codec::ExceptionCode;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::upstream::rtu::{LineCounters, RtuOptions, RtuSettings, silence_at};
use mbaps_session::upstream::{
    Failure, LimitError, LinkEvent, Requester, Upstream, UpstreamLimits,
};
use mbaps_session::{ClientConfig, ConfigError, DropReason, Pdu, RequestId, Timers};

use crate::handler::{AnswerSender, IncomingRequest, Reply};
use crate::serial::{self, SerialError, SerialLine, SerialPort};
use device::{DeviceHandle, Dialer, Submission};

/// A device behind the gateway: where it is, how it is reached (plain
/// Modbus/TCP, Modbus/TCP Security with the gateway's own certificate and
/// so its role, RTU frames over TCP, or a serial line), and how much it is
/// asked at once.
#[derive(Clone)]
pub struct Device {
    reach: Reach,
    limits: UpstreamLimits,
    /// The RTU line's behaviour (RTU over TCP and serial lines).
    rtu: RtuOptions,
}

/// How a device is reached.
#[derive(Clone)]
enum Reach {
    /// Modbus/TCP at `address`, plain or inside TLS.
    Modbus {
        address: String,
        tls: Option<(ClientConfig, ServerName<'static>)>,
    },
    /// RTU frames on a TCP connection to `address` (an Ethernet-to-serial
    /// converter).
    RtuOverTcp { address: String },
    /// A serial line.
    Serial(SerialLine),
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Device");
        match &self.reach {
            Reach::Modbus { address, tls } => debug
                .field("address", address)
                .field("tls", &tls.as_ref().map(|(_, name)| name)),
            Reach::RtuOverTcp { address } => debug.field("rtu_over_tcp", address),
            Reach::Serial(line) => debug.field("serial", line),
        };
        debug
            .field("limits", &self.limits)
            .field("rtu", &self.rtu)
            .finish()
    }
}

impl Device {
    /// A plain Modbus/TCP device at `address` (`host:port`, resolved at
    /// each connection attempt).
    pub fn plain(address: impl Into<String>) -> Device {
        Device::reached(Reach::Modbus {
            address: address.into(),
            tls: None,
        })
    }

    /// A Modbus/TCP Security device at `address`, whose certificate must
    /// name `server_name`; `config` holds the gateway's client certificate
    /// (the role the device authorizes). Its `max_outstanding` must be at
    /// least the device's in-flight limit.
    pub fn tls(
        address: impl Into<String>,
        config: ClientConfig,
        server_name: ServerName<'static>,
    ) -> Device {
        Device::reached(Reach::Modbus {
            address: address.into(),
            tls: Some((config, server_name)),
        })
    }

    /// Devices on a serial bus reached through an Ethernet-to-serial
    /// converter at `address` that carries RTU frames (with their CRC,
    /// without MBAP) on TCP. One request at a time.
    pub fn rtu_over_tcp(address: impl Into<String>) -> Device {
        Device::reached(Reach::RtuOverTcp {
            address: address.into(),
        })
    }

    /// Devices on a serial bus (Modbus RTU on `line`). One request on the
    /// line at a time; the port is opened exclusively when the gateway
    /// starts, and a port missing or refused then is an error
    /// ([`GatewayError::Serial`]); one that fails later is reopened with
    /// the reconnect backoff, its requests answered 0x0A meanwhile.
    pub fn serial(line: SerialLine) -> Device {
        Device::reached(Reach::Serial(line))
    }

    fn reached(reach: Reach) -> Device {
        Device {
            reach,
            limits: UpstreamLimits::default(),
            rtu: RtuOptions::default(),
        }
    }

    /// The queue, in-flight limit, timeout and reconnect backoff. On an
    /// RTU device the in-flight limit must be 1 and the timeout is the
    /// response timeout.
    pub fn limits(mut self, limits: UpstreamLimits) -> Device {
        self.limits = limits;
        self
    }

    /// The RTU line's turnaround delay after a broadcast and its retries
    /// (RTU over TCP and serial devices; ignored for Modbus/TCP).
    pub fn rtu_options(mut self, options: RtuOptions) -> Device {
        self.rtu = options;
        self
    }

    /// The address (`host:port`), or the serial port's path.
    pub fn address(&self) -> String {
        match &self.reach {
            Reach::Modbus { address, .. } | Reach::RtuOverTcp { address } => address.clone(),
            Reach::Serial(line) => line.path.display().to_string(),
        }
    }

    /// Whether the device is reached by RTU frames.
    pub fn is_rtu(&self) -> bool {
        !matches!(self.reach, Reach::Modbus { .. })
    }

    /// Whether `other` is the same device: one address reached the same
    /// way (TLS or not, MBAP or RTU), or one serial port. Routes to it
    /// share its connection (its bus).
    fn same_device(&self, other: &Device) -> bool {
        match (&self.reach, &other.reach) {
            (Reach::Modbus { address: a, tls: x }, Reach::Modbus { address: b, tls: y }) => {
                a == b && x.is_some() == y.is_some()
            }
            (Reach::RtuOverTcp { address: a }, Reach::RtuOverTcp { address: b }) => a == b,
            (Reach::Serial(a), Reach::Serial(b)) => serial::same_port(&a.path, &b.path),
            _ => false,
        }
    }

    /// How the line is set, for devices that share one: the serial
    /// line's speed and framing, and the RTU options.
    fn line_settings(&self) -> Option<(Option<&SerialLine>, RtuOptions)> {
        match &self.reach {
            Reach::Modbus { .. } => None,
            Reach::RtuOverTcp { .. } => Some((None, self.rtu)),
            Reach::Serial(line) => Some((Some(line), self.rtu)),
        }
    }

    /// Who the gateway is to a TLS device and whom it expects: the
    /// certificate it shows (its role) and the name the device's must
    /// carry.
    fn identity(&self) -> Option<(Option<&[u8]>, &ServerName<'static>)> {
        match &self.reach {
            Reach::Modbus { tls, .. } => tls
                .as_ref()
                .map(|(config, name)| (config.certificate().map(|c| c.as_ref()), name)),
            Reach::RtuOverTcp { .. } | Reach::Serial(_) => None,
        }
    }
}

/// Why a gateway could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A device's limits are out of range.
    #[error("device {address}: {source}")]
    Limits {
        /// The device.
        address: String,
        /// Which limit.
        #[source]
        source: LimitError,
    },
    /// A TLS device's configuration allows fewer requests in flight than
    /// its in-flight limit.
    #[error(
        "device {address}: in_flight is {in_flight} but its client configuration allows {max_outstanding}"
    )]
    InFlightAboveClient {
        /// The device.
        address: String,
        /// The in-flight limit.
        in_flight: usize,
        /// The client configuration's bound.
        max_outstanding: usize,
    },
    /// Two routes claim the same unit id.
    #[error("unit {unit} is routed twice: to {first} and to {second}")]
    Overlap {
        /// The unit id.
        unit: u8,
        /// The first route's device.
        first: String,
        /// The second's.
        second: String,
    },
    /// A plain device's configuration could not be built.
    #[error("device {address}: {source}")]
    Config {
        /// The device.
        address: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// Two routes name one device (its address, TLS or not) with different
    /// limits or TLS identities: they would share one connection and
    /// queue, so one of them would not be what it says (the device could
    /// see the operator's certificate where the viewer's was meant).
    #[error(
        "device {address} is routed twice with different {what}: routes to one device share its connection, so they must agree"
    )]
    SharedDeviceDiffers {
        /// The device.
        address: String,
        /// What differs: `"limits"`, `"TLS identities"` or `"line settings"`.
        what: &'static str,
    },
    /// A serial device's port cannot be used (missing, held by another
    /// program, a setting the driver does not apply).
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// A route to an RTU device rewrites the unit id to one that is not a
    /// server's address on a serial line: 0 would make every request a
    /// broadcast to the whole bus, 248..=255 are reserved.
    #[error(
        "device {address}: unit_id {unit} is not a server's address on a serial line (1 to 247; 0 is a broadcast to every device on the bus)"
    )]
    RtuUnit {
        /// The device.
        address: String,
        /// The unit id.
        unit: u8,
    },
    /// No route at all: every request would be answered 0x0A.
    #[error("the gateway has no route")]
    NoRoutes,
    /// Not called within a tokio runtime: the device tasks need one.
    #[error("a gateway starts within a tokio runtime")]
    NoRuntime,
}

/// A route: the unit ids it takes, the device, and the unit id the device
/// is addressed with (`None`: the same).
#[derive(Clone, Debug)]
pub struct Route {
    /// The unit ids this route takes.
    pub units: RangeInclusive<u8>,
    /// The device they go to.
    pub device: Device,
    /// The unit id sent to the device instead of the request's (a device
    /// that answers only its own id, behind a gateway that numbers units).
    pub rewrite_unit: Option<u8>,
}

/// Where one unit id goes.
#[derive(Clone)]
struct Destination {
    device: DeviceHandle,
    rewrite_unit: Option<u8>,
}

/// The gateway: see the module documentation. Cheap to clone; the device
/// tasks end when the last clone is dropped (with the server that holds
/// it), after answering what they hold.
#[derive(Clone)]
pub struct Gateway {
    /// Indexed by unit id.
    routes: Arc<[Option<Destination>; 256]>,
    observer: Observer,
}

/// Where log entries go (besides `tracing`).
pub(crate) type Observer = Arc<dyn Fn(&GatewayLog) + Send + Sync>;

/// What the gateway reports: each request it answered itself (never one
/// the device answered), and each change of a device's connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
// The request's PDU travels inline (253 bytes): entries are made only for
// the requests the gateway answers itself, and boxing would allocate.
#[allow(clippy::large_enum_variant)]
pub enum GatewayLog {
    /// A request the gateway answered with an exception of its own.
    Answered {
        /// The client's role (`None`: the NULL role).
        role: Option<Role>,
        /// The unit id the request was addressed to.
        unit: u8,
        /// The request.
        request: Pdu,
        /// The device it was for (`None`: no route takes the unit id).
        device: Option<Arc<str>>,
        /// Why the device did not answer (`None`: no route).
        failure: Option<Failure>,
    },
    /// A device's connection changed.
    Link {
        /// The device.
        device: Arc<str>,
        /// How.
        event: LinkEvent,
    },
}

impl fmt::Display for GatewayLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayLog::Answered {
                role,
                unit,
                request,
                device,
                failure,
            } => {
                let role = LoggedRole(role.as_ref());
                let exception = failure
                    .as_ref()
                    .map_or(ExceptionCode::GatewayPathUnavailable, Failure::exception);
                write!(f, "gateway answered exception {exception} role={role} ")?;
                match request.request() {
                    Ok(decoded) => write!(
                        f,
                        "{}",
                        Target {
                            unit: *unit,
                            request: &decoded,
                        }
                    )?,
                    Err(_) => write!(f, "unit {unit}")?,
                }
                match (device, failure) {
                    (Some(device), Some(failure)) => write!(f, ": device {device}: {failure}"),
                    _ => write!(f, ": no route takes unit {unit}"),
                }
            }
            GatewayLog::Link { device, event } => match event {
                LinkEvent::Up => write!(f, "gateway: device {device} connected"),
                LinkEvent::Unreachable => write!(f, "gateway: device {device} cannot be reached"),
                LinkEvent::Failed(reason) => {
                    write!(
                        f,
                        "gateway: the session to device {device} failed: {reason:?}"
                    )
                }
                LinkEvent::Lost(reason) => {
                    write!(
                        f,
                        "gateway: the connection to device {device} was lost: {reason:?}"
                    )
                }
                LinkEvent::Flapping { reason, retry_in } => write!(
                    f,
                    "gateway: device {device} closes its connections before answering ({reason:?}): \
                     dialling again with a backoff that doubles (next in {retry_in:?}); \
                     not reported again until it answers"
                ),
                LinkEvent::DroppedAnswer {
                    transaction_id,
                    reason,
                    in_flight,
                } => {
                    write!(
                        f,
                        "gateway: device {device}: dropped answer under transaction id {transaction_id} ("
                    )?;
                    match reason {
                        DropReason::Late => write!(f, "a late answer: its request ended already")?,
                        DropReason::UnknownTransactionId => {
                            write!(f, "no request had this transaction id")?
                        }
                        DropReason::ProtocolId(id) => write!(f, "protocol id {id}, not 0")?,
                        DropReason::OtherUnit(unit) => {
                            write!(f, "an RTU frame from unit {unit}, not the one addressed")?
                        }
                        DropReason::Crc => write!(f, "an RTU frame with a bad CRC")?,
                    }
                    write!(f, "); on the wire: {in_flight:?}")?;
                    let blamed = matches!(
                        reason,
                        DropReason::UnknownTransactionId | DropReason::ProtocolId(_)
                    );
                    if blamed && in_flight.len() == 1 {
                        write!(f, "; request {} answered 0x0B", in_flight[0])?;
                    }
                    Ok(())
                }
            },
        }
    }
}

/// Logs to `tracing` (warnings: an operator watches for these) and to
/// the observer.
pub(crate) fn log(observer: &Observer, entry: &GatewayLog) {
    match entry {
        GatewayLog::Link {
            event: LinkEvent::Up,
            ..
        } => tracing::info!("{entry}"),
        _ => tracing::warn!("{entry}"),
    }
    observer(entry);
}

/// How a gateway is put together: [`Gateway::builder`], routes, then
/// [`GatewayBuilder::start`].
pub struct GatewayBuilder {
    routes: Vec<Route>,
    observer: Observer,
    latency: Option<LatencyObserver>,
    line: Option<LineObserver>,
}

/// Where each forwarded request's round trip to its device goes.
pub(crate) type LatencyObserver = Arc<dyn Fn(&str, Duration) + Send + Sync>;

/// Where an RTU line's counts go: what it counted since the last call.
pub(crate) type LineObserver = Arc<dyn Fn(&str, LineCounters) + Send + Sync>;

/// A forwarded request's way back: the reply to its session, and what its
/// failure is logged with.
pub(crate) struct Routed {
    pub(crate) reply: Reply,
    role: Option<Role>,
    /// The unit id the client addressed.
    unit: u8,
    pdu: Pdu,
}

impl Routed {
    /// Answers the request with the exception `failure` stands for
    /// (`None`: no route), and logs why, with the role, unit, function and
    /// addresses.
    pub(crate) fn fail(self, observer: &Observer, device: Option<&Arc<str>>, failure: Failure) {
        let exception = failure.exception();
        let entry = GatewayLog::Answered {
            role: self.role,
            unit: self.unit,
            request: self.pdu,
            device: device.cloned(),
            failure: Some(failure),
        };
        log(observer, &entry);
        self.reply.send(Err(exception));
    }
}

impl GatewayBuilder {
    /// Sends `units` to `device`, addressed as `rewrite_unit` if given.
    pub fn route(
        mut self,
        units: RangeInclusive<u8>,
        device: Device,
        rewrite_unit: Option<u8>,
    ) -> Self {
        self.routes.push(Route {
            units,
            device,
            rewrite_unit,
        });
        self
    }

    /// Adds `routes`.
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Calls `observer` with each [`GatewayLog`] entry (they also go to
    /// `tracing`).
    pub fn on_log(mut self, observer: impl Fn(&GatewayLog) + Send + Sync + 'static) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// Calls `observer` with the device and the time from each request's
    /// submission to the device's answer, for every request the device
    /// answered (the upstream latency, for metrics).
    pub fn on_upstream_latency(
        mut self,
        observer: impl Fn(&str, Duration) + Send + Sync + 'static,
    ) -> Self {
        self.latency = Some(Arc::new(observer));
        self
    }

    /// Calls `observer` with an RTU device (its port or converter) and what
    /// its line counted since the last call (requests, CRC errors,
    /// timeouts, retries, discarded frames, busy time), after the line's
    /// counts change: for per-bus metrics.
    pub fn on_line_counters(
        mut self,
        observer: impl Fn(&str, LineCounters) + Send + Sync + 'static,
    ) -> Self {
        self.line = Some(Arc::new(observer));
        self
    }

    /// Checks the routes and starts a task per device. Must be called
    /// within a tokio runtime. Routes that name the same device (same
    /// address, and TLS or not) share its connection and queue, and so
    /// must agree on its limits and, for TLS, on the certificate the
    /// gateway shows and the name it expects
    /// ([`GatewayError::SharedDeviceDiffers`]). Unit ids no route takes
    /// are answered 0x0A.
    pub fn start(self) -> Result<Gateway, GatewayError> {
        start(self.routes, self.observer, self.latency, self.line)
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routed = self.routes.iter().filter(|r| r.is_some()).count();
        f.debug_struct("Gateway")
            .field("routed_units", &routed)
            .finish()
    }
}

impl Gateway {
    /// A gateway to put together: routes, a log observer.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            routes: Vec::new(),
            observer: Arc::new(|_| {}),
            latency: None,
            line: None,
        }
    }

    /// Every unit id to one device, unchanged: [`Gateway::builder`] with
    /// one route. Must be called within a tokio runtime: it starts the
    /// device's task, which connects at once.
    pub fn to(device: Device) -> Result<Gateway, GatewayError> {
        Gateway::builder().route(0..=255, device, None).start()
    }
}

fn start(
    routes: Vec<Route>,
    observer: Observer,
    latency: Option<LatencyObserver>,
    line: Option<LineObserver>,
) -> Result<Gateway, GatewayError> {
    if routes.is_empty() {
        return Err(GatewayError::NoRoutes);
    }
    // Check everything before starting any task.
    let mut table: [Option<usize>; 256] = [None; 256];
    for (index, route) in routes.iter().enumerate() {
        for unit in route.units.clone() {
            let slot = &mut table[usize::from(unit)];
            if let Some(first) = *slot {
                return Err(GatewayError::Overlap {
                    unit,
                    first: routes[first].device.address(),
                    second: route.device.address(),
                });
            }
            *slot = Some(index);
        }
    }
    for route in &routes {
        if let Some(unit) = route.rewrite_unit
            && route.device.is_rtu()
            && !mbaps_codec::rtu::SERVER_UNITS.contains(&unit)
        {
            return Err(GatewayError::RtuUnit {
                address: route.device.address(),
                unit,
            });
        }
    }
    // Routes to one device must agree before any task starts.
    for (index, route) in routes.iter().enumerate() {
        let device = &route.device;
        let Some(first) = routes[..index]
            .iter()
            .map(|r| &r.device)
            .find(|d| d.same_device(device))
        else {
            continue;
        };
        let what = if first.limits != device.limits {
            "limits"
        } else if first.identity() != device.identity() {
            "TLS identities"
        } else if first.line_settings() != device.line_settings() {
            "line settings"
        } else {
            continue;
        };
        return Err(GatewayError::SharedDeviceDiffers {
            address: device.address(),
            what,
        });
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(GatewayError::NoRuntime);
    }
    let mut devices: Vec<(&Device, DeviceHandle)> = Vec::new();
    let mut handles = Vec::with_capacity(routes.len());
    for route in &routes {
        let existing = devices
            .iter()
            .find(|(device, _)| device.same_device(&route.device))
            .map(|(_, handle)| handle.clone());
        let handle = match existing {
            Some(handle) => handle,
            None => {
                let handle = start_device(&route.device, &observer, &latency, &line)?;
                devices.push((&route.device, handle.clone()));
                handle
            }
        };
        handles.push(handle);
    }
    let routes: [Option<Destination>; 256] = std::array::from_fn(|unit| {
        table[unit].map(|index| Destination {
            device: handles[index].clone(),
            rewrite_unit: routes[index].rewrite_unit,
        })
    });
    Ok(Gateway {
        routes: Arc::new(routes),
        observer,
    })
}

/// Validates a device, opens its serial port if it has one, and starts
/// its task.
fn start_device(
    device: &Device,
    observer: &Observer,
    latency: &Option<LatencyObserver>,
    line: &Option<LineObserver>,
) -> Result<DeviceHandle, GatewayError> {
    let address = device.address();
    let limits = device.limits;
    let now = std::time::Instant::now();
    let limits_error = |source| GatewayError::Limits {
        address: address.clone(),
        source,
    };
    let rtu = |silence| RtuSettings::with_options(silence, device.rtu, limits.timeout);
    let (dialer, upstream, opened) = match &device.reach {
        Reach::Modbus { address, tls } => {
            let upstream = Upstream::new(limits, now).map_err(limits_error)?;
            let (config, server_name) = modbus_client(address, tls.as_ref(), limits)?;
            let dialer = Dialer::Modbus {
                address: address.clone(),
                config: Arc::new(config),
                server_name,
            };
            (dialer, upstream, None)
        }
        Reach::RtuOverTcp { address } => {
            let settings = rtu(std::time::Duration::ZERO);
            let upstream = Upstream::rtu(limits, settings, now).map_err(limits_error)?;
            let dialer = Dialer::RtuOverTcp {
                address: address.clone(),
                settings,
            };
            (dialer, upstream, None)
        }
        Reach::Serial(line) => {
            let settings = rtu(silence_at(line.baud));
            let upstream = Upstream::rtu(limits, settings, now).map_err(limits_error)?;
            // Before anything listens: a port that cannot be used is an
            // error now, not a device that never answers.
            let port = SerialPort::open(line)?;
            let dialer = Dialer::Serial {
                line: line.clone(),
                settings,
            };
            (dialer, upstream, Some(port))
        }
    };
    Ok(device::start(
        dialer,
        upstream,
        opened,
        Arc::clone(observer),
        latency.clone(),
        line.clone(),
    ))
}

/// The client configuration and the expected name for a Modbus/TCP
/// device: the TLS one given, or a plain one.
fn modbus_client(
    address: &str,
    tls: Option<&(ClientConfig, ServerName<'static>)>,
    limits: UpstreamLimits,
) -> Result<(ClientConfig, ServerName<'static>), GatewayError> {
    if let Some((config, name)) = tls {
        if config.max_outstanding() < limits.in_flight {
            return Err(GatewayError::InFlightAboveClient {
                address: address.to_owned(),
                in_flight: limits.in_flight,
                max_outstanding: config.max_outstanding(),
            });
        }
        return Ok((config.clone(), name.clone()));
    }
    // The device's connection is kept while the gateway runs: no idle
    // timeout of ours (a device that closes idle connections is
    // reconnected at once).
    let config = ClientConfig::plain()
        .max_outstanding(limits.in_flight)
        .timers(Timers {
            idle_timeout: None,
            ..Timers::default()
        })
        .build()
        .map_err(|source| GatewayError::Config {
            address: address.to_owned(),
            source,
        })?;
    // A plain session ignores the name.
    Ok((
        config,
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    ))
}

impl Gateway {
    /// Forwards request `id` of a front session to the device its unit id
    /// routes to; its answer (the device's, or the exception that stands
    /// for its failure, logged) comes back on `answers`.
    pub(crate) fn forward(&self, id: RequestId, request: IncomingRequest, answers: &AnswerSender) {
        // Until the device's task takes it, a request that cannot reach it
        // is an unreachable path.
        let reply = Reply::new(answers, id, ExceptionCode::GatewayPathUnavailable);
        let routed = Routed {
            reply,
            role: request.role,
            unit: request.unit_id,
            pdu: request.pdu,
        };
        let Some(destination) = &self.routes[usize::from(request.unit_id)] else {
            let entry = GatewayLog::Answered {
                role: routed.role,
                unit: routed.unit,
                request: routed.pdu,
                device: None,
                failure: None,
            };
            log(&self.observer, &entry);
            return routed
                .reply
                .send(Err(ExceptionCode::GatewayPathUnavailable));
        };
        let submission = Submission {
            requester: Requester(request.session),
            unit_id: destination.rewrite_unit.unwrap_or(request.unit_id),
            pdu: request.pdu,
            routed,
        };
        destination.device.submit(submission, &self.observer);
    }
}
