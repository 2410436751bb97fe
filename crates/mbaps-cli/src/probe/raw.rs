//! A raw Modbus/TCP Security link for the probe: rustls over a blocking
//! socket, ADUs written and read as bytes, so that the probe can send what
//! a conforming client would not (a foreign protocol id, a quantity of 0)
//! and look at every header field of what comes back. Every wait is bounded
//! by the timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_codec::Decoded;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::rustls::{self, ClientConnection, StreamOwned};

/// A connected, handshaken link.
pub(crate) struct RawLink {
    stream: StreamOwned<ClientConnection, TcpStream>,
    input: Vec<u8>,
    timeout: Duration,
}

/// The header and PDU of a received ADU.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) transaction_id: u16,
    pub(crate) protocol_id: u16,
    pub(crate) unit_id: u8,
    pub(crate) pdu: Vec<u8>,
}

/// How a wait for a response ended without one.
#[derive(Debug)]
pub(crate) enum NoResponse {
    /// Nothing within the timeout; the connection is still open.
    Silence,
    /// The server closed the connection or sent an alert.
    Closed(String),
}

impl RawLink {
    /// Connects and completes the handshake within `timeout`.
    pub(crate) fn connect(
        target: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<RawLink, String> {
        let socket = TcpStream::connect_timeout(&target, timeout)
            .map_err(|e| format!("connecting to {target}: {e}"))?;
        socket
            .set_read_timeout(Some(timeout))
            .and_then(|()| socket.set_write_timeout(Some(timeout)))
            .map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(conn, socket);
        let deadline = Instant::now() + timeout;
        while stream.conn.is_handshaking() {
            if Instant::now() > deadline {
                return Err(format!("the handshake did not finish within {timeout:?}"));
            }
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| handshake_error(&e))?;
        }
        Ok(RawLink {
            stream,
            input: Vec::new(),
            timeout,
        })
    }

    /// The negotiated version and suite, as text.
    pub(crate) fn negotiated(&self) -> (String, String) {
        let version = self
            .stream
            .conn
            .protocol_version()
            .map_or("?".into(), |v| format!("{v:?}"));
        let suite = self
            .stream
            .conn
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite()));
        (version, suite)
    }

    /// Certificates the server sent.
    pub(crate) fn peer_chain_len(&self) -> usize {
        self.stream.conn.peer_certificates().map_or(0, <[_]>::len)
    }

    /// Writes one ADU: MBAP header with `protocol_id`, then `pdu`.
    pub(crate) fn send(
        &mut self,
        transaction_id: u16,
        protocol_id: u16,
        unit_id: u8,
        pdu: &[u8],
    ) -> Result<(), String> {
        let mut adu = Vec::with_capacity(7 + pdu.len());
        adu.extend(transaction_id.to_be_bytes());
        adu.extend(protocol_id.to_be_bytes());
        adu.extend(((pdu.len() + 1) as u16).to_be_bytes());
        adu.push(unit_id);
        adu.extend(pdu);
        self.stream
            .write_all(&adu)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("writing: {e}"))
    }

    /// Waits for the next ADU, at most `wait`.
    pub(crate) fn receive(&mut self, wait: Duration) -> Result<Received, NoResponse> {
        let deadline = Instant::now() + wait;
        loop {
            match mbaps_codec::decode(&self.input) {
                Ok(Decoded::Frame { adu, consumed }) => {
                    let protocol_id = u16::from_be_bytes([self.input[2], self.input[3]]);
                    let received = Received {
                        transaction_id: adu.header.transaction_id,
                        protocol_id,
                        unit_id: adu.header.unit_id,
                        pdu: adu.pdu.to_vec(),
                    };
                    self.input.drain(..consumed);
                    return Ok(received);
                }
                Ok(Decoded::Incomplete { .. }) => {}
                Err(error) => {
                    return Err(NoResponse::Closed(format!(
                        "the server sent a frame that does not decode: {error}"
                    )));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoResponse::Silence);
            }
            let _ = self
                .stream
                .sock
                .set_read_timeout(Some(left.min(self.timeout)));
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(NoResponse::Closed(
                        "the server closed the connection".into(),
                    ));
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Err(NoResponse::Closed(
                        "the server closed the connection without close_notify".into(),
                    ));
                }
                Err(e) => return Err(NoResponse::Closed(handshake_error(&e))),
            }
        }
    }
}

/// A TLS failure in words: the alert, or the certificate problem.
fn handshake_error(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => format!("the server sent alert {alert:?}"),
        Some(tls) => format!("TLS: {tls}"),
        None => match error.kind() {
            ErrorKind::UnexpectedEof => {
                "the server closed the connection in the handshake (does it speak TLS on this port?)"
                    .into()
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                "no answer within the timeout (does the server speak TLS on this port?)".into()
            }
            _ => error.to_string(),
        },
    }
}

/// What a server did with a hand-built hello.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloAnswer {
    /// The first bytes it sent back (a record, or as much of one as came).
    Bytes(Vec<u8>),
    /// It closed (or reset) the connection without a byte.
    Closed,
    /// Nothing within the timeout, and the connection still open: no
    /// refusal can be read into that.
    Silence,
}

/// Sends `hello` on a fresh connection and reports what came back.
pub(crate) fn exchange_hello(
    target: SocketAddr,
    hello: &[u8],
    timeout: Duration,
) -> Result<HelloAnswer, String> {
    let mut socket = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("connecting to {target}: {e}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    socket
        .write_all(hello)
        .map_err(|e| format!("writing the hello: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // A record header says how much to wait for; 16 KiB is plenty.
    let ending = loop {
        if reply.len() >= 16 * 1024 {
            break HelloAnswer::Closed;
        }
        match socket.read(&mut buf) {
            Ok(0) => break HelloAnswer::Closed,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.len() >= 5 {
                    let len = usize::from(u16::from_be_bytes([reply[3], reply[4]]));
                    if reply.len() >= 5 + len {
                        break HelloAnswer::Closed;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break HelloAnswer::Silence;
            }
            Err(_) => break HelloAnswer::Closed,
        }
    };
    Ok(if reply.is_empty() {
        ending
    } else {
        HelloAnswer::Bytes(reply)
    })
}
