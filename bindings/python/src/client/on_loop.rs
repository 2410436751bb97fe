//! `mbaps.Client`: the sans-IO client session ([`mbaps_session::Client`])
//! driven by the asyncio event loop itself, as the protocol of one of the
//! loop's own transports. A call encodes and encrypts its request and
//! hands it to the transport on the loop's thread; the bytes the transport
//! reads are decrypted and matched there, and each response settles its
//! call's future there. No call crosses to another thread: the first
//! client hopped to the tokio runtime and back on every call (two thread
//! wake-ups) and was slower than pymodbus for it.
//!
//! The driver is behind a mutex that is never held while Python code
//! runs: each entry point works on the session under the lock and collects
//! what Python must then do ([`Effects`]: bytes to write, futures to
//! settle, a flush or a timer to schedule, the transport to close), done
//! once the lock is released. Nothing Python does can re-enter the driver
//! while it is borrowed.

// An adapter reads the clock, and hands the time to the sans-IO session.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use mbaps_codec::ReadDeviceIdCode;
use mbaps_session::{ClientError, ClientEvent, CloseReason};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PySlice};

use super::{
    Answer, Call, Failure, Settings, Step, checked, how_many, quantity, to_python, unit, word,
    words,
};
use crate::errors::raise;

/// What the client and its protocol share: the settings, and the session
/// once the connect has started on a loop.
struct Shared {
    settings: Settings,
    connection: OnceLock<Connection>,
}

/// A session on one event loop.
struct Connection {
    /// The loop, its `create_future` (one lookup per call saved), the
    /// thread it runs on (the only one that may use the client: asyncio's
    /// futures and transports are not thread-safe).
    event_loop: Py<PyAny>,
    create_future: Py<PyAny>,
    thread: ThreadId,
    /// The same moment on both clocks, to place the session's deadlines
    /// (`Instant`) on the loop's (`loop.time()`).
    epoch: (Instant, f64),
    driver: Mutex<Driver>,
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Driver> {
        // A panic cannot leave the driver half-changed in a way that
        // matters more than losing the client: go on with it.
        self.driver.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `at` on the loop's clock.
    fn loop_time(&self, at: Instant) -> f64 {
        self.epoch.1 + at.saturating_duration_since(self.epoch.0).as_secs_f64()
    }
}

/// The session and the calls on it.
struct Driver {
    session: mbaps_session::Client,
    phase: Phase,
    /// The transport, from `connection_made` until the connection is lost.
    transport: Option<Py<PyAny>>,
    /// Calls in flight, by transaction id.
    waiting: HashMap<u16, Waiter>,
    /// Calls beyond what the session keeps in flight, oldest first: each
    /// is sent when a slot frees, or fails if its time is up by then.
    queued: VecDeque<Queued>,
    max_in_flight: usize,
    /// Futures of `close()`, settled when the session is over.
    closers: Vec<Py<PyAny>>,
    /// Whether a flush is scheduled: the session holds the bytes until
    /// then, so that calls made in one turn of the loop go out in one
    /// write.
    flush_scheduled: bool,
    /// The loop's timer for the session's next deadline.
    timer: Option<(Instant, Py<PyAny>)>,
    timeout: Duration,
    out: Vec<u8>,
}

/// Where the session is.
enum Phase {
    /// The handshake is under way; the connect waits on this future once
    /// it has asked for it.
    Handshaking(Option<Py<PyAny>>),
    /// Calls may be made.
    Open,
    /// Over (closed, failed, its connection lost): every later call fails
    /// with this.
    Ended(ClientError),
}

/// A call in flight.
struct Waiter {
    future: Py<PyAny>,
    unit: u8,
    call: Call,
}

/// A call waiting for a slot.
struct Queued {
    future: Py<PyAny>,
    unit: u8,
    call: Call,
    deadline: Instant,
}

/// When the bytes of a call go out.
#[derive(Clone, Copy, PartialEq)]
enum Flush {
    /// Now: nothing else is in flight, so latency is all that counts.
    Now,
    /// At the loop's next turn, with the other calls made meanwhile.
    Soon,
}

/// What Python must do once the driver's lock is released.
#[derive(Default)]
struct Effects {
    transport: Option<Py<PyAny>>,
    write: Option<Py<PyBytes>>,
    settle: Vec<(Py<PyAny>, Result<Answer, Failure>)>,
    schedule_flush: bool,
    /// A timer to arm at this instant, and the one it replaces.
    arm: Option<(Instant, Option<Py<PyAny>>)>,
    /// Close the transport (the session is over), or abort it.
    close: Option<Close>,
}

#[derive(Clone, Copy)]
enum Close {
    /// After what it holds is written (close_notify, an alert).
    Orderly,
    /// At once.
    Abort,
}

impl Effects {
    fn fail(&mut self, future: Py<PyAny>, error: ClientError) {
        self.settle.push((future, Err(Failure::Client(error))));
    }
}

impl Driver {
    fn new(session: mbaps_session::Client, settings: &Settings) -> Driver {
        Driver {
            session,
            phase: Phase::Handshaking(None),
            transport: None,
            waiting: HashMap::new(),
            queued: VecDeque::new(),
            max_in_flight: settings.config.max_outstanding(),
            closers: Vec::new(),
            flush_scheduled: false,
            timer: None,
            timeout: settings.timeout,
            out: Vec::new(),
        }
    }

