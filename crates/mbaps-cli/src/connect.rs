//! What the client commands share: the connection options, and turning
//! session errors into sentences an engineer can act on.

use crate::key_log::KeyLogFromEnv;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::upstream::rtu::RtuOptions;
use mbaps_session::{ClientConfig, load_certificates, load_private_key};
use mbaps_std::{ClientError, StdClient};
use mbaps_tokio::RtuClient;
use mbaps_tokio::serial::{Parity, SerialLine, StopBits};

/// How to reach and authenticate to a server.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// The server, HOST:PORT (802 for Modbus/TCP Security, 502 plain).
    #[arg(long, default_value = "127.0.0.1:802")]
    pub(crate) host: String,
    /// The unit id to address (0xFF or 0 for a device reached directly).
    #[arg(long, default_value_t = 1)]
    pub(crate) unit: u8,
    /// Our certificate chain (PEM or DER), carrying our role.
    #[arg(long, required_unless_present_any = ["plain", "serial", "rtu"])]
    pub(crate) cert: Option<PathBuf>,
    /// Our private key (PEM or DER).
    #[arg(long, required_unless_present_any = ["plain", "serial", "rtu"])]
    pub(crate) key: Option<PathBuf>,
    /// The CA the server's certificate must chain to.
    #[arg(long, required_unless_present_any = ["plain", "serial", "rtu"])]
    pub(crate) ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host part
    /// of --host, a DNS name or an IP address).
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// Plain Modbus/TCP, without TLS: no encryption, no authentication.
    #[arg(long)]
    pub(crate) plain: bool,
    /// Only this TLS version (default: 1.3, or 1.2 when the server has
    /// only that).
    #[arg(long, value_enum, value_name = "VERSION")]
    pub(crate) tls: Option<TlsVersion>,
    /// Seconds to wait for each response.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) timeout: f64,
    /// Talk Modbus RTU on this serial port instead of --host (no security,
    /// as mbpoll -m rtu); --unit 0 broadcasts a write and waits only the
    /// turnaround.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["plain", "rtu", "cert", "tls"])]
    pub(crate) serial: Option<PathBuf>,
    /// With --host: RTU frames over TCP (an Ethernet-to-serial converter),
    /// no security.
    #[arg(long, conflicts_with_all = ["plain", "cert", "tls"])]
    pub(crate) rtu: bool,
    /// The serial line's speed (default 19200).
    #[arg(long, requires = "serial", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) baud: Option<u32>,
    /// The serial line's parity: none, even (default) or odd.
    #[arg(long, requires = "serial")]
    pub(crate) parity: Option<Parity>,
    /// The serial line's stop bits: 1 (default) or 2.
    #[arg(long, requires = "serial", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) stop_bits: Option<u8>,
}

/// A client of the field tools: Modbus/TCP (Security or plain), or Modbus
/// RTU on a serial line or over TCP.
pub(crate) enum FieldClient {
    /// Modbus/TCP.
    Tcp(Box<StdClient>),
    /// Modbus RTU, driven on a runtime of its own.
    Rtu {
        runtime: tokio::runtime::Runtime,
        client: Box<RtuClient>,
    },
}

impl FieldClient {
    /// Sends `request` to `unit_id` and waits for its response.
    pub(crate) fn request(
        &mut self,
        unit_id: u8,
        request: &mbaps_codec::Request<'_>,
    ) -> Result<mbaps_session::Pdu, ClientError> {
        match self {
            FieldClient::Tcp(client) => client.request(unit_id, request),
            FieldClient::Rtu { runtime, client } => {
                runtime.block_on(client.request(unit_id, request))
            }
        }
    }

    /// Ends the session (close_notify on TLS); an RTU line just closes.
    pub(crate) fn close(self) -> Result<(), ClientError> {
        match self {
            FieldClient::Tcp(client) => client.close(),
            FieldClient::Rtu { .. } => Ok(()),
        }
    }
}

impl ConnectArgs {
    /// Connects (completing the handshake), or opens the serial port.
    pub(crate) fn connect(&self) -> Result<FieldClient> {
        let timeout = std::time::Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .with_context(|| {
                format!(
                    "--timeout {} must be a positive number of seconds",
                    self.timeout
                )
            })?;
        if self.serial.is_some() || self.rtu {
            return self.connect_rtu(timeout);
        }
        let config = if self.plain {
            ClientConfig::plain().request_timeout(timeout).build()?
        } else {
            let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
                anyhow::bail!(
                    "--cert, --key and --ca are required for Modbus/TCP Security (or give --plain)"
                );
            };
            let builder = ClientConfig::builder(
                load_certificates(ca)?,
                load_certificates(cert)?,
                load_private_key(key)?,
            )
            .request_timeout(timeout)
            .versions(match self.tls {
                None => TlsVersions::Both,
                Some(TlsVersion::V12) => TlsVersions::Tls12Only,
                Some(TlsVersion::V13) => TlsVersions::Tls13Only,
            });
            builder.key_log_from_env().build()?
        };
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => host_part(&self.host).to_owned(),
        };
        let server_name = ServerName::try_from(name.clone()).with_context(|| {
            format!("{name:?} is neither a DNS name nor an IP address (use --server-name)")
        })?;
        let client = StdClient::connect(&self.host, &config, server_name)
            .map_err(|err| explain(err, &name))
            .with_context(|| format!("connecting to {}", self.host))?;
        Ok(FieldClient::Tcp(Box::new(client)))
    }

    /// Opens the serial port, or connects to the RTU-over-TCP converter.
    fn connect_rtu(&self, timeout: std::time::Duration) -> Result<FieldClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let options = RtuOptions::default();
        let client = match &self.serial {
            Some(path) => {
                let mut line = SerialLine::new(path);
                line.baud = self.baud.unwrap_or(line.baud);
                line.parity = self.parity.unwrap_or(line.parity);
                if let Some(bits) = self.stop_bits.and_then(|n| StopBits::from_count(n.into())) {
                    line.stop_bits = bits;
                }
                runtime.block_on(async { RtuClient::serial(&line, options, timeout) })?
            }
            None => runtime
                .block_on(RtuClient::over_tcp(&self.host, options, timeout))
                .with_context(|| format!("connecting to {} (RTU over TCP)", self.host))?,
        };
        Ok(FieldClient::Rtu {
            runtime,
            client: Box::new(client),
        })
    }
}

pub(crate) fn host_part(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, _)) => name.trim_start_matches('[').trim_end_matches(']'),
        None => host,
    }
}

/// A client error with the likely cause spelled out.
pub(crate) fn explain(err: ClientError, server_name: &str) -> anyhow::Error {
    match err.hint(server_name) {
        Some(hint) => anyhow::anyhow!("{err}: {hint}"),
        None => anyhow::Error::new(err),
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum TlsVersion {
    /// TLS 1.2 only.
    #[value(name = "1.2")]
    V12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    V13,
}
