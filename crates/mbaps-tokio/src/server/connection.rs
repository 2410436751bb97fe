//! One connection's socket side: what admission control may order it to
//! do, and its bounded input and output. An idle connection holds no
//! buffer: reads go through one scratch buffer per worker thread, and only
//! what the session did not take yet (rare) is kept.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mbaps_admission::{Handle, Order, Orders};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::timer::Timer;

/// Bytes read from the socket at a time: one TLS record's worth.
const READ_CHUNK: usize = 16 * 1024;

/// Buffer capacity kept between batches: a batch of small responses'
/// records. More (a handshake flight, a batch of long reads) is released
/// once used, so that an idle connection holds little.
const KEPT_CAPACITY: usize = 1024;

thread_local! {
    /// The read buffer of every connection running on this thread: a read
    /// is handed to its session before the task yields.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// The admission table's handle on a connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) orders: Orders,
    wake: Notify,
}

impl Conn {
    pub(crate) fn new(peer: SocketAddr) -> Conn {
        Conn {
            peer,
            orders: Orders::default(),
            wake: Notify::new(),
        }
    }

    /// Waits for an order stronger than `after` (the last one obeyed).
    pub(crate) async fn ordered(&self, after: Order) -> Order {
        loop {
            let order = self.orders.strongest();
            if order > after {
                return order;
            }
            self.wake.notified().await;
        }
    }
}

impl Handle for Conn {
    fn peer(&self) -> SocketAddr {
        self.peer
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
    /// Bytes came (handed to the session already).
    Bytes,
}

/// The socket with the input the session has not taken yet and the
/// output the peer has not taken yet. Output is only refilled once it has
/// all been written, so at most one `poll_transmit` (the session's output
/// bound) waits per connection.
pub(crate) struct Io {
    pub(crate) stream: TcpStream,
    /// Input read and not taken yet by the session (usually empty).
    input: Vec<u8>,
    eof: bool,
    out: Vec<u8>,
    written: usize,
    /// When the current output first found the peer not reading.
    blocked_since: Option<Instant>,
    write_timeout: Duration,
    pub(crate) write_timer: Timer,
}

impl Io {
    pub(crate) fn new(stream: TcpStream, write_timeout: Duration) -> Io {
        Io {
            stream,
            input: Vec::new(),
            eof: false,
            out: Vec::new(),
            written: 0,
            blocked_since: None,
            write_timeout,
            write_timer: Timer::new(),
        }
    }

    /// Offers the input kept from an earlier read to `take`, which returns
    /// how much it took.
    pub(crate) fn offer(&mut self, take: impl FnOnce(&[u8]) -> usize) {
        if self.input.is_empty() {
            return;
        }
        let taken = take(&self.input);
        self.input.drain(..taken);
        if self.input.is_empty() && self.input.capacity() > KEPT_CAPACITY {
            self.input = Vec::new();
        }
    }

    /// Input kept from an earlier read, not taken yet.
    pub(crate) fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Whether a read may be tried: the peer's stream has not ended and
    /// all input so far was taken.
    pub(crate) fn may_read(&self) -> bool {
        !self.eof && self.input.is_empty()
    }

    /// Reads what the socket has into the thread's scratch buffer and
    /// offers it to `take` at once; keeps what it did not take.
    pub(crate) fn try_read(&mut self, take: impl FnOnce(&[u8]) -> usize) -> std::io::Result<Read> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            match self.stream.try_read(&mut scratch) {
                Ok(0) => {
                    self.eof = true;
                    Ok(Read::End)
                }
                Ok(n) => {
                    let taken = take(&scratch[..n]);
                    self.input.extend_from_slice(&scratch[taken..n]);
                    Ok(Read::Bytes)
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => Ok(Read::Nothing),
                Err(error) => Err(error),
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

    /// Writes what the socket takes without waiting. When the peer takes
    /// nothing, the write timeout starts (once per output batch: taking a
    /// byte now and then does not renew it).
    pub(crate) fn flush(&mut self, now: Instant) -> std::io::Result<()> {
        while self.written < self.out.len() {
            match self.stream.try_write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    if self.blocked_since.is_none() {
                        self.blocked_since = Some(now);
                        self.write_timer.set(Some(now + self.write_timeout));
                    }
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
        self.blocked_since = None;
        self.write_timer.set(None);
        if self.out.capacity() > KEPT_CAPACITY {
            self.out = Vec::new();
            self.written = 0;
        }
        Ok(())
    }

    /// Since when the peer has not taken our output, if it has not.
    pub(crate) fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        self.write_timeout
    }
}
