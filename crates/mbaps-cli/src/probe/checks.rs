//! The checks the probe runs against a server under test. Each returns an
//! outcome and a sentence; none may panic or wait beyond the timeout,
//! whatever the device does.

use crate::key_log::KeyLogFromEnv;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mbaps_session::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use mbaps_session::rustls::{self, RootCertStore};
use mbaps_session::{ClientConfig, TlsVersions, crypto_provider};
use mbaps_test_pki::hello::{self, ServerReply, modern_extensions, version};

use super::raw::{HelloAnswer, NoResponse, RawLink, Received};

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Fail,
    /// Not run: an option it needs was not given.
    Skip,
    /// Reported, not judged (e.g. TLS 1.3 support, which v36 does not ask).
    Info,
    /// The server's behaviour proves nothing either way: silence where a
    /// refusal (or its absence) was to be seen.
    Inconclusive,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Info => "info",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// One check, as the probe runs it.
pub(crate) struct Check {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// Requirement numbers (v36) or Implementation Guide sections.
    pub(crate) requirements: &'static [&'static str],
    pub(crate) run: fn(&Target) -> (Outcome, String),
}

/// The server under test and what the probe may use on it.
pub(crate) struct Target {
    pub(crate) address: SocketAddr,
    pub(crate) name: ServerName<'static>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) allowed: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    pub(crate) denied: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub(crate) unit: u8,
    pub(crate) address_to_read: u16,
    pub(crate) timeout: Duration,
}

impl Target {
    fn config(
        &self,
        credential: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        versions: TlsVersions,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let config = ClientConfig::builder(
            self.roots.clone(),
            credential.0.clone(),
            credential.1.clone_key(),
        )
        .versions(versions)
        .resumption(false)
        .key_log_from_env()
        .build()
        .map_err(|e| e.to_string())?;
        let tls = config.tls().ok_or("not a TLS configuration")?;
        Ok(Arc::new(tls.clone()))
    }

    fn connect(
        &self,
        credential: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        versions: TlsVersions,
    ) -> Result<RawLink, String> {
        let config = self.config(credential, versions)?;
        RawLink::connect(self.address, config, self.name.clone(), self.timeout)
    }

    /// A read of one holding register at the probe's address, as a PDU.
    fn read_pdu(&self) -> [u8; 5] {
        let [hi, lo] = self.address_to_read.to_be_bytes();
        [0x03, hi, lo, 0x00, 0x01]
    }

    /// Sends `pdu` and waits for its response.
    fn ask(&self, link: &mut RawLink, txn: u16, pdu: &[u8]) -> Result<Received, String> {
        link.send(txn, 0, self.unit, pdu)?;
        link.receive(self.timeout).map_err(|e| match e {
            NoResponse::Silence => format!("no response within {:?}", self.timeout),
            NoResponse::Closed(why) => why,
        })
    }
}

