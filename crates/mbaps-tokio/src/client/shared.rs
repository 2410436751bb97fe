//! What the driver and the calling tasks share, behind one lock.
//!
//! The lock is held only for steps that never wait (a request queued and
//! written as far as the socket takes it, what the socket has read and
//! handed over), never across an `await`: a call whose future is not
//! polled holds no lock (only its place among the calls in flight, and
//! perhaps the socket's reader slot, which the driver takes back at its
//! next wake). What a caller does on its own is an optimisation
//! of one case, a call alone on an idle connection; everything else, and
//! everything a caller's step leaves undone, is the driver's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use mbaps_session::{ClientError, CloseReason, Outcome, Pdu};
use tokio::sync::oneshot;

use super::Command;
use super::link::Link;

/// Where a call's result goes.
pub(super) type Reply = oneshot::Sender<Result<Pdu, ClientError>>;

/// How the current connection ended, as the first step that saw it found.
pub(super) enum End {
    /// The session reported its end.
    Closed(CloseReason),
    /// The socket failed.
    Failed(std::io::Error),
}

/// The state behind the lock.
pub(super) struct Shared {
    /// The connection, while it is up (`None` while the driver connects,
    /// reconnects, or has ended).
    pub(super) link: Option<Link>,
    /// The calls in flight on `link`, by transaction id.
    pub(super) waiting: HashMap<u16, Reply>,
    /// How `link` ended; the driver acts on it.
    pub(super) end: Option<End>,
    /// Why the client ended, once it has.
    pub(super) ended: Option<ClientError>,
    /// Ends the driver's wait, for what a caller's step left undone.
    nudge: Arc<AtomicBool>,
    /// Whether a call may be sent on its caller's task, as of the last
    /// step: read without the lock, so that calls made while others are
    /// in flight go to the driver without touching it.
    idle: Arc<AtomicBool>,
    /// The driver's waker, where a caller that took the socket's reader
    /// slot hands it back.
    driver: Option<Waker>,
    /// The deadline the driver's timer is set to.
    armed: Option<Instant>,
    /// The driver holds a call until one in flight ends (`max_outstanding`
    /// reached by a call sent on its caller's task).
    pub(super) holding: bool,
    /// The configuration's `max_outstanding`.
    max_outstanding: usize,
}

/// Where a call went.
// The call travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
pub(super) enum Sent {
    /// On its caller's task, under this transaction id (`None`: the
    /// session refused it, and its reply has the error).
    Directly(Option<u16>),
    /// Not on an idle connection: the call is the driver's.
    ToDriver(Command),
}

/// A call's result, taken by its own task with its reply: the task drops
/// its receiving end first, so that the reply's drop wakes nobody.
pub(super) type Answered = (Result<Pdu, ClientError>, Reply);

/// What [`Shared::read_for`] did.
// The answer travels inline, moved once: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
pub(super) enum ReadFor {
    /// The call's own answer came in.
    Answered(Answered),
    /// Bytes were handed to the session: the answer may be in.
    Progress,
    /// Nothing to read: the caller now holds the socket's reader slot.
    Waiting,
    /// The call is not the only one in flight, or the connection is not
    /// the caller's to read: its answer comes from the driver.
    NotMine,
}

/// Locks `shared`.
pub(super) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| recover(shared, poisoned))
}

/// Locks `shared` if nobody holds it.
pub(super) fn try_lock(shared: &Mutex<Shared>) -> Option<MutexGuard<'_, Shared>> {
    match shared.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(recover(shared, poisoned)),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A step panicked under the lock (a defect): the session may be out of
/// step with the socket, so the connection ends, as after a failed read.
fn recover<'a>(
    shared: &Mutex<Shared>,
    poisoned: PoisonError<MutexGuard<'a, Shared>>,
) -> MutexGuard<'a, Shared> {
    let mut guard = poisoned.into_inner();
    guard.end.get_or_insert(End::Failed(std::io::Error::other(
        "a step on the connection panicked",
    )));
    guard.nudge_driver();
    shared.clear_poison();
    guard
}

impl Shared {
    /// Nothing yet: the driver connects; `nudge` ends its waits.
    pub(super) fn new(
        nudge: Arc<AtomicBool>,
        idle: Arc<AtomicBool>,
        max_outstanding: usize,
    ) -> Shared {
        Shared {
            link: None,
            waiting: HashMap::new(),
            end: None,
            ended: None,
            nudge,
            idle,
            driver: None,
            armed: None,
            holding: false,
            max_outstanding,
        }
    }

    /// Called by the driver before each wait: where to hand the reader
    /// slot back, and when its timer fires.
    pub(super) fn driver_waits(&mut self, driver: &Waker, armed: Option<Instant>) {
        if !self
            .driver
            .as_ref()
            .is_some_and(|known| known.will_wake(driver))
        {
            self.driver = Some(driver.clone());
        }
        self.armed = armed;
        self.publish_idle();
    }

    /// Whether a call may be sent on its caller's task: the connection
    /// is up, the driver has waited on it, and nothing is in flight, held
    /// or waiting to be written.
    fn is_idle(&self) -> bool {
        !self.holding
            && self.end.is_none()
            && self.driver.is_some()
            && self.link.as_ref().is_some_and(|link| {
                link.session.is_connected() && link.session.in_flight() == 0 && !link.writing()
            })
    }

