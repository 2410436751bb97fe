//! One device behind the gateway on tokio: a task that owns the
//! connection and runs [`Upstream`] (the sans-IO queue, transaction ids and
//! answers) on it. Front sessions hand it requests through a bounded
//! channel, each with the [`Reply`] its answer goes back to the session
//! with: no task per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::upstream::rtu::{LineCounters, RtuLine, RtuSettings};
use mbaps_session::upstream::{Failure, Line, MAX_UPSTREAM_QUEUE, Requester, Ticket, Upstream};
use mbaps_session::{Client, ClientConfig, Pdu};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{GatewayLog, LatencyObserver, LineObserver, Observer, Routed};
use crate::serial::{SerialLine, SerialPort};
use crate::stream::DeviceStream;
use crate::timer::Timer;

/// A request on its way to the device's task.
pub(crate) struct Submission {
    pub(crate) requester: Requester,
    /// The unit id the device is addressed with.
    pub(crate) unit_id: u8,
    pub(crate) pdu: Pdu,
    /// Where its answer goes, and what its failure is logged with.
    pub(crate) routed: Routed,
}

/// The front's end of a device: where requests go.
#[derive(Clone)]
pub(crate) struct DeviceHandle {
    submissions: mpsc::Sender<Submission>,
    /// The device's address, for the log.
    pub(crate) address: Arc<str>,
}

impl DeviceHandle {
    /// Hands one request to the device's task, whose answer goes back
    /// with its reply; one that cannot go (the channel full: 0x06; the
    /// task gone: 0x0A) is answered at once, and logged to `observer`.
    pub(crate) fn submit(&self, submission: Submission, observer: &Observer) {
        let (submission, failure) = match self.submissions.try_send(submission) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(submission)) => (submission, Failure::QueueFull),
            Err(mpsc::error::TrySendError::Closed(submission)) => {
                (submission, Failure::Unreachable)
            }
        };
        submission
            .routed
            .fail(observer, Some(&self.address), failure);
    }
}

/// How the task reaches the device.
pub(crate) enum Dialer {
    /// Modbus/TCP, plain or TLS, at `address` (`host:port`, resolved at
    /// each attempt: a device's name may move).
    Modbus {
        address: String,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    },
    /// RTU frames over TCP to a converter at `address`.
    RtuOverTcp {
        address: String,
        settings: RtuSettings,
    },
    /// A serial line, reopened after it fails.
    Serial {
        line: SerialLine,
        settings: RtuSettings,
    },
}

impl Dialer {
    /// The address or the port, for the log and the metrics.
    fn name(&self) -> String {
        match self {
            Dialer::Modbus { address, .. } | Dialer::RtuOverTcp { address, .. } => address.clone(),
            Dialer::Serial { line, .. } => line.path.display().to_string(),
        }
    }

    /// Opens the connection or the port, within `timeout`.
    fn dial(&self, timeout: Duration) -> JoinHandle<std::io::Result<DeviceStream>> {
        match self {
            Dialer::Modbus { address, .. } | Dialer::RtuOverTcp { address, .. } => {
                let address = address.clone();
                tokio::spawn(async move { dial(address, timeout).await.map(DeviceStream::Tcp) })
            }
            Dialer::Serial { line, .. } => {
                let line = line.clone();
                tokio::spawn(async move {
                    SerialPort::open(&line)
                        .map(DeviceStream::Serial)
                        .map_err(std::io::Error::other)
                })
            }
        }
    }

    /// The link that runs on a connection opened at `now`.
    fn link(&self, now: Instant) -> Result<Line, mbaps_session::SessionError> {
        Ok(match self {
            Dialer::Modbus {
                config,
                server_name,
                ..
            } => Client::new(config, server_name.clone(), now)?.into(),
            Dialer::RtuOverTcp { settings, .. } | Dialer::Serial { settings, .. } => {
                RtuLine::new(*settings, now).into()
            }
        })
    }
}

/// Starts the device's task; it ends when every [`DeviceHandle`] is gone
/// (the gateway dropped), after answering what it holds.
pub(crate) fn start(
    dialer: Dialer,
    upstream: Upstream,
    opened: Option<SerialPort>,
    observer: Observer,
    latency: Option<LatencyObserver>,
    line: Option<LineObserver>,
) -> DeviceHandle {
    // The channel holds what the task has not taken yet; the task takes
    // eagerly, so the upstream's own queue (fair between sessions) is the
    // bound that answers 0x06, never the channel: what is in it at once is
    // bounded by the front (its sessions times their windows).
    let (submissions, receiver) = mpsc::channel(MAX_UPSTREAM_QUEUE);
    let address: Arc<str> = Arc::from(dialer.name().as_str());
    let task = DeviceTask {
        upstream,
        dialer,
        opened: opened.map(DeviceStream::Serial),
        submissions: receiver,
        waiting: HashMap::new(),
        next_ticket: 0,
        observer,
        latency,
        line,
        reported: LineCounters::default(),
        address: Arc::clone(&address),
    };
    tokio::spawn(task.run());
    DeviceHandle {
        submissions,
        address,
    }
}

struct DeviceTask {
    upstream: Upstream,
    dialer: Dialer,
    /// The serial port opened when the gateway started: the first
    /// connection.
    opened: Option<DeviceStream>,
    submissions: mpsc::Receiver<Submission>,
    /// The requests submitted and not yet answered, by ticket.
    waiting: HashMap<Ticket, (Routed, Instant)>,
    next_ticket: u64,
    observer: Observer,
    latency: Option<LatencyObserver>,
    /// Where an RTU line's counts go, and what it was told last.
    line: Option<LineObserver>,
    reported: LineCounters,
    /// The device's address, for the log and the metrics.
    address: Arc<str>,
}

