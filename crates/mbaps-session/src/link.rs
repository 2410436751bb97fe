//! The TLS link both sides share: ciphertext in, MBAP frames out, and
//! ADUs in, ciphertext out. It holds the session's only buffers, each with
//! a fixed bound, and its timers.

use std::io::ErrorKind;
use std::time::Instant;

use mbaps_codec::limits::MAX_ADU_LEN;
use mbaps_codec::{CodecError, Decoded, MbapHeader, decode};

use crate::config::Timers;
use crate::error::SessionError;
use crate::event::{CloseReason, Handshake, Pdu};
use crate::resumption::{Forget, noting_keys};
use crate::transport::Transport;

/// Plaintext reassembly: one ADU may span records and reads, so room for
/// one whole ADU and the start of the next.
const RX_CAPACITY: usize = 2 * MAX_ADU_LEN;

/// Bound on TLS output waiting for `poll_transmit` (rustls buffer limit):
/// 256 full ADUs. An adapter that drains after every call never nears it.
pub(crate) const SEND_BUFFER_LIMIT: usize = 64 * 1024;

/// A frame taken off the stream.
// The PDU travels inline (253 bytes): boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Frame {
    /// An ADU with protocol id 0.
    Adu { header: MbapHeader, pdu: Pdu },
    /// An ADU with another protocol id, discarded.
    Discarded { protocol_id: u16 },
}

pub(crate) struct Link {
    conn: Transport,
    /// ADUs written since the last `poll_transmit`: handed to the transport
    /// together, so a batch of responses travels in one TLS record.
    pending: Vec<u8>,
    rx: [u8; RX_CAPACITY],
    rx_len: usize,
    /// Bytes of a discarded frame still to drop.
    skip: usize,
    fatal: Option<SessionError>,
    authenticated: bool,
    sent_close: bool,
    /// The peer's close_notify, or its EOF, has been seen and reported.
    ended: Option<CloseReason>,
    eof: bool,
    /// `take_end` (or the idle timeout) has reported the end.
    end_reported: bool,
    /// rustls has torn the connection down (close during the handshake):
    /// nothing more can be sent or read.
    connection_dead: bool,
    /// When our close_notify was queued: the peer's answer is awaited
    /// until `timers.close_timeout` after it.
    closing_since: Option<Instant>,
    started: Instant,
    last_activity: Instant,
    timers: Timers,
    /// What to forget if a fatal alert ends the session.
    forget: Option<Forget>,
}

impl Link {
    pub(crate) fn new(mut conn: Transport, now: Instant, timers: Timers) -> Link {
        conn.set_send_limit(SEND_BUFFER_LIMIT);
        Link {
            conn,
            pending: Vec::new(),
            rx: [0; RX_CAPACITY],
            rx_len: 0,
            skip: 0,
            fatal: None,
            authenticated: false,
            sent_close: false,
            ended: None,
            eof: false,
            end_reported: false,
            connection_dead: false,
            closing_since: None,
            started: now,
            last_activity: now,
            timers,
            forget: None,
        }
    }

    /// Forget `forget` if a TLS error (a fatal alert, sent or received)
    /// ends the session.
    pub(crate) fn forget_on_alert(&mut self, forget: Forget) {
        self.forget = Some(forget);
    }

    /// Feeds the transport, noting the session keys a server's store is
    /// asked about meanwhile.
    fn feed(
        &mut self,
        f: impl FnOnce(&mut Transport) -> Result<(), rustls::Error>,
    ) -> Result<(), rustls::Error> {
        match &mut self.forget {
            Some(Forget::Server { keys, .. }) => {
                let conn = &mut self.conn;
                noting_keys(keys, || f(conn))
            }
            _ => f(&mut self.conn),
        }
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.conn
    }

