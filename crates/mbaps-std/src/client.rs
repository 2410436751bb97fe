//! A blocking client: typed calls one at a time, or a batch in flight.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use mbaps_codec::Request;
use mbaps_session::Calls;
use mbaps_session::call::Call;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{
    Client, ClientConfig, ClientError, CloseReason, Cut, Outcome, Pdu, SessionError,
};

/// A Modbus/TCP Security client on a `TcpStream`.
///
/// Each typed method of [`Calls`] sends one request and waits for its
/// answer; a Modbus exception is [`ClientError::Exception`]. [`StdClient::pipeline`] puts
/// several requests in flight at once, told apart by transaction id.
pub struct StdClient {
    stream: TcpStream,
    session: Client,
    timeout: Duration,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// How the session ended, once its last event was seen: every later
    /// wait ends with it at once.
    ended: Option<CloseReason>,
}

/// The typed calls ([`Calls`]: one method per function code) run on
/// [`StdClient::request`].
impl Calls for StdClient {
    fn call<T>(&mut self, unit_id: u8, call: Call<'_, T>) -> Result<T, ClientError> {
        call.output(self.request(unit_id, call.request())?)
    }
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
            ended: None,
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

    /// Sends any `request` to `unit_id` and waits for its response PDU (an
    /// exception response is [`ClientError::Exception`]). The typed calls
    /// are the methods of [`Calls`].
    pub fn request(&mut self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        let txn = self.send(unit_id, request, self.timeout)?;
        let mut result = None;
        self.wait(&[txn], |_, r| result = Some(r))?;
        result.unwrap_or(Err(ClientError::Timeout))
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
                // The session is over. The requests in flight had their
                // outcomes handed over before its end (a response that came
                // first, else the abort); those never sent fail with the
                // error that ended it.
                for slot in results.iter_mut().filter(|slot| slot.is_none()) {
                    *slot = Some(Err(error.clone()));
                }
            }
        }
        results.into_iter().flatten().collect()
    }

    /// Closes the session with close_notify (waiting for the server to
    /// take it no longer than the later of the close timeout and the
    /// request timeout).
    pub fn close(mut self) -> Result<(), ClientError> {
        self.session.close(Instant::now());
        self.flush()
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
        mut deliver: impl FnMut(u16, Result<Pdu, ClientError>),
    ) -> Result<(), ClientError> {
        let mut left = txns.len();
        while left > 0 {
            self.wait_any(txns, |txn, result| {
                left -= 1;
                deliver(txn, result);
            })?;
        }
        Ok(())
    }

    /// Steps until at least one of `txns` has an outcome (every outcome
    /// ready is handed over).
    fn wait_any(
        &mut self,
        txns: &[u16],
        mut deliver: impl FnMut(u16, Result<Pdu, ClientError>),
    ) -> Result<(), ClientError> {
        loop {
            let mut delivered = false;
            while let Some(event) = self.session.poll_event() {
                match Outcome::from(event) {
                    Outcome::Call {
                        transaction_id,
                        result,
                    } if txns.contains(&transaction_id) => {
                        delivered = true;
                        deliver(transaction_id, result);
                    }
                    // Responses that came with the close are still handed
                    // over (every outcome comes before `Closed`).
                    Outcome::Closed(reason) => self.ended = Some(reason),
                    // Late outcomes of calls that gave up already.
                    _ => {}
                }
            }
            if delivered {
                return Ok(());
            }
            if let Some(reason) = &self.ended {
                return Err(ClientError::Closed(reason.clone()));
            }
            self.step()?;
        }
    }

    /// Writes what the session has to send. No wait for the socket lasts
    /// beyond the session's next deadline or the request timeout,
    /// whichever is later, so a server that stops reading cannot hold a
    /// call forever, and a brief stall does not cut a connection whose
    /// next deadline is near. A write cut short leaves part of a record on
    /// the wire: the connection is cut then ([`CloseReason::WriteTimeout`]
    /// for every call in flight and every later one).
    fn flush(&mut self) -> Result<(), ClientError> {
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        let wait = self.until_deadline().unwrap_or_default().max(self.timeout);
        self.stream.set_write_timeout(Some(wait))?;
        match self.stream.write_all(&self.out) {
            Ok(()) => Ok(()),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                self.session.cut(Instant::now(), Cut::WriteTimeout(wait));
                Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!("the server took nothing more we sent for {wait:?}"),
                )
                .into())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The time left until the session's next deadline (at least 1 ms, as
    /// a socket timeout of zero means none); `None` when there is none.
    fn until_deadline(&self) -> Option<Duration> {
        let now = Instant::now();
        self.session.poll_timeout().map(|deadline| {
            deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1))
        })
    }

    /// One turn of the run loop: write what is pending, then read (or wait
    /// until the next deadline).
    fn step(&mut self) -> Result<(), ClientError> {
        self.flush()?;
        self.stream.set_read_timeout(self.until_deadline())?;
        match self.stream.read(&mut self.buf) {
            Ok(0) => self.session.handle_eof(Instant::now()),
            Ok(n) => self.session.handle_tls(Instant::now(), &self.buf[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.session.handle_timeout(Instant::now())
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
        if self.session.is_closed() {
            // The alert or close_notify we owe the server; the end itself
            // comes as the session's last event.
            self.flush()?;
        }
        Ok(())
    }
}
