//! One connection's task: the run loop of an `mbaps_admission::Served`
//! connection, and nothing else (its rules are the served connection's).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_admission::{Seat, Served, SessionReport};
use mbaps_session::{Cut, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::connection::{Conn, Io, Read};
use crate::handler::Answers;
use crate::handler::sealed::Answering;
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

type Reloads = watch::Receiver<Arc<ServerConfig>>;

/// The next reload: the configuration put in force, and the receiver to
/// watch for the one after (`None` once the server's reloader is gone).
/// The future owns the receiver, so that it lives across turns; it is
/// boxed once per reload, not per turn.
type NextReload = Pin<Box<dyn Future<Output = Option<(Arc<ServerConfig>, Reloads)>> + Send>>;

fn next_reload(mut reloads: Reloads) -> NextReload {
    Box::pin(async move {
        reloads.changed().await.ok()?;
        let config = Arc::clone(&reloads.borrow_and_update());
        Some((config, reloads))
    })
}

/// Serves one accepted connection until it is over.
pub(crate) async fn run(connection: Connection, stream: TcpStream) {
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
    let now = Instant::now();
    let served = Served::new(
        &config,
        seat,
        report,
        answering.served(),
        write_timeout,
        now,
    );
    let Ok(mut served) = served else {
        return;
    };
    let mut io = Io::new(stream);
    let mut timer = Timer::new();
    let mut answers = Answers::default();
    // The wake-up and the reload watch are waited on across turns, not
    // made anew on each: each is a waiter in a list behind a lock (the
    // reload's shared by every session), joined and left on every turn
    // otherwise.
    let wake = conn.wake.notified();
    tokio::pin!(wake);
    let mut reloaded = next_reload(reloads);
    // The connection: until nothing more is read or written on it.
    loop {
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
        // Biased: orders first, so that once told to stop the session
        // reads no further request; then the deadlines.
        tokio::select! {
            biased;
            () = &mut wake => {
                wake.set(conn.wake.notified());
                served.handle_order(Instant::now());
            }
            () = timer.fired() => served.handle_timeout(Instant::now()),
            reload = &mut reloaded => if let Some((config, reloads)) = reload {
                served.handle_reload(Instant::now(), &config);
                reloaded = next_reload(reloads);
            } else {
                // The server's reloader is gone: no reload comes any more.
                reloaded = Box::pin(std::future::pending());
            },
            Some((id, answer)) = answers.next() => {
                // Answers that end together go out together (one write, one
                // TLS record), not one by one.
                let now = Instant::now();
                served.handle_answer(now, id, answer);
                while let Some((id, answer)) = answers.ready() {
                    served.handle_answer(now, id, answer);
                }
                if served.session().outstanding() > 0 {
                    // More are under way: whoever is handing them over
                    // (a device's task, on the other worker) gets a turn
                    // to finish, and they share this write.
                    tokio::task::yield_now().await;
                    while let Some((id, answer)) = answers.ready() {
                        served.handle_answer(now, id, answer);
                    }
                }
            }
            writable = io.stream.writable(), if !io.is_flushed() => if let Err(error) = writable {
                served.handle_cut(Instant::now(), Cut::Reset(error.kind()));
            },
            readable = io.stream.readable(), if served.wants_read() => {
                let now = Instant::now();
                match readable.and_then(|()| io.try_read(|bytes| served.handle_read(now, bytes))) {
                    Ok(Read::Nothing | Read::Bytes) => {}
                    Ok(Read::End) => served.handle_eof(now),
                    Err(error) => served.handle_cut(now, Cut::Reset(error.kind())),
                }
            }
        }
    }
    let _ = io.stream.shutdown().await;
    drop(io);
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
