//! One connection's control side: what admission control (or `stop`) may
//! order its thread to do, and how the order reaches a blocked thread.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};

/// What a connection's thread is ordered to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Command {
    /// Nothing.
    None = 0,
    /// Close with close_notify: an idle session closed to make room, or
    /// the server stopping.
    Close = 1,
    /// End at once: a pending handshake that gave way, or a session whose
    /// peer stopped reading.
    Drop = 2,
}

/// The admission table's handle on a connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    /// A second descriptor on the socket: shutting it down wakes the
    /// connection's thread from a blocking read (and, for `Drop`, write).
    control: TcpStream,
    command: AtomicU8,
}

impl Conn {
    pub(crate) fn new(peer: SocketAddr, control: TcpStream) -> Conn {
        Conn {
            peer,
            control,
            command: AtomicU8::new(Command::None as u8),
        }
    }

    /// Orders the thread (`Drop` outranks `Close`) and wakes it: a read
    /// returns at once; for `Drop`, a write fails at once too.
    pub(crate) fn order(&self, command: Command) {
        self.command.fetch_max(command as u8, Ordering::AcqRel);
        let how = match command {
            Command::Drop => Shutdown::Both,
            _ => Shutdown::Read,
        };
        let _ = self.control.shutdown(how);
    }

    /// The strongest order given so far.
    pub(crate) fn command(&self) -> Command {
        match self.command.load(Ordering::Acquire) {
            0 => Command::None,
            1 => Command::Close,
            _ => Command::Drop,
        }
    }
}
