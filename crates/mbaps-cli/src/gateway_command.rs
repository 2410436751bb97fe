//! `mbaps gateway`: the front of `mbaps server` (TLS with roles, or plain
//! as one role), forwarding each authorized request to a device
//! ([`mbaps_tokio::Gateway`]). A thin shell: the flags or the configuration file
//! become [`Route`]s, the rest is the library's.

use crate::key_log::KeyLogFromEnv;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_codec::ExceptionCode;
use mbaps_config::{DeviceSpec, RouteSpec, TlsSpec};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::upstream::rtu::{MAX_RETRIES, RtuOptions};
use mbaps_session::upstream::serial_line::{Parity, SerialLine, StopBits};
use mbaps_session::upstream::{MAX_UPSTREAM_IN_FLIGHT, MAX_UPSTREAM_QUEUE, UpstreamLimits};
use mbaps_session::{ClientConfig, load_certificates, load_private_key};
use mbaps_tokio::{Device, Gateway, GatewayLog, Route};

use crate::front::{FrontArgs, seconds};

/// Put Modbus/TCP Security (TLS, client certificates, a role check on
/// every request) in front of plain Modbus/TCP devices, or let plain
/// clients reach a Modbus/TCP Security device as one role.
#[derive(Args, Debug)]
#[command(after_help = "\
Exceptions the gateway answers itself: 0x01 when the policy denies the request \
(it never reaches the device), 0x06 when the device's queue is full or the session \
has its share of it waiting already, 0x0A when no route or no connection reaches the \
device, 0x0B when the device does not answer in time, the connection is lost with the \
request on the wire, or (with one request in flight) the device answers under a \
transaction or protocol id the gateway did not send. With several in flight such an \
answer cannot be matched: it is dropped and logged, and its request is answered 0x0B \
at its timeout.

Sessions take turns at a device: requests from different front sessions are sent round \
robin by session, so one session's burst never delays another's request by more than \
one request of each session.")]
#[command(group = clap::ArgGroup::new("device").args(["upstream", "upstream_serial", "upstream_rtu_over_tcp"]))]
pub(crate) struct GatewayArgs {
    #[command(flatten)]
    front: FrontArgs,
    /// The device, host:port: every unit id goes to it (instead of the
    /// `[[route]]`s of --config).
    #[arg(long)]
    upstream: Option<String>,
    /// Devices on a serial port (Modbus RTU), instead of --upstream: every
    /// unit id goes to the bus; one request on the line at a time.
    #[arg(long, value_name = "PATH")]
    upstream_serial: Option<PathBuf>,
    /// Devices behind an Ethernet-to-serial converter that carries RTU
    /// frames over TCP, host:port, instead of --upstream.
    #[arg(long, value_name = "HOST:PORT")]
    upstream_rtu_over_tcp: Option<String>,
    /// The serial line's speed (default 19200).
    #[arg(long, requires = "upstream_serial", value_parser = clap::value_parser!(u32).range(1..))]
    baud: Option<u32>,
    /// The serial line's parity: none, even (the default, as the
    /// specification's) or odd.
    #[arg(long, requires = "upstream_serial")]
    parity: Option<Parity>,
    /// The serial line's stop bits: 1 (default) or 2.
    #[arg(long, requires = "upstream_serial", value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: Option<u8>,
    /// Milliseconds after a broadcast (a write to unit 0 on an RTU route)
    /// before the line is used again and the write is answered (default
    /// 100).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    turnaround: Option<u64>,
    /// Times a read without a valid answer within --upstream-timeout is
    /// sent again on an RTU route (default 0).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=MAX_RETRIES as i64))]
    retries: Option<u8>,
    /// Send writes again too after a timeout (a write whose answer was
    /// lost may have been carried out).
    #[arg(long, requires = "retries")]
    retry_writes: bool,
    /// Speak Modbus/TCP Security to the device, with --upstream-cert,
    /// --upstream-key and --upstream-ca.
    #[arg(long, requires_all = ["upstream", "upstream_cert", "upstream_key", "upstream_ca"])]
    upstream_tls: bool,
    /// The gateway's certificate chain for the device (its role is what
    /// the device authorizes).
    #[arg(long, requires = "upstream_tls")]
    upstream_cert: Option<PathBuf>,
    /// The gateway's private key for the device.
    #[arg(long, requires = "upstream_tls")]
    upstream_key: Option<PathBuf>,
    /// The CA the device's certificate must chain to.
    #[arg(long, requires = "upstream_tls")]
    upstream_ca: Option<PathBuf>,
    /// The name the device's certificate must carry (default: the host of
    /// --upstream).
    #[arg(long, requires = "upstream_tls")]
    upstream_server_name: Option<String>,
    /// Requests on the wire to the device at once (default 1: most plain
    /// devices answer one at a time; an RTU route takes only 1).
    #[arg(long, requires = "device", value_parser = clap::value_parser!(u8).range(1..=MAX_UPSTREAM_IN_FLIGHT as i64))]
    in_flight: Option<u8>,
    /// Requests waiting for the device, from every front session
    /// together (default 64); one more is answered 0x06 (a session past
    /// its share, see --queue-per-session, first).
    #[arg(long, requires = "device", value_parser = clap::value_parser!(u32).range(1..=MAX_UPSTREAM_QUEUE as i64))]
    queue: Option<u32>,
    /// Requests one front session may have waiting for the device
    /// (default: a quarter of --queue, so that at least four sessions can
    /// queue at once); its next is answered 0x06 while other sessions'
    /// requests are still taken.
    #[arg(long, value_name = "N", requires = "device", value_parser = clap::value_parser!(u32).range(1..=MAX_UPSTREAM_QUEUE as i64))]
    queue_per_session: Option<u32>,
    /// Seconds from a request's arrival to its answer (default 3); past
    /// them, 0x0B.
    #[arg(long, value_name = "SECONDS", requires = "device", value_parser = seconds)]
    upstream_timeout: Option<Duration>,
    /// The unit id the device is addressed with, whatever the request's.
    #[arg(long, requires = "device")]
    unit_id: Option<u8>,
}