    /// Sends `call`, or queues it while the session has as many in flight
    /// as it takes.
    fn start(
        &mut self,
        now: Instant,
        future: Py<PyAny>,
        unit: u8,
        call: Call,
        effects: &mut Effects,
    ) {
        if let Phase::Ended(error) = &self.phase {
            effects.fail(future, error.clone());
        } else if self.session.in_flight() >= self.max_in_flight {
            self.queued.push_back(Queued {
                future,
                unit,
                call,
                deadline: now + self.timeout,
            });
        } else {
            self.send(now, future, unit, call, self.timeout, effects);
        }
    }

    fn send(
        &mut self,
        now: Instant,
        future: Py<PyAny>,
        unit: u8,
        call: Call,
        timeout: Duration,
        effects: &mut Effects,
    ) {
        let sent = call.request().and_then(|request| {
            self.session
                .send_request_with_timeout(now, unit, &request, timeout)
                .map_err(|error| Failure::Client(error.into()))
        });
        match sent {
            Ok(transaction_id) => {
                self.waiting
                    .insert(transaction_id, Waiter { future, unit, call });
            }
            Err(failure) => effects.settle.push((future, Err(failure))),
        }
    }

    /// Takes the session's events and sends what is queued while there is
    /// room.
    fn drain(&mut self, now: Instant, effects: &mut Effects) {
        loop {
            while let Some(event) = self.session.poll_event() {
                self.on_event(now, event, effects);
            }
            if !self.send_queued(now, effects) {
                break;
            }
        }
    }

    /// [`Driver::drain`], then says what to write and when the timer must
    /// fire.
    fn finish(&mut self, py: Python<'_>, now: Instant, flush: Flush, effects: &mut Effects) {
        self.drain(now, effects);
        if self.transport.is_some() {
            match flush {
                Flush::Now => {
                    self.out.clear();
                    if self.session.poll_transmit(&mut self.out) > 0 {
                        effects.write = Some(PyBytes::new(py, &self.out).unbind());
                    }
                }
                Flush::Soon if !self.flush_scheduled => {
                    self.flush_scheduled = true;
                    effects.schedule_flush = true;
                }
                Flush::Soon => {}
            }
        }
        if let (Some(at), false) = (
            self.session.poll_timeout(),
            matches!(self.phase, Phase::Ended(_)),
        ) {
            // A timer armed earlier fires early, harmlessly, and is armed
            // again: the usual case (a call's deadline after those in
            // flight) costs nothing.
            match &self.timer {
                Some((armed, _)) if *armed <= at => {}
                _ => effects.arm = Some((at, self.timer.take().map(|(_, handle)| handle))),
            }
        }
        if effects.transport.is_none() && (effects.write.is_some() || effects.close.is_some()) {
            effects.transport = self.transport.as_ref().map(|t| t.clone_ref(py));
        }
    }

