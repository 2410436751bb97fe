//! The async client: a driver task owns the connection; calls from any
//! number of tasks are in flight together, told apart by transaction id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_codec::{FileRecordRead, FileRecordWrite, ReadDeviceIdCode, Request};
use mbaps_session::call::{self, Call, DeviceIdentification};
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{Client, ClientConfig, ClientError, CloseReason, Outcome, Pdu, SessionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};

use crate::timer::Timer;

/// Reconnect with exponential backoff after the connection is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// The wait before the first attempt.
    pub initial_delay: Duration,
    /// The longest wait between attempts (the wait doubles up to it).
    pub max_delay: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

/// How to connect: [`TokioClient::builder`], then [`ClientBuilder::connect`].
pub struct ClientBuilder {
    config: ClientConfig,
    server_name: ServerName<'static>,
    reconnect: Option<Reconnect>,
}

impl ClientBuilder {
    /// Reconnect when the connection is lost (off by default: a lost
    /// connection ends the client). Calls made while reconnecting wait,
    /// within their timeout; calls in flight when the connection is lost
    /// fail with the error that ended it.
    pub fn reconnect(mut self, reconnect: Reconnect) -> ClientBuilder {
        self.reconnect = Some(reconnect);
        self
    }

    /// Connects to `address` and completes the handshake.
    pub async fn connect(self, address: impl ToSocketAddrs) -> Result<TokioClient, ClientError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
        let config = Arc::new(self.config);
        let link = open(&addresses, &config, &self.server_name).await?;
        let (commands, receiver) = mpsc::channel(config.max_outstanding().max(1));
        let ended = Arc::new(Mutex::new(None));
        let timeout = config.request_timeout();
        let driver = Driver {
            addresses,
            config,
            server_name: self.server_name,
            reconnect: self.reconnect,
            commands: receiver,
            waiting: HashMap::new(),
            ended: Arc::clone(&ended),
        };
        tokio::spawn(driver.run(link));
        Ok(TokioClient {
            commands,
            timeout,
            ended,
        })
    }
}

/// A request on its way to the driver, with where its result goes.
struct Command {
    unit_id: u8,
    pdu: Pdu,
    timeout: Duration,
    reply: oneshot::Sender<Result<Pdu, ClientError>>,
}

/// A Modbus/TCP Security client. Cheap to clone: clones share the
/// connection, and their calls are in flight together (up to the
/// configuration's `max_outstanding`; more wait their turn).
///
/// Calls are cancellation-safe: dropping a call's future (a `select!`
/// branch losing, a `timeout`) abandons only that call; its response, if
/// one comes, is discarded and the connection stays in step.
#[derive(Clone)]
pub struct TokioClient {
    commands: mpsc::Sender<Command>,
    timeout: Duration,
    ended: Arc<Mutex<Option<ClientError>>>,
}

impl TokioClient {
    /// A client with `config`, verifying that the server's certificate
    /// names `server_name` (unless the configuration says otherwise).
    pub fn builder(config: ClientConfig, server_name: ServerName<'static>) -> ClientBuilder {
        ClientBuilder {
            config,
            server_name,
            reconnect: None,
        }
    }

    /// Connects without reconnection: see [`TokioClient::builder`].
    pub async fn connect(
        address: impl ToSocketAddrs,
        config: ClientConfig,
        server_name: ServerName<'static>,
    ) -> Result<TokioClient, ClientError> {
        TokioClient::builder(config, server_name)
            .connect(address)
            .await
    }

    /// This handle with another timeout for its calls (clones keep theirs).
    pub fn with_timeout(mut self, timeout: Duration) -> TokioClient {
        self.timeout = timeout;
        self
    }

    /// Sends `request` to `unit_id` and waits for its response, at most the
    /// timeout (an exception response is [`ClientError::Exception`]).
    pub async fn call(&self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        self.call_with_timeout(unit_id, request, self.timeout).await
    }

