//! The async client: calls from any number of tasks are in flight together
//! on one connection, told apart by transaction id.
//!
//! A driver task owns the connection while calls are in flight: a call
//! hands it its request through a channel and gets its answer through a
//! oneshot, and calls queued together leave in one write. When nothing is
//! in flight the driver parks the connection, and the next call takes it:
//! it writes its request and reads its answer on its own task (the shape
//! of a poller making one call at a time: no hand-off either way), then
//! gives it back. Calls made meanwhile go to the driver, which takes the
//! connection back when the call is over. A call dropped while it holds
//! the connection gives it back, its write finished by the next holder and
//! its answer dropped when it comes.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mbaps_codec::Request;
use mbaps_session::AsyncCalls;
use mbaps_session::call::Call;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{Client, ClientConfig, ClientError, CloseReason, Outcome, Pdu, SessionError};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::drain::try_read_draining;
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
        let shared = Arc::new(Shared::default());
        let driver = Driver {
            addresses,
            config,
            server_name: self.server_name,
            reconnect: self.reconnect,
            commands: receiver,
            close: close_requested,
            waiting: HashMap::new(),
            ended: Arc::clone(&ended),
            shared: Arc::clone(&shared),
            park_timer: Timer::new(),
        };
        tokio::spawn(driver.run(link));
        Ok(TokioClient {
            commands,
            close: Arc::new(close),
            timeout,
            ended,
            shared,
        })
    }
}

/// A request on its way to the driver, with where its result goes.
struct Command {
    unit_id: u8,
    pdu: Pdu,
    timeout: Duration,
    reply: Reply,
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
    /// The connection, while the driver has parked it.
    shared: Arc<Shared>,
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
        let exchange = async {
            // Nothing in flight: this call writes its request and reads
            // its answer itself.
            if let Some(mut lent) = Lent::take(&self.shared) {
                let exchange = lent.link().call(&self.shared, unit_id, &pdu, timeout).await;
                drop(lent);
                return match exchange {
                    Exchange::Answered(result) => result,
                    Exchange::Handed(result) => {
                        result.await.unwrap_or_else(|_| Err(self.ended_error()))
                    }
                };
            }
            let (reply, result) = oneshot::channel();
            let command = Command {
                unit_id,
                pdu,
                timeout,
                reply,
            };
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
    /// Shared with the driver's readiness wait while the connection is
    /// parked ([`Driver::park`]).
    stream: Arc<TcpStream>,
    session: Client,
    timer: Timer,
    buf: Box<[u8]>,
    /// Output, written from `written` on: a call dropped while writing
    /// leaves the rest to whoever holds the connection next.
    out: Vec<u8>,
    written: usize,
    /// What a call that held the connection saw end it, for the driver.
    ended: Option<Ended>,
    /// Calls that held the connection and gave it back before their
    /// answer came: the driver delivers their answers.
    handed: Vec<(u16, Reply)>,
}

/// Where a call's result goes.
type Reply = oneshot::Sender<Result<Pdu, ClientError>>;

/// How a call that held the connection ended.
// The answer travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
enum Exchange {
    /// With its answer (or error).
    Answered(Result<Pdu, ClientError>),
    /// The driver wanted the connection for other calls: the answer comes
    /// through the driver.
    Handed(oneshot::Receiver<Result<Pdu, ClientError>>),
}

/// How a connection ended while a call held it.
enum Ended {
    /// The session's end (its `Closed` event).
    Session(CloseReason),
    /// The socket failed.
    Socket(ClientError),
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
                    stream: Arc::new(stream),
                    session,
                    timer: Timer::new(),
                    buf: vec![0u8; 16 * 1024].into_boxed_slice(),
                    out: Vec::new(),
                    written: 0,
                    ended: None,
                    handed: Vec::new(),
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
        while !self.session.is_connected() {
            self.turn(None, None).await?;
            while let Some(event) = self.session.poll_event() {
                if let Outcome::Closed(reason) = Outcome::from(event) {
                    // The alert we owe the server, then why.
                    let _ = self.flush().await;
                    return Err(ClientError::from(reason));
                }
            }
        }
        // Our last flight (certificate, Finished) goes now: the server
        // authenticates us now, not at our first request.
        self.flush().await?;
        Ok(())
    }

