//! The async client: a driver task owns the connection; calls from any
//! number of tasks are in flight together, told apart by transaction id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbaps_codec::Request;
use mbaps_session::AsyncCalls;
use mbaps_session::call::Call;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{Client, ClientConfig, ClientError, CloseReason, Outcome, Pdu, SessionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot, watch};

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
        let (close, close_requested) = watch::channel(false);
        let timeout = config.request_timeout();
        let driver = Driver {
            addresses,
            config,
            server_name: self.server_name,
            reconnect: self.reconnect,
            commands: receiver,
            close: close_requested,
            waiting: HashMap::new(),
            ended: Arc::clone(&ended),
        };
        tokio::spawn(driver.run(link));
        Ok(TokioClient {
            commands,
            close: Arc::new(close),
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
    /// Set once, by [`TokioClient::close`]; dropped with the last handle.
    close: Arc<watch::Sender<bool>>,
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

    /// Closes the connection, for every clone: calls in flight end with
    /// [`ClientError::Closed`] ([`CloseReason::LocalClose`]), close_notify
    /// is sent, and the future ends once the server answered with its own
    /// (or the session's close timeout passed, or the connection was gone
    /// already). Later calls fail with the same error; a client set to
    /// reconnect stops. Dropping every clone closes the same way, but in
    /// the background: a program about to exit awaits this, so that the
    /// server sees a clean close.
    pub async fn close(&self) {
        self.close.send_replace(true);
        // The driver holds the receiving end until the session is over.
        self.commands.closed().await;
    }

    /// Whether the client has ended (closed, connection lost without
    /// reconnection, or reconnection given up).
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
    /// What the session gave to send, from `written` on. The socket takes
    /// it within the turns, beside everything else: a server that stops
    /// reading holds up the output, never the deadlines or a close.
    out: Vec<u8>,
    written: usize,
    /// How long the session's last words (an alert, close_notify) and the
    /// handshake's last flight may take to go out.
    last_words: Duration,
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
                    out: Vec::new(),
                    written: 0,
                    last_words: config.timers().close_timeout,
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
        while !self.session.is_connected() {
            self.turn(&mut buf, None, None::<Pin<&mut std::future::Pending<()>>>)
                .await?;
            while let Some(event) = self.session.poll_event() {
                if let Outcome::Closed(reason) = Outcome::from(event) {
                    // The alert we owe the server, then why.
                    let _ = self.write_owed().await;
                    return Err(ClientError::from(reason));
                }
            }
        }
        // Our last flight (certificate, Finished) goes now: the server
        // authenticates us now, not at our first request.
        self.write_owed().await?;
        Ok(())
    }

    /// Takes what the session has to send, once the last of it is out.
    fn take_output(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            self.session.poll_transmit(&mut self.out);
        }
    }

    /// Writes everything the session has to send, within `last_words`: for
    /// the last flight of a handshake and the last words of a session,
    /// when there is nothing else to wait for.
    async fn write_owed(&mut self) -> std::io::Result<()> {
        let limit = self.last_words;
        let write = async {
            loop {
                self.take_output();
                if self.written == self.out.len() {
                    return Ok(());
                }
                self.written += written(self.stream.write(&self.out[self.written..]).await)?;
            }
        };
        tokio::time::timeout(limit, write)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the server took nothing we sent for {limit:?}"),
                ))
            })
    }

    /// Writes some of what is pending, or waits for bytes, the next
    /// deadline, or (when given) a command or the request to close.
    async fn turn(
        &mut self,
        buf: &mut [u8],
        commands: Option<&mut mpsc::Receiver<Command>>,
        close: Option<Pin<&mut (impl Future<Output = ()> + ?Sized)>>,
    ) -> Result<Turn, ClientError> {
        self.take_output();
        self.timer.set(self.session.poll_timeout());
        let (accepting, watching) = (commands.is_some(), close.is_some());
        let next_command = async {
            match commands {
                Some(commands) => commands.recv().await,
                None => std::future::pending().await,
            }
        };
        let close_requested = async {
            match close {
                Some(close) => close.await,
                None => std::future::pending().await,
            }
        };
        let Connection {
            stream,
            session,
            timer,
            out,
            written: sent,
            ..
        } = self;
        let writing = *sent < out.len();
        let (mut reader, mut writer) = stream.split();
        // In this order, not a random one per turn (which costs a random
        // number each turn): a close or a deadline comes first, whatever a
        // server keeps sending or stops taking, and a call goes out before
        // more is read (calls are bounded by the calls in flight, so
        // reading is never starved).
        tokio::select! {
            biased;
            () = close_requested, if watching => return Ok(Turn::Close),
            () = timer.fired() => session.handle_timeout(Instant::now()),
            command = next_command, if accepting => {
                return Ok(command.map_or(Turn::Close, Turn::Command));
            }
            write = writer.write(&out[*sent..]), if writing => *sent += written(write)?,
            read = reader.read(buf) => match read? {
                0 => session.handle_eof(Instant::now()),
                n => session.handle_tls(Instant::now(), &buf[..n]),
            },
        }
        Ok(Turn::Progress)
    }
}

