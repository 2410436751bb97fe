//! What the client commands share: the connection options, and turning
//! session errors into sentences an engineer can act on.

use crate::key_log::KeyLogFromEnv;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mbaps_session::TlsVersions;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::rustls::{self, AlertDescription, CertificateError};
use mbaps_session::{ClientConfig, SessionError, load_certificates, load_private_key};
use mbaps_std::{ClientError, StdClient};

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
    #[arg(long, required_unless_present = "plain")]
    pub(crate) cert: Option<PathBuf>,
    /// Our private key (PEM or DER).
    #[arg(long, required_unless_present = "plain")]
    pub(crate) key: Option<PathBuf>,
    /// The CA the server's certificate must chain to.
    #[arg(long, required_unless_present = "plain")]
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
}

impl ConnectArgs {
    /// Connects, completing the handshake.
    pub(crate) fn connect(&self) -> Result<StdClient> {
        let timeout = std::time::Duration::try_from_secs_f64(self.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .with_context(|| {
                format!(
                    "--timeout {} must be a positive number of seconds",
                    self.timeout
                )
            })?;
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
        StdClient::connect(&self.host, &config, server_name)
            .map_err(|err| explain(err, &name))
            .with_context(|| format!("connecting to {}", self.host))
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
    let hint = match &err {
        ClientError::Session(SessionError::Tls(tls)) => match tls {
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
                Some("the server requires a client certificate".to_owned())
            }
            rustls::Error::AlertReceived(AlertDescription::BadCertificate | AlertDescription::UnknownCA) => {
                Some("the server refused our certificate: it is not signed by a CA the server trusts, or its role extension is malformed".to_owned())
            }
            rustls::Error::AlertReceived(AlertDescription::CertificateExpired) => {
                Some("the server says our certificate has expired".to_owned())
            }
            rustls::Error::AlertReceived(AlertDescription::CertificateRevoked) => {
                Some("the server says our certificate is revoked".to_owned())
            }
            rustls::Error::AlertReceived(AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure) => {
                Some("the server offers no TLS version or cipher suite we accept (Modbus/TCP Security needs TLS 1.2 or 1.3 with ECDHE and AES-GCM)".to_owned())
            }
            rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
                Some("the server's certificate has expired".to_owned())
            }
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                Some("the server's certificate is not signed by the CA given with --ca".to_owned())
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => Some(format!("the server's certificate is not for {server_name:?}: give the name it carries with --server-name")),
            _ => None,
        },
        ClientError::Exception(mbaps_codec::ExceptionCode::IllegalFunction) => Some(
            "the role in our certificate may not make this request (the server's policy denied it, R-31), or the server does not serve this function".to_owned(),
        ),
        ClientError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some("nothing listens there: is the server running, and is the port right?".to_owned())
        }
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{err}: {hint}"),
        None => anyhow::Error::new(err),
    }
}

/// `--tls`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum TlsVersion {
    /// TLS 1.2 only.
    #[value(name = "1.2")]
    V12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    V13,
}