    /// Says whether the connection is idle to the calls about to be made.
    pub(super) fn publish_idle(&self) {
        self.idle.store(self.is_idle(), Ordering::Relaxed);
    }

    /// Sends `command` on the caller's task when the connection is idle
    /// and nothing is queued for the driver (`queued`). Otherwise the
    /// command comes back, for the driver.
    pub(super) fn send_directly(&mut self, command: Command, queued: bool) -> Sent {
        if queued || !self.is_idle() {
            return Sent::ToDriver(command);
        }
        let Some(link) = self.link.as_mut() else {
            return Sent::ToDriver(command);
        };
        let now = Instant::now();
        let sent =
            link.session
                .send_request_pdu(now, command.unit_id, &command.pdu, command.timeout);
        match sent {
            Ok(transaction_id) => {
                self.waiting.insert(transaction_id, command.reply);
                // Nobody waits on its reply yet: an answer here goes there.
                self.after_call_step(None);
                Sent::Directly(Some(transaction_id))
            }
            // Not sent: its error is its answer, as the driver gives it.
            Err(error) => {
                let _ = command.reply.send(Err(error.into()));
                // A refusal may have ended the session (its buffer full).
                self.after_call_step(None);
                Sent::Directly(None)
            }
        }
    }

    /// Reads for call `transaction_id` when it is the only one in flight;
    /// with nothing to read, its task takes the socket's reader slot.
    pub(super) fn read_for(&mut self, transaction_id: u16, cx: &mut Context<'_>) -> ReadFor {
        let Some(link) = self.link.as_mut() else {
            return ReadFor::NotMine;
        };
        let alone = link.session.in_flight() == 1 && self.waiting.contains_key(&transaction_id);
        if !alone || self.end.is_some() {
            return ReadFor::NotMine;
        }
        let read = match link.read_some(Instant::now()) {
            Ok(true) => ReadFor::Progress,
            Ok(false) => match link.stream.poll_read_ready(cx) {
                Poll::Pending => ReadFor::Waiting,
                Poll::Ready(Ok(())) => ReadFor::Progress,
                Poll::Ready(Err(error)) => {
                    self.end.get_or_insert(End::Failed(error));
                    ReadFor::NotMine
                }
            },
            Err(error) => {
                self.end.get_or_insert(End::Failed(error));
                ReadFor::NotMine
            }
        };
        match self.after_call_step(Some(transaction_id)) {
            Some(answered) => ReadFor::Answered(answered),
            None => read,
        }
    }

    /// Ends the driver's wait.
    fn nudge_driver(&self) {
        // Set first: the woken driver finds it at its next poll (a driver
        // that has not waited yet, at its first).
        self.nudge.store(true, Ordering::Release);
        if let Some(driver) = &self.driver {
            driver.wake_by_ref();
        }
    }

    /// Gives the socket's reader slot back to the driver: it is woken by
    /// the next bytes again (at once, if some are there).
    pub(super) fn give_back_reading(&mut self) {
        let (Some(link), Some(driver)) = (self.link.as_ref(), self.driver.as_ref()) else {
            return;
        };
        let mut cx = Context::from_waker(driver);
        if link.stream.poll_read_ready(&mut cx).is_ready() {
            driver.wake_by_ref();
        }
    }

    /// Hands every outcome to its caller (a caller that gave up is gone:
    /// its outcome is dropped), but call `mine`'s, which is returned; the
    /// session's end is kept for the driver.
    pub(super) fn deliver_outcomes(&mut self, mine: Option<u16>) -> Option<Answered> {
        let mut answered = None;
        let Some(link) = self.link.as_mut() else {
            return answered;
        };
        while let Some(event) = link.session.poll_event() {
            match Outcome::from(event) {
                Outcome::Call {
                    transaction_id,
                    result,
                } => {
                    let Some(reply) = self.waiting.remove(&transaction_id) else {
                        continue;
                    };
                    if mine == Some(transaction_id) {
                        answered = Some((result, reply));
                    } else {
                        let _ = reply.send(result);
                    }
                }
                Outcome::Closed(reason) => {
                    self.end.get_or_insert(End::Closed(reason));
                }
                Outcome::Connected(_) | Outcome::Dropped { .. } => {}
            }
        }
        answered
    }

    /// After a caller's step: the output is written as far as the socket
    /// takes it, the outcomes go out, and the driver is woken for what the
    /// step left (the end of the connection, output the socket did not
    /// take, a deadline before the one it waits for, a call it holds).
    /// Returns call `mine`'s answer, if it came.
    fn after_call_step(&mut self, mine: Option<u16>) -> Option<Answered> {
        if let Some(Err(error)) = self.link.as_mut().map(Link::write_some) {
            self.end.get_or_insert(End::Failed(error));
        }
        let answered = self.deliver_outcomes(mine);
        let Some(link) = self.link.as_ref() else {
            return answered;
        };
        let earlier = match (link.session.poll_timeout(), self.armed) {
            (Some(next), Some(armed)) => next < armed,
            (next, armed) => next.is_some() && armed.is_none(),
        };
        // A held call goes once a place frees.
        let place = self.holding && link.session.in_flight() < self.max_outstanding;
        let undone = self.end.is_some() || link.writing() || earlier || place;

        self.publish_idle();
        if undone {
            self.nudge_driver();
        }
        answered
    }
}
