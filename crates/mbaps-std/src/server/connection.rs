//! One connection's control side: what admission control (or `stop`) may
//! order its thread to do, and how the order reaches a blocked thread.

use std::net::{Shutdown, SocketAddr, TcpStream};

use mbaps_admission::{Handle, Order, Orders};

/// The admission table's handle on a connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    /// A second descriptor on the socket: shutting it down wakes the
    /// connection's thread from a blocking read (and, for `Drop`, write).
    control: TcpStream,
    orders: Orders,
}

impl Conn {
    pub(crate) fn new(peer: SocketAddr, control: TcpStream) -> Conn {
        Conn {
            peer,
            control,
            orders: Orders::default(),
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

    /// Orders the thread and wakes it: a read returns at once (as an end
    /// of stream, which the served connection takes for the order); for
    /// `Drop`, a write fails at once too.
    fn order(&self, order: Order) {
        self.orders.give(order);
        let how = match order {
            Order::Drop => Shutdown::Both,
            _ => Shutdown::Read,
        };
        let _ = self.control.shutdown(how);
    }
}
