//! The task that owns the connection's life: it connects, reconnects,
//! closes, keeps the session's deadlines, sends the calls that come while
//! others are in flight, and reads every answer a caller does not read on
//! its own task. No call waits on another call's future being polled:
//! any wake of the driver takes the socket's reader slot back from a call
//! reading its own answer.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use mbaps_session::rustls::pki_types::ServerName;
use mbaps_session::{ClientConfig, ClientError, CloseReason};
use tokio::sync::{mpsc, watch};

use super::link::{Link, Waited, open, wait};
use super::shared::{End, Reply, Shared, lock};
use super::{Command, Reconnect};
use crate::timer::Timer;

pub(super) struct Driver {
    pub(super) addresses: Vec<SocketAddr>,
    pub(super) config: Arc<ClientConfig>,
    pub(super) server_name: ServerName<'static>,
    pub(super) reconnect: Option<Reconnect>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) close: watch::Receiver<bool>,
    pub(super) shared: Arc<Mutex<Shared>>,
    /// Ends a wait, for what a caller's step left undone.
    pub(super) nudge: Arc<AtomicBool>,
    pub(super) timer: Timer,
    /// A call taken from the queue while `max_outstanding` calls were in
    /// flight (one sent on its caller's task took the last place): it
    /// goes first when a place frees.
    pub(super) held: Option<Command>,
}

impl Drop for Driver {
    /// However the driver ends (its client ended, its task dropped with
    /// its runtime, a defect that panicked), no call waits for it: the
    /// connection is taken away from the callers, and every call still
    /// waiting gets the error.
    fn drop(&mut self) {
        let mut shared = lock(&self.shared);
        shared.link = None;
        shared.holding = false;
        shared.publish_idle();
        let error = shared
            .ended
            .get_or_insert_with(|| {
                std::io::Error::other("the client's task ended before the client did").into()
            })
            .clone();
        for (_, reply) in shared.waiting.drain() {
            let _ = reply.send(Err(error.clone()));
        }
        if let Some(held) = self.held.take() {
            let _ = held.reply.send(Err(error));
        }
    }
}

impl Driver {
    pub(super) async fn run(mut self, mut link: Link) {
        loop {
            let error = self.serve(link).await;
            let lost = error.is_some();
            // Every call in flight ends with the error that ended the link.
            let error = error.unwrap_or(ClientError::Closed(CloseReason::LocalClose));
            for (_, reply) in lock(&self.shared).waiting.drain() {
                let _ = reply.send(Err(error.clone()));
            }
            let reconnected = match self.reconnect {
                Some(policy) if lost => self.reopen(policy).await,
                _ => None,
            };
            match reconnected {
                Some(reopened) => link = reopened,
                None => {
                    tracing::debug!(%error, "client ended");
                    // The held call gets it too, as the driver is dropped.
                    lock(&self.shared).ended = Some(error);
                    return;
                }
            }
        }
    }

