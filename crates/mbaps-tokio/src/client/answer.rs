//! A call sent on its caller's task, waiting for its answer.
//!
//! While it is the only call in flight its task reads the socket itself,
//! holding the socket's reader slot between polls: the answer wakes the
//! caller, not the driver, and no hand-off is made either way. It holds
//! the slot, never the connection: the driver takes the slot back at its
//! next wait (a new call, a deadline, a close all wake it, and its timer
//! fires at least once per request timeout). So a future that is not
//! polled holds up no other call and no close; what the server sends
//! unasked meanwhile (an alert, its close) waits for the driver's next
//! wake, at most one request timeout.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use mbaps_session::{ClientError, Pdu};
use tokio::sync::oneshot;

use super::shared::{ReadFor, Shared, lock, try_lock};

/// The most reads one poll makes before it lets other tasks run (a server
/// that floods the connection cannot hold a worker).
const READS_PER_POLL: usize = 8;

/// The future of a call sent on its caller's task.
pub(super) struct Answer<'a> {
    shared: &'a Mutex<Shared>,
    /// `None` when the session refused the call (its reply has the error).
    transaction_id: Option<u16>,
    /// Where the driver (or another step) puts the answer; `None` once
    /// this task took it itself.
    result: Option<oneshot::Receiver<Result<Pdu, ClientError>>>,
    /// Whether this task took the socket's reader slot.
    reading: bool,
}

impl<'a> Answer<'a> {
    pub(super) fn new(
        shared: &'a Mutex<Shared>,
        transaction_id: Option<u16>,
        result: oneshot::Receiver<Result<Pdu, ClientError>>,
    ) -> Answer<'a> {
        Answer {
            shared,
            transaction_id,
            result: Some(result),
            reading: false,
        }
    }

    fn stop_reading(&mut self) {
        if self.reading {
            self.reading = false;
            lock(self.shared).give_back_reading();
        }
    }
}

impl Future for Answer<'_> {
    /// The call's result; `None` when the client ended before it came.
    type Output = Option<Result<Pdu, ClientError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for _ in 0..READS_PER_POLL {
            let Some(result) = this.result.as_mut() else {
                // Taken already: a poll after the end.
                return Poll::Ready(None);
            };
            if let Poll::Ready(result) = Pin::new(result).poll(cx) {
                this.stop_reading();
                return Poll::Ready(result.ok());
            }
            let Some(transaction_id) = this.transaction_id else {
                return Poll::Pending;
            };
            let Some(mut shared) = try_lock(this.shared) else {
                // The driver's step, or another call's: the answer comes
                // through the reply. A wake that took us out of the reader
                // slot is not lost: we look again.
                if this.reading {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            };
            match shared.read_for(transaction_id, cx) {
                ReadFor::Answered((result, reply)) => {
                    // Our own receiver goes first, so that dropping the
                    // reply does not wake this task for nothing.
                    this.result = None;
                    drop(reply);
                    if this.reading {
                        this.reading = false;
                        shared.give_back_reading();
                    }
                    return Poll::Ready(Some(result));
                }
                ReadFor::Progress => {}
                ReadFor::Waiting => {
                    this.reading = true;
                    return Poll::Pending;
                }
                ReadFor::NotMine => {
                    if this.reading {
                        this.reading = false;
                        shared.give_back_reading();
                    }
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Answer<'_> {
    /// A call given up (its timeout, a `select!` it lost) hands the reader
    /// slot back.
    fn drop(&mut self) {
        self.stop_reading();
    }
}
