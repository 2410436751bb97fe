//! One connection's socket side: the admission table's handle on it (its
//! orders, and the wake-up that carries them), and its output. An idle
//! connection holds no buffer: reads go through one scratch buffer per
//! worker thread, and what the session did not take yet (rare) is kept by
//! the served connection.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;

use mbaps_admission::{Handle, Order, Orders};
use tokio::net::TcpStream;

use crate::drain::try_read_draining;
use tokio::sync::Notify;

/// Bytes read from the socket at a time: one TLS record's worth.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The read buffer of every connection running on this thread: a read
    /// is handed to its session before the task yields.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// The admission table's handle on a connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    orders: Orders,
    pub(crate) wake: Notify,
}

impl Conn {
    pub(crate) fn new(peer: SocketAddr) -> Conn {
        Conn {
            peer,
            orders: Orders::default(),
            wake: Notify::new(),
        }
    }
}

impl Handle for Conn {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn orders(&self) -> &Orders {
        &self.orders
    }

    /// Orders the connection's task and wakes it.
    fn order(&self, order: Order) {
        self.orders.give(order);
        self.wake.notify_one();
    }
}

/// What a read gave.
pub(crate) enum Read {
    /// Nothing was there after all.
    Nothing,
    /// The peer's stream ended.
    End,
    /// Bytes came (handed over already).
    Bytes,
}

/// The socket and the output the peer has not taken yet. Output is only
/// refilled once it has all been written, so at most one `poll_transmit`
/// (the session's output bound) waits per connection.
pub(crate) struct Io {
    pub(crate) stream: TcpStream,
    out: Vec<u8>,
    written: usize,
}

impl Io {
    pub(crate) fn new(stream: TcpStream) -> Io {
        Io {
            stream,
            out: Vec::new(),
            written: 0,
        }
    }

    /// Reads what the socket has into the thread's scratch buffer and
    /// hands it to `take` at once (see [`try_read_draining`]).
    pub(crate) fn try_read(&mut self, take: impl FnOnce(&[u8])) -> std::io::Result<Read> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match try_read_draining(&self.stream, &mut scratch)? {
                Some(0) => Ok(Read::End),
                Some(n) => {
                    take(&scratch[..n]);
                    Ok(Read::Bytes)
                }
                None => Ok(Read::Nothing),
            }
        })
    }

    /// Whether all output was written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.written == self.out.len()
    }

    /// The buffer to append new output to (empty: only refilled once
    /// flushed).
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        debug_assert!(self.is_flushed());
        self.out.clear();
        self.written = 0;
        &mut self.out
    }

    /// Writes what the socket takes without waiting; whether all of it was.
    pub(crate) fn flush(&mut self) -> std::io::Result<bool> {
        while self.written < self.out.len() {
            match self.stream.try_write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        // Released once written, so that an idle connection holds no
        // output buffer (a batch's allocation is small beside its work).
        self.out = Vec::new();
        self.written = 0;
        Ok(true)
    }
}