    /// Runs the connection until it ends: `None` when it was closed on
    /// our side ([`TokioClient::close`](super::TokioClient::close), or
    /// every handle dropped: calls in flight aborted, close_notify sent,
    /// the server's awaited), the error otherwise.
    async fn serve(&mut self, link: Link) -> Option<ClientError> {
        let stream = Arc::clone(&link.stream);
        let driver = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        {
            let mut shared = lock(&self.shared);
            shared.link = Some(link);
            shared.end = None;
        }
        let max = self.config.max_outstanding();
        let mut closing = false;
        // Made once: a wait on the watch made anew each turn would
        // register with it and leave it again every time.
        let mut close = self.close.clone();
        let mut close_requested = pin!(requested(&mut close));
        let (end, link) = loop {
            let (writing, accepting, due) = {
                let mut guard = lock(&self.shared);
                let shared = &mut *guard;
                // The end and the connection go together, so that no call
                // is sent on a connection that has ended.
                if let Some(end) = shared.end.take() {
                    shared.holding = false;
                    let link = shared.link.take();
                    shared.publish_idle();
                    break (end, link);
                }
                let Some(link) = shared.link.as_mut() else {
                    break (
                        End::Failed(std::io::Error::other("the connection is gone")),
                        None,
                    );
                };
                if link.session.in_flight() < max
                    && let Some(held) = self.held.take()
                {
                    send(link, &mut shared.waiting, held);
                }
                link.take_output();
                // At most one request timeout ahead: a call sent on its
                // caller's task with that timeout is due later, and need
                // not wake the driver to say so; and what comes while a
                // call left unpolled holds the reader slot (an alert, the
                // server's close) is read within that time.
                // (At least a second ahead: a client set to time out in a
                // millisecond does not wake a thousand times a second
                // when idle.)
                let horizon = now_plus(self.config.request_timeout().max(HORIZON_FLOOR));
                let next = match (link.session.poll_timeout(), horizon) {
                    (Some(next), Some(horizon)) => Some(next.min(horizon)),
                    (next, horizon) => next.or(horizon),
                };
                self.timer.set(next);
                // One call is taken even when the calls in flight are at
                // the limit: held, it tells a caller reading its own answer
                // to wake the driver when a place frees.
                let accepting = !closing && self.held.is_none();
                let writing = link.writing();
                shared.holding = self.held.is_some();
                shared.driver_waits(&driver, self.timer.armed());
                (writing, accepting, self.timer.armed())
            };
            let waited = wait(
                &stream,
                &mut self.timer,
                writing,
                accepting.then_some(&mut self.commands),
                Some(&self.nudge),
                (!closing).then_some(close_requested.as_mut()),
            )
            .await;
            let mut guard = lock(&self.shared);
            let shared = &mut *guard;
            let now = match waited {
                Ok(Waited::Deadline) => at_deadline(due),
                _ => Instant::now(),
            };
            let stepped = match (waited, shared.link.as_mut()) {
                (Err(error), _) => Err(error),
                (Ok(_), None) => Ok(()),
                (Ok(Waited::Close | Waited::Command(None)), Some(link)) => {
                    closing = true;
                    link.session.close(now);
                    if let Some(held) = self.held.take() {
                        let _ = held
                            .reply
                            .send(Err(ClientError::Closed(CloseReason::LocalClose)));
                    }
                    Ok(())
                }
                // The connection ended meanwhile (a caller's step saw it):
                // the call waits for the next one, as a queued call does.
                (Ok(Waited::Command(Some(command))), Some(_)) if shared.end.is_some() => {
                    self.held = Some(command);
                    Ok(())
                }
                (Ok(Waited::Command(Some(command))), Some(link)) => {
                    if link.session.in_flight() < max {
                        send(link, &mut shared.waiting, command);
                        // Calls queued meanwhile go out in the same write
                        // (and the same TLS record).
                        while link.session.in_flight() < max {
                            let Ok(command) = self.commands.try_recv() else {
                                break;
                            };
                            send(link, &mut shared.waiting, command);
                        }
                    } else {
                        self.held = Some(command);
                    }
                    Ok(())
                }
                (Ok(waited), Some(link)) => link.step(waited, now),
            };
            if let Err(error) = stepped {
                shared.end.get_or_insert(End::Failed(error));
            }
            shared.deliver_outcomes(None);
        };
        match end {
            // The connection is gone: responses that came before were
            // handed over; the calls still waiting get the error.
            End::Failed(error) => (!closing).then(|| error.into()),
            End::Closed(reason) => {
                // What the session owes the server (close_notify in answer
                // to its own, or an alert), then the end. A close of ours
                // had its close timeout for that already.
                if let (false, Some(mut link)) = (closing, link) {
                    let _ = link.write_owed().await;
                }
                (!closing).then(|| ClientError::from(reason))
            }
        }
    }

    /// Reconnects with backoff; `None` when attempts ran out or every handle
    /// was dropped meanwhile.
    async fn reopen(&mut self, policy: Reconnect) -> Option<Link> {
        let mut delay = policy.initial_delay;
        let mut attempt = 0u32;
        loop {
            // A close ends the waiting and the attempt alike.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = requested(&mut self.close) => return None,
            }
            attempt += 1;
            let opened = tokio::select! {
                opened = open(&self.addresses, &self.config, &self.server_name, &mut self.timer) => opened,
                () = requested(&mut self.close) => return None,
            };
            match opened {
                Ok(link) => {
                    tracing::info!(attempt, "reconnected");
                    return Some(link);
                }
                Err(error) => {
                    tracing::warn!(attempt, %error, "reconnect failed");
                    if policy.max_attempts.is_some_and(|max| attempt >= max) {
                        return None;
                    }
                }
            }
            delay = (delay * 2).min(policy.max_delay);
        }
    }
}

/// Queues `command` on the session; a call it refuses gets the error.
fn send(link: &mut Link, waiting: &mut HashMap<u16, Reply>, command: Command) {
    // Its caller gave up while it waited for the driver: not sent.
    if command.reply.is_closed() {
        return;
    }
    let sent = link.session.send_request_pdu(
        Instant::now(),
        command.unit_id,
        &command.pdu,
        command.timeout,
    );
    match sent {
        Ok(transaction_id) => {
            waiting.insert(transaction_id, command.reply);
        }
        Err(error) => {
            let _ = command.reply.send(Err(error.into()));
        }
    }
}

/// The shortest time the driver's timer is set ahead when nothing is due
/// sooner.
const HORIZON_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The time to tell the session when the timer for `due` fired: not
/// before `due`, so that what was due is (a timer may fire a little early
/// by the clock, and under tokio's paused time, long before it).
pub(super) fn at_deadline(due: Option<Instant>) -> Instant {
    let now = Instant::now();
    due.map_or(now, |due| now.max(due))
}

/// `now + timeout`, if the clock goes that far.
fn now_plus(timeout: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Completes once [`TokioClient::close`](super::TokioClient::close) is
/// called or every handle is gone (the sender with them).
pub(super) async fn requested(close: &mut watch::Receiver<bool>) {
    let _ = close.wait_for(|&requested| requested).await;
}