    /// Writes what is left of the output, then what the session has to
    /// send. Cancellation-safe: what was written is counted as it goes.
    async fn flush(&mut self) -> std::io::Result<()> {
        loop {
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
                self.session.poll_transmit(&mut self.out);
                if self.out.is_empty() {
                    return Ok(());
                }
            }
            while self.written < self.out.len() {
                // Written at once (the usual case); waited for only when
                // the socket is full.
                match self.stream.try_write(&self.out[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        self.stream.writable().await?;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// Writes what is pending, then waits for bytes, the next deadline, or
    /// (when given) a command or the request to close.
    async fn turn(
        &mut self,
        commands: Option<&mut mpsc::Receiver<Command>>,
        close: Option<&mut watch::Receiver<bool>>,
    ) -> Result<Turn, ClientError> {
        self.flush().await?;
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
                Some(close) => requested(close).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = receive(&self.stream, &mut self.buf, &mut self.session) => received?,
            () = self.timer.fired() => self.session.handle_timeout(Instant::now()),
            () = close_requested, if watching => return Ok(Turn::Close),
            command = next_command, if accepting => {
                return Ok(command.map_or(Turn::Close, Turn::Command));
            }
        }
        Ok(Turn::Progress)
    }

    /// Makes one call on this task: writes its request, then reads until
    /// its answer comes. Only for a connection lent by the parked driver,
    /// with nothing else in flight (answers to calls given up are dropped).
    /// When the driver wants the connection back (calls were made
    /// meanwhile), the call hands its answer to the driver and returns.
    async fn call(
        &mut self,
        shared: &Shared,
        unit_id: u8,
        pdu: &Pdu,
        timeout: Duration,
    ) -> Exchange {
        let txn = match self
            .session
            .send_request_pdu(Instant::now(), unit_id, pdu, timeout)
        {
            Ok(txn) => txn,
            Err(error) => return Exchange::Answered(Err(error.into())),
        };
        loop {
            if let Err(error) = self.flush().await {
                return Exchange::Answered(Err(self.lost(error)));
            }
            let mut answer = None;
            while let Some(event) = self.session.poll_event() {
                match Outcome::from(event) {
                    Outcome::Call {
                        transaction_id,
                        result,
                    } if transaction_id == txn => answer = Some(result),
                    Outcome::Closed(reason) => self.ended = Some(Ended::Session(reason)),
                    Outcome::Call { .. } | Outcome::Connected(_) | Outcome::Dropped { .. } => {}
                }
            }
            if let Some(result) = answer {
                return Exchange::Answered(result);
            }
            // The session answers every call before it reports its end;
            // this is the last guard against waiting on a closed one.
            if let Some(Ended::Session(reason)) = &self.ended {
                return Exchange::Answered(Err(ClientError::from(reason.clone())));
            }
            let wanted = shared.wanted_notify.notified();
            tokio::pin!(wanted);
            wanted.as_mut().enable();
            if shared.wanted.load(Ordering::Acquire) {
                return self.hand_over(txn);
            }
            self.timer.set(self.session.poll_timeout());
            tokio::select! {
                received = receive(&self.stream, &mut self.buf, &mut self.session) => {
                    if let Err(error) = received {
                        return Exchange::Answered(Err(self.lost(error)));
                    }
                }
                () = self.timer.fired() => self.session.handle_timeout(Instant::now()),
                () = wanted => return self.hand_over(txn),
            }
        }
    }

    /// Leaves call `txn`'s answer to the driver.
    fn hand_over(&mut self, txn: u16) -> Exchange {
        let (reply, result) = oneshot::channel();
        self.handed.push((txn, reply));
        Exchange::Handed(result)
    }

    /// The socket failed during a call: noted for the driver, which ends
    /// the connection (and reconnects, if asked to).
    fn lost(&mut self, error: std::io::Error) -> ClientError {
        let error = ClientError::from(error);
        self.ended.get_or_insert(Ended::Socket(error.clone()));
        error
    }
}

/// Waits for bytes and hands them to the session (or the end of the
/// stream). Waits on the socket's own reader slot: one task at a time
/// reads (the driver, or the call it lent the connection to).
async fn receive(stream: &TcpStream, buf: &mut [u8], session: &mut Client) -> std::io::Result<()> {
    loop {
        poll_fn(|cx| stream.poll_read_ready(cx)).await?;
        match try_read_draining(stream, buf)? {
            Some(0) => session.handle_eof(Instant::now()),
            Some(n) => session.handle_tls(Instant::now(), &buf[..n]),
            None => continue,
        }
        return Ok(());
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

/// Where the parked driver keeps the connection for the next call.
#[derive(Default)]
struct Shared {
    /// The connection while nothing is in flight.
    parked: Mutex<Option<Connection>>,
    /// Told each time a call gives the connection back.
    returned: Notify,
    /// The driver wants the connection back (calls were made while a call
    /// held it); the call holding it is told with `wanted_notify`.
    wanted: AtomicBool,
    wanted_notify: Notify,
    /// The parked driver's waker, while it waits.
    driver: Mutex<Option<Waker>>,
}

impl Shared {
    fn parked(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn driver(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection lent to a call; given back, and the driver told, when
/// the call is over or its future is dropped.
struct Lent<'a> {
    shared: &'a Shared,
    link: Option<Connection>,
}

impl<'a> Lent<'a> {
    /// The connection, if the driver has parked it and nothing is in
    /// flight on it (not even a call given up) and it has not ended.
    fn take(shared: &'a Shared) -> Option<Lent<'a>> {
        let mut parked = shared.parked();
        let idle = parked
            .as_ref()
            .is_some_and(|link| link.session.in_flight() == 0 && link.ended.is_none());
        let link = if idle { parked.take()? } else { return None };
        drop(parked);
        Some(Lent {
            shared,
            link: Some(link),
        })
    }

    fn link(&mut self) -> &mut Connection {
        self.link.as_mut().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            let mut parked = self.shared.parked();
            // The call's reads took the socket's one reader slot: the
            // parked driver's wait on it is set again, with the driver's
            // waker, without waking the driver unless there is something
            // for it (bytes already there, the session's end, a call given
            // up whose deadline it must keep).
            if let Some(driver) = self.shared.driver().as_ref() {
                let quiet = link.ended.is_none()
                    && link.session.in_flight() == 0
                    && link
                        .stream
                        .poll_read_ready(&mut Context::from_waker(driver))
                        .is_pending();
                if !quiet {
                    driver.wake_by_ref();
                }
            }
            *parked = Some(link);
        }
        // For a driver waiting to take it back.
        self.shared.returned.notify_one();
    }
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
    waiting: HashMap<u16, Reply>,
    ended: Arc<Mutex<Option<ClientError>>>,
    shared: Arc<Shared>,
    /// The session's deadline while the connection is parked.
    park_timer: Timer,
}

/// What woke the parked driver.
// The call travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Turn(Turn),
    /// The server sent something while nothing was in flight.
    Readable(std::io::Result<()>),
    /// The session's deadline.
    Deadline,
}

impl Driver {
    async fn run(mut self, mut link: Connection) {
        loop {
            let error = self.serve(link).await;
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
    async fn serve(&mut self, mut link: Connection) -> Option<ClientError> {
        let max = self.config.max_outstanding();
        let mut closing = false;
        // Calls come together (a batch sent, or answered, at once): the
        // driver keeps the connection between batches instead of lending
        // it to the first call of the next, which would hand it back as
        // soon as the others arrive.
        let mut pipelined = false;
        loop {
            let turn = if !closing && !pipelined && link.session.in_flight() == 0 {
                // Nothing in flight: the next call may make its exchange
                // on its own task.
                let (parked, woke) = self.park(link).await;
                link = parked;
                match woke {
                    Ok(Wake::Turn(turn)) => Ok(turn),
                    Ok(Wake::Readable(ready)) => ready
                        .and_then(|()| try_read_draining(&link.stream, &mut link.buf))
                        .map(|read| {
                            match read {
                                Some(0) => link.session.handle_eof(Instant::now()),
                                Some(n) => link.session.handle_tls(Instant::now(), &link.buf[..n]),
                                None => {}
                            }
                            Turn::Progress
                        })
                        .map_err(ClientError::from),
                    Ok(Wake::Deadline) => {
                        link.session.handle_timeout(Instant::now());
                        Ok(Turn::Progress)
                    }
                    Err(error) => Err(error),
                }
            } else {
                let accepting = !closing && link.session.in_flight() < max;
                link.turn(
                    accepting.then_some(&mut self.commands),
                    (!closing).then_some(&mut self.close),
                )
                .await
            };
            match turn {
                Ok(Turn::Command(command)) => {
                    self.send(&mut link, command);
                    // Calls queued meanwhile go out in the same write (and
                    // the same TLS record).
                    while link.session.in_flight() < max {
                        let Ok(command) = self.commands.try_recv() else {
                            break;
                        };
                        self.send(&mut link, command);
                        pipelined = true;
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
                    self.deliver_outcomes(&mut link);
                    return (!closing).then_some(error);
                }
            }
            let closed = match link.ended.take() {
                // A call that held the connection saw it end.
                Some(Ended::Socket(error)) => {
                    self.deliver_outcomes(&mut link);
                    return (!closing).then_some(error);
                }
                Some(Ended::Session(reason)) => Some(reason),
                None => {
                    let (delivered, closed) = self.deliver_outcomes(&mut link);
                    match delivered {
                        0 => {}
                        1 => pipelined = link.session.in_flight() > 0,
                        _ => pipelined = true,
                    }
                    closed
                }
            };
            if let Some(reason) = closed {
                // What the session owes the server (close_notify in answer
                // to its own, or an alert), then the end.
                let _ = link.flush().await;
                return (!closing).then(|| ClientError::from(reason));
            }
        }
    }

    /// Parks the connection, nothing being in flight: a call may take it
    /// ([`Lent`]) and make its exchange on its own task, with no hand-off
    /// to this task and back. Returns it, with what woke the driver, once
    /// there is something for the driver to do and no call holds it.
    async fn park(&mut self, mut link: Connection) -> (Connection, Result<Wake, ClientError>) {
        if let Err(error) = link.flush().await {
            return (link, Err(error.into()));
        }
        let stream = Arc::clone(&link.stream);
        *self.shared.parked() = Some(link);
        let timer = &mut self.park_timer;
        let woke = loop {
            // The session's deadline as a call left it.
            let deadline = self
                .shared
                .parked()
                .as_ref()
                .and_then(|link| link.session.poll_timeout());
            timer.set(deadline);
            // The socket's reader slot holds one waker: it is waited on
            // only while no call holds the connection (checked under the
            // lock a call takes it with), or the call's wake-up would be
            // taken from it. A call that gives the connection back sets
            // the wait again with the driver's waker (kept here).
            let parked = poll_fn(|cx| {
                let parked = self.shared.parked();
                let mut driver = self.shared.driver();
                if !driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *driver = Some(cx.waker().clone());
                }
                match parked.as_ref() {
                    None => Poll::Pending,
                    Some(link) if link.ended.is_some() => Poll::Ready(None),
                    Some(link) if link.session.poll_timeout() != deadline => Poll::Ready(None),
                    Some(_) => stream.poll_read_ready(cx).map(Some),
                }
            });
            let woke = tokio::select! {
                biased;
                () = requested(&mut self.close) => Wake::Turn(Turn::Close),
                command = self.commands.recv() => {
                    Wake::Turn(command.map_or(Turn::Close, Turn::Command))
                }
                ready = parked => match ready {
                    Some(ready) => Wake::Readable(ready),
                    // A call saw the session end: the driver ends it.
                    None if self.shared.parked().as_ref().is_some_and(|l| l.ended.is_some()) => {
                        Wake::Turn(Turn::Progress)
                    }
                    // A call left a new deadline.
                    None => continue,
                },
                () = timer.fired() => Wake::Deadline,
            };
            break woke;
        };
        *self.shared.driver() = None;
        (self.unpark().await, Ok(woke))
    }

    /// Takes the parked connection back, once the call holding it (if
    /// one does) gives it back.
    async fn unpark(&mut self) -> Connection {
        let mut link = loop {
            let returned = self.shared.returned.notified();
            if let Some(link) = self.shared.parked().take() {
                break link;
            }
            // A call holds it: it hands its answer over and gives it back.
            self.shared.wanted.store(true, Ordering::Release);
            self.shared.wanted_notify.notify_waiters();
            returned.await;
        };
        self.shared.wanted.store(false, Ordering::Release);
        for (txn, reply) in link.handed.drain(..) {
            self.waiting.insert(txn, reply);
        }
        link
    }

    /// Hands every outcome to its caller (a caller that gave up is gone:
    /// its outcome is dropped). Returns how many were handed over, and how
    /// the session ended, if it did.
    fn deliver_outcomes(&mut self, link: &mut Connection) -> (usize, Option<CloseReason>) {
        let mut closed = None;
        let mut delivered = 0;
        while let Some(event) = link.session.poll_event() {
            match Outcome::from(event) {
                Outcome::Call {
                    transaction_id,
                    result,
                } => {
                    if let Some(reply) = self.waiting.remove(&transaction_id) {
                        let _ = reply.send(result);
                        delivered += 1;
                    }
                }
                Outcome::Closed(reason) => closed = Some(reason),
                Outcome::Connected(_) | Outcome::Dropped { .. } => {}
            }
        }
        (delivered, closed)
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