/// The bytes a write took; none is an error (the socket will take no more).
fn written(write: std::io::Result<usize>) -> std::io::Result<usize> {
    match write? {
        0 => Err(std::io::ErrorKind::WriteZero.into()),
        n => Ok(n),
    }
}

/// What one turn of a connection brought.
// The call travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
enum Turn {
    /// Bytes, the end of the stream, or a deadline: handed to the session.
    Progress,
    /// A call to send.
    Command(Command),
    /// [`TokioClient::close`] was called, or every handle is gone.
    Close,
}

/// Completes once [`TokioClient::close`] is called or every handle is
/// gone (the sender with them).
async fn requested(close: &mut watch::Receiver<bool>) {
    let _ = close.wait_for(|&requested| requested).await;
}

/// The task that owns the connection.
struct Driver {
    addresses: Vec<SocketAddr>,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    reconnect: Option<Reconnect>,
    commands: mpsc::Receiver<Command>,
    close: watch::Receiver<bool>,
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

    /// Runs the connection until it ends: `None` when it was closed on
    /// our side ([`TokioClient::close`], or every handle dropped: calls in
    /// flight aborted, close_notify sent, the server's awaited), the error
    /// otherwise.
    async fn serve(&mut self, link: &mut Connection) -> Option<ClientError> {
        let mut buf = vec![0u8; 16 * 1024];
        let max = self.config.max_outstanding();
        let mut closing = false;
        // Made once: a wait on the watch made anew each turn would
        // register with it and leave it again every time.
        let mut close = self.close.clone();
        let mut close_requested = pin!(requested(&mut close));
        loop {
            let accepting = !closing && link.session.in_flight() < max;
            let turn = link
                .turn(
                    &mut buf,
                    accepting.then_some(&mut self.commands),
                    (!closing).then_some(close_requested.as_mut()),
                )
                .await;
            match turn {
                Ok(Turn::Command(command)) => {
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
                Ok(Turn::Progress) => {}
                Ok(Turn::Close) => {
                    closing = true;
                    link.session.close(Instant::now());
                }
                // The connection is gone: responses that came before are
                // handed over; the calls still waiting get the error.
                Err(error) => {
                    self.deliver_outcomes(link);
                    return (!closing).then_some(error);
                }
            }
            if let Some(reason) = self.deliver_outcomes(link) {
                // What the session owes the server (close_notify in answer
                // to its own, or an alert), then the end. A close of ours
                // had its close timeout for that already.
                if !closing {
                    let _ = link.write_owed().await;
                }
                return (!closing).then(|| ClientError::from(reason));
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
    fn deliver_outcomes(&mut self, link: &mut Connection) -> Option<CloseReason> {
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
                Outcome::Connected(_) | Outcome::Dropped { .. } => {}
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
            // A close ends the waiting and the attempt alike.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = requested(&mut self.close) => return None,
            }
            attempt += 1;
            let opened = tokio::select! {
                opened = open(&self.addresses, &self.config, &self.server_name) => opened,
                () = requested(&mut self.close) => return None,
            };
            match opened {
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