    fn on_event(&mut self, now: Instant, event: ClientEvent, effects: &mut Effects) {
        let (transaction_id, result) = match event {
            ClientEvent::Response {
                transaction_id,
                pdu,
                ..
            } => (transaction_id, Ok(pdu)),
            ClientEvent::Invalid {
                transaction_id,
                error,
            } => (transaction_id, Err(ClientError::Invalid(error))),
            ClientEvent::Timeout { transaction_id } => (transaction_id, Err(ClientError::Timeout)),
            ClientEvent::Aborted {
                transaction_id,
                reason,
            } => (transaction_id, Err(ClientError::from(reason))),
            ClientEvent::Connected(_) => {
                if let Phase::Handshaking(waiter) = std::mem::replace(&mut self.phase, Phase::Open)
                    && let Some(future) = waiter
                {
                    effects.settle.push((future, Ok(Answer::Done)));
                }
                return;
            }
            // An answer no call waits for (a late one): the session
            // counts it.
            ClientEvent::Dropped { .. } => return,
            ClientEvent::Closed(reason) => {
                self.end(ClientError::from(reason), effects);
                return;
            }
        };
        let Some(waiter) = self.waiting.remove(&transaction_id) else {
            return;
        };
        let step = result
            .map_err(Failure::from)
            .and_then(|pdu| waiter.call.answer(pdu));
        match step {
            Ok(Step::Done(answer)) => effects.settle.push((waiter.future, Ok(answer))),
            Ok(Step::Again(next)) => self.start(now, waiter.future, waiter.unit, next, effects),
            Err(failure) => effects.settle.push((waiter.future, Err(failure))),
        }
    }

    /// Sends queued calls while there is room: whether it sent any (their
    /// events, if any, are then to be taken).
    fn send_queued(&mut self, now: Instant, effects: &mut Effects) -> bool {
        let mut sent = false;
        while self.session.in_flight() < self.max_in_flight
            && !matches!(self.phase, Phase::Ended(_))
        {
            let Some(queued) = self.queued.pop_front() else {
                break;
            };
            match queued.deadline.checked_duration_since(now) {
                Some(left) if !left.is_zero() => {
                    self.send(now, queued.future, queued.unit, queued.call, left, effects);
                    sent = true;
                }
                _ => effects.fail(queued.future, ClientError::Timeout),
            }
        }
        sent
    }

    /// The session is over: every call still waiting fails with `error`
    /// (later ones too), `close()` is done, the transport is closed.
    fn end(&mut self, error: ClientError, effects: &mut Effects) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        if let Phase::Handshaking(Some(future)) =
            std::mem::replace(&mut self.phase, Phase::Ended(error.clone()))
        {
            effects.fail(future, error.clone());
        }
        for (_, waiter) in self.waiting.drain() {
            effects.fail(waiter.future, error.clone());
        }
        for queued in self.queued.drain(..) {
            effects.fail(queued.future, error.clone());
        }
        for closer in self.closers.drain(..) {
            effects.settle.push((closer, Ok(Answer::Done)));
        }
        effects.close.get_or_insert(Close::Orderly);
    }
}

impl Effects {
    /// Does it all; the first error is returned once everything has been
    /// tried (a future is never left unsettled for another's failure).
    fn apply(self, py: Python<'_>, shared: &Shared, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut first = None;
        let mut note = |result: PyResult<()>| {
            if let Err(error) = result {
                first.get_or_insert(error);
            }
        };
        if let (Some(transport), Some(bytes)) = (&self.transport, self.write) {
            note(
                transport
                    .call_method1(py, intern!(py, "write"), (bytes,))
                    .map(drop),
            );
        }
        for (future, result) in self.settle {
            note(settle(py, future.bind(py), result, &shared.settings.name));
        }
        if let Some(connection) = shared.connection.get() {
            if self.schedule_flush {
                note(protocol.getattr(intern!(py, "_flush")).and_then(|flush| {
                    connection
                        .event_loop
                        .call_method1(py, intern!(py, "call_soon"), (flush,))
                        .map(drop)
                }));
            }
            if let Some((at, stale)) = self.arm {
                if let Some(stale) = stale {
                    note(stale.call_method0(py, intern!(py, "cancel")).map(drop));
                }
                note(protocol.getattr(intern!(py, "_on_timer")).and_then(|fire| {
                    let handle = connection.event_loop.call_method1(
                        py,
                        intern!(py, "call_at"),
                        (connection.loop_time(at), fire),
                    )?;
                    connection.lock().timer = Some((at, handle));
                    Ok(())
                }));
            }
        }
        if let (Some(transport), Some(close)) = (&self.transport, self.close) {
            let method = match close {
                Close::Orderly => intern!(py, "close"),
                Close::Abort => intern!(py, "abort"),
            };
            note(transport.call_method0(py, method).map(drop));
        }
        first.map_or(Ok(()), Err)
    }
}

/// Settles `future` with `result`, unless it is done already (cancelled by
/// whoever awaited it).
fn settle(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    result: Result<Answer, Failure>,
    server_name: &str,
) -> PyResult<()> {
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    match result {
        Ok(answer) => future.call_method1(intern!(py, "set_result"), (answer,))?,
        Err(failure) => future.call_method1(
            intern!(py, "set_exception"),
            (to_python(py, failure, server_name).into_value(py),),
        )?,
    };
    Ok(())
}

