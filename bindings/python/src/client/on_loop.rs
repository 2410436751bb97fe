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
use std::time::{Duration, Instant};

use mbaps_codec::ReadDeviceIdCode;
use mbaps_session::{ClientError, ClientEvent, CloseReason, Outcome, SessionError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PySlice};
use pyo3::{PyTraverseError, PyVisit, intern};

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
    /// The loop (the only one the client may be used from) and its
    /// `create_future` (one lookup per call saved).
    event_loop: Py<PyAny>,
    create_future: Py<PyAny>,
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
    waiting: HashMap<u16, Pending>,
    /// Calls beyond what the session keeps in flight, oldest first: each
    /// is sent when a slot frees, or fails if its time is up by then.
    queued: VecDeque<Pending>,
    max_in_flight: usize,
    /// Futures of `close()`, settled when the session is over.
    closers: Vec<Py<PyAny>>,
    /// Whether a flush is scheduled: the session holds the bytes until
    /// then, so that calls made in one turn of the loop go out in one
    /// write.
    flush_scheduled: bool,
    /// The loop's timer for the session's next deadline.
    timer: Option<(Instant, Py<PyAny>)>,
    /// The transport asked us to stop writing (its buffer is full: the
    /// server is not reading). The session holds the output meanwhile,
    /// up to its bound; calls beyond it fail.
    paused: bool,
    /// The client was dropped: the session closes once no call waits.
    orphaned: bool,
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

/// A call: its future, and what it asks; its deadline holds for all the
/// requests it makes (device identification may make several).
struct Pending {
    future: Py<PyAny>,
    unit: u8,
    call: Call,
    deadline: Instant,
}

