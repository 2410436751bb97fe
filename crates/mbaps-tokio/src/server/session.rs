//! One connection's task: the run loop of an `mbaps_admission::Served`
//! connection, and nothing else (its rules are the served connection's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_admission::{Seat, Served, SessionReport};
use mbaps_session::{Cut, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::connection::{Conn, Io, Read};
use crate::handler::sealed::Answering;
use crate::handler::{Answer, AnswerSender};
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
    let mut shut = false;
    let mut io = Io::new(stream);
    let mut timer = Timer::new();
    // Where answers given later come back: made at the first.
    let mut answers: Option<(AnswerSender, mpsc::UnboundedReceiver<Answer>)> = None;
    loop {
        let now = Instant::now();
        while let Some((id, request)) = served.poll_request() {
            let (to, _) = answers.get_or_insert_with(mpsc::unbounded_channel);
            answering.start(id, request, to);
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
        if served.is_over() {
            break;
        }
        if served.is_disconnected() && !shut {
            // Over but for late answers' records: the peer gets its FIN.
            shut = true;
            let _ = io.stream.shutdown().await;
        }
        timer.set(served.poll_timeout());
        // Biased: orders first, so that once told to stop the session
        // reads no further request; then the deadlines.
        tokio::select! {
            biased;
            () = conn.wake.notified() => served.handle_order(Instant::now()),
            () = timer.fired() => served.handle_timeout(Instant::now()),
            changed = reloads.changed(), if !served.is_disconnected() => if changed.is_ok() {
                let config = Arc::clone(&reloads.borrow_and_update());
                served.handle_reload(Instant::now(), &config);
            },
            Some((id, answer)) = next_answer(&mut answers) => {
                // Answers that end together go out together (one write, one
                // TLS record), not one by one.
                let now = Instant::now();
                served.handle_answer(now, id, answer);
                while let Some((id, answer)) = answers.as_mut().and_then(|(_, a)| a.try_recv().ok()) {
                    served.handle_answer(now, id, answer);
                }
            }
            writable = io.stream.writable(), if !io.is_flushed() && !served.is_disconnected() => {
                if let Err(error) = writable {
                    served.handle_cut(Instant::now(), Cut::Reset(error.kind()));
                }
            }
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
}

/// The next answer given later; pending while none can come.
async fn next_answer(
    answers: &mut Option<(AnswerSender, mpsc::UnboundedReceiver<Answer>)>,
) -> Option<Answer> {
    match answers {
        Some((_, receiver)) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