/// A Python `OSError` (or whatever ended a connection) as the I/O error
/// the Rust clients report: the same words, the same hints.
fn io_error(error: &Bound<'_, PyAny>) -> std::io::Error {
    let py = error.py();
    let resolver = py
        .import("socket")
        .and_then(|socket| socket.getattr("gaierror"))
        .and_then(|gaierror| error.is_instance(&gaierror))
        .unwrap_or(false);
    let errno = error
        .getattr("errno")
        .ok()
        .and_then(|errno| errno.extract::<i32>().ok());
    match errno {
        // A resolver's codes are not the system's.
        Some(code) if code > 0 && !resolver => std::io::Error::from_raw_os_error(code),
        _ => std::io::Error::other(
            error
                .str()
                .map(|words| words.to_string())
                .unwrap_or_default(),
        ),
    }
}

impl Shared {
    /// The connection, on the thread of its loop.
    fn connection(&self) -> PyResult<&Connection> {
        let connection = self.connection.get().ok_or_else(|| {
            PyRuntimeError::new_err("the client is not connected: await Client.connect(...)")
        })?;
        if connection.thread != std::thread::current().id() {
            return Err(PyRuntimeError::new_err(
                "a Client belongs to the event loop it was connected on: call it from that loop's thread (or use SyncClient)",
            ));
        }
        Ok(connection)
    }

    /// Runs `work` on the driver at `now`, then what it asks of Python.
    fn drive(
        &self,
        py: Python<'_>,
        protocol: &Bound<'_, PyAny>,
        flush: Flush,
        work: impl FnOnce(&mut Driver, Instant, &mut Effects),
    ) -> PyResult<()> {
        let connection = self.connection()?;
        let mut effects = Effects::default();
        {
            let mut driver = connection.lock();
            let now = Instant::now();
            work(&mut driver, now, &mut effects);
            driver.finish(py, now, flush, &mut effects);
        }
        effects.apply(py, self, protocol)
    }

    /// A new future of the connection's loop.
    fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.connection()?.create_future.bind(py).call0()
    }
}

/// The asyncio protocol of a [`Client`]'s connection (`connection_made`,
/// `data_received`, ...), apart from the client so that applications see
/// only the calls. The transport holds it; it holds the transport until
/// the connection is lost.
#[pyclass(module = "mbaps._native", frozen)]
pub(crate) struct Protocol {
    shared: Arc<Shared>,
    /// What the transport reads into ([`Protocol::get_buffer`]).
    buffer: Py<PyByteArray>,
}

/// How much one read takes: a whole TLS record and more.
const READ_BUFFER_BYTES: usize = 32 * 1024;

#[pymethods]
impl Protocol {
    /// Starts the session on the running loop (the handshake's timer
    /// from now); the connect calls it just before connecting.
    fn _start(&self, py: Python<'_>) -> PyResult<()> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let settings = &self.shared.settings;
        let now = Instant::now();
        let session =
            mbaps_session::Client::new(&settings.config, settings.server_name.clone(), now)
                .map_err(|error| raise(py, error.into(), &settings.name))?;
        let connection = Connection {
            create_future: event_loop.getattr("create_future")?.unbind(),
            epoch: (now, event_loop.call_method0("time")?.extract()?),
            event_loop: event_loop.unbind(),
            thread: std::thread::current().id(),
            driver: Mutex::new(Driver::new(session, settings)),
        };
        self.shared
            .connection
            .set(connection)
            .map_err(|_| PyRuntimeError::new_err("this client has connected already"))
    }