impl Pending {
    /// Whether whoever awaited it gave up on it (cancelled it).
    fn given_up(&self, py: Python<'_>) -> bool {
        self.future
            .call_method0(py, intern!(py, "done"))
            .and_then(|done| done.is_truthy(py))
            .unwrap_or(false)
    }
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
            paused: false,
            orphaned: false,
            timeout: settings.timeout,
            out: Vec::new(),
        }
    }

    /// Sends `call`, or queues it while the session has as many in flight
    /// as it takes.
    fn start(&mut self, py: Python<'_>, now: Instant, call: Pending, effects: &mut Effects) {
        if let Phase::Ended(error) = &self.phase {
            effects.fail(call.future, error.clone());
            return;
        }
        if self.session.in_flight() >= self.max_in_flight {
            self.forget_given_up(py);
        }
        if self.session.in_flight() >= self.max_in_flight {
            self.queued.push_back(call);
        } else {
            self.send(now, call, effects);
        }
    }

    /// Frees the slots of calls in flight that were given up on: their
    /// answers, if they come, are dropped as late.
    fn forget_given_up(&mut self, py: Python<'_>) {
        let session = &mut self.session;
        self.waiting.retain(|&transaction_id, pending| {
            let keep = !pending.given_up(py);
            if !keep {
                session.abandon(transaction_id);
            }
            keep
        });
    }

    fn send(&mut self, now: Instant, call: Pending, effects: &mut Effects) {
        let Some(left) = call
            .deadline
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
        else {
            effects.fail(call.future, ClientError::Timeout);
            return;
        };
        let paused = self.paused;
        let sent = call.call.request().and_then(|request| {
            self.session
                .send_request_with_timeout(now, call.unit, &request, left)
                .map_err(|error| match error {
                    SessionError::SendBufferFull if paused => Failure::Client(
                        std::io::Error::other(
                            "the server is not reading what we send: the connection's buffers are full",
                        )
                        .into(),
                    ),
                    error => Failure::Client(error.into()),
                })
        });
        match sent {
            Ok(transaction_id) => {
                self.waiting.insert(transaction_id, call);
            }
            Err(failure) => effects.settle.push((call.future, Err(failure))),
        }
    }

    /// Takes the session's events and sends what is queued while there is
    /// room.
    fn drain(&mut self, py: Python<'_>, now: Instant, effects: &mut Effects) {
        loop {
            while let Some(event) = self.session.poll_event() {
                self.on_event(py, now, event, effects);
            }
            if !self.send_queued(py, now, effects) {
                break;
            }
        }
        if self.orphaned
            && self.waiting.is_empty()
            && self.queued.is_empty()
            && matches!(self.phase, Phase::Open)
        {
            self.orphaned = false;
            self.session.close(now);
            self.drain(py, now, effects);
        }
    }

    /// [`Driver::drain`], then says what to write and when the timer must
    /// fire.
    fn finish(&mut self, py: Python<'_>, now: Instant, flush: Flush, effects: &mut Effects) {
        self.drain(py, now, effects);
        if self.transport.is_some() && !self.paused {
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

    fn on_event(
        &mut self,
        py: Python<'_>,
        now: Instant,
        event: ClientEvent,
        effects: &mut Effects,
    ) {
        let (transaction_id, result) = match Outcome::from(event) {
            Outcome::Call {
                transaction_id,
                result,
            } => (transaction_id, result),
            Outcome::Connected(_) => {
                if let Phase::Handshaking(waiter) = std::mem::replace(&mut self.phase, Phase::Open)
                    && let Some(future) = waiter
                {
                    effects.settle.push((future, Ok(Answer::Done)));
                }
                return;
            }
            // An answer no call waits for (a late one): the session
            // counts it.
            Outcome::Dropped { .. } => return,
            Outcome::Closed(reason) => {
                self.end(ClientError::from(reason), effects);
                return;
            }
        };
        let Some(Pending {
            future,
            unit,
            call,
            deadline,
        }) = self.waiting.remove(&transaction_id)
        else {
            return;
        };
        match result
            .map_err(Failure::from)
            .and_then(|pdu| call.answer(pdu))
        {
            Ok(Step::Done(answer)) => effects.settle.push((future, Ok(answer))),
            Ok(Step::Again(call)) => {
                let next = Pending {
                    future,
                    unit,
                    call,
                    deadline,
                };
                // Not asked again for a caller who gave up.
                if !next.given_up(py) {
                    self.start(py, now, next, effects);
                }
            }
            Err(failure) => effects.settle.push((future, Err(failure))),
        }
    }

    /// Sends queued calls while there is room: whether it sent any (their
    /// events, if any, are then to be taken).
    fn send_queued(&mut self, py: Python<'_>, now: Instant, effects: &mut Effects) -> bool {
        let mut sent = false;
        while self.session.in_flight() < self.max_in_flight
            && !matches!(self.phase, Phase::Ended(_))
        {
            let Some(queued) = self.queued.pop_front() else {
                break;
            };
            // A call given up on while it waited is never sent.
            if !queued.given_up(py) {
                self.send(now, queued, effects);
                sent = true;
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
        for (_, pending) in self.waiting.drain() {
            effects.fail(pending.future, error.clone());
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
    /// The connection, from within its own loop (asyncio's futures and
    /// transports are not thread-safe, and a loop's futures cannot be
    /// awaited on another).
    fn connection(&self, py: Python<'_>) -> PyResult<&Connection> {
        static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let connection = self.connection.get().ok_or_else(|| {
            PyRuntimeError::new_err("the client is not connected: await Client.connect(...)")
        })?;
        let running = GET_RUNNING_LOOP
            .import(py, "asyncio", "get_running_loop")
            .and_then(|get| get.call0());
        match running {
            Ok(running) if running.is(&connection.event_loop) => Ok(connection),
            _ => Err(PyRuntimeError::new_err(
                "a Client belongs to the event loop it was connected on: call it from within that loop (or use SyncClient)",
            )),
        }
    }

    /// Runs `work` on the driver at `now`, then what it asks of Python.
    fn drive(
        &self,
        py: Python<'_>,
        protocol: &Bound<'_, PyAny>,
        flush: Flush,
        work: impl FnOnce(&mut Driver, Instant, &mut Effects),
    ) -> PyResult<()> {
        let connection = self.connection(py)?;
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
        self.connection(py)?.create_future.bind(py).call0()
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
        let settings = &self.shared.settings;
        crate::errors::exception(
            py,
            "TimeoutError",
            (format!(
                "connecting to {}: no connection and handshake within {} s",
                settings.address,
                settings.timeout.as_secs_f64()
            ),),
        )
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
        let py = slf.py();
        let timer = slf
            .get()
            .shared
            .connection(py)?
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
                        driver.drain(py, now, effects);
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

    /// asyncio's flow control: the transport's buffer is full (the server
    /// is not reading). Nothing more is written until it resumes; the
    /// session holds the output meanwhile, up to its bound, and calls
    /// beyond it fail.
    fn pause_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().shared.connection(slf.py())?.lock().paused = true;
        Ok(())
    }

    /// asyncio's flow control: the transport's buffer has drained.
    fn resume_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get()
            .shared
            .drive(slf.py(), slf.as_any(), Flush::Now, |driver, _, _| {
                driver.paused = false;
            })
    }

    /// The Python objects the protocol holds (through the driver), for the
    /// cycle collector: the transport holds the protocol, and the protocol
    /// the transport, until the connection is lost; a loop that ends with
    /// the connection open leaves that cycle to the collector.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.buffer)?;
        let Some(connection) = self.shared.connection.get() else {
            return Ok(());
        };
        visit.call(&connection.event_loop)?;
        visit.call(&connection.create_future)?;
        // Never waits: a collection that runs while the driver is busy
        // (it allocates) sees the protocol alone this time.
        let Ok(driver) = connection.driver.try_lock() else {
            return Ok(());
        };
        if let Some(transport) = &driver.transport {
            visit.call(transport)?;
        }
        if let Some((_, handle)) = &driver.timer {
            visit.call(handle)?;
        }
        if let Phase::Handshaking(Some(future)) = &driver.phase {
            visit.call(future)?;
        }
        for pending in driver.waiting.values().chain(&driver.queued) {
            visit.call(&pending.future)?;
        }
        for closer in &driver.closers {
            visit.call(closer)?;
        }
        Ok(())
    }

    /// Breaks the cycle: the transport (closed by its own finalizer), the
    /// timer and the futures are let go.
    fn __clear__(&self) {
        if let Some(connection) = self.shared.connection.get()
            && let Ok(mut driver) = connection.driver.try_lock()
        {
            driver.transport = None;
            driver.timer = None;
            driver.waiting.clear();
            driver.queued.clear();
            driver.closers.clear();
            if let Phase::Handshaking(waiter) = &mut driver.phase {
                *waiter = None;
            }
        }
    }

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
        let connection = self.shared.connection(py)?;
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
            let call = Pending {
                future: waiting,
                unit,
                call,
                deadline: now + driver.timeout,
            };
            driver.start(py, now, call, &mut effects);
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

    /// The client holds its protocol (whose own references the protocol
    /// reports).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.protocol)
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
    /// A client dropped while its session is up closes it once no call
    /// waits (close_notify sent, the server's awaited in the background),
    /// as the Rust clients do. Dropped outside its loop (the loop has
    /// ended), it is left to the cycle collector, which closes the socket.
    fn drop(&mut self) {
        Python::attach(|py| {
            let _ = self.shared.drive(
                py,
                self.protocol.bind(py).as_any(),
                Flush::Now,
                |driver, _, _| driver.orphaned = true,
            );
        });
    }
}