pub(crate) fn gateway(args: &GatewayArgs) -> Result<bool> {
    let front = args.front.resolve()?;
    let given = args.upstream.is_some()
        || args.upstream_serial.is_some()
        || args.upstream_rtu_over_tcp.is_some();
    let routes = match given {
        true => vec![single_route(args)?],
        false if front.routes.is_empty() => anyhow::bail!(NO_DEVICE),
        false => front.routes.clone(),
    };
    // Certificates are read (and refused) before anything listens.
    let routes = routes.into_iter().map(route).collect::<Result<Vec<_>>>()?;
    for route in &routes {
        crate::console::say!(
            "units {}-{} -> {:?}",
            route.units.start(),
            route.units.end(),
            route.device
        );
    }
    front.run(", gateway", move |metrics| {
        // Its log goes through `tracing`, with the front's; and is counted.
        let mut gateway = Gateway::builder().routes(routes);
        if let Some(metrics) = metrics {
            let latency = std::sync::Arc::clone(&metrics);
            let line = std::sync::Arc::clone(&metrics);
            gateway = gateway
                .on_log(move |entry| match entry {
                    GatewayLog::Answered {
                        device, failure, ..
                    } => {
                        let exception = failure
                            .as_ref()
                            .map_or(ExceptionCode::GatewayPathUnavailable, |f| f.exception());
                        metrics.gateway_answer(device.as_deref(), exception)
                    }
                    GatewayLog::Link { device, event } => metrics.gateway_link(device, event),
                    _ => {}
                })
                .on_upstream_latency(move |device, elapsed| {
                    latency.upstream_latency(device, elapsed)
                })
                .on_line_counters(move |device, counted| line.serial_line(device, counted));
        }
        let gateway = gateway.start().context("starting the gateway")?;
        Ok(gateway)
    })
}

const NO_DEVICE: &str = "give --upstream HOST:PORT, --upstream-serial PATH or --upstream-rtu-over-tcp HOST:PORT, or [[route]]s in --config FILE";

