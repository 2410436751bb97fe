//! A Modbus RTU client: requests to devices on a serial line, or behind an
//! Ethernet-to-serial converter that carries RTU frames over TCP. What the
//! field tools (`mbaps read --serial`, `--rtu`) run on.
//!
//! It drives the same sans-IO line as the gateway ([`RtuLine`]): one
//! request on the line at a time, the inter-frame silence of the line's
//! speed, answers hunted past noise, retries of reads if asked, and a
//! broadcast (unit 0, writes only) answered with the write's normal
//! response once the turnaround has passed, without waiting for a device.
//! A serial line has no authentication: use it where Modbus/TCP Security
//! cannot reach.

use std::time::{Duration, Instant};

use mbaps_codec::Request;
use mbaps_session::call::Call;
use mbaps_session::upstream::rtu::{RtuLine, RtuOptions, RtuSettings, silence_at};
use mbaps_session::{ClientError, ConfigError, Outcome, Pdu, check_timeout};
use tokio::net::TcpStream;

use crate::serial::{SerialError, SerialLine, SerialPort};
use crate::stream::DeviceStream;

/// Why an [`RtuClient`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtuClientError {
    /// The serial port cannot be used.
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// The converter cannot be reached.
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    /// The timeout or the turnaround is out of range.
    #[error(transparent)]
    Timing(#[from] ConfigError),
}

/// The timeout and the turnaround, each 1 ms to a day.
fn check_timing(options: RtuOptions, timeout: Duration) -> Result<(), ConfigError> {
    check_timeout("timeout", timeout)?;
    check_timeout("turnaround", options.turnaround)
}

/// A Modbus RTU client (see the module's documentation).
pub struct RtuClient {
    stream: DeviceStream,
    line: RtuLine,
    /// The request under way, if a call was dropped before its answer
    /// came (its future cancelled): given up before the next.
    under_way: Option<u16>,
    timeout: Duration,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl std::fmt::Debug for RtuClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtuClient")
            .field("settings", self.line.settings())
            .finish_non_exhaustive()
    }
}

impl RtuClient {
    /// Opens `line` exclusively (see [`SerialPort::open`]); each request
    /// waits `timeout` for its answer. Must be called within a tokio
    /// runtime. The timeout and the turnaround are 1 ms to a day.
    pub fn serial(
        line: &SerialLine,
        options: RtuOptions,
        timeout: Duration,
    ) -> Result<RtuClient, RtuClientError> {
        check_timing(options, timeout)?;
        let port = SerialPort::open(line)?;
        let settings = RtuSettings::with_options(silence_at(line.baud), options, timeout);
        Ok(RtuClient::on(DeviceStream::Serial(port), settings, timeout))
    }

    /// Connects to a converter at `address` that carries RTU frames over
    /// TCP.
    pub async fn over_tcp(
        address: &str,
        options: RtuOptions,
        timeout: Duration,
    ) -> Result<RtuClient, RtuClientError> {
        check_timing(options, timeout)?;
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let settings = RtuSettings::with_options(Duration::ZERO, options, timeout);
        Ok(RtuClient::on(DeviceStream::Tcp(tcp), settings, timeout))
    }

    fn on(stream: DeviceStream, settings: RtuSettings, timeout: Duration) -> RtuClient {
        let mut line = RtuLine::new(settings, Instant::now());
        // The line is up at once: its Connected event says nothing more.
        while line.poll_event().is_some() {}
        RtuClient {
            stream,
            line,
            under_way: None,
            timeout,
            buf: vec![0u8; 1024],
            out: Vec::new(),
        }
    }

    /// Sends `request` to `unit_id` and waits for its response PDU (an
    /// exception response is [`ClientError::Exception`]; unit 0 is a
    /// broadcast, answered after the turnaround).
    pub async fn request(
        &mut self,
        unit_id: u8,
        request: &Request<'_>,
    ) -> Result<Pdu, ClientError> {
        let pdu = Pdu::encode_request(request).map_err(|error| {
            ClientError::Session(mbaps_session::SessionError::InvalidRequest(error))
        })?;
        if let Some(cancelled) = self.under_way.take() {
            self.line.abandon(cancelled);
        }
        self.line.handle_timeout(Instant::now());
        let transaction_id =
            self.line
                .send_request_pdu(Instant::now(), unit_id, &pdu, self.timeout)?;
        self.under_way = Some(transaction_id);
        let result = self.run(transaction_id).await;
        self.under_way = None;
        result
    }

    /// Drives the line until request `transaction_id` ends.
    async fn run(&mut self, transaction_id: u16) -> Result<Pdu, ClientError> {
        loop {
            while let Some(event) = self.line.poll_event() {
                match Outcome::from(event) {
                    Outcome::Call {
                        transaction_id: id,
                        result,
                    } if id == transaction_id => return result,
                    Outcome::Closed(reason) => return Err(ClientError::from(reason)),
                    _ => {}
                }
            }
            self.out.clear();
            self.line.poll_transmit(&mut self.out);
            if !self.out.is_empty()
                && let Err(error) = self.stream.write(&self.out, self.timeout).await
            {
                self.line.handle_error(Instant::now(), error.kind());
                continue;
            }
            let deadline = self.line.poll_timeout();
            let wait = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.stream.read(&mut self.buf) => match read {
                    Ok(0) => self.line.handle_eof(Instant::now()),
                    Ok(n) => self.line.handle_bytes(Instant::now(), &self.buf[..n]),
                    Err(error) => self.line.handle_error(Instant::now(), error.kind()),
                },
                () = wait => self.line.handle_timeout(Instant::now()),
            }
        }
    }

    /// Runs a typed call ([`mbaps_session::call`]) on `unit_id`.
    pub async fn call<T>(&mut self, unit_id: u8, call: Call<'_, T>) -> Result<T, ClientError> {
        let pdu = self.request(unit_id, call.request()).await?;
        call.output(pdu)
    }

    /// What the line counted: requests, CRC errors, timeouts, retries.
    pub fn counters(&self) -> mbaps_session::upstream::rtu::LineCounters {
        self.line.counters()
    }
}