/// Every check, in the order they run.
pub(crate) const CHECKS: &[Check] = &[
    Check {
        id: "ssl30_refused",
        title: "a ClientHello offering only SSL 3.0 is refused",
        requirements: &["R-34"],
        run: |t| old_hello(t, version::SSL30),
    },
    Check {
        id: "tls10_refused",
        title: "a ClientHello offering only TLS 1.0 is refused",
        requirements: &["R-34"],
        run: |t| old_hello(t, version::TLS10),
    },
    Check {
        id: "tls11_refused",
        title: "a ClientHello offering only TLS 1.1 is refused",
        requirements: &["R-34"],
        run: |t| old_hello(t, version::TLS11),
    },
    Check {
        id: "ssl20_refused",
        title: "an SSL 2.0 ClientHello is refused",
        requirements: &["R-35"],
        run: |t| refused_hello(t, &hello::sslv2_client_hello()),
    },
    Check {
        id: "null_suite_refused",
        title: "a TLS 1.2 ClientHello offering only TLS_NULL_WITH_NULL_NULL is refused",
        requirements: &["R-37"],
        run: |t| {
            refused_hello(
                t,
                &hello::client_hello(version::TLS12, &[0x0000], &modern_extensions()),
            )
        },
    },
    Check {
        id: "tls12_mandatory_suite",
        title: "TLS 1.2 with a mandatory ECDHE AES-128-GCM suite",
        requirements: &["R-01", "R-14", "R-32", "R-62"],
        run: tls12_mandatory_suite,
    },
    Check {
        id: "tls13",
        title: "TLS 1.3 (allowed, not required by v36)",
        requirements: &["R-01"],
        run: tls13,
    },
    Check {
        id: "client_certificate_required",
        title: "a client without a certificate gets no session",
        requirements: &["R-02", "R-07", "R-10", "R-44"],
        run: client_certificate_required,
    },
    Check {
        id: "chain_sent",
        title: "the server sends a chain that verifies to the given CA",
        requirements: &["R-46", "R-03"],
        run: chain_sent,
    },
    Check {
        id: "role_allowed",
        title: "the --cert role is let read the register",
        requirements: &["R-16", "R-30"],
        run: role_allowed,
    },
    Check {
        id: "role_denied",
        title: "the --denied-cert role gets exception 01 and the session stays up",
        requirements: &["R-31", "R-17"],
        run: role_denied,
    },
    Check {
        id: "mbap_echo",
        title: "transaction id and unit id echoed, protocol id 0, length right",
        requirements: &["R-05", "IG 3.1.3"],
        run: mbap_echo,
    },
    Check {
        id: "foreign_protocol_discarded",
        title: "an ADU with protocol id 1 is discarded, the next one answered",
        requirements: &["IG 3.1.3"],
        run: foreign_protocol_discarded,
    },
    Check {
        id: "illegal_function",
        title: "a function code no specification defines (0x09) gets exception 01",
        requirements: &["AP 7"],
        run: illegal_function,
    },
    Check {
        id: "illegal_data_value",
        title: "read holding registers of quantity 0 and 126 get exception 03",
        requirements: &["AP 6.3"],
        run: illegal_data_value,
    },
];

fn old_hello(target: &Target, client_version: u16) -> (Outcome, String) {
    // Suites of those versions (RSA and ECDHE with AES-CBC-SHA) and the
    // modern ECDHE ones, so that only the version can be the reason.
    let suites = [0x002F, 0x0035, 0xC009, 0xC013, 0xC02B, 0xC02F];
    refused_hello(
        target,
        &hello::client_hello(client_version, &suites, &modern_extensions()),
    )
}

fn refused_hello(target: &Target, hello: &[u8]) -> (Outcome, String) {
    match super::raw::exchange_hello(target.address, hello, target.timeout) {
        Err(error) => (Outcome::Fail, error),
        Ok(HelloAnswer::Closed) => (Outcome::Pass, "refused: the connection closed".into()),
        // A server that hangs on a hello it cannot handle is not refusing
        // it; nor is a port nobody serves.
        Ok(HelloAnswer::Silence) => (
            Outcome::Inconclusive,
            format!(
                "no answer within {:?}: neither a refusal nor a ServerHello",
                target.timeout
            ),
        ),
        Ok(HelloAnswer::Bytes(reply)) => match ServerReply::parse(&reply) {
            ServerReply::ServerHello { version, suite } => (
                Outcome::Fail,
                format!(
                    "the server answered ServerHello version 0x{version:04X} suite 0x{suite:04X}"
                ),
            ),
            ServerReply::Alert { level, description } => (
                Outcome::Pass,
                format!(
                    "refused with alert {} (level {level})",
                    alert_name(description)
                ),
            ),
            ServerReply::Nothing => (Outcome::Pass, "refused: the connection closed".into()),
            ServerReply::Other => (
                Outcome::Inconclusive,
                format!(
                    "{} bytes that are neither a ServerHello nor an alert",
                    reply.len()
                ),
            ),
        },
    }
}

fn alert_name(description: u8) -> String {
    format!("{:?}", rustls::AlertDescription::from(description))
}

