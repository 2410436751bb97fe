//! The async client: calls from any number of tasks are in flight
//! together on one connection, told apart by transaction id.
//!
//! A driver task owns the connection's life (connecting, reconnecting,
//! closing, the session's deadlines) and carries the calls made while
//! others are in flight. A call made on an idle connection is sent and,
//! while it stays the only one, read on its caller's task, without a
//! hand-off to the driver and back ([`answer`]). Both take the same steps
//! on the connection ([`link`]) under one lock, never held across a wait
//! ([`shared`]).

mod answer;
mod driver;
mod link;
mod shared;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mbaps_codec::Request;
use mbaps_session::AsyncCalls;
use mbaps_session::call::Call;
use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, CloseReason, Pdu, SessionError};
use tokio::net::ToSocketAddrs;
use tokio::sync::{mpsc, oneshot, watch};

use self::answer::Answer;
use self::driver::Driver;
use self::shared::{Sent, Shared, lock, try_lock};
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
        let mut timer = Timer::new();
        let link = link::open(&addresses, &config, &self.server_name, &mut timer).await?;
        let (commands, receiver) = mpsc::channel(config.max_outstanding().max(1));
        let nudge = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::new(
            Arc::clone(&nudge),
            Arc::clone(&idle),
            config.max_outstanding(),
        )));
        let (close, close_requested) = watch::channel(false);
        let timeout = config.request_timeout();
        let driver = Driver {
            addresses,
            config,
            server_name: self.server_name,
            reconnect: self.reconnect,
            commands: receiver,
            close: close_requested,
            shared: Arc::clone(&shared),
            nudge,
            timer,
            held: None,
        };
        tokio::spawn(driver.run(link));
        Ok(TokioClient {
            commands,
            close: Arc::new(close),
            timeout,
            shared,
            idle,
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
/// one comes, is discarded and the connection stays in step. A call
/// abandoned in flight keeps its place until its answer or its deadline;
/// one abandoned before it was sent is not sent.
///
/// The client's task runs on the runtime that connected it, and that
/// runtime must keep running while the client is used: it keeps the
/// deadlines of every call (a call's timeout ends on the client's task,
/// not the caller's).
#[derive(Clone)]
pub struct TokioClient {
    commands: mpsc::Sender<Command>,
    /// Set once, by [`TokioClient::close`]; dropped with the last handle.
    close: Arc<watch::Sender<bool>>,
    timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    /// Whether the connection was idle at its last step (a hint: the
    /// lock decides).
    idle: Arc<AtomicBool>,
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

    /// This handle with another timeout for its calls (clones keep theirs;
    /// at most a day, [`mbaps_session::MAX_TIMEOUT`]: a longer one is taken
    /// as a day).
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
        // Encoded once, here; the session copies the bytes into the output.
        let pdu = Pdu::encode_request(request).map_err(SessionError::InvalidRequest)?;
        let (reply, result) = oneshot::channel();
        let command = Command {
            unit_id,
            pdu,
            timeout,
            reply,
        };
        let answer = match self.send_directly(command) {
            // The session's deadline for the call is its timeout, kept by
            // the driver's timer: no timer of its own per call (the driver
            // answers every call it leaves, however it ends; its runtime
            // must run, as the type's docs say).
            Sent::Directly(transaction_id) => {
                Answer::new(&self.shared, transaction_id, result).await
            }
            // The wait for a place in the queue counts too.
            Sent::ToDriver(command) => {
                let exchange = async {
                    match self.commands.send(command).await {
                        Ok(()) => result.await.ok(),
                        Err(_) => None,
                    }
                };
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(ClientError::Timeout),
                }
            }
        };
        answer.unwrap_or_else(|| Err(self.ended_error()))
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

    /// Sends `command` on this task when the connection is idle (see
    /// [`Shared::send_directly`]); otherwise it is the driver's.
    fn send_directly(&self, command: Command) -> Sent {
        // Calls queued for the driver are not overtaken (one it has taken
        // and not yet sent may be); a driver that is gone sends nothing.
        let queued = self.commands.capacity() < self.commands.max_capacity();
        if !self.idle.load(Ordering::Relaxed) || self.commands.is_closed() {
            return Sent::ToDriver(command);
        }
        let Some(mut shared) = try_lock(&self.shared) else {
            return Sent::ToDriver(command);
        };
        shared.send_directly(command, queued)
    }

    /// Why the client ended.
    fn ended_error(&self) -> ClientError {
        lock(&self.shared)
            .ended
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
