//! A blocking client: typed calls one at a time, or a batch in flight.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbaps_codec::{FileRecordRead, FileRecordWrite, ReadDeviceIdCode, Request};
use mbaps_session::call::{self, Call, DeviceIdentification};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{Client, ClientConfig, ClientError, Outcome, Pdu, SessionError};

/// A Modbus/TCP Security client on a `TcpStream`.
///
/// Each typed method sends one request and waits for its answer; a Modbus
/// exception is [`ClientError::Exception`]. [`StdClient::pipeline`] puts
/// several requests in flight at once, told apart by transaction id.
pub struct StdClient {
    stream: TcpStream,
    session: Client,
    timeout: Duration,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl StdClient {
    /// Connects to `address` and completes the handshake; the server's
    /// certificate must name `server_name` (unless the configuration says
    /// otherwise). Calls time out after the configuration's request timeout.
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
            timeout: config.request_timeout(),
            buf: vec![0u8; 16 * 1024],
            out: Vec::with_capacity(16 * 1024),
        };
        while !client.session.is_connected() {
            client.step()?;
            while let Some(event) = client.session.poll_event() {
                if let Outcome::Closed(reason) = Outcome::from(event) {
                    return Err(ClientError::Closed(reason));
                }
            }
        }
        // Our last flight (certificate, Finished) goes now: the server
        // authenticates us now, not at our first request.
        client.flush()?;
        Ok(client)
    }

    /// The timeout of the calls that follow.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `request` to `unit_id` and waits for its response (an
    /// exception response is [`ClientError::Exception`]).
    pub fn call(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        let txn = self.send(unit_id, request, self.timeout)?;
        let mut result = None;
        self.wait(&[txn], |_, r| result = Some(r))?;
        result.unwrap_or(Err(ClientError::Timeout))
    }

    /// Runs a typed call (see [`mbaps_session::call`]).
    pub fn execute<T>(&mut self, unit_id: u8, call: Call<'_, T>) -> Result<T, ClientError> {
        call.output(self.call(unit_id, call.request())?)
    }

    /// Sends every request at once (as many as the session allows in
    /// flight, the rest as answers free slots) and returns their results
    /// in order. Each request ends in its own result: one failing does not
    /// fail the others unless the session ends.
    pub fn pipeline(&mut self, requests: &[(u8, Request<'_>)]) -> Vec<Result<Pdu, ClientError>> {
        let mut results: Vec<Option<Result<Pdu, ClientError>>> =
            requests.iter().map(|_| None).collect();
        let mut in_flight: Vec<(u16, usize)> = Vec::new();
        let mut next = 0;
        while results.iter().any(Option::is_none) {
            while next < requests.len() {
                let (unit, request) = &requests[next];
                match self.send(*unit, request, self.timeout) {
                    Ok(txn) => in_flight.push((txn, next)),
                    Err(ClientError::Session(SessionError::TooManyOutstanding(_)))
                        if !in_flight.is_empty() =>
                    {
                        break;
                    }
                    Err(error) => results[next] = Some(Err(error)),
                }
                next += 1;
            }
            let txns: Vec<u16> = in_flight.iter().map(|(txn, _)| *txn).collect();
            let waited = self.wait_any(&txns, |txn, result| {
                if let Some(at) = in_flight.iter().position(|(t, _)| *t == txn) {
                    let (_, index) = in_flight.swap_remove(at);
                    results[index] = Some(result);
                }
            });
            if let Err(error) = waited {
                // The session is over: responses that came before the end
                // are kept, everything else fails with the error that
                // ended it.
                while let Some(event) = self.session.poll_event() {
                    if let Outcome::Call {
                        transaction_id,
                        result: Ok(pdu),
                    } = Outcome::from(event)
                        && let Some(&(_, index)) =
                            in_flight.iter().find(|(t, _)| *t == transaction_id)
                    {
                        results[index] = Some(Ok(pdu));
                    }
                }
                for slot in results.iter_mut().filter(|slot| slot.is_none()) {
                    *slot = Some(Err(error.again()));
                }
            }
        }
        results.into_iter().flatten().collect()
    }

    /// 0x01: `quantity` coils from `address`.
    pub fn read_coils(
        &mut self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<bool>, ClientError> {
        self.execute(unit_id, call::read_coils(address, quantity))
    }

    /// 0x02: `quantity` discrete inputs from `address`.
    pub fn read_discrete_inputs(
        &mut self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<bool>, ClientError> {
        self.execute(unit_id, call::read_discrete_inputs(address, quantity))
    }

    /// 0x03: `quantity` holding registers from `address`.
    pub fn read_holding_registers(
        &mut self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_holding_registers(address, quantity))
    }

    /// 0x04: `quantity` input registers from `address`.
    pub fn read_input_registers(
        &mut self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_input_registers(address, quantity))
    }

    /// 0x05: sets one coil.
    pub fn write_single_coil(
        &mut self,
        unit_id: u8,
        address: u16,
        value: bool,
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_single_coil(address, value))
    }

    /// 0x06: writes one holding register.
    pub fn write_single_register(
        &mut self,
        unit_id: u8,
        address: u16,
        value: u16,
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_single_register(address, value))
    }

    /// 0x0F: writes coils from `address`.
    pub fn write_multiple_coils(
        &mut self,
        unit_id: u8,
        address: u16,
        values: &[bool],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_multiple_coils(address, values))
    }

    /// 0x10: writes holding registers from `address`.
    pub fn write_multiple_registers(
        &mut self,
        unit_id: u8,
        address: u16,
        values: &[u16],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_multiple_registers(address, values))
    }

    /// 0x14: reads file records, one register list per sub-request.
    pub fn read_file_records(
        &mut self,
        unit_id: u8,
        records: &[FileRecordRead],
    ) -> Result<Vec<Vec<u16>>, ClientError> {
        self.execute(unit_id, call::read_file_records(records))
    }

    /// 0x15: writes file records.
    pub fn write_file_records(
        &mut self,
        unit_id: u8,
        records: &[FileRecordWrite<'_>],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_file_records(records))
    }

    /// 0x16: masks one holding register.
    pub fn mask_write_register(
        &mut self,
        unit_id: u8,
        address: u16,
        and_mask: u16,
        or_mask: u16,
    ) -> Result<(), ClientError> {
        self.execute(
            unit_id,
            call::mask_write_register(address, and_mask, or_mask),
        )
    }

    /// 0x17: writes `values` at `write_address`, then reads `read_quantity`
    /// registers from `read_address`.
    pub fn read_write_multiple_registers(
        &mut self,
        unit_id: u8,
        read_address: u16,
        read_quantity: u16,
        write_address: u16,
        values: &[u16],
    ) -> Result<Vec<u16>, ClientError> {
        let call =
            call::read_write_multiple_registers(read_address, read_quantity, write_address, values);
        self.execute(unit_id, call)
    }

    /// 0x18: the FIFO queue at `address`, oldest first.
    pub fn read_fifo_queue(&mut self, unit_id: u8, address: u16) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_fifo_queue(address))
    }

    /// 0x2B / 0x0E: device identification objects from `object_id`.
    pub fn read_device_identification(
        &mut self,
        unit_id: u8,
        code: ReadDeviceIdCode,
        object_id: u8,
    ) -> Result<DeviceIdentification, ClientError> {
        self.execute(unit_id, call::read_device_identification(code, object_id))
    }

    /// A user-defined function code: `data` after the function code out,
    /// the response's data back.
    pub fn user_defined(
        &mut self,
        unit_id: u8,
        function: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.execute(unit_id, call::user_defined(function, data))
    }

    /// Closes the session with close_notify.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.session.close(Instant::now());
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    fn send(
        &mut self,
        unit_id: u8,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<u16, ClientError> {
        Ok(self
            .session
            .send_request_with_timeout(Instant::now(), unit_id, request, timeout)?)
    }

    /// Steps until every one of `txns` has an outcome.
    fn wait(
        &mut self,
        txns: &[u16],
        mut settle: impl FnMut(u16, Result<Pdu, ClientError>),
    ) -> Result<(), ClientError> {
        let mut left = txns.len();
        while left > 0 {
            self.wait_any(txns, |txn, result| {
                left -= 1;
                settle(txn, result);
            })?;
        }
        Ok(())
    }

    /// Steps until at least one of `txns` has an outcome (every outcome
    /// ready is handed over).
    fn wait_any(
        &mut self,
        txns: &[u16],
        mut settle: impl FnMut(u16, Result<Pdu, ClientError>),
    ) -> Result<(), ClientError> {
        loop {
            let mut settled = false;
            let mut closed = None;
            while let Some(event) = self.session.poll_event() {
                match Outcome::from(event) {
                    Outcome::Call {
                        transaction_id,
                        result,
                    } if txns.contains(&transaction_id) => {
                        settled = true;
                        settle(transaction_id, result);
                    }
                    // Responses that came with the close are still handed
                    // over (every outcome comes before `Closed`).
                    Outcome::Closed(reason) => closed = Some(reason),
                    // Late outcomes of calls that gave up already.
                    _ => {}
                }
            }
            if settled {
                return Ok(());
            }
            if let Some(reason) = closed {
                return Err(ClientError::Closed(reason));
            }
            self.step()?;
        }
    }

    /// Writes what the session has to send.
    fn flush(&mut self) -> Result<(), ClientError> {
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
        }
        Ok(())
    }

    /// One turn of the run loop: write what is pending, then read (or wait
    /// until the next deadline).
    fn step(&mut self) -> Result<(), ClientError> {
        self.flush()?;
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