/// The device the flags describe.
fn device_spec(args: &GatewayArgs) -> Result<DeviceSpec> {
    let defaults = RtuOptions::default();
    let rtu = RtuOptions {
        turnaround: args
            .turnaround
            .map_or(defaults.turnaround, Duration::from_millis),
        retries: args.retries.unwrap_or(defaults.retries),
        retry_writes: args.retry_writes,
    };
    if let Some(path) = &args.upstream_serial {
        let mut line = SerialLine::new(path);
        line.baud = args.baud.unwrap_or(line.baud);
        line.parity = args.parity.unwrap_or(line.parity);
        if let Some(bits) = args.stop_bits.and_then(|n| StopBits::from_count(n.into())) {
            line.stop_bits = bits;
        }
        return Ok(DeviceSpec::Serial { line, rtu });
    }
    if let Some(address) = &args.upstream_rtu_over_tcp {
        return Ok(DeviceSpec::RtuOverTcp {
            address: address.clone(),
            rtu,
        });
    }
    let Some(upstream) = args.upstream.clone() else {
        anyhow::bail!(NO_DEVICE);
    };
    if args.turnaround.is_some() || args.retries.is_some() {
        anyhow::bail!(
            "--turnaround and --retries are for RTU routes (--upstream-serial, --upstream-rtu-over-tcp)"
        );
    }
    let tls = match (&args.upstream_cert, &args.upstream_key, &args.upstream_ca) {
        (Some(cert), Some(key), Some(ca)) if args.upstream_tls => Some(TlsSpec {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
            server_name: args
                .upstream_server_name
                .clone()
                .unwrap_or_else(|| mbaps_config::host_of(&upstream).to_owned()),
        }),
        _ => None,
    };
    Ok(DeviceSpec::Modbus { upstream, tls })
}

/// The route the device flags describe: every unit id.
fn single_route(args: &GatewayArgs) -> Result<RouteSpec> {
    let device = device_spec(args)?;
    // The defaults are the library's; its check names what is wrong.
    let defaults = UpstreamLimits::default();
    let limits = UpstreamLimits {
        in_flight: args.in_flight.map_or(defaults.in_flight, usize::from),
        queue: args.queue.map_or(defaults.queue, |n| n as usize),
        queue_per_session: args.queue_per_session.map(|n| n as usize),
        timeout: args.upstream_timeout.unwrap_or(defaults.timeout),
        ..defaults
    };
    if let Some(share) = limits.queue_per_session
        && share > limits.queue
    {
        anyhow::bail!(
            "--queue-per-session {share} is more than --queue {}: a session's share is part of the queue",
            limits.queue
        );
    }
    limits.validate()?;
    if !matches!(device, DeviceSpec::Modbus { .. }) && limits.in_flight != 1 {
        anyhow::bail!(
            "--in-flight {}: an RTU route (--upstream-serial, --upstream-rtu-over-tcp) carries one request at a time",
            limits.in_flight
        );
    }
    Ok(RouteSpec {
        units: 0..=255,
        device,
        rewrite_unit: args.unit_id,
        limits,
    })
}

/// A checked route, its certificates loaded.
fn route(spec: RouteSpec) -> Result<Route> {
    let device = match &spec.device {
        DeviceSpec::Modbus {
            upstream,
            tls: None,
        } => Device::plain(upstream.clone()),
        DeviceSpec::Modbus {
            upstream,
            tls: Some(tls),
        } => {
            let config = ClientConfig::builder(
                load_certificates(&tls.ca)?,
                load_certificates(&tls.cert)?,
                load_private_key(&tls.key)?,
            )
            .max_outstanding(spec.limits.in_flight)
            .key_log_from_env()
            .build()
            .with_context(|| format!("the TLS settings of {upstream}"))?;
            let name = ServerName::try_from(tls.server_name.clone()).with_context(|| {
                format!(
                    "the server name {:?} of {upstream} is not a DNS name or an IP address",
                    tls.server_name
                )
            })?;
            Device::tls(upstream.clone(), config, name)
        }
        DeviceSpec::RtuOverTcp { address, rtu } => {
            Device::rtu_over_tcp(address.clone()).rtu_options(*rtu)
        }
        DeviceSpec::Serial { line, rtu } => Device::serial(line.clone()).rtu_options(*rtu),
    };
    Ok(Route {
        units: spec.units,
        device: device.limits(spec.limits),
        rewrite_unit: spec.rewrite_unit,
    })
}