    /// The sticky fatal error, if there is one.
    pub(crate) fn check(&self) -> Result<(), SessionError> {
        match &self.fatal {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// Records a fatal error (the first one stays) and returns it.
    pub(crate) fn fail(&mut self, err: SessionError) -> SessionError {
        if self.fatal.is_none()
            && matches!(err, SessionError::Tls(_))
            && let Some(forget) = &mut self.forget
        {
            forget.forget();
        }
        self.fatal.get_or_insert(err).clone()
    }

    pub(crate) fn is_over(&self) -> bool {
        self.fatal.is_some() || self.ended.is_some()
    }

    /// Whether we have sent close_notify: nothing more goes out.
    pub(crate) fn is_closing(&self) -> bool {
        self.sent_close
    }

    /// Bytes of ADUs written and not yet taken by `poll_transmit`.
    pub(crate) fn queued_output(&self) -> usize {
        self.pending.len()
    }

    /// Feeds ciphertext to rustls: one batch of records from the front of
    /// `input` (which is advanced). The caller drains plaintext after each
    /// batch, so rustls's plaintext buffer never fills.
    pub(crate) fn read_tls(&mut self, now: Instant, input: &mut &[u8]) -> Result<(), SessionError> {
        self.check()?;
        if self.connection_dead {
            // The handshake was abandoned: what still arrives is discarded.
            *input = &[];
            return Ok(());
        }
        if input.is_empty() {
            return Ok(());
        }
        self.last_activity = now;
        match self.feed(|conn| conn.read(input)) {
            Ok(()) => Ok(()),
            // rustls reports close_notify before the handshake finished as
            // an error: the peer gave up, which is a close, not a failure.
            Err(rustls::Error::AlertReceived(rustls::AlertDescription::CloseNotify)) => {
                self.ended.get_or_insert(CloseReason::PeerClosed);
                self.connection_dead = true;
                Ok(())
            }
            Err(err) => Err(self.fail(SessionError::Tls(err))),
        }
    }

    /// The peer's stream ended.
    pub(crate) fn read_eof(&mut self) -> Result<(), SessionError> {
        self.check()?;
        self.eof = true;
        if self.connection_dead {
            return Ok(());
        }
        if self.conn.is_handshaking() {
            // The peer went away before the session existed.
            self.connection_dead = true;
            self.ended
                .get_or_insert(CloseReason::PeerEofWithoutCloseNotify);
            return Ok(());
        }
        if let Err(err) = self.feed(Transport::read_eof) {
            return Err(self.fail(SessionError::Tls(err)));
        }
        Ok(())
    }

    /// The handshake's outcome, the first time it is seen finished: the
    /// TLS parameters, or `None` inside for plain Modbus/TCP, which is
    /// "finished" from the start.
    pub(crate) fn handshake_finished(&mut self) -> Option<Option<Handshake>> {
        if self.authenticated || self.conn.is_handshaking() || self.is_over() {
            return None;
        }
        self.authenticated = true;
        Some(self.conn.handshake())
    }

    /// The next frame of the plaintext stream, reading more plaintext from
    /// rustls as needed; `None` when no whole frame is available.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, SessionError> {
        self.check()?;
        if self.connection_dead {
            return Ok(None);
        }
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.rx_len);
                self.drop_front(n);
                self.skip -= n;
                if self.skip > 0 {
                    if self.fill()? {
                        continue;
                    }
                    return Ok(None);
                }
            }
            match decode(&self.rx[..self.rx_len]) {
                Ok(Decoded::Frame { adu, consumed }) => {
                    let frame = Frame::Adu {
                        header: adu.header,
                        pdu: Pdu::copy_of(adu.pdu),
                    };
                    self.drop_front(consumed);
                    return Ok(Some(frame));
                }
                Ok(Decoded::Incomplete { .. }) => {
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
                Err(CodecError::ProtocolId { value, frame_len }) => {
                    self.skip = frame_len;
                    return Ok(Some(Frame::Discarded { protocol_id: value }));
                }
                Err(err) => return Err(self.fail(SessionError::Framing(err))),
            }
        }
    }

    /// Reads plaintext from rustls into the reassembly buffer; `false` when
    /// nothing more is available now.
    fn fill(&mut self) -> Result<bool, SessionError> {
        if self.rx_len == RX_CAPACITY {
            // Cannot happen: a frame is at most half the buffer and whole
            // frames are taken out before reading more.
            return Ok(false);
        }
        match self.conn.read_plaintext(&mut self.rx[self.rx_len..]) {
            Ok(0) => {
                self.ended.get_or_insert(CloseReason::PeerClosed);
                Ok(false)
            }
            Ok(n) => {
                self.rx_len += n;
                Ok(true)
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => {
                self.ended
                    .get_or_insert(CloseReason::PeerEofWithoutCloseNotify);
                Ok(false)
            }
            Err(err) => Err(self.fail(SessionError::Tls(rustls::Error::General(format!(
                "reading plaintext: {err}"
            ))))),
        }
    }

    fn drop_front(&mut self, n: usize) {
        self.rx.copy_within(n..self.rx_len, 0);
        self.rx_len -= n;
    }

    /// How the session ended, the first time it is seen ended: the peer's
    /// close (answered with our close_notify), or the end of a close we
    /// started (the peer answered, or its stream ended). The idle timeout
    /// reports its own end through `check_timers`.
    pub(crate) fn take_end(&mut self) -> Option<CloseReason> {
        if self.end_reported {
            return None;
        }
        let reason = match self.ended {
            Some(reason) if !self.sent_close => {
                if !self.connection_dead {
                    self.flush_pending();
                    self.conn.send_close();
                }
                self.sent_close = true;
                reason
            }
            _ if self.sent_close && (self.ended.is_some() || self.eof) => {
                self.ended.get_or_insert(CloseReason::LocalClose);
                CloseReason::LocalClose
            }
            _ => return None,
        };
        self.end_reported = true;
        Some(reason)
    }

    /// Queues one ADU for sending.
    pub(crate) fn write_adu(&mut self, now: Instant, adu: &[u8]) -> Result<(), SessionError> {
        self.check()?;
        if self.sent_close {
            return Err(SessionError::Closed);
        }
        if self.pending.len() + adu.len() > SEND_BUFFER_LIMIT {
            return Err(self.fail(SessionError::SendBufferFull));
        }
        self.pending.extend_from_slice(adu);
        self.last_activity = now;
        Ok(())
    }

    /// Appends every byte waiting to go to the peer (a pending alert too).
    pub(crate) fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        self.flush_pending();
        self.conn.write_out(out);
        out.len() - before
    }

    /// Hands the ADUs written so far to the transport, in order, before
    /// anything that must follow them (a close_notify, the next records).
    fn flush_pending(&mut self) {
        if self.pending.is_empty() || self.fatal.is_some() {
            return;
        }
        let taken = self.conn.write_plaintext(&self.pending, SEND_BUFFER_LIMIT);
        if taken < self.pending.len() {
            // Cannot happen: the transport's buffer is drained on every
            // poll_transmit and holds at most what `pending` may.
            self.fail(SessionError::SendBufferFull);
        }
        self.pending.clear();
    }

    /// Sends close_notify, once. During the handshake this abandons it:
    /// the session ends at once and reads nothing more.
    pub(crate) fn close(&mut self, now: Instant) {
        if !self.sent_close && self.fatal.is_none() && !self.connection_dead {
            self.flush_pending();
            self.conn.send_close();
            self.sent_close = true;
            self.closing_since = Some(now);
            // Plain Modbus/TCP has no close handshake: closing is the end.
            if self.conn.is_handshaking() || self.conn.is_plain() {
                self.connection_dead = true;
                self.ended.get_or_insert(CloseReason::LocalClose);
            }
        }
    }

    /// The handshake deadline while handshaking; the end of the wait for
    /// the peer's close_notify while closing; otherwise the idle deadline,
    /// when the caller says the session is idle.
    pub(crate) fn deadline(&self, idle: bool) -> Option<Instant> {
        if self.is_over() {
            return None;
        }
        if self.conn.is_handshaking() {
            return Some(self.started + self.timers.handshake_timeout);
        }
        if let Some(since) = self.closing_since {
            return Some(since + self.timers.close_timeout);
        }
        if idle {
            return self.timers.idle_timeout.map(|t| self.last_activity + t);
        }
        None
    }

    /// Checks the timers: the handshake timeout is a fatal error; the idle
    /// timeout closes the session and the close timeout ends a close the
    /// peer does not answer, each returned as the reason it ended.
    pub(crate) fn check_timers(
        &mut self,
        now: Instant,
        idle: bool,
    ) -> Result<Option<CloseReason>, SessionError> {
        self.check()?;
        if self.is_over() {
            return Ok(None);
        }
        if self.conn.is_handshaking() {
            if now >= self.started + self.timers.handshake_timeout {
                return Err(self.fail(SessionError::HandshakeTimeout(
                    self.timers.handshake_timeout,
                )));
            }
            return Ok(None);
        }
        let closing = self.closing_since.is_some();
        match self.deadline(idle) {
            Some(deadline) if now >= deadline => {
                let reason = if closing {
                    CloseReason::LocalClose
                } else {
                    self.close(now);
                    CloseReason::IdleTimeout
                };
                // Over now: a closing session does not wait for the answer
                // any longer, an idle one does not wait for one at all.
                self.connection_dead = true;
                self.ended.get_or_insert(reason);
                self.end_reported = true;
                Ok(Some(reason))
            }
            _ => Ok(None),
        }
    }
}
