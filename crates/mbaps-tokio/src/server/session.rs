//! One connection's task: the run loop of an `mbaps_admission::Served`
//! connection, and nothing else (its rules are the served connection's).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_admission::{Seat, Served, SessionReport};
use mbaps_session::{Cut, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::connection::{Conn, Io, Read};
use crate::handler::sealed::Answering;
use crate::handler::{Answer, Answers};
use crate::timer::Timer;

/// Where a connection is served from: what the accept loop hands its
/// task.
pub(crate) struct Connection {
    pub(crate) seat: Seat<Arc<Conn>>,
    pub(crate) report: SessionReport,
    pub(crate) answering: Answering,
    /// The configuration in force at accept, and its reloads since.
    pub(crate) reloads: watch::Receiver<Arc<ServerConfig>>,
    pub(crate) write_timeout: Duration,
}

/// What ended a session's wait.
// The answer's PDU travels inline, moved once: boxing it would allocate
// per request.
#[allow(clippy::large_enum_variant)]
enum Event {
    /// Its wake-up: an order, or a reload.
    Woken,
    /// Its next deadline.
    Deadline,
    /// The application's answer to a request.
    Answer(Answer),
    /// The socket takes bytes again (or failed).
    Writable(std::io::Result<()>),
    /// The socket has bytes (or failed).
    Readable(std::io::Result<()>),
}

/// An accepted connection, ready to be served by [`Session::serve`].
///
/// Made before the task is spawned, so that the task's future holds the
/// served connection once: an `async fn` that took the [`Connection`] and
/// built the served connection itself kept its arguments and the
/// constructor's result beside the value it used (5.4 KiB per session, with
/// the served connection twice, where one copy is 2.3 KiB).
pub(crate) struct Session {
    served: Served<Arc<Conn>>,
    answering: Answering,
    reloads: watch::Receiver<Arc<ServerConfig>>,
    /// The socket, until the connection is over (then it is closed while
    /// late answers are waited for).
    io: Option<Io>,
    conn: Arc<Conn>,
}

impl Session {
    /// The served connection for `connection`; `None` when rustls cannot
    /// start one with the configuration in force (the seat is given back).
    pub(crate) fn start(connection: Connection, stream: TcpStream) -> Option<Session> {
        let Connection {
            seat,
            report,
            answering,
            mut reloads,
            write_timeout,
        } = connection;
        let _ = stream.set_nodelay(true);
        let conn = Arc::clone(seat.handle());
        let config = Arc::clone(&reloads.borrow_and_update());
        let served = Served::new(
            &config,
            seat,
            report,
            answering.served(),
            write_timeout,
            Instant::now(),
        )
        .ok()?;
        Some(Session {
            served,
            answering,
            reloads,
            io: Some(Io::new(stream)),
            conn,
        })
    }

    /// Serves the connection until it is over.
    // An `async` block, not an `async fn`: the latter moves its arguments
    // into locals of its own, and the session would be in the task's
    // future twice (which clippy cannot know).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn serve(mut self) -> impl Future<Output = ()> {
        async move {
            // The fields are borrowed where they are, never moved out: a
            // moved-out local would be a second copy in the task's future.
            let Session {
                served,
                answering,
                reloads,
                io,
                conn,
            } = &mut self;
            served.running();
            let mut timer = Timer::new();
            let mut answers = Answers::default();
            // The wake-up is waited on across turns, not made anew on each (a
            // waiter in a list behind a lock, joined and left on every turn
            // otherwise). It carries the admission's orders and the reloads (the
            // server wakes every session on a reload).
            let wake = conn.wake.notified();
            tokio::pin!(wake);
            // The connection: until nothing more is read or written on it.
            while let Some(io) = io {
                let now = Instant::now();
                while let Some((id, request)) = served.poll_request() {
                    answering.start(id, request, &mut answers);
                }
                if !io.is_flushed() || served.poll_transmit(now, io.out()) > 0 {
                    match io.flush() {
                        Ok(all) => served.handle_written(now, all),
                        Err(error) => served.handle_cut(now, Cut::Reset(error.kind())),
                    }
                    if io.is_flushed() {
                        // Requests held back while the output waited come out now.
                        continue;
                    }
                }
                if served.is_disconnected() {
                    break;
                }
                timer.set(served.poll_timeout());
                // The event is handled in a block of its own, so that it (an
                // answer's PDU inline) is not kept in the future across the
                // yield below.
                let answered = {
                    // Biased: orders first, so that once told to stop the
                    // session reads no further request; then the deadlines.
                    let event = tokio::select! {
                        biased;
                        () = &mut wake => {
                            wake.set(conn.wake.notified());
                            Event::Woken
                        }
                        () = timer.fired() => Event::Deadline,
                        Some(answer) = answers.next() => Event::Answer(answer),
                        // The stream's own reader and writer slots (one waker
                        // each: this task is the only one waiting), not a
                        // waiter list joined and left on every turn as
                        // `readable()` and `writable()` do.
                        writable = poll_fn(|cx| io.stream.poll_write_ready(cx)), if !io.is_flushed() => {
                            Event::Writable(writable)
                        }
                        readable = poll_fn(|cx| io.stream.poll_read_ready(cx)), if served.wants_read() => {
                            Event::Readable(readable)
                        }
                    };
                    let now = Instant::now();
                    // A reload put in force before this event is taken before
                    // it: a handshake's last flight or a request read after
                    // `reload()` returned meets the new configuration. (The
                    // server wakes every session on a reload, for those that
                    // are waiting on nothing.)
                    if reloads.has_changed().unwrap_or(false) {
                        let config = Arc::clone(&reloads.borrow_and_update());
                        served.handle_reload(now, &config);
                    }
                    handle(served, io, &mut answers, now, event)
                };
                if answered && served.session().outstanding() > 0 {
                    // More are under way: whoever is handing them over (a
                    // device's task, on the other worker) gets a turn to
                    // finish, and they share this write.
                    tokio::task::yield_now().await;
                    let now = Instant::now();
                    while let Some((id, answer)) = answers.ready() {
                        served.handle_answer(now, id, answer);
                    }
                }
            }
            if let Some(mut io) = io.take() {
                let _ = io.stream.shutdown().await;
            }
            // Over but for the records of requests still with the application:
            // their late answers are waited for without the socket (bounded in
            // time and in number by the served connection).
            while !served.is_over() {
                timer.set(served.poll_timeout());
                tokio::select! {
                    biased;
                    () = &mut wake => {
                        wake.set(conn.wake.notified());
                        served.handle_order(Instant::now());
                    }
                    () = timer.fired() => served.handle_timeout(Instant::now()),
                    Some((id, answer)) = answers.next() => served.handle_answer(Instant::now(), id, answer),
                }
            }
        }
    }
}

/// Hands one event to the served connection; `true` when it was an
/// answer (answers that end together go out together: one write, one TLS
/// record, not one by one).
fn handle(
    served: &mut Served<Arc<Conn>>,
    io: &mut Io,
    answers: &mut Answers,
    now: Instant,
    event: Event,
) -> bool {
    match event {
        Event::Woken => served.handle_order(now),
        Event::Deadline => served.handle_timeout(now),
        Event::Answer((id, answer)) => {
            served.handle_answer(now, id, answer);
            while let Some((id, answer)) = answers.ready() {
                served.handle_answer(now, id, answer);
            }
            return true;
        }
        Event::Writable(writable) => {
            if let Err(error) = writable {
                served.handle_cut(now, Cut::Reset(error.kind()));
            }
        }
        Event::Readable(readable) => {
            match readable.and_then(|()| io.try_read(|bytes| served.handle_read(now, bytes))) {
                Ok(Read::Nothing | Read::Bytes) => {}
                Ok(Read::End) => served.handle_eof(now),
                Err(error) => served.handle_cut(now, Cut::Reset(error.kind())),
            }
        }
    }
    false
}
