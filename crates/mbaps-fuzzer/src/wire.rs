//! A raw connection to the device: rustls (or plain TCP) over a blocking
//! socket, ADUs written as bytes exactly as a step says (a record each, two
//! in one, one split in two, a close in the middle) and frames read back
//! whatever they hold. Every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_codec::limits::{MBAP_HEADER_LEN, MBAP_LENGTH};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::rustls::{self, ClientConnection};

use crate::input::{Delivery, Step};

/// Where the device is and how it is reached.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its address.
    pub address: SocketAddr,
    /// Modbus/TCP Security: the client configuration (certificate, role,
    /// CA) and the name the device's certificate must carry; `None`: plain
    /// Modbus/TCP.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// Why no session could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No TCP connection (refused, reset, no route, timeout).
    #[error("connecting to {address}: {error}")]
    Tcp {
        /// The device.
        address: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// TCP connected, but the TLS handshake did not complete.
    #[error("the TLS handshake with {address} failed: {reason}")]
    Handshake {
        /// The device.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A frame the device sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The transaction id.
    pub transaction_id: u16,
    /// The protocol id.
    pub protocol_id: u16,
    /// The unit id.
    pub unit_id: u8,
    /// The PDU.
    pub pdu: Vec<u8>,
}

/// What a read gave.
#[derive(Debug)]
pub enum Received {
    /// A whole frame.
    Frame(Frame),
    /// Nothing until the deadline; the connection is open.
    Timeout,
    /// The device closed the connection (close_notify, or the end of its
    /// stream).
    Closed,
    /// The connection failed: reset, a TLS alert, bytes that do not
    /// decrypt.
    Failed(String),
    /// Bytes that are no MBAP frame (a length outside 2..=254).
    Garbage(Vec<u8>),
}

enum Session {
    Tls(Box<ClientConnection>),
    Plain,
}

/// One connection to the device.
pub struct Link {
    socket: TcpStream,
    session: Session,
    /// Plaintext received and not yet a whole frame.
    input: Vec<u8>,
    /// Ciphertext to write.
    out: Vec<u8>,
    closed: bool,
    /// The socket's read timeout, as last set.
    read_timeout: Option<Duration>,
}

impl Link {
    /// Connects to `target` and completes the handshake, within `timeout`.
    pub fn connect(target: &Target, timeout: Duration) -> Result<Link, ConnectError> {
        let address = target.address;
        let socket = TcpStream::connect_timeout(&address, timeout)
            .map_err(|error| ConnectError::Tcp { address, error })?;
        let _ = socket.set_nodelay(true);
        let handshake = |reason: String| ConnectError::Handshake { address, reason };
        socket
            .set_write_timeout(Some(timeout))
            .map_err(|e| handshake(e.to_string()))?;
        let session = match &target.tls {
            None => Session::Plain,
            Some((config, name)) => {
                let conn = ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(|e| handshake(e.to_string()))?;
                Session::Tls(Box::new(conn))
            }
        };
        let mut link = Link {
            socket,
            session,
            input: Vec::new(),
            out: Vec::new(),
            closed: false,
            read_timeout: None,
        };
        let deadline = Instant::now() + timeout;
        while let Session::Tls(conn) = &link.session
            && conn.is_handshaking()
        {
            if Instant::now() >= deadline {
                return Err(handshake(format!("not complete within {timeout:?}")));
            }
            link.flush().map_err(|e| handshake(e.to_string()))?;
            match link.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Err(handshake("the device closed the connection".into())),
                Err(reason) => return Err(handshake(reason)),
            }
        }
        link.flush().map_err(|e| handshake(e.to_string()))?;
        Ok(link)
    }

    /// The TLS version and suite, as text (`None`: plain Modbus/TCP).
    pub fn negotiated(&self) -> Option<(String, String)> {
        match &self.session {
            Session::Tls(conn) => Some((
                conn.protocol_version()
                    .map_or("?".into(), |v| format!("{v:?}")),
                conn.negotiated_cipher_suite()
                    .map_or("?".into(), |s| format!("{:?}", s.suite())),
            )),
            Session::Plain => None,
        }
    }

    /// Sends `steps` (a step that is [`Delivery::Joined`] with the one
    /// after it, so give those together). Nothing is sent after a
    /// [`Delivery::CloseAfter`].
    pub fn send(&mut self, steps: &[Step]) -> std::io::Result<()> {
        let mut joined: Vec<u8> = Vec::new();
        for step in steps {
            if self.closed {
                break;
            }
            match step.delivery {
                Delivery::Joined => {
                    joined.extend_from_slice(&step.adu);
                    continue;
                }
                Delivery::Record => {
                    joined.extend_from_slice(&step.adu);
                    self.record(&joined)?;
                }
                Delivery::Split { at } => {
                    let at = at.min(step.adu.len());
                    joined.extend_from_slice(&step.adu[..at]);
                    self.record(&joined)?;
                    self.record(&step.adu[at..])?;
                }
                Delivery::CloseAfter { at } => {
                    joined.extend_from_slice(&step.adu[..at.min(step.adu.len())]);
                    self.record(&joined)?;
                    self.close()?;
                }
            }
            joined.clear();
        }
        if !joined.is_empty() {
            self.record(&joined)?;
        }
        // The records go out together, in one write.
        self.flush()
    }

    /// `bytes` as one TLS record, queued (on plain Modbus/TCP, one write).
    fn record(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.session {
            Session::Tls(conn) => conn.writer().write_all(bytes),
            Session::Plain => self.socket.write_all(bytes),
        }
    }

    /// Sends close_notify (plain Modbus/TCP: shuts the write side).
    fn close(&mut self) -> std::io::Result<()> {
        self.closed = true;
        match &mut self.session {
            Session::Tls(conn) => {
                conn.send_close_notify();
                self.flush()
            }
            Session::Plain => self.socket.shutdown(Shutdown::Write),
        }
    }

    /// Writes the ciphertext rustls has queued.
    fn flush(&mut self) -> std::io::Result<()> {
        if let Session::Tls(conn) = &mut self.session {
            self.out.clear();
            while conn.wants_write() {
                conn.write_tls(&mut self.out)?;
            }
            self.socket.write_all(&self.out)?;
        }
        Ok(())
    }

    /// The next frame from the device, waiting until `deadline` at most.
    pub fn read(&mut self, deadline: Instant) -> Received {
        loop {
            if let Some(frame) = self.take_frame() {
                return frame;
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Received::Closed,
                Err(reason) if reason == TIMEOUT => return Received::Timeout,
                Err(reason) => return Received::Failed(reason),
            }
        }
    }

    /// A whole frame of the input, if there is one.
    fn take_frame(&mut self) -> Option<Received> {
        if self.input.len() < MBAP_HEADER_LEN {
            return None;
        }
        let length = u16::from_be_bytes([self.input[4], self.input[5]]);
        if !MBAP_LENGTH.contains(&length) {
            return Some(Received::Garbage(std::mem::take(&mut self.input)));
        }
        let end = 6 + usize::from(length);
        if self.input.len() < end {
            return None;
        }
        let frame = Frame {
            transaction_id: u16::from_be_bytes([self.input[0], self.input[1]]),
            protocol_id: u16::from_be_bytes([self.input[2], self.input[3]]),
            unit_id: self.input[6],
            pdu: self.input[MBAP_HEADER_LEN..end].to_vec(),
        };
        self.input.drain(..end);
        Some(Received::Frame(frame))
    }

    /// Reads more from the device (plaintext, or a step of the TLS
    /// handshake); `Ok(false)` when it closed, `Err(TIMEOUT)` at the
    /// deadline.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Session::Tls(conn) = &mut self.session {
                // Plaintext rustls holds already.
                match conn.reader().read(&mut buf) {
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        self.input.extend_from_slice(&buf[..n]);
                        return Ok(true);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TIMEOUT.into());
            }
            // Set again only when the wait left is under half of it (or
            // past it): a system call per read would cost more than the
            // reads, and a read may end up to twice as late as asked.
            if self
                .read_timeout
                .is_none_or(|set| left > set || left < set / 2)
            {
                self.socket
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                self.read_timeout = Some(left);
            }
            let n = match self.socket.read(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(TIMEOUT.into());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            };
            match &mut self.session {
                Session::Plain if n == 0 => return Ok(false),
                Session::Plain => {
                    self.input.extend_from_slice(&buf[..n]);
                    return Ok(true);
                }
                Session::Tls(conn) if n == 0 => {
                    // The stream ended; without close_notify too.
                    let _ = conn.read_tls(&mut &buf[..0]);
                    return Ok(false);
                }
                Session::Tls(conn) => {
                    let mut received = &buf[..n];
                    while !received.is_empty() {
                        conn.read_tls(&mut received).map_err(|e| e.to_string())?;
                        if let Err(error) = conn.process_new_packets() {
                            // The alert rustls owes goes out.
                            let _ = self.flush();
                            return Err(format!("TLS: {error}"));
                        }
                    }
                    // A handshake message to answer, a key update.
                    self.flush().map_err(|e| e.to_string())?;
                    // Progress: plaintext, or a step of the handshake.
                    return Ok(true);
                }
            }
        }
    }
}

/// The reason a read gave up at its deadline.
const TIMEOUT: &str = "timeout";
