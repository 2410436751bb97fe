//! `mbaps server`: a simulator on a register map.

use anyhow::{Context, Result};
use clap::Args;
use mbaps_codec::{ExceptionCode, Request};
use mbaps_session::{Handler, Reply, RequestContext};
use mbaps_simulator::{RegisterMap, Tables};

use mbaps_session::rtu_server::RtuServer;
use mbaps_tokio::serial::{Parity, SerialLine, SerialPort, StopBits, serve_rtu};

use crate::front::FrontArgs;

/// Run a Modbus/TCP Security server simulator on a register map.
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    front: FrontArgs,
    /// Answer only these unit ids (repeatable); others get exception 0x0B
    /// (on a serial line: no answer, as the bus has other devices).
    #[arg(long)]
    unit: Vec<u8>,
    /// Serve the simulator as a Modbus RTU device on this serial port,
    /// instead of listening (no security, like --plain: for tests and
    /// labs).
    #[arg(long, value_name = "PATH", conflicts_with = "serial_pty")]
    serial: Option<std::path::PathBuf>,
    /// Serve the simulator as a Modbus RTU device on a new
    /// pseudo-terminal, whose port LINK is made to point to (a serial
    /// device without hardware: open LINK with --parity none, since a
    /// pseudo-terminal has no parity).
    #[arg(long, value_name = "LINK")]
    serial_pty: Option<std::path::PathBuf>,
    /// The serial line's speed (default 19200).
    #[arg(long, requires = "serial", value_parser = clap::value_parser!(u32).range(1..))]
    baud: Option<u32>,
    /// The serial line's parity: none, even (default) or odd.
    #[arg(long, requires = "serial")]
    parity: Option<Parity>,
    /// The serial line's stop bits: 1 (default) or 2.
    #[arg(long, requires = "serial", value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: Option<u8>,
}

/// Lets the register map answer, and logs each request at debug level
/// (`mbaps server -v`): at thousands of requests a second a line each
/// would bury the denials and cost more than the answers.
struct LoggingHandler(RegisterMap);

impl Handler for LoggingHandler {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        let result = self.0.handle(context, request, reply);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let role = mbaps_authz::LoggedRole(context.role);
            let outcome = match result {
                Ok(()) => "ok".to_owned(),
                Err(code) => format!("exception {code}"),
            };
            tracing::debug!(
                "request role={role} unit={} txn={} {} -> {outcome}",
                context.unit_id,
                context.transaction_id,
                request.function()
            );
        }
        result
    }
}

pub(crate) fn server(args: &ServerArgs) -> Result<bool> {
    let mut map = RegisterMap::new(Tables::preset());
    if (args.serial.is_some() || args.serial_pty.is_some()) && args.front.tap_given() {
        anyhow::bail!(
            "--tap captures Modbus/TCP sessions: a serial device served with --serial or --serial-pty has none"
        );
    }
    if let Some(path) = &args.serial {
        return serve_serial(args, path, map);
    }
    if let Some(link) = &args.serial_pty {
        #[cfg(unix)]
        return crate::serial_pty::serve(
            link,
            RtuServer::new(args.unit.iter().copied()),
            LoggingHandler(map),
        );
        #[cfg(not(unix))]
        anyhow::bail!(
            "--serial-pty {}: pseudo-terminals are Unix's",
            link.display()
        );
    }
    if !args.unit.is_empty() {
        map = map.only_units(&args.unit);
    }
    let front = args.front.resolve()?;
    if !front.routes.is_empty() {
        anyhow::bail!("the configuration file has [[route]] entries: routes are for mbaps gateway");
    }
    front.run("", |_| Ok(LoggingHandler(map)))
}

/// `mbaps server --serial`: the simulator as an RTU device, until the
/// port fails or Ctrl-C.
fn serve_serial(args: &ServerArgs, path: &std::path::Path, map: RegisterMap) -> Result<bool> {
    let mut line = SerialLine::new(path);
    line.baud = args.baud.unwrap_or(line.baud);
    line.parity = args.parity.unwrap_or(line.parity);
    if let Some(bits) = args.stop_bits.and_then(|n| StopBits::from_count(n.into())) {
        line.stop_bits = bits;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let port = SerialPort::open(&line)?;
        let units: Vec<String> = args.unit.iter().map(u8::to_string).collect();
        println!(
            "listening on {} (the simulator as a Modbus RTU device: {line}, units {}; no security)",
            line.path.display(),
            if units.is_empty() { "1-247".to_owned() } else { units.join(", ") }
        );
        let served = serve_rtu(port, RtuServer::new(args.unit.iter().copied()), LoggingHandler(map));
        tokio::select! {
            served = served => served.with_context(|| format!("serial port {}", line.path.display()))?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(true)
    })
}