    /// [`TokioClient::call`] with this call's own timeout.
    pub async fn call_with_timeout(
        &self,
        unit_id: u8,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Pdu, ClientError> {
        let pdu = Pdu::encode_request(request).map_err(SessionError::Encode)?;
        let (reply, result) = oneshot::channel();
        let command = Command {
            unit_id,
            pdu,
            timeout,
            reply,
        };
        let exchange = async {
            if self.commands.send(command).await.is_err() {
                return Err(self.ended_error());
            }
            result.await.unwrap_or_else(|_| Err(self.ended_error()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ClientError::Timeout))
    }

    /// Runs a typed call (see [`mbaps_session::call`]).
    pub async fn execute<T>(&self, unit_id: u8, call: Call<'_, T>) -> Result<T, ClientError> {
        call.output(self.call(unit_id, call.request()).await?)
    }

    /// 0x01: `quantity` coils from `address`.
    pub async fn read_coils(
        &self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<bool>, ClientError> {
        self.execute(unit_id, call::read_coils(address, quantity))
            .await
    }

    /// 0x02: `quantity` discrete inputs from `address`.
    pub async fn read_discrete_inputs(
        &self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<bool>, ClientError> {
        self.execute(unit_id, call::read_discrete_inputs(address, quantity))
            .await
    }

    /// 0x03: `quantity` holding registers from `address`.
    pub async fn read_holding_registers(
        &self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_holding_registers(address, quantity))
            .await
    }

    /// 0x04: `quantity` input registers from `address`.
    pub async fn read_input_registers(
        &self,
        unit_id: u8,
        address: u16,
        quantity: u16,
    ) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_input_registers(address, quantity))
            .await
    }

    /// 0x05: sets one coil.
    pub async fn write_single_coil(
        &self,
        unit_id: u8,
        address: u16,
        value: bool,
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_single_coil(address, value))
            .await
    }

    /// 0x06: writes one holding register.
    pub async fn write_single_register(
        &self,
        unit_id: u8,
        address: u16,
        value: u16,
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_single_register(address, value))
            .await
    }

    /// 0x0F: writes coils from `address`.
    pub async fn write_multiple_coils(
        &self,
        unit_id: u8,
        address: u16,
        values: &[bool],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_multiple_coils(address, values))
            .await
    }

    /// 0x10: writes holding registers from `address`.
    pub async fn write_multiple_registers(
        &self,
        unit_id: u8,
        address: u16,
        values: &[u16],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_multiple_registers(address, values))
            .await
    }

    /// 0x14: reads file records, one register list per sub-request.
    pub async fn read_file_records(
        &self,
        unit_id: u8,
        records: &[FileRecordRead],
    ) -> Result<Vec<Vec<u16>>, ClientError> {
        self.execute(unit_id, call::read_file_records(records))
            .await
    }

    /// 0x15: writes file records.
    pub async fn write_file_records(
        &self,
        unit_id: u8,
        records: &[FileRecordWrite<'_>],
    ) -> Result<(), ClientError> {
        self.execute(unit_id, call::write_file_records(records))
            .await
    }

    /// 0x16: masks one holding register.
    pub async fn mask_write_register(
        &self,
        unit_id: u8,
        address: u16,
        and_mask: u16,
        or_mask: u16,
    ) -> Result<(), ClientError> {
        let call = call::mask_write_register(address, and_mask, or_mask);
        self.execute(unit_id, call).await
    }

    /// 0x17: writes `values` at `write_address`, then reads `read_quantity`
    /// registers from `read_address`.
    pub async fn read_write_multiple_registers(
        &self,
        unit_id: u8,
        read_address: u16,
        read_quantity: u16,
        write_address: u16,
        values: &[u16],
    ) -> Result<Vec<u16>, ClientError> {
        let call =
            call::read_write_multiple_registers(read_address, read_quantity, write_address, values);
        self.execute(unit_id, call).await
    }

    /// 0x18: the FIFO queue at `address`, oldest first.
    pub async fn read_fifo_queue(
        &self,
        unit_id: u8,
        address: u16,
    ) -> Result<Vec<u16>, ClientError> {
        self.execute(unit_id, call::read_fifo_queue(address)).await
    }

    /// 0x2B / 0x0E: device identification objects from `object_id`.
    pub async fn read_device_identification(
        &self,
        unit_id: u8,
        code: ReadDeviceIdCode,
        object_id: u8,
    ) -> Result<DeviceIdentification, ClientError> {
        let call = call::read_device_identification(code, object_id);
        self.execute(unit_id, call).await
    }

    /// A user-defined function code: `data` after the function code out,
    /// the response's data back.
    pub async fn user_defined(
        &self,
        unit_id: u8,
        function: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.execute(unit_id, call::user_defined(function, data))
            .await
    }

    /// Whether the client has ended (connection lost without reconnection,
    /// or reconnection given up).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Why the client ended.
    fn ended_error(&self) -> ClientError {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.as_ref().map_or(
            ClientError::Closed(CloseReason::LocalClose),
            ClientError::again,
        )
    }
}

