//! What admission control orders a connection to do, how the order
//! reaches the connection's task, and carrying out the table's decisions:
//! the rules both server adapters follow, written once.

use core::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::{Admitted, Dropped, EvictionReason, SessionLog};

/// An order to a connection's task. Stronger orders outrank weaker ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Order {
    /// Nothing (yet).
    None = 0,
    /// The server is stopping: answer the requests received, then close
    /// with close_notify (the end is `shutdown`).
    Stop = 1,
    /// Close with close_notify now: an idle session closed to make room
    /// (the end is `evicted`).
    Close = 2,
    /// End at once: a pending handshake that gave way, a session whose
    /// peer stopped reading (it would not take a close_notify), or one
    /// still open when a stopping server's grace period is over.
    Drop = 3,
}

/// The strongest order given to one connection: written by whoever
/// orders, read by the connection's task.
#[derive(Debug, Default)]
pub struct Orders(AtomicU8);

impl Orders {
    /// Gives `order`; a weaker one than given already changes nothing.
    pub fn give(&self, order: Order) {
        self.0.fetch_max(order as u8, Ordering::AcqRel);
    }

    /// The strongest order given so far.
    pub fn strongest(&self) -> Order {
        match self.0.load(Ordering::Acquire) {
            0 => Order::None,
            1 => Order::Stop,
            2 => Order::Close,
            _ => Order::Drop,
        }
    }
}

impl EvictionReason {
    /// How the evicted session ends: a stalled one at once, an idle one
    /// with close_notify.
    pub fn order(&self) -> Order {
        match self {
            EvictionReason::Stalled { .. } => Order::Drop,
            EvictionReason::Idle { .. } => Order::Close,
        }
    }
}

/// An adapter's handle on a connection, as the admission table holds it.
pub trait Handle {
    /// The peer's address, for the log.
    fn peer(&self) -> SocketAddr;
    /// The orders given to the connection (read by its
    /// [`crate::Served`] at every turn).
    fn orders(&self) -> &Orders;
    /// Gives the connection `order` and wakes its task.
    fn order(&self, order: Order);
}

impl<T: Handle + ?Sized> Handle for &T {
    fn peer(&self) -> SocketAddr {
        (**self).peer()
    }
    fn orders(&self) -> &Orders {
        (**self).orders()
    }
    fn order(&self, order: Order) {
        (**self).order(order)
    }
}

impl<T: Handle + ?Sized> Handle for std::sync::Arc<T> {
    fn peer(&self) -> SocketAddr {
        (**self).peer()
    }
    fn orders(&self) -> &Orders {
        (**self).orders()
    }
    fn order(&self, order: Order) {
        (**self).order(order)
    }
}

impl<H: Handle> Dropped<H> {
    /// Ends the dropped handshake's connection and logs why.
    pub fn carry_out(self, log: impl FnOnce(&SessionLog)) {
        self.handle.order(Order::Drop);
        log(&SessionLog::HandshakeDropped {
            peer: self.handle.peer(),
            bound: self.bound,
            pending_for: self.pending_for,
        });
    }
}

impl<H: Handle> Admitted<H> {
    /// Carries out the decision for the newly authenticated session of
    /// `newcomer`: a session evicted for it is ordered out, an eviction or
    /// a refusal is logged. `true` when the newcomer stays; `false` when
    /// it must close (with close_notify).
    pub fn carry_out(self, newcomer: SocketAddr, log: impl FnOnce(&SessionLog)) -> bool {
        match self {
            Admitted::Admitted => true,
            Admitted::Evicting(evicted) => {
                evicted.handle.order(evicted.reason.order());
                log(&SessionLog::Evicted {
                    peer: evicted.handle.peer(),
                    reason: evicted.reason,
                    newcomer,
                });
                true
            }
            Admitted::Refused { max_sessions } => {
                log(&SessionLog::Refused {
                    peer: newcomer,
                    max_sessions,
                });
                false
            }
            // Dropped while it finished its handshake: the order to end
            // is on its way.
            Admitted::Unknown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<Order>>, Orders);

    impl Handle for Recorded {
        fn peer(&self) -> SocketAddr {
            SocketAddr::from(([192, 0, 2, 1], 40000))
        }
        fn orders(&self) -> &Orders {
            &self.1
        }
        fn order(&self, order: Order) {
            self.0.lock().unwrap().push(order);
        }
    }

    #[test]
    fn a_stronger_order_outranks_and_a_weaker_one_does_not() {
        let orders = Orders::default();
        assert_eq!(orders.strongest(), Order::None);
        orders.give(Order::Stop);
        assert_eq!(orders.strongest(), Order::Stop);
        orders.give(Order::Close);
        assert_eq!(orders.strongest(), Order::Close);
        orders.give(Order::Stop);
        assert_eq!(orders.strongest(), Order::Close);
        orders.give(Order::Drop);
        orders.give(Order::Close);
        assert_eq!(orders.strongest(), Order::Drop);
    }

    #[test]
    fn an_evicted_stalled_session_is_dropped_and_an_idle_one_closed_each_logged() {
        let newcomer = SocketAddr::from(([192, 0, 2, 9], 50000));
        for (reason, order) in [
            (
                EvictionReason::Stalled {
                    stalled_for: Duration::from_secs(3),
                },
                Order::Drop,
            ),
            (
                EvictionReason::Idle {
                    idle_for: Duration::from_secs(3),
                },
                Order::Close,
            ),
        ] {
            let handle = Recorded::default();
            let mut logged = Vec::new();
            let decision = Admitted::Evicting(crate::Evicted {
                handle: &handle,
                reason,
            });
            assert!(decision.carry_out(newcomer, |entry| logged.push(entry.clone())));
            assert_eq!(*handle.0.lock().unwrap(), [order]);
            assert!(matches!(
                logged[..],
                [SessionLog::Evicted { newcomer: n, reason: r, .. }] if n == newcomer && r == reason
            ));
        }
    }

    #[test]
    fn a_refused_newcomer_closes_and_is_logged_an_unknown_one_closes_quietly() {
        let newcomer = SocketAddr::from(([192, 0, 2, 9], 50000));
        let mut logged = Vec::new();
        let refused: Admitted<&Recorded> = Admitted::Refused { max_sessions: 4 };
        assert!(!refused.carry_out(newcomer, |entry| logged.push(entry.clone())));
        let unknown: Admitted<&Recorded> = Admitted::Unknown;
        assert!(!unknown.carry_out(newcomer, |entry| logged.push(entry.clone())));
        assert!(matches!(
            logged[..],
            [SessionLog::Refused { peer, max_sessions: 4 }] if peer == newcomer
        ));
    }

    #[test]
    fn a_dropped_handshake_is_ended_at_once_and_logged() {
        let handle = Recorded::default();
        let mut logged = Vec::new();
        Dropped {
            handle: &handle,
            bound: crate::HandshakeBound::Global { max: 2 },
            pending_for: Duration::from_millis(5),
        }
        .carry_out(|entry| logged.push(entry.clone()));
        assert_eq!(*handle.0.lock().unwrap(), [Order::Drop]);
        assert!(matches!(logged[..], [SessionLog::HandshakeDropped { .. }]));
    }
}
