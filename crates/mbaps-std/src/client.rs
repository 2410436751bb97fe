//! A blocking client: connect, then one call at a time.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{
    Client, ClientConfig, ClientEvent, CloseReason, InvalidResponse, Pdu, SessionError,
};

/// Why a call returned no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The session failed: a TLS alert, a refused certificate, a timeout.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// The server answered with a Modbus exception.
    #[error("the server answered exception {0}")]
    Exception(ExceptionCode),
    /// The response does not answer the request.
    #[error("invalid response: {0:?}")]
    Invalid(InvalidResponse),
    /// No response within the request timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The session closed before the response came.
    #[error("the session closed ({0:?})")]
    Closed(CloseReason),
    /// The response is valid but not of the kind the typed call expects.
    #[error("unexpected response: {0:?}")]
    Unexpected(Box<Pdu>),
}

/// A Modbus/TCP Security client on a `TcpStream`.
pub struct StdClient {
    stream: TcpStream,
    session: Client,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl StdClient {
    /// Connects to `address` and completes the handshake; the server's
    /// certificate must name `server_name` (unless the configuration says
    /// otherwise).
    pub fn connect(
        address: impl ToSocketAddrs,
        config: &ClientConfig,
        server_name: ServerName<'static>,
    ) -> Result<StdClient, ClientError> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let mut client = StdClient {
            stream,
            session: Client::new(config, server_name, Instant::now())?,
            buf: vec![0u8; 16 * 1024],
            out: Vec::with_capacity(16 * 1024),
        };
        while !client.session.is_connected() {
            client.step()?;
            while let Some(event) = client.session.poll_event() {
                if let ClientEvent::Closed(reason) = event {
                    return Err(ClientError::Closed(reason));
                }
            }
        }
        Ok(client)
    }

    /// Sends `request` to `unit_id` and waits for its response (an
    /// exception response is `ClientError::Exception`).
    pub fn call(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        let txn = self
            .session
            .send_request(Instant::now(), unit_id, request)?;
        loop {
            while let Some(event) = self.session.poll_event() {
                match event {
                    ClientEvent::Response {
                        transaction_id,
                        pdu,
                        ..
                    } if transaction_id == txn => {
                        return match pdu.response() {
                            Ok(Response::Exception { code, .. }) => {
                                Err(ClientError::Exception(code))
                            }
                            _ => Ok(pdu),
                        };
                    }
                    ClientEvent::Invalid {
                        transaction_id,
                        error,
                    } if transaction_id == txn => {
                        return Err(ClientError::Invalid(error));
                    }
                    ClientEvent::Timeout { transaction_id } if transaction_id == txn => {
                        return Err(ClientError::Timeout);
                    }
                    ClientEvent::Aborted { transaction_id } if transaction_id == txn => {
                        return Err(ClientError::Closed(CloseReason::PeerClosed));
                    }
                    ClientEvent::Closed(reason) => return Err(ClientError::Closed(reason)),
                    _ => {}
                }
            }
            self.step()?;
        }
    }

    /// Reads `quantity` holding registers from `address`.
    pub fn read_holding_registers(
        &mut self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<u16>, ClientError> {
        let pdu = self.call(
            unit_id,
            &Request::ReadHoldingRegisters { address, quantity },
        )?;
        match pdu.response() {
            Ok(Response::ReadHoldingRegisters { values }) => Ok(values.iter().collect()),
            _ => Err(ClientError::Unexpected(Box::new(pdu))),
        }
    }

    /// Writes one holding register.
    pub fn write_single_register(
        &mut self,
        unit_id: u8,
        address: u16,
        value: u16,
    ) -> Result<(), ClientError> {
        let pdu = self.call(unit_id, &Request::WriteSingleRegister { address, value })?;
        match pdu.response() {
            Ok(Response::WriteSingleRegister { .. }) => Ok(()),
            _ => Err(ClientError::Unexpected(Box::new(pdu))),
        }
    }

    /// Writes holding registers from `address`.
    pub fn write_multiple_registers(
        &mut self,
        unit_id: u8,
        address: u16,
        values: &[u16],
    ) -> Result<(), ClientError> {
        let request = Request::WriteMultipleRegisters {
            address,
            values: Registers::from_values(values),
        };
        let pdu = self.call(unit_id, &request)?;
        match pdu.response() {
            Ok(Response::WriteMultipleRegisters { .. }) => Ok(()),
            _ => Err(ClientError::Unexpected(Box::new(pdu))),
        }
    }

    /// Closes the session with close_notify.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.session.close();
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// One turn of the run loop: write what is pending, then read (or wait
    /// until the next deadline).
    fn step(&mut self) -> Result<(), ClientError> {
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
        }
        let now = Instant::now();
        let wait = self.session.poll_timeout().map(|deadline| {
            deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        self.stream.set_read_timeout(wait)?;
        let result = match self.stream.read(&mut self.buf) {
            Ok(0) => self.session.handle_eof(Instant::now()),
            Ok(n) => self.session.handle_tls(Instant::now(), &self.buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.session.handle_timeout(Instant::now())
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => Ok(()),
            Err(err) => return Err(err.into()),
        };
        if let Err(error) = result {
            // Deliver the alert we owe the server, then report.
            self.out.clear();
            self.session.poll_transmit(&mut self.out);
            let _ = self.stream.write_all(&self.out);
            return Err(error.into());
        }
        Ok(())
    }
}