/// A connection and its session.
struct Link {
    stream: TcpStream,
    session: Client,
    timer: Timer,
}

/// Connects to the first address that answers and completes the handshake.
async fn open(
    addresses: &[SocketAddr],
    config: &ClientConfig,
    server_name: &ServerName<'static>,
) -> Result<Link, ClientError> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let session = Client::new(config, server_name.clone(), Instant::now())?;
                let mut link = Link {
                    stream,
                    session,
                    timer: Timer::new(),
                };
                link.handshake().await?;
                return Ok(link);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::other("the address resolved to nothing"))
        .into())
}

impl Link {
    async fn handshake(&mut self) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::new();
        while !self.session.is_connected() {
            self.turn(&mut buf, &mut out, None).await?;
            while let Some(event) = self.session.poll_event() {
                if let Outcome::Closed(reason) = Outcome::from(event) {
                    return Err(ClientError::Closed(reason));
                }
            }
        }
        Ok(())
    }

    /// Writes what is pending, then waits for bytes, the next deadline, or
    /// (when given) a command.
    async fn turn(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        commands: Option<&mut mpsc::Receiver<Command>>,
    ) -> Result<Option<Command>, ClientError> {
        out.clear();
        self.session.poll_transmit(out);
        if !out.is_empty() {
            self.stream.write_all(out).await?;
        }
        self.timer.set(self.session.poll_timeout());
        let accepting = commands.is_some();
        let next_command = async {
            match commands {
                Some(commands) => commands.recv().await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            read = self.stream.read(buf) => match read? {
                0 => self.session.handle_eof(Instant::now()),
                n => self.session.handle_tls(Instant::now(), &buf[..n]),
            },
            () = self.timer.fired() => self.session.handle_timeout(Instant::now()),
            command = next_command, if accepting => {
                return match command {
                    Some(command) => Ok(Some(command)),
                    // Every handle is gone: close.
                    None => Err(ClientError::Closed(CloseReason::LocalClose)),
                };
            }
        };
        if let Err(error) = result {
            // Deliver the alert we owe the server, then report.
            out.clear();
            self.session.poll_transmit(out);
            let _ = self.stream.write_all(out).await;
            return Err(error.into());
        }
        Ok(None)
    }
}

/// The task that owns the connection.
struct Driver {
    addresses: Vec<SocketAddr>,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    reconnect: Option<Reconnect>,
    commands: mpsc::Receiver<Command>,
    waiting: HashMap<u16, oneshot::Sender<Result<Pdu, ClientError>>>,
    ended: Arc<Mutex<Option<ClientError>>>,
}

impl Driver {
    async fn run(mut self, mut link: Link) {
        loop {
            let error = self.serve(&mut link).await;
            let lost = error.is_some();
            // Every call in flight ends with the error that ended the link.
            let error = error.unwrap_or(ClientError::Closed(CloseReason::LocalClose));
            for (_, reply) in self.waiting.drain() {
                let _ = reply.send(Err(error.again()));
            }
            let reconnected = match self.reconnect {
                Some(policy) if lost => self.reopen(policy).await,
                _ => None,
            };
            match reconnected {
                Some(new_link) => link = new_link,
                None => {
                    tracing::debug!(%error, "client ended");
                    *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                    return;
                }
            }
        }
    }