    /// The handshake's end: a future that is done once the session is up,
    /// or fails with why it is not.
    fn _handshake<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let future = slf.get().shared.future(py)?;
        let waiter = future.clone().unbind();
        slf.get().shared.drive(
            py,
            slf.as_any(),
            Flush::Now,
            |driver, _, effects| match &mut driver.phase {
                Phase::Handshaking(slot) => *slot = Some(waiter),
                Phase::Open => effects.settle.push((waiter, Ok(Answer::Done))),
                Phase::Ended(error) => effects.fail(waiter, error.clone()),
            },
        )?;
        Ok(future)
    }

    /// Drops the connection at once (a connect that failed or gave up).
    fn _abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.shared.connection.get().is_none() {
            return Ok(());
        }
        this.shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, _, effects| {
                driver.end(ClientError::Closed(CloseReason::LocalClose), effects);
                effects.close = Some(Close::Abort);
            })
    }

    /// The error of a connect that took longer than its timeout.
    fn _timed_out(&self, py: Python<'_>) -> Py<PyAny> {
        raise(py, ClientError::Timeout, &self.shared.settings.name)
            .into_value(py)
            .into_any()
    }

    /// The error of a connect the TCP connection failed (`error`).
    fn _unreachable(&self, error: &Bound<'_, PyAny>) -> Py<PyAny> {
        let py = error.py();
        raise(py, io_error(error).into(), &self.shared.settings.name)
            .into_value(py)
            .into_any()
    }

    /// asyncio: the connection is up; the handshake starts.
    fn connection_made(slf: &Bound<'_, Self>, transport: Bound<'_, PyAny>) -> PyResult<()> {
        slf.get()
            .shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, _, effects| {
                if matches!(driver.phase, Phase::Ended(_)) {
                    // Given up on while it connected.
                    effects.transport = Some(transport.unbind());
                    effects.close = Some(Close::Abort);
                } else {
                    driver.transport = Some(transport.unbind());
                }
            })
    }

    /// asyncio (a buffered protocol): where the transport reads into. The
    /// same buffer every time: a plain protocol would have asyncio
    /// allocate 256 KiB (mapped and unmapped by the allocator) for every
    /// read of a few dozen bytes.
    fn get_buffer<'py>(&self, py: Python<'py>, _sizehint: isize) -> Bound<'py, PyByteArray> {
        self.buffer.bind(py).clone()
    }

    /// asyncio: `nbytes` from the server are in the buffer.
    fn buffer_updated(slf: &Bound<'_, Self>, nbytes: usize) -> PyResult<()> {
        let py = slf.py();
        // Copied out through a slice: the limited API (abi3 for 3.9) has
        // no way to borrow a bytearray's bytes safely.
        let end = isize::try_from(nbytes.min(READ_BUFFER_BYTES)).unwrap_or(0);
        let read = slf
            .get()
            .buffer
            .bind(py)
            .get_item(PySlice::new(py, 0, end, 1))?
            .cast_into::<PyByteArray>()?
            .to_vec();
        slf.get()
            .shared
            .drive(py, slf.as_any(), Flush::Now, |driver, now, _| {
                driver.session.handle_tls(now, &read);
            })
    }

    /// asyncio: the server ended its side; the session says how that
    /// ends it (close_notify first or not). `False`: the transport closes.
    fn eof_received(slf: &Bound<'_, Self>) -> PyResult<bool> {
        slf.get()
            .shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, now, _| {
                driver.session.handle_eof(now);
            })?;
        Ok(false)
    }

    /// asyncio: the connection is gone (`exc`: why, if not an orderly
    /// end). Every call still waiting fails with it.
    #[pyo3(signature = (exc = None))]
    fn connection_lost(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let timer = slf
            .get()
            .shared
            .connection()?
            .lock()
            .timer
            .take()
            .map(|(_, handle)| handle);
        if let Some(timer) = timer {
            timer.call_method0(slf.py(), intern!(slf.py(), "cancel"))?;
        }
        slf.get().shared.drive(
            slf.py(),
            slf.as_any(),
            Flush::Now,
            |driver, now, effects| {
                driver.transport = None;
                match exc {
                    Some(error) => driver.end(ClientError::from(io_error(&error)), effects),
                    None => {
                        // The session's own account of the end first (it
                        // knows whether close_notify came).
                        driver.session.handle_eof(now);
                        driver.drain(now, effects);
                        driver.end(
                            std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "the connection was closed",
                            )
                            .into(),
                            effects,
                        );
                    }
                }
            },
        )
    }

    /// asyncio's flow control: nothing to do. What a client writes is
    /// bounded by its calls in flight (at most 16 requests of at most 260
    /// bytes), so there is nothing to hold back.
    fn pause_writing(&self) {}

    /// See `pause_writing`.
    fn resume_writing(&self) {}

    /// The loop's turn after calls were made: their bytes go out together.
    fn _flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get()
            .shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, _, _| {
                driver.flush_scheduled = false;
            })
    }

    /// The session's deadline: requests past theirs time out, the
    /// session's timers are checked.
    fn _on_timer(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get()
            .shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, now, _| {
                // The loop may run a timer a hair before its time: the
                // deadline it was armed for counts as reached.
                let armed = driver.timer.take().map(|(at, _)| at);
                driver
                    .session
                    .handle_timeout(armed.map_or(now, |at| now.max(at)));
            })
    }
}

