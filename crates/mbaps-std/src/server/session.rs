//! One connection's thread: the run loop of an `mbaps_admission::Served`
//! connection, and nothing else (its rules are the served connection's).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mbaps_admission::{Answering, Seat, Served, SessionReport};
use mbaps_session::{Cut, Handler, ServerConfig};

use super::connection::Conn;
use super::reload::{RELOAD_CHECK, Reloader};

/// Bytes read from the socket at a time: one TLS record's worth.
const READ_CHUNK: usize = 16 * 1024;

/// What the accept thread hands a connection's thread.
pub(crate) struct Connection {
    pub(crate) seat: Seat<Arc<Conn>>,
    pub(crate) report: SessionReport,
    /// The configuration in force at accept, and its reload generation.
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) generation: u64,
    /// Configurations reloaded while the session runs.
    pub(crate) reloads: Reloader,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) write_timeout: Duration,
}

/// Serves one accepted connection until it is over.
pub(crate) fn run(connection: Connection, mut stream: TcpStream) {
    let Connection {
        seat,
        report,
        config,
        mut generation,
        reloads,
        handler,
        write_timeout,
    } = connection;
    let _ = stream.set_nodelay(true);
    let answering = Answering::Now(handler);
    let now = Instant::now();
    let Ok(mut served) = Served::new(&config, seat, report, answering, write_timeout, now) else {
        return;
    };
    served.running();
    let (mut input, mut out) = (vec![0u8; READ_CHUNK], Vec::new());
    while !served.is_over() {
        let now = Instant::now();
        out.clear();
        if served.poll_transmit(now, &mut out) > 0 {
            write(&mut served, &mut stream, &out);
            continue;
        }
        // At most RELOAD_CHECK: a reloaded configuration (a CRL that
        // revokes this client) is looked for even while idle.
        let wait = served.poll_timeout().map_or(RELOAD_CHECK, |deadline| {
            deadline
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), RELOAD_CHECK)
        });
        let read = if served.wants_read() {
            let _ = stream.set_read_timeout(Some(wait));
            stream.read(&mut input)
        } else {
            std::thread::sleep(wait);
            Err(ErrorKind::TimedOut.into())
        };
        // A configuration reloaded meanwhile applies to what was read.
        let now = Instant::now();
        if let Some(config) = reloads.newer(&mut generation) {
            served.handle_reload(now, &config);
        }
        // An order wakes the read (its socket's read side shut down): the
        // served connection obeys it before it takes an end of stream.
        match read {
            Ok(0) => served.handle_eof(now),
            Ok(n) => served.handle_read(now, &input[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                served.handle_timeout(now)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => served.handle_cut(now, Cut::Reset(e.kind())),
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Writes `bytes`, within the served connection's deadlines. A first
/// attempt does not wait: if the peer takes nothing, the session counts as
/// stalled from now (admission control closes stalled sessions first).
fn write(served: &mut Served<Arc<Conn>>, stream: &mut TcpStream, bytes: &[u8]) {
    let mut written = 0;
    let mut waited = false;
    while written < bytes.len() {
        let now = Instant::now();
        let wait = match served.poll_timeout() {
            Some(deadline) if deadline <= now => {
                served.handle_timeout(now);
                if served.is_disconnected() {
                    return;
                }
                continue;
            }
            Some(deadline) => Some(deadline - now),
            None => None,
        };
        let set = if waited {
            stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_write_timeout(wait))
        } else {
            stream.set_nonblocking(true)
        };
        if let Err(error) = set {
            return served.handle_cut(now, Cut::Reset(error.kind()));
        }
        match stream.write(&bytes[written..]) {
            Ok(0) => return served.handle_cut(now, Cut::Reset(ErrorKind::WriteZero)),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !waited {
                    waited = true;
                    served.handle_written(now, false);
                }
            }
            Err(e) => return served.handle_cut(now, Cut::Reset(e.kind())),
        }
    }
    let _ = stream.set_nonblocking(false);
    served.handle_written(Instant::now(), true);
}
