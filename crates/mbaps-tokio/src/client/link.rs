//! One connection and its session, moved by steps that never wait: the
//! driver and a calling task take the same steps, each under the shared
//! lock, and wait for the socket outside it.

use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{Client, ClientConfig, ClientError, Outcome};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Command;
use super::driver::at_deadline;
use crate::drain::try_read_draining;
use crate::timer::Timer;

/// The most reads at a deadline, of what came before it.
const DEADLINE_READS: usize = 8;

/// The most bytes one read takes.
const READ_BUFFER: usize = 16 * 1024;

/// A connection and its session.
pub(super) struct Link {
    /// Shared with the driver, which waits on its readiness without the
    /// lock.
    pub(super) stream: Arc<TcpStream>,
    pub(super) session: Client,
    /// What the session gave to send, from `written` on. The socket takes
    /// it within the turns, beside everything else: a server that stops
    /// reading holds up the output, never the deadlines or a close.
    out: Vec<u8>,
    written: usize,
    buf: Box<[u8]>,
    /// How long the session's last words (an alert, close_notify) and the
    /// handshake's last flight may take to go out.
    last_words: Duration,
}

/// Connects to the first address that answers and completes the handshake.
pub(super) async fn open(
    addresses: &[SocketAddr],
    config: &ClientConfig,
    server_name: &ServerName<'static>,
    timer: &mut Timer,
) -> Result<Link, ClientError> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let session = Client::new(config, server_name.clone(), Instant::now())?;
                let mut link = Link {
                    stream: Arc::new(stream),
                    session,
                    out: Vec::new(),
                    written: 0,
                    buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
                    last_words: config.timers().close_timeout,
                };
                link.handshake(timer).await?;
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
    async fn handshake(&mut self, timer: &mut Timer) -> Result<(), ClientError> {
        let stream = Arc::clone(&self.stream);
        while !self.session.is_connected() {
            self.take_output();
            timer.set(self.session.poll_timeout());
            let due = timer.armed();
            let waited = wait(
                &stream,
                timer,
                self.writing(),
                None,
                None,
                None::<Pin<&mut std::future::Pending<()>>>,
            )
            .await?;
            let now = match waited {
                Waited::Deadline => at_deadline(due),
                _ => Instant::now(),
            };
            self.step(waited, now)?;
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

    /// Takes the step the socket or the clock is ready for (a close or a
    /// call is the driver's to take).
    pub(super) fn step(&mut self, waited: Waited, now: Instant) -> std::io::Result<()> {
        match waited {
            Waited::Deadline => {
                // What came before the deadline counts: an answer whose
                // wake went to a call left unpolled is in the socket (a
                // few buffers of it: a flood does not hold the deadline).
                for _ in 0..DEADLINE_READS {
                    if !self.read_some(now)? {
                        break;
                    }
                }
                self.session.handle_timeout(now);
            }
            Waited::Writable => self.write_some()?,
            Waited::Readable => {
                self.read_some(now)?;
            }
            Waited::Close | Waited::Command(_) | Waited::Nudged => {}
        }
        Ok(())
    }

    /// Takes what the session has to send, once the last of it is out.
    pub(super) fn take_output(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            self.session.poll_transmit(&mut self.out);
        }
    }

    /// Whether output waits for the socket.
    pub(super) fn writing(&self) -> bool {
        self.written < self.out.len()
    }

    /// Writes what the session has to send, as far as the socket takes it
    /// without waiting.
    pub(super) fn write_some(&mut self) -> std::io::Result<()> {
        loop {
            self.take_output();
            if !self.writing() {
                return Ok(());
            }
            match self.stream.try_write(&self.out[self.written..]) {
                // The socket will take no more.
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    }

    /// Hands the session what the socket has, without waiting: `false`
    /// when it had nothing (its readiness is cleared then, and after a
    /// short read).
    pub(super) fn read_some(&mut self, now: Instant) -> std::io::Result<bool> {
        match try_read_draining(&self.stream, &mut self.buf)? {
            None => Ok(false),
            Some(0) => {
                self.session.handle_eof(now);
                Ok(true)
            }
            Some(n) => {
                self.session.handle_tls(now, &self.buf[..n]);
                Ok(true)
            }
        }
    }

    /// Writes everything the session has to send, within `last_words`: for
    /// the last flight of a handshake and the last words of a session,
    /// when there is nothing else to wait for.
    pub(super) async fn write_owed(&mut self) -> std::io::Result<()> {
        let limit = self.last_words;
        let write = async {
            loop {
                self.write_some()?;
                if !self.writing() {
                    return Ok(());
                }
                self.stream.writable().await?;
            }
        };
        tokio::time::timeout(limit, write)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!("the server took nothing we sent for {limit:?}"),
                ))
            })
    }
}

/// What a wait ended with.
// The call travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
pub(super) enum Waited {
    /// [`TokioClient::close`](super::TokioClient::close) was called, or
    /// every handle is gone.
    Close,
    /// The session's next deadline.
    Deadline,
    /// A call to send (`None`: every handle is gone).
    Command(Option<Command>),
    /// A caller's step left work for the driver.
    Nudged,
    /// The socket takes output.
    Writable,
    /// The socket has bytes, or its end.
    Readable,
}

/// Waits for the next deadline, the socket (for writing too when
/// `writing`), and, when given, a call, a caller's nudge or the request to
/// close.
///
/// The wait on reading is the socket's single reader slot (tokio's
/// `poll_read_ready`), the one a calling task takes while it is the only
/// one waiting for an answer: it is woken instead of this task, which
/// takes the slot back at its next wait.
pub(super) async fn wait(
    stream: &TcpStream,
    timer: &mut Timer,
    writing: bool,
    commands: Option<&mut mpsc::Receiver<Command>>,
    nudge: Option<&AtomicBool>,
    close: Option<Pin<&mut (impl Future<Output = ()> + ?Sized)>>,
) -> std::io::Result<Waited> {
    let (accepting, watching) = (commands.is_some(), close.is_some());
    // A flag, set before the driver's task is woken: looked at on every
    // poll, it costs no registration per wait (as a `Notify` would).
    let nudged = poll_fn(|_| match nudge {
        Some(nudge) if nudge.swap(false, Ordering::AcqRel) => Poll::Ready(()),
        _ => Poll::Pending,
    });
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
    // In this order, not a random one per wait (which costs a random
    // number each time): a close or a deadline comes first, whatever a
    // server keeps sending or stops taking, and a call goes out before
    // more is read (calls are bounded by the calls in flight, so reading
    // is never starved).
    tokio::select! {
        biased;
        () = close_requested, if watching => Ok(Waited::Close),
        () = timer.fired() => Ok(Waited::Deadline),
        command = next_command, if accepting => Ok(Waited::Command(command)),
        () = nudged => Ok(Waited::Nudged),
        ready = poll_fn(|cx| stream.poll_write_ready(cx)), if writing => {
            ready.map(|()| Waited::Writable)
        }
        ready = poll_fn(|cx| stream.poll_read_ready(cx)) => ready.map(|()| Waited::Readable),
    }
}