/// An async Modbus/TCP Security client: `await Client.connect(...)`, then
/// its calls; many may be awaited at once (they go in flight together).
/// Usable as `async with`. It runs on the event loop it was connected on,
/// and only there.
#[pyclass(module = "mbaps", frozen)]
pub(crate) struct Client {
    shared: Arc<Shared>,
    protocol: Py<Protocol>,
}

impl Client {
    fn run<'py>(&self, py: Python<'py>, unit: u8, call: Call) -> PyResult<Bound<'py, PyAny>> {
        let connection = self.shared.connection()?;
        let future = connection.create_future.bind(py).call0()?;
        let waiting = future.clone().unbind();
        let mut effects = Effects::default();
        {
            let mut driver = connection.lock();
            let now = Instant::now();
            let flush = if driver.session.in_flight() == 0 {
                Flush::Now
            } else {
                Flush::Soon
            };
            driver.start(now, waiting, unit, call, &mut effects);
            driver.finish(py, now, flush, &mut effects);
        }
        effects.apply(py, &self.shared, self.protocol.bind(py).as_any())?;
        Ok(future)
    }
}

client_methods!(Client, {
    /// Connects to `address` (`HOST:PORT`): an awaitable that gives the
    /// client. `ca`, `cert`, `key`: paths to PEM files (required unless
    /// `plain`); `server_name`: the name the server's certificate must
    /// carry (default: the host of `address`); `tls`: "1.2" or "1.3" to
    /// pin the version; `timeout`: seconds for the connection and for
    /// each call.
    #[staticmethod]
    #[pyo3(signature = (address, *, ca = None, cert = None, key = None, server_name = None, tls = None, timeout = 3.0, plain = false))]
    #[allow(clippy::too_many_arguments)]
    fn connect<'py>(
        py: Python<'py>,
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        server_name: Option<String>,
        tls: Option<String>,
        timeout: f64,
        plain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let settings = Settings::new(
            address,
            ca,
            cert,
            key,
            server_name,
            tls.as_deref(),
            timeout,
            plain,
        )?;
        let (host, port) = settings.endpoint()?;
        let timeout = settings.timeout.as_secs_f64();
        let shared = Arc::new(Shared {
            settings,
            connection: OnceLock::new(),
        });
        let protocol = Py::new(
            py,
            Protocol {
                shared: Arc::clone(&shared),
                buffer: PyByteArray::new_with(py, READ_BUFFER_BYTES, |_| Ok(()))?.unbind(),
            },
        )?;
        let client = Py::new(
            py,
            Client {
                shared,
                protocol: protocol.clone_ref(py),
            },
        )?;
        // The orchestration (resolve, connect, handshake, within the
        // timeout) is asyncio's own, in Python.
        py.import("mbaps._connect")?
            .call_method1("connect", (client, protocol, host, port, timeout))
    }

    /// Ends the session with close_notify: an awaitable, done once the
    /// server answered with its own (or the session's close timeout
    /// passed, or the connection was gone already). Calls in flight fail
    /// with `mbaps.ConnectionError`.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let future = self.shared.future(py)?;
        let closer = future.clone().unbind();
        self.shared.drive(
            py,
            self.protocol.bind(py).as_any(),
            Flush::Now,
            |driver, now, effects| {
                if matches!(driver.phase, Phase::Ended(_)) {
                    effects.settle.push((closer, Ok(Answer::Done)));
                } else {
                    driver.closers.push(closer);
                    driver.session.close(now);
                }
            },
        )?;
        Ok(future)
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let future = slf.get().shared.future(slf.py())?;
        future.call_method1(intern!(slf.py(), "set_result"), (slf,))?;
        Ok(future)
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _kind: Py<PyAny>,
        _value: Py<PyAny>,
        _traceback: Py<PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }
});

impl Drop for Client {
    /// A client dropped while its session is up closes it (close_notify
    /// sent, the server's awaited in the background), as the Rust clients
    /// do; from another thread than its loop's, the session is left to
    /// its idle timeout.
    fn drop(&mut self) {
        Python::attach(|py| {
            let open = self
                .shared
                .connection()
                .is_ok_and(|connection| !matches!(connection.lock().phase, Phase::Ended(_)));
            if open {
                let _ = self.shared.drive(
                    py,
                    self.protocol.bind(py).as_any(),
                    Flush::Now,
                    |driver, now, _| driver.session.close(now),
                );
            }
        });
    }
}