    /// Runs the link until it ends: `None` when every handle was dropped
    /// (closed with close_notify), the error otherwise.
    async fn serve(&mut self, link: &mut Link) -> Option<ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::with_capacity(16 * 1024);
        let max = self.config.max_outstanding();
        loop {
            let accepting = link.session.in_flight() < max;
            let turn = link
                .turn(&mut buf, &mut out, accepting.then_some(&mut self.commands))
                .await;
            match turn {
                Ok(Some(command)) => {
                    self.send(link, command);
                    // Calls queued meanwhile go out in the same write (and
                    // the same TLS record).
                    while link.session.in_flight() < max {
                        let Ok(command) = self.commands.try_recv() else {
                            break;
                        };
                        self.send(link, command);
                    }
                }
                Ok(None) => {}
                Err(ClientError::Closed(CloseReason::LocalClose)) => {
                    link.session.close(Instant::now());
                    out.clear();
                    link.session.poll_transmit(&mut out);
                    let _ = link.stream.write_all(&out).await;
                    return None;
                }
                Err(error) => {
                    // Responses that came before the failure are handed
                    // over; the calls still waiting get the error.
                    self.settle(link);
                    return Some(error);
                }
            }
            if let Some(reason) = self.settle(link) {
                // The close_notify owed in answer to the server's.
                out.clear();
                link.session.poll_transmit(&mut out);
                let _ = link.stream.write_all(&out).await;
                return Some(ClientError::Closed(reason));
            }
        }
    }

    fn send(&mut self, link: &mut Link, command: Command) {
        let sent = command
            .pdu
            .request()
            .map_err(SessionError::Encode)
            .and_then(|request| {
                link.session.send_request_with_timeout(
                    Instant::now(),
                    command.unit_id,
                    &request,
                    command.timeout,
                )
            });
        match sent {
            Ok(txn) => {
                self.waiting.insert(txn, command.reply);
            }
            Err(error) => {
                let _ = command.reply.send(Err(error.into()));
            }
        }
    }

    /// Hands every outcome to its caller (a caller that gave up is gone:
    /// its outcome is dropped). Returns why the session closed, if it did.
    fn settle(&mut self, link: &mut Link) -> Option<CloseReason> {
        let mut closed = None;
        while let Some(event) = link.session.poll_event() {
            match Outcome::from(event) {
                // A request the session aborted is left waiting: it gets
                // the error that ended the session, which says more.
                Outcome::Call {
                    result: Err(ClientError::Closed(CloseReason::PeerClosed)),
                    ..
                } if link.session.is_closed() => {}
                Outcome::Call {
                    transaction_id,
                    result,
                } => {
                    if let Some(reply) = self.waiting.remove(&transaction_id) {
                        let _ = reply.send(result);
                    }
                }
                Outcome::Closed(reason) => closed = Some(reason),
                Outcome::Connected(_) => {}
            }
        }
        closed
    }

    /// Reconnects with backoff; `None` when attempts ran out or every handle
    /// was dropped meanwhile.
    async fn reopen(&mut self, policy: Reconnect) -> Option<Link> {
        let mut delay = policy.initial_delay;
        let mut attempt = 0u32;
        loop {
            if self.commands.is_closed() {
                return None;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
            match open(&self.addresses, &self.config, &self.server_name).await {
                Ok(link) => {
                    tracing::info!(attempt, "reconnected");
                    return Some(link);
                }
                Err(error) => {
                    tracing::warn!(attempt, %error, "reconnect failed");
                    if policy.max_attempts.is_some_and(|max| attempt >= max) {
                        return None;
                    }
                }
            }
            delay = (delay * 2).min(policy.max_delay);
        }
    }
}
