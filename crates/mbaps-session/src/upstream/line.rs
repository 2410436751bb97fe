//! The link to a device, whichever its framing: a [`Client`] session
//! (Modbus/TCP, plain or TLS) or an [`RtuLine`] (a serial line, or RTU
//! over TCP). Both report [`ClientEvent`]s, so [`super::Upstream`] drives
//! either the same way.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::SessionError;
use crate::event::{ClientEvent, Pdu};

use super::rtu::RtuLine;

/// The link to a device (see the module's documentation).
pub enum Line {
    /// MBAP frames over TCP, plain or inside TLS.
    Mbap(Box<Client>),
    /// RTU frames on a serial line or over TCP.
    Rtu(Box<RtuLine>),
}

impl From<Client> for Line {
    fn from(client: Client) -> Line {
        Line::Mbap(Box::new(client))
    }
}

impl From<RtuLine> for Line {
    fn from(line: RtuLine) -> Line {
        Line::Rtu(Box::new(line))
    }
}

impl Line {
    pub(crate) fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        match self {
            Line::Mbap(client) => client.handle_tls(now, bytes),
            Line::Rtu(line) => line.handle_bytes(now, bytes),
        }
    }

    pub(crate) fn handle_eof(&mut self, now: Instant) {
        match self {
            Line::Mbap(client) => client.handle_eof(now),
            Line::Rtu(line) => line.handle_eof(now),
        }
    }

    pub(crate) fn handle_error(&mut self, now: Instant, kind: std::io::ErrorKind) {
        match self {
            // A session's connection failing reads as its end.
            Line::Mbap(client) => client.handle_eof(now),
            Line::Rtu(line) => line.handle_error(now, kind),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Line::Mbap(client) => client.handle_timeout(now),
            Line::Rtu(line) => line.handle_timeout(now),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Line::Mbap(client) => client.poll_timeout(),
            Line::Rtu(line) => line.poll_timeout(),
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<ClientEvent> {
        match self {
            Line::Mbap(client) => client.poll_event(),
            Line::Rtu(line) => line.poll_event(),
        }
    }

    pub(crate) fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        match self {
            Line::Mbap(client) => client.poll_transmit(out),
            Line::Rtu(line) => line.poll_transmit(out),
        }
    }

    pub(crate) fn send_request_pdu(
        &mut self,
        now: Instant,
        unit_id: u8,
        pdu: &Pdu,
        timeout: Duration,
    ) -> Result<u16, SessionError> {
        match self {
            Line::Mbap(client) => client.send_request_pdu(now, unit_id, pdu, timeout),
            Line::Rtu(line) => line.send_request_pdu(now, unit_id, pdu, timeout),
        }
    }

    pub(crate) fn abandon(&mut self, transaction_id: u16) -> bool {
        match self {
            Line::Mbap(client) => client.abandon(transaction_id),
            Line::Rtu(line) => line.abandon(transaction_id),
        }
    }

    pub(crate) fn close(&mut self, now: Instant) {
        match self {
            Line::Mbap(client) => client.close(now),
            Line::Rtu(line) => line.close(now),
        }
    }

    pub(crate) fn discarded_responses(&self) -> u64 {
        match self {
            Line::Mbap(client) => client.discarded_responses(),
            Line::Rtu(line) => line.discarded_responses(),
        }
    }
}