fn tls12_mandatory_suite(target: &Target) -> (Outcome, String) {
    match target.connect(&target.allowed, TlsVersions::Tls12Only) {
        Ok(link) => {
            let (version, suite) = link.negotiated();
            (Outcome::Pass, format!("{version} with {suite}"))
        }
        Err(error) => (Outcome::Fail, error),
    }
}

fn tls13(target: &Target) -> (Outcome, String) {
    match target.connect(&target.allowed, TlsVersions::Tls13Only) {
        Ok(link) => {
            let (version, suite) = link.negotiated();
            (Outcome::Info, format!("{version} with {suite}"))
        }
        Err(error) => (Outcome::Info, format!("not supported: {error}")),
    }
}

fn client_certificate_required(target: &Target) -> (Outcome, String) {
    // A refusal only means something if a client with a certificate gets in.
    if let Err(error) = target.connect(&target.allowed, TlsVersions::Both) {
        return (
            Outcome::Inconclusive,
            format!("the --cert client gets no session either: {error}"),
        );
    }
    let mut roots = RootCertStore::empty();
    for root in &target.roots {
        if let Err(error) = roots.add(root.clone()) {
            return (Outcome::Fail, format!("--ca: {error}"));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    let config = match config {
        Ok(config) => Arc::new(config),
        Err(error) => return (Outcome::Fail, error.to_string()),
    };
    let mut link =
        match RawLink::connect(target.address, config, target.name.clone(), target.timeout) {
            // TLS 1.2: refused in the handshake.
            Err(error) => return (Outcome::Pass, format!("refused in the handshake: {error}")),
            Ok(link) => link,
        };
    // TLS 1.3: the client finishes first; the refusal follows.
    let _ = link.send(1, 0, target.unit, &target.read_pdu());
    match link.receive(target.timeout) {
        Ok(_) => (
            Outcome::Fail,
            "a client without a certificate got a Modbus response".into(),
        ),
        Err(NoResponse::Closed(why)) => (Outcome::Pass, format!("no session: {why}")),
        Err(NoResponse::Silence) => (
            Outcome::Inconclusive,
            format!(
                "no answer and no refusal within {:?} to a client without a certificate",
                target.timeout
            ),
        ),
    }
}

fn chain_sent(target: &Target) -> (Outcome, String) {
    match target.connect(&target.allowed, TlsVersions::Both) {
        Ok(link) => (
            Outcome::Pass,
            format!(
                "{} certificate(s) sent, verified to the given CA",
                link.peer_chain_len()
            ),
        ),
        Err(error) => (Outcome::Fail, error),
    }
}

/// The exception code of a response PDU, if it is one.
fn exception(pdu: &[u8]) -> Option<u8> {
    match pdu {
        [function, code] if function & 0x80 != 0 => Some(*code),
        _ => None,
    }
}

fn role_allowed(target: &Target) -> (Outcome, String) {
    let mut link = match target.connect(&target.allowed, TlsVersions::Both) {
        Ok(link) => link,
        Err(error) => return (Outcome::Fail, error),
    };
    match target.ask(&mut link, 1, &target.read_pdu()) {
        Ok(response) => match exception(&response.pdu) {
            Some(0x01) => (
                Outcome::Fail,
                "exception 01: the role of --cert may not read here; give a certificate whose role may".into(),
            ),
            Some(code) => (
                Outcome::Pass,
                format!("authorized (the device answered exception {code:02X} for the register)"),
            ),
            None => (Outcome::Pass, "authorized: the register was read".into()),
        },
        Err(why) => (Outcome::Fail, why),
    }
}

fn role_denied(target: &Target) -> (Outcome, String) {
    let Some(denied) = &target.denied else {
        return (
            Outcome::Skip,
            "give --denied-cert and --denied-key (a role the server's policy must deny this read)"
                .into(),
        );
    };
    let mut link = match target.connect(denied, TlsVersions::Both) {
        Ok(link) => link,
        Err(error) => return (Outcome::Fail, error),
    };
    for (attempt, txn) in [(1, 7u16), (2, 8)] {
        match target.ask(&mut link, txn, &target.read_pdu()) {
            Ok(response) if exception(&response.pdu) == Some(0x01) => {}
            Ok(response) => {
                return (
                    Outcome::Fail,
                    format!(
                        "request {attempt}: expected exception 01, got PDU {:02X?}",
                        response.pdu
                    ),
                );
            }
            Err(why) if attempt == 2 => {
                return (Outcome::Fail, format!("the session did not stay up: {why}"));
            }
            Err(why) => return (Outcome::Fail, why),
        }
    }
    (Outcome::Pass, "exception 01 twice on one session".into())
}

fn mbap_echo(target: &Target) -> (Outcome, String) {
    let mut link = match target.connect(&target.allowed, TlsVersions::Both) {
        Ok(link) => link,
        Err(error) => return (Outcome::Fail, error),
    };
    let txn = 0xA55A;
    match target.ask(&mut link, txn, &target.read_pdu()) {
        Ok(r) if r.transaction_id == txn && r.protocol_id == 0 && r.unit_id == target.unit => (
            Outcome::Pass,
            format!("transaction 0x{txn:04X} and unit {} echoed", target.unit),
        ),
        Ok(r) => (
            Outcome::Fail,
            format!(
                "sent transaction 0x{txn:04X} unit {}, got transaction 0x{:04X} protocol {} unit {}",
                target.unit, r.transaction_id, r.protocol_id, r.unit_id
            ),
        ),
        Err(why) => (Outcome::Fail, why),
    }
}

fn foreign_protocol_discarded(target: &Target) -> (Outcome, String) {
    let mut link = match target.connect(&target.allowed, TlsVersions::Both) {
        Ok(link) => link,
        Err(error) => return (Outcome::Fail, error),
    };
    if let Err(error) = link.send(0x0101, 1, target.unit, &target.read_pdu()) {
        return (Outcome::Fail, error);
    }
    match target.ask(&mut link, 0x0102, &target.read_pdu()) {
        Ok(r) if r.transaction_id == 0x0102 => (
            Outcome::Pass,
            "no answer to protocol id 1; the next request answered".into(),
        ),
        Ok(r) => (
            Outcome::Fail,
            format!(
                "answered the ADU of protocol id 1 (transaction 0x{:04X})",
                r.transaction_id
            ),
        ),
        Err(why) => (Outcome::Fail, format!("after protocol id 1: {why}")),
    }
}

/// 0x09, not 0x07: the serial-line codes (0x07, 0x08, 0x0B, 0x0C, 0x11)
/// are answered by many Modbus/TCP devices, and may be.
fn illegal_function(target: &Target) -> (Outcome, String) {
    expect_exception(target, &[0x09], 0x01)
}

fn illegal_data_value(target: &Target) -> (Outcome, String) {
    let [hi, lo] = target.address_to_read.to_be_bytes();
    let (outcome, zero) = expect_exception(target, &[0x03, hi, lo, 0x00, 0x00], 0x03);
    if outcome != Outcome::Pass {
        return (outcome, format!("quantity 0: {zero}"));
    }
    let (outcome, many) = expect_exception(target, &[0x03, hi, lo, 0x00, 126], 0x03);
    (outcome, format!("quantity 0: {zero}; quantity 126: {many}"))
}

fn expect_exception(target: &Target, pdu: &[u8], code: u8) -> (Outcome, String) {
    let mut link = match target.connect(&target.allowed, TlsVersions::Both) {
        Ok(link) => link,
        Err(error) => return (Outcome::Fail, error),
    };
    match target.ask(&mut link, 0x0201, pdu) {
        Ok(r) => match exception(&r.pdu) {
            Some(found) if found == code && r.pdu[0] == pdu[0] | 0x80 => {
                (Outcome::Pass, format!("exception {code:02X}"))
            }
            _ => (
                Outcome::Fail,
                format!("expected exception {code:02X}, got PDU {:02X?}", r.pdu),
            ),
        },
        Err(why) => (Outcome::Fail, why),
    }
}