impl DeviceTask {
    async fn run(mut self) {
        let mut stream: Option<DeviceStream> = None;
        let mut dialing: Option<JoinHandle<std::io::Result<DeviceStream>>> = None;
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        let mut timer = Timer::new();
        loop {
            if self.upstream.poll_connect(Instant::now()) {
                match self.opened.take() {
                    Some(opened) => self.connected(opened, &mut stream),
                    None => dialing = Some(self.dialer.dial(self.upstream.limits().timeout)),
                }
            }
            out.clear();
            self.upstream.poll_transmit(&mut out);
            if !out.is_empty()
                && let Some(connection) = stream.as_mut()
                && let Err(error) = connection.write(&out, self.upstream.limits().timeout).await
            {
                self.upstream.handle_error(Instant::now(), error.kind());
            }
            if !self.upstream.has_connection() {
                stream = None;
            }
            self.deliver_answers();
            timer.set(self.upstream.poll_timeout());
            let read = async {
                match stream.as_mut() {
                    Some(connection) => connection.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            };
            let dialed = async {
                match dialing.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                submission = self.submissions.recv() => match submission {
                    Some(submission) => {
                        let busy = self.upstream.in_flight() > 0;
                        self.submit(submission);
                        if busy {
                            // Front sessions hand requests over from tasks
                            // of their own. With the device busy anyway, one
                            // turn of the runtime lets those under way
                            // arrive and share a write (at 16 in flight,
                            // about 5 a write instead of 2); an idle device
                            // gets its request at once.
                            tokio::task::yield_now().await;
                        }
                        while let Ok(more) = self.submissions.try_recv() {
                            self.submit(more);
                        }
                    }
                    None => {
                        // The gateway is gone: close, answer, end.
                        self.upstream.close(Instant::now());
                        out.clear();
                        self.upstream.poll_transmit(&mut out);
                        if let Some(connection) = stream.as_mut() {
                            let _ = connection.write(&out, Duration::from_secs(1)).await;
                        }
                        self.deliver_answers();
                        return;
                    }
                },
                read = read => match read {
                    Ok(0) => self.upstream.handle_eof(Instant::now()),
                    Ok(n) => self.upstream.handle_bytes(Instant::now(), &buf[..n]),
                    Err(error) => self.upstream.handle_error(Instant::now(), error.kind()),
                },
                dialed = dialed => {
                    dialing = None;
                    match dialed {
                        Ok(Ok(connection)) => self.connected(connection, &mut stream),
                        Ok(Err(error)) => {
                            tracing::debug!(device = %self.address, %error, "connect failed");
                            self.upstream.connect_failed(Instant::now());
                        }
                        Err(_) => self.upstream.connect_failed(Instant::now()),
                    }
                }
                () = timer.fired() => self.upstream.handle_timeout(Instant::now()),
            }
        }
    }

    /// A connection is open: its link starts on it.
    fn connected(&mut self, connection: DeviceStream, stream: &mut Option<DeviceStream>) {
        let now = Instant::now();
        match self.dialer.link(now) {
            Ok(link) => {
                *stream = Some(connection);
                self.upstream.connected(now, link);
            }
            Err(error) => {
                tracing::warn!(device = %self.address, %error, "cannot start a session to the device");
                self.upstream.connect_failed(now);
            }
        }
    }

    fn submit(&mut self, submission: Submission) {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let now = Instant::now();
        self.waiting.insert(ticket, (submission.routed, now));
        self.upstream.submit(
            now,
            submission.requester,
            ticket,
            submission.unit_id,
            submission.pdu,
        );
    }

    /// Logs the connection's changes, then hands every answer back to its
    /// front session (one whose session has ended still records it: a
    /// write carried out for a client that has gone is on the audit
    /// trail). In that order: a client answered 0x0B for a dropped answer
    /// finds the drop logged already.
    fn deliver_answers(&mut self) {
        while let Some(event) = self.upstream.poll_link_event() {
            let device = Arc::clone(&self.address);
            super::log(&self.observer, &GatewayLog::Link { device, event });
        }
        while let Some(answer) = self.upstream.poll_completion() {
            let Some((routed, submitted)) = self.waiting.remove(&answer.ticket) else {
                continue;
            };
            match answer.result {
                Ok(pdu) => {
                    if let Some(latency) = &self.latency {
                        latency(&self.address, submitted.elapsed());
                    }
                    routed.reply.send(Ok(pdu));
                }
                Err(failure) => {
                    routed.fail(&self.observer, Some(&self.address), failure);
                }
            }
        }
        if let (Some(line), Some(counted)) = (&self.line, self.upstream.line_counters())
            && counted != self.reported
        {
            line(&self.address, counted.since(self.reported));
            self.reported = counted;
        }
    }
}

/// Opens a TCP connection to the first address of `address` that answers,
/// within `timeout`.
async fn dial(address: String, timeout: Duration) -> std::io::Result<TcpStream> {
    let attempt = async {
        let mut last = None;
        for resolved in tokio::net::lookup_host(address.as_str()).await? {
            match TcpStream::connect::<SocketAddr>(resolved).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
