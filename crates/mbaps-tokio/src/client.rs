//! The async client: a driver task owns the connection; calls from any
//! number of tasks are in flight together, told apart by transaction id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_codec::Request;
use mbaps_session::AsyncCalls;
use mbaps_session::call::Call;
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

    /// Sends any `request` to `unit_id` and waits for its response PDU, at
    /// most the timeout (an exception response is
    /// [`ClientError::Exception`]). The typed calls are the methods of
    /// [`AsyncCalls`].
    pub async fn request(&self, unit_id: u8, request: &Request<'_>) -> Result<Pdu, ClientError> {
        self.request_with_timeout(unit_id, request, self.timeout)
            .await
    }

    /// [`TokioClient::request`] with this call's own timeout.
    pub async fn request_with_timeout(
        &self,
        unit_id: u8,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Pdu, ClientError> {
        // Encoded once, here; the driver copies the bytes into the output.
        let pdu = Pdu::encode_request(request).map_err(SessionError::InvalidRequest)?;
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

    /// Whether the client has ended (connection lost without reconnection,
    /// or reconnection given up).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Why the client ended.
    fn ended_error(&self) -> ClientError {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended
            .clone()
            .unwrap_or(ClientError::Closed(CloseReason::LocalClose))
    }
}

/// The typed calls ([`AsyncCalls`]: one method per function code) run on
/// [`TokioClient::request`].
impl AsyncCalls for TokioClient {
    async fn call<'a, T: Send + 'a>(
        &'a self,
        unit_id: u8,
        call: Call<'a, T>,
    ) -> Result<T, ClientError> {
        call.output(self.request(unit_id, call.request()).await?)
    }
}

/// A connection and its session.
struct Connection {
    stream: TcpStream,
    session: Client,
    timer: Timer,
}

/// Connects to the first address that answers and completes the handshake.
async fn open(
    addresses: &[SocketAddr],
    config: &ClientConfig,
    server_name: &ServerName<'static>,
) -> Result<Connection, ClientError> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let session = Client::new(config, server_name.clone(), Instant::now())?;
                let mut link = Connection {
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

impl Connection {
    async fn handshake(&mut self) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::new();
        while !self.session.is_connected() {
            self.turn(&mut buf, &mut out, None).await?;
            while let Some(event) = self.session.poll_event() {
                if let Outcome::Closed(reason) = Outcome::from(event) {
                    // The alert we owe the server, then why.
                    let _ = self.flush(&mut out).await;
                    return Err(ClientError::from(reason));
                }
            }
        }
        // Our last flight (certificate, Finished) goes now: the server
        // authenticates us now, not at our first request.
        self.flush(&mut out).await?;
        Ok(())
    }

    /// Writes what the session has to send.
    async fn flush(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        out.clear();
        self.session.poll_transmit(out);
        if !out.is_empty() {
            self.stream.write_all(out).await?;
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
        self.flush(out).await?;
        self.timer.set(self.session.poll_timeout());
        let accepting = commands.is_some();
        let next_command = async {
            match commands {
                Some(commands) => commands.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
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
    async fn run(mut self, mut link: Connection) {
        loop {
            let error = self.serve(&mut link).await;
            let lost = error.is_some();
            // Every call in flight ends with the error that ended the link.
            let error = error.unwrap_or(ClientError::Closed(CloseReason::LocalClose));
            for (_, reply) in self.waiting.drain() {
                let _ = reply.send(Err(error.clone()));
            }
            let reconnected = match self.reconnect {
                Some(policy) if lost => self.reopen(policy).await,
                _ => None,
            };
            match reconnected {
                Some(reopened) => link = reopened,
                None => {
                    tracing::debug!(%error, "client ended");
                    *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                    return;
                }
            }
        }
    }

    /// Runs the connection until it ends: `None` when every handle was
    /// dropped (closed with close_notify), the error otherwise.
    async fn serve(&mut self, link: &mut Connection) -> Option<ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::new();
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
                    let _ = link.flush(&mut out).await;
                    return None;
                }
                // The connection is gone: responses that came before are
                // handed over; the calls still waiting get the error.
                Err(error) => {
                    self.settle(link);
                    return Some(error);
                }
            }
            if let Some(reason) = self.settle(link) {
                // What the session owes the server (close_notify in answer
                // to its own, or an alert), then the end.
                let _ = link.flush(&mut out).await;
                return Some(ClientError::from(reason));
            }
        }
    }

    fn send(&mut self, link: &mut Connection, command: Command) {
        let sent = link.session.send_request_pdu(
            Instant::now(),
            command.unit_id,
            &command.pdu,
            command.timeout,
        );
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
    /// its outcome is dropped). Returns how the session ended, if it did.
    fn settle(&mut self, link: &mut Connection) -> Option<CloseReason> {
        let mut closed = None;
        while let Some(event) = link.session.poll_event() {
            match Outcome::from(event) {
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
    async fn reopen(&mut self, policy: Reconnect) -> Option<Connection> {
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
