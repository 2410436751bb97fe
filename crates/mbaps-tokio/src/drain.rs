//! A read that tells tokio when it drained the socket.

use std::io::{ErrorKind, Read as _};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what the socket has into `buf` without waiting: `Some(n)` bytes
/// (0 at the end of the stream), `None` when there were none.
///
/// A read that does not fill the buffer has drained the socket: its
/// readiness is cleared then, as tokio's own reads judge, and the next
/// wait is for the next bytes instead of a read that finds none (tokio's
/// `try_read` clears it only on `WouldBlock`: one system call more per
/// exchange, with one request at a time on a connection).
pub(crate) fn try_read_draining(
    stream: &TcpStream,
    buf: &mut [u8],
) -> std::io::Result<Option<usize>> {
    let capacity = buf.len();
    let mut read = None;
    let tried = stream.try_io(Interest::READABLE, || {
        let n = (&*SockRef::from(stream)).read(buf)?;
        read = Some(n);
        // As tokio judges it too, and not where the selector is level
        // triggered (Windows), where a wake-up could be lost.
        if n > 0 && n < capacity && !cfg!(windows) {
            // Taken by `try_io` as "drained": the readiness is cleared
            // (unless an event came meanwhile).
            Err(ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match (read, tried) {
        (Some(n), _) => Ok(Some(n)),
        (None, Err(error)) if error.kind() != ErrorKind::WouldBlock => Err(error),
        (None, _) => Ok(None),
    }
}
